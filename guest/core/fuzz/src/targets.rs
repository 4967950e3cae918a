//! Fuzz target bodies: every parser of input from outside the engine, and
//! the whole session fed arbitrary answers to its effects. Each returns
//! normally or panics on a broken invariant (a finding). Shared by the
//! cargo-fuzz binaries and the stable corpus replay test.

use arbitrary::{Arbitrary, Unstructured};
use mcp_oauth_core::primitives::http_url::HttpUrl;
use mcp_oauth_core::primitives::url_safety::{check_loopback_redirect, check_url};
use mcp_oauth_core::primitives::www_authenticate::{BearerChallenge, parse};
use mcp_oauth_core::wire::authorization_response::{self, Verdict};
use mcp_oauth_core::wire::{dpop, grants, metadata, registration, token};
use mcp_oauth_core::*;

const MCP: &str = "https://mcp.example.com/mcp";
const ISSUER: &str = "https://auth.example.com";
const REDIRECT: &str = "http://127.0.0.1:5000/callback";

fn text(data: &[u8]) -> &str {
    core::str::from_utf8(data).unwrap_or("")
}

fn response(data: &[u8]) -> HttpResponse {
    let (status, body) = match data.split_first() {
        Some((s, rest)) => (if *s < 128 { 200 } else { 400 + u16::from(*s % 100) }, rest),
        None => (200, data),
    };
    HttpResponse {
        status,
        headers: Vec::new(),
        body: body.to_vec(),
    }
}

/// The DPoP nonce signals: an AS's 400 and a resource server's 401. First
/// byte: which; the rest, split at the first newline: the nonce header, then
/// the body or challenge. A nonce handed back is always one §8.1 allows and
/// was sent by the server.
pub fn dpop_nonce(data: &[u8]) {
    let Some((which, rest)) = data.split_first() else {
        return;
    };
    let s = String::from_utf8_lossy(rest);
    let (nonce, other) = s.split_once('\n').unwrap_or((&s, ""));
    let got = if which % 2 == 0 {
        let resp = HttpResponse {
            status: 400,
            headers: vec![(String::from("DPoP-Nonce"), String::from(nonce))],
            body: other.as_bytes().to_vec(),
        };
        dpop::as_nonce_challenge(&resp)
    } else {
        let values: Vec<&str> = other.split('\n').collect();
        dpop::rs_nonce_challenge(401, &values, Some(nonce))
    };
    if let Some(n) = got {
        assert!(dpop::valid_nonce(&n) && n == nonce, "nonce {n:?} from {nonce:?}");
    }
}

pub fn www_authenticate(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let _ = parse(&s);
    let values: Vec<&str> = s.split('\n').collect();
    let c = BearerChallenge::from_headers(&values);
    if let Some(rm) = &c.resource_metadata {
        assert!(
            s.contains(rm.as_str()) || rm.is_empty() || s.contains('\\'),
            "invented {rm:?}"
        );
    }
}

pub fn prm(data: &[u8]) {
    let server = HttpUrl::parse(MCP).unwrap();
    if let Ok(prm) = metadata::parse_prm(data, MCP, &server) {
        assert!(metadata::resource_covers(&prm.resource, &server));
    }
    let _ = metadata::prm_candidates(&server, Some(text(data)));
}

pub fn as_metadata(data: &[u8]) {
    if let Ok(md) = metadata::parse_as_metadata(data, ISSUER) {
        assert_eq!(md.issuer, ISSUER);
        assert!(md.check_endpoints().is_ok(), "accepted unsafe endpoints");
    }
    let _ = metadata::parse_legacy_metadata(data, "https://mcp.example.com");
    let _ = metadata::as_metadata_candidates(text(data));
}

pub fn registration_response(data: &[u8]) {
    if let Ok(r) = registration::parse_registration(&response(data), ISSUER, Some(REDIRECT)) {
        assert!(
            r.usable_for(ISSUER, Some(REDIRECT)),
            "a registration the flow cannot use"
        );
    }
}

pub fn token_response(data: &[u8]) {
    let resp = response(data);
    if let Ok(t) = token::parse_token_response(&resp, 1_700_000_000_000, "c", Some("a"), Some("r")) {
        assert!(token::is_b64token(&t.access_token), "accepted {:?}", t.access_token);
        // Debug hides the token, unless a visible field (scope, client id)
        // happens to contain the same text.
        // (Debug quotes strings: look for the quoted token, so a short token
        // is not "found" inside a field name.)
        let quoted = format!("{:?}", t.access_token);
        let visible = format!("{:?}{:?}", t.scope, t.client_id);
        assert!(!format!("{t:?}").contains(&quoted) || visible.contains(&quoted));
    }
    let _ = grants::parse_token_exchange(&resp);
}

pub fn callback_query(data: &[u8]) {
    let q = text(data);
    // The expected state never appears in random input unless the fuzzer
    // finds it; a Code verdict must then carry exactly this state.
    let state = "s7Kx2";
    if let Verdict::Code(_) = authorization_response::check(q, state, ISSUER, data.first() == Some(&b'i')) {
        // The state may arrive percent-encoded; it must arrive.
        assert!(q.contains("state="), "a code without any state");
    }
}

