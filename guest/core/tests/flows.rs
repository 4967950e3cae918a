//! Whole flows through the engine against the simulated servers, each
//! asserting the exact HTTP requests it made (docs/architecture.md "Round trips").

mod sim;

use mcp_oauth_core::*;
use sim::*;

fn urls(sim: &Sim) -> Vec<String> {
    sim.requests.iter().map(|(_, u)| u.clone()).collect()
}

const PRM_HDR: &str = "https://mcp.example.com/prm";
const ASM: &str = "https://auth.example.com/.well-known/oauth-authorization-server";
const REG: &str = "https://auth.example.com/register";
const TOK: &str = "https://auth.example.com/token";
const PRM_PATH: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

// ---- round trips ---------------------------------------------------------

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

// Round trips: warm = 1 request, also after a restart (new Session, same store).
#[test]
fn warm_after_restart_is_one_request() {
    let mut sim = Sim::new();
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    sim.requests.clear();
    let mut restarted = session();
    sim.call_tool(&mut restarted, Mode::Interactive).unwrap();
    assert_eq!(urls(&sim), [MCP]);
    assert_eq!(sim.opens.len(), 1, "no second browser");
    assert_eq!(sim.consents.len(), 1, "no second prompt");
}

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

// A stored fresh token is returned with no HTTP at all.
#[test]
fn fresh_token_needs_no_http() {
    let mut sim = Sim::new();
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    sim.requests.clear();
    let out = sim.authorize(&mut s, Mode::Silent).unwrap();
    assert!(matches!(out, Outcome::Token(_)));
    assert!(sim.requests.is_empty());
}

// ---- refresh failures ----------------------------------------------------

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

// ---- decline latch and single flight -------------------------------------

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

// ---- responses from the MCP server ---------------------------------------

// A 401 mid-session on a request with a token: refresh once, then succeed.
#[test]
fn unauthorized_mid_session_refreshes_once() {
    let mut sim = Sim::new();
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    sim.revoke_access_tokens();
    sim.requests.clear();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    assert_eq!(urls(&sim), [MCP, TOK, MCP]);
    assert_eq!(sim.opens.len(), 1);
}

// A 401 with no refresh token: one re-authorization (rediscovering the PRM).
#[test]
fn unauthorized_without_refresh_reauthorizes() {
    let mut sim = Sim::new();
    sim.asc.issue_refresh = false;
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    sim.revoke_access_tokens();
    sim.requests.clear();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    assert_eq!(
        urls(&sim),
        [MCP, PRM_HDR, TOK, MCP],
        "metadata and registration come from storage"
    );
    assert_eq!(sim.opens.len(), 2);
    assert_eq!(sim.consents[1].reason, ConsentReason::Reauthorize);
}

// If the refreshed token is rejected too, in a later operation with no
// success in between, the next 401 re-authorizes instead of refreshing
// forever.
#[test]
fn refresh_is_tried_once_per_rejection() {
    let mut sim = Sim::new();
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    sim.revoke_access_tokens();
    let Ok(Outcome::Token(t)) = sim.authorize(&mut s, Mode::Silent) else {
        panic!()
    };
    let r1 = sim.mcp_call(Some(t.secret()));
    let Ok(Outcome::Token(_)) = sim.respond(&mut s, &r1, Mode::Interactive) else {
        panic!()
    };
    // The next operation starts with the refreshed token, then it is revoked.
    let Ok(Outcome::Token(t2)) = sim.authorize(&mut s, Mode::Silent) else {
        panic!()
    };
    sim.revoke_access_tokens();
    sim.requests.clear();
    let r2 = sim.mcp_call(Some(t2.secret()));
    sim.respond(&mut s, &r2, Mode::Interactive).unwrap();
    assert_eq!(sim.count("/token"), 1, "the token from the new authorization");
    assert_eq!(sim.opens.len(), 2);
}

