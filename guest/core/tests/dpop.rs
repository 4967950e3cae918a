//! DPoP (RFC 9449, SEP-1932) through the real engine against the fake
//! servers, which check every proof's claims, bind tokens to the proof's key
//! and refuse a bound token sent as Bearer (a violation fails the test).

mod sim;

use mcp_oauth_core::*;
use sim::*;

fn claims(sim: &Sim, i: usize) -> serde_json::Value {
    serde_json::from_str(&sim.proofs[i].1).unwrap()
}

// The `DPoP` challenge makes the grant a bound one: a proof on the code
// exchange, `Authorization: DPoP` with a fresh proof (and `ath`) on the MCP
// request; the same six round trips as Bearer.
#[test]
fn a_dpop_challenge_binds_the_grant() {
    let mut sim = dpop_world();
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    assert_eq!(urls(&sim), [MCP, PRM_HDR, ASM, REG, TOK, MCP]);
    assert_eq!(sim.proofs.len(), 2);
    let (token_req, resource_req) = (claims(&sim, 0), claims(&sim, 1));
    assert_eq!(token_req["htu"], TOK);
    assert_eq!(token_req["htm"], "POST");
    assert!(token_req["ath"].is_null());
    assert_eq!(resource_req["htu"], MCP);
    assert!(resource_req["ath"].is_string());
    assert_ne!(token_req["jti"], resource_req["jti"]);
    assert_eq!(sim.proofs[0].0, sim.proofs[1].0, "one key for the grant");
    let stored = stored_tokens(&sim).unwrap();
    assert_eq!(stored["dpop_key"].as_str(), Some(sim.proofs[0].0.as_str()));
    // A restart: the binding comes back from storage; no AS request.
    sim.requests.clear();
    let mut s2 = session();
    sim.call_tool(&mut s2, Mode::Silent).unwrap();
    assert_eq!(urls(&sim), [MCP]);
    assert_eq!(sim.mcp_proofs, 2);
}

// `dpop_bound_access_tokens_required` in the PRM asks for DPoP too.
#[test]
fn the_resource_metadata_can_require_dpop() {
    let mut sim = dpop_world();
    sim.mcp.dpop = false;
    sim.mcp.dpop_in_prm = true;
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    assert!(stored_tokens(&sim).unwrap()["dpop_key"].is_string());
}

// An AS that merely supports DPoP, for a Bearer resource server: nothing
// changes on the wire.
#[test]
fn nobody_asked_nothing_changes() {
    let mut sim = Sim::new();
    sim.asc.dpop_algs = Some(vec!["ES256".into()]);
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    assert!(sim.proofs.is_empty());
    assert!(stored_tokens(&sim).unwrap()["dpop_key"].is_null());
}

// RFC 9449 §8 and §9: the AS's and the resource server's `use_dpop_nonce`
// are each answered once, with the nonce and a fresh `jti`.
#[test]
fn nonces_from_the_as_and_the_resource_server_are_used_once() {
    let mut sim = dpop_world();
    sim.asc.dpop_nonce = Some("as-nonce-1".into());
    sim.mcp.dpop_nonce = Some("rs-nonce-1".into());
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    assert_eq!(urls(&sim), [MCP, PRM_HDR, ASM, REG, TOK, TOK, MCP, MCP]);
    assert!(claims(&sim, 0)["nonce"].is_null());
    assert_eq!(claims(&sim, 1)["nonce"], "as-nonce-1");
    assert_ne!(claims(&sim, 0)["jti"], claims(&sim, 1)["jti"]);
    assert!(claims(&sim, 2)["nonce"].is_null());
    assert_eq!(claims(&sim, 3)["nonce"], "rs-nonce-1");
    // The nonce is remembered: the next request needs no retry.
    sim.requests.clear();
    sim.call_tool(&mut s, Mode::Silent).unwrap();
    assert_eq!(urls(&sim), [MCP]);
}

// A server that keeps asking for a nonce is not retried forever.
#[test]
fn a_nonce_demand_is_answered_once_per_request() {
    let mut sim = dpop_world();
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    let mut s = session();
    let t = match sim.authorize(&mut s, Mode::Silent).unwrap() {
        Outcome::Token(t) => t,
        o => panic!("{o:?}"),
    };
    let ask = ServerResponse {
        status: 401,
        www_authenticate: vec!["DPoP error=\"use_dpop_nonce\"".into()],
        sent_token: Some(t.secret().into()),
        dpop_nonce: Some("n-2".into()),
    };
    assert!(matches!(sim.respond(&mut s, &ask, Mode::Silent), Ok(Outcome::Token(_))));
    assert!(matches!(
        sim.respond(&mut s, &ask, Mode::Silent),
        Ok(Outcome::Unchanged)
    ));
}

// Refreshing a bound grant: the refresh token goes with a proof by the same
// key (the fake AS refuses it otherwise), and the new tokens stay bound.
#[test]
fn refreshing_a_bound_grant_is_proved_with_its_key() {
    let mut sim = dpop_world();
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    sim.now += 3_600_000;
    sim.requests.clear();
    sim.call_tool(&mut s, Mode::Silent).unwrap();
    assert_eq!(urls(&sim), [TOK, MCP]);
    let refresh = claims(&sim, 2);
    assert_eq!(refresh["htu"], TOK);
    assert_eq!(sim.proofs[2].0, sim.proofs[0].0);
    assert!(stored_tokens(&sim).unwrap()["dpop_key"].is_string());
}

// Machine grants are bound the same way.
#[test]
fn client_credentials_can_be_bound() {
    let mut sim = dpop_world();
    sim.mcp.prm_at = PrmAt::PathAware;
    sim.mcp.announce_prm = true;
    sim.preregistered
        .push(("svc".into(), Some("svc-secret".into()), "client_secret_basic".into()));
    let mut s = session_with(Config {
        client_id: Some("svc".into()),
        client_secret: Some("svc-secret".into()),
        grant: Grant::ClientCredentials,
        ..Config::default()
    });
    sim.call_tool(&mut s, Mode::Silent).unwrap();
    assert_eq!(claims(&sim, 0)["htu"], TOK);
    assert!(stored_tokens(&sim).unwrap()["dpop_key"].is_string());
}

// A host that cannot make a proof: a clear error, no Bearer fallback.
#[test]
fn a_host_without_dpop_keys_fails_clearly() {
    let mut sim = dpop_world();
    let mut s = session();
    // The first request's 401 starts the flow; the proof is refused.
    let resp = sim.mcp_call(None);
    let e = sim.entropy();
    let mut step = s.on_response(sim.now, &resp, Mode::Interactive, e);
    let mut result = None;
    for _ in 0..50 {
        step = match step {
            Step::Effect(Effect::DpopProof { .. }) => s.handle(sim.now, Input::DpopProof(Err("no keys here".into()))),
            Step::Effect(e) => {
                let input = sim.perform(e);
                s.handle(sim.now, input)
            }
            Step::Done(r) => {
                result = Some(r);
                break;
            }
            Step::Wait(_) | Step::Busy(_) => break,
        };
    }
    match result {
        Some(Err(Error::InvalidConfig { reason })) => assert!(reason.contains("DPoP proof"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(sim.count("/token"), 0, "nothing sent without its proof");
}
