//! What the transports share: parsing server bodies into JSON-RPC messages,
//! matching responses to requests, the errors the proxy answers with, and
//! the 2026-07-28 request metadata headers.

use serde_json::Value;

use super::auth::AuthFailure;
use super::stdio::ClientWriter;
use super::upstream::UpstreamError;

/// JSON-RPC error code for a failed authorization (implementation-defined range).
pub const AUTH_ERROR: i64 = -32001;
/// JSON-RPC error code for an unreachable or failing server.
pub const UPSTREAM_ERROR: i64 = -32000;

/// Why a request could not be relayed.
#[derive(Debug)]
pub enum Failure {
    /// Authorization failed.
    Auth(AuthFailure),
    /// Transport trouble, described.
    Upstream(String),
    /// The server answered with this status (and body).
    Http(u16, String),
    /// 404 to a request with our session id: the server forgot the session.
    SessionExpired,
    /// The first POST was refused as an HTTP+SSE server would.
    Legacy(u16),
}

impl From<UpstreamError> for Failure {
    fn from(e: UpstreamError) -> Self {
        match e {
            UpstreamError::Auth(a) => Failure::Auth(a),
            UpstreamError::Transport(m) => Failure::Upstream(m),
        }
    }
}

fn snippet(body: &str) -> String {
    let s: String = body.trim().chars().take(300).collect();
    crate::terminal::printable(&s).into_owned()
}

impl Failure {
    /// The JSON-RPC error (code, message, data) for the client.
    pub fn rpc_error(&self) -> (i64, String, Option<Value>) {
        match self {
            Failure::Auth(a) => (
                AUTH_ERROR,
                a.message.clone(),
                Some(serde_json::json!({"kind": a.kind, "source": "mcp-oauth"})),
            ),
            Failure::Upstream(m) => (UPSTREAM_ERROR, format!("mcp-oauth proxy: {m}"), None),
            Failure::Http(status, body) if body.trim().is_empty() => (
                UPSTREAM_ERROR,
                format!("mcp-oauth proxy: the MCP server answered HTTP {status}"),
                None,
            ),
            Failure::Http(status, body) => (
                UPSTREAM_ERROR,
                format!(
                    "mcp-oauth proxy: the MCP server answered HTTP {status}: {}",
                    snippet(body)
                ),
                None,
            ),
            Failure::SessionExpired => (
                UPSTREAM_ERROR,
                "mcp-oauth proxy: the MCP server ended the session".into(),
                None,
            ),
            Failure::Legacy(status) => (
                UPSTREAM_ERROR,
                format!("mcp-oauth proxy: the MCP server refused the request (HTTP {status})"),
                None,
            ),
        }
    }
}

/// Answers every owed request with the failure.
pub fn answer_all(out: &ClientWriter, ids: &[Value], f: &Failure) {
    let (code, message, data) = f.rpc_error();
    for id in ids {
        out.error(id, code, &message, data.clone());
    }
}

/// True when `m` is the response (result or error) to request `id`.
pub fn is_response_to(m: &Value, id: &Value) -> bool {
    m.get("method").is_none() && (m.get("result").is_some() || m.get("error").is_some()) && m.get("id") == Some(id)
}

/// The JSON-RPC messages in a body: one object, or a batch (flattened).
/// Anything else is refused: only JSON-RPC may reach the client's stdout.
pub fn rpc_messages(body: &[u8]) -> Result<Vec<Value>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("the server sent invalid JSON: {e}"))?;
    let items = match v {
        Value::Array(a) => a,
        other => vec![other],
    };
    if items.is_empty()
        || items
            .iter()
            .any(|m| m.get("jsonrpc").and_then(Value::as_str) != Some("2.0"))
    {
        return Err("the server sent JSON that is not a JSON-RPC message".into());
    }
    Ok(items)
}

/// `Mcp-Method` and `Mcp-Name` (2026-07-28): mirrored from the body so that
/// intermediaries can route; a value that is not plain header-safe ASCII is
/// carried in the spec's base64 sentinel form.
pub fn request_metadata_headers(msg: &Value) -> Vec<(String, String)> {
    let mut h = Vec::new();
    let Some(method) = msg["method"].as_str() else {
        return h;
    };
    h.push(("mcp-method".into(), header_value(method)));
    let name = match method {
        "tools/call" | "prompts/get" => msg["params"]["name"].as_str(),
        "resources/read" => msg["params"]["uri"].as_str(),
        _ => None,
    };
    if let Some(n) = name {
        h.push(("mcp-name".into(), header_value(n)));
    }
    h
}

fn header_value(v: &str) -> String {
    use base64::Engine as _;
    let safe = !v.is_empty()
        && v.bytes().all(|b| b == b'\t' || (0x20..=0x7e).contains(&b))
        && v.trim() == v
        && !(v.starts_with("=?base64?") && v.ends_with("?="));
    if safe {
        v.to_string()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(v.as_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_json_rpc_is_relayed() {
        assert_eq!(
            rpc_messages(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#).unwrap().len(),
            1
        );
        assert_eq!(
            rpc_messages(br#"[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","method":"x"}]"#)
                .unwrap()
                .len(),
            2
        );
        assert!(rpc_messages(b"<html>").is_err());
        assert!(rpc_messages(br#"{"hello":"world"}"#).is_err());
        assert!(rpc_messages(b"[]").is_err());
    }

    #[test]
    fn responses_match_their_request_only() {
        let r = serde_json::json!({"jsonrpc":"2.0","id":7,"result":{}});
        assert!(is_response_to(&r, &serde_json::json!(7)));
        assert!(!is_response_to(&r, &serde_json::json!("7")));
        let req = serde_json::json!({"jsonrpc":"2.0","id":7,"method":"sampling/createMessage"});
        assert!(!is_response_to(&req, &serde_json::json!(7)));
    }

    #[test]
    fn metadata_headers_use_the_sentinel_when_needed() {
        let m = serde_json::json!({"method":"tools/call","params":{"name":"Hello, 世界"}});
        let h = request_metadata_headers(&m);
        assert_eq!(h[0], ("mcp-method".into(), "tools/call".into()));
        assert_eq!(h[1], ("mcp-name".into(), "=?base64?SGVsbG8sIOS4lueVjA==?=".into()));
        assert_eq!(header_value(" padded "), "=?base64?IHBhZGRlZCA=?=");
        assert_eq!(header_value("us-west1"), "us-west1");
    }
}
