//! Version selection: `server/discover` first; a modern answer or modern
//! error keeps the 2026-07-28 wire, anything else a legacy server says falls
//! back to the 2025-11-25 `initialize` handshake.

use serde_json::{Value, json};

use super::wire::{self, Reply, ResultKind};
use super::{Era, LEGACY_PROTOCOL_VERSION, McpClient, McpError, Outcome, lock, rpc_error};

impl McpClient {
    /// Picks the protocol version: `server/discover` with the modern
    /// metadata; a modern error keeps the server modern (retry with a
    /// version it lists), anything else from a 4xx falls back to
    /// `initialize`. Returns the discover or initialize result.
    pub(super) fn negotiate(&self) -> Result<Value, McpError> {
        *lock(&self.era) = Era::Unknown;
        *lock(&self.session_id) = None;
        // A server may refuse a version it then lists as supported (a
        // transient refusal): one retry with it, no more.
        let mut retried = false;
        loop {
            let supported = match self.discover()? {
                Ok(r) => return Ok(r),
                Err(supported) => supported,
            };
            match wire::pick_version(&supported) {
                Some(wire::MODERN_VERSION) if !retried => retried = true,
                Some(v) if v != wire::MODERN_VERSION => return self.legacy_initialize(v),
                _ => return Err(McpError::UnsupportedVersion { supported }),
            }
        }
    }

    /// One `server/discover`: the final result (modern, or legacy after the
    /// fallback), or the versions of a modern server that refused ours.
    fn discover(&self) -> Result<Result<Value, Vec<String>>, McpError> {
        let out = self.exchange(Some(wire::MODERN_VERSION), "server/discover", json!({}), vec![])?;
        let supported = match out {
            Outcome::Reply(Reply::Result(r), _) => {
                match wire::result_kind(&r) {
                    ResultKind::Complete => {}
                    ResultKind::InputRequired => {
                        return Err(McpError::Invalid("server/discover asked for input".into()));
                    }
                    ResultKind::Unknown(t) => return Err(McpError::UnsupportedResultType(t)),
                }
                // A legacy server that answered anyway has no version list.
                if r.get("supportedVersions").is_none() {
                    return self.legacy_initialize(LEGACY_PROTOCOL_VERSION).map(Ok);
                }
                let supported = wire::versions(&r["supportedVersions"]);
                if supported.iter().any(|v| v == wire::MODERN_VERSION) {
                    *lock(&self.era) = Era::Modern(wire::MODERN_VERSION.into());
                    return Ok(Ok(r));
                }
                supported
            }
            Outcome::Reply(Reply::Error { code, data, .. }, _) if code == wire::UNSUPPORTED_VERSION => {
                wire::versions(&data["supported"])
            }
            Outcome::Reply(Reply::Error { code, message, .. }, _) if wire::is_modern_error(code) => {
                return Err(rpc_error(code, message));
            }
            Outcome::Reply(Reply::Error { code, message, .. }, status) => {
                if status >= 500 {
                    return Err(rpc_error(code, message));
                }
                return self.legacy_initialize(LEGACY_PROTOCOL_VERSION).map(Ok);
            }
            Outcome::Http { status, body } => {
                // 401/403 left over after the engine's retry, rate limits and
                // server errors say nothing about the era.
                if (400..500).contains(&status) && !matches!(status, 401 | 403 | 408 | 429) {
                    return self.legacy_initialize(LEGACY_PROTOCOL_VERSION).map(Ok);
                }
                return Err(McpError::Http { status, body });
            }
        };
        Ok(Err(supported))
    }

    /// The 2025-11-25 handshake: `initialize`, then `notifications/initialized`.
    fn legacy_initialize(&self, version: &str) -> Result<Value, McpError> {
        *lock(&self.session_id) = None;
        let params = json!({
            "protocolVersion": version,
            "capabilities": self.capabilities,
            "clientInfo": self.client_info(),
        });
        let result = match self.exchange(None, "initialize", params, vec![])? {
            Outcome::Reply(Reply::Result(r), _) => r,
            Outcome::Reply(Reply::Error { code, message, .. }, _) => return Err(rpc_error(code, message)),
            Outcome::Http { status, body } => return Err(McpError::Http { status, body }),
        };
        let negotiated = result["protocolVersion"].as_str().unwrap_or(version);
        *lock(&self.era) = Era::Legacy(negotiated.chars().take(64).collect());
        self.notify("notifications/initialized")?;
        Ok(result)
    }
}
