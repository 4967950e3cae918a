//! An in-memory authorization server, MCP server, browser and store, on a
//! virtual clock, to run whole flows through the real engine. Every HTTP
//! request the client makes is recorded so tests can assert exact counts.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use mcp_oauth_core::*;
use sha2::{Digest, Sha256};
use url::Url;

pub const MCP: &str = "https://mcp.example.com/mcp";
pub const ISSUER: &str = "https://auth.example.com";
pub const REDIRECT_PORT: u16 = 43123;
pub const IDP_TOKEN: &str = "https://idp.example/token";

/// The simulated host's "ES256" signature: SHA-256 of the input, twice (64
/// bytes). The simulated AS checks it the same way.
pub fn fake_signature(input: &[u8]) -> Vec<u8> {
    let a = Sha256::digest(input);
    let mut out = a.to_vec();
    out.extend_from_slice(&Sha256::digest(a));
    out
}

/// Where the MCP server publishes its protected resource metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrmAt {
    /// Only at the URL named in the 401 header.
    Header,
    /// At the path-aware well-known URL (and named in no header).
    PathAware,
    /// At the root well-known URL (and named in no header).
    Root,
    /// Nowhere: a 2025-03-26 server.
    Nowhere,
}

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

#[derive(Clone, Debug)]
pub struct AsConfig {
    /// Origin of the AS endpoints.
    pub base: String,
    pub issuer: String,
    /// URLs at which the metadata document is served.
    pub metadata_urls: Vec<String>,
    /// The `issuer` the document claims (normally `issuer`).
    pub claimed_issuer: String,
    pub registration: bool,
    pub cimd: bool,
    pub s256: bool,
    pub iss_param: bool,
    pub auth_methods: Option<Vec<String>>,
    pub scopes_supported: Option<Vec<String>>,
    pub access_ttl_s: u64,
    pub issue_refresh: bool,
    pub rotate: bool,
    /// The user clicks "deny" at the AS.
    pub deny: bool,
    /// The AS has forgotten every client (answers invalid_client).
    pub forget_clients: bool,
    /// Serve metadata at all (legacy servers may not).
    pub serve_metadata: bool,
}

impl Default for AsConfig {
    fn default() -> Self {
        Self {
            base: ISSUER.into(),
            issuer: ISSUER.into(),
            metadata_urls: vec![format!("{ISSUER}/.well-known/oauth-authorization-server")],
            claimed_issuer: ISSUER.into(),
            registration: true,
            cimd: false,
            s256: true,
            iss_param: true,
            auth_methods: None,
            scopes_supported: None,
            access_ttl_s: 3600,
            issue_refresh: true,
            rotate: true,
            deny: false,
            forget_clients: false,
            serve_metadata: true,
        }
    }
}

#[derive(Clone, Debug)]
struct Client {
    redirect_uris: Vec<String>,
    secret: Option<String>,
    method: String,
}

#[derive(Clone, Debug)]
struct CodeGrant {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    resource: String,
    scope: String,
}

#[derive(Clone, Debug)]
struct RtState {
    client_id: String,
    resource: String,
    scope: String,
    used: bool,
    family: u64,
}

#[derive(Clone, Debug)]
struct AtState {
    resource: String,
    scope: Vec<String>,
    expires_at: u64,
    revoked: bool,
    family: u64,
}

/// The world: servers, store, user and clock.
pub struct Sim {
    pub now: u64,
    pub store: BTreeMap<String, Vec<u8>>,
    pub asc: AsConfig,
    pub prm_at: PrmAt,
    pub prm_resource: String,
    pub prm_scopes: Option<Vec<String>>,
    /// `scope` in the 401 challenge.
    pub challenge_scope: Option<String>,
    /// Scopes the tool call needs (403 insufficient_scope otherwise).
    pub required_scope: Vec<String>,
    /// When set, the MCP server demands this scope on every call, forever.
    pub always_insufficient: Option<String>,
    pub consent_answer: bool,
    pub browser: Browser,
    /// Requests that reach the callback before the real redirect.
    pub stray_callbacks: VecDeque<CallbackEvent>,
    /// Tamper with the real redirect before it is delivered.
    pub tamper_redirect: Option<fn(String) -> String>,
    /// Pre-registered clients known to the AS.
    pub preregistered: Vec<(String, Option<String>, String)>,
    pub listen_error: Option<String>,
    /// Origins of authorization servers that were replaced: their token
    /// endpoint refuses every grant.
    pub retired_bases: Vec<String>,

