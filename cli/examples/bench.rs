//! Measurements (not tests): the per-call overhead of a session call through
//! the component boundary, and the wall time of `mcp-oauth token` with a
//! valid stored token and a cached compiled artifact.
//!
//!     cargo build --release -p mcp-oauth-cli --bins --examples
//!     target/release/examples/bench target/release/mcp-oauth

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_oauth_demo::headless::HeadlessBrowser;
use mcp_oauth_demo::server::{DemoServer, Faults};
use mcp_oauth_host::callback::CallbackOptions;
use mcp_oauth_host::prompts::{ConsentPolicy, TerminalPrompter};
use mcp_oauth_host::{Config, Mode, Runtime, RuntimeOptions, SessionIo};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let cli = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/release/mcp-oauth".into());
    let home = std::env::temp_dir().join(format!("mcp-oauth-bench-{}", std::process::id()));
    let server = DemoServer::start(Faults::default()).expect("demo server");
    let url = server.mcp_url();
    let io = SessionIo {
        prompter: Arc::new(TerminalPrompter::new(ConsentPolicy::Allow, false)),
        browser: Arc::new(HeadlessBrowser),
        callback: CallbackOptions::default(),
        signer: None,
    };

    let t = Instant::now();
    let rt = Runtime::new(RuntimeOptions {
        home: home.clone(),
        ..RuntimeOptions::default()
    })
    .expect("runtime");
    println!(
        "runtime start, cold artifact cache (compiles the component): {:?}",
        t.elapsed()
    );
    let t = Instant::now();
    let rt2 = Runtime::new(RuntimeOptions {
        home: home.clone(),
        ..RuntimeOptions::default()
    })
    .expect("runtime");
    println!(
        "runtime start, warm artifact cache (deserializes):           {:?}",
        t.elapsed()
    );
    drop(rt2);

    let session = rt.session(&url, Config::default(), io).expect("session");
    session.authorize(Mode::Interactive).expect("login");

    // Per-call overhead: authorize(silent) with a fresh token in memory does
    // no I/O at all, so this is the boundary crossing plus the engine's check.
    for _ in 0..200 {
        session.authorize(Mode::Silent).unwrap();
    }
    let n = 20_000;
    let t = Instant::now();
    for _ in 0..n {
        session.authorize(Mode::Silent).unwrap();
    }
    let per = t.elapsed() / n;
    println!("session.authorize(silent), token in memory: {per:?} per call (mean of {n})");
    let t = Instant::now();
    for _ in 0..2_000 {
        session.status().unwrap();
    }
    println!(
        "session.status() (records already loaded): {:?} per call (mean of 2000)",
        t.elapsed() / 2_000
    );

    // CLI: `token` with a valid stored token; the artifact is cached.
    drop(server); // no network needed: the token is valid
    let mut runs = Vec::new();
    for i in 0..31 {
        let t = Instant::now();
        let out = Command::new(&cli)
            .args(["token", &url])
            .env("MCP_OAUTH_HOME", &home)
            .output()
            .expect("run cli");
        let d = t.elapsed();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        if i > 0 {
            runs.push(d);
        }
    }
    let min = *runs.iter().min().unwrap();
    let max = *runs.iter().max().unwrap();
    println!(
        "`mcp-oauth token` wall time: median {:?} (min {min:?}, max {max:?}, 30 runs)",
        median(runs)
    );
    let _ = std::fs::remove_dir_all(&home);
}
