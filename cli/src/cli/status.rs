//! `mcp-oauth status [<url>] [--json]`: issuer, client id, scopes, expiry;
//! never a secret.

use mcp_oauth_host::Status;
use mcp_oauth_host::storage::Secrets;
use mcp_oauth_host::storage::default_home;

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

/// Where the store keeps its secrets, in words.
fn secrets_line(s: &Secrets) -> String {
    match s {
        Secrets::Plain => "plain files (0600)".into(),
        Secrets::Sealed {
            key_from,
            unreadable: 0,
        } => format!("sealed, the store key in {key_from}"),
        Secrets::Sealed { key_from, unreadable } if key_from.starts_with("the key file") => format!(
            "sealed, the store key in {key_from}; it is not the key this store was sealed with: {unreadable} records cannot be read; sign in again"
        ),
        Secrets::Sealed { key_from, unreadable } => format!(
            "sealed, the store key in {key_from}; the store's key is not in the keychain: {unreadable} records cannot be read; sign in again"
        ),
    }
}

fn secrets_json(s: &Secrets) -> serde_json::Value {
    match s {
        Secrets::Plain => serde_json::json!({ "mode": "plain" }),
        Secrets::Sealed { key_from, unreadable } => {
            serde_json::json!({ "mode": "sealed", "key_from": key_from, "unreadable": unreadable })
        }
    }
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

/// Where the records are: the shared store (never its password) and the
/// user, or the store directory.
fn store_json(home: &std::path::Path) -> serde_json::Value {
    let place = super::place();
    serde_json::json!({
        "shared": place.shown(),
        "user": place.user,
        "dir": if place.url.is_none() { Some(home.display().to_string()) } else { None },
    })
}

fn print_place(home: &std::path::Path) {
    let place = super::place();
    let at = place.shown().unwrap_or_else(|| home.display().to_string());
    let user = place.user.map(|u| format!(" (user {u})")).unwrap_or_default();
    println!(
        "store:         {}",
        mcp_oauth_host::terminal::printable(&format!("{at}{user}"))
    );
}

pub(crate) fn status(url: Option<String>, json: bool) -> Result<(), Failure> {
    let home = default_home();
    let store = super::open_store(&home)?;
    let urls = match url {
        Some(u) => vec![u],
        None => mcp_oauth_host::storage::known_servers(&*store),
    };
    let secrets = store.secrets();
    if urls.is_empty() {
        if json {
            println!("[]");
        } else {
            print_place(&home);
            println!(
                "secrets:       {}",
                mcp_oauth_host::terminal::printable(&secrets_line(&secrets))
            );
            eprintln!("No servers yet. Log in with: mcp-oauth login <url>");
        }
        return Ok(());
    }
    let rt = runtime(home.clone(), http_options(None)?)?;
    let mut all = Vec::new();
    for u in urls {
        let session = open_session(&rt, &u, records_config(&load_profile(&*store, &u)), quiet_io())?;
        all.push(session.status()?);
    }
    if json {
        let v: Vec<_> = all
            .iter()
            .map(|s| {
                let mut v = status_json(s);
                v["secrets"] = secrets_json(&secrets);
                v["store"] = store_json(&home);
                v
            })
            .collect();
        let json = serde_json::to_string_pretty(&v).unwrap_or_default();
        println!("{}", mcp_oauth_host::terminal::json_safe(&json));
    } else {
        print_place(&home);
        println!(
            "secrets:       {}",
            mcp_oauth_host::terminal::printable(&secrets_line(&secrets))
        );
        for s in &all {
            print_status(s);
        }
    }
    Ok(())
}