pub fn pasted_url(data: &[u8]) {
    if let Ok(q) = authorization_response::pasted_query(text(data), REDIRECT) {
        assert!(!q.is_empty());
        // Accepted means: the same strict parser reads this very redirect
        // URI (scheme case and a port's leading zeros normalize away).
        let parsed = HttpUrl::parse(text(data).trim()).expect("accepted text parses");
        assert!(
            parsed.as_str().starts_with(&format!("{REDIRECT}?")),
            "{}",
            parsed.as_str()
        );
    }
}

pub fn http_url(data: &[u8]) {
    let s = text(data);
    if let Ok(u) = HttpUrl::parse(s) {
        let again = HttpUrl::parse(u.as_str()).expect("a parsed URL parses again");
        assert_eq!(again.as_str(), u.as_str(), "normalization is stable");
        assert!(!u.as_str().bytes().any(|b| b <= b' ' || b == b'\\' || b >= 0x7f));
    }
    if let Ok(u) = check_url(s, "server") {
        assert!(u.scheme() == "https" || u.as_str().starts_with("http://"));
    }
    let _ = check_loopback_redirect(s);
}

pub fn stored_records(data: &[u8]) {
    use mcp_oauth_core::records;
    let _ = records::decode_binding(Some(data), MCP);
    let _ = records::decode_metadata(Some(data), ISSUER);
    let _ = records::decode_registration(Some(data), ISSUER);
    if let Some(t) = records::decode_tokens(Some(data), MCP, ISSUER) {
        let _ = t.is_fresh(0, 0);
    }
}

/// What the fuzzer chooses for one answer.
#[derive(Arbitrary, Debug)]
enum Body {
    Raw(Vec<u8>),
    Prm { resource_is_ours: bool, issuer: u8 },
    Metadata { s256: bool, registration: bool },
    Token { expires_in: u16, refresh: bool, token: u8 },
    Registration { with_redirect: bool },
    OAuthError { code: u8 },
}

/// Up to `max` bytes of the input as text.
fn some_text(u: &mut Unstructured<'_>, max: usize) -> String {
    let n = u.int_in_range(0..=max).unwrap_or(0);
    String::from_utf8_lossy(u.bytes(n).unwrap_or(&[])).into_owned()
}

fn pick<'a>(i: u8, options: &[&'a str]) -> &'a str {
    options[usize::from(i) % options.len()]
}

