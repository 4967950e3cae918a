//! The demo's local authorization server and protected MCP server on
//! 127.0.0.1: the shared fake servers (`mcp-oauth-fake-server`, the same ones
//! the engine core's simulator runs on a virtual clock) on a tiny_http
//! socket and the real clock. Used by `mcp-oauth demo`, `demo --serve` and
//! the end-to-end tests. Fault switches let tests break it on purpose.
//!
//! Test hooks for hosts in other languages (not in the request log):
//! `GET /_demo/secrets` → every secret issued (for tests that search stores);
//! `GET /_demo/log` → `{"requests": ["GET /path", ...],
//! "refresh_token_reuse_detected": bool}`; `POST /_demo/revoke` revokes every
//! token issued so far; `POST /_demo/revoke-access` only the access tokens
//! (the MCP server refuses them, refresh tokens still work).

use std::io::{Read as _, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mcp_oauth_fake_server::{AsConfig, McpConfig, PrmAt, Request, Response, Servers};

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
    /// Claim these `redirect_uris` in registration responses.
    pub registered_redirect_uris: Option<Vec<String>>,
    /// Text a hostile AS puts in error descriptions and client ids.
    pub hostile_text: Option<String>,
    /// The MCP server accepts only DPoP-bound tokens; the AS binds (ES256).
    pub dpop: bool,
    /// Both demand this DPoP nonce (RFC 9449 §8, §9).
    pub dpop_nonce: Option<String>,
    /// The MCP server demands this nonce instead (both servers share an
    /// origin, so a client that kept the authorization server's nonce must
    /// learn this one from the MCP server's refusal).
    pub mcp_dpop_nonce: Option<String>,
    /// The MCP server answers every request 403 `insufficient_scope`,
    /// naming this scope (a server never satisfied).
    pub always_insufficient: Option<String>,
    /// The token endpoint answers every request 400 `invalid_grant`.
    pub token_error: bool,
    /// Do not offer the device authorization grant.
    pub no_device: bool,
    /// The user on the other device never enters the code.
    pub device_never_approved: bool,
}

impl Faults {
    fn apply(&self, s: &mut Servers) {
        s.asc.deny = self.deny;
        if self.no_device {
            s.asc.device = None;
        }
        if let Some(d) = s.asc.device.as_mut() {
            d.deny = self.deny;
            if self.device_never_approved {
                d.approve_after_polls = None;
            }
        }
        s.asc.access_ttl_s = self.access_ttl_secs.unwrap_or(3600);
        s.asc.authorization_endpoint = self.authorization_endpoint.clone();
        s.asc.token_endpoint = self.token_endpoint.clone();
        s.asc.wrong_state = self.wrong_state;
        s.mcp.reject_tokens = self.reject_tokens;
        s.asc.registered_redirect_uris = self.registered_redirect_uris.clone();
        s.asc.hostile_text = self.hostile_text.clone();
        s.mcp.dpop = self.dpop;
        s.asc.dpop_algs = self.dpop.then(|| vec!["ES256".into()]);
        s.asc.dpop_nonce = self.dpop_nonce.clone();
        s.mcp.dpop_nonce = self.mcp_dpop_nonce.clone().or_else(|| self.dpop_nonce.clone());
        s.mcp.always_insufficient = self.always_insufficient.clone();
    }
}

struct State {
    faults: Faults,
    servers: Servers,
}

/// The running server.
pub struct DemoServer {
    base: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The demo's world: one origin for the AS and the MCP server, PRM at the
/// path-aware URL and named in the challenge, public clients only.
fn servers(base: &str) -> Servers {
    let mut mcp = McpConfig::at(&format!("{base}/mcp"));
    mcp.prm_at = PrmAt::PathAware;
    mcp.announce_prm = true;
    mcp.prm_scopes = Some(vec!["mcp:tools".into()]);
    mcp.challenge_scope = Some("mcp:tools".into());
    let mut asc = AsConfig::at(base);
    asc.auth_methods = Some(vec!["none".into()]);
    asc.scopes_supported = Some(vec!["mcp:tools".into(), "offline_access".into()]);
    asc.grant_types = Some(vec![
        "authorization_code".into(),
        "refresh_token".into(),
        "urn:ietf:params:oauth:grant-type:device_code".into(),
    ]);
    // The device grant (RFC 8628): the user "on another device" approves
    // after two polls, one second apart. Revocation at logout (RFC 7009).
    asc.device = Some(mcp_oauth_fake_server::DeviceFlow {
        interval_s: 1,
        expires_in_s: 300,
        approve_after_polls: Some(2),
        ..Default::default()
    });
    asc.revocation = true;
    // Other clients (the SDKs, mcp-remote) send `prompt=consent`: auto-approve.
    asc.forbid_prompt = false;
    let mut s = Servers::new(mcp, asc);
    // Codes and tokens differ from one run (and process) to the next.
    let mut salt = [0u8; 6];
    let _ = getrandom::fill(&mut salt);
    s.id_salt = format!("-{}", salt.iter().map(|b| format!("{b:02x}")).collect::<String>());
    s
}

fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let path = rest.find('/').map(|i| &rest[i..]).unwrap_or("/");
    path.split('?').next().unwrap_or(path)
}

