//! A headless browser to use as `$BROWSER` where no person is at hand (CI,
//! tests, unattended agents): follows the authorization server's redirects to
//! the loopback callback.
//!
//!     mcp-oauth-headless-browser [--stray-requests] [--record FILE] URL
//!
//! `--stray-requests` first sends what real browsers and attackers send to a
//! loopback listener: a favicon request and a callback with a forged `state`.
//! `--record FILE` writes every argument received, one per line, to FILE.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut strays = false;
    let mut record: Option<String> = None;
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--stray-requests" => strays = true,
            "--record" => record = it.next().cloned(),
            _ => rest.push(a.clone()),
        }
    }
    if let Some(path) = record {
        let _ = std::fs::write(&path, rest.join("\n"));
    }
    let Some(url) = rest.last() else {
        eprintln!("usage: mcp-oauth-headless-browser [--stray-requests] [--record FILE] URL");
        return ExitCode::from(2);
    };
    if strays && let Some(redirect) = redirect_uri_of(url) {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let base = redirect.trim_end_matches("/callback");
        let _ = agent.get(&format!("{base}/favicon.ico")).call();
        let _ = agent.get(&format!("{redirect}?code=forged&state=forged")).call();
    }
    match mcp_oauth_host::headless::follow(url) {
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
