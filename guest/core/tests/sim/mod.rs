//! The simulated world for whole flows through the real engine: the shared
//! fake servers (`mcp-oauth-fake-server`, the same ones the host's demo
//! server runs) on a virtual clock, plus a store, a user and a browser. Every
//! HTTP request the engine makes is recorded so tests can assert exact counts.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::ops::{Deref, DerefMut};

use mcp_oauth_core::*;
pub use mcp_oauth_fake_server::{AsConfig, McpConfig, PrmAt, Servers, fake_signature};

pub const MCP: &str = "https://mcp.example.com/mcp";
pub const ISSUER: &str = "https://auth.example.com";
pub const REDIRECT_PORT: u16 = 43123;
pub const IDP_TOKEN: &str = "https://idp.example/token";

/// What the scripted browser does with the authorization URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Browser {
    /// Follows the AS to the loopback redirect.
    Follow,
    /// `open` fails; the user copies the URL by hand (still follows).
    FailsToOpen,
    /// Never comes back.
    Lost,
}

/// The world: servers, store, user and clock.
pub struct Sim {
    pub now: u64,
    pub store: BTreeMap<String, Vec<u8>>,
    /// The AS, IdP and MCP server (`sim.asc`, `sim.mcp`, ... through Deref).
    pub servers: Servers,
    pub consent_answer: bool,
    pub browser: Browser,
    /// Requests that reach the callback before the real redirect.
    pub stray_callbacks: VecDeque<CallbackEvent>,
    /// Tamper with the real redirect before it is delivered.
    pub tamper_redirect: Option<fn(String) -> String>,
    pub listen_error: Option<String>,
    /// The store answers every read with an error (a shared store that is down).
    pub store_down: bool,
    /// The store refuses every lock (held past the host's deadline).
    pub lock_refused: bool,
    /// The user cancels the device-grant wait at this pause (0-based).
    pub cancel_pause_at: Option<usize>,
    callbacks: VecDeque<CallbackEvent>,
    entropy_seed: u64,

    /// Every request the engine sent (and every MCP call): (method, url).
    pub requests: Vec<(Method, String)>,
    pub consents: Vec<ConsentRequest>,
    pub opens: Vec<String>,
    pub notices: Vec<Event>,
    /// Pages the listener answered the browser with, in order.
    pub pages: Vec<Page>,
    /// Every device-grant pause asked for (ms), with the clock when asked.
    pub pauses: Vec<(u64, u64)>,
    /// Record locks currently held, and how many were ever taken.
    pub held_locks: Vec<String>,
    pub locks_taken: usize,
    /// Client assertions the simulated host signed.
    pub signatures: usize,
    /// DPoP proofs the simulated host made: (key id, claims JSON).
    pub proofs: Vec<(String, String)>,
    /// `DPoP` headers on requests to the MCP server.
    pub mcp_proofs: usize,
    /// `Debug` of every effect and input, and every PKCE verifier the engine
    /// sent (for the no-secret-in-any-message property).
    pub transcript: Vec<String>,
    pub verifiers: Vec<String>,
}

impl Deref for Sim {
    type Target = Servers;
    fn deref(&self) -> &Servers {
        &self.servers
    }
}

impl DerefMut for Sim {
    fn deref_mut(&mut self) -> &mut Servers {
        &mut self.servers
    }
}

impl Default for Sim {
    fn default() -> Self {
        Self::new()
    }
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Post => "POST",
    }
}

impl Sim {
    pub fn new() -> Self {
        let mut servers = Servers::new(McpConfig::at(MCP), AsConfig::at(ISSUER));
        servers.idp_token_url = Some(IDP_TOKEN.into());
        Self {
            now: 1_700_000_000_000,
            store: BTreeMap::new(),
            servers,
            consent_answer: true,
            browser: Browser::Follow,
            stray_callbacks: VecDeque::new(),
            tamper_redirect: None,
            listen_error: None,
            store_down: false,
            lock_refused: false,
            cancel_pause_at: None,
            callbacks: VecDeque::new(),
            entropy_seed: 0x9e37_79b9_7f4a_7c15,
            requests: vec![],
            consents: vec![],
            opens: vec![],
            notices: vec![],
            pages: vec![],
            pauses: vec![],
            held_locks: vec![],
            locks_taken: 0,
            signatures: 0,
            proofs: vec![],
            mcp_proofs: 0,
            transcript: vec![],
            verifiers: vec![],
        }
    }

