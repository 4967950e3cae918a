//! Refresh under the record lock: an expired token (or one inside the expiry
//! margin) costs a refresh and the request; the rotated refresh token is
//! kept; a token another process saved is adopted; `invalid_grant` and
//! `invalid_client` fall back to a new grant or registration
//! (`session/refresh.rs`).

use mcp_oauth_core::*;

use crate::sim::*;

// Round trips: expired with refresh token = 2 (refresh + request), after a
// restart too; the rotated refresh token is saved and the old one never reused.
#[test]
fn expired_with_refresh_is_two_requests_and_rotation_is_kept() {
    let mut sim = Sim::new();
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    let rt1 = stored_tokens(&sim).unwrap()["refresh_token"].clone();
    sim.now += 3_600_000;
    sim.requests.clear();
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    assert_eq!(urls(&sim), [TOK, MCP]);
    let rt2 = stored_tokens(&sim).unwrap()["refresh_token"].clone();
    assert_ne!(rt1, rt2, "rotated refresh token is stored");
    // Expire again: the refresh uses the rotated token, never the old one.
    sim.now += 3_600_000;
    sim.requests.clear();
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    assert_eq!(urls(&sim), [TOK, MCP]);
    assert!(!sim.reuse_detected, "an old refresh token was reused");
    assert_eq!(sim.refresh_ok, 2);
    assert_eq!(sim.opens.len(), 1);
}

// Tokens within the skew margin count as expired; refresh happens before use.
#[test]
fn token_inside_skew_margin_is_refreshed_first() {
    let mut sim = Sim::new();
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    sim.now += 3_600_000 - 30_000; // 30 s left, margin is 60 s
    sim.requests.clear();
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    assert_eq!(urls(&sim), [TOK, MCP]);
}

// invalid_grant, nothing newer stored → new authorization (interactive) or
// AuthorizationRequired (silent). The registration is kept.
#[test]
fn invalid_grant_falls_back_to_authorization() {
    let mut sim = Sim::new();
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    sim.now += 3_600_000;
    sim.forget_refresh_tokens();
    sim.requests.clear();
    assert_eq!(
        sim.authorize(&mut session(), Mode::Silent),
        Err(Error::AuthorizationRequired)
    );
    assert_eq!(urls(&sim), [TOK]);
    sim.requests.clear();
    let out = sim.authorize(&mut session(), Mode::Interactive).unwrap();
    assert!(matches!(out, Outcome::Token(_)));
    assert_eq!(urls(&sim), [TOK, TOK], "refresh refused, then the new code");
    assert_eq!(sim.opens.len(), 2);
    assert_eq!(sim.consents[1].reason, ConsentReason::Reauthorize);
}

// An AS that forgot the client answers invalid_client: register again.
#[test]
fn forgotten_client_on_refresh_registers_again() {
    let mut sim = Sim::new();
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    sim.now += 3_600_000;
    sim.forget_registered_clients();
    sim.requests.clear();
    sim.authorize(&mut session(), Mode::Interactive).unwrap();
    assert_eq!(urls(&sim), [TOK, REG, TOK]);
}

// invalid_grant after another process rotated: re-read storage, use the
// newer refresh token once.
#[test]
fn invalid_grant_rereads_storage_for_a_rotated_token() {
    let mut sim = Sim::new();
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    sim.now += 3_600_000;
    let good = sim.store.clone();
    // Another process's view: our in-memory refresh token is stale.
    let (key, bytes) = good.iter().find(|(k, _)| k.starts_with("tokens-")).unwrap();
    let stale = String::from_utf8(bytes.clone())
        .unwrap()
        .replace("\"rt-", "\"rt-stale-");
    let mut s = session();
    sim.requests.clear();
    let e = sim.entropy();
    let mut step = s.authorize(sim.now, Mode::Silent, e);
    let mut loads_of_tokens = 0;
    let out = loop {
        step = match step {
            Step::Effect(Effect::Load { key: k }) if &k == key => {
                loads_of_tokens += 1;
                // The first two reads see the stale record; the re-read after
                // invalid_grant sees the one the other process wrote.
                let v = if loads_of_tokens <= 2 {
                    stale.clone().into_bytes()
                } else {
                    bytes.clone()
                };
                s.handle(sim.now, Input::Loaded(Some(v)))
            }
            Step::Effect(e) => {
                let i = sim.perform(e);
                s.handle(sim.now, i)
            }
            Step::Done(r) => break r,
            Step::Wait(_) | Step::Busy(_) => unreachable!(),
        };
    };
    assert!(matches!(out, Ok(Outcome::Token(_))), "{out:?}");
    assert_eq!(loads_of_tokens, 3);
    assert_eq!(urls(&sim), [TOK, TOK], "stale refresh, then the stored one");
    assert_eq!(sim.refresh_ok, 1);
}

