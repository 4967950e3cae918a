//! The host session answers `authorize(Silent)` itself while the engine's
//! last token is fresh. With no fuel, any call into the engine traps: that
//! tells a host answer from an engine answer.

mod support;

use std::sync::Arc;
use std::time::Duration;

use mcp_oauth_core::records::{self, Binding, TokenRecord};
use mcp_oauth_demo::headless::HeadlessBrowser;
use mcp_oauth_demo::server::{DemoServer, Faults};
use mcp_oauth_host::callback::CallbackOptions;
use mcp_oauth_host::prompts::{ConsentPolicy, TerminalPrompter};
use mcp_oauth_host::{
    AccessToken, AuthError, ChallengeOutcome, Config, Error, Mode, Runtime, RuntimeOptions, ServerResponse, Session,
    SessionIo,
};
use support::{TempHome, temp_home};

fn io() -> SessionIo {
    SessionIo {
        prompter: Arc::new(TerminalPrompter::new(ConsentPolicy::Allow, false)),
        browser: Arc::new(HeadlessBrowser),
        callback: CallbackOptions::default(),
        signer: None,
    }
}

const FUEL: u64 = 20_000_000_000;

/// `authorize(Silent)` with no fuel: `Ok` only if the host answered.
fn silent_without_engine(s: &Session) -> Result<AccessToken, Error> {
    s.set_fuel_per_call(0);
    let r = s.authorize(Mode::Silent);
    s.set_fuel_per_call(FUEL);
    r
}

fn is_trap<T>(r: &Result<T, Error>) -> bool {
    matches!(r, Err(Error::Trapped(_)))
}

/// A session signed in at a new demo server; the home goes last.
fn setup(faults: Faults, tag: &str) -> (TempHome, DemoServer, Runtime, Session) {
    let server = DemoServer::start(faults).unwrap();
    let home = temp_home(&format!("fast-{tag}"));
    let rt = Runtime::new(RuntimeOptions {
        home: home.to_path_buf(),
        ..RuntimeOptions::default()
    })
    .unwrap();
    let session = rt.session(&server.mcp_url(), Config::default(), io()).unwrap();
    session.authorize(Mode::Interactive).unwrap();
    (home, server, rt, session)
}

#[test]
fn a_fresh_token_is_served_by_the_host_and_a_trap_or_logout_forgets_it() {
    let (_home, _server, _rt, session) = setup(Faults::default(), "fresh");
    // Interactive authorize does not fill the fast path: the engine answers.
    assert!(is_trap(&silent_without_engine(&session)));
    let t1 = session.authorize(Mode::Silent).unwrap();
    assert!(t1.expires_at.is_some());
    for _ in 0..3 {
        assert_eq!(silent_without_engine(&session).unwrap().token, t1.token);
    }
    // A trap forgets it.
    session.set_fuel_per_call(0);
    assert!(is_trap(&session.status()));
    session.set_fuel_per_call(FUEL);
    assert!(is_trap(&silent_without_engine(&session)));
    // Back through the engine, then a logout forgets it too.
    assert_eq!(session.authorize(Mode::Silent).unwrap().token, t1.token);
    assert!(silent_without_engine(&session).is_ok());
    session.logout(false).unwrap();
    assert!(matches!(
        session.authorize(Mode::Silent),
        Err(Error::Auth(AuthError::AuthorizationRequired))
    ));
}

#[test]
fn the_cached_token_is_dropped_after_a_401_is_handled() {
    let (_home, _server, _rt, session) = setup(Faults::default(), "401");
    let t1 = session.authorize(Mode::Silent).unwrap();
    assert_eq!(silent_without_engine(&session).unwrap().token, t1.token);

    // A 2xx leaves it alone.
    let ok = ServerResponse {
        status: 200,
        www_authenticate: vec![],
        sent_token: Some(t1.token.clone()),
        dpop_nonce: None,
    };
    assert!(matches!(
        session.on_response(&ok, Mode::Silent).unwrap(),
        ChallengeOutcome::Unchanged
    ));
    assert_eq!(silent_without_engine(&session).unwrap().token, t1.token);

    // The server rejects t1: the engine refreshes.
    let rejected = ServerResponse {
        status: 401,
        www_authenticate: vec!["Bearer error=\"invalid_token\"".into()],
        sent_token: Some(t1.token.clone()),
        dpop_nonce: None,
    };
    let t2 = match session.on_response(&rejected, Mode::Silent).unwrap() {
        ChallengeOutcome::Token(t) => t,
        ChallengeOutcome::Unchanged => panic!("the 401 was not handled"),
    };
    assert_ne!(t2.token, t1.token);
    // Nothing is served by the host until the engine has answered again...
    assert!(is_trap(&silent_without_engine(&session)));
    // ...and then it is the new token, never the rejected one.
    assert_eq!(session.authorize(Mode::Silent).unwrap().token, t2.token);
    assert_eq!(silent_without_engine(&session).unwrap().token, t2.token);
}

