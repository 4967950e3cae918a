//! Property tests (proptest) for the rules that must hold for every input.

mod sim;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_oauth_core::primitives::www_authenticate::{BearerChallenge, parse};
use mcp_oauth_core::*;
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use sim::*;

#[derive(Debug, Clone)]
enum Act {
    /// Another caller asks for a token.
    Call,
    /// The driver performs the running flow's next effect.
    Advance,
    /// What the user will answer at the next consent prompt.
    Answer(bool),
    /// The user asks to try again.
    Retry,
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        3 => Just(Act::Call),
        6 => Just(Act::Advance),
        2 => any::<bool>().prop_map(Act::Answer),
        1 => Just(Act::Retry),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    // Decline latch + single flight (cagent PR 2949): any interleaving of
    // callers and answers gives at most one prompt per latch epoch, and none
    // at all between a decline and the next retry.
    #[test]
    fn latch_one_prompt_per_epoch(acts in proptest::collection::vec(act(), 1..80)) {
        let mut sim = Sim::new();
        sim.mcp.prm_at = PrmAt::PathAware;
        let mut s = session();
        let mut running: Option<Step> = None;
        let mut prompts_this_epoch = 0;
        let mut declined_this_epoch = false;
        let mut waiters = Vec::new();
        for a in acts {
            match a {
                Act::Answer(b) => sim.consent_answer = b,
                Act::Retry => {
                    s.retry();
                    prompts_this_epoch = 0;
                    declined_this_epoch = false;
                }
                Act::Call => {
                    let e = sim.entropy();
                    match s.authorize(sim.now, Mode::Interactive, e) {
                        Step::Wait(id) => {
                            prop_assert!(running.is_some());
                            waiters.push(id);
                        }
                        // Every caller here is interactive: always joinable.
                        Step::Busy(_) => prop_assert!(false, "an interactive call was told busy"),
                        Step::Done(r) => {
                            if s.is_declined() {
                                prop_assert_eq!(r, Err(Error::Declined));
                            }
                        }
                        step @ Step::Effect(_) => {
                            prop_assert!(running.is_none());
                            prop_assert!(!s.is_declined(), "a declined session started a flow");
                            running = Some(step);
                        }
                    }
                }
                Act::Advance => {
                    if let Some(Step::Effect(e)) = running.take() {
                        if matches!(e, Effect::Consent(_)) {
                            prompts_this_epoch += 1;
                            prop_assert!(!declined_this_epoch, "prompt after a decline");
                            prop_assert!(prompts_this_epoch <= 1, "two prompts in one epoch");
                            if !sim.consent_answer {
                                declined_this_epoch = true;
                            }
                        }
                        let input = sim.perform(e);
                        match s.handle(sim.now, input) {
                            Step::Done(r) => {
                                for id in waiters.drain(..) {
                                    prop_assert_eq!(s.outcome(id), Some(r.clone()));
                                }
                            }
                            step => running = Some(step),
                        }
                    }
                }
            }
        }
    }

    // RFC 6749 §10.12: a callback whose state is missing or wrong is never
    // accepted, whatever else it carries.
    #[test]
    fn wrong_state_is_never_accepted(
        expected in "[A-Za-z0-9_-]{43}",
        got in proptest::option::of("[ -~]{0,60}"),
        extra in proptest::collection::vec(("[a-z_]{1,12}", "[ -~]{0,20}"), 0..5),
        iss_supported in any::<bool>(),
    ) {
        prop_assume!(got.as_deref() != Some(expected.as_str()));
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        ser.append_pair("code", "c").append_pair("error", "access_denied");
        for (k, v) in &extra {
            if k != "state" {
                ser.append_pair(k, v);
            }
        }
        if let Some(g) = &got {
            ser.append_pair("state", g);
        }
        let q = ser.finish();
        let v = mcp_oauth_core::wire::authorization_response::check(&q, &expected, ISSUER, iss_supported);
        prop_assert!(matches!(v, mcp_oauth_core::wire::authorization_response::Verdict::Rejected(_)), "{:?}", v);
    }

