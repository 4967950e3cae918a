//! The demo's local servers and the headless browser: what `mcp-oauth demo`,
//! the tests and the benchmarks run against and sign in with. They are not
//! part of the library an embedder builds on (`mcp-oauth`), whose tree has no
//! server and no scripted browser.

pub mod conformance;
pub mod headless;
pub mod server;