// MCP "Step-Up Authorization Flow": 403 insufficient_scope → union of held
// and challenged scopes, a fresh authorization (not a refresh).
#[test]
fn step_up_requests_the_union() {
    let mut sim = Sim::new();
    sim.mcp.challenge_scope = Some("files:read".into());
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    assert_eq!(sim.scopes_requested, [Some("files:read".to_string())]);
    sim.mcp.required_scope = vec!["files:write".into()];
    sim.requests.clear();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    assert_eq!(sim.scopes_requested[1].as_deref(), Some("files:read files:write"));
    assert_eq!(sim.consents[1].reason, ConsentReason::StepUp);
    assert_eq!(urls(&sim), [MCP, TOK, MCP]);
    assert_eq!(sim.refresh_ok, 0, "a step-up is never a refresh");
}

// Step-up retry cap: 3 per session, then a typed error.
#[test]
fn step_up_is_capped() {
    let mut sim = Sim::new();
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    sim.mcp.always_insufficient = Some("admin".into());
    let err = sim.call_tool(&mut s, Mode::Interactive).unwrap_err();
    assert!(matches!(err, Error::StepUpLimit { attempts: 3, .. }), "{err:?}");
    assert_eq!(sim.opens.len(), 1 + 3);
    // Still capped on the next call, with no prompt.
    assert!(matches!(
        sim.call_tool(&mut s, Mode::Interactive),
        Err(Error::StepUpLimit { .. })
    ));
    assert_eq!(sim.opens.len(), 4);
}

// A 403 without insufficient_scope is not something a token fixes.
#[test]
fn plain_forbidden_is_an_error() {
    let mut s = session();
    let mut sim = Sim::new();
    let resp = ServerResponse {
        status: 403,
        www_authenticate: vec!["Bearer error=\"access_denied_by_policy\"".into()],
        sent_token: None,
        dpop_nonce: None,
    };
    assert!(matches!(
        sim.respond(&mut s, &resp, Mode::Interactive),
        Err(Error::Forbidden { .. })
    ));
    let ok = ServerResponse {
        status: 200,
        ..Default::default()
    };
    assert_eq!(sim.respond(&mut s, &ok, Mode::Interactive), Ok(Outcome::Unchanged));
}

// ---- discovery variants ----------------------------------------------------

#[test]
fn prm_at_path_aware_well_known() {
    let mut sim = Sim::new();
    sim.mcp.prm_at = PrmAt::PathAware;
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    assert_eq!(
        urls(&sim),
        [
            MCP,
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
            ASM,
            REG,
            TOK,
            MCP
        ]
    );
}

#[test]
fn prm_at_root_well_known() {
    let mut sim = Sim::new();
    sim.mcp.prm_at = PrmAt::Root;
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    assert_eq!(
        urls(&sim),
        [
            MCP,
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
            "https://mcp.example.com/.well-known/oauth-protected-resource",
            ASM,
            REG,
            TOK,
            MCP
        ]
    );
}

// MCP 2026-07-28: for an issuer with a path, three candidates in order.
#[test]
fn as_metadata_each_candidate_with_path() {
    let cands = [
        "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
        "https://auth.example.com/.well-known/openid-configuration/tenant1",
        "https://auth.example.com/tenant1/.well-known/openid-configuration",
    ];
    for (i, served) in cands.iter().enumerate() {
        let mut sim = Sim::new();
        sim.asc.issuer = "https://auth.example.com/tenant1".into();
        sim.asc.claimed_issuer = sim.asc.issuer.clone();
        sim.asc.metadata_urls = vec![served.to_string()];
        sim.call_tool(&mut session(), Mode::Interactive).unwrap();
        let got = urls(&sim);
        assert_eq!(&got[2..3 + i], &cands[..=i], "served at candidate {i}");
        assert_eq!(got.len(), 6 + i);
    }
}

// Without a path: OAuth first, then OIDC.
#[test]
fn as_metadata_oidc_without_path() {
    let mut sim = Sim::new();
    sim.asc.metadata_urls = vec!["https://auth.example.com/.well-known/openid-configuration".into()];
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    assert_eq!(
        urls(&sim)[2..4],
        [ASM, "https://auth.example.com/.well-known/openid-configuration"]
    );
}