fn hooks(s: &mut State, method: &str, path: &str) -> Option<Response> {
    match (method, path) {
        ("POST", "/token") if s.faults.token_error => Some(Response {
            status: 400,
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"error":"invalid_grant","error_description":"the demo server refuses every grant (--fault token-error)"}"#
                .to_vec(),
        }),
        ("GET", "/_demo/log") => {
            let v = serde_json::json!({"requests": log_lines(&s.servers), "refresh_token_reuse_detected": s.servers.reuse_detected});
            Some(Response {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: v.to_string().into_bytes(),
            })
        }
        ("GET", "/_demo/secrets") => {
            // Test servers only: every secret issued, for tests that search a
            // store or a log for them.
            let v = serde_json::json!(s.servers.issued_secrets());
            Some(Response {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: v.to_string().into_bytes(),
            })
        }
        ("POST", "/_demo/revoke") => {
            s.servers.revoke_all();
            Some(Response {
                status: 204,
                ..Response::default()
            })
        }
        ("POST", "/_demo/revoke-access") => {
            s.servers.revoke_access_tokens();
            Some(Response {
                status: 204,
                ..Response::default()
            })
        }
        _ => None,
    }
}

fn log_lines(s: &Servers) -> Vec<String> {
    s.log.iter().map(|(m, u)| format!("{m} {}", path_of(u))).collect()
}

/// Writes `resp` with `connection: close`, one request per connection.
/// tiny_http drops a `Connection` header set on its own responses and keeps
/// every connection open; each open connection holds one of its pooled
/// threads, and its pool can leave a new connection queued behind idle
/// keep-alive ones until one of them closes (a client timed out after 30 s
/// in CI). So the response is written here: the client closes after reading
/// it, which ends the connection's thread.
fn respond_and_close(req: tiny_http::Request, resp: Response) {
    let head_only = *req.method() == tiny_http::Method::Head;
    let reason = tiny_http::StatusCode(resp.status).default_reason_phrase();
    let mut head = format!("HTTP/1.1 {} {reason}\r\n", resp.status);
    for (k, v) in &resp.headers {
        let framing = ["connection", "content-length", "transfer-encoding"]
            .iter()
            .any(|f| k.eq_ignore_ascii_case(f));
        if !framing && !k.is_empty() && !format!("{k}{v}").contains(['\r', '\n']) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        resp.body.len()
    ));
    let mut w = req.into_writer();
    let body: &[u8] = if head_only { &[] } else { &resp.body };
    let _ = w
        .write_all(head.as_bytes())
        .and_then(|()| w.write_all(body))
        .and_then(|()| w.flush());
}

impl DemoServer {
    /// Starts on 127.0.0.1 with a free port.
    pub fn start(faults: Faults) -> std::io::Result<Self> {
        Self::start_on(0, faults)
    }