    /// A legacy (2025-03-26) world: no PRM; the AS lives at the server origin.
    pub fn legacy(serve_metadata: bool) -> Self {
        let mut s = Self::new();
        s.mcp.prm_at = PrmAt::Nowhere;
        s.asc = AsConfig::at("https://mcp.example.com");
        s.asc.serve_metadata = serve_metadata;
        s.asc.iss_param = false;
        s
    }

    pub fn entropy(&mut self) -> Entropy {
        let mut out = [0u8; 64];
        for b in out.iter_mut() {
            self.entropy_seed ^= self.entropy_seed << 13;
            self.entropy_seed ^= self.entropy_seed >> 7;
            self.entropy_seed ^= self.entropy_seed << 17;
            *b = self.entropy_seed as u8;
        }
        Entropy(out)
    }

    pub fn http_count(&self) -> usize {
        self.requests.len()
    }

    /// Requests to the authorization server (not the MCP server or its PRM).
    pub fn as_requests(&self) -> usize {
        self.requests
            .iter()
            .filter(|(_, u)| {
                u.starts_with(&self.asc.base) && !u.starts_with(MCP) && !u.contains("oauth-protected-resource")
            })
            .count()
    }

    pub fn count(&self, needle: &str) -> usize {
        self.requests.iter().filter(|(_, u)| u.contains(needle)).count()
    }

    /// One request to the fake servers; anything the client did that the
    /// spec forbids fails the test here.
    fn send(&mut self, req: mcp_oauth_fake_server::Request) -> mcp_oauth_fake_server::Response {
        let resp = self.servers.handle(self.now, &req);
        assert!(
            self.servers.violations.is_empty(),
            "client broke the spec: {:?}",
            self.servers.violations
        );
        resp
    }

    // ---- driving the engine -------------------------------------------

    /// Performs one effect the way a host would.
    pub fn perform(&mut self, effect: Effect) -> Input {
        self.transcript.push(format!("{effect:?}"));
        if let Effect::Http(req) = &effect {
            let form = String::from_utf8_lossy(&req.body).into_owned();
            for pair in form.split('&') {
                if let Some(v) = pair.strip_prefix("code_verifier=") {
                    self.verifiers.push(v.to_string());
                }
            }
        }
        let input = self.perform_inner(effect);
        self.transcript.push(format!("{input:?}"));
        input
    }