// A candidate with a 4xx, non-JSON or invalid document moves to the next.
#[test]
fn as_metadata_skips_bad_documents() {
    let mut sim = Sim::new();
    sim.asc.metadata_urls = vec!["https://auth.example.com/.well-known/openid-configuration".into()];
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    assert_eq!(sim.count("well-known/oauth-authorization-server"), 1);
}

// 2026-07-28: issuer mismatch → the metadata is not used; nothing opens.
#[test]
fn issuer_mismatch_stops_before_anything_opens() {
    let mut sim = Sim::new();
    sim.asc.claimed_issuer = "https://honest.example".into();
    let err = sim.call_tool(&mut session(), Mode::Interactive).unwrap_err();
    assert!(matches!(err, Error::IssuerMismatch { .. }), "{err:?}");
    assert_eq!(sim.consents.len() + sim.opens.len(), 0);
    assert_eq!(sim.count("/register") + sim.count("/token"), 0);
}

// RFC 9728 §3.3: a PRM for another resource stops discovery.
#[test]
fn resource_mismatch_stops_before_authorization() {
    let mut sim = Sim::new();
    sim.mcp.prm_resource = "https://evil.example.com/mcp".into();
    let err = sim.call_tool(&mut session(), Mode::Interactive).unwrap_err();
    assert!(matches!(err, Error::ResourceMismatch { .. }), "{err:?}");
    assert_eq!(urls(&sim), [MCP, PRM_HDR]);
    assert!(sim.opens.is_empty());
}

// Legacy 2025-03-26: no PRM; metadata at the server's origin.
#[test]
fn legacy_server_with_metadata() {
    let mut sim = Sim::legacy(true);
    sim.mcp.prm_at = PrmAt::Nowhere;
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    assert_eq!(
        urls(&sim),
        [
            MCP,
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
            "https://mcp.example.com/.well-known/oauth-protected-resource",
            "https://mcp.example.com/.well-known/oauth-authorization-server",
            "https://mcp.example.com/register",
            "https://mcp.example.com/token",
            MCP
        ]
    );
    // After a restart nothing is rediscovered.
    sim.requests.clear();
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    assert_eq!(urls(&sim), [MCP]);
}

// Legacy without metadata: the default endpoints.
#[test]
fn legacy_server_default_endpoints() {
    let mut sim = Sim::legacy(false);
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    let u = urls(&sim);
    assert_eq!(
        u[4..],
        ["https://mcp.example.com/register", "https://mcp.example.com/token", MCP]
    );
    assert!(sim.opens[0].starts_with("https://mcp.example.com/authorize?"));
}

// Legacy metadata naming another issuer: accepted on that path only, reported.
#[test]
fn legacy_issuer_difference_is_reported() {
    let mut sim = Sim::legacy(true);
    sim.asc.claimed_issuer = "https://mcp.example.com/".into();
    sim.asc.issuer = "https://mcp.example.com/".into();
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    assert!(
        sim.notices
            .iter()
            .any(|n| matches!(n, Event::LegacyIssuerDiffers { .. }))
    );
}

// ---- PKCE, URL safety, callback ------------------------------------------

#[test]
fn missing_s256_is_refused_unless_overridden() {
    let mut sim = Sim::new();
    sim.asc.s256 = false;
    let err = sim.call_tool(&mut session(), Mode::Interactive).unwrap_err();
    assert_eq!(err, Error::PkceUnsupported { issuer: ISSUER.into() });
    assert!(sim.opens.is_empty());
    let mut sim = Sim::new();
    sim.asc.s256 = false;
    let mut s = session_with(Config {
        allow_missing_s256: vec![ISSUER.into()],
        ..Config::default()
    });
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    assert!(
        sim.notices
            .contains(&Event::PkceCheckOverridden { issuer: ISSUER.into() })
    );
    assert!(sim.opens[0].contains("code_challenge_method=S256"));
}

