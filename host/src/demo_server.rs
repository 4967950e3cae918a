//! A local authorization server and protected MCP server on 127.0.0.1, for
//! `mcp-oauth demo` and the end-to-end tests: RFC 9728 metadata, RFC 8414
//! metadata, RFC 7591 registration, authorize (auto-approving, or denying),
//! token with PKCE S256, refresh with rotation and reuse detection, and an MCP
//! endpoint that answers 401 with a `WWW-Authenticate` challenge. Fault
//! switches let tests break it on purpose. Everything lives in memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Ways to make the server misbehave.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// The user denies at the authorization page.
    pub deny: bool,
    /// Access token lifetime in seconds (default 3600).
    pub access_ttl_secs: Option<u64>,
    /// Publish this as the authorization endpoint.
    pub authorization_endpoint: Option<String>,
    /// Publish this as the token endpoint.
    pub token_endpoint: Option<String>,
    /// Answer the redirect with another `state`.
    pub wrong_state: bool,
    /// Reject every access token at the MCP endpoint (as after a restart).
    pub reject_tokens: bool,
}

#[derive(Debug, Clone)]
struct Code {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    resource: String,
    scope: String,
}

#[derive(Debug, Clone)]
struct Refresh {
    client_id: String,
    resource: String,
    scope: String,
    used: bool,
    family: u64,
}

#[derive(Debug, Default)]
struct State {
    faults: Faults,
    clients: HashMap<String, Vec<String>>,
    codes: HashMap<String, Code>,
    refresh: HashMap<String, Refresh>,
    access: HashMap<String, (u64, u64)>,
    revoked_families: Vec<u64>,
    counter: u64,
    log: Vec<String>,
    reuse_detected: bool,
}

/// The running server.
pub struct DemoServer {
    base: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

type Reply = (u16, Vec<(String, String)>, Vec<u8>);

fn json(status: u16, v: serde_json::Value) -> Reply {
    (
        status,
        vec![("content-type".into(), "application/json".into())],
        v.to_string().into_bytes(),
    )
}

fn oauth_error(status: u16, error: &str) -> Reply {
    json(
        status,
        serde_json::json!({"error": error, "error_description": format!("demo server: {error}")}),
    )
}

fn redirect(to: String) -> Reply {
    (302, vec![("location".into(), to)], Vec::new())
}

impl DemoServer {
    /// Starts on 127.0.0.1 with a free port.
    pub fn start(faults: Faults) -> std::io::Result<Self> {
        let server = tiny_http::Server::http("127.0.0.1:0").map_err(|e| std::io::Error::other(e.to_string()))?;
        let port = server.server_addr().to_ip().map(|a| a.port()).unwrap_or(0);
        let base = format!("http://127.0.0.1:{port}");
        let state = Arc::new(Mutex::new(State {
            faults,
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp, b) = (state.clone(), stop.clone(), base.clone());
        let thread = std::thread::spawn(move || {
            while !sp.load(Ordering::SeqCst) {
                let Ok(Some(mut req)) = server.recv_timeout(Duration::from_millis(50)) else {
                    continue;
                };
                let mut body = Vec::new();
                let _ = req.as_reader().read_to_end(&mut body);
                let headers: Vec<(String, String)> = req
                    .headers()
                    .iter()
                    .map(|h| {
                        (
                            h.field.as_str().as_str().to_ascii_lowercase(),
                            h.value.as_str().to_string(),
                        )
                    })
                    .collect();
                let (status, hdrs, out) = {
                    let mut s = st.lock().unwrap_or_else(|e| e.into_inner());
                    handle(&mut s, &b, req.method().as_str(), req.url(), &headers, &body)
                };
                let mut resp = tiny_http::Response::from_data(out).with_status_code(status);
                for (k, v) in hdrs {
                    if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
                        resp.add_header(h);
                    }
                }
                let _ = req.respond(resp);
            }
        });
        Ok(Self {
            base,
            state,
            stop,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The MCP endpoint.
    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base)
    }

    /// Change the fault switches.
    pub fn set_faults(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()).faults);
    }

