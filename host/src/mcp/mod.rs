//! A small MCP client over Streamable HTTP, authorized through an engine
//! session. It speaks 2026-07-28 (no handshake: `_meta` and the
//! `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name` headers on every request,
//! `server/discover` to pick the version, `resultType` checked) and falls
//! back to the 2025-11-25 `initialize` handshake and `Mcp-Session-Id` for
//! servers that don't. Every request goes through the [`AuthorizedClient`],
//! so a 401 or 403 on any request goes to the engine and the request is
//! retried once with the new token. Responses may be JSON or an SSE stream.

mod negotiate;
pub mod param_headers;
pub mod wire;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use crate::client::AuthorizedClient;
use crate::http::{Request, Response};
use crate::runtime::Error as HostError;
pub use wire::sse_messages;
use wire::{Reply, ResultKind};

/// The newest protocol revision this client speaks.
pub const PROTOCOL_VERSION: &str = wire::MODERN_VERSION;
/// The revision asked for when a server needs the `initialize` handshake.
pub const LEGACY_PROTOCOL_VERSION: &str = wire::LEGACY_VERSION;

/// Rounds of `input_required` one request may take before giving up.
const MAX_INPUT_ROUNDS: usize = 4;
/// Tools whose `x-mcp-header` annotations are remembered.
const MAX_REMEMBERED_TOOLS: usize = 1024;

/// Why an MCP call failed.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// Authorization or transport failed (see the engine's message).
    #[error("{0}")]
    Host(#[from] HostError),
    /// The server answered with an HTTP error.
    #[error("the MCP server answered HTTP {status}: {body}")]
    Http {
        /// Status code.
        status: u16,
        /// The body, shortened.
        body: String,
    },
    /// The server answered with a JSON-RPC error.
    #[error("the MCP server returned error {code}: {message}")]
    Rpc {
        /// JSON-RPC error code.
        code: i64,
        /// Its message.
        message: String,
    },
    /// The server and this client have no protocol version in common.
    #[error(
        "the MCP server supports protocol versions {supported:?}, none of which this client speaks ({PROTOCOL_VERSION}, {LEGACY_PROTOCOL_VERSION})"
    )]
    UnsupportedVersion {
        /// What the server said it supports.
        supported: Vec<String>,
    },
    /// The server asked for input (elicitation, sampling, roots) this client
    /// does not provide.
    #[error("the MCP server asks for input this client cannot provide: {methods:?}")]
    InputRequired {
        /// The methods of the server's input requests.
        methods: Vec<String>,
    },
    /// A `resultType` this client does not handle.
    #[error("the MCP server returned a result of type {0:?}, which this client does not handle")]
    UnsupportedResultType(String),
    /// The answer could not be understood.
    #[error("invalid MCP response: {0}")]
    Invalid(String),
}

/// Which protocol era a server speaks, as learned by [`McpClient::initialize`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Era {
    /// Not known yet: the next call negotiates.
    Unknown,
    /// Per-request metadata, no session (2026-07-28); the version used.
    Modern(String),
    /// The `initialize` handshake; the negotiated version.
    Legacy(String),
}

/// An MCP connection to one server.
pub struct McpClient {
    http: AuthorizedClient,
    url: String,
    client_name: String,
    capabilities: Value,
    session_id: Mutex<Option<String>>,
    era: Mutex<Era>,
    // Held while negotiating, so concurrent first calls negotiate once.
    negotiating: Mutex<()>,
    // `x-mcp-header` annotations per tool, from the last `tools/list`.
    tool_headers: Mutex<HashMap<String, Vec<param_headers::ParamHeader>>>,
    next_id: AtomicU64,
}

/// What one POST brought back.
enum Outcome {
    /// A JSON-RPC answer, and the HTTP status it came with.
    Reply(Reply, u16),
    /// An HTTP error without a JSON-RPC answer.
    Http { status: u16, body: String },
}

/// Whether the request should be sent again after negotiating afresh.
enum Attempt {
    Done(Result<Value, McpError>),
    Renegotiate(McpError),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn rpc_error(code: i64, message: String) -> McpError {
    McpError::Rpc { code, message }
}

impl McpClient {
    /// A client for the MCP endpoint at `url`.
    pub fn new(http: AuthorizedClient, url: &str, client_name: &str) -> Self {
        Self {
            http,
            url: url.to_string(),
            client_name: client_name.to_string(),
            capabilities: json!({}),
            session_id: Mutex::new(None),
            era: Mutex::new(Era::Unknown),
            negotiating: Mutex::new(()),
            tool_headers: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        }
    }

    /// Declares client capabilities (default `{}`), sent on every modern
    /// request and in `initialize`.
    pub fn with_capabilities(mut self, capabilities: Value) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// The era and version in use ([`Era::Unknown`] before the first call).
    pub fn era(&self) -> Era {
        lock(&self.era).clone()
    }

    fn client_info(&self) -> Value {
        json!({"name": self.client_name, "version": env!("CARGO_PKG_VERSION")})
    }