    /// Starts on 127.0.0.1:`port` (0: any free port).
    pub fn start_on(port: u16, faults: Faults) -> std::io::Result<Self> {
        let server = tiny_http::Server::http(("127.0.0.1", port)).map_err(|e| std::io::Error::other(e.to_string()))?;
        let port = server.server_addr().to_ip().map(|a| a.port()).unwrap_or(0);
        let base = format!("http://127.0.0.1:{port}");
        let mut servers = servers(&base);
        faults.apply(&mut servers);
        let state = Arc::new(Mutex::new(State { faults, servers }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp, b) = (state.clone(), stop.clone(), base.clone());
        let thread = std::thread::spawn(move || {
            while !sp.load(Ordering::SeqCst) {
                let Ok(Some(mut req)) = server.recv_timeout(Duration::from_millis(50)) else {
                    continue;
                };
                // Bodies are small here; a cap keeps a stray client from
                // filling memory.
                let mut body = Vec::new();
                let _ = req.as_reader().take(1 << 20).read_to_end(&mut body);
                let request = Request {
                    method: req.method().as_str().to_string(),
                    url: format!("{b}{}", req.url()),
                    headers: req
                        .headers()
                        .iter()
                        .map(|h| {
                            (
                                h.field.as_str().as_str().to_ascii_lowercase(),
                                h.value.as_str().to_string(),
                            )
                        })
                        .collect(),
                    body,
                };
                let resp = {
                    let mut s = st.lock().unwrap_or_else(|e| e.into_inner());
                    match hooks(&mut s, &request.method, path_of(&request.url)) {
                        Some(r) => r,
                        None => s.servers.handle(now_ms(), &request),
                    }
                };
                respond_and_close(req, resp);
            }
        });
        Ok(Self {
            base,
            state,
            stop,
            thread: Some(thread),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
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
        self.with(|s| {
            f(&mut s.faults);
            let faults = s.faults.clone();
            faults.apply(&mut s.servers);
        });
    }

    /// Adds a pre-registered confidential client (`client_secret_basic`)
    /// that may also use the client credentials grant.
    pub fn preregister(&self, client_id: &str, secret: &str) {
        self.with(|s| {
            let asc = &mut s.servers.asc;
            for (list, v) in [
                (&mut asc.auth_methods, "client_secret_basic"),
                (&mut asc.grant_types, "client_credentials"),
            ] {
                let l = list.get_or_insert_with(Vec::new);
                if !l.iter().any(|x| x == v) {
                    l.push(v.into());
                }
            }
            s.servers
                .preregistered
                .push((client_id.into(), Some(secret.into()), "client_secret_basic".into()));
        });
    }

    /// Accepts `jwt` as a workload identity assertion (SEP-1933).
    pub fn accept_workload_jwt(&self, jwt: &str) {
        self.with(|s| {
            let l = s.servers.asc.grant_types.get_or_insert_with(Vec::new);
            l.push("urn:ietf:params:oauth:grant-type:jwt-bearer".into());
            s.servers.workload_jwts.push(jwt.into());
        });
    }

    /// Every secret the servers issued so far (tokens, codes, client
    /// secrets): for tests that search a store or a log for them.
    pub fn issued_secrets(&self) -> Vec<String> {
        self.with(|s| s.servers.issued_secrets())
    }

    /// Every request so far, as `METHOD /path`.
    pub fn log(&self) -> Vec<String> {
        self.with(|s| log_lines(&s.servers))
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
        self.with(|s| s.servers.revoke_all());
    }

    /// Revokes every access token issued so far and no refresh token: the
    /// MCP server answers 401 until the client refreshes.
    pub fn revoke_access_tokens(&self) {
        self.with(|s| s.servers.revoke_access_tokens());
    }

    /// The AS forgets every dynamically registered client (they get
    /// `invalid_client` from now on).
    pub fn forget_registered_clients(&self) {
        self.with(|s| s.servers.forget_registered_clients());
    }

    /// True once a rotated refresh token was presented again.
    pub fn reuse_detected(&self) -> bool {
        self.with(|s| s.servers.reuse_detected)
    }

    /// What a client did that the spec forbids (empty for this engine).
    pub fn violations(&self) -> Vec<String> {
        self.with(|s| s.servers.violations.clone())
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

#[cfg(test)]
mod tests {
    use std::io::{BufRead as _, BufReader};
    use std::net::TcpStream;

    use super::*;

    /// Sends `GET path` on `stream`; the status line and the headers, lower-cased.
    fn get(stream: &mut TcpStream, path: &str) -> (String, Vec<String>, Vec<u8>) {
        write!(stream, "GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
        let mut r = BufReader::new(stream.try_clone().unwrap());
        let mut status = String::new();
        r.read_line(&mut status).unwrap();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            headers.push(line.trim().to_ascii_lowercase());
        }
        let len: usize = headers
            .iter()
            .find_map(|h| h.strip_prefix("content-length: "))
            .and_then(|v| v.parse().ok())
            .unwrap();
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        (status.trim().to_string(), headers, body)
    }

    /// Every response tells the client to close, framed by its length, with
    /// the fake server's own headers kept: a pooling client (ureq, a
    /// browser) then opens a new connection per request instead of leaving
    /// idle ones that hold the server's threads.
    #[test]
    fn each_response_closes_its_connection() {
        let server = DemoServer::start(Faults::default()).unwrap();
        let addr = server.base().trim_start_matches("http://").to_string();
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let (status, headers, body) = get(&mut s, "/.well-known/oauth-protected-resource/mcp");
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(headers.contains(&"connection: close".to_string()), "{headers:?}");
        assert!(
            headers.iter().any(|h| h.starts_with("content-type: application/json")),
            "{headers:?}"
        );
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["resource"], server.mcp_url());
        assert_eq!(headers.iter().filter(|h| h.starts_with("connection:")).count(), 1);

        // A pooling client: sequential requests that each get an answer,
        // none left waiting behind an idle connection.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (agent, url) = (agent.clone(), server.mcp_url());
                std::thread::spawn(move || {
                    (0..5)
                        .map(|_| agent.post(&url).send(&b"{}"[..]).map(|r| r.status().as_u16()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for t in threads {
            for r in t.join().unwrap() {
                assert_eq!(r.unwrap(), 401);
            }
        }
        assert_eq!(server.count("/mcp"), 40);
    }
}
