//! What the engine reports to the host, for the user: what is stored
//! ([`Status`]), what a logout did ([`LogoutReport`]), a device code to show
//! ([`DeviceCode`]) and the page a browser tab gets ([`Page`]). No secrets.

use alloc::string::String;
use alloc::vec::Vec;

/// What is known about the server's authorization (no secrets).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    /// The server URL.
    pub server_url: String,
    /// The resource tokens are requested for.
    pub resource: Option<String>,
    /// The authorization server in use.
    pub issuer: Option<String>,
    /// The client id in use for that issuer.
    pub client_id: Option<String>,
    /// The scopes of the stored token.
    pub scopes: Vec<String>,
    /// When the stored access token expires (unix ms).
    pub expires_at: Option<u64>,
    /// A token is stored.
    pub has_token: bool,
    /// A refresh token is stored.
    pub can_refresh: bool,
    /// The decline latch is set.
    pub declined: bool,
    /// The server is a 2025-03-26 server without PRM.
    pub legacy: bool,
}

/// What the user needs to sign in on another device (RFC 8628 §3.2), every
/// part checked: the URIs are https (or loopback http), the code printable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCode {
    /// Where to go.
    pub verification_uri: String,
    /// The same with the code in it (prefer it: a QR code, a link).
    pub verification_uri_complete: Option<String>,
    /// What to type there.
    pub user_code: String,
    /// How long the code is good for, in seconds.
    pub expires_in_s: u64,
}

/// The answer the loopback listener gives the browser: the engine's one
/// template (`wire::callback_page`), status, headers and HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// HTTP status.
    pub status: u16,
    /// Header name/value pairs (content type, no-store, CSP).
    pub headers: Vec<(String, String)>,
    /// The HTML.
    pub body: String,
}

/// What `logout` did at the authorization server (RFC 7009).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogoutReport {
    /// Which tokens the AS confirmed revoked (`refresh_token`, `access_token`).
    pub revoked: Vec<String>,
    /// Why a revocation failed (the tokens were forgotten locally anyway).
    pub failed: Option<String>,
    /// What was not revoked and why, when that is no failure: asked not
    /// to, nothing stored, no `revocation_endpoint`, or a token kind the AS
    /// does not revoke (`unsupported_token_type`).
    pub skipped: Option<String>,
}
