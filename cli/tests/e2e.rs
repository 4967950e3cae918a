//! End-to-end: the real engine component in wasmtime, the real CLI binary,
//! the local authorization + MCP server, and a scripted browser that follows
//! the redirect chain to the loopback listener.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mcp_oauth_demo::headless::HeadlessBrowser;
use mcp_oauth_demo::server::{DemoServer, Faults};
use mcp_oauth_host::bindings::mcp::oauth::types::{ConsentRequest, Event};
use mcp_oauth_host::browser::BrowserOpener;
use mcp_oauth_host::callback::CallbackOptions;
use mcp_oauth_host::prompts::Prompter;
use mcp_oauth_host::{AuthError, AuthorizedClient, Config, Error, Mode, Runtime, RuntimeOptions, SessionIo};
use support::{BROWSER, CLI, Cli, cli, temp_home};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tokens_record(home: &Path) -> Option<serde_json::Value> {
    for e in std::fs::read_dir(home).ok()?.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("tokens-") && name.ends_with(".json") {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
            return Some(v["record"]["tokens"].clone());
        }
    }
    None
}

fn mcp_accepts(server: &DemoServer, token: &str) -> u16 {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    agent
        .post(&server.mcp_url())
        .header("authorization", &format!("Bearer {token}"))
        .header("content-type", "application/json")
        .send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

// 1 + 2: cold login with registration; `token` prints the token with no AS
// request; the MCP server accepts it; a new process opens no browser and
// makes no AS request.
#[test]
fn cold_login_then_token_from_a_new_process() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = temp_home("e2e-cold");
    let out = cli(&home, &["login", &server.mcp_url()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.count("/register"), 1);
    assert_eq!(server.count("/authorize"), 1);
    let as_before = server.as_requests();
    let out = cli(&home, &["token", &server.mcp_url()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("at-"), "{token}");
    assert_eq!(server.as_requests(), as_before, "token made an AS request");
    assert_eq!(mcp_accepts(&server, &token), 200);
    // A second process: still nothing.
    let out = cli(&home, &["token", &server.mcp_url()]);
    assert!(out.status.success());
    assert_eq!(server.as_requests(), as_before);
    assert_eq!(server.count("/authorize"), 1, "no second browser");
    // status shows no secret
    let out = cli(&home, &["status", "--json"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v[0]["has_token"], true);
    assert_eq!(v[0]["can_refresh"], true);
    assert!(!text.contains(&token) && !text.contains("rt-"), "{text}");
}

// 3: expired access token: exactly one refresh; the rotated refresh token is
// stored; the old one is never reused.
#[test]
fn expired_token_is_refreshed_once_and_rotation_is_kept() {
    let server = DemoServer::start(Faults {
        // 2 s tokens: stale once half their lifetime is left (the margin is
        // the 60 s skew capped at half the lifetime).
        access_ttl_secs: Some(2),
        ..Faults::default()
    })
    .unwrap();
    let home = temp_home("e2e-refresh");
    assert!(cli(&home, &["login", &server.mcp_url()]).status.success());
    let rt1 = tokens_record(&home).unwrap()["refresh_token"].clone();
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    let before = server.count("/token");
    let out = cli(&home, &["token", &server.mcp_url()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.count("/token"), before + 1, "exactly one refresh");
    let rt2 = tokens_record(&home).unwrap()["refresh_token"].clone();
    assert_ne!(rt1, rt2, "the rotated refresh token is stored");
    let out = cli(&home, &["token", &server.mcp_url()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!server.reuse_detected(), "an old refresh token was reused");
}

// 4a: decline at the AS: exit 4, nothing stored, browser opened once.
#[test]
fn access_denied_exits_4_and_stores_nothing() {
    let server = DemoServer::start(Faults {
        deny: true,
        ..Faults::default()
    })
    .unwrap();
    let home = temp_home("e2e-deny");
    let out = cli(&home, &["login", &server.mcp_url()]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("declined"));
    assert!(tokens_record(&home).is_none());
    assert_eq!(server.count("/authorize"), 1);
    let out = cli(&home, &["token", &server.mcp_url()]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "token never prompts: authorization required"
    );
}

struct CountingPrompter {
    consents: AtomicUsize,
}

impl Prompter for CountingPrompter {
    fn consent(&self, _ask: &ConsentRequest) -> Result<bool, String> {
        self.consents.fetch_add(1, Ordering::SeqCst);
        Ok(true)
    }
    fn notify(&self, _event: &Event) {}
}

struct CountingBrowser {
    opens: AtomicUsize,
}

impl BrowserOpener for CountingBrowser {
    fn open(&self, url: &str) -> Result<(), String> {
        self.opens.fetch_add(1, Ordering::SeqCst);
        HeadlessBrowser.open(url)
    }
}

fn library_session(
    home: &Path,
    server: &DemoServer,
) -> (
    Arc<mcp_oauth_host::Session>,
    Arc<CountingPrompter>,
    Arc<CountingBrowser>,
) {
    let prompter = Arc::new(CountingPrompter {
        consents: AtomicUsize::new(0),
    });
    let browser = Arc::new(CountingBrowser {
        opens: AtomicUsize::new(0),
    });
    let rt = Runtime::new(RuntimeOptions {
        home: home.to_path_buf(),
        ..RuntimeOptions::default()
    })
    .unwrap();
    let io = SessionIo {
        prompter: prompter.clone(),
        browser: browser.clone(),
        callback: CallbackOptions::default(),
        signer: None,
    };
    (
        Arc::new(rt.session(&server.mcp_url(), Config::default(), io).unwrap()),
        prompter,
        browser,
    )
}

const LIST: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;

// 4b: through the authorized client, 4 concurrent requests → one consent
// prompt, one browser open, all Declined; later requests fail fast; after
// retry() a fresh flow succeeds.
#[test]
fn concurrent_requests_share_one_declined_flow_until_retry() {
    let server = DemoServer::start(Faults {
        deny: true,
        ..Faults::default()
    })
    .unwrap();
    let home = temp_home("e2e-latch");
    let (session, prompter, browser) = library_session(&home, &server);
    let client = AuthorizedClient::new(session, Default::default());
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let c = client.clone();
            let url = server.mcp_url();
            std::thread::spawn(move || c.post_json(&url, LIST))
        })
        .collect();
    for h in handles {
        let r = h.join().unwrap();
        assert!(matches!(r, Err(Error::Auth(AuthError::Declined))), "{r:?}");
    }
    assert_eq!(prompter.consents.load(Ordering::SeqCst), 1);
    assert_eq!(browser.opens.load(Ordering::SeqCst), 1);
    let before = server.log().len();
    assert!(matches!(
        client.post_json(&server.mcp_url(), LIST),
        Err(Error::Auth(AuthError::Declined))
    ));
    assert_eq!(server.log().len(), before, "a latched request fails fast, without HTTP");
    server.set_faults(|f| f.deny = false);
    client.retry().unwrap();
    let r = client.post_json(&server.mcp_url(), LIST).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        (
            prompter.consents.load(Ordering::SeqCst),
            browser.opens.load(Ordering::SeqCst)
        ),
        (2, 2)
    );
}

// 4c: concurrent cold requests that succeed also share one flow.
#[test]
fn concurrent_cold_requests_cause_one_flow() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = temp_home("e2e-single");
    let (session, prompter, browser) = library_session(&home, &server);
    let client = AuthorizedClient::new(session, Default::default());
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let c = client.clone();
            let url = server.mcp_url();
            std::thread::spawn(move || c.post_json(&url, LIST).map(|r| r.status))
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().unwrap(), 200);
    }
    assert_eq!(
        (
            prompter.consents.load(Ordering::SeqCst),
            browser.opens.load(Ordering::SeqCst)
        ),
        (1, 1)
    );
    assert_eq!(server.count("/token"), 1);
}

