//! What a 401 or a 403 from the MCP server leads to: a refresh once per
//! rejection, else a new authorization; a token issued in the same operation
//! and refused ends it; step-up to the union of scopes, capped; any other 403
//! is an error (`policy/rejection.rs`, `policy/step_up.rs`).

use mcp_oauth_core::*;

use crate::sim::*;

// A 401 mid-session on a request with a token: refresh once, then succeed.
#[test]
fn unauthorized_mid_session_refreshes_once() {
    let mut sim = Sim::new();
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    sim.revoke_access_tokens();
    sim.requests.clear();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    assert_eq!(urls(&sim), [MCP, TOK, MCP]);
    assert_eq!(sim.opens.len(), 1);
}

// A 401 with no refresh token: one re-authorization (rediscovering the PRM).
#[test]
fn unauthorized_without_refresh_reauthorizes() {
    let mut sim = Sim::new();
    sim.asc.issue_refresh = false;
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    sim.revoke_access_tokens();
    sim.requests.clear();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    assert_eq!(
        urls(&sim),
        [MCP, PRM_HDR, TOK, MCP],
        "metadata and registration come from storage"
    );
    assert_eq!(sim.opens.len(), 2);
    assert_eq!(sim.consents[1].reason, ConsentReason::Reauthorize);
}

// If the refreshed token is rejected too, in a later operation with no
// success in between, the next 401 re-authorizes instead of refreshing
// forever.
#[test]
fn refresh_is_tried_once_per_rejection() {
    let mut sim = Sim::new();
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    sim.revoke_access_tokens();
    let Ok(Outcome::Token(t)) = sim.authorize(&mut s, Mode::Silent) else {
        panic!()
    };
    let r1 = sim.mcp_call(Some(t.secret()));
    let Ok(Outcome::Token(_)) = sim.respond(&mut s, &r1, Mode::Interactive) else {
        panic!()
    };
    // The next operation starts with the refreshed token, then it is revoked.
    let Ok(Outcome::Token(t2)) = sim.authorize(&mut s, Mode::Silent) else {
        panic!()
    };
    sim.revoke_access_tokens();
    sim.requests.clear();
    let r2 = sim.mcp_call(Some(t2.secret()));
    sim.respond(&mut s, &r2, Mode::Interactive).unwrap();
    assert_eq!(sim.count("/token"), 1, "the token from the new authorization");
    assert_eq!(sim.opens.len(), 2);
}

// MCP "Step-Up Authorization Flow": 403 insufficient_scope → union of held
// and challenged scopes, a fresh authorization (not a refresh).
#[test]
fn step_up_requests_the_union() {
    let mut sim = Sim::new();
    sim.mcp.challenge_scope = Some("files:read".into());
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    assert_eq!(sim.scopes_requested, [Some("files:read".to_string())]);
    sim.mcp.required_scope = vec!["files:write".into()];
    sim.requests.clear();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    assert_eq!(sim.scopes_requested[1].as_deref(), Some("files:read files:write"));
    assert_eq!(sim.consents[1].reason, ConsentReason::StepUp);
    assert_eq!(urls(&sim), [MCP, TOK, MCP]);
    assert_eq!(sim.refresh_ok, 0, "a step-up is never a refresh");
}

// Step-up retry cap: 3 per session, then a typed error.
#[test]
fn step_up_is_capped() {
    let mut sim = Sim::new();
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    sim.mcp.always_insufficient = Some("admin".into());
    let err = sim.call_tool(&mut s, Mode::Interactive).unwrap_err();
    assert!(matches!(err, Error::StepUpLimit { attempts: 3, .. }), "{err:?}");
    assert_eq!(sim.opens.len(), 1 + 3);
    // Still capped on the next call, with no prompt.
    assert!(matches!(
        sim.call_tool(&mut s, Mode::Interactive),
        Err(Error::StepUpLimit { .. })
    ));
    assert_eq!(sim.opens.len(), 4);
}

// A 403 without insufficient_scope is not something a token fixes.
#[test]
fn plain_forbidden_is_an_error() {
    let mut s = session();
    let mut sim = Sim::new();
    let resp = ServerResponse {
        status: 403,
        www_authenticate: vec!["Bearer error=\"access_denied_by_policy\"".into()],
        sent_token: None,
        dpop_nonce: None,
    };
    assert!(matches!(
        sim.respond(&mut s, &resp, Mode::Interactive),
        Err(Error::Forbidden { .. })
    ));
    let ok = ServerResponse {
        status: 200,
        ..Default::default()
    };
    assert_eq!(sim.respond(&mut s, &ok, Mode::Interactive), Ok(Outcome::Unchanged));
}

// A server that refuses every token: the token the AS just issued is
// refused in the same operation, so the engine stops at once, without a
// refresh or another sign-in (issue 18). The grant is kept.
#[test]
fn a_401_to_a_token_issued_in_the_same_operation_ends_it() {
    let mut sim = Sim::new();
    sim.mcp.reject_tokens = true;
    let mut s = session();
    let err = sim.call_tool(&mut s, Mode::Interactive).unwrap_err();
    assert_eq!(
        err,
        Error::TokenRefused {
            resource: "https://mcp.example.com/mcp".into()
        }
    );
    assert_eq!(urls(&sim), [MCP, PRM_HDR, ASM, REG, TOK, MCP]);
    assert_eq!((sim.opens.len(), sim.refresh_ok), (1, 0));
    assert!(err.to_string().contains("just issued") && err.to_string().contains("https://mcp.example.com/mcp"));
    // A new operation in the same session: the token is tried once, refused
    // again (the server refused it before), and nothing else.
    sim.requests.clear();
    assert!(matches!(
        sim.call_tool(&mut s, Mode::Interactive),
        Err(Error::TokenRefused { .. })
    ));
    assert_eq!(urls(&sim), [MCP]);
    // A restart (new session, same store): the stored token is refused, it
    // is refreshed once, and the refreshed one is refused: stop.
    sim.requests.clear();
    assert!(matches!(
        sim.call_tool(&mut session(), Mode::Interactive),
        Err(Error::TokenRefused { .. })
    ));
    assert_eq!(urls(&sim), [MCP, TOK, MCP]);
    assert_eq!(sim.opens.len(), 1, "never a second sign-in");
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
}
