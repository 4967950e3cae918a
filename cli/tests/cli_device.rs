//! Sign-in without a local browser (the device authorization grant, RFC
//! 8628), logout that revokes (RFC 7009), and the page the browser lands on,
//! through the CLI against the demo server (which offers both grants and
//! revocation; its "user on another device" approves after two polls).

mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use mcp_oauth_demo::server::{DemoServer, Faults};
use support::{Cli, cli, temp_home};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The CLI's stderr up to and including the first line holding `needle`.
fn read_until(err: &mut BufReader<std::process::ChildStderr>, needle: &str) -> String {
    let mut seen = String::new();
    while !seen.contains(needle) {
        let mut line = String::new();
        assert!(err.read_line(&mut line).unwrap() > 0, "ended early: {seen}");
        seen.push_str(&line);
    }
    seen
}

fn demo(faults: Faults) -> DemoServer {
    DemoServer::start(faults).unwrap()
}

// `login --device`: the address and the code on stderr, on lines of their
// own; no browser, no listener; then `token` works silently.
#[test]
fn login_with_a_device_code() {
    let server = demo(Faults::default());
    let home = temp_home("device-login");
    let out = Cli::new(&home)
        .browser("false")
        .run(&["login", &server.mcp_url(), "--device"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("\n  open  {}/device\n", server.base())), "{err}");
    assert!(err.contains("\n  code  WDJB-MJHT\n"), "{err}");
    assert!(err.contains("expires in 5 min"), "{err}");
    assert_eq!(server.count("/authorize"), 0, "{:?}", server.log());
    assert_eq!(server.count("/device_authorization"), 1);
    assert_eq!(server.count("/token"), 3, "two pending polls, then the token");
    let t = cli(&home, &["token", &server.mcp_url()]);
    assert!(t.status.success(), "{}", stderr(&t));
    assert_eq!(server.count("/token"), 3, "the stored token is used");
}