    fn perform_inner(&mut self, effect: Effect) -> Input {
        match effect {
            Effect::Http(req) => {
                // Only the refresh itself runs under the record lock.
                let under_lock = self.held_locks.is_empty() || req.url.ends_with("/token");
                assert!(under_lock, "{} while holding {:?}", req.url, self.held_locks);
                self.requests.push((req.method, req.url.clone()));
                let resp = self.send(mcp_oauth_fake_server::Request {
                    method: method_name(req.method).into(),
                    url: req.url,
                    headers: req.headers,
                    body: req.body,
                });
                Input::Http(Ok(HttpResponse {
                    status: resp.status,
                    headers: resp.headers,
                    body: resp.body,
                }))
            }
            Effect::Load { .. } if self.store_down => {
                Input::LoadFailed("the store redis://cache:6379/0 cannot be reached: connection refused".into())
            }
            Effect::Load { key } => Input::Loaded(self.store.get(&key).cloned()),
            Effect::Save { key, value } => {
                self.store.insert(key, value);
                Input::Stored(Ok(()))
            }
            Effect::Delete { key } => {
                self.store.remove(&key);
                Input::Stored(Ok(()))
            }
            Effect::Lock { .. } if self.lock_refused => Input::Locked(Err(
                "timed out after 45 s waiting for the lock mcp-oauth:{tokens-x}:lock (held by process 7)".into(),
            )),
            Effect::Lock { key } => {
                assert!(!self.held_locks.contains(&key), "lock taken twice");
                self.held_locks.push(key);
                self.locks_taken += 1;
                Input::Locked(Ok(()))
            }
            Effect::Unlock { key } => {
                let before = self.held_locks.len();
                self.held_locks.retain(|k| *k != key);
                assert_eq!(self.held_locks.len() + 1, before, "unlock of a lock not held");
                Input::Ack
            }
            Effect::Sign { input } => {
                self.signatures += 1;
                Input::Signed(Ok(fake_signature(&input)))
            }
            Effect::DpopProof { key_id, claims } => {
                // A stand-in key per key id: the fake servers bind to the jwk.
                use base64::Engine as _;
                let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
                let header = format!(r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{{"kty":"EC","kid":"{key_id}"}}}}"#);
                let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
                self.proofs.push((key_id, claims));
                Input::DpopProof(Ok(format!("{input}.{}", b64(&fake_signature(input.as_bytes())))))
            }
            // A new grant never holds the record lock: the user may take minutes.
            Effect::Listen { .. } | Effect::Consent(_) | Effect::OpenBrowser { .. } if !self.held_locks.is_empty() => {
                panic!("{effect:?} while holding {:?}", self.held_locks)
            }
            Effect::Listen { port } => match &self.listen_error {
                Some(e) => Input::Listening(Err(e.clone())),
                None => Input::Listening(Ok(format!(
                    "http://127.0.0.1:{}/callback",
                    port.unwrap_or(REDIRECT_PORT)
                ))),
            },
            Effect::Consent(ask) => {
                self.consents.push(ask);
                Input::Consent(self.consent_answer)
            }
            Effect::OpenBrowser { url } => {
                self.opens.push(url.clone());
                self.callbacks.extend(self.stray_callbacks.drain(..));
                if self.browser != Browser::Lost {
                    let q = self.visit_authorize(&url);
                    let q = match self.tamper_redirect {
                        Some(t) => t(q),
                        None => q,
                    };
                    self.callbacks.push_back(CallbackEvent::Redirect { query: q });
                }
                match self.browser {
                    Browser::FailsToOpen => Input::Opened(Err("no display".into())),
                    _ => Input::Opened(Ok(())),
                }
            }
            Effect::AwaitCallback { timeout_ms } => match self.callbacks.pop_front() {
                Some(ev) => {
                    self.now += 1_000;
                    Input::Callback(ev)
                }
                None => {
                    self.now += timeout_ms;
                    Input::Callback(CallbackEvent::TimedOut)
                }
            },
            Effect::Notify(ev) => {
                self.notices.push(ev);
                Input::Ack
            }
            Effect::Pause { ms } => {
                assert!(
                    self.held_locks.is_empty(),
                    "a device wait while holding {:?}",
                    self.held_locks
                );
                let n = self.pauses.len();
                self.pauses.push((self.now, ms));
                if self.cancel_pause_at == Some(n) {
                    return Input::Paused(Err("cancelled by the user".into()));
                }
                self.now += ms;
                Input::Paused(Ok(()))
            }
            Effect::Respond(page) => {
                self.pages.push(page);
                Input::Ack
            }
        }
    }

    /// The browser at the AS: the page redirects to the loopback callback;
    /// the query of that redirect is what the listener receives.
    fn visit_authorize(&mut self, auth_url: &str) -> String {
        assert!(
            auth_url.starts_with(&format!("{}/", self.asc.base)),
            "browser sent to the wrong AS: {auth_url}"
        );
        let resp = self.send(mcp_oauth_fake_server::Request {
            method: "GET".into(),
            url: auth_url.into(),
            ..Default::default()
        });
        assert_eq!(resp.status, 302, "the AS refused the authorization request");
        let location = resp.header("location").expect("a redirect");
        location.split_once('?').map(|(_, q)| q.to_string()).unwrap_or_default()
    }

    /// Runs an operation to its end.
    pub fn run(&mut self, s: &mut Session, first: Step) -> Result<Outcome, Error> {
        let mut step = first;
        for _ in 0..2_000 {
            step = match step {
                Step::Effect(e) => {
                    let input = self.perform(e);
                    s.handle(self.now, input)
                }
                Step::Wait(_) | Step::Busy(_) => panic!("single caller should never wait"),
                Step::Done(r) => {
                    assert!(self.held_locks.is_empty(), "flow ended holding {:?}", self.held_locks);
                    return r;
                }
            };
        }
        panic!("flow did not end in 2,000 steps");
    }

    pub fn authorize(&mut self, s: &mut Session, mode: Mode) -> Result<Outcome, Error> {
        let e = self.entropy();
        let first = s.authorize(self.now, mode, e);
        self.run(s, first)
    }

    pub fn respond(&mut self, s: &mut Session, resp: &ServerResponse, mode: Mode) -> Result<Outcome, Error> {
        let e = self.entropy();
        let first = s.on_response(self.now, resp, mode, e);
        self.run(s, first)
    }

    pub fn logout(&mut self, s: &mut Session) -> Result<Outcome, Error> {
        self.logout_revoking(s, false)
    }

    pub fn logout_revoking(&mut self, s: &mut Session, revoke: bool) -> Result<Outcome, Error> {
        let first = s.logout(self.now, revoke);
        self.run(s, first)
    }

    /// What an agent does: get a token silently, call the tool, hand any
    /// 401/403 to the engine, retry with the new token.
    pub fn call_tool(&mut self, s: &mut Session, mode: Mode) -> Result<(), Error> {
        let mut token = match self.authorize(s, Mode::Silent) {
            Ok(Outcome::Token(t)) => Some(t),
            Err(Error::AuthorizationRequired) => None,
            Err(e) => return Err(e),
            Ok(o) => panic!("unexpected {o:?}"),
        };
        for _ in 0..8 {
            let proof = match &token {
                Some(t) if t.dpop => {
                    let e = self.entropy();
                    let first = s.dpop_proof(self.now, "POST", MCP, e);
                    match self.run(s, first)? {
                        Outcome::Proof(Some(p)) => Some(p),
                        o => panic!("a bound token needs a proof, got {o:?}"),
                    }
                }
                _ => None,
            };
            let resp = self.mcp_call_with(token.as_ref(), proof.as_deref());
            if resp.status == 200 {
                return Ok(());
            }
            match self.respond(s, &resp, mode)? {
                Outcome::Token(t) => token = Some(t),
                o => panic!("unexpected {o:?} for {}", resp.status),
            }
        }
        panic!("too many retries");
    }

    /// One MCP request (counted), carrying `token` if any, as Bearer.
    pub fn mcp_call(&mut self, token: Option<&str>) -> ServerResponse {
        self.requests.push((Method::Post, MCP.to_string()));
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        if let Some(t) = token {
            headers.push(("authorization".into(), format!("Bearer {t}")));
        }
        self.mcp_send(headers, token)
    }

    /// One MCP request with the engine's token as the host sends it: the
    /// header from `authorization_header` (DPoP or Bearer) and the proof.
    pub fn mcp_call_with(&mut self, token: Option<&AccessToken>, proof: Option<&str>) -> ServerResponse {
        self.requests.push((Method::Post, MCP.to_string()));
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        if let Some(t) = token {
            headers.push(("authorization".into(), t.authorization_header()));
        }
        if let Some(p) = proof {
            self.mcp_proofs += 1;
            headers.push(("dpop".into(), p.to_string()));
        }
        self.mcp_send(headers, token.map(|t| t.secret()))
    }

    fn mcp_send(&mut self, headers: Vec<(String, String)>, token: Option<&str>) -> ServerResponse {
        let resp = self.send(mcp_oauth_fake_server::Request {
            method: "POST".into(),
            url: MCP.into(),
            headers,
            body:
                br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#
                    .to_vec(),
        });
        ServerResponse {
            status: resp.status,
            www_authenticate: resp
                .headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("www-authenticate"))
                .map(|(_, v)| v.clone())
                .collect(),
            sent_token: token.map(String::from),
            dpop_nonce: resp.header("dpop-nonce").map(String::from),
        }
    }
}