    // Through the whole engine: forged callbacks never reach the token endpoint.
    #[test]
    fn forged_callbacks_never_reach_the_token_endpoint(forged in proptest::collection::vec("[ -~]{0,80}", 1..300)) {
        // Junk never ends a flow, however much of it: the real redirect
        // that follows is taken, and only its code is exchanged.
        let mut sim = Sim::new();
        for q in &forged {
            sim.stray_callbacks.push_back(CallbackEvent::Redirect { query: q.clone() });
        }
        sim.call_tool(&mut session(), Mode::Interactive).unwrap();
        prop_assert_eq!(sim.count("/token"), 1);
        let rejected = sim.notices.iter().filter(|n| matches!(n, Event::CallbackRejected { .. })).count();
        // Reported at each power of two.
        prop_assert_eq!(rejected, forged.len().ilog2() as usize + 1);
    }

    // A 401 to a token issued in the same operation is never followed by a
    // refresh or another request, whatever the grant looked like.
    #[test]
    fn a_refused_fresh_token_ends_the_operation(ttl in 1u64..7200, refresh in any::<bool>(), rotate in any::<bool>()) {
        let mut sim = Sim::new();
        sim.asc.access_ttl_s = ttl;
        sim.asc.issue_refresh = refresh;
        sim.asc.rotate = rotate;
        sim.mcp.reject_tokens = true;
        let r = sim.call_tool(&mut session(), Mode::Interactive);
        prop_assert!(matches!(r, Err(Error::TokenRefused { .. })), "{:?}", r);
        let tok = sim.requests.iter().position(|(_, u)| u.ends_with("/token")).unwrap();
        let after: Vec<&String> = sim.requests[tok + 1..].iter().map(|(_, u)| u).collect();
        prop_assert_eq!(after, vec![MCP], "one retry with the new token, nothing else");
        prop_assert_eq!(sim.refresh_ok, 0);
    }

    // A token is never stale when it arrives: whatever its lifetime (>= 1 s)
    // and the configured skew, the engine hands it out and the next call
    // made at once uses it without a refresh.
    #[test]
    fn a_token_is_never_stale_on_arrival(ttl in 1u64..100_000, skew in 0u64..600_000) {
        let mut sim = Sim::new();
        sim.asc.access_ttl_s = ttl;
        let config = || Config { expiry_skew_ms: skew, ..Config::default() };
        sim.call_tool(&mut session_with(config()), Mode::Interactive).unwrap();
        sim.requests.clear();
        sim.call_tool(&mut session_with(config()), Mode::Silent).unwrap();
        prop_assert_eq!(sim.requests.len(), 1, "{:?}", sim.requests);
        prop_assert_eq!(sim.refresh_ok, 0);
    }