    /// Every request so far, as `METHOD /path`.
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).log.clone()
    }

    /// How many requests went to `path` (exact, without query).
    pub fn count(&self, path: &str) -> usize {
        self.log().iter().filter(|l| l.split(' ').nth(1) == Some(path)).count()
    }

    /// Requests to the authorization server's endpoints (metadata, register,
    /// authorize, token).
    pub fn as_requests(&self) -> usize {
        self.log()
            .iter()
            .filter(|l| {
                let p = l.split(' ').nth(1).unwrap_or("");
                p.starts_with("/.well-known/oauth-authorization-server")
                    || ["/register", "/authorize", "/token"].contains(&p)
            })
            .count()
    }

    /// Revokes every token issued so far (access and refresh), as if the
    /// server had been reset; new authorizations work again.
    pub fn revoke_all(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let families: Vec<u64> = s.access.values().map(|(_, f)| *f).collect();
        s.revoked_families.extend(families);
    }

    /// True once a rotated refresh token was presented again.
    pub fn reuse_detected(&self) -> bool {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).reuse_detected
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn form(bytes: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(bytes).into_owned().collect()
}

fn next(s: &mut State, prefix: &str) -> String {
    s.counter += 1;
    let mut n = [0u8; 6];
    let _ = getrandom::fill(&mut n);
    format!("{prefix}-{}-{}", s.counter, URL_SAFE_NO_PAD.encode(n))
}

fn handle(s: &mut State, base: &str, method: &str, raw_url: &str, headers: &[(String, String)], body: &[u8]) -> Reply {
    let (path, query) = raw_url.split_once('?').unwrap_or((raw_url, ""));
    s.log.push(format!("{method} {path}"));
    let resource = format!("{base}/mcp");
    match (method, path) {
        ("GET", "/.well-known/oauth-protected-resource/mcp") => json(
            200,
            serde_json::json!({"resource": resource, "authorization_servers": [base], "scopes_supported": ["mcp:tools"]}),
        ),
        ("GET", "/.well-known/oauth-authorization-server") => json(
            200,
            serde_json::json!({
                "issuer": base,
                "authorization_endpoint": s.faults.authorization_endpoint.clone().unwrap_or(format!("{base}/authorize")),
                "token_endpoint": s.faults.token_endpoint.clone().unwrap_or(format!("{base}/token")),
                "registration_endpoint": format!("{base}/register"),
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["none"],
                "scopes_supported": ["mcp:tools", "offline_access"],
                "authorization_response_iss_parameter_supported": true,
            }),
        ),
        ("POST", "/register") => {
            let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
            let uris: Vec<String> = serde_json::from_value(v["redirect_uris"].clone()).unwrap_or_default();
            if uris.is_empty() {
                return oauth_error(400, "invalid_redirect_uri");
            }
            let id = next(s, "client");
            s.clients.insert(id.clone(), uris.clone());
            json(
                201,
                serde_json::json!({"client_id": id, "redirect_uris": uris, "token_endpoint_auth_method": "none"}),
            )
        }
        ("GET", "/authorize") => {
            let q = form(query.as_bytes());
            let get = |k: &str| q.get(k).cloned().unwrap_or_default();
            let redirect_uri = get("redirect_uri");
            let client_ok = s
                .clients
                .get(&get("client_id"))
                .is_some_and(|u| u.contains(&redirect_uri));
            if !client_ok || get("code_challenge_method") != "S256" {
                return (400, vec![], b"invalid authorization request".to_vec());
            }
            let state = if s.faults.wrong_state {
                "not-your-state".to_string()
            } else {
                get("state")
            };
            let mut ser = url::form_urlencoded::Serializer::new(String::new());
            if s.faults.deny {
                ser.append_pair("error", "access_denied");
            } else {
                let code = next(s, "code");
                s.codes.insert(
                    code.clone(),
                    Code {
                        client_id: get("client_id"),
                        redirect_uri: redirect_uri.clone(),
                        challenge: get("code_challenge"),
                        resource: get("resource"),
                        scope: q.get("scope").cloned().unwrap_or_else(|| "mcp:tools".into()),
                    },
                );
                ser.append_pair("code", &code);
            }
            ser.append_pair("state", &state).append_pair("iss", base);
            redirect(format!("{redirect_uri}?{}", ser.finish()))
        }
        ("POST", "/token") => token(s, &form(body)),
        (_, "/mcp") => mcp(s, base, headers, body),
        _ => (404, vec![], b"not found".to_vec()),
    }
}

