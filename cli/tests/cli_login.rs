//! `mcp-oauth login` as a person at a terminal meets it, against the local
//! demo server: the URL shown as the browser opens, extra authorization
//! parameters, an SSH session with no display, Ctrl-C, and the machine
//! grants' flags.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStderr, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mcp_oauth_demo::server::{DemoServer, Faults};
use support::{BROWSER, Cli, cli, temp_home};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Names of the records in the store (files and the locks directory's).
fn store_files(home: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for dir in [home.to_path_buf(), home.join("locks")] {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.path().is_file() {
                out.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// Reads stderr lines until one satisfies `done`; returns all read so far.
fn read_until(err: &mut BufReader<ChildStderr>, done: impl Fn(&str) -> bool) -> String {
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "the CLI ended early; stderr so far:\n{seen}"
        );
        seen.push_str(&line);
        if done(&line) {
            return seen;
        }
    }
}

fn authorize_url(text: &str) -> String {
    text.split_whitespace()
        .find(|w| w.starts_with("http") && w.contains("/authorize?"))
        .expect("an authorization URL")
        .to_string()
}

/// Where the AS sends the browser back (what the address bar shows).
fn redirect_of(auth_url: &str) -> String {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .into();
    let resp = agent.get(auth_url).call().unwrap();
    resp.headers().get("location").unwrap().to_str().unwrap().to_string()
}

fn wait_with_deadline(child: &mut Child, secs: u64) -> std::process::ExitStatus {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("the CLI did not end within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// The URL is on stderr as the browser opens ("if it didn't open, visit"),
// and --authorize-param reaches the AS after the engine's parameters.
#[test]
fn login_shows_the_url_and_sends_extra_parameters() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = temp_home("cli-url");
    let record = home.join("opened.txt");
    let browser = format!("{BROWSER} --record {}", record.display());
    let out = Cli::new(&home).browser(&browser).run(&[
        "login",
        &server.mcp_url(),
        "--authorize-param",
        "audience=https://api.example/",
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let opened = std::fs::read_to_string(&record).unwrap();
    assert!(err.contains("If it didn't open, visit:"), "{err}");
    assert!(err.contains(opened.trim()), "the URL shown is the one opened:\n{err}");
    assert!(
        opened.trim().ends_with("&audience=https%3A%2F%2Fapi.example%2F"),
        "{opened}"
    );
    assert_eq!(opened.matches("state=").count(), 1);
}

// A parameter the engine sets is refused before anything is sent: exit 2,
// naming it; a malformed one is a usage error from the flag parser.
#[test]
fn authorize_params_never_override_the_engines() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = temp_home("cli-reserved");
    let out = cli(&home, &["login", &server.mcp_url(), "--authorize-param", "state=mine"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("'state' is set by the engine"),
        "{}",
        stderr(&out)
    );
    assert!(server.log().is_empty(), "{:?}", server.log());
    let out = cli(&home, &["login", &server.mcp_url(), "--authorize-param", "nothing"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("name=value"), "{}", stderr(&out));
}

// In an SSH session with no display and an AS without the device grant,
// login opens nothing, shows the URL, and asks plainly for the address the
// browser lands on, on its own line.
#[test]
fn ssh_without_a_display_asks_for_the_address_pasted_back() {
    let server = DemoServer::start(Faults {
        no_device: true,
        ..Faults::default()
    })
    .unwrap();
    let home = temp_home("cli-ssh");
    let mut child = Cli::new(&home)
        .env("SSH_CONNECTION", "10.0.0.2 50000 10.0.0.1 22")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("BROWSER")
        .command(&["login", &server.mcp_url(), "--timeout", "60"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let seen = read_until(&mut err, |l| l.contains("paste"));
    assert!(seen.contains("SSH session with no display"), "{seen}");
    assert!(
        seen.ends_with("Then paste the address your browser lands on here:\n"),
        "{seen}"
    );
    let redirect = redirect_of(&authorize_url(&seen));
    writeln!(child.stdin.take().unwrap(), "{redirect}").unwrap();
    let status = wait_with_deadline(&mut child, 60);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert!(status.success(), "{seen}{rest}");
    assert!(rest.contains("Logged in"), "{rest}");
    assert!(
        !rest.contains("waiting for the browser"),
        "no spinner over the paste line: {rest}"
    );
}

// Ctrl-C while waiting for the browser: the listener closes, exit 130, and
// neither tokens, a profile nor a lock is left behind.
#[cfg(unix)]
#[test]
fn ctrl_c_stops_the_wait_with_exit_130() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = temp_home("cli-ctrlc");
    // A browser that "opens" and never comes back.
    let mut child = Cli::new(&home)
        .browser("true")
        .command(&["login", &server.mcp_url(), "--timeout", "60"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let seen = read_until(&mut err, |l| l.contains("/authorize?"));
    let url = authorize_url(&seen);
    let redirect_uri = url::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let port = url::Url::parse(&redirect_uri).unwrap().port().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let status = wait_with_deadline(&mut child, 10);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert_eq!(status.code(), Some(130), "{seen}{rest}");
    assert!(rest.contains("stopped (Ctrl-C)"), "{rest}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the listener is closed"
    );
    let files = store_files(&home);
    assert!(
        !files
            .iter()
            .any(|f| f.starts_with("tokens-") || f.starts_with("cli-profile-") || f.ends_with(".lock")),
        "{files:?}"
    );
}

// `login --client-credentials` gets tokens with no browser; `token` then
// prints one the MCP server accepts; a missing key file is a usage error.
#[test]
fn client_credentials_login_and_token() {
    let server = DemoServer::start(Faults::default()).unwrap();
    server.preregister("svc-1", "svc-secret");
    let home = temp_home("cli-cc");
    let url = server.mcp_url();
    let out = Cli::new(&home)
        .env("MCP_OAUTH_CLIENT_SECRET", "svc-secret")
        .browser("false")
        .run(&["login", &url, "--client-credentials", "--client-id", "svc-1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.count("/authorize"), 0);
    assert!(!stderr(&out).contains("svc-secret"));
    let out = Cli::new(&home).browser("false").run(&["token", &url]);
    assert!(out.status.success(), "{}", stderr(&out));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let status = agent
        .post(&url)
        .header("authorization", &format!("Bearer {token}"))
        .header("content-type", "application/json")
        .send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 200);

    let out = Cli::new(&home).browser("false").run(&[
        "login",
        &url,
        "--client-credentials",
        "--client-id",
        "svc-1",
        "--private-key",
        "/nonexistent/k.pem",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("/nonexistent/k.pem"), "{}", stderr(&out));
    let out = Cli::new(&home)
        .browser("false")
        .run(&["login", &url, "--id-token-file", "/tmp/x"]);
    assert_eq!(out.status.code(), Some(2), "--id-token-file needs --idp-token-endpoint");
}

// Workload identity (SEP-1933): the JWT is read from its file at login and
// again by `token`; it never shows in the output.
#[test]
fn workload_identity_login_reads_the_token_file() {
    const JWT: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ3b3JrbG9hZC0xIn0.c2lnbmF0dXJl";
    let server = DemoServer::start(Faults::default()).unwrap();
    server.preregister("wl-1", "wl-secret");
    server.accept_workload_jwt(JWT);
    let home = temp_home("cli-wif");
    let token_file = home.join("workload.jwt");
    std::fs::write(&token_file, format!("{JWT}\n")).unwrap();
    let url = server.mcp_url();
    let out = Cli::new(&home)
        .env("MCP_OAUTH_CLIENT_SECRET", "wl-secret")
        .browser("false")
        .command(&["login", &url, "--client-id", "wl-1", "--workload-token-file"])
        .arg(&token_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.count("/authorize"), 0);
    assert!(!stderr(&out).contains(JWT));
    let profile: Vec<String> = store_files(&home)
        .into_iter()
        .filter(|f| f.starts_with("cli-profile-"))
        .collect();
    let text = std::fs::read_to_string(home.join(&profile[0])).unwrap();
    assert!(!text.contains(JWT), "the profile keeps the path, not the token");
    // `token` reads the profile and prints the stored token, not the JWT.
    let out = Cli::new(&home).browser("false").run(&["token", &url]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(JWT));
}

// A CA bundle that cannot be read is the user's to fix: exit 2, naming it.
#[test]
fn an_unreadable_ca_bundle_is_a_usage_error() {
    let home = temp_home("cli-ca");
    let bad = home.join("not-a-bundle.pem");
    std::fs::write(&bad, "hello").unwrap();
    for args in [
        vec![
            "login",
            "https://mcp.example.com/mcp",
            "--ca-file",
            bad.to_str().unwrap(),
        ],
        vec!["token", "https://mcp.example.com/mcp"],
    ] {
        let out = Cli::new(&home).env("SSL_CERT_FILE", &bad).run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("holds no PEM certificate"), "{}", stderr(&out));
    }
}

/// A stand-in for a corporate HTTP proxy: records the first request line of
/// each connection (up to a deadline) and answers 502.
fn recording_proxy() -> (u16, Arc<AtomicBool>, std::thread::JoinHandle<Vec<String>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let handle = std::thread::spawn(move || {
        let mut lines = Vec::new();
        let end = Instant::now() + Duration::from_secs(8);
        while Instant::now() < end && lines.is_empty() && !stopped.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut reader = BufReader::new(stream);
                    let mut line = String::new();
                    let _ = reader.read_line(&mut line);
                    lines.push(line.trim_end().to_string());
                    let _ = reader
                        .get_mut()
                        .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        lines
    });
    (port, stop, handle)
}

// HTTPS_PROXY / HTTP_PROXY route the CLI's requests through the proxy;
// NO_PROXY exempts a host.
#[test]
fn proxy_variables_are_followed_and_no_proxy_exempts() {
    let home = temp_home("cli-proxyenv");
    for (no_proxy, expect_seen) in [("", true), ("127.0.0.1", false)] {
        let (port, stop, proxy) = recording_proxy();
        let out = Cli::new(&home)
            .env("HTTPS_PROXY", format!("http://127.0.0.1:{port}"))
            .env("NO_PROXY", no_proxy)
            .env("MCP_OAUTH_HTTP_TIMEOUT", "5")
            .browser("false")
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy")
            .run(&["login", "http://127.0.0.1:9/mcp", "--timeout", "5"]);
        assert!(!out.status.success());
        stop.store(true, Ordering::SeqCst);
        let seen = proxy.join().unwrap();
        if expect_seen {
            assert!(
                seen.iter()
                    .any(|l| l.starts_with("POST http://127.0.0.1:9/mcp") || l.starts_with("CONNECT 127.0.0.1:9")),
                "the proxy saw {seen:?}; stderr: {}",
                stderr(&out)
            );
        } else {
            assert!(seen.is_empty(), "NO_PROXY=127.0.0.1 but the proxy saw {seen:?}");
        }
    }
}
