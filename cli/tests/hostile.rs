//! Hostile servers and a tampered store, through the real CLI: what the
//! issue-9 review found, each as a regression test. The attacker controls the
//! MCP server, the authorization server, or files in the store.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use mcp_oauth_demo::server::{DemoServer, Faults};
use support::{BROWSER, Cli, cli, temp_home};

/// ESC, CSI, OSC, BEL, CR/LF and the C1 controls U+009B (CSI) and U+009D (OSC).
const HOSTILE: &str = "\u{1b}[2J\u{1b}]52;c;cHduZWQ=\u{7}\u{9b}31m\u{9d}0;title\u{7}\r\nFAKE: ok";

/// Nothing a terminal would act on: no C0 (but newline), DEL or C1 control.
fn assert_terminal_safe(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let bad: Vec<char> = text.chars().filter(|c| c.is_control() && *c != '\n').collect();
    assert!(bad.is_empty(), "{what} carries control characters {bad:?}:\n{text}");
}

fn record_path(home: &Path, prefix: &str) -> PathBuf {
    std::fs::read_dir(home)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} record in {}", home.display()))
}

#[test]
fn server_text_never_reaches_the_terminal_raw() {
    // A hostile AS refuses with control sequences in error and error_description.
    let server = DemoServer::start(Faults {
        deny: true,
        hostile_text: Some(HOSTILE.into()),
        ..Faults::default()
    })
    .unwrap();
    let home = temp_home("hostile-deny");
    let out = cli(&home, &["login", &server.mcp_url()]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert_terminal_safe("login stderr", &out.stderr);
    assert_terminal_safe("login stdout", &out.stdout);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("\\u{1b}[2J"),
        "the text is shown, escaped"
    );

    // The same AS lets the user in but registers a client id with controls:
    // `status` shows it escaped.
    server.set_faults(|f| f.deny = false);
    let home = temp_home("hostile-status");
    let out = cli(&home, &["login", &server.mcp_url()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_terminal_safe("login stderr", &out.stderr);
    let out = cli(&home, &["status"]);
    assert!(out.status.success());
    assert_terminal_safe("status stdout", &out.stdout);
    // No secret on the terminal: the stored tokens appear in no output.
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(record_path(&home, "tokens-")).unwrap()).unwrap();
    for secret in ["access_token", "refresh_token"] {
        let v = record["record"]["tokens"][secret].as_str().unwrap().to_string();
        for o in [&out.stdout, &out.stderr] {
            assert!(!String::from_utf8_lossy(o).contains(&v), "{secret} printed by status");
        }
    }
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\\u{1b}]52"),
        "the client id is shown escaped"
    );
    // `status --json` is JSON: the controls are JSON escapes.
    let out = cli(&home, &["status", "--json"]);
    assert_terminal_safe("status --json", &out.stdout);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v[0]["client_id"].as_str().unwrap().contains('\u{1b}'));

    // The token endpoint refuses with the hostile text (on refresh too).
    server.set_faults(|f| f.deny = true);
    let out = cli(&home, &["logout", &server.mcp_url()]);
    assert_terminal_safe("logout stderr", &out.stderr);
}

#[test]
fn a_registration_for_other_redirect_uris_fails_after_one_request() {
    for claimed in [vec![], vec!["http://127.0.0.1:9/elsewhere".to_string()]] {
        let server = DemoServer::start(Faults {
            registered_redirect_uris: Some(claimed.clone()),
            ..Faults::default()
        })
        .unwrap();
        let home = temp_home("hostile-dcr-loop");
        let t = Instant::now();
        let out = cli(&home, &["login", &server.mcp_url(), "--timeout", "20"]);
        assert_eq!(out.status.code(), Some(1), "{claimed:?}");
        assert!(t.elapsed() < Duration::from_secs(15));
        assert_eq!(server.count("/register"), 1, "{claimed:?}: {:?}", server.log());
        assert_eq!(server.count("/authorize"), 0);
        assert!(String::from_utf8_lossy(&out.stderr).contains("registered other redirect URIs"));
    }
}

