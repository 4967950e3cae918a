//! One flow per session: what a call made while another caller's flow runs
//! gets. `Wait` when the running flow's outcome is its own (a token for a
//! token), `Busy` when it is not (call again after it), and an answer at
//! once when it needs no flow (an unbound token's proof, a response's
//! nonce, a success).

mod sim;

use mcp_oauth_core::*;
use sim::*;

/// Signs in, lets the token expire and starts a silent refresh: the session
/// with its flow running, and that flow's first step (taking the lock).
fn refresh_running(sim: &mut Sim) -> (Session, FlowId, Step) {
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    sim.now += 3_600_000;
    let mut s = session();
    let e = sim.entropy();
    let mut step = s.authorize(sim.now, Mode::Silent, e);
    // Past the stored records, to the lock the refresh takes.
    for _ in 0..10 {
        match step {
            Step::Effect(Effect::Lock { .. }) => break,
            Step::Effect(e) => {
                let input = sim.perform(e);
                step = s.handle(sim.now, input);
            }
            other => panic!("expected a refresh, got {other:?}"),
        }
    }
    assert!(matches!(step, Step::Effect(Effect::Lock { .. })), "{step:?}");
    let id = match s.authorize(sim.now, Mode::Silent, sim.entropy()) {
        Step::Wait(id) => id,
        other => panic!("a silent token call joins a silent refresh: {other:?}"),
    };
    (s, id, step)
}

#[test]
fn a_proof_for_an_unbound_token_is_answered_during_a_refresh() {
    let mut sim = Sim::new();
    let (mut s, _, step) = refresh_running(&mut sim);
    let e = sim.entropy();
    assert_eq!(
        s.dpop_proof(sim.now, "POST", MCP, e),
        Step::Done(Ok(Outcome::Proof(None)))
    );
    // The refresh goes on untouched.
    let out = sim.run(&mut s, step);
    assert!(matches!(out, Ok(Outcome::Token(_))), "{out:?}");
    assert_eq!(sim.refresh_ok, 1);
}

#[test]
fn logout_and_status_during_a_refresh_are_busy_then_run_after_it() {
    let mut sim = Sim::new();
    let (mut s, id, step) = refresh_running(&mut sim);
    assert_eq!(s.logout(sim.now, true), Step::Busy(id));
    assert_eq!(s.inspect(sim.now), Step::Busy(id));
    let out = sim.run(&mut s, step);
    let Ok(Outcome::Token(t)) = out else { panic!("{out:?}") };
    // The joined caller's outcome is the refresh's token.
    assert_eq!(s.outcome(id), Some(Ok(Outcome::Token(t))));
    // Called again after it, the logout runs and removes what the refresh saved.
    let first = s.logout(sim.now, true);
    assert!(matches!(sim.run(&mut s, first), Ok(Outcome::LoggedOut(_))));
    assert!(stored_tokens(&sim).is_none());
}

#[test]
fn an_interactive_call_during_a_silent_flow_is_busy_not_its_outcome() {
    let mut sim = Sim::new();
    sim.mcp.prm_at = PrmAt::PathAware;
    let mut s = session();
    let e = sim.entropy();
    let first = s.authorize(sim.now, Mode::Silent, e);
    let Step::Effect(effect) = first else {
        panic!("{first:?}")
    };
    // The silent flow is reading the store: an interactive caller may not
    // take its `AuthorizationRequired`, a silent one may.
    let id = match s.authorize(sim.now, Mode::Interactive, sim.entropy()) {
        Step::Busy(id) => id,
        other => panic!("{other:?}"),
    };
    assert_eq!(s.authorize(sim.now, Mode::Silent, sim.entropy()), Step::Wait(id));
    let input = sim.perform(effect);
    let next = s.handle(sim.now, input);
    assert_eq!(sim.run(&mut s, next), Err(Error::AuthorizationRequired));
    assert_eq!(s.outcome(id), Some(Err(Error::AuthorizationRequired)));
    // Called again, the interactive caller signs in.
    assert!(matches!(
        sim.authorize(&mut s, Mode::Interactive),
        Ok(Outcome::Token(_))
    ));
    assert_eq!(sim.opens.len(), 1);
}

