//! A fake authorization server, IdP and protected MCP server, written once
//! and sans-IO: [`Servers::handle`] takes the time and a request and returns
//! the response. The engine core's simulator wraps it on a virtual clock;
//! the host's demo server (`mcp-oauth demo`, `demo --serve`, the end-to-end
//! tests) wraps it on a real socket and the real clock.
//!
//! It implements what a well-behaved AS does and checks what a client must
//! do: RFC 9728 protected resource metadata, RFC 8414 metadata, RFC 7591
//! registration, authorization with PKCE S256 (the verifier is checked), the
//! code, refresh (rotation with reuse detection: RFC 9700 §4.14.2 revokes the
//! family), client credentials, RFC 8693 token exchange at an IdP and the
//! RFC 7523 jwt-bearer grant, and an MCP endpoint answering JSON-RPC behind
//! `WWW-Authenticate` challenges. Anything a client sends that the spec
//! forbids is recorded in [`Servers::violations`] (and refused).

mod authorization;
mod device;
mod dpop;
mod mcp;

pub use device::{DeviceFlow, DeviceLog};

use std::collections::HashMap;

pub use authorization::fake_signature;

/// An HTTP request as the fake servers see it (absolute URL).
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The absolute URL, query included.
    pub url: String,
    /// Header name/value pairs (names in any case).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The answer.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Header name/value pairs.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(status: u16, v: serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: v.to_string().into_bytes(),
        }
    }

    pub(crate) fn text(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        }
    }

    pub(crate) fn oauth_error(status: u16, error: &str) -> Self {
        Self::json(
            status,
            serde_json::json!({"error": error, "error_description": format!("fake server: {error}")}),
        )
    }

    pub(crate) fn redirect(to: String) -> Self {
        Self {
            status: 302,
            headers: vec![("location".into(), to)],
            body: vec![],
        }
    }
}

/// Where the MCP server publishes its protected resource metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrmAt {
    /// At `<origin>/prm`, known only from the 401 challenge.
    Header,
    /// At the path-aware well-known URL (named in the challenge only with
    /// [`McpConfig::announce_prm`]).
    PathAware,
    /// At the root well-known URL.
    Root,
    /// Nowhere: a 2025-03-26 server.
    Nowhere,
}

/// The authorization server's behaviour.
#[derive(Clone, Debug)]
pub struct AsConfig {
    /// Origin of the AS endpoints.
    pub base: String,
    /// Its issuer identifier.
    pub issuer: String,
    /// URLs at which the metadata document is served.
    pub metadata_urls: Vec<String>,
    /// The `issuer` the document claims (normally `issuer`).
    pub claimed_issuer: String,
    /// Dynamic client registration is offered.
    pub registration: bool,
    /// Client ID Metadata Documents are accepted.
    pub cimd: bool,
    /// S256 is advertised.
    pub s256: bool,
    /// RFC 9207 `iss` is advertised and sent on the redirect.
    pub iss_param: bool,
    /// `token_endpoint_auth_methods_supported`, if advertised.
    pub auth_methods: Option<Vec<String>>,
    /// `scopes_supported`, if advertised.
    pub scopes_supported: Option<Vec<String>>,
    /// `grant_types_supported`, if advertised.
    pub grant_types: Option<Vec<String>>,
    /// Access token lifetime.
    pub access_ttl_s: u64,
    /// Refresh tokens are issued.
    pub issue_refresh: bool,
    /// Refresh tokens rotate (single use).
    pub rotate: bool,
    /// The user denies at the authorization page.
    pub deny: bool,
    /// The AS has lost every dynamically registered client.
    pub forget_clients: bool,
    /// The metadata document is served at all.
    pub serve_metadata: bool,
    /// Publish this as the authorization endpoint instead.
    pub authorization_endpoint: Option<String>,
    /// Publish this as the token endpoint instead.
    pub token_endpoint: Option<String>,
    /// Answer the redirect with another `state` (a forged response).
    pub wrong_state: bool,
    /// Claim these `redirect_uris` in registration responses (`Some(vec![])`
    /// claims none) instead of the ones registered.
    pub registered_redirect_uris: Option<Vec<String>>,
    /// Text a hostile AS puts wherever it can: `error_description`s, the
    /// issued client id, the granted scope.
    pub hostile_text: Option<String>,
    /// Refuse (and record as a violation) a forced `prompt`: this engine
    /// never sends one. Off in the demo server, which other clients use too.
    pub forbid_prompt: bool,
    /// `dpop_signing_alg_values_supported`, if advertised (RFC 9449 §5.1).
    pub dpop_algs: Option<Vec<String>>,
    /// Demand this DPoP nonce at the token endpoint (§8).
    pub dpop_nonce: Option<String>,
    /// Offer the device authorization grant (RFC 8628), and how it goes.
    pub device: Option<DeviceFlow>,
    /// Offer token revocation (RFC 7009) at `<base>/revoke`.
    pub revocation: bool,
}

