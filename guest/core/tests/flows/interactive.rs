//! The interactive authorization: a cold start's round trips for each client
//! identity (pre-registered, Client ID Metadata Document, dynamic
//! registration), registration details, the scope requested, extra
//! authorization parameters, the browser, the loopback listener and the
//! redirect (`session/interactive.rs`).

use mcp_oauth_core::*;

use crate::sim::*;

// Round trips: cold with DCR = 6 (401, PRM, AS metadata, register, token, retry).
#[test]
fn cold_with_dynamic_registration_is_six_requests() {
    let mut sim = Sim::new();
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    assert_eq!(urls(&sim), [MCP, PRM_HDR, ASM, REG, TOK, MCP]);
    assert_eq!(sim.consents.len(), 1);
    assert_eq!(sim.opens.len(), 1);
    assert_eq!(sim.consents[0].reason, ConsentReason::FirstLogin);
}

// Round trips: cold pre-registered = 5.
#[test]
fn cold_preregistered_is_five_requests() {
    let mut sim = Sim::new();
    sim.preregistered
        .push(("pre-1".into(), Some("s3cret".into()), "client_secret_basic".into()));
    let mut s = session_with(Config {
        client_id: Some("pre-1".into()),
        client_secret: Some("s3cret".into()),
        ..Config::default()
    });
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    assert_eq!(urls(&sim), [MCP, PRM_HDR, ASM, TOK, MCP]);
    assert!(sim.opens[0].contains("client_id=pre-1"));
}

// MCP 2026-07-28 "Client Registration": CIMD when the AS advertises it = 5.
#[test]
fn cold_client_metadata_document_is_five_requests() {
    let mut sim = Sim::new();
    sim.asc.cimd = true;
    let cimd = "https://app.example/client.json";
    let mut s = session_with(Config {
        client_metadata_url: Some(cimd.into()),
        ..Config::default()
    });
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    assert_eq!(urls(&sim), [MCP, PRM_HDR, ASM, TOK, MCP]);
    assert!(sim.opens[0].contains("client_id=https%3A%2F%2Fapp.example%2Fclient.json"));
}

// Pre-registered wins over CIMD and DCR; CIMD over DCR.
#[test]
fn client_identity_priority() {
    let mut sim = Sim::new();
    sim.asc.cimd = true;
    sim.preregistered.push(("pre-1".into(), None, "none".into()));
    let mut s = session_with(Config {
        client_id: Some("pre-1".into()),
        client_metadata_url: Some("https://app.example/client.json".into()),
        ..Config::default()
    });
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    assert!(sim.opens[0].contains("client_id=pre-1"));
    assert_eq!(sim.count("/register"), 0);
}

