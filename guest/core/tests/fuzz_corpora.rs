//! Replays every committed fuzz corpus file through the same target bodies
//! the fuzzers run (`guest/core/fuzz/src/targets.rs`), on stable, in CI: what
//! a fuzzer once found stays fixed. `scripts/fuzz` grows the corpora.

#[path = "../fuzz/src/targets.rs"]
#[allow(dead_code)]
mod targets;

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut n = 0;
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let bytes = std::fs::read(e.path()).unwrap();
            run(&bytes);
            n += 1;
        }
    }
    assert!(n > 0, "no corpus for {target} in {}", dir.display());
}

macro_rules! corpus {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            replay(stringify!($name), targets::$name);
        }
    )*};
}

corpus!(
    www_authenticate,
    prm,
    as_metadata,
    registration_response,
    token_response,
    callback_query,
    pasted_url,
    http_url,
    stored_records,
    session,
    dpop_nonce,
);