impl AsConfig {
    /// An AS at `base` whose issuer is `base`, metadata at the RFC 8414 URL.
    pub fn at(base: &str) -> Self {
        Self {
            base: base.into(),
            issuer: base.into(),
            metadata_urls: vec![format!("{base}/.well-known/oauth-authorization-server")],
            claimed_issuer: base.into(),
            registration: true,
            cimd: false,
            s256: true,
            iss_param: true,
            auth_methods: None,
            scopes_supported: None,
            grant_types: None,
            access_ttl_s: 3600,
            issue_refresh: true,
            rotate: true,
            deny: false,
            forget_clients: false,
            serve_metadata: true,
            authorization_endpoint: None,
            token_endpoint: None,
            wrong_state: false,
            registered_redirect_uris: None,
            hostile_text: None,
            forbid_prompt: true,
            dpop_algs: None,
            dpop_nonce: None,
            device: None,
            revocation: false,
        }
    }
}

/// The MCP server's behaviour.
#[derive(Clone, Debug)]
pub struct McpConfig {
    /// The MCP endpoint URL.
    pub url: String,
    /// Where the PRM is served.
    pub prm_at: PrmAt,
    /// Name the PRM URL in the 401 challenge even when not [`PrmAt::Header`].
    pub announce_prm: bool,
    /// The PRM's `resource`.
    pub prm_resource: String,
    /// The PRM's `scopes_supported`.
    pub prm_scopes: Option<Vec<String>>,
    /// `scope` in the 401 challenge.
    pub challenge_scope: Option<String>,
    /// Scopes a call needs (403 insufficient_scope otherwise).
    pub required_scope: Vec<String>,
    /// Demand this scope on every call, forever.
    pub always_insufficient: Option<String>,
    /// Reject every access token (as after a server restart).
    pub reject_tokens: bool,
    /// Accept only DPoP-bound tokens; challenge with the `DPoP` scheme.
    pub dpop: bool,
    /// Say so in the PRM too (`dpop_bound_access_tokens_required`).
    pub dpop_in_prm: bool,
    /// Demand this DPoP nonce on requests (§9).
    pub dpop_nonce: Option<String>,
}

