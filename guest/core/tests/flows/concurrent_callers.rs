//! Concurrent callers: those that arrive while a flow runs join it and get
//! its outcome; many requests rejected with the same old token, or sent
//! before any token existed, cost one renewal (`policy/rejection.rs`, first
//! row). What a call gets while another caller's flow runs, case by case, is
//! in `tests/single_flight.rs`.

use mcp_oauth_core::*;

use crate::sim::*;

// Concurrent callers join the running flow; after it, they get its outcome.
#[test]
fn concurrent_callers_share_one_flow() {
    let mut sim = Sim::new();
    sim.mcp.prm_at = PrmAt::PathAware;
    let mut s = session();
    let e = sim.entropy();
    let mut step = s.authorize(sim.now, Mode::Interactive, e);
    let mut waiters = vec![];
    let mut n = 0;
    let out = loop {
        step = match step {
            Step::Effect(e) => {
                // Every few effects another caller arrives.
                n += 1;
                if n % 2 == 0 {
                    let e2 = sim.entropy();
                    match s.authorize(sim.now, Mode::Interactive, e2) {
                        Step::Wait(id) => waiters.push(id),
                        other => panic!("expected Wait, got {other:?}"),
                    }
                }
                let i = sim.perform(e);
                s.handle(sim.now, i)
            }
            Step::Done(r) => break r,
            Step::Wait(_) | Step::Busy(_) => unreachable!(),
        };
    };
    let Ok(Outcome::Token(t)) = out else { panic!("{out:?}") };
    assert!(!waiters.is_empty());
    for id in waiters {
        assert_eq!(s.outcome(id), Some(Ok(Outcome::Token(t.clone()))));
    }
    assert_eq!((sim.consents.len(), sim.opens.len()), (1, 1));
}

// N requests fail with the same old token: one refresh, the rest reuse it.
#[test]
fn stale_401s_reuse_the_renewed_token() {
    let mut sim = Sim::new();
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    let Ok(Outcome::Token(old)) = sim.authorize(&mut s, Mode::Silent) else {
        panic!()
    };
    sim.revoke_access_tokens();
    sim.requests.clear();
    let resp = sim.mcp_call(Some(old.secret()));
    let first = sim.respond(&mut s, &resp, Mode::Interactive).unwrap();
    for _ in 0..3 {
        assert_eq!(sim.respond(&mut s, &resp, Mode::Interactive).unwrap(), first);
    }
    assert_eq!(urls(&sim), [MCP, TOK]);
}

// N requests sent before any token existed, all answered 401 and handed to
// the engine one after another (as a host serialises them): one flow.
#[test]
fn queued_cold_401s_share_the_first_flow() {
    let mut sim = Sim::new();
    let mut s = session();
    let responses: Vec<ServerResponse> = (0..4).map(|_| sim.mcp_call(None)).collect();
    for r in &responses {
        assert!(matches!(
            sim.respond(&mut s, r, Mode::Interactive),
            Ok(Outcome::Token(_))
        ));
    }
    assert_eq!((sim.consents.len(), sim.opens.len()), (1, 1));
    assert_eq!(sim.count("/token"), 1);
}