/// A 200 JSON response, for tests that answer the engine by hand.
pub fn json(v: serde_json::Value) -> HttpResponse {
    HttpResponse {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: serde_json::to_vec(&v).unwrap(),
    }
}

/// A bare response with `code` and `body`.
pub fn status(code: u16, body: &str) -> HttpResponse {
    HttpResponse {
        status: code,
        headers: vec![],
        body: body.as_bytes().to_vec(),
    }
}

/// Decodes the stored token record for assertions.
pub fn stored_tokens(sim: &Sim) -> Option<serde_json::Value> {
    sim.store
        .iter()
        .find(|(k, _)| k.starts_with("tokens-"))
        .map(|(_, v)| serde_json::from_slice::<serde_json::Value>(v).unwrap()["record"]["tokens"].clone())
}

pub fn session() -> Session {
    Session::new(MCP, Config::default()).unwrap()
}

pub fn session_with(config: Config) -> Session {
    Session::new(MCP, config).unwrap()
}

/// The URLs of every request so far, in order: what flow tests compare.
pub fn urls(sim: &Sim) -> Vec<String> {
    sim.requests.iter().map(|(_, u)| u.clone()).collect()
}

/// The protected resource metadata the MCP server's 401 points to.
pub const PRM_HDR: &str = "https://mcp.example.com/prm";
/// The protected resource metadata at its path-aware well-known URL.
pub const PRM_PATH: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
/// The authorization server's metadata (RFC 8414), registration and token endpoints.
pub const ASM: &str = "https://auth.example.com/.well-known/oauth-authorization-server";
pub const REG: &str = "https://auth.example.com/register";
pub const TOK: &str = "https://auth.example.com/token";

/// A resource server that wants DPoP, an AS that binds with ES256.
pub fn dpop_world() -> Sim {
    let mut sim = Sim::new();
    sim.mcp.dpop = true;
    sim.asc.dpop_algs = Some(vec!["ES256".into()]);
    sim
}