#[test]
fn an_expired_token_is_not_served() {
    // 11 s tokens and a 5 s skew: the host may serve one for ~6 s.
    let server = DemoServer::start(Faults {
        access_ttl_secs: Some(11),
        ..Faults::default()
    })
    .unwrap();
    let home = temp_home("fast-expired");
    let rt = Runtime::new(RuntimeOptions {
        home: home.to_path_buf(),
        ..RuntimeOptions::default()
    })
    .unwrap();
    let config = Config {
        expiry_skew_ms: Some(5_000),
        ..Config::default()
    };
    let session = rt.session(&server.mcp_url(), config, io()).unwrap();
    session.authorize(Mode::Interactive).unwrap();
    let t1 = session.authorize(Mode::Silent).unwrap();
    let serve_until = t1.expires_at.unwrap() - 5_000;
    assert_eq!(
        t1.refresh_at,
        Some(serve_until),
        "the engine's margin: the skew, under half of 11 s"
    );
    assert_eq!(silent_without_engine(&session).unwrap().token, t1.token);

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    std::thread::sleep(Duration::from_millis(serve_until.saturating_sub(now) + 200));
    // Inside the skew now: the host does not serve it; the engine refreshes.
    assert!(is_trap(&silent_without_engine(&session)));
    let t2 = session.authorize(Mode::Silent).unwrap();
    assert_ne!(t2.token, t1.token);
}

#[test]
fn a_token_of_unknown_lifetime_is_never_served_by_the_host() {
    let (home, server, rt, session) = setup(Faults::default(), "unknown");
    let url = server.mcp_url();
    drop(session);
    // The stored token loses its expiry; a new session reads it.
    let read = |key: &str| std::fs::read(home.join(format!("{key}.json"))).unwrap();
    let binding: Binding = records::decode(Some(&read(&records::binding_key(&url)))).unwrap();
    let key = records::tokens_key(&binding.prm.resource, &binding.issuer);
    let mut tokens: TokenRecord = records::decode(Some(&read(&key))).unwrap();
    tokens.tokens.expires_at = None;
    std::fs::write(home.join(format!("{key}.json")), records::encode(&tokens)).unwrap();

    let session = rt.session(&url, Config::default(), io()).unwrap();
    let t = session.authorize(Mode::Silent).unwrap();
    assert_eq!(t.expires_at, None);
    assert_eq!(session.authorize(Mode::Silent).unwrap().token, t.token);
    assert!(is_trap(&silent_without_engine(&session)));
}

// RuntimeOptions::release_idle: after a silent authorize with a fresh token
// the instance is gone (the fast path answers); a 401 brings it back from
// the store, which refreshes; a session whose decline latch is set keeps it.
#[test]
fn released_instances_come_back_from_the_store() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = temp_home("fast-release");
    let rt = Runtime::new(RuntimeOptions {
        home: home.to_path_buf(),
        release_idle: true,
        ..RuntimeOptions::default()
    })
    .unwrap();
    let s = rt.session(&server.mcp_url(), Config::default(), io()).unwrap();
    assert!(!s.is_resident(), "created without an instance");
    let t1 = s.authorize(Mode::Interactive).unwrap();
    assert!(s.is_resident(), "an interactive authorize keeps it");
    assert_eq!(s.authorize(Mode::Silent).unwrap().token, t1.token);
    assert!(!s.is_resident(), "idle with a fresh token: released");
    assert_eq!(silent_without_engine(&s).unwrap().token, t1.token);
    server.revoke_all();
    let rejected = ServerResponse {
        status: 401,
        www_authenticate: vec![],
        sent_token: Some(t1.token.clone()),
        dpop_nonce: None,
    };
    // The grant is revoked at the AS too: the engine, reloaded from the store,
    // authorizes again (interactive) and the new token works.
    match s.on_response(&rejected, Mode::Interactive).unwrap() {
        ChallengeOutcome::Token(t2) => assert_ne!(t2.token, t1.token),
        ChallengeOutcome::Unchanged => panic!("a 401 with a revoked token must lead to a new token"),
    }
    assert!(s.is_resident());
    assert!(s.authorize(Mode::Silent).is_ok());
    assert!(!s.is_resident());
}