#[test]
fn a_silent_call_joins_an_interactive_flow() {
    let mut sim = Sim::new();
    sim.mcp.prm_at = PrmAt::PathAware;
    let mut s = session();
    let e = sim.entropy();
    let first = s.authorize(sim.now, Mode::Interactive, e);
    let id = match s.authorize(sim.now, Mode::Silent, sim.entropy()) {
        Step::Wait(id) => id,
        other => panic!("{other:?}"),
    };
    let out = sim.run(&mut s, first);
    let Ok(Outcome::Token(t)) = out else { panic!("{out:?}") };
    assert_eq!(s.outcome(id), Some(Ok(Outcome::Token(t))));
}

// A nonce in a response that arrives during a flow is kept, not lost: the
// next proof carries it without a `use_dpop_nonce` round trip.
#[test]
fn a_nonce_that_arrives_during_a_flow_is_kept() {
    let mut sim = dpop_world();
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    sim.now += 3_600_000;
    let mut s = session();
    let e = sim.entropy();
    let step = s.authorize(sim.now, Mode::Silent, e);
    let ok = ServerResponse {
        status: 200,
        www_authenticate: vec![],
        sent_token: None,
        dpop_nonce: Some("rs-nonce-7".into()),
    };
    assert_eq!(
        s.on_response(sim.now, &ok, Mode::Silent, sim.entropy()),
        Step::Done(Ok(Outcome::Unchanged))
    );
    let out = sim.run(&mut s, step);
    assert!(matches!(out, Ok(Outcome::Token(ref t)) if t.dpop), "{out:?}");
    let e = sim.entropy();
    let first = s.dpop_proof(sim.now, "POST", MCP, e);
    let Ok(Outcome::Proof(Some(_))) = sim.run(&mut s, first) else {
        panic!()
    };
    let last: serde_json::Value = serde_json::from_str(&sim.proofs.last().unwrap().1).unwrap();
    assert_eq!(last["nonce"], "rs-nonce-7");
}

// A bound token's proof needs the host to sign: during a refresh it is busy
// (the token it would prove is about to be replaced), then made after it.
#[test]
fn a_proof_for_a_bound_token_during_a_refresh_is_busy() {
    let mut sim = dpop_world();
    let (mut s, id, step) = refresh_running(&mut sim);
    let e = sim.entropy();
    assert_eq!(s.dpop_proof(sim.now, "POST", MCP, e), Step::Busy(id));
    let out = sim.run(&mut s, step);
    assert!(matches!(out, Ok(Outcome::Token(ref t)) if t.dpop), "{out:?}");
    let e = sim.entropy();
    let first = s.dpop_proof(sim.now, "POST", MCP, e);
    assert!(matches!(sim.run(&mut s, first), Ok(Outcome::Proof(Some(_)))));
}

// A 401 during a flow joins it (its outcome is a token); a plain 403 and a
// success need no flow.
#[test]
fn responses_during_a_flow() {
    let mut sim = Sim::new();
    let (mut s, id, step) = refresh_running(&mut sim);
    let unauthorized = ServerResponse {
        status: 401,
        www_authenticate: vec!["Bearer".into()],
        sent_token: Some("old".into()),
        dpop_nonce: None,
    };
    assert_eq!(
        s.on_response(sim.now, &unauthorized, Mode::Silent, sim.entropy()),
        Step::Wait(id)
    );
    let forbidden = ServerResponse {
        status: 403,
        ..unauthorized.clone()
    };
    assert!(matches!(
        s.on_response(sim.now, &forbidden, Mode::Silent, sim.entropy()),
        Step::Done(Err(Error::Forbidden { .. }))
    ));
    let ok = ServerResponse {
        status: 200,
        ..unauthorized
    };
    assert_eq!(
        s.on_response(sim.now, &ok, Mode::Silent, sim.entropy()),
        Step::Done(Ok(Outcome::Unchanged))
    );
    assert!(sim.run(&mut s, step).is_ok());
}

// `handle` with no flow is the host's mistake, and says so.
#[test]
fn input_with_no_flow_is_a_host_bug() {
    let mut s = session();
    let r = s.handle(0, Input::Ack);
    let Step::Done(Err(e @ Error::UnexpectedInput { .. })) = r else {
        panic!("{r:?}")
    };
    assert!(e.to_string().starts_with("host bug"), "{e}");
}
