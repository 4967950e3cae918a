//! The protected MCP server: a `WWW-Authenticate` challenge for a missing,
//! unknown, expired, revoked or foreign token (RFC 6750 §3, RFC 9728 §5.1),
//! 403 `insufficient_scope` for missing scopes, and JSON-RPC behind them
//! (Streamable HTTP with JSON responses: initialize, ping, tools/list,
//! tools/call `echo`; notifications 202; no GET stream).

use crate::{PrmAt, Request, Response, Servers};

/// The protocol revisions the fake server can answer `initialize` with.
const VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

impl Servers {
    fn challenge(&self, error: Option<&str>, scope: Option<&str>) -> String {
        let mut parts = vec![];
        if (self.mcp.prm_at == PrmAt::Header || self.mcp.announce_prm)
            && let Some(url) = self.prm_url()
        {
            parts.push(format!("resource_metadata=\"{url}\""));
        }
        if let Some(e) = error {
            parts.push(format!("error=\"{e}\""));
        }
        if let Some(s) = scope {
            parts.push(format!("scope=\"{s}\""));
        }
        // A DPoP-only resource server challenges with the DPoP scheme (§7.1).
        let scheme = if self.mcp.dpop {
            parts.push("algs=\"ES256\"".into());
            "DPoP"
        } else {
            "Bearer"
        };
        if parts.is_empty() {
            scheme.into()
        } else {
            format!("{scheme} {}", parts.join(", "))
        }
    }

    fn refuse(&self, status: u16, error: Option<&str>, scope: Option<&str>) -> Response {
        Response {
            status,
            headers: vec![("www-authenticate".into(), self.challenge(error, scope))],
            body: if status == 401 {
                b"unauthorized".to_vec()
            } else {
                b"forbidden".to_vec()
            },
        }
    }

    pub(crate) fn mcp_request(&mut self, now_ms: u64, req: &Request) -> Response {
        let auth = req.header("authorization").unwrap_or_default();
        let (dpop_scheme, token) = match (auth.strip_prefix("Bearer "), auth.strip_prefix("DPoP ")) {
            (Some(t), _) => (false, Some(String::from(t))),
            (_, Some(t)) => (true, Some(String::from(t))),
            _ => (false, None),
        };
        let unauthorized = |s: &Servers| s.refuse(401, None, s.mcp.challenge_scope.as_deref());
        let Some(at) = token.as_ref().and_then(|t| self.access.get(t)).cloned() else {
            return unauthorized(self);
        };
        let bound = token.as_ref().and_then(|t| self.dpop_bound.get(t)).cloned();
        if bound.is_some() && !dpop_scheme {
            self.violations.push("a DPoP-bound token was sent as Bearer".into());
            return self.refuse(401, Some("invalid_token"), None);
        }
        if dpop_scheme {
            let proof = match self.dpop_proof(now_ms, req, token.as_deref()) {
                Ok(Some(p)) => p,
                Ok(None) => return self.refuse(401, Some("invalid_dpop_proof"), None),
                Err(r) => return r,
            };
            if let Some(r) = self.rs_nonce_missing(&proof) {
                return r;
            }
            if bound.as_ref() != Some(&proof.jwk) {
                return self.refuse(401, Some("invalid_token"), None);
            }
        } else if self.mcp.dpop {
            return self.refuse(401, Some("invalid_token"), None);
        }
        if at.revoked
            || self.mcp.reject_tokens
            || self.revoked_families.contains(&at.family)
            || at.expires_at_ms <= now_ms
            || at.resource != self.mcp.prm_resource
        {
            return unauthorized(self);
        }
        if let Some(s) = self.mcp.always_insufficient.clone() {
            return self.refuse(403, Some("insufficient_scope"), Some(&s));
        }
        if self.mcp.required_scope.iter().any(|s| !at.scope.contains(s)) {
            let need = self.mcp.required_scope.join(" ");
            return self.refuse(403, Some("insufficient_scope"), Some(&need));
        }
        json_rpc(req)
    }
}

fn json_rpc(req: &Request) -> Response {
    if req.method != "POST" {
        return Response {
            status: 405,
            headers: vec![("allow".into(), "POST".into())],
            body: vec![],
        };
    }
    let msg: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
    let id = msg["id"].clone();
    if id.is_null() {
        // A notification or a response: accepted, nothing to answer.
        return Response::text(202, "");
    }
    let result = match msg["method"].as_str().unwrap_or("") {
        "initialize" => {
            let asked = msg["params"]["protocolVersion"].as_str().unwrap_or("");
            let version = VERSIONS.iter().find(|v| **v == asked).unwrap_or(&VERSIONS[0]);
            serde_json::json!({
                "protocolVersion": version,
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "mcp-oauth fake server", "version": env!("CARGO_PKG_VERSION")},
            })
        }
        "ping" => serde_json::json!({}),
        "tools/list" => serde_json::json!({"tools": [{
            "name": "echo",
            "description": "Echoes its text",
            "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}},
        }]}),
        "tools/call" => {
            let text = msg["params"]["arguments"]["text"].as_str().unwrap_or("").to_string();
            serde_json::json!({"content": [{"type": "text", "text": text}]})
        }
        other => {
            return Response::json(
                200,
                serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": format!("no method {other}")}}),
            );
        }
    };
    Response::json(200, serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result}))
}