impl McpConfig {
    /// An MCP endpoint at `url` whose PRM names it as the resource.
    pub fn at(url: &str) -> Self {
        Self {
            url: url.into(),
            prm_at: PrmAt::Header,
            announce_prm: false,
            prm_resource: url.into(),
            prm_scopes: None,
            challenge_scope: None,
            required_scope: vec![],
            always_insufficient: None,
            reject_tokens: false,
            dpop: false,
            dpop_in_prm: false,
            dpop_nonce: None,
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
struct RefreshState {
    client_id: String,
    resource: String,
    scope: String,
    used: bool,
    family: u64,
}

#[derive(Clone, Debug)]
struct AccessState {
    resource: String,
    scope: Vec<String>,
    expires_at_ms: u64,
    revoked: bool,
    family: u64,
}

/// The servers: configuration, what they issued, and what they observed.
#[derive(Debug)]
pub struct Servers {
    /// The MCP server.
    pub mcp: McpConfig,
    /// The authorization server.
    pub asc: AsConfig,
    /// The IdP's token endpoint (RFC 8693), if any.
    pub idp_token_url: Option<String>,
    /// The ID token the IdP accepts.
    pub idp_accepts: String,
    /// Pre-registered clients: (id, secret, token endpoint auth method).
    pub preregistered: Vec<(String, Option<String>, String)>,
    /// Workload JWTs the AS accepts in the jwt-bearer grant (SEP-1933).
    pub workload_jwts: Vec<String>,
    /// Origins of replaced authorization servers: their token endpoints
    /// refuse every grant.
    pub retired_bases: Vec<String>,
    /// Suffix of every issued code and token (distinct per process).
    pub id_salt: String,

    /// Every request, as (method, URL).
    pub log: Vec<(String, String)>,
    /// DPoP proof `jti`s seen (a reuse is a violation).
    pub dpop_jtis: Vec<String>,
    /// Tokens (access and refresh) bound to a DPoP key: token → jwk JSON.
    pub dpop_bound: HashMap<String, String>,
    /// `resource` as seen on authorize, token, refresh and machine grants.
    pub resources_seen: Vec<(&'static str, String)>,
    /// `scope` as requested on each authorize.
    pub scopes_requested: Vec<Option<String>>,
    /// A rotated refresh token was presented again.
    pub reuse_detected: bool,
    /// Successful refreshes.
    pub refresh_ok: usize,
    /// What a client did that the spec forbids.
    pub violations: Vec<String>,
    /// Device grants and revocations seen.
    pub device_log: DeviceLog,

    clients: HashMap<String, Client>,
    codes: HashMap<String, CodeGrant>,
    refresh: HashMap<String, RefreshState>,
    access: HashMap<String, AccessState>,
    revoked_families: Vec<u64>,
    id_jags: Vec<String>,
    used_codes: Vec<String>,
    counter: u64,
}

impl Servers {
    /// Servers with these configurations and nothing issued yet.
    pub fn new(mcp: McpConfig, asc: AsConfig) -> Self {
        Self {
            mcp,
            asc,
            idp_token_url: None,
            idp_accepts: "user-id-token".into(),
            preregistered: vec![],
            workload_jwts: vec![],
            retired_bases: vec![],
            id_salt: String::new(),
            log: vec![],
            dpop_jtis: vec![],
            dpop_bound: HashMap::new(),
            resources_seen: vec![],
            scopes_requested: vec![],
            reuse_detected: false,
            refresh_ok: 0,
            violations: vec![],
            device_log: DeviceLog::default(),
            clients: HashMap::new(),
            codes: HashMap::new(),
            refresh: HashMap::new(),
            access: HashMap::new(),
            revoked_families: vec![],
            id_jags: vec![],
            used_codes: vec![],
            counter: 0,
        }
    }

    /// Answers one request at time `now_ms` (unix ms).
    pub fn handle(&mut self, now_ms: u64, req: &Request) -> Response {
        self.log.push((req.method.clone(), req.url.clone()));
        let Ok(url) = url::Url::parse(&req.url) else {
            self.violations.push(format!("unparsable URL {}", req.url));
            return Response::text(400, "bad request");
        };
        let path = url.path().to_string();
        let origin = url.origin().ascii_serialization();
        let mcp_origin = url::Url::parse(&self.mcp.url)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default();
        if req.method == "GET" && origin == mcp_origin && Some(path.as_str()) == self.prm_path().as_deref() {
            return self.prm_doc();
        }
        if req.method == "GET" && self.asc.serve_metadata && self.asc.metadata_urls.contains(&req.url) {
            return self.metadata_doc();
        }
        if self.idp_token_url.as_deref() == Some(req.url.as_str()) {
            return self.idp_token(req);
        }
        if req.method == "POST" && self.retired_bases.contains(&origin) {
            return Response::oauth_error(400, "invalid_grant");
        }
        if origin == self.asc.base {
            match (req.method.as_str(), path.as_str()) {
                ("POST", "/register") if self.asc.registration => return self.register(req),
                ("GET", "/authorize") => return self.authorize(&url),
                ("POST", "/token") => return self.token(now_ms, req),
                ("POST", "/device_authorization") => return self.device_authorization(now_ms, req),
                ("POST", "/revoke") if self.asc.revocation => return self.revoke(req),
                _ => {}
            }
        }
        if req.url.split('?').next() == Some(self.mcp.url.as_str()) {
            return self.mcp_request(now_ms, req);
        }
        Response::text(404, "not found")
    }

    /// The AS loses every refresh token.
    pub fn forget_refresh_tokens(&mut self) {
        self.refresh.clear();
    }

    /// The AS loses every dynamically registered client.
    pub fn forget_registered_clients(&mut self) {
        self.clients.clear();
    }

    /// Revokes every access token issued so far (the server restarts, say).
    pub fn revoke_access_tokens(&mut self) {
        for at in self.access.values_mut() {
            at.revoked = true;
        }
    }

    /// RFC 7009: a refresh token goes with its grant's access tokens; an
    /// access token alone. Whether the token was known.
    fn revoke_token(&mut self, token: &str) -> bool {
        if let Some(st) = self.refresh.remove(token) {
            for at in self.access.values_mut().filter(|a| a.family == st.family) {
                at.revoked = true;
            }
            return true;
        }
        match self.access.get_mut(token) {
            Some(at) => {
                at.revoked = true;
                true
            }
            None => false,
        }
    }

    /// Revokes every grant issued so far, access and refresh tokens alike.
    pub fn revoke_all(&mut self) {
        let families: Vec<u64> = self.access.values().map(|a| a.family).collect();
        self.revoked_families.extend(families);
    }

    /// Every secret issued so far: access and refresh tokens, codes, client
    /// secrets (tests check none of them shows up in a message).
    pub fn issued_secrets(&self) -> Vec<String> {
        let mut out: Vec<String> = self.access.keys().cloned().collect();
        out.extend(self.refresh.keys().cloned());
        out.extend(self.codes.keys().cloned());
        out.extend(self.clients.values().filter_map(|c| c.secret.clone()));
        out.extend(self.used_codes.iter().cloned());
        out
    }

    fn next_id(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}-{}{}", self.counter, self.id_salt)
    }

    fn prm_path(&self) -> Option<String> {
        let mcp_path = url::Url::parse(&self.mcp.url)
            .map(|u| u.path().to_string())
            .unwrap_or_default();
        match self.mcp.prm_at {
            PrmAt::Header => Some("/prm".into()),
            PrmAt::PathAware => Some(format!("/.well-known/oauth-protected-resource{mcp_path}")),
            PrmAt::Root => Some("/.well-known/oauth-protected-resource".into()),
            PrmAt::Nowhere => None,
        }
    }

    /// Where the PRM is served, as an absolute URL.
    pub fn prm_url(&self) -> Option<String> {
        let origin = url::Url::parse(&self.mcp.url).ok()?.origin().ascii_serialization();
        Some(format!("{origin}{}", self.prm_path()?))
    }

    fn prm_doc(&self) -> Response {
        let mut v = serde_json::json!({
            "resource": self.mcp.prm_resource,
            "authorization_servers": [self.asc.issuer],
        });
        if let Some(s) = &self.mcp.prm_scopes {
            v["scopes_supported"] = serde_json::json!(s);
        }
        if self.mcp.dpop_in_prm {
            v["dpop_bound_access_tokens_required"] = serde_json::json!(true);
        }
        Response::json(200, v)
    }

    fn metadata_doc(&self) -> Response {
        let b = &self.asc.base;
        let mut v = serde_json::json!({
            "issuer": self.asc.claimed_issuer,
            "authorization_endpoint": self.asc.authorization_endpoint.clone().unwrap_or(format!("{b}/authorize")),
            "token_endpoint": self.asc.token_endpoint.clone().unwrap_or(format!("{b}/token")),
            "response_types_supported": ["code"],
        });
        if let Some(g) = &self.asc.grant_types {
            v["grant_types_supported"] = serde_json::json!(g);
        }
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
        if let Some(a) = &self.asc.dpop_algs {
            v["dpop_signing_alg_values_supported"] = serde_json::json!(a);
        }
        if self.asc.device.is_some() {
            v["device_authorization_endpoint"] = serde_json::json!(format!("{b}/device_authorization"));
        }
        if self.asc.revocation {
            v["revocation_endpoint"] = serde_json::json!(format!("{b}/revoke"));
        }
        Response::json(200, v)
    }
}