// 5: a 401 in the middle of a session → one re-authorization, the request succeeds.
#[test]
fn unauthorized_mid_session_reauthorizes_once() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = temp_home("e2e-mid401");
    let (session, _p, browser) = library_session(&home, &server);
    let client = AuthorizedClient::new(session, Default::default());
    assert_eq!(client.post_json(&server.mcp_url(), LIST).unwrap().status, 200);
    server.revoke_all();
    assert_eq!(client.post_json(&server.mcp_url(), LIST).unwrap().status, 200);
    assert_eq!(browser.opens.load(Ordering::SeqCst), 2, "one re-authorization");
    assert_eq!(server.count("/authorize"), 2);
}

// 5b: a long-lived client meets a 401 again and again (access tokens
// revoked, refresh tokens good): each is answered with a refresh, because
// the 2xx after each retry re-arms the engine's once-per-rejection refresh.
#[test]
fn every_mid_session_401_is_answered_with_a_refresh() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = temp_home("e2e-rearm");
    let (session, _p, browser) = library_session(&home, &server);
    let client = AuthorizedClient::new(session, Default::default());
    assert_eq!(client.post_json(&server.mcp_url(), LIST).unwrap().status, 200);
    for round in 1..=3 {
        server.revoke_access_tokens();
        let from = server.log().len();
        assert_eq!(client.post_json(&server.mcp_url(), LIST).unwrap().status, 200);
        assert_eq!(
            server.log()[from..],
            ["POST /mcp", "POST /token", "POST /mcp"],
            "round {round}: refused, refreshed, sent again"
        );
    }
    assert_eq!(browser.opens.load(Ordering::SeqCst), 1, "signed in once");
}