    clients: HashMap<String, Client>,
    codes: HashMap<String, CodeGrant>,
    refresh: HashMap<String, RtState>,
    access: HashMap<String, AtState>,
    revoked_families: Vec<u64>,
    counter: u64,
    callbacks: VecDeque<CallbackEvent>,
    entropy_seed: u64,

    /// Every request the client sent: (method, url).
    pub requests: Vec<(Method, String)>,
    pub consents: Vec<ConsentRequest>,
    pub opens: Vec<String>,
    pub notices: Vec<Event>,
    /// `resource` as seen by the AS on authorize, token and refresh.
    pub resources_seen: Vec<(&'static str, String)>,
    /// `scope` as requested on each authorize.
    pub scopes_requested: Vec<Option<String>>,
    pub reuse_detected: bool,
    pub refresh_ok: usize,
    /// Record locks currently held, and how many were ever taken.
    pub held_locks: Vec<String>,
    pub locks_taken: usize,
    /// Client assertions the simulated host signed.
    pub signatures: usize,
    /// ID-JAGs the simulated IdP issued.
    id_jags: Vec<String>,
}

pub fn json(v: serde_json::Value) -> HttpResponse {
    HttpResponse {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: serde_json::to_vec(&v).unwrap(),
    }
}

pub fn status(code: u16, body: &str) -> HttpResponse {
    HttpResponse {
        status: code,
        headers: vec![],
        body: body.as_bytes().to_vec(),
    }
}

fn oauth_err(code: u16, error: &str) -> HttpResponse {
    let mut r = json(serde_json::json!({"error": error, "error_description": format!("sim: {error}")}));
    r.status = code;
    r
}

impl Default for Sim {
    fn default() -> Self {
        Self::new()
    }
}

impl Sim {
    pub fn new() -> Self {
        Self {
            now: 1_700_000_000_000,
            store: BTreeMap::new(),
            asc: AsConfig::default(),
            prm_at: PrmAt::Header,
            prm_resource: MCP.into(),
            prm_scopes: None,
            challenge_scope: None,
            required_scope: vec![],
            always_insufficient: None,
            consent_answer: true,
            browser: Browser::Follow,
            stray_callbacks: VecDeque::new(),
            tamper_redirect: None,
            preregistered: vec![],
            listen_error: None,
            retired_bases: vec![],
            clients: HashMap::new(),
            codes: HashMap::new(),
            refresh: HashMap::new(),
            access: HashMap::new(),
            revoked_families: vec![],
            counter: 0,
            callbacks: VecDeque::new(),
            entropy_seed: 0x9e37_79b9_7f4a_7c15,
            requests: vec![],
            consents: vec![],
            opens: vec![],
            notices: vec![],
            resources_seen: vec![],
            scopes_requested: vec![],
            reuse_detected: false,
            refresh_ok: 0,
            held_locks: vec![],
            locks_taken: 0,
            signatures: 0,
            id_jags: vec![],
        }
    }