// A wrong or missing state is ignored and reported; the flow keeps waiting.
#[test]
fn wrong_state_callbacks_do_not_end_the_flow() {
    let mut sim = Sim::new();
    sim.stray_callbacks.push_back(CallbackEvent::Redirect {
        query: "code=evil&state=forged".into(),
    });
    sim.stray_callbacks.push_back(CallbackEvent::Redirect {
        query: "code=evil".into(),
    });
    sim.stray_callbacks
        .push_back(CallbackEvent::Redirect { query: "".into() });
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    let reasons: Vec<String> = sim
        .notices
        .iter()
        .filter_map(|n| match n {
            Event::CallbackRejected { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    // Reported at the 1st and 2nd (then at each power of two).
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[1].contains("(2 such requests so far)"), "{reasons:?}");
    assert_eq!(sim.count("/token"), 1, "only the real code is exchanged");
}

// A flood of junk before the real redirect never ends the wait (issue 18):
// 150 forged callbacks, then the right one; the log grows by a line per
// doubling, not per request.
#[test]
fn a_flood_of_forged_callbacks_does_not_end_the_flow() {
    let mut sim = Sim::new();
    for i in 0..150 {
        sim.stray_callbacks.push_back(CallbackEvent::Redirect {
            query: format!("code=forged{i}&state=wrong"),
        });
    }
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    let reported = sim
        .notices
        .iter()
        .filter(|n| matches!(n, Event::CallbackRejected { .. }))
        .count();
    assert_eq!(reported, 8, "1, 2, 4, ..., 128");
    assert_eq!(sim.count("/token"), 1);
}

// RFC 9207 via the flow: a mismatched iss stops before the token request.
#[test]
fn iss_mismatch_stops_before_token_request() {
    let mut sim = Sim::new();
    sim.tamper_redirect = Some(|q| q.replace("iss=https%3A%2F%2Fauth.example.com", "iss=https%3A%2F%2Fevil.example"));
    let err = sim.call_tool(&mut session(), Mode::Interactive).unwrap_err();
    assert_eq!(
        err,
        Error::IssMismatch {
            expected: ISSUER.into()
        }
    );
    assert_eq!(sim.count("/token"), 0);
}

// An AS error other than access_denied is typed, with its code and text.
#[test]
fn other_authorization_errors_are_typed() {
    let mut sim = Sim::new();
    sim.tamper_redirect = Some(|q| {
        let state = q.split('&').find(|p| p.starts_with("state=")).unwrap().to_string();
        format!("error=temporarily_unavailable&error_description=later&{state}&iss=https%3A%2F%2Fauth.example.com")
    });
    let err = sim.call_tool(&mut session(), Mode::Interactive).unwrap_err();
    assert_eq!(
        err,
        Error::AuthorizationFailed {
            error: "temporarily_unavailable".into(),
            description: Some("later".into())
        }
    );
    assert!(!sim.store.keys().any(|k| k.starts_with("tokens-")));
}

#[test]
fn timeout_ends_the_flow() {
    let mut sim = Sim::new();
    sim.browser = Browser::Lost;
    let start = sim.now;
    assert_eq!(sim.call_tool(&mut session(), Mode::Interactive), Err(Error::TimedOut));
    assert_eq!(
        sim.now - start,
        5 * 60 * 1000,
        "waited the default 5 minutes of virtual time"
    );
}

#[test]
fn browser_failure_reports_the_url_and_keeps_waiting() {
    let mut sim = Sim::new();
    sim.browser = Browser::FailsToOpen;
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    assert!(
        sim.notices
            .iter()
            .any(|n| matches!(n, Event::BrowserOpenFailed { url, .. } if url == &sim.opens[0]))
    );
}

#[test]
fn taken_port_is_a_clear_error() {
    let mut sim = Sim::new();
    sim.listen_error = Some("port 8765 is already in use".into());
    let err = sim.call_tool(
        &mut session_with(Config {
            callback_port: Some(8765),
            ..Config::default()
        }),
        Mode::Interactive,
    );
    let err = err.unwrap_err();
    assert!(err.to_string().contains("8765"), "{err}");
    assert!(sim.opens.is_empty());
}

#[test]
fn no_identity_path_says_what_the_as_offers() {
    let mut sim = Sim::new();
    sim.asc.registration = false;
    let err = sim.call_tool(&mut session(), Mode::Interactive).unwrap_err();
    let Error::NoClientIdentity { offers, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(offers.contains("registration_endpoint"), "{offers}");
    assert!(sim.opens.is_empty());
}

// Registrations persist per issuer and are reused; a new redirect URI
// (another port) means a new registration.
#[test]
fn registration_is_reused_then_redone_for_a_new_redirect() {
    let mut sim = Sim::new();
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    sim.logout(&mut s).unwrap();
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    assert_eq!(sim.count("/register"), 1, "reused");
    let mut pinned = session_with(Config {
        callback_port: Some(5555),
        ..Config::default()
    });
    sim.logout(&mut pinned).unwrap();
    sim.call_tool(&mut pinned, Mode::Interactive).unwrap();
    assert_eq!(sim.count("/register"), 2, "new redirect URI");
}

// Token endpoint auth methods: basic and post as the AS and client dictate.
#[test]
fn token_endpoint_auth_post_and_basic() {
    for method in ["client_secret_post", "client_secret_basic"] {
        let mut sim = Sim::new();
        sim.asc.auth_methods = Some(vec![method.into()]);
        sim.preregistered
            .push(("pre".into(), Some("sec".into()), method.into()));
        let mut s = session_with(Config {
            client_id: Some("pre".into()),
            client_secret: Some("sec".into()),
            ..Config::default()
        });
        sim.call_tool(&mut s, Mode::Interactive).unwrap();
    }
    // DCR at an AS that offers only client_secret_post: the secret it issues
    // is used with post.
    let mut sim = Sim::new();
    sim.asc.auth_methods = Some(vec!["client_secret_post".into()]);
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
}

// Pre-registered credentials bound to another issuer are never sent.
#[test]
fn preregistered_credentials_stay_with_their_issuer() {
    let mut sim = Sim::new();
    let mut s = session_with(Config {
        client_id: Some("pre".into()),
        client_issuer: Some("https://other-as.example".into()),
        ..Config::default()
    });
    let err = sim.call_tool(&mut s, Mode::Interactive).unwrap_err();
    assert!(matches!(err, Error::ClientIssuerMismatch { .. }), "{err:?}");
    assert!(sim.opens.is_empty());
}

#[test]
fn scope_from_scopes_supported_with_offline_access() {
    let mut sim = Sim::new();
    sim.mcp.prm_scopes = Some(vec!["mcp:tools".into(), "mcp:read".into()]);
    sim.asc.scopes_supported = Some(vec!["mcp:tools".into(), "offline_access".into()]);
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    assert_eq!(
        sim.scopes_requested[0].as_deref(),
        Some("mcp:tools mcp:read offline_access")
    );
}

#[test]
fn scope_omitted_when_undefined() {
    let mut sim = Sim::new();
    sim.asc.scopes_supported = Some(vec!["offline_access".into()]);
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    assert_eq!(sim.scopes_requested[0], None);
}

// A cold 401's challenge scope goes through the spec's selection, so
// offline_access is added when the AS lists it.
#[test]
fn challenge_scope_gets_offline_access_when_listed() {
    let mut sim = Sim::new();
    sim.mcp.challenge_scope = Some("files:read".into());
    sim.asc.scopes_supported = Some(vec!["files:read".into(), "offline_access".into()]);
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    assert_eq!(sim.scopes_requested[0].as_deref(), Some("files:read offline_access"));
}

// A registration response that names other redirect URIs (or none) is an
// error after one POST /register, never a loop of registrations.
#[test]
fn registration_with_foreign_redirect_uris_fails_after_one_request() {
    for claimed in [vec!["http://127.0.0.1:1/elsewhere".to_string()], vec![]] {
        let mut sim = Sim::new();
        sim.asc.registered_redirect_uris = Some(claimed.clone());
        let mut s = session();
        let err = sim.call_tool(&mut s, Mode::Interactive).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidResponse {
                    what: "registration response",
                    ..
                }
            ),
            "{claimed:?}: {err:?}"
        );
        assert_eq!(sim.count("/register"), 1, "{claimed:?}");
        assert!(sim.opens.is_empty());
    }
}

// Extra authorization parameters (`--authorize-param`) reach the AS after the
// engine's own; one that names an engine parameter is refused up front.
#[test]
fn extra_authorization_parameters_are_added_never_substituted() {
    let mut sim = Sim::new();
    let mut s = session_with(Config {
        authorize_params: vec![("audience".into(), "https://api.example/".into())],
        ..Config::default()
    });
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    assert_eq!(urls(&sim), [MCP, PRM_HDR, ASM, REG, TOK, MCP]);
    let url = &sim.opens[0];
    assert!(url.ends_with("&audience=https%3A%2F%2Fapi.example%2F"), "{url}");
    assert_eq!(url.matches("state=").count(), 1, "{url}");
    for reserved in ["state", "redirect_uri", "code_challenge_method", "scope"] {
        let err = Session::new(
            MCP,
            Config {
                authorize_params: vec![(reserved.into(), "x".into())],
                ..Config::default()
            },
        )
        .unwrap_err();
        assert!(matches!(err, Error::InvalidConfig { .. }), "{reserved}: {err:?}");
    }
}