// 6a: a favicon request and a forged-state callback do not end the flow.
#[test]
fn stray_requests_do_not_end_the_flow() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = temp_home("e2e-strays");
    let browser = format!("{BROWSER} --stray-requests");
    let out = Cli::new(&home).browser(&browser).run(&["login", &server.mcp_url()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(tokens_record(&home).is_some());
    assert_eq!(server.count("/token"), 1, "only the real code was exchanged");
}

// 6b: nothing comes back: exit 5 after --timeout. The "browser" here is a
// program that opens nothing.
#[test]
fn no_redirect_times_out_with_exit_5() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = temp_home("e2e-timeout");
    let started = std::time::Instant::now();
    let out = Cli::new(&home)
        .browser("true")
        .run(&["login", &server.mcp_url(), "--timeout", "2"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert!(stderr(&out).contains("timed out"));
}

// 6c: a pinned port that is taken fails at once, naming the port.
#[test]
fn taken_pinned_port_is_a_clear_error() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = temp_home("e2e-port");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = cli(&home, &["login", &server.mcp_url(), "--callback-port", &port]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&port), "{}", stderr(&out));
    assert_eq!(server.count("/authorize"), 0);
}

// 7: paste (an AS without the device grant): a bad paste is refused with
// its reason; a good one completes.
#[test]
fn paste_fallback_rejects_bad_input_then_completes() {
    let server = DemoServer::start(Faults {
        no_device: true,
        ..Faults::default()
    })
    .unwrap();
    let home = temp_home("e2e-paste");
    let mut child = Cli::new(&home)
        .command(&["login", &server.mcp_url(), "--no-browser", "--timeout", "60"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut stdin = child.stdin.take().unwrap();
    let mut seen = String::new();
    let auth_url = loop {
        let mut line = String::new();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "CLI ended before printing the URL: {seen}"
        );
        seen.push_str(&line);
        if let Some(u) = line
            .split_whitespace()
            .find(|w| w.starts_with("http") && w.contains("/authorize?"))
        {
            break u.to_string();
        }
    };
    // The user signs in; the browser's address bar then shows the redirect.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .into();
    let resp = agent.get(&auth_url).call().unwrap();
    let redirect = resp.headers().get("location").unwrap().to_str().unwrap().to_string();
    writeln!(stdin, "this is not a url").unwrap();
    writeln!(stdin, "https://evil.example/callback?code=x&state=y").unwrap();
    writeln!(stdin, "{redirect}").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{seen}{rest}");
    assert!(rest.contains("not a URL"), "{rest}");
    assert!(rest.contains("not the redirect address"), "{rest}");
    assert!(tokens_record(&home).is_some());
}

// 8a: a malicious AS whose endpoints are javascript:, file: or plain http on
// another host is refused before anything opens.
#[test]
fn malicious_endpoints_never_reach_the_browser() {
    for endpoint in [
        "javascript:alert(document.cookie)//",
        "file:///etc/passwd",
        "http://evil.example/authorize",
    ] {
        let server = DemoServer::start(Faults {
            authorization_endpoint: Some(endpoint.to_string()),
            ..Faults::default()
        })
        .unwrap();
        let home = temp_home("e2e-evil");
        let record = home.join("argv");
        let browser = format!("{BROWSER} --record {}", record.display());
        let out = Cli::new(&home).browser(&browser).run(&["login", &server.mcp_url()]);
        assert_eq!(out.status.code(), Some(1), "{endpoint}: {}", stderr(&out));
        assert!(stderr(&out).contains("refused"), "{}", stderr(&out));
        assert!(!record.exists(), "{endpoint} reached the browser");
    }
}

// 8b: a URL full of shell metacharacters reaches $BROWSER as one argument,
// unchanged, and no shell runs it.
#[test]
fn shell_metacharacters_reach_the_browser_as_one_argument() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = temp_home("e2e-meta");
    let marker = home.join("pwned");
    let evil = format!(
        "{}/authorize;$(touch${{IFS}}{});`id`|x&y",
        server.base(),
        marker.display()
    );
    server.set_faults(|f| f.authorization_endpoint = Some(evil.clone()));
    let record = home.join("argv");
    let browser = format!("{BROWSER} --record {}", record.display());
    let _ = Cli::new(&home)
        .browser(&browser)
        .run(&["login", &server.mcp_url(), "--timeout", "3"]);
    let argv = std::fs::read_to_string(&record).expect("the browser was run");
    let lines: Vec<&str> = argv.lines().collect();
    assert_eq!(lines.len(), 1, "one argument: {argv:?}");
    // The endpoint arrives exactly as the server wrote it, metacharacters and
    // all, followed by the engine's query.
    let expected_prefix = format!("{evil}?response_type=code&");
    assert!(
        lines[0].starts_with(&expected_prefix),
        "{} vs {expected_prefix}",
        lines[0]
    );
    assert!(!marker.exists(), "a shell ran the URL");
}

