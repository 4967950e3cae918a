//! A headless browser to use as `$BROWSER` where no person is at hand (CI,
//! tests, unattended agents): follows the authorization server's redirects to
//! the loopback callback.
//!
//!     mcp-oauth-headless-browser [--stray-requests] [--junk N] [--record FILE] URL
//!
//! `--stray-requests` first sends what real browsers and attackers send to a
//! loopback listener: a favicon request and a callback with a forged `state`.
//! `--junk N` first floods it with N requests at once (favicons, forged and
//! empty callbacks, POSTs, TLS bytes, silent sockets), as a hostile page or
//! local process could, and waits for their answers.
//! `--record FILE` writes every argument received, one per line, to FILE.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut strays = false;
    let mut junk = 0usize;
    let mut record: Option<String> = None;
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--stray-requests" => strays = true,
            "--record" => record = it.next().cloned(),
            "--junk" => junk = it.next().and_then(|n| n.parse().ok()).unwrap_or(0).min(10_000),
            _ => rest.push(a.clone()),
        }
    }
    if let Some(path) = record {
        let _ = std::fs::write(&path, rest.join("\n"));
    }
    let Some(url) = rest.last() else {
        eprintln!("usage: mcp-oauth-headless-browser [--stray-requests] [--junk N] [--record FILE] URL");
        return ExitCode::from(2);
    };
    if strays && let Some(redirect) = redirect_uri_of(url) {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let base = redirect.trim_end_matches("/callback");
        let _ = agent.get(&format!("{base}/favicon.ico")).call();
        let _ = agent.get(&format!("{redirect}?code=forged&state=forged")).call();
    }
    if junk > 0
        && let Some(port) = redirect_uri_of(url).and_then(|r| url::Url::parse(&r).ok()?.port())
    {
        flood(port, junk);
    }
    match mcp_oauth_demo::headless::follow(url) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-oauth-headless-browser: {e}");
            ExitCode::from(1)
        }
    }
}

fn redirect_uri_of(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    u.query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.into_owned())
}

/// Sends `n` junk requests to 127.0.0.1:`port` at once and waits for each
/// answer (or a closed socket, at most 10 s each).
fn flood(port: u16, n: usize) {
    use std::io::{Read, Write};
    const JUNK: [&[u8]; 6] = [
        b"GET /favicon.ico HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /callback?junk HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"POST /callback?code=x&state=y HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"GET /callback?code=forged&state=forged HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"",
    ];
    let threads: Vec<_> = (0..n)
        .map(|i| {
            std::thread::spawn(move || {
                let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                    return;
                };
                let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(10)));
                let _ = s.write_all(JUNK[i % JUNK.len()]);
                let mut sink = Vec::new();
                let _ = s.read_to_end(&mut sink);
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}
