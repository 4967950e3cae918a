//! Logout with revocation (RFC 7009, `session/logout.rs`): refresh token
//! first, then the access token, with the client's authentication; a
//! failed revocation is reported and the tokens are forgotten anyway.

use mcp_oauth_core::*;

use crate::sim::*;

const REVOKE: &str = "https://auth.example.com/revoke";

fn signed_in(revocation: bool) -> (Sim, Session) {
    let mut sim = Sim::new();
    sim.asc.revocation = revocation;
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    sim.requests.clear();
    (sim, s)
}

fn report(r: Result<Outcome, Error>) -> LogoutReport {
    match r {
        Ok(Outcome::LoggedOut(report)) => report,
        other => panic!("not a logout: {other:?}"),
    }
}

#[test]
fn logout_revokes_the_refresh_token_then_the_access_token() {
    let (mut sim, mut s) = signed_in(true);
    let r = report(sim.logout_revoking(&mut s, true));
    assert_eq!(r.revoked, ["refresh_token", "access_token"]);
    assert_eq!((r.failed, r.skipped), (None, None));
    assert_eq!(urls(&sim), [REVOKE, REVOKE]);
    let hints: Vec<_> = sim
        .device_log
        .revocations
        .iter()
        .map(|(h, k)| (h.as_str(), *k))
        .collect();
    // The refresh token's revocation took its access token with it.
    assert_eq!(hints, [("refresh_token", true), ("access_token", true)]);
    assert!(stored_tokens(&sim).is_none());
    // Revoked at the AS: a new session has nothing to refresh with.
    assert_eq!(
        sim.authorize(&mut session(), Mode::Silent),
        Err(Error::AuthorizationRequired)
    );
}

#[test]
fn after_a_restart_logout_still_revokes() {
    let (mut sim, _) = signed_in(true);
    let mut fresh = session();
    let r = report(sim.logout_revoking(&mut fresh, true));
    assert_eq!(r.revoked.len(), 2);
}

#[test]
fn local_logout_sends_nothing() {
    let (mut sim, mut s) = signed_in(true);
    let r = report(sim.logout_revoking(&mut s, false));
    assert!(r.revoked.is_empty() && r.skipped.is_some());
    assert!(sim.requests.is_empty());
    assert!(stored_tokens(&sim).is_none());
}

#[test]
fn no_revocation_endpoint_is_said_and_the_tokens_still_go() {
    let (mut sim, mut s) = signed_in(false);
    let r = report(sim.logout_revoking(&mut s, true));
    assert!(r.skipped.unwrap().contains("revocation_endpoint"));
    assert!(sim.requests.is_empty());
    assert!(stored_tokens(&sim).is_none());
}

#[test]
fn a_refused_revocation_is_reported_and_the_tokens_still_go() {
    let (mut sim, mut s) = signed_in(true);
    // The AS no longer knows the client: 401 invalid_client.
    sim.forget_registered_clients();
    let r = report(sim.logout_revoking(&mut s, true));
    let failed = r.failed.expect("reported");
    assert!(failed.contains("invalid_client"), "{failed}");
    assert!(r.revoked.is_empty());
    assert!(stored_tokens(&sim).is_none());
    // Nothing secret in the report.
    for secret in sim.issued_secrets() {
        assert!(!failed.contains(&secret));
    }
}
