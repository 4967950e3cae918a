//! A store that cannot be read is an error, never an empty store: a replica
//! whose shared store is down must not sign in anew (or refresh unlocked)
//! beside a grant it merely cannot see.

mod sim;

use mcp_oauth_core::*;
use sim::*;

#[test]
fn a_store_that_cannot_be_read_ends_the_call_with_no_request_and_no_browser() {
    let mut sim = Sim::new();
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    let before = sim.store.clone();
    sim.requests.clear();
    sim.store_down = true;
    for mode in [Mode::Silent, Mode::Interactive] {
        let e = sim.authorize(&mut session(), mode).unwrap_err();
        assert!(matches!(e, Error::Storage { .. }), "{e:?}");
        assert!(e.to_string().contains("redis://cache:6379/0"), "{e}");
    }
    assert!(sim.requests.is_empty(), "{:?}", sim.requests);
    assert_eq!(sim.opens.len(), 1, "no second browser");
    assert_eq!(sim.store, before, "nothing written");

    // Back up: the stored grant is used as before.
    sim.store_down = false;
    sim.call_tool(&mut session(), Mode::Silent).unwrap();
    assert_eq!(sim.opens.len(), 1);
}

#[test]
fn a_store_that_fails_during_a_refresh_ends_it_before_the_token_request() {
    let mut sim = Sim::new();
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    sim.now += 3_600_000;
    sim.requests.clear();
    sim.store_down = true;
    let e = sim.authorize(&mut s, Mode::Silent).unwrap_err();
    assert!(matches!(e, Error::Storage { .. }), "{e:?}");
    assert_eq!(sim.refresh_ok, 0, "no refresh without the re-read under the lock");
    assert!(sim.held_locks.is_empty(), "the lock is released");
}

#[test]
fn no_refresh_without_the_lock() {
    let mut sim = Sim::new();
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    sim.now += 3_600_000;
    sim.requests.clear();
    sim.lock_refused = true;
    let e = sim.authorize(&mut s, Mode::Interactive).unwrap_err();
    assert!(matches!(e, Error::Storage { .. }), "{e:?}");
    assert!(e.to_string().contains("held by process 7"), "{e}");
    assert!(sim.requests.is_empty(), "{:?}", sim.requests);
    assert_eq!(sim.opens.len(), 1, "no new sign-in either");
    // Once the lock can be had, the stored grant is refreshed as usual.
    sim.lock_refused = false;
    sim.authorize(&mut s, Mode::Silent).unwrap();
    assert_eq!(sim.refresh_ok, 1);
}
