//! Links wasi-libc's string routines (memcmp and friends) statically from the
//! wasm32-wasip2 sysroot: a `no_std` guest has no libc, and these routines make
//! no WASI calls, so the component still imports nothing but `mcp:oauth`.
use std::process::Command;

fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("wasm32") {
        return;
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .expect("rustc --print sysroot");
    let sysroot = String::from_utf8(out.stdout).expect("utf-8 sysroot");
    let target = std::env::var("TARGET").unwrap_or_else(|_| "wasm32-wasip2".into());
    println!(
        "cargo:rustc-link-search=native={}/lib/rustlib/{target}/lib/self-contained",
        sysroot.trim()
    );
    println!("cargo:rustc-link-lib=static=c");
}
