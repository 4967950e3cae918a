//! `mcp-oauth token <url>`: prints a valid access token (refreshing, or
//! running the stored machine grant again, if needed) and nothing else;
//! `--json` adds its type, expiry and scopes. `mcp-oauth headers <url>`:
//! the `Authorization` header for a request, with a fresh `DPoP` proof when
//! the token is DPoP-bound (a bound token is useless alone). Never
//! interactive.

use mcp_oauth_host::client::authorization;
use mcp_oauth_host::storage::default_home;
use mcp_oauth_host::{Mode, Session, SessionIo};

use super::profile::{config_from, load_profile};
use super::{Failure, http_options, open_session, quiet_io, runtime};

fn session(url: &str) -> Result<Session, Failure> {
    let home = default_home();
    let rt = runtime(home, http_options(None)?)?;
    let (config, signer) = config_from(&load_profile(&*rt.store(), url))?;
    let io = SessionIo { signer, ..quiet_io() };
    open_session(&rt, url, config, io)
}

pub(crate) fn token(url: &str, json: bool) -> Result<(), Failure> {
    let t = session(url)?.authorize(Mode::Silent)?;
    if json {
        let v = serde_json::json!({
            "access_token": t.token,
            "token_type": if t.dpop { "DPoP" } else { "Bearer" },
            "expires_at": t.expires_at,
            "scope": t.scopes.join(" "),
        });
        // The token is b64token syntax (checked by the engine); scopes are
        // the server's: escaped for the terminal.
        println!("{}", mcp_oauth_host::terminal::json_safe(&v.to_string()));
    } else {
        println!("{}", t.token);
    }
    Ok(())
}

pub(crate) fn headers(url: &str, method: &str, request_url: Option<&str>) -> Result<(), Failure> {
    let method = method.to_ascii_uppercase();
    if method.is_empty() || method.len() > 16 || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Failure::Usage(format!("--method {method:?} is not an HTTP method")));
    }
    let s = session(url)?;
    let t = s.authorize(Mode::Silent)?;
    println!("Authorization: {}", authorization(&t));
    if t.dpop {
        let target = request_url.unwrap_or(url);
        match s.dpop_proof(&method, target)? {
            Some(proof) => println!("DPoP: {proof}"),
            None => return Err(Failure::Usage("the engine made no DPoP proof for this token".into())),
        }
    }
    Ok(())
}