    // RFC 7636 §4.2: challenge = BASE64URL(SHA256(verifier)); 43..=128 chars
    // of the unreserved alphabet.
    #[test]
    fn pkce_challenge_is_s256_of_verifier(bytes in any::<[u8; 32]>()) {
        let p = mcp_oauth_core::primitives::pkce::Pkce::from_entropy(&bytes);
        let v = p.verifier();
        prop_assert!((43..=128).contains(&v.len()));
        prop_assert!(v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)));
        prop_assert_eq!(p.challenge(), URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes())));
    }

    // PKCE through the flow: the challenge on the authorization URL is
    // S256 of the verifier on the token request (the simulated AS checks it;
    // a mismatch would fail the flow).
    #[test]
    fn pkce_holds_across_the_flow(seed in any::<u64>()) {
        let mut sim = Sim::new();
        for _ in 0..(seed % 7) {
            let _ = sim.entropy();
        }
        prop_assert!(sim.call_tool(&mut session(), Mode::Interactive).is_ok());
    }

    // RFC 8707 / MCP "Canonical Server URI": the resource string from the PRM
    // is sent verbatim, identical on authorize, token and refresh (no
    // trailing slash added, no case folding).
    #[test]
    fn resource_is_identical_everywhere(resource in prop_oneof![
        Just("https://mcp.example.com"),
        Just("https://mcp.example.com/"),
        Just("https://mcp.example.com/mcp"),
        Just("https://MCP.Example.com/mcp"),
        Just("HTTPS://mcp.example.com"),
        Just("https://mcp.example.com:443/mcp"),
    ]) {
        let mut sim = Sim::new();
        sim.mcp.prm_resource = resource.to_string();
        let mut s = session();
        sim.call_tool(&mut s, Mode::Interactive).unwrap();
        sim.now += 3_600_000;
        sim.call_tool(&mut s, Mode::Interactive).unwrap();
        let kinds: Vec<&str> = sim.resources_seen.iter().map(|(k, _)| *k).collect();
        prop_assert_eq!(kinds, ["authorize", "token", "refresh"]);
        for (_, r) in &sim.resources_seen {
            prop_assert_eq!(r.as_str(), resource);
        }
    }

    // Step-up: the union of held and challenged scopes, held first, no
    // duplicates; and never more than max_step_ups authorizations.
    #[test]
    fn step_up_union_and_cap(
        held in proptest::collection::vec("[a-c]:[rw]", 1..4),
        challenges in proptest::collection::vec(proptest::collection::vec("[a-e]:[rwx]", 1..3), 1..7),
    ) {
        let mut sim = Sim::new();
        sim.mcp.challenge_scope = Some(held.join(" "));
        let mut s = session();
        sim.call_tool(&mut s, Mode::Interactive).unwrap();
        let mut expected = mcp_oauth_core::primitives::scope::split(&held.join(" "));
        let mut stepped = 0u8;
        for ch in &challenges {
            let Ok(Outcome::Token(t)) = sim.authorize(&mut s, Mode::Silent) else { panic!() };
            let resp = ServerResponse {
                status: 403,
                www_authenticate: vec![format!("Bearer error=\"insufficient_scope\", scope=\"{}\"", ch.join(" "))],
                sent_token: Some(t.secret().to_string()),
                dpop_nonce: None,
            };
            let opens = sim.opens.len();
            match sim.respond(&mut s, &resp, Mode::Interactive) {
                Ok(Outcome::Token(_)) => {
                    stepped += 1;
                    for c in ch {
                        if !expected.contains(c) {
                            expected.push(c.clone());
                        }
                    }
                    prop_assert_eq!(sim.scopes_requested.last().unwrap().clone(), Some(expected.join(" ")));
                }
                Err(Error::StepUpLimit { .. }) => {
                    prop_assert_eq!(stepped, 3);
                    prop_assert_eq!(sim.opens.len(), opens, "no browser once capped");
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
        prop_assert!(stepped <= 3);
    }

    // RFC 9110 §11.6.1: the parser never panics, on any input at all.
    #[test]
    fn www_authenticate_never_panics(s in "\\PC*", b in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse(&s);
        let lossy = String::from_utf8_lossy(&b).into_owned();
        let _ = parse(&lossy);
        let _ = BearerChallenge::from_headers(&[s, lossy]);
    }

    // ...and on inputs shaped like real headers, it finds every Bearer param.
    #[test]
    fn www_authenticate_finds_params(
        scheme in "(?i)bearer",
        scope in "[a-z:]{1,10}( [a-z:]{1,10}){0,3}",
        rm in "https://[a-z]{1,8}\\.example/[a-z]{0,8}",
        pre in proptest::option::of("(Basic|Negotiate) [A-Za-z0-9+/]{1,10}={0,2}"),
    ) {
        let mut h = String::new();
        if let Some(p) = &pre {
            h.push_str(p);
            h.push_str(", ");
        }
        h.push_str(&format!("{scheme} Scope=\"{scope}\" , resource_metadata=\"{rm}\""));
        let b = BearerChallenge::from_headers(&[h.as_str()]);
        prop_assert_eq!(b.scope.as_deref(), Some(scope.as_str()));
        prop_assert_eq!(b.resource_metadata.as_deref(), Some(rm.as_str()));
    }

    // The hand-written URL parser (http_url.rs) never panics, on any input.
    #[test]
    fn http_url_never_panics(s in "\\PC*", b in proptest::collection::vec(any::<u8>(), 0..120)) {
        let _ = mcp_oauth_core::primitives::http_url::HttpUrl::parse(&s);
        let _ = mcp_oauth_core::primitives::http_url::HttpUrl::parse(&String::from_utf8_lossy(&b));
    }

    // ...and what it accepts, it serializes to a form that parses back to the
    // same URL (normalization is stable, so engine and host agree).
    #[test]
    fn http_url_normalization_is_stable(
        scheme in "[hH][tT][tT][pP][sS]?",
        host in prop_oneof![
            "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,10}){0,3}",
            Just("127.0.0.1".to_string()),
            Just("[::1]".to_string()),
        ],
        port in proptest::option::of(1u16..),
        path in "(/[A-Za-z0-9._~!$&'()*+,;=:@-]{0,8}){0,4}",
        query in proptest::option::of("[A-Za-z0-9=&_.-]{0,20}"),
    ) {
        let mut raw = format!("{scheme}://{host}");
        if let Some(p) = port {
            raw.push_str(&format!(":{p}"));
        }
        raw.push_str(&path);
        if let Some(q) = &query {
            raw.push('?');
            raw.push_str(q);
        }
        let u = mcp_oauth_core::primitives::http_url::HttpUrl::parse(&raw).unwrap();
        let again = mcp_oauth_core::primitives::http_url::HttpUrl::parse(u.as_str()).unwrap();
        prop_assert_eq!(again.as_str(), u.as_str());
        prop_assert_eq!(u.query(), query.as_deref());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    // No secret (access or refresh token, code, client secret, PKCE
    // verifier) in any error message, `Debug` of an effect, input or error,
    // or notice, whatever the servers do: deny, forget clients or refresh
    // tokens, revoke, demand scope, forge the redirect, time out, ask for
    // DPoP with nonces (proof claims carry the token's hash, never the token).
    #[test]
    fn no_secret_in_any_message(
        deny in any::<bool>(),
        confidential in any::<bool>(),
        forget_refresh in any::<bool>(),
        revoke in any::<bool>(),
        step_up in any::<bool>(),
        wrong_state in any::<bool>(),
        dpop in any::<bool>(),
        rounds in 1usize..4,
    ) {
        let mut sim = Sim::new();
        sim.asc.deny = deny;
        sim.asc.wrong_state = wrong_state;
        sim.asc.access_ttl_s = 60;
        if confidential {
            sim.asc.auth_methods = Some(vec!["client_secret_post".into()]);
        }
        if step_up {
            sim.mcp.required_scope = vec!["more".into()];
        }
        if dpop {
            sim.mcp.dpop = true;
            sim.mcp.dpop_nonce = Some("rs-nonce".into());
            sim.asc.dpop_algs = Some(vec!["ES256".into()]);
            sim.asc.dpop_nonce = Some("as-nonce".into());
        }
        let mut s = session();
        let mut messages = Vec::new();
        for _ in 0..rounds {
            if let Err(e) = sim.call_tool(&mut s, Mode::Interactive) {
                messages.push(format!("{e} {e:?}"));
            }
            sim.now += 120_000;
            if forget_refresh {
                sim.forget_refresh_tokens();
            }
            if revoke {
                sim.revoke_access_tokens();
            }
            s.retry();
        }
        messages.push(format!("{s:?} {:?}", s.status()));
        messages.extend(sim.notices.iter().map(|n| format!("{n:?}")));
        messages.extend(sim.transcript.iter().cloned());
        let mut secrets = sim.issued_secrets();
        secrets.extend(sim.verifiers.iter().cloned());
        for secret in &secrets {
            for m in &messages {
                prop_assert!(!m.contains(secret.as_str()), "{secret:?} leaked in {m}");
            }
        }
    }
}