// 9a: storage is private; a corrupt record reads as absent; a stray temp file
// from a crashed write does not disturb.
#[cfg(unix)]
#[test]
fn storage_permissions_corruption_and_crashes() {
    use std::os::unix::fs::PermissionsExt;
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = temp_home("e2e-store");
    assert!(cli(&home, &["login", &server.mcp_url()]).status.success());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&home), 0o700);
    for e in std::fs::read_dir(&home).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "json") {
            assert_eq!(mode(&e.path()), 0o600, "{}", e.path().display());
        }
    }
    // A crashed write leaves a temp file next to the record: ignored.
    std::fs::write(home.join(".tokens-x.1.0000000000000001.tmp"), b"{\"half").unwrap();
    assert!(cli(&home, &["token", &server.mcp_url()]).status.success());
    // Corrupt the token record: it reads as absent (exit 3), with a warning, no crash.
    for e in std::fs::read_dir(&home).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        if n.starts_with("tokens-") && n.ends_with(".json") {
            std::fs::write(e.path(), b"{\"v\":1,\"rec").unwrap();
        }
    }
    let out = cli(&home, &["token", &server.mcp_url()]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("corrupt"), "{}", stderr(&out));
    // Logging in again repairs it.
    assert!(cli(&home, &["login", &server.mcp_url()]).status.success());
    assert!(cli(&home, &["token", &server.mcp_url()]).status.success());
}