#[test]
fn a_server_that_never_answers_costs_one_deadline() {
    // Accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = std::thread::spawn(move || {
        let mut held = Vec::new();
        listener.set_nonblocking(true).unwrap();
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if let Ok((s, _)) = listener.accept() {
                held.push(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let home = temp_home("hostile-silent");
    let t = Instant::now();
    let out = Cli::new(&home)
        .env("MCP_OAUTH_HTTP_TIMEOUT", "2")
        .run(&["login", &format!("http://127.0.0.1:{port}/mcp")]);
    let took = t.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        took < Duration::from_secs(4),
        "took {took:?}: more than one 2 s deadline"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("could not reach"));
    drop(hold);
}

#[test]
fn a_bad_url_on_the_command_line_is_a_usage_error() {
    let home = temp_home("hostile-usage");
    for url in [
        "ftp://x/y",
        "http://evil.example/mcp",
        "not a url",
        "https://user:pw@x/mcp",
    ] {
        let out = cli(&home, &["token", url]);
        assert_eq!(out.status.code(), Some(2), "{url}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("the server URL"), "{url}: {err}");
        assert!(!err.contains("misconfigured or malicious"), "{url}: {err}");
    }
    // A flag combination the engine refuses is a usage error too.
    let out = cli(&home, &["login", "https://mcp.example.com/mcp", "--client-secret", "s"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a client secret needs a client id"), "{err}");
    assert!(err.contains("--help"), "{err}");
}

#[cfg(unix)]
#[test]
fn a_fifo_or_a_huge_file_in_place_of_a_record_neither_blocks_nor_fills_memory() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = temp_home("hostile-fifo");
    assert!(cli(&home, &["login", &server.mcp_url()]).status.success());
    let tokens = record_path(&home, "tokens-");
    std::fs::remove_file(&tokens).unwrap();
    assert!(Command::new("mkfifo").arg(&tokens).status().unwrap().success());
    let t = Instant::now();
    let out = cli(&home, &["token", &server.mcp_url()]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let out = cli(&home, &["status", &server.mcp_url()]);
    assert!(out.status.success());
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());

    std::fs::remove_file(&tokens).unwrap();
    std::fs::File::create(&tokens).unwrap().set_len(1 << 30).unwrap();
    let binding = record_path(&home, "binding-");
    std::fs::remove_file(&binding).unwrap();
    std::fs::File::create(&binding).unwrap().set_len(1 << 30).unwrap();
    let t = Instant::now();
    let out = cli(&home, &["token", &server.mcp_url()]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("larger than a record"));
    let out = cli(&home, &["status"]);
    assert!(out.status.success());
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
}

#[cfg(unix)]
#[test]
fn planted_symlinks_for_the_cache_and_the_locks_are_not_followed() {
    use std::os::unix::fs::symlink;
    let elsewhere = temp_home("hostile-elsewhere");
    // The compiled-engine cache (consulted when the embedded engine is
    // refused, which the test variable stands for): the runtime compiles in
    // memory instead.
    let home = temp_home("hostile-cache-link");
    symlink(&elsewhere, home.join("cache")).unwrap();
    let out = Cli::new(&home)
        .env("MCP_OAUTH_TEST_NO_EMBEDDED_ENGINE", "1")
        .run(&["token", "https://mcp.example.com/mcp"]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not caching the compiled engine"));
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing written through the link"
    );
    // The locks directory: the store refuses it, and chmods nothing.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = temp_home("hostile-locks-link");
    symlink(&elsewhere, home.join("locks")).unwrap();
    let out = cli(&home, &["token", "https://mcp.example.com/mcp"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to use"));
    let mode = std::fs::metadata(&elsewhere).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o755, "the link's target was not chmod'ed");
}

// Issue 18.1: 150 junk requests at once (favicons, forged and empty
// callbacks, POSTs, TLS bytes, silent sockets) reach the callback before the
// real redirect: the sign-in still succeeds, and the log grows by a line per
// doubling of the forged redirects, not per request.
#[test]
fn junk_on_the_callback_never_ends_a_sign_in() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = temp_home("hostile-junk");
    let out =
        Cli::new(&home)
            .browser(&format!("{BROWSER} --junk 150"))
            .run(&["login", &server.mcp_url(), "--timeout", "60"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let notices = stderr
        .lines()
        .filter(|l| l.contains("ignored a request to the callback"))
        .count();
    assert!(notices <= 8, "at most one line per doubling, got {notices}:\n{stderr}");
    assert_eq!(server.count("/token"), 1);
    // The grant is stored: the next command needs nothing from the AS.
    let before = server.as_requests();
    assert!(cli(&home, &["token", &server.mcp_url()]).status.success());
    assert_eq!(server.as_requests(), before);
}

// Issue 18.2: an MCP server that refuses every token. `login` signs in at
// the AS, sends the probe once more with the new token, and stops with an
// error that names the resource (exit 1), keeping the tokens; no refresh,
// no second sign-in. A second `login` refreshes the stored token once.
#[test]
fn a_server_that_refuses_every_token_ends_login_at_once() {
    let server = DemoServer::start(Faults {
        reject_tokens: true,
        ..Faults::default()
    })
    .unwrap();
    let home = temp_home("hostile-refuses");
    let url = server.mcp_url();
    let out = cli(&home, &["login", &url]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("just issued") && stderr.contains(&url), "{stderr}");
    assert!(!stderr.contains("Logged in"), "{stderr}");
    assert_eq!(
        (server.count("/mcp"), server.count("/token"), server.count("/authorize")),
        (2, 1, 1)
    );
    record_path(&home, "tokens-");
    let out = cli(&home, &["login", &url]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        (server.count("/mcp"), server.count("/token"), server.count("/authorize")),
        (4, 2, 1),
        "one refresh of the stored token, then stop: {:?}",
        server.log()
    );
}

// Issue 18.3: a token shorter than the 60 s margin is not stale on arrival:
// login keeps it and `token` serves it without a refresh.
#[test]
fn a_short_token_is_not_stale_on_arrival() {
    let server = DemoServer::start(Faults {
        access_ttl_secs: Some(20),
        ..Faults::default()
    })
    .unwrap();
    let home = temp_home("hostile-short");
    let out = cli(&home, &["login", &server.mcp_url()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(cli(&home, &["token", &server.mcp_url()]).status.success());
    assert_eq!(server.count("/token"), 1, "no refresh: {:?}", server.log());
}

const CONFORMANCE: &str = env!("CARGO_BIN_EXE_conformance-client");

/// Runs the conformance client (the library's AuthorizedClient and MCP
/// client) once against `url` with a fresh store.
fn conformance_client(url: &str, tag: &str) -> Output {
    let home = temp_home(&format!("hostile-{tag}"));
    Command::new(CONFORMANCE)
        .arg(url)
        .env("MCP_OAUTH_HOME", &home)
        .env("MCP_CONFORMANCE_SCENARIO", "auth/basic")
        .stdin(Stdio::null())
        .output()
        .expect("run conformance-client")
}

// Issue 18.2 through the library's own MCP client: a server that refuses
// every token costs the request without a token, the one with the token
// just issued, and nothing more (it used to be 6 POSTs and a refresh).
#[test]
fn the_mcp_client_stops_at_once_when_every_token_is_refused() {
    let server = DemoServer::start(Faults {
        reject_tokens: true,
        ..Faults::default()
    })
    .unwrap();
    let out = conformance_client(&server.mcp_url(), "conformance-refused");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(format!("{stdout}{stderr}").contains("just issued"), "{stdout}{stderr}");
    assert_eq!(server.count("/mcp"), 2, "{:?}", server.log());
    assert_eq!((server.count("/token"), server.count("/authorize")), (1, 1));
}

// A server that answers 403 insufficient_scope forever: the first request,
// then one per step-up up to the cap of 3: 4 POSTs, then a typed error.
#[test]
fn a_server_never_satisfied_with_scope_costs_at_most_the_step_up_cap() {
    let server = DemoServer::start(Faults {
        always_insufficient: Some("admin".into()),
        ..Faults::default()
    })
    .unwrap();
    let out = conformance_client(&server.mcp_url(), "conformance-insufficient");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(server.count("/mcp") <= 4, "{:?}", server.log());
    assert!(server.count("/authorize") <= 4, "{:?}", server.log());
}
