//! What goes on the wire, apart from the connection: the 2026-07-28
//! per-request `_meta` and HTTP headers, reply parsing (JSON or SSE) and the
//! classification of results and errors. Pure functions, tested here.

use base64::Engine as _;
use serde_json::Value;

use crate::http::Response;

/// The modern revision (per-request metadata, no session).
pub const MODERN_VERSION: &str = "2026-07-28";
/// The legacy revision this client asks for in `initialize`.
pub const LEGACY_VERSION: &str = "2025-11-25";
/// Legacy revisions a server may pick in `initialize` or list as supported.
pub const LEGACY_VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];

/// `_meta` key of the request's protocol version.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key of the client's capabilities.
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key of the client's name and version.
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";

/// `HeaderMismatch`: headers and body disagree, or a header is missing.
pub const HEADER_MISMATCH: i64 = -32020;
/// `MissingRequiredClientCapability`.
pub const MISSING_CAPABILITY: i64 = -32021;
/// `UnsupportedProtocolVersion`: `data.supported` lists the server's versions.
pub const UNSUPPORTED_VERSION: i64 = -32022;

/// More versions than any server has; a longer list is cut.
const MAX_VERSIONS: usize = 32;

/// Every JSON-RPC message in an SSE body (`data:` lines of each event).
pub fn sse_messages(body: &str) -> Vec<Value> {
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

/// Whether an error code can only come from a 2026-07-28 (or later) server.
pub fn is_modern_error(code: i64) -> bool {
    matches!(code, HEADER_MISMATCH | MISSING_CAPABILITY | UNSUPPORTED_VERSION)
}

/// `params` with the per-request `_meta` keys set; the caller's other
/// `_meta` keys (progress token, trace context) are kept.
pub fn with_request_meta(params: Value, version: &str, capabilities: &Value, client_info: &Value) -> Value {
    let mut params = match params {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    let mut meta = match params.remove("_meta") {
        Some(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    meta.insert(META_PROTOCOL_VERSION.into(), Value::String(version.into()));
    meta.insert(META_CLIENT_CAPABILITIES.into(), capabilities.clone());
    meta.insert(META_CLIENT_INFO.into(), client_info.clone());
    params.insert("_meta".into(), Value::Object(meta));
    Value::Object(params)
}

/// A header value as the transport spec wants it: verbatim when it is plain
/// ASCII without surrounding whitespace, else the `=?base64?…?=` sentinel
/// (also for a plain value that looks like the sentinel, so it can't be
/// misread).
pub fn header_value(s: &str) -> String {
    let plain = s.bytes().all(|b| b == b'\t' || (0x20..=0x7e).contains(&b))
        && s.trim_matches([' ', '\t']) == s
        && !(s.starts_with("=?base64?") && s.ends_with("?="));
    if plain {
        s.to_string()
    } else {
        format!("=?base64?{}?=", base64::engine::general_purpose::STANDARD.encode(s))
    }
}

/// The `Mcp-Name` value of a request: the tool or prompt name, or the URI.
pub fn mcp_name(method: &str, params: &Value) -> Option<String> {
    let field = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" => "uri",
        _ => return None,
    };
    params[field].as_str().map(header_value)
}

/// The headers of a modern POST besides content negotiation.
pub fn modern_headers(version: &str, method: &str, params: &Value) -> Vec<(String, String)> {
    let mut h = vec![
        ("MCP-Protocol-Version".to_string(), version.to_string()),
        ("Mcp-Method".to_string(), header_value(method)),
    ];
    if let Some(name) = mcp_name(method, params) {
        h.push(("Mcp-Name".into(), name));
    }
    h
}

/// A JSON-RPC answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `result`.
    Result(Value),
    /// `error`.
    Error {
        /// Code.
        code: i64,
        /// Message, shortened.
        message: String,
        /// `data`, if any.
        data: Value,
    },
}

/// The answer to request `id` in a response body (JSON or SSE). An error
/// with a null id counts: the server may not have read the id.
pub fn find_reply(resp: &Response, id: u64) -> Result<Option<Reply>, String> {
    let is_sse = resp
        .header_values("content-type")
        .iter()
        .any(|c| c.to_ascii_lowercase().starts_with("text/event-stream"));
    let text = String::from_utf8_lossy(&resp.body);
    let messages = if is_sse {
        sse_messages(&text)
    } else if text.trim().is_empty() {
        vec![]
    } else {
        vec![serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?]
    };
    let reply = messages.into_iter().find(|m| {
        m["id"].as_u64() == Some(id) || (m["id"].is_null() && m.get("error").is_some() && m.get("method").is_none())
    });
    Ok(reply.map(|m| match m.get("error") {
        Some(err) => Reply::Error {
            code: err["code"].as_i64().unwrap_or(0),
            message: err["message"].as_str().unwrap_or("").chars().take(300).collect(),
            data: err.get("data").cloned().unwrap_or(Value::Null),
        },
        None => Reply::Result(m.get("result").cloned().unwrap_or(Value::Null)),
    }))
}

/// What a result's `resultType` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultKind {
    /// `"complete"`, or absent (servers before 2026-07-28).
    Complete,
    /// `"input_required"`: the server wants input and a retry.
    InputRequired,
    /// Anything else: invalid for this client.
    Unknown(String),
}

/// The kind of `result`.
pub fn result_kind(result: &Value) -> ResultKind {
    match result.get("resultType") {
        None | Some(Value::Null) => ResultKind::Complete,
        Some(Value::String(s)) if s == "complete" => ResultKind::Complete,
        Some(Value::String(s)) if s == "input_required" => ResultKind::InputRequired,
        Some(Value::String(s)) => ResultKind::Unknown(s.chars().take(64).collect()),
        Some(other) => ResultKind::Unknown(other.to_string().chars().take(64).collect()),
    }
}

/// The version strings of a `supportedVersions` or `data.supported` list.
pub fn versions(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .take(MAX_VERSIONS)
                .filter_map(|v| v.as_str())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// The version to use from a server's list: the modern one, else the newest
/// legacy one this client knows.
pub fn pick_version(supported: &[String]) -> Option<&'static str> {
    std::iter::once(MODERN_VERSION)
        .chain(LEGACY_VERSIONS)
        .find(|v| supported.iter().any(|s| s == v))
}
