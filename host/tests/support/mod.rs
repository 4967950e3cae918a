//! What the end-to-end test files share.

use std::path::PathBuf;

/// A fresh, empty store directory for one test (`mcp-oauth-<tag>-<random>`).
pub fn temp_home(tag: &str) -> PathBuf {
    let mut n = [0u8; 8];
    getrandom::fill(&mut n).unwrap();
    let p = std::env::temp_dir().join(format!("mcp-oauth-{tag}-{:016x}", u64::from_le_bytes(n)));
    std::fs::create_dir_all(&p).unwrap();
    p
}
