//! DPoP (RFC 9449) through the real CLI, the engine component and the host's
//! key store, against the demo servers in DPoP mode: they check every
//! proof's claims and key binding, demand nonces when asked, and refuse a
//! bound token sent as Bearer.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use mcp_oauth_demo::server::{DemoServer, Faults};
use support::{cli, temp_home};

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn key_files(home: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(home)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pem"))
        .collect()
}

// Login binds the grant (the AS and the MCP server both demand a nonce
// first); `token --json` says DPoP; the key is one 0600 file in the store.
#[test]
fn login_with_nonces_binds_the_grant_to_a_stored_key() {
    let server = DemoServer::start(Faults {
        dpop: true,
        dpop_nonce: Some("nonce-1".into()),
        ..Faults::default()
    })
    .unwrap();
    let home = temp_home("dpop-login");
    ok(&cli(&home, &["login", &server.mcp_url()]));
    assert!(server.violations().is_empty(), "{:?}", server.violations());
    // Two token requests (the first answered use_dpop_nonce), two probes.
    assert_eq!(server.count("/token"), 2, "{:?}", server.log());
    let t: serde_json::Value = serde_json::from_str(&ok(&cli(&home, &["token", &server.mcp_url(), "--json"]))).unwrap();
    assert_eq!(t["token_type"], "DPoP");
    let keys = key_files(&home);
    assert_eq!(keys.len(), 1, "{keys:?}");
    let name = keys[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(name.starts_with("dpop-") && name.ends_with(".pem"), "{name}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&keys[0]).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

// `headers` prints what a script needs for one request: `Authorization:
// DPoP ...` and a fresh proof; the MCP server accepts them, and refuses the
// same proof twice (single use).
#[test]
fn headers_give_scripts_a_working_dpop_request() {
    let server = DemoServer::start(Faults {
        dpop: true,
        ..Faults::default()
    })
    .unwrap();
    let home = temp_home("dpop-headers");
    ok(&cli(&home, &["login", &server.mcp_url()]));
    let out = ok(&cli(&home, &["headers", &server.mcp_url()]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let auth = lines[0].strip_prefix("Authorization: ").unwrap();
    let proof = lines[1].strip_prefix("DPoP: ").unwrap();
    assert!(auth.starts_with("DPoP "), "{auth}");
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let call = || {
        agent
            .post(&server.mcp_url())
            .header("authorization", auth)
            .header("dpop", proof)
            .header("content-type", "application/json")
            .send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(call(), 200);
    assert_ne!(call(), 200, "a proof is single-use");
    // The bound token alone, as Bearer, is refused.
    let bearer = agent
        .post(&server.mcp_url())
        .header("authorization", &format!("Bearer {}", auth.trim_start_matches("DPoP ")))
        .header("content-type", "application/json")
        .send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(bearer, 401);
    let bad = cli(&home, &["headers", &server.mcp_url(), "--method", "P0ST"]);
    assert_eq!(bad.status.code(), Some(2));
}

// A Bearer server: `token --json` says Bearer, `headers` prints one line,
// and no key is ever made.
#[test]
fn bearer_servers_get_no_keys() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = temp_home("dpop-bearer");
    ok(&cli(&home, &["login", &server.mcp_url()]));
    let t: serde_json::Value = serde_json::from_str(&ok(&cli(&home, &["token", &server.mcp_url(), "--json"]))).unwrap();
    assert_eq!(t["token_type"], "Bearer");
    let out = ok(&cli(&home, &["headers", &server.mcp_url()]));
    assert_eq!(out.lines().count(), 1);
    assert!(out.starts_with("Authorization: Bearer "));
    assert!(key_files(&home).is_empty());
}