// CVE-2025-6514: a malicious AS's endpoints never reach the browser.
#[test]
fn malicious_endpoints_are_refused_before_opening() {
    for bad_base in ["javascript:alert(1)//", "file:///tmp", "http://evil.example"] {
        let mut sim = Sim::new();
        sim.mcp.prm_at = PrmAt::PathAware;
        let md = serde_json::json!({
            "issuer": ISSUER,
            "authorization_endpoint": format!("{bad_base}/authorize"),
            "token_endpoint": "https://auth.example.com/token",
            "code_challenge_methods_supported": ["S256"],
        });
        let mut s = session();
        let e = sim.entropy();
        let mut step = s.authorize(sim.now, Mode::Interactive, e);
        let out = loop {
            step = match step {
                Step::Effect(Effect::Http(req)) if req.url == ASM => {
                    s.handle(sim.now, Input::Http(Ok(json(md.clone()))))
                }
                Step::Effect(Effect::OpenBrowser { url }) => panic!("opened {url}"),
                Step::Effect(e) => {
                    let i = sim.perform(e);
                    s.handle(sim.now, i)
                }
                Step::Done(r) => break r,
                Step::Wait(_) | Step::Busy(_) => unreachable!(),
            };
        };
        assert!(matches!(out, Err(Error::UnsafeUrl { .. })), "{bad_base}: {out:?}");
    }
}

