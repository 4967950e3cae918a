//! The first run ever. The optimized engine compiled into the binary is
//! used: nothing compiles, nothing is cached. When the running wasmtime
//! refuses it (`MCP_OAUTH_TEST_NO_EMBEDDED_ENGINE` stands for that here),
//! the CLI runs on Winch's quick compile and a detached process caches the
//! optimized artifact, which later runs load. Behaviour only; the timings
//! are in scripts/bench.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_oauth_demo::headless::HeadlessBrowser;
use mcp_oauth_demo::server::{DemoServer, Faults};
use mcp_oauth_host::callback::CallbackOptions;
use mcp_oauth_host::prompts::{ConsentPolicy, TerminalPrompter};
use mcp_oauth_host::runtime::Uncached;
use mcp_oauth_host::{Config, Mode, Runtime, RuntimeOptions, SessionIo};

mod support;

use support::temp_home;

const CLI: &str = env!("CARGO_BIN_EXE_mcp-oauth");

fn io() -> SessionIo {
    SessionIo {
        prompter: Arc::new(TerminalPrompter::new(ConsentPolicy::Allow, false)),
        browser: Arc::new(HeadlessBrowser),
        callback: CallbackOptions::default(),
        signer: None,
    }
}

/// The file names in `dir` (none when it does not exist).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn artifacts(dir: &Path) -> Vec<String> {
    names(dir).into_iter().filter(|n| n.ends_with(".cwasm")).collect()
}

/// Logs in to `server` with the library, caching its compiled engine
/// elsewhere: `home` ends up with a valid token and no engine cache.
fn login(server: &DemoServer, home: &Path, elsewhere: &Path) -> String {
    let rt = Runtime::new(RuntimeOptions {
        home: home.to_path_buf(),
        cache_dir: Some(elsewhere.to_path_buf()),
        embedded_artifact: false,
        ..RuntimeOptions::default()
    })
    .unwrap();
    let token = rt
        .session(&server.mcp_url(), Config::default(), io())
        .unwrap()
        .authorize(Mode::Interactive)
        .unwrap()
        .token;
    assert!(artifacts(&home.join("cache")).is_empty());
    token
}

#[test]
fn the_first_cli_run_uses_the_embedded_engine_and_compiles_nothing() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let (home, elsewhere) = (
        temp_home("first-run-embedded"),
        temp_home("first-run-embedded-elsewhere"),
    );
    let token = login(&server, &home, &elsewhere);
    let out = Command::new(CLI)
        .args(["token", &server.mcp_url()])
        .env("MCP_OAUTH_HOME", &home)
        .env_remove("MCP_OAUTH_TEST_NO_EMBEDDED_ENGINE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), token);
    // No background writer was started: nothing appears in the cache.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        names(&home.join("cache")).is_empty(),
        "{:?}",
        names(&home.join("cache"))
    );

    // The library likewise: optimized code (not Winch), no compile, no cache.
    let rt = Runtime::new(RuntimeOptions {
        home: home.to_path_buf(),
        uncached: Uncached::Baseline,
        ..RuntimeOptions::default()
    })
    .unwrap();
    assert!(!rt.is_baseline());
    let session = rt.session(&server.mcp_url(), Config::default(), io()).unwrap();
    assert_eq!(session.authorize(Mode::Silent).unwrap().token, token);
    assert!(artifacts(&home.join("cache")).is_empty());
}

#[test]
fn the_first_cli_run_without_a_cache_works_and_leaves_a_usable_cache() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let (home, elsewhere) = (temp_home("first-run-home"), temp_home("first-run-elsewhere"));
    let token = login(&server, &home, &elsewhere);
    let cache = home.join("cache");

    let run = || {
        Command::new(CLI)
            .args(["token", &server.mcp_url()])
            .env("MCP_OAUTH_HOME", &home)
            .env("MCP_OAUTH_TEST_NO_EMBEDDED_ENGINE", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = run();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), token);
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));

    // The detached writer: one artifact, renamed into place, its lock gone.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(artifacts(&cache).len() == 1 && names(&cache).len() == 1) {
        assert!(
            Instant::now() < deadline,
            "no engine cache written: {:?}",
            names(&cache)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let path = cache.join(&artifacts(&cache)[0]);
        assert_eq!(std::fs::metadata(path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    // It is the artifact this build loads: a runtime starts from it (not
    // from Winch), and there is nothing left to write.
    let options = RuntimeOptions {
        home: home.to_path_buf(),
        embedded_artifact: false,
        uncached: Uncached::Baseline,
        ..RuntimeOptions::default()
    };
    let rt = Runtime::new(options.clone()).unwrap();
    assert!(!rt.is_baseline(), "the cached artifact was not used");
    let session = rt.session(&server.mcp_url(), Config::default(), io()).unwrap();
    assert_eq!(session.authorize(Mode::Silent).unwrap().token, token);
    assert!(!Runtime::write_cache(&options).unwrap());

    // The next CLI run uses it and changes nothing in the cache.
    let before = names(&cache);
    let out = run();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), token);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(names(&cache), before);
}

#[test]
fn a_baseline_runtime_runs_the_engine_and_write_cache_fills_the_cache() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = temp_home("first-run-baseline");
    let options = RuntimeOptions {
        home: home.to_path_buf(),
        embedded_artifact: false,
        uncached: Uncached::Baseline,
        ..RuntimeOptions::default()
    };
    let rt = Runtime::new(options.clone()).unwrap();
    assert!(rt.is_baseline());
    assert!(
        artifacts(&home.join("cache")).is_empty(),
        "a baseline start writes nothing"
    );

    // The whole flow (fuel metering included) on Winch's code.
    let session = rt.session(&server.mcp_url(), Config::default(), io()).unwrap();
    let token = session.authorize(Mode::Interactive).unwrap().token;
    assert_eq!(session.authorize(Mode::Silent).unwrap().token, token);
    session.set_fuel_per_call(1_000);
    assert!(matches!(session.status(), Err(mcp_oauth_host::Error::Trapped(_))));

    assert!(Runtime::write_cache(&options).unwrap());
    assert_eq!(artifacts(&home.join("cache")).len(), 1);
    assert!(!Runtime::write_cache(&options).unwrap());
    let rt = Runtime::new(options).unwrap();
    assert!(!rt.is_baseline());
    let session = rt.session(&server.mcp_url(), Config::default(), io()).unwrap();
    assert_eq!(session.authorize(Mode::Silent).unwrap().token, token);

    // The default compiles optimized code and caches it itself.
    let home2 = temp_home("first-run-optimize");
    let rt = Runtime::new(RuntimeOptions {
        home: home2.to_path_buf(),
        embedded_artifact: false,
        ..RuntimeOptions::default()
    })
    .unwrap();
    assert!(!rt.is_baseline());
    assert_eq!(artifacts(&home2.join("cache")).len(), 1);
}
