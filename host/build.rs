//! Builds the engine component (guest/component, wasm32-wasip2, the size-
//! optimised `guest` profile) and hands its path to the host, which embeds it.
//! The nested cargo uses its own target directory: the outer build holds the
//! lock on the workspace's.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest.parent().expect("workspace root").to_path_buf();
    for watched in [
        "guest/core/src",
        "guest/core/Cargo.toml",
        "guest/component/src",
        "guest/component/Cargo.toml",
        "guest/component/build.rs",
        "wit",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    let engine = build_guest(&root, "guest-build", &[]);
    println!("cargo:rustc-env=MCP_OAUTH_COMPONENT={}", engine.display());
    // The sans-IO face (world `sans-io`), a second artifact, for the tests
    // that drive it with no imports at all.
    let sans_io = build_guest(&root, "guest-build-sans-io", &["--features", "sans-io"]);
    println!("cargo:rustc-env=MCP_OAUTH_SANS_IO_COMPONENT={}", sans_io.display());
}

fn build_guest(root: &std::path::Path, dir: &str, extra: &[&str]) -> PathBuf {
    let target_dir = root.join("target").join(dir);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args([
            "build",
            "-p",
            "mcp-oauth-component",
            "--target",
            "wasm32-wasip2",
            "--profile",
            "guest",
        ])
        .args(extra)
        .env_clear()
        .env("CARGO_TARGET_DIR", &target_dir);
    // Only what a cargo run needs; none of the outer build's settings.
    for keep in [
        "PATH",
        "HOME",
        "CARGO_HOME",
        "RUSTUP_HOME",
        "RUSTUP_TOOLCHAIN",
        "TMPDIR",
        "CARGO_NET_OFFLINE",
    ] {
        if let Ok(v) = std::env::var(keep) {
            cmd.env(keep, v);
        }
    }
    let status = cmd.status().expect("running cargo for the guest component");
    if !status.success() {
        panic!(
            "building the guest component failed; is the wasm32-wasip2 target installed? (rustup target add wasm32-wasip2)"
        );
    }
    let wasm = target_dir
        .join("wasm32-wasip2")
        .join("guest")
        .join("mcp_oauth_component.wasm");
    assert!(wasm.exists(), "the guest build produced no {}", wasm.display());
    wasm
}