// A server that refuses every token: the token the AS just issued is
// refused in the same operation, so the engine stops at once, without a
// refresh or another sign-in (issue 18). The grant is kept.
#[test]
fn a_401_to_a_token_issued_in_the_same_operation_ends_it() {
    let mut sim = Sim::new();
    sim.mcp.reject_tokens = true;
    let mut s = session();
    let err = sim.call_tool(&mut s, Mode::Interactive).unwrap_err();
    assert_eq!(
        err,
        Error::TokenRefused {
            resource: "https://mcp.example.com/mcp".into()
        }
    );
    assert_eq!(urls(&sim), [MCP, PRM_HDR, ASM, REG, TOK, MCP]);
    assert_eq!((sim.opens.len(), sim.refresh_ok), (1, 0));
    assert!(err.to_string().contains("just issued") && err.to_string().contains("https://mcp.example.com/mcp"));
    // A new operation in the same session: the token is tried once, refused
    // again (the server refused it before), and nothing else.
    sim.requests.clear();
    assert!(matches!(
        sim.call_tool(&mut s, Mode::Interactive),
        Err(Error::TokenRefused { .. })
    ));
    assert_eq!(urls(&sim), [MCP]);
    // A restart (new session, same store): the stored token is refused, it
    // is refreshed once, and the refreshed one is refused: stop.
    sim.requests.clear();
    assert!(matches!(
        sim.call_tool(&mut session(), Mode::Interactive),
        Err(Error::TokenRefused { .. })
    ));
    assert_eq!(urls(&sim), [MCP, TOK, MCP]);
    assert_eq!(sim.opens.len(), 1, "never a second sign-in");
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
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

// ---- client identity details ----------------------------------------------

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

/// The MCP server now trusts another AS; the old one refuses everything and
/// its access tokens are revoked.
fn move_to_new_as(sim: &mut Sim) {
    sim.retired_bases.push(ISSUER.into());
    sim.asc.base = "https://new-as.example".into();
    sim.asc.issuer = "https://new-as.example".into();
    sim.asc.claimed_issuer = "https://new-as.example".into();
    sim.asc.metadata_urls = vec!["https://new-as.example/.well-known/oauth-authorization-server".into()];
    sim.revoke_access_tokens();
    sim.requests.clear();
}

// MCP 2026-07-28 "Authorization Server Binding": when the server moves to
// another AS, nothing from the old one is sent to the new one.
#[test]
fn moving_to_another_issuer_reregisters() {
    let mut sim = Sim::new();
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    let old_client = sim.opens[0]
        .split("client_id=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();
    move_to_new_as(&mut sim);
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    // The old refresh token goes only to its own AS (which refuses it); the
    // PRM is read again; the new AS gets a registration of its own.
    assert_eq!(
        urls(&sim),
        [
            MCP,
            TOK,
            PRM_HDR,
            "https://new-as.example/.well-known/oauth-authorization-server",
            "https://new-as.example/register",
            "https://new-as.example/token",
            MCP
        ]
    );
    assert!(!sim.opens[1].contains(&format!("client_id={old_client}&")));
    assert!(sim.opens[1].starts_with("https://new-as.example/authorize"));
}

// SEP-2352: a Client ID Metadata Document URL is portable across
// authorization servers: after a move, no registration anywhere.
#[test]
fn moving_to_another_issuer_keeps_a_metadata_document_client() {
    let mut sim = Sim::new();
    sim.asc.cimd = true;
    let cimd = "https://app.example/client.json";
    let mut s = session_with(Config {
        client_metadata_url: Some(cimd.into()),
        ..Config::default()
    });
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    move_to_new_as(&mut sim);
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    assert_eq!(
        urls(&sim),
        [
            MCP,
            TOK,
            PRM_HDR,
            "https://new-as.example/.well-known/oauth-authorization-server",
            "https://new-as.example/token",
            MCP
        ]
    );
    assert!(sim.opens[1].starts_with("https://new-as.example/authorize"));
    assert!(sim.opens[1].contains("client_id=https%3A%2F%2Fapp.example%2Fclient.json"));
}

// ---- scope selection -------------------------------------------------------

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

// ---- logout and status -----------------------------------------------------

#[test]
fn logout_removes_tokens_and_status_reports_no_secret() {
    let mut sim = Sim::new();
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    let mut fresh = session();
    let step = fresh.inspect(sim.now);
    let Outcome::Status(st) = sim.run(&mut fresh, step).unwrap() else {
        panic!()
    };
    assert_eq!(st.issuer.as_deref(), Some(ISSUER));
    assert!(st.has_token && st.can_refresh);
    assert!(st.client_id.as_deref().unwrap().starts_with("client-"));
    assert!(!format!("{st:?}").contains("at-"), "status carries no token");
    assert_eq!(sim.logout(&mut s), Ok(Outcome::LoggedOut));
    assert!(stored_tokens(&sim).is_none());
    assert_eq!(
        sim.authorize(&mut session(), Mode::Silent),
        Err(Error::AuthorizationRequired)
    );
}

// Corrupt records read as absent: the engine rediscovers instead of failing.
#[test]
fn corrupt_storage_counts_as_absent() {
    let mut sim = Sim::new();
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    for v in sim.store.values_mut() {
        v.truncate(v.len() / 2);
    }
    sim.requests.clear();
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    assert_eq!(urls(&sim), [MCP, PRM_HDR, ASM, REG, TOK, MCP]);
}

// Nothing secret in Debug output of a session mid-flow or of the effects.
#[test]
fn debug_output_has_no_secrets() {
    let mut sim = Sim::new();
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    let tokens = stored_tokens(&sim).unwrap();
    let at = tokens["access_token"].as_str().unwrap();
    let rt = tokens["refresh_token"].as_str().unwrap();
    let Ok(out) = sim.authorize(&mut s, Mode::Silent) else {
        panic!()
    };
    let dbg = format!("{out:?} {s:?} {:?}", sim.requests);
    assert!(!dbg.contains(at) && !dbg.contains(rt), "{dbg}");
    let req = ServerResponse {
        status: 401,
        www_authenticate: vec![],
        sent_token: Some(at.into()),
        dpop_nonce: None,
    };
    assert!(!format!("{req:?}").contains(at));
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

// Stored metadata is used only if it would still be accepted: after the
// S256 override is removed, a stored document without S256 is refetched and
// refused.
#[test]
fn stored_metadata_is_rechecked_for_s256() {
    let mut sim = Sim::new();
    sim.asc.s256 = false;
    let allow = Config {
        allow_missing_s256: vec![ISSUER.into()],
        ..Config::default()
    };
    sim.call_tool(&mut session_with(allow), Mode::Interactive).unwrap();
    sim.revoke_access_tokens();
    sim.forget_refresh_tokens();
    let err = sim.call_tool(&mut session(), Mode::Interactive).unwrap_err();
    assert_eq!(err, Error::PkceUnsupported { issuer: ISSUER.into() });
}

// ---- machine grants (SEP-1046 client credentials, SEP-990 identity assertion) ----

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