fn body(b: Body) -> Vec<u8> {
    let s = match b {
        Body::Raw(v) => return v,
        Body::Prm {
            resource_is_ours,
            issuer,
        } => format!(
            r#"{{"resource":"{}","authorization_servers":["{}"]}}"#,
            if resource_is_ours {
                MCP
            } else {
                "https://other.example/mcp"
            },
            pick(
                issuer,
                &[
                    ISSUER,
                    "https://auth2.example.com",
                    "javascript:alert(1)",
                    "http://evil.example"
                ]
            )
        ),
        Body::Metadata { s256, registration } => format!(
            r#"{{"issuer":"{ISSUER}","authorization_endpoint":"{ISSUER}/authorize","token_endpoint":"{ISSUER}/token","response_types_supported":["code"]{}{}}}"#,
            if s256 {
                r#","code_challenge_methods_supported":["S256"]"#
            } else {
                ""
            },
            if registration {
                r#","registration_endpoint":"https://auth.example.com/register""#
            } else {
                ""
            }
        ),
        Body::Token {
            expires_in,
            refresh,
            token,
        } => format!(
            r#"{{"access_token":"{}","token_type":"Bearer","expires_in":{expires_in}{}}}"#,
            pick(token, &["at-1", "at-2", "a\r\nb", "at-3"]),
            if refresh { r#","refresh_token":"rt-1""# } else { "" }
        ),
        Body::Registration { with_redirect } => format!(
            r#"{{"client_id":"c1"{}}}"#,
            if with_redirect {
                r#","redirect_uris":["http://127.0.0.1:5000/callback"]"#
            } else {
                ""
            }
        ),
        Body::OAuthError { code } => format!(
            r#"{{"error":"{}"}}"#,
            pick(
                code,
                &["invalid_grant", "invalid_client", "access_denied", "server_error"]
            )
        ),
    };
    s.into_bytes()
}

/// Feeds the session arbitrary (mostly well-typed) answers to whatever it
/// asks; every operation must end within a bounded number of steps, with a
/// typed outcome, and never panic.
pub fn session(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let machine = u.arbitrary::<u8>().unwrap_or(0).is_multiple_of(4);
    let config = Config {
        client_id: machine.then(|| String::from("m2m")),
        grant: if machine {
            Grant::ClientCredentials
        } else {
            Grant::AuthorizationCode
        },
        ..Config::default()
    };
    let Ok(mut s) = Session::new(MCP, config) else { return };
    let mut now: u64 = 1_700_000_000_000;
    let mut store: Vec<(String, Vec<u8>)> = Vec::new();
    let mut last_state = String::new();
    for _ in 0..6 {
        let Ok(op) = u.arbitrary::<u8>() else { break };
        let entropy = Entropy([op | 1; 64]);
        let mode = if op & 1 == 0 { Mode::Interactive } else { Mode::Silent };
        let mut step = match op % 5 {
            0 | 1 => s.authorize(now, mode, entropy),
            2 => {
                let status = if op & 8 == 0 { 401 } else { 403 };
                let header = some_text(&mut u, 40);
                let resp = ServerResponse {
                    status,
                    www_authenticate: vec![header],
                    sent_token: u.arbitrary::<bool>().unwrap_or(false).then(|| String::from("at-1")),
                    dpop_nonce: u.arbitrary::<bool>().unwrap_or(false).then(|| String::from("n-1")),
                };
                s.on_response(now, &resp, mode, entropy)
            }
            3 => s.logout(now, u.arbitrary::<bool>().unwrap_or(false)),
            _ => {
                s.retry();
                s.inspect(now)
            }
        };
        let mut steps = 0;
        loop {
            steps += 1;
            assert!(steps < 400, "an operation did not end in 400 steps");
            now += u64::from(u.arbitrary::<u16>().unwrap_or(1000));
            let effect = match step {
                Step::Done(Ok(Outcome::Token(t))) => {
                    assert!(token::is_b64token(t.secret()));
                    break;
                }
                Step::Done(_) => break,
                Step::Wait(_) | Step::Busy(_) => panic!("a single caller waited"),
                Step::Effect(e) => e,
            };
            let wrong = u.arbitrary::<u8>().unwrap_or(1) == 0;
            let input = if wrong {
                Input::Ack
            } else {
                answer(&mut u, effect, &mut store, &mut last_state)
            };
            step = s.handle(now, input);
        }
    }
}

fn answer(u: &mut Unstructured<'_>, effect: Effect, store: &mut Vec<(String, Vec<u8>)>, state: &mut String) -> Input {
    let ok = !u.arbitrary::<u8>().unwrap_or(0).is_multiple_of(8);
    let err = || String::from("no");
    match effect {
        Effect::Http(_) => {
            if !ok {
                return Input::Http(Err(TransportError { message: err() }));
            }
            let status = pick(
                u.arbitrary().unwrap_or(0),
                &["200", "200", "201", "400", "401", "404", "500"],
            );
            let b = u.arbitrary::<Body>().map(body).unwrap_or_default();
            Input::Http(Ok(HttpResponse {
                status: status.parse().unwrap_or(200),
                headers: Vec::new(),
                body: b,
            }))
        }
        Effect::Load { key } => Input::Loaded(if ok {
            store.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| v.clone())
        } else {
            Some(u.arbitrary::<Vec<u8>>().unwrap_or_default())
        }),
        Effect::Save { key, value } => {
            store.push((key, value));
            Input::Stored(if ok { Ok(()) } else { Err(err()) })
        }
        Effect::Delete { key } => {
            store.retain(|(k, _)| *k != key);
            Input::Stored(Ok(()))
        }
        Effect::Lock { .. } => Input::Locked(if ok { Ok(()) } else { Err(err()) }),
        Effect::Unlock { .. } | Effect::Notify(_) | Effect::Respond(_) => Input::Ack,
        Effect::Pause { .. } => Input::Paused(if ok { Ok(()) } else { Err(err()) }),
        Effect::Sign { .. } => Input::Signed(if ok { Ok(vec![7; 64]) } else { Err(err()) }),
        Effect::DpopProof { .. } => Input::DpopProof(if ok {
            Ok(String::from("eyJh.eyJj.c2ln"))
        } else {
            Err(err())
        }),
        Effect::Listen { .. } => Input::Listening(if ok {
            Ok(String::from(REDIRECT))
        } else if u.arbitrary::<bool>().unwrap_or(false) {
            Ok(String::from("http://evil.example/callback"))
        } else {
            Err(err())
        }),
        Effect::Consent(_) => Input::Consent(ok),
        Effect::OpenBrowser { url } => {
            if let Some(q) = url.split_once('?').map(|(_, q)| q) {
                for pair in q.split('&') {
                    if let Some(v) = pair.strip_prefix("state=") {
                        *state = String::from(v);
                    }
                }
            }
            Input::Opened(if ok { Ok(()) } else { Err(err()) })
        }
        Effect::AwaitCallback { .. } => Input::Callback(match u.arbitrary::<u8>().unwrap_or(0) % 6 {
            0 => CallbackEvent::TimedOut,
            1 => CallbackEvent::Cancelled,
            2 => CallbackEvent::Redirect {
                query: some_text(u, 60),
            },
            3 => CallbackEvent::Redirect {
                query: format!("error=access_denied&state={state}&iss=https%3A%2F%2Fauth.example.com"),
            },
            _ => CallbackEvent::Redirect {
                query: format!("code=c1&state={state}&iss=https%3A%2F%2Fauth.example.com"),
            },
        }),
    }
}
