//! The device authorization grant (RFC 8628, `session/device.rs`): used
//! only when asked and offered; the request list of each ending; the
//! interval, `slow_down`, denial, expiry, the deadline and a cancel; a
//! hostile AS's answers.

use mcp_oauth_core::*;
use mcp_oauth_fake_server::DeviceFlow;

use crate::sim::*;

const DEV: &str = "https://auth.example.com/device_authorization";

fn device_world(flow: DeviceFlow) -> Sim {
    let mut sim = Sim::new();
    sim.asc.device = Some(flow);
    // Found without a 401 too: a test may start with `authorize`.
    sim.mcp.prm_at = PrmAt::PathAware;
    sim
}

fn device_session() -> Session {
    session_with(Config {
        device_grant: true,
        ..Config::default()
    })
}

fn device_codes(sim: &Sim) -> Vec<DeviceCode> {
    sim.notices
        .iter()
        .filter_map(|e| match e {
            Event::DeviceCode(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

// Cold, DCR, approved after two pending polls: 401, PRM, AS metadata,
// register, device authorization, 3 polls, retry. No listener, no browser.
#[test]
fn cold_device_grant_is_the_usual_round_trips_plus_the_polls() {
    let mut sim = device_world(DeviceFlow::default());
    let mut s = device_session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    assert_eq!(urls(&sim), [MCP, PRM_PATH, ASM, REG, DEV, TOK, TOK, TOK, MCP]);
    assert!(sim.opens.is_empty(), "no browser is opened");
    assert!(!sim.transcript.iter().any(|t| t.starts_with("Listen")), "no listener");
    assert_eq!(sim.consents.len(), 1, "consent comes first, as for the browser");
    let shown = device_codes(&sim);
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].user_code, "WDJB-MJHT");
    assert_eq!(shown[0].verification_uri, "https://auth.example.com/device");
    assert_eq!(
        shown[0].verification_uri_complete.as_deref(),
        Some("https://auth.example.com/device?user_code=WDJB-MJHT")
    );
    assert_eq!(shown[0].expires_in_s, 600);
    // Every poll waited the interval first (the server records a violation otherwise).
    assert_eq!(
        sim.pauses.iter().map(|p| p.1).collect::<Vec<_>>(),
        [5_000, 5_000, 5_000]
    );
    // resource on the device request and every poll (RFC 8707), as on authorize.
    let seen: Vec<_> = sim
        .resources_seen
        .iter()
        .filter(|(w, _)| w.starts_with("device"))
        .collect();
    assert_eq!(seen.len(), 4);
    assert!(seen.iter().all(|(_, r)| r == MCP));
    assert_eq!(sim.device_log.authorizations, 1);
    // A restart is warm: one request.
    sim.requests.clear();
    let mut again = device_session();
    sim.call_tool(&mut again, Mode::Interactive).unwrap();
    assert_eq!(urls(&sim), [MCP]);
}

// Not offered by the AS: today's browser flow, unchanged.
#[test]
fn without_a_device_endpoint_the_browser_flow_runs() {
    let mut sim = Sim::new();
    let mut s = device_session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    assert_eq!(urls(&sim), [MCP, PRM_HDR, ASM, REG, TOK, MCP]);
    assert_eq!(sim.opens.len(), 1);
}

// Offered but not asked for: the browser flow too.
#[test]
fn offered_but_not_asked_the_browser_flow_runs() {
    let mut sim = device_world(DeviceFlow::default());
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    assert_eq!(urls(&sim), [MCP, PRM_PATH, ASM, REG, TOK, MCP]);
    assert_eq!(sim.device_log.authorizations, 0);
}

// RFC 8628 §3.5: slow_down adds 5 s to every later interval.
#[test]
fn slow_down_adds_five_seconds() {
    let mut sim = device_world(DeviceFlow {
        slow_down_first: true,
        approve_after_polls: Some(2),
        ..DeviceFlow::default()
    });
    let mut s = device_session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    let waits: Vec<u64> = sim.pauses.iter().map(|p| p.1).collect();
    assert_eq!(waits, [5_000, 10_000, 10_000]);
    assert_eq!(sim.device_log.slow_downs, 1);
}

// access_denied sets the decline latch: the next call fails fast, no request.
#[test]
fn denied_on_the_other_device_latches() {
    let mut sim = device_world(DeviceFlow {
        deny: true,
        ..DeviceFlow::default()
    });
    let mut s = device_session();
    assert_eq!(sim.authorize(&mut s, Mode::Interactive), Err(Error::Declined));
    let before = sim.http_count();
    assert_eq!(sim.authorize(&mut s, Mode::Interactive), Err(Error::Declined));
    assert_eq!(sim.http_count(), before);
    assert!(stored_tokens(&sim).is_none());
}

// The user never comes: polls until the code expires, then TimedOut.
#[test]
fn a_code_nobody_approves_ends_at_its_expiry() {
    let mut sim = device_world(DeviceFlow {
        approve_after_polls: None,
        expires_in_s: 60,
        ..DeviceFlow::default()
    });
    let mut s = device_session();
    let start = sim.now;
    assert_eq!(sim.authorize(&mut s, Mode::Interactive), Err(Error::TimedOut));
    assert!(sim.now - start <= 61_000, "the wait ends with the code");
    // 60 s at a 5 s interval: at most 12 polls, however pending the answers.
    assert!(sim.count("/token") <= 12, "{}", sim.count("/token"));
}

// The user timeout is shorter than the code's life: it ends first.
#[test]
fn the_user_timeout_bounds_the_wait() {
    let mut sim = device_world(DeviceFlow {
        approve_after_polls: None,
        ..DeviceFlow::default()
    });
    let mut s = session_with(Config {
        device_grant: true,
        callback_timeout_ms: 20_000,
        ..Config::default()
    });
    let start = sim.now;
    assert_eq!(sim.authorize(&mut s, Mode::Interactive), Err(Error::TimedOut));
    assert!(sim.now - start <= 20_000);
    assert!(sim.count("/token") <= 4);
}

// The server says expired_token: TimedOut, nothing stored.
#[test]
fn expired_token_from_the_server_ends_the_flow() {
    let mut sim = device_world(DeviceFlow {
        approve_after_polls: None,
        expires_in_s: 12,
        interval_s: 5,
        ..DeviceFlow::default()
    });
    // The engine's own deadline is the same instant; the AS answers first
    // when the clock lands on it: either ending is TimedOut.
    let mut s = device_session();
    assert_eq!(sim.authorize(&mut s, Mode::Interactive), Err(Error::TimedOut));
    assert!(stored_tokens(&sim).is_none());
}

// Ctrl-C during a pause: declined (the latch), as a cancelled browser wait.
#[test]
fn cancelling_the_wait_declines() {
    let mut sim = device_world(DeviceFlow::default());
    sim.cancel_pause_at = Some(1);
    let mut s = device_session();
    assert_eq!(sim.authorize(&mut s, Mode::Interactive), Err(Error::Declined));
    assert_eq!(sim.count("/token"), 1);
    assert!(s.is_declined());
}

// Silent mode never shows a code.
#[test]
fn silent_mode_never_starts_a_device_grant() {
    let mut sim = device_world(DeviceFlow::default());
    let mut s = device_session();
    assert_eq!(sim.authorize(&mut s, Mode::Silent), Err(Error::AuthorizationRequired));
    assert_eq!(sim.device_log.authorizations, 0);
}

// Hostile answers end as documented, with nothing shown.
#[test]
fn hostile_device_answers_are_refused_before_anything_is_shown() {
    type Expect = fn(&Error) -> bool;
    let cases: [(DeviceFlow, Expect); 4] = [
        (
            DeviceFlow {
                verification_uri: Some("javascript:alert(1)".into()),
                ..DeviceFlow::default()
            },
            |e| {
                matches!(
                    e,
                    Error::UnsafeUrl {
                        what: "verification_uri",
                        ..
                    }
                )
            },
        ),
        (
            DeviceFlow {
                verification_uri: Some("file:///etc/passwd".into()),
                ..DeviceFlow::default()
            },
            |e| matches!(e, Error::UnsafeUrl { .. }),
        ),
        (
            DeviceFlow {
                user_code: "\u{1b}]8;;http://evil\u{7}CODE".into(),
                ..DeviceFlow::default()
            },
            |e| matches!(e, Error::InvalidResponse { .. }),
        ),
        (
            DeviceFlow {
                interval_s: 1_000_000_000,
                ..DeviceFlow::default()
            },
            |e| matches!(e, Error::InvalidResponse { .. }),
        ),
    ];
    for (flow, expected) in cases {
        let mut sim = device_world(flow);
        let mut s = device_session();
        let r = sim.authorize(&mut s, Mode::Interactive);
        assert!(r.as_ref().is_err_and(expected), "{r:?}");
        assert!(device_codes(&sim).is_empty(), "nothing is shown");
        assert_eq!(sim.count("/token"), 0, "no poll");
    }
}

// An interval of 0 is polled at 1 s, never in a busy loop.
#[test]
fn an_interval_of_zero_polls_once_a_second() {
    let mut sim = device_world(DeviceFlow {
        interval_s: 0,
        approve_after_polls: Some(3),
        ..DeviceFlow::default()
    });
    let mut s = device_session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    assert!(sim.pauses.iter().all(|p| p.1 == 1_000), "{:?}", sim.pauses);
}

// A pre-registered client is used as is (the spec's order), with its secret.
#[test]
fn a_preregistered_client_polls_with_its_secret() {
    let mut sim = device_world(DeviceFlow::default());
    sim.preregistered
        .push(("pre-1".into(), Some("s3cret".into()), "client_secret_basic".into()));
    let mut s = session_with(Config {
        device_grant: true,
        client_id: Some("pre-1".into()),
        client_secret: Some("s3cret".into()),
        ..Config::default()
    });
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    assert_eq!(urls(&sim), [MCP, PRM_PATH, ASM, DEV, TOK, TOK, TOK, MCP]);
}
