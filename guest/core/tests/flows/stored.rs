//! Stored records: a warm start (also after a restart) costs one request and
//! a fresh token none; corrupt records read as absent; logout and status;
//! nothing secret in `Debug`; credentials never cross issuers when the server
//! moves to another authorization server (`session/stored.rs`).

use mcp_oauth_core::*;

use crate::sim::*;

// Round trips: warm = 1 request, also after a restart (new Session, same store).
#[test]
fn warm_after_restart_is_one_request() {
    let mut sim = Sim::new();
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    sim.requests.clear();
    let mut restarted = session();
    sim.call_tool(&mut restarted, Mode::Interactive).unwrap();
    assert_eq!(urls(&sim), [MCP]);
    assert_eq!(sim.opens.len(), 1, "no second browser");
    assert_eq!(sim.consents.len(), 1, "no second prompt");
}

// A stored fresh token is returned with no HTTP at all.
#[test]
fn fresh_token_needs_no_http() {
    let mut sim = Sim::new();
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    sim.requests.clear();
    let out = sim.authorize(&mut s, Mode::Silent).unwrap();
    assert!(matches!(out, Outcome::Token(_)));
    assert!(sim.requests.is_empty());
}

// A session that found nothing stored reads the store again on its next
// call for a token: a sign-in made meanwhile by another process (`mcp-oauth
// login`, a replica) is found, with no request, instead of "authorization
// required" for the rest of the session.
#[test]
fn a_session_that_found_nothing_finds_a_later_sign_in() {
    let mut sim = Sim::new();
    let mut waiting = session();
    assert!(matches!(
        sim.authorize(&mut waiting, Mode::Silent),
        Err(Error::AuthorizationRequired)
    ));
    sim.call_tool(&mut session(), Mode::Interactive).unwrap(); // another process signs in
    sim.requests.clear();
    let out = sim.authorize(&mut waiting, Mode::Silent).unwrap();
    assert!(matches!(out, Outcome::Token(_)));
    assert!(sim.requests.is_empty(), "from the store, no request");
    assert_eq!(sim.opens.len(), 1, "no second browser");
}

/// The MCP server now trusts another AS; the old one refuses everything and
/// its access tokens are revoked.
fn move_to_new_as(sim: &mut Sim) {
    sim.retired_bases.push(ISSUER.into());
    sim.asc.base = "https://new-as.example".into();
    sim.asc.issuer = "https://new-as.example".into();
    sim.asc.claimed_issuer = "https://new-as.example".into();
    sim.asc.metadata_urls = vec!["https://new-as.example/.well-known/oauth-authorization-server".into()];
    sim.revoke_access_tokens();
    sim.requests.clear();
}

// MCP 2026-07-28 "Authorization Server Binding": when the server moves to
// another AS, nothing from the old one is sent to the new one.
#[test]
fn moving_to_another_issuer_reregisters() {
    let mut sim = Sim::new();
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    let old_client = sim.opens[0]
        .split("client_id=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();
    move_to_new_as(&mut sim);
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    // The old refresh token goes only to its own AS (which refuses it); the
    // PRM is read again; the new AS gets a registration of its own.
    assert_eq!(
        urls(&sim),
        [
            MCP,
            TOK,
            PRM_HDR,
            "https://new-as.example/.well-known/oauth-authorization-server",
            "https://new-as.example/register",
            "https://new-as.example/token",
            MCP
        ]
    );
    assert!(!sim.opens[1].contains(&format!("client_id={old_client}&")));
    assert!(sim.opens[1].starts_with("https://new-as.example/authorize"));
}

// SEP-2352: a Client ID Metadata Document URL is portable across
// authorization servers: after a move, no registration anywhere.
#[test]
fn moving_to_another_issuer_keeps_a_metadata_document_client() {
    let mut sim = Sim::new();
    sim.asc.cimd = true;
    let cimd = "https://app.example/client.json";
    let mut s = session_with(Config {
        client_metadata_url: Some(cimd.into()),
        ..Config::default()
    });
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    move_to_new_as(&mut sim);
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    assert_eq!(
        urls(&sim),
        [
            MCP,
            TOK,
            PRM_HDR,
            "https://new-as.example/.well-known/oauth-authorization-server",
            "https://new-as.example/token",
            MCP
        ]
    );
    assert!(sim.opens[1].starts_with("https://new-as.example/authorize"));
    assert!(sim.opens[1].contains("client_id=https%3A%2F%2Fapp.example%2Fclient.json"));
}

#[test]
fn logout_removes_tokens_and_status_reports_no_secret() {
    let mut sim = Sim::new();
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    let mut fresh = session();
    let step = fresh.inspect(sim.now);
    let Outcome::Status(st) = sim.run(&mut fresh, step).unwrap() else {
        panic!()
    };
    assert_eq!(st.issuer.as_deref(), Some(ISSUER));
    assert!(st.has_token && st.can_refresh);
    assert!(st.client_id.as_deref().unwrap().starts_with("client-"));
    assert!(!format!("{st:?}").contains("at-"), "status carries no token");
    assert!(matches!(sim.logout(&mut s), Ok(Outcome::LoggedOut(r)) if r.revoked.is_empty() && r.skipped.is_some()));
    assert!(stored_tokens(&sim).is_none());
    assert_eq!(
        sim.authorize(&mut session(), Mode::Silent),
        Err(Error::AuthorizationRequired)
    );
}

// Corrupt records read as absent: the engine rediscovers instead of failing.
#[test]
fn corrupt_storage_counts_as_absent() {
    let mut sim = Sim::new();
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    for v in sim.store.values_mut() {
        v.truncate(v.len() / 2);
    }
    sim.requests.clear();
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    assert_eq!(urls(&sim), [MCP, PRM_HDR, ASM, REG, TOK, MCP]);
}

// Nothing secret in Debug output of a session mid-flow or of the effects.
#[test]
fn debug_output_has_no_secrets() {
    let mut sim = Sim::new();
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    let tokens = stored_tokens(&sim).unwrap();
    let at = tokens["access_token"].as_str().unwrap();
    let rt = tokens["refresh_token"].as_str().unwrap();
    let Ok(out) = sim.authorize(&mut s, Mode::Silent) else {
        panic!()
    };
    let dbg = format!("{out:?} {s:?} {:?}", sim.requests);
    assert!(!dbg.contains(at) && !dbg.contains(rt), "{dbg}");
    let req = ServerResponse {
        status: 401,
        www_authenticate: vec![],
        sent_token: Some(at.into()),
        dpop_nonce: None,
    };
    assert!(!format!("{req:?}").contains(at));
}