    /// A legacy (2025-03-26) world: no PRM; the AS lives at the server origin.
    pub fn legacy(serve_metadata: bool) -> Self {
        let mut s = Self::new();
        let base = "https://mcp.example.com".to_string();
        s.prm_at = PrmAt::Nowhere;
        s.asc.base = base.clone();
        s.asc.issuer = base.clone();
        s.asc.claimed_issuer = base.clone();
        s.asc.metadata_urls = vec![format!("{base}/.well-known/oauth-authorization-server")];
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

    fn next_id(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}-{}", self.counter)
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

    // ---- driving the engine -------------------------------------------

    /// Performs one effect the way a host would.
    pub fn perform(&mut self, effect: Effect) -> Input {
        match effect {
            Effect::Http(req) => {
                self.requests.push((req.method, req.url.clone()));
                Input::Http(Ok(self.route(&req)))
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
        }
    }

    /// Runs an operation to its end.
    pub fn run(&mut self, s: &mut Session, first: Step) -> Result<Outcome, Error> {
        let mut step = first;
        for _ in 0..200 {
            step = match step {
                Step::Effect(e) => {
                    let input = self.perform(e);
                    s.handle(self.now, input)
                }
                Step::Wait(_) => panic!("single caller should never wait"),
                Step::Done(r) => {
                    assert!(self.held_locks.is_empty(), "flow ended holding {:?}", self.held_locks);
                    return r;
                }
            };
        }
        panic!("flow did not end in 200 steps");
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
        let first = s.logout(self.now);
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
            let resp = self.mcp_call(token.as_ref().map(|t| t.secret()));
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

    // ---- the MCP server -------------------------------------------------

    fn challenge(&self, error: Option<&str>, scope: Option<&str>) -> String {
        let mut parts = vec![];
        if self.prm_at == PrmAt::Header {
            parts.push("resource_metadata=\"https://mcp.example.com/prm\"".to_string());
        }
        if let Some(e) = error {
            parts.push(format!("error=\"{e}\""));
        }
        if let Some(s) = scope {
            parts.push(format!("scope=\"{s}\""));
        }
        if parts.is_empty() {
            "Bearer".into()
        } else {
            format!("Bearer {}", parts.join(", "))
        }
    }

    /// One MCP request (counted), carrying `token` if any.
    pub fn mcp_call(&mut self, token: Option<&str>) -> ServerResponse {
        self.requests.push((Method::Post, MCP.to_string()));
        let unauthorized = |sim: &Sim| ServerResponse {
            status: 401,
            www_authenticate: vec![sim.challenge(None, sim.challenge_scope.as_deref())],
            sent_token: token.map(String::from),
        };
        let Some(t) = token else {
            return unauthorized(self);
        };
        let Some(at) = self.access.get(t).cloned() else {
            return unauthorized(self);
        };
        if at.revoked
            || self.revoked_families.contains(&at.family)
            || at.expires_at <= self.now
            || at.resource != self.prm_resource
        {
            return unauthorized(self);
        }
        if let Some(s) = self.always_insufficient.clone() {
            return ServerResponse {
                status: 403,
                www_authenticate: vec![self.challenge(Some("insufficient_scope"), Some(&s))],
                sent_token: Some(t.into()),
            };
        }
        let missing: Vec<&String> = self.required_scope.iter().filter(|s| !at.scope.contains(s)).collect();
        if !missing.is_empty() {
            let need = self.required_scope.join(" ");
            return ServerResponse {
                status: 403,
                www_authenticate: vec![self.challenge(Some("insufficient_scope"), Some(&need))],
                sent_token: Some(t.into()),
            };
        }
        ServerResponse {
            status: 200,
            ..Default::default()
        }
    }

    /// The AS loses every refresh token.
    pub fn forget_refresh_tokens(&mut self) {
        self.refresh.clear();
    }

    /// The AS loses every dynamically registered client.
    pub fn forget_registered_clients(&mut self) {
        self.clients.clear();
    }

    /// Revokes every access token (the server restarts, say).
    pub fn revoke_access_tokens(&mut self) {
        for at in self.access.values_mut() {
            at.revoked = true;
        }
    }

    // ---- routing ----------------------------------------------------------

    fn prm_doc(&self) -> HttpResponse {
        let mut v = serde_json::json!({
            "resource": self.prm_resource,
            "authorization_servers": [self.asc.issuer],
        });
        if let Some(s) = &self.prm_scopes {
            v["scopes_supported"] = serde_json::json!(s);
        }
        json(v)
    }

    fn metadata_doc(&self) -> HttpResponse {
        let b = &self.asc.base;
        let mut v = serde_json::json!({
            "issuer": self.asc.claimed_issuer,
            "authorization_endpoint": format!("{b}/authorize"),
            "token_endpoint": format!("{b}/token"),
            "response_types_supported": ["code"],
        });
        if self.asc.registration {
            v["registration_endpoint"] = serde_json::json!(format!("{b}/register"));
        }
        if self.asc.s256 {
            v["code_challenge_methods_supported"] = serde_json::json!(["S256"]);
        }
        if self.asc.cimd {
            v["client_id_metadata_document_supported"] = serde_json::json!(true);
        }
        if self.asc.iss_param {
            v["authorization_response_iss_parameter_supported"] = serde_json::json!(true);
        }
        if let Some(m) = &self.asc.auth_methods {
            v["token_endpoint_auth_methods_supported"] = serde_json::json!(m);
        }
        if let Some(s) = &self.asc.scopes_supported {
            v["scopes_supported"] = serde_json::json!(s);
        }
        json(v)
    }

    fn route(&mut self, req: &HttpRequest) -> HttpResponse {
        let url = Url::parse(&req.url).expect("engine sent an unparsable URL");
        let path = url.path().to_string();
        let origin = url.origin().ascii_serialization();
        if origin == "https://mcp.example.com" {
            match (self.prm_at, path.as_str()) {
                (PrmAt::Header, "/prm") | (PrmAt::Root, "/.well-known/oauth-protected-resource") => {
                    return self.prm_doc();
                }
                (PrmAt::PathAware, "/.well-known/oauth-protected-resource/mcp") => return self.prm_doc(),
                _ => {}
            }
        }
        if req.method == Method::Get {
            if self.asc.serve_metadata && self.asc.metadata_urls.contains(&req.url) {
                return self.metadata_doc();
            }
            return status(404, "not found");
        }
        if req.url == IDP_TOKEN {
            return self.idp_token(req);
        }
        if self.retired_bases.contains(&origin) {
            return oauth_err(400, "invalid_grant");
        }
        if origin == self.asc.base {
            match path.as_str() {
                "/register" if self.asc.registration => return self.register(req),
                "/token" => return self.token(req),
                _ => {}
            }
        }
        status(404, "not found")
    }

    fn register(&mut self, req: &HttpRequest) -> HttpResponse {
        let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(v["application_type"], "native", "DCR must ask for a native client");
        let redirect_uris: Vec<String> = serde_json::from_value(v["redirect_uris"].clone()).unwrap();
        for r in &redirect_uris {
            assert!(
                r.starts_with("http://127.0.0.1:"),
                "loopback redirect expected, got {r}"
            );
        }
        let method = v["token_endpoint_auth_method"]
            .as_str()
            .unwrap_or("client_secret_basic")
            .to_string();
        let id = self.next_id("client");
        let secret = (method != "none").then(|| self.next_id("secret"));
        self.clients.insert(
            id.clone(),
            Client {
                redirect_uris: redirect_uris.clone(),
                secret: secret.clone(),
                method: method.clone(),
            },
        );
        let mut out =
            serde_json::json!({"client_id": id, "redirect_uris": redirect_uris, "token_endpoint_auth_method": method});
        if let Some(s) = secret {
            out["client_secret"] = serde_json::json!(s);
        }
        let mut r = json(out);
        r.status = 201;
        r
    }

    fn client(&self, id: &str) -> Option<Client> {
        if self.asc.forget_clients {
            return None;
        }
        if let Some(c) = self.clients.get(id) {
            return Some(c.clone());
        }
        if let Some((_, secret, method)) = self.preregistered.iter().find(|(i, _, _)| i == id) {
            return Some(Client {
                redirect_uris: vec![],
                secret: secret.clone(),
                method: method.clone(),
            });
        }
        if id.starts_with("https://") && self.asc.cimd {
            return Some(Client {
                redirect_uris: vec![],
                secret: None,
                method: "none".into(),
            });
        }
        None
    }

    /// The browser at the AS: validates the request, asks the user, redirects.
    fn visit_authorize(&mut self, auth_url: &str) -> String {
        let url = Url::parse(auth_url).unwrap();
        assert_eq!(
            url.origin().ascii_serialization(),
            self.asc.base,
            "browser sent to the wrong AS"
        );
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        let state = q.get("state").cloned().unwrap_or_default();
        let (iss_param, iss) = (self.asc.iss_param, self.asc.issuer.clone());
        let redirect = |pairs: Vec<(&str, String)>| {
            let mut ser = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in pairs {
                ser.append_pair(k, &v);
            }
            if iss_param {
                ser.append_pair("iss", &iss);
            }
            ser.finish()
        };
        assert_eq!(q.get("response_type").map(String::as_str), Some("code"));
        assert_eq!(q.get("code_challenge_method").map(String::as_str), Some("S256"));
        assert!(!q.contains_key("prompt"), "no forced prompt");
        let resource = q.get("resource").cloned().expect("resource on authorize");
        self.resources_seen.push(("authorize", resource.clone()));
        self.scopes_requested.push(q.get("scope").cloned());
        let client_id = q["client_id"].clone();
        let redirect_uri = q["redirect_uri"].clone();
        match self.client(&client_id) {
            Some(c) if c.redirect_uris.is_empty() || c.redirect_uris.contains(&redirect_uri) => {}
            _ => return redirect(vec![("error", "unauthorized_client".into()), ("state", state)]),
        }
        if self.asc.deny {
            return redirect(vec![("error", "access_denied".into()), ("state", state)]);
        }
        let code = self.next_id("code");
        self.codes.insert(
            code.clone(),
            CodeGrant {
                client_id,
                redirect_uri,
                challenge: q["code_challenge"].clone(),
                resource,
                scope: q.get("scope").cloned().unwrap_or_else(|| "default".into()),
            },
        );
        redirect(vec![("code", code), ("state", state)])
    }

    /// RFC 8693 at the IdP: an ID token for an ID-JAG addressed to the AS.
    fn idp_token(&mut self, req: &HttpRequest) -> HttpResponse {
        let form: HashMap<String, String> = url::form_urlencoded::parse(&req.body).into_owned().collect();
        let ok = form.get("grant_type").map(String::as_str) == Some("urn:ietf:params:oauth:grant-type:token-exchange")
            && form.get("subject_token").map(String::as_str) == Some("user-id-token")
            && form.get("subject_token_type").map(String::as_str) == Some("urn:ietf:params:oauth:token-type:id_token")
            && form.get("requested_token_type").map(String::as_str) == Some("urn:ietf:params:oauth:token-type:id-jag")
            && form.get("audience") == Some(&self.asc.issuer)
            && form.get("resource") == Some(&self.prm_resource);
        if !ok {
            return oauth_err(400, "invalid_request");
        }
        let jag = self.next_id("jag");
        self.id_jags.push(jag.clone());
        json(
            serde_json::json!({"access_token": jag, "issued_token_type": "urn:ietf:params:oauth:token-type:id-jag", "token_type": "N_A"}),
        )
    }

    fn authenticate(&self, req: &HttpRequest, form: &HashMap<String, String>) -> Result<String, HttpResponse> {
        if let Some(assertion) = form.get("client_assertion") {
            // private_key_jwt: the stand-in signature, iss = sub = client, aud = issuer.
            let (input, sig) = assertion
                .rsplit_once('.')
                .ok_or_else(|| oauth_err(401, "invalid_client"))?;
            let claims = input.split('.').nth(1).and_then(|c| URL_SAFE_NO_PAD.decode(c).ok());
            let claims: serde_json::Value = claims.and_then(|c| serde_json::from_slice(&c).ok()).unwrap_or_default();
            let id = claims["iss"].as_str().unwrap_or_default().to_string();
            let good = URL_SAFE_NO_PAD.decode(sig).ok() == Some(fake_signature(input.as_bytes()))
                && claims["sub"] == claims["iss"]
                && claims["aud"] == self.asc.issuer
                && form.get("client_assertion_type").map(String::as_str)
                    == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                && self.client(&id).is_some();
            return if good {
                Ok(id)
            } else {
                Err(oauth_err(401, "invalid_client"))
            };
        }
        let (id, secret) = match req.header("authorization").and_then(|h| h.strip_prefix("Basic ")) {
            Some(b) => {
                let raw = String::from_utf8(STANDARD.decode(b).unwrap()).unwrap();
                let (i, s) = raw.split_once(':').unwrap();
                let dec = |x: &str| {
                    url::form_urlencoded::parse(format!("a={x}").as_bytes())
                        .next()
                        .unwrap()
                        .1
                        .into_owned()
                };
                (dec(i), Some((dec(s), "client_secret_basic")))
            }
            None => (
                form.get("client_id").cloned().unwrap_or_default(),
                form.get("client_secret").map(|s| (s.clone(), "client_secret_post")),
            ),
        };
        let Some(c) = self.client(&id) else {
            return Err(oauth_err(401, "invalid_client"));
        };
        match (&c.secret, secret) {
            (None, None) if c.method == "none" => Ok(id),
            (Some(expected), Some((got, how))) if *expected == got && how == c.method => Ok(id),
            _ => Err(oauth_err(401, "invalid_client")),
        }
    }

    fn issue(&mut self, client_id: &str, resource: &str, scope: &str, family: Option<u64>) -> HttpResponse {
        let family = family.unwrap_or_else(|| {
            self.counter += 1;
            self.counter
        });
        let at = self.next_id("at");
        self.access.insert(
            at.clone(),
            AtState {
                resource: resource.into(),
                scope: scope.split(' ').map(String::from).collect(),
                expires_at: self.now + self.asc.access_ttl_s * 1000,
                revoked: false,
                family,
            },
        );
        let mut v = serde_json::json!({"access_token": at, "token_type": "Bearer", "expires_in": self.asc.access_ttl_s, "scope": scope});
        if self.asc.issue_refresh {
            let rt = self.next_id("rt");
            self.refresh.insert(
                rt.clone(),
                RtState {
                    client_id: client_id.into(),
                    resource: resource.into(),
                    scope: scope.into(),
                    used: false,
                    family,
                },
            );
            v["refresh_token"] = serde_json::json!(rt);
        }
        json(v)
    }

    fn token(&mut self, req: &HttpRequest) -> HttpResponse {
        let form: HashMap<String, String> = url::form_urlencoded::parse(&req.body).into_owned().collect();
        let client_id = match self.authenticate(req, &form) {
            Ok(c) => c,
            Err(r) => return r,
        };
        let resource = form.get("resource").cloned().unwrap_or_default();
        match form.get("grant_type").map(String::as_str) {
            Some("authorization_code") => {
                self.resources_seen.push(("token", resource.clone()));
                let Some(g) = form.get("code").and_then(|c| self.codes.remove(c)) else {
                    return oauth_err(400, "invalid_grant");
                };
                let verifier = form.get("code_verifier").cloned().unwrap_or_default();
                let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
                if g.client_id != client_id
                    || form.get("redirect_uri") != Some(&g.redirect_uri)
                    || challenge != g.challenge
                    || resource != g.resource
                {
                    return oauth_err(400, "invalid_grant");
                }
                self.issue(&client_id, &resource, &g.scope.clone(), None)
            }
            Some("refresh_token") => {
                self.resources_seen.push(("refresh", resource.clone()));
                let rt = form.get("refresh_token").cloned().unwrap_or_default();
                let Some(st) = self.refresh.get(&rt).cloned() else {
                    return oauth_err(400, "invalid_grant");
                };
                if self.revoked_families.contains(&st.family) {
                    return oauth_err(400, "invalid_grant");
                }
                if st.used {
                    // RFC 9700 §4.14.2: reuse of a rotated token revokes the family.
                    self.reuse_detected = true;
                    self.revoked_families.push(st.family);
                    return oauth_err(400, "invalid_grant");
                }
                if st.client_id != client_id || st.resource != resource {
                    return oauth_err(400, "invalid_grant");
                }
                if self.asc.rotate {
                    self.refresh.get_mut(&rt).unwrap().used = true;
                }
                self.refresh_ok += 1;
                let issue_refresh = self.asc.issue_refresh;
                self.asc.issue_refresh = self.asc.rotate && issue_refresh;
                let r = self.issue(&client_id, &resource, &st.scope, Some(st.family));
                self.asc.issue_refresh = issue_refresh;
                r
            }
            Some("client_credentials") => {
                self.resources_seen.push(("client_credentials", resource.clone()));
                let issue_refresh = std::mem::replace(&mut self.asc.issue_refresh, false);
                let scope = form.get("scope").cloned().unwrap_or_else(|| "default".into());
                let r = self.issue(&client_id, &resource, &scope, None);
                self.asc.issue_refresh = issue_refresh;
                r
            }
            Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
                let jag = form.get("assertion").cloned().unwrap_or_default();
                if !self.id_jags.contains(&jag) {
                    return oauth_err(400, "invalid_grant");
                }
                let scope = form.get("scope").cloned().unwrap_or_else(|| "default".into());
                self.issue(&client_id, &resource, &scope, None)
            }
            _ => oauth_err(400, "unsupported_grant_type"),
        }
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