// 9b: two processes refreshing at once keep a working refresh token.
#[test]
fn two_processes_refreshing_at_once_keep_a_working_refresh_token() {
    let server = DemoServer::start(Faults {
        access_ttl_secs: Some(2), // stale after 1 s
        ..Faults::default()
    })
    .unwrap();
    let home = temp_home("e2e-race");
    assert!(cli(&home, &["login", &server.mcp_url()]).status.success());
    for _ in 0..3 {
        std::thread::sleep(std::time::Duration::from_millis(1_100));
        let spawn = || {
            Cli::new(&home)
                .command(&["token", &server.mcp_url()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        assert!(
            a.status.success() && b.status.success(),
            "{} {}",
            stderr(&a),
            stderr(&b)
        );
    }
    assert!(!server.reuse_detected(), "a rotated refresh token was spent twice");
    let out = cli(&home, &["token", &server.mcp_url()]);
    assert!(
        out.status.success(),
        "the stored refresh token still works: {}",
        stderr(&out)
    );
}

// 10: a guest trap leaves the host running and the next call working; nothing
// stored is lost.
#[test]
fn a_guest_trap_is_survived() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = temp_home("e2e-trap");
    let (session, _p, _b) = library_session(&home, &server);
    session.authorize(Mode::Interactive).unwrap();
    session.set_fuel_per_call(1_000);
    let r = session.authorize(Mode::Silent);
    assert!(matches!(r, Err(Error::Trapped(_))), "{r:?}");
    session.set_fuel_per_call(RuntimeOptions::default().fuel_per_call);
    let t = session.authorize(Mode::Silent).unwrap();
    assert!(t.token.starts_with("at-"));
    assert_eq!(server.count("/authorize"), 1, "the stored token survived the trap");
}

// The CLI contract: usage errors exit 2 and help names the environment.
#[test]
fn usage_and_help() {
    let out = Command::new(CLI).arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(CLI).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("MCP_OAUTH_HOME") && help.contains("BROWSER") && help.contains("5 timed out"),
        "{help}"
    );
}

// Two flows at once (two servers) get two listeners and both complete.
#[test]
fn two_servers_authorize_at_the_same_time() {
    let a = DemoServer::start(Faults::default()).unwrap();
    let b = DemoServer::start(Faults::default()).unwrap();
    let home = temp_home("e2e-two");
    let (sa, _, browser_a) = library_session(&home, &a);
    let (sb, _, browser_b) = library_session(&home, &b);
    let ta = std::thread::spawn(move || sa.authorize(Mode::Interactive).map(|t| t.token));
    let tb = std::thread::spawn(move || sb.authorize(Mode::Interactive).map(|t| t.token));
    let (ta, tb) = (ta.join().unwrap().unwrap(), tb.join().unwrap().unwrap());
    assert_eq!(mcp_accepts(&a, &ta), 200);
    assert_eq!(mcp_accepts(&b, &tb), 200);
    assert_eq!(mcp_accepts(&a, &tb), 401, "each token is for its own server");
    assert_eq!(
        (
            browser_a.opens.load(Ordering::SeqCst),
            browser_b.opens.load(Ordering::SeqCst)
        ),
        (1, 1)
    );
}

// The MCP client over Streamable HTTP, authorized through the engine:
// initialize, tools/list, tools/call; the 401 on the first request goes to the
// engine and the request is retried with the new token.
#[test]
fn mcp_client_initializes_lists_and_calls_tools() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = temp_home("e2e-mcp");
    let (session, _, browser) = library_session(&home, &server);
    let mcp = mcp_oauth_host::mcp::McpClient::new(
        AuthorizedClient::new(session, Default::default()),
        &server.mcp_url(),
        "e2e",
    );
    let init = mcp.initialize().unwrap();
    assert_eq!(init["protocolVersion"], "2025-11-25");
    let tools = mcp.list_tools().unwrap();
    assert_eq!(tools[0]["name"], "echo");
    let out = mcp.call_tool("echo", serde_json::json!({"text": "hi"})).unwrap();
    assert_eq!(out["content"][0]["text"], "hi");
    assert_eq!(browser.opens.load(Ordering::SeqCst), 1);
    // A 401 later in the session goes to the engine too.
    server.revoke_all();
    assert_eq!(mcp.list_tools().unwrap().len(), 1);
    assert_eq!(browser.opens.load(Ordering::SeqCst), 2);
}
