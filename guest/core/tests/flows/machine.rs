//! Machine grants: client credentials (SEP-1046, with a client secret or
//! `private_key_jwt`), the enterprise identity assertion (SEP-990) and
//! workload identity (SEP-1933); no user, no browser, silent mode is enough
//! (`session/machine.rs`).

use mcp_oauth_core::*;

use crate::sim::*;

/// A machine grant needs no user, so the silent `authorize` before the first
/// request already discovers (well-known PRM) and gets a token: no 401.
fn machine(grant: Grant, private_key_jwt: bool) -> (Sim, Session) {
    let mut sim = Sim::new();
    sim.mcp.prm_at = PrmAt::PathAware;
    sim.preregistered
        .push(("svc".into(), Some("svc-secret".into()), "client_secret_basic".into()));
    let s = session_with(Config {
        client_id: Some("svc".into()),
        client_secret: (!private_key_jwt).then(|| "svc-secret".into()),
        grant,
        private_key_jwt,
        ..Config::default()
    });
    (sim, s)
}

// Client credentials with client_secret_basic: no user, silent mode is enough.
#[test]
fn client_credentials_with_basic_auth() {
    let (mut sim, mut s) = machine(Grant::ClientCredentials, false);
    sim.call_tool(&mut s, Mode::Silent).unwrap();
    assert_eq!(urls(&sim), [PRM_PATH, ASM, TOK, MCP]);
    assert_eq!(sim.consents.len() + sim.opens.len(), 0);
    assert_eq!(sim.resources_seen, [("client_credentials", MCP.to_string())]);
    // Expired: the grant is simply repeated (no refresh token, no user).
    sim.now += 3_600_000;
    sim.requests.clear();
    sim.call_tool(&mut s, Mode::Silent).unwrap();
    assert_eq!(urls(&sim), [TOK, MCP]);
}

// private_key_jwt: the engine builds the assertion, the host signs it.
#[test]
fn client_credentials_with_private_key_jwt() {
    let (mut sim, mut s) = machine(Grant::ClientCredentials, true);
    sim.call_tool(&mut s, Mode::Silent).unwrap();
    assert_eq!(urls(&sim), [PRM_PATH, ASM, TOK, MCP]);
    assert_eq!(sim.signatures, 1);
}

// SEP-990: ID token → ID-JAG at the IdP → access token at the AS.
#[test]
fn identity_assertion_exchange_then_jwt_bearer() {
    let grant = Grant::IdentityAssertion {
        idp_token_endpoint: IDP_TOKEN.into(),
        id_token: "user-id-token".into(),
        idp_client_id: Some("idp-client".into()),
    };
    let (mut sim, mut s) = machine(grant, false);
    sim.call_tool(&mut s, Mode::Silent).unwrap();
    assert_eq!(urls(&sim), [PRM_PATH, ASM, IDP_TOKEN, TOK, MCP]);
    assert_eq!(sim.consents.len() + sim.opens.len(), 0);
}

// SEP-1933: the workload's own JWT in the jwt-bearer grant, no IdP step.
// A refused assertion is an error after one request: no retry, no other grant.
#[test]
fn workload_identity_jwt_bearer() {
    const JWT: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ3b3JrbG9hZCJ9.c2ln";
    let grant = Grant::WorkloadIdentity { assertion: JWT.into() };
    let (mut sim, mut s) = machine(grant.clone(), false);
    sim.workload_jwts.push(JWT.into());
    sim.call_tool(&mut s, Mode::Silent).unwrap();
    assert_eq!(urls(&sim), [PRM_PATH, ASM, TOK, MCP]);
    assert_eq!(sim.consents.len() + sim.opens.len(), 0);
    assert!(!format!("{grant:?}").contains(JWT));

    let (mut sim, mut s) = machine(grant, false);
    let err = sim.call_tool(&mut s, Mode::Silent).unwrap_err();
    assert!(matches!(err, Error::TokenRequestFailed { .. }), "{err:?}");
    assert_eq!(urls(&sim), [PRM_PATH, ASM, TOK]);
    let bad = Session::new(
        MCP,
        Config {
            client_id: Some("svc".into()),
            grant: Grant::WorkloadIdentity {
                assertion: "not a jwt".into(),
            },
            ..Config::default()
        },
    );
    assert!(matches!(bad, Err(Error::InvalidConfig { .. })));
}

// A machine grant needs a pre-registered client id; the ID token never shows in Debug.
#[test]
fn machine_grants_need_a_client_id_and_hide_the_id_token() {
    let err = Session::new(
        MCP,
        Config {
            grant: Grant::ClientCredentials,
            ..Config::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig { .. }));
    let c = Config {
        client_id: Some("x".into()),
        grant: Grant::IdentityAssertion {
            idp_token_endpoint: IDP_TOKEN.into(),
            id_token: "secret-id-token".into(),
            idp_client_id: None,
        },
        ..Config::default()
    };
    assert!(!format!("{c:?}").contains("secret-id-token"));
}
