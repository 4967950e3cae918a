//! The fuzz targets' bodies, shared with the stable corpus replay test
//! (`guest/core/tests/fuzz_corpora.rs` includes `targets.rs` directly).
pub mod targets;
