//! A small MCP client over Streamable HTTP, authorized through an engine
//! session: `initialize` (protocol 2025-11-25), `notifications/initialized`,
//! `tools/list`, `tools/call`. Every request goes through the
//! [`AuthorizedClient`], so a 401 or 403 on any request (not only the first)
//! goes to the engine and the request is retried once with the new token.
//! Responses may be JSON or an SSE stream; `Mcp-Session-Id` is kept.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::client::AuthorizedClient;
use crate::http::{Request, Response};
use crate::runtime::Error as HostError;

/// The protocol revision this client speaks.
pub const PROTOCOL_VERSION: &str = "2025-11-25";

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
    /// The answer could not be understood.
    #[error("invalid MCP response: {0}")]
    Invalid(String),
}

/// An MCP connection to one server.
pub struct McpClient {
    http: AuthorizedClient,
    url: String,
    client_name: String,
    session_id: Mutex<Option<String>>,
    negotiated: Mutex<Option<String>>,
    next_id: AtomicU64,
}

/// Every JSON-RPC message in an SSE body (`data:` lines of each event).
pub fn sse_messages(body: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut data = String::new();
    for line in body.lines().chain(std::iter::once("")) {
        if line.is_empty() {
            if !data.trim().is_empty()
                && let Ok(v) = serde_json::from_str(&data)
            {
                out.push(v);
            }
            data.clear();
        } else if let Some(rest) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
        }
    }
    out
}

impl McpClient {
    /// A client for the MCP endpoint at `url`.
    pub fn new(http: AuthorizedClient, url: &str, client_name: &str) -> Self {
        Self {
            http,
            url: url.to_string(),
            client_name: client_name.to_string(),
            session_id: Mutex::new(None),
            negotiated: Mutex::new(None),
            next_id: AtomicU64::new(1),
        }
    }

    fn post(&self, body: &serde_json::Value) -> Result<Response, McpError> {
        let mut headers = vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("accept".to_string(), "application/json, text/event-stream".to_string()),
        ];
        if let Some(id) = self.session_id.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            headers.push(("mcp-session-id".into(), id));
        }
        if let Some(v) = self.negotiated.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            headers.push(("mcp-protocol-version".into(), v));
        }
        let resp = self.http.send(&Request {
            method: "POST",
            url: self.url.clone(),
            headers,
            body: body.to_string().into_bytes(),
        })?;
        if let Some(id) = resp.header_values("mcp-session-id").into_iter().next() {
            *self.session_id.lock().unwrap_or_else(|e| e.into_inner()) = Some(id);
        }
        if !(200..300).contains(&resp.status) {
            let text: String = String::from_utf8_lossy(&resp.body).chars().take(300).collect();
            return Err(McpError::Http {
                status: resp.status,
                body: text,
            });
        }
        Ok(resp)
    }

    /// Sends a request and returns its `result`.
    pub fn request(&self, method: &str, params: serde_json::Value) -> Result<serde_json::Value, McpError> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let resp = self.post(&serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        let is_sse = resp
            .header_values("content-type")
            .iter()
            .any(|c| c.to_ascii_lowercase().starts_with("text/event-stream"));
        let text = String::from_utf8_lossy(&resp.body);
        let messages = if is_sse {
            sse_messages(&text)
        } else {
            vec![serde_json::from_str(&text).map_err(|e| McpError::Invalid(format!("not JSON: {e}")))?]
        };
        let reply = messages
            .into_iter()
            .find(|m| m["id"].as_u64() == Some(id))
            .ok_or_else(|| McpError::Invalid(format!("no response to request {id} ({method})")))?;
        if let Some(err) = reply.get("error") {
            return Err(McpError::Rpc {
                code: err["code"].as_i64().unwrap_or(0),
                message: err["message"].as_str().unwrap_or("").to_string(),
            });
        }
        Ok(reply.get("result").cloned().unwrap_or(serde_json::Value::Null))
    }

    /// Sends a notification (no answer expected beyond 202).
    pub fn notify(&self, method: &str) -> Result<(), McpError> {
        self.post(&serde_json::json!({"jsonrpc": "2.0", "method": method}))?;
        Ok(())
    }

    /// `initialize` then `notifications/initialized`; returns the server's result.
    pub fn initialize(&self) -> Result<serde_json::Value, McpError> {
        let result = self.request(
            "initialize",
            serde_json::json!({
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": self.client_name, "version": env!("CARGO_PKG_VERSION")},
            }),
        )?;
        if let Some(v) = result["protocolVersion"].as_str() {
            *self.negotiated.lock().unwrap_or_else(|e| e.into_inner()) = Some(v.to_string());
        }
        self.notify("notifications/initialized")?;
        Ok(result)
    }

    /// `tools/list`: the tools' descriptions.
    pub fn list_tools(&self) -> Result<Vec<serde_json::Value>, McpError> {
        let r = self.request("tools/list", serde_json::json!({}))?;
        Ok(r["tools"].as_array().cloned().unwrap_or_default())
    }

    /// `tools/call`.
    pub fn call_tool(&self, name: &str, arguments: serde_json::Value) -> Result<serde_json::Value, McpError> {
        self.request("tools/call", serde_json::json!({"name": name, "arguments": arguments}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_bodies_yield_their_messages() {
        // Multi-line data is joined with newlines; comments and other fields are skipped.
        let body = "event: message\nid: 1\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\ndata: \"result\":{}}\n\n: comment\ndata: {\"a\":2}\n";
        let m = sse_messages(body);
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!(m[0]["id"], 1);
        assert_eq!(m[1]["a"], 2);
        let m = sse_messages("data: {\"id\":3}\n\ndata:{\"id\":4}\n\n");
        assert_eq!(m.len(), 2);
    }
}
