//! Builds the engine component and hands its path to the host, which embeds it:
//! 1. cargo builds guest/component for wasm32-wasip2 (the size-optimised
//!    `guest` profile) as a core module (`--skip-wit-component`), in its own
//!    target directory (the outer build holds the lock on the workspace's);
//! 2. binaryen's `wasm-opt -Oz` shrinks it (`$MCP_OAUTH_WASM_OPT`, `wasm-opt`
//!    on PATH, or the pinned release in `.cache/binaryen`, installed from npm
//!    on the first build), so a plain `cargo build` gives CI's bytes; without
//!    it the component works, ~40 KB larger, and the build says so;
//! 3. wit-component encodes the component from the module's embedded WIT;
//! 4. wasmtime precompiles the engine component (optimized, with the
//!    runtime's own configuration, `src/runtime/engine_config.rs`), and the
//!    host embeds the artifact too, so no run ever has to compile it while
//!    the running wasmtime accepts it.
//!
//! From a packaged crate (`cargo package`, no repository around it) steps 1-3
//! are done: the component ships in the package as `engine/engine.wasm`
//! (scripts/package-crate puts it there), and only step 4 runs.

use std::path::PathBuf;
use std::process::Command;

#[path = "src/runtime/engine_config.rs"]
mod engine_config;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    println!("cargo::rustc-check-cfg=cfg(from_repository)");
    let root = manifest.parent().expect("the crate's parent directory").to_path_buf();
    let engine = if root.join("guest/component/Cargo.toml").is_file() {
        from_sources(&root, &out)
    } else {
        let shipped = manifest.join("engine").join("engine.wasm");
        println!("cargo:rerun-if-changed={}", shipped.display());
        assert!(
            shipped.is_file(),
            "no engine component: neither the repository's guest/ sources nor {} (a packaged crate carries it)",
            shipped.display()
        );
        shipped
    };
    println!("cargo:rustc-env=MCP_OAUTH_COMPONENT={}", engine.display());
    let artifact = precompile(&engine, &out.join("engine.cwasm"));
    println!("cargo:rustc-env=MCP_OAUTH_PRECOMPILED={}", artifact.display());
}

/// In the repository: builds both components from guest/ (the engine, and
/// the sans-io face, world `sans-io`, for the tests that drive it with no
/// imports at all) and lets the crate's doc tests include the repository's
/// README (`cfg(from_repository)`).
fn from_sources(root: &std::path::Path, out: &std::path::Path) -> PathBuf {
    println!("cargo:rustc-cfg=from_repository");
    println!("cargo:rerun-if-env-changed=MCP_OAUTH_WASM_OPT");
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
    ensure_wasm_target();
    let engine = componentize(root, &build_guest(root, "guest-build", &[]), &out.join("engine.wasm"));
    let sans_io = componentize(
        root,
        &build_guest(root, "guest-build-sans-io", &["--features", "sans-io"]),
        &out.join("sans-io.wasm"),
    );
    println!("cargo:rustc-env=MCP_OAUTH_SANS_IO_COMPONENT={}", sans_io.display());
    engine
}

/// The optimized engine, compiled for this machine with the runtime's
/// configuration. A build that cannot make it embeds an empty file and says
/// so: the binary then compiles (and caches) the engine on its first run.
fn precompile(component: &std::path::Path, out: &std::path::Path) -> PathBuf {
    let compiled = std::fs::read(component).map_err(|e| e.to_string()).and_then(|bytes| {
        wasmtime::Engine::new(&engine_config::config(false))
            .and_then(|engine| engine.precompile_component(&bytes))
            .map_err(|e| e.to_string())
    });
    let bytes = compiled.unwrap_or_else(|e| {
        println!("cargo:warning=not embedding a precompiled engine ({e}); the first run will compile it");
        Vec::new()
    });
    std::fs::write(out, bytes).expect("writing the precompiled engine");
    out.to_path_buf()
}

/// Installs the wasm32-wasip2 target when it is missing, so that the first
/// `cargo run` on a new machine works (rustup is the only way to get it).
fn ensure_wasm_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let libdir = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", "wasm32-wasip2"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if libdir.is_some_and(|d| !d.is_empty() && std::path::Path::new(&d).exists()) {
        return;
    }
    println!("cargo:warning=installing the wasm32-wasip2 target (rustup target add wasm32-wasip2)");
    let _ = Command::new("rustup").args(["target", "add", "wasm32-wasip2"]).status();
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
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("RUSTFLAGS", "-C link-arg=--skip-wit-component");
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

/// The binaryen release the project pins (scripts/test installs the same).
const BINARYEN: &str = "binaryen@132";

/// wasm-opt, so that a plain `cargo build` produces the bytes CI does:
/// `$MCP_OAUTH_WASM_OPT`, else `wasm-opt` on PATH, else the project's own
/// copy in `.cache/binaryen` (installed here from npm when npm is at hand).
fn wasm_opt(root: &std::path::Path) -> Option<PathBuf> {
    if let Ok(p) = std::env::var("MCP_OAUTH_WASM_OPT") {
        return Some(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("wasm-opt"))
            .find(|p| p.is_file())
    });
    if on_path.is_some() {
        return on_path;
    }
    let cache = root.join(".cache").join("binaryen");
    let local = cache.join("node_modules").join(".bin").join("wasm-opt");
    if !local.is_file() {
        println!(
            "cargo:warning=installing {BINARYEN} (wasm-opt) from npm into .cache/binaryen for the guest's size pass"
        );
        let installed = Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(&cache)
            .arg(BINARYEN)
            .stdout(std::process::Stdio::null())
            .status();
        if !matches!(installed, Ok(s) if s.success()) {
            return None;
        }
    }
    local.is_file().then_some(local)
}

/// Optimises the core module (when wasm-opt is at hand) and encodes the component.
fn componentize(root: &std::path::Path, module: &std::path::Path, out: &std::path::Path) -> PathBuf {
    let mut bytes = std::fs::read(module).expect("reading the guest module");
    match wasm_opt(root) {
        Some(opt) => {
            let optimised = out.with_extension("opt.wasm");
            let status = Command::new(&opt)
                .args([
                    "-Oz",
                    "--enable-bulk-memory",
                    "--enable-sign-ext",
                    "--enable-mutable-globals",
                ])
                .args([
                    "--enable-nontrapping-float-to-int",
                    "--enable-multivalue",
                    "--enable-reference-types",
                ])
                .arg(module)
                .arg("-o")
                .arg(&optimised)
                .status();
            match status {
                Ok(s) if s.success() => bytes = std::fs::read(&optimised).expect("reading the optimised module"),
                other => println!("cargo:warning=wasm-opt failed ({other:?}); the component is not size-optimised"),
            }
        }
        None => println!(
            "cargo:warning=wasm-opt not found and npm could not install it: the engine component is built without \
             binaryen's size pass (about 40 KB larger than CI's). Install binaryen (wasm-opt on PATH) or npm, or set \
             MCP_OAUTH_WASM_OPT, then `cargo clean -p mcp-oauth` and build again"
        ),
    }
    let component = wit_component::ComponentEncoder::default()
        .module(&bytes)
        .and_then(|e| e.validate(true).encode())
        .expect("encoding the engine component");
    std::fs::write(out, &component).expect("writing the engine component");
    // Also publish it where other hosts (jco, wasmtime-py) and the test script find it.
    if let Some(root) = out.ancestors().find(|a| a.file_name().is_some_and(|n| n == "target")) {
        let dir = root.join("components");
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join(out.file_name().expect("file name")), &component);
    }
    out.to_path_buf()
}