fn issue(s: &mut State, client_id: &str, resource: &str, scope: &str, family: Option<u64>) -> Reply {
    let family = family.unwrap_or_else(|| {
        s.counter += 1;
        s.counter
    });
    let ttl = s.faults.access_ttl_secs.unwrap_or(3600);
    let at = next(s, "at");
    s.access.insert(at.clone(), (now_secs() + ttl, family));
    let rt = next(s, "rt");
    s.refresh.insert(
        rt.clone(),
        Refresh {
            client_id: client_id.into(),
            resource: resource.into(),
            scope: scope.into(),
            used: false,
            family,
        },
    );
    json(
        200,
        serde_json::json!({"access_token": at, "token_type": "Bearer", "expires_in": ttl, "refresh_token": rt, "scope": scope}),
    )
}

fn token(s: &mut State, f: &HashMap<String, String>) -> Reply {
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let client_id = get("client_id");
    if !s.clients.contains_key(&client_id) {
        return oauth_error(401, "invalid_client");
    }
    match get("grant_type").as_str() {
        "authorization_code" => {
            let Some(c) = s.codes.remove(&get("code")) else {
                return oauth_error(400, "invalid_grant");
            };
            let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(get("code_verifier").as_bytes()));
            if c.client_id != client_id
                || c.redirect_uri != get("redirect_uri")
                || c.challenge != challenge
                || c.resource != get("resource")
            {
                return oauth_error(400, "invalid_grant");
            }
            issue(s, &client_id, &c.resource, &c.scope, None)
        }
        "refresh_token" => {
            let rt = get("refresh_token");
            let Some(r) = s.refresh.get(&rt).cloned() else {
                return oauth_error(400, "invalid_grant");
            };
            if s.revoked_families.contains(&r.family) {
                return oauth_error(400, "invalid_grant");
            }
            if r.used {
                // RFC 9700 §4.14.2: reuse revokes the whole family.
                s.reuse_detected = true;
                s.revoked_families.push(r.family);
                return oauth_error(400, "invalid_grant");
            }
            if r.client_id != client_id || r.resource != get("resource") {
                return oauth_error(400, "invalid_grant");
            }
            if let Some(e) = s.refresh.get_mut(&rt) {
                e.used = true;
            }
            issue(s, &client_id, &r.resource, &r.scope, Some(r.family))
        }
        _ => oauth_error(400, "unsupported_grant_type"),
    }
}

fn mcp(s: &mut State, base: &str, headers: &[(String, String)], body: &[u8]) -> Reply {
    let bearer = headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .and_then(|(_, v)| v.strip_prefix("Bearer ").map(String::from));
    let valid = bearer
        .as_ref()
        .and_then(|t| s.access.get(t))
        .is_some_and(|(exp, fam)| *exp > now_secs() && !s.revoked_families.contains(fam) && !s.faults.reject_tokens);
    if !valid {
        let challenge = format!(
            "Bearer resource_metadata=\"{base}/.well-known/oauth-protected-resource/mcp\", scope=\"mcp:tools\""
        );
        return (
            401,
            vec![("www-authenticate".into(), challenge)],
            b"unauthorized".to_vec(),
        );
    }
    let req: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let id = req["id"].clone();
    let result = match req["method"].as_str().unwrap_or("") {
        "initialize" => serde_json::json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "mcp-oauth demo server", "version": env!("CARGO_PKG_VERSION")},
        }),
        "tools/list" => serde_json::json!({"tools": [{
            "name": "echo",
            "description": "Echoes its text",
            "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}},
        }]}),
        "tools/call" => {
            let text = req["params"]["arguments"]["text"].as_str().unwrap_or("").to_string();
            serde_json::json!({"content": [{"type": "text", "text": text}]})
        }
        _ => serde_json::json!({}),
    };
    json(200, serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result}))
}
