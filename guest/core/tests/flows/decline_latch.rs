//! The decline latch and the silent-mode gate: a declined consent,
//! `access_denied` or a cancelled wait fails fast with `Declined` until
//! `retry()`; silent mode never prompts (`policy/decline_latch.rs`).

use mcp_oauth_core::*;

use crate::sim::*;

// cagent PR 2949: a declined consent latches; no prompt until retry().
#[test]
fn decline_latches_until_retry() {
    let mut sim = Sim::new();
    sim.consent_answer = false;
    let mut s = session();
    assert_eq!(sim.call_tool(&mut s, Mode::Interactive), Err(Error::Declined));
    assert_eq!((sim.consents.len(), sim.opens.len()), (1, 0));
    for _ in 0..5 {
        assert_eq!(sim.authorize(&mut s, Mode::Interactive), Err(Error::Declined));
        assert_eq!(sim.call_tool(&mut s, Mode::Interactive), Err(Error::Declined));
    }
    assert_eq!((sim.consents.len(), sim.opens.len()), (1, 0), "no prompt while latched");
    s.retry();
    sim.consent_answer = true;
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    assert_eq!((sim.consents.len(), sim.opens.len()), (2, 1));
}

// access_denied at the AS is a decline: nothing stored, browser opened once.
#[test]
fn access_denied_is_a_decline() {
    let mut sim = Sim::new();
    sim.asc.deny = true;
    let mut s = session();
    assert_eq!(sim.call_tool(&mut s, Mode::Interactive), Err(Error::Declined));
    assert_eq!(sim.call_tool(&mut s, Mode::Interactive), Err(Error::Declined));
    assert_eq!(sim.opens.len(), 1);
    assert!(stored_tokens(&sim).is_none());
    assert_eq!(sim.count("/token"), 0);
}

// Cancelling the wait is a decline too.
#[test]
fn cancel_is_a_decline() {
    let mut sim = Sim::new();
    sim.browser = Browser::Lost;
    sim.stray_callbacks.push_back(CallbackEvent::Cancelled);
    let mut s = session();
    assert_eq!(sim.call_tool(&mut s, Mode::Interactive), Err(Error::Declined));
    assert!(s.is_declined());
}

// Declined and AuthorizationRequired are different; silent never prompts.
#[test]
fn silent_mode_never_prompts() {
    let mut sim = Sim::new();
    let mut s = session();
    assert_eq!(sim.call_tool(&mut s, Mode::Silent), Err(Error::AuthorizationRequired));
    assert_eq!(sim.consents.len() + sim.opens.len(), 0);
    assert_eq!(urls(&sim), [MCP], "no discovery for nothing");
}