// An SSH session with no display uses the device grant when it is offered:
// no paste prompt.
#[test]
fn ssh_without_a_display_uses_the_device_grant() {
    let server = demo(Faults::default());
    let home = temp_home("device-ssh");
    let out = Cli::new(&home)
        .env("SSH_CONNECTION", "10.0.0.2 50000 10.0.0.1 22")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("BROWSER")
        .run(&["login", &server.mcp_url(), "--timeout", "30"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("  code  WDJB-MJHT"), "{err}");
    assert!(!err.contains("paste"), "{err}");
    assert_eq!(server.count("/authorize"), 0);
}

// Denied on the other device: a decline (the CLI says so), nothing stored.
#[test]
fn a_denied_device_code_is_a_decline() {
    let server = demo(Faults {
        deny: true,
        ..Faults::default()
    });
    let home = temp_home("device-deny");
    let out = cli(&home, &["login", &server.mcp_url(), "--device"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.to_lowercase().contains("declined"), "{err}");
    let t = cli(&home, &["token", &server.mcp_url()]);
    assert!(!t.status.success());
}

// Nobody enters the code: the wait ends at --timeout, with a message that
// says so.
#[test]
fn a_code_nobody_enters_times_out() {
    let server = demo(Faults {
        device_never_approved: true,
        ..Faults::default()
    });
    let home = temp_home("device-timeout");
    let started = Instant::now();
    let out = cli(&home, &["login", &server.mcp_url(), "--device", "--timeout", "3"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(err.contains("timed out"), "{err}");
    assert!(server.count("/token") <= 4, "{:?}", server.log());
}

// Ctrl-C while waiting for the code: exit 130, nothing stored.
#[cfg(unix)]
#[test]
fn ctrl_c_stops_the_device_wait_with_exit_130() {
    let server = demo(Faults {
        device_never_approved: true,
        ..Faults::default()
    });
    let home = temp_home("device-ctrlc");
    let mut child = Cli::new(&home)
        .command(&["login", &server.mcp_url(), "--device", "--timeout", "60"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let seen = read_until(&mut err, "  code  ");
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < end, "did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    assert_eq!(status.code(), Some(130), "{seen}{rest}");
    assert!(!cli(&home, &["token", &server.mcp_url()]).status.success());
}

// `logout` revokes the refresh token, then the access token, and says so;
// the revoked grant cannot be refreshed; `--local` sends nothing.
#[test]
fn logout_revokes_at_the_authorization_server() {
    let server = demo(Faults::default());
    let home = temp_home("logout-revoke");
    assert!(cli(&home, &["login", &server.mcp_url()]).status.success());
    let out = cli(&home, &["logout", &server.mcp_url()]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Revoked the refresh token and the access token"), "{err}");
    assert_eq!(server.count("/revoke"), 2);
    // Signed in again, then a local logout: no revocation request.
    assert!(cli(&home, &["login", &server.mcp_url()]).status.success());
    let out = cli(&home, &["logout", &server.mcp_url(), "--local"]);
    assert!(out.status.success());
    assert_eq!(server.count("/revoke"), 2);
    assert!(!cli(&home, &["token", &server.mcp_url()]).status.success());
}

// A revocation the AS refuses is reported; the tokens go anyway (exit 0).
#[test]
fn a_failed_revocation_is_reported_and_the_tokens_still_go() {
    let server = demo(Faults::default());
    let home = temp_home("logout-fail");
    assert!(cli(&home, &["login", &server.mcp_url()]).status.success());
    server.forget_registered_clients();
    let out = cli(&home, &["logout", &server.mcp_url()]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("could not revoke") && err.contains("invalid_client"),
        "{err}"
    );
    assert!(err.contains("Logged out"), "{err}");
    assert!(!cli(&home, &["token", &server.mcp_url()]).status.success());
}

/// The browser's side of a sign-in: the authorization URL the CLI printed
/// (its `BROWSER` does nothing), the AS's redirect, then the loopback page.
fn browse(seen: &str) -> (u16, Vec<(String, String)>, String) {
    let url = seen
        .split_whitespace()
        .find(|w| w.starts_with("http") && w.contains("/authorize?"))
        .expect("an authorization URL");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .into();
    let location = agent.get(url).call().unwrap().headers()["location"]
        .to_str()
        .unwrap()
        .to_string();
    let mut resp = agent.get(&location).call().unwrap();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    (
        resp.status().as_u16(),
        headers,
        resp.body_mut().read_to_string().unwrap(),
    )
}

fn sign_in_page(faults: Faults) -> (bool, u16, Vec<(String, String)>, String, String) {
    let server = demo(faults);
    let home = temp_home("pages");
    let mut child = Cli::new(&home)
        .browser("true")
        .command(&["login", &server.mcp_url(), "--timeout", "30"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let seen = read_until(&mut err, "/authorize?");
    let (status, headers, body) = browse(&seen);
    let ok = child.wait().unwrap().success();
    (ok, status, headers, body, server.mcp_url())
}

// The tab that brought the redirect learns the outcome, from the engine's
// one template, with a policy that allows nothing but its own style.
#[test]
fn the_browser_tab_gets_the_outcome() {
    let (ok, status, headers, body, mcp) = sign_in_page(Faults::default());
    assert!(ok);
    assert_eq!(status, 200);
    assert!(body.contains("Signed in") && body.contains(&mcp), "{body}");
    let header = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    assert!(
        header("content-security-policy")
            .unwrap()
            .starts_with("default-src 'none'; style-src 'sha256-")
    );
    assert_eq!(header("cache-control").as_deref(), Some("no-store"));
    let (ok, _, _, body, _) = sign_in_page(Faults {
        deny: true,
        ..Faults::default()
    });
    assert!(!ok);
    assert!(body.contains("declined"), "{body}");
    let (ok, _, _, body, _) = sign_in_page(Faults {
        token_error: true,
        ..Faults::default()
    });
    assert!(!ok);
    assert!(body.contains("failed") && body.contains("invalid_grant"), "{body}");
}