    /// One POST; keeps a session id only in the legacy era.
    fn post(&self, body: &Value, extra: Vec<(String, String)>, legacy: bool) -> Result<Response, McpError> {
        let mut headers = vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("accept".to_string(), "application/json, text/event-stream".to_string()),
        ];
        headers.extend(extra);
        let resp = self.http.send(&Request {
            method: "POST",
            url: self.url.clone(),
            headers,
            body: body.to_string().into_bytes(),
        })?;
        if legacy && let Some(id) = resp.header_values("mcp-session-id").into_iter().next() {
            *lock(&self.session_id) = Some(id);
        }
        Ok(resp)
    }

    /// Sends request `method` and reads its answer. `modern`: the version
    /// for the per-request metadata; `None`: the legacy session's headers.
    fn exchange(
        &self,
        modern: Option<&str>,
        method: &str,
        params: Value,
        extra: Vec<(String, String)>,
    ) -> Result<Outcome, McpError> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let mut headers = extra;
        let params = match modern {
            Some(v) => {
                let p = wire::with_request_meta(params, v, &self.capabilities, &self.client_info());
                headers.splice(0..0, wire::modern_headers(v, method, &p));
                p
            }
            None => {
                headers.extend(self.legacy_headers());
                params
            }
        };
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let resp = self.post(&body, headers, modern.is_none())?;
        let ok = (200..300).contains(&resp.status);
        match wire::find_reply(&resp, id) {
            Ok(Some(reply)) => Ok(Outcome::Reply(reply, resp.status)),
            Ok(None) if ok => Err(McpError::Invalid(format!("no response to request {id} ({method})"))),
            Err(e) if ok => Err(McpError::Invalid(e)),
            _ => Ok(Outcome::Http {
                status: resp.status,
                body: String::from_utf8_lossy(&resp.body).chars().take(300).collect(),
            }),
        }
    }

    fn legacy_headers(&self) -> Vec<(String, String)> {
        let mut h = vec![];
        if let Some(id) = lock(&self.session_id).clone() {
            h.push(("mcp-session-id".into(), id));
        }
        if let Era::Legacy(v) = self.era() {
            h.push(("mcp-protocol-version".into(), v));
        }
        h
    }

    /// The era, negotiated first if unknown.
    fn ensure_era(&self) -> Result<Era, McpError> {
        let era = self.era();
        if era != Era::Unknown {
            return Ok(era);
        }
        let _guard = lock(&self.negotiating);
        if self.era() == Era::Unknown {
            self.negotiate()?;
        }
        Ok(self.era())
    }

    /// Negotiates the protocol version (see the module docs) and returns the
    /// server's `server/discover` result (2026-07-28) or `initialize` result
    /// (legacy). Optional: the first request negotiates if this was not called.
    pub fn initialize(&self) -> Result<Value, McpError> {
        let _guard = lock(&self.negotiating);
        self.negotiate()
    }

    /// Sends a request and returns its complete `result`.
    pub fn request(&self, method: &str, params: Value) -> Result<Value, McpError> {
        self.request_with_headers(method, params, vec![])
    }

    fn request_with_headers(
        &self,
        method: &str,
        params: Value,
        extra: Vec<(String, String)>,
    ) -> Result<Value, McpError> {
        // At most one fresh negotiation per request: a server that changed
        // its versions, or a legacy session that expired.
        let mut renegotiated = false;
        loop {
            let attempt = match self.ensure_era()? {
                Era::Modern(v) => self.modern_request(&v, method, params.clone(), extra.clone()),
                _ => self.legacy_request(method, params.clone()),
            };
            match attempt {
                Attempt::Done(r) => return r,
                Attempt::Renegotiate(e) if renegotiated => return Err(e),
                Attempt::Renegotiate(_) => {
                    renegotiated = true;
                    let _guard = lock(&self.negotiating);
                    self.negotiate()?;
                }
            }
        }
    }

    /// A 2026-07-28 request; `input_required` without input requests is
    /// retried (echoing `requestState`), with input requests it fails.
    fn modern_request(&self, version: &str, method: &str, params: Value, extra: Vec<(String, String)>) -> Attempt {
        let mut params = params;
        for _ in 0..MAX_INPUT_ROUNDS {
            let out = match self.exchange(Some(version), method, params.clone(), extra.clone()) {
                Ok(o) => o,
                Err(e) => return Attempt::Done(Err(e)),
            };
            let result = match out {
                Outcome::Reply(Reply::Result(r), _) => r,
                Outcome::Reply(Reply::Error { code, data, .. }, _) if code == wire::UNSUPPORTED_VERSION => {
                    return Attempt::Renegotiate(McpError::UnsupportedVersion {
                        supported: wire::versions(&data["supported"]),
                    });
                }
                Outcome::Reply(Reply::Error { code, message, .. }, _) => {
                    return Attempt::Done(Err(rpc_error(code, message)));
                }
                Outcome::Http { status, body } => return Attempt::Done(Err(McpError::Http { status, body })),
            };
            match wire::result_kind(&result) {
                ResultKind::Complete => return Attempt::Done(Ok(result)),
                ResultKind::Unknown(t) => return Attempt::Done(Err(McpError::UnsupportedResultType(t))),
                ResultKind::InputRequired => {}
            }
            if let Some(reqs) = result["inputRequests"].as_object().filter(|m| !m.is_empty()) {
                let methods = reqs
                    .values()
                    .take(16)
                    .map(|r| r["method"].as_str().unwrap_or("?").chars().take(64).collect())
                    .collect();
                return Attempt::Done(Err(McpError::InputRequired { methods }));
            }
            // Echo the state verbatim, or send none if the server sent none.
            if let Some(p) = params.as_object_mut() {
                match result.get("requestState") {
                    Some(s) => p.insert("requestState".into(), s.clone()),
                    None => p.remove("requestState"),
                };
            }
        }
        Attempt::Done(Err(McpError::Invalid(format!(
            "{method}: the server still wanted input after {MAX_INPUT_ROUNDS} rounds"
        ))))
    }

    /// A request in the legacy session; a 404 on a session means it expired.
    fn legacy_request(&self, method: &str, params: Value) -> Attempt {
        let had_session = lock(&self.session_id).is_some();
        let out = match self.exchange(None, method, params, vec![]) {
            Ok(o) => o,
            Err(e) => return Attempt::Done(Err(e)),
        };
        Attempt::Done(match out {
            Outcome::Reply(Reply::Result(r), _) => match wire::result_kind(&r) {
                ResultKind::Complete => Ok(r),
                ResultKind::InputRequired => Err(McpError::UnsupportedResultType("input_required".into())),
                ResultKind::Unknown(t) => Err(McpError::UnsupportedResultType(t)),
            },
            Outcome::Reply(Reply::Error { code, message, .. }, status) => {
                if status == 404 && had_session {
                    return Attempt::Renegotiate(rpc_error(code, message));
                }
                Err(rpc_error(code, message))
            }
            Outcome::Http { status, body } => {
                if status == 404 && had_session {
                    return Attempt::Renegotiate(McpError::Http { status, body });
                }
                Err(McpError::Http { status, body })
            }
        })
    }

    /// Sends a notification (no answer expected beyond 202).
    pub fn notify(&self, method: &str) -> Result<(), McpError> {
        let body = json!({"jsonrpc": "2.0", "method": method});
        let resp = match self.era() {
            Era::Legacy(_) => self.post(&body, self.legacy_headers(), true)?,
            Era::Modern(v) => self.post(&body, wire::modern_headers(&v, method, &Value::Null), false)?,
            Era::Unknown => {
                self.ensure_era()?;
                return self.notify(method);
            }
        };
        if !(200..300).contains(&resp.status) {
            return Err(McpError::Http {
                status: resp.status,
                body: String::from_utf8_lossy(&resp.body).chars().take(300).collect(),
            });
        }
        Ok(())
    }

    /// `tools/list`: the tools' descriptions. On 2026-07-28, tools with
    /// invalid `x-mcp-header` annotations are left out (logged to stderr),
    /// and the others' annotations are kept for [`McpClient::call_tool`].
    pub fn list_tools(&self) -> Result<Vec<Value>, McpError> {
        let r = self.request("tools/list", json!({}))?;
        let tools = r["tools"].as_array().cloned().unwrap_or_default();
        if !matches!(self.era(), Era::Modern(_)) {
            return Ok(tools);
        }
        let mut kept = Vec::with_capacity(tools.len());
        let mut headers = lock(&self.tool_headers);
        headers.clear();
        for tool in tools {
            let name = tool["name"].as_str().unwrap_or_default().to_string();
            match param_headers::annotations(&tool["inputSchema"]) {
                Ok(a) => {
                    if !a.is_empty() && headers.len() < MAX_REMEMBERED_TOOLS {
                        headers.insert(name, a);
                    }
                    kept.push(tool);
                }
                Err(why) => {
                    let shown: String = name.chars().take(64).collect();
                    eprintln!("mcp-oauth: ignoring tool {shown:?}: {why}");
                }
            }
        }
        Ok(kept)
    }

    /// `tools/call`, with the tool's `Mcp-Param-*` headers on 2026-07-28.
    pub fn call_tool(&self, name: &str, arguments: Value) -> Result<Value, McpError> {
        let known = lock(&self.tool_headers).get(name).cloned();
        let extra = known
            .as_deref()
            .map(|a| param_headers::param_headers(a, &arguments))
            .unwrap_or_default();
        let params = json!({"name": name, "arguments": arguments});
        match self.request_with_headers("tools/call", params.clone(), extra) {
            // Headers the server wanted that we did not know of: the spec's
            // remedy is to list the tools again and retry once.
            Err(McpError::Rpc { code, .. }) if code == wire::HEADER_MISMATCH && known.is_none() => {
                self.list_tools()?;
                let extra = lock(&self.tool_headers)
                    .get(name)
                    .map(|a| param_headers::param_headers(a, &arguments))
                    .unwrap_or_default();
                self.request_with_headers("tools/call", params, extra)
            }
            other => other,
        }
    }
}