// Before refreshing, storage is re-read: if another process already
// refreshed, its token is used with no HTTP (no reuse of the old refresh token).
#[test]
fn refresh_adopts_a_token_another_process_saved() {
    let mut sim = Sim::new();
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    let mut a = session();
    let mut b = session();
    assert!(matches!(sim.authorize(&mut a, Mode::Silent), Ok(Outcome::Token(_))));
    assert!(matches!(sim.authorize(&mut b, Mode::Silent), Ok(Outcome::Token(_))));
    sim.now += 3_600_000;
    sim.requests.clear();
    sim.authorize(&mut a, Mode::Silent).unwrap();
    sim.authorize(&mut b, Mode::Silent).unwrap();
    assert_eq!(urls(&sim), [TOK], "only one process refreshes");
    assert!(!sim.reuse_detected);
}

// invalid_client on refresh: the registration is dropped and redone.
#[test]
fn invalid_client_redoes_registration() {
    let mut sim = Sim::new();
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    sim.now += 3_600_000;
    sim.asc.forget_clients = true;
    sim.requests.clear();
    let mut s = session();
    let e = sim.entropy();
    let first = s.authorize(sim.now, Mode::Interactive, e);
    // The AS will know clients again once re-registered.
    let mut step = first;
    let out = loop {
        step = match step {
            Step::Effect(e @ Effect::Http(_)) => {
                let i = sim.perform(e);
                if sim.count("/token") == 1 {
                    sim.asc.forget_clients = false;
                }
                s.handle(sim.now, i)
            }
            Step::Effect(e) => {
                let i = sim.perform(e);
                s.handle(sim.now, i)
            }
            Step::Done(r) => break r,
            Step::Wait(_) | Step::Busy(_) => unreachable!(),
        };
    };
    assert!(matches!(out, Ok(Outcome::Token(_))), "{out:?}");
    assert_eq!(urls(&sim), [TOK, REG, TOK]);
}

// A token that lives less than twice the margin is not stale on arrival:
// the margin is at most half its lifetime (20 s token: refreshed at 10 s
// left, with the default 60 s skew).
#[test]
fn short_lived_tokens_get_half_their_lifetime_as_margin() {
    let mut sim = Sim::new();
    sim.asc.access_ttl_s = 20;
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    assert_eq!(sim.refresh_ok, 0, "not refreshed on arrival");
    sim.requests.clear();
    sim.now += 9_000;
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    assert_eq!(urls(&sim), [MCP], "11 s left of 20: still fresh");
    sim.requests.clear();
    sim.now += 2_000;
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    assert_eq!(urls(&sim), [TOK, MCP], "9 s left of 20: refreshed first");
}

// Refresh runs under the record lock, and every path releases it (the
// simulator asserts no flow ends holding a lock).
#[test]
fn refresh_takes_and_releases_the_record_lock() {
    let mut sim = Sim::new();
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    sim.now += 3_600_000;
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    assert_eq!(sim.locks_taken, 1);
    sim.now += 3_600_000;
    sim.forget_refresh_tokens();
    assert_eq!(
        sim.authorize(&mut session(), Mode::Silent),
        Err(Error::AuthorizationRequired)
    );
    assert_eq!(sim.locks_taken, 2);
    assert!(sim.held_locks.is_empty());
}
