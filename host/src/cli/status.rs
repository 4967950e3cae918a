//! `mcp-oauth status [<url>] [--json]`: issuer, client id, scopes, expiry;
//! never a secret.

use mcp_oauth_host::storage::{FileStore, default_home};
use mcp_oauth_host::{Error, Status};

use super::profile::{load_profile, records_config};
use super::{Failure, http_options, human_expiry, open_session, quiet_io, runtime};

/// Every field may come from a server: each is made printable.
pub(crate) fn print_status(s: &Status) {
    use mcp_oauth_host::terminal::printable as p;
    println!("{}", p(&s.server_url));
    let or_none = |v: &Option<String>| p(v.as_deref().unwrap_or("-")).into_owned();
    println!("  issuer:      {}", or_none(&s.issuer));
    println!("  client id:   {}", or_none(&s.client_id));
    println!(
        "  scopes:      {}",
        if s.scopes.is_empty() {
            "-".into()
        } else {
            p(&s.scopes.join(" ")).into_owned()
        }
    );
    println!(
        "  token:       {}",
        if s.has_token {
            format!("stored, expires {}", human_expiry(s.expires_at))
        } else {
            "none".into()
        }
    );
    println!("  can refresh: {}", if s.can_refresh { "yes" } else { "no" });
}

fn status_json(s: &Status) -> serde_json::Value {
    serde_json::json!({
        "server_url": s.server_url,
        "resource": s.resource,
        "issuer": s.issuer,
        "client_id": s.client_id,
        "scopes": s.scopes,
        "expires_at": s.expires_at,
        "has_token": s.has_token,
        "can_refresh": s.can_refresh,
        "legacy": s.legacy,
    })
}

pub(crate) fn status(url: Option<String>, json: bool) -> Result<(), Failure> {
    let home = default_home();
    let store = FileStore::open(&home).map_err(|e| Error::Setup(e.to_string()))?;
    let urls = match url {
        Some(u) => vec![u],
        None => store.known_servers(),
    };
    if urls.is_empty() {
        if json {
            println!("[]");
        } else {
            eprintln!("No servers yet. Log in with: mcp-oauth login <url>");
        }
        return Ok(());
    }
    let rt = runtime(home, http_options(None)?)?;
    let mut all = Vec::new();
    for u in urls {
        let session = open_session(&rt, &u, records_config(&load_profile(&store, &u)), quiet_io())?;
        all.push(session.status()?);
    }
    if json {
        let v: Vec<_> = all.iter().map(status_json).collect();
        let json = serde_json::to_string_pretty(&v).unwrap_or_default();
        println!("{}", mcp_oauth_host::terminal::json_safe(&json));
    } else {
        for s in &all {
            print_status(s);
        }
    }
    Ok(())
}
