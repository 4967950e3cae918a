//! The data that crosses between the engine and its driver: effects the
//! engine asks for, inputs the driver answers with. Every effect maps to one
//! host import in `wit/` (see the table in `lib.rs`).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::error::Error;
pub use crate::report::{DeviceCode, LogoutReport, Page, Status};

/// An access token handed to the caller for `Authorization: Bearer` (or
/// `DPoP` when bound to a key).
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    secret: String,
    /// Absolute expiry (unix ms), when the AS said.
    pub expires_at: Option<u64>,
    /// From when (unix ms) the engine treats the token as stale and
    /// refreshes it: a host that caches the token serves it until then.
    pub refresh_at: Option<u64>,
    /// The scopes granted (or requested, when the AS did not say).
    pub scopes: Vec<String>,
    /// Bound to a DPoP key (RFC 9449): never sent as Bearer; every request
    /// carries a proof from `Session::dpop_proof`.
    pub dpop: bool,
}

impl AccessToken {
    pub(crate) fn new(
        secret: String,
        expires_at: Option<u64>,
        refresh_at: Option<u64>,
        scopes: Vec<String>,
        dpop: bool,
    ) -> Self {
        Self {
            secret,
            expires_at,
            refresh_at,
            scopes,
            dpop,
        }
    }

    /// The token itself. Treat it as a secret.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The value for the `Authorization` header.
    pub fn authorization_header(&self) -> String {
        let scheme = if self.dpop { "DPoP" } else { "Bearer" };
        format!("{scheme} {}", self.secret)
    }
}

impl core::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AccessToken")
            .field("secret", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("refresh_at", &self.refresh_at)
            .field("scopes", &self.scopes)
            .field("dpop", &self.dpop)
            .finish()
    }
}

/// Whether the engine may involve the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// May prompt, open the browser and wait for the callback.
    Interactive,
    /// Never prompts: returns `AuthorizationRequired` instead.
    Silent,
}

/// A response from the MCP server, as the engine needs to see it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ServerResponse {
    /// HTTP status.
    pub status: u16,
    /// Every `WWW-Authenticate` header value.
    pub www_authenticate: Vec<String>,
    /// The access token the request carried, if any.
    pub sent_token: Option<String>,
    /// The `DPoP-Nonce` header, if any (RFC 9449 §9).
    pub dpop_nonce: Option<String>,
}

impl core::fmt::Debug for ServerResponse {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ServerResponse")
            .field("status", &self.status)
            .field("www_authenticate", &self.www_authenticate)
            .field("sent_token", &self.sent_token.as_ref().map(|_| "<redacted>"))
            .field("dpop_nonce", &self.dpop_nonce)
            .finish()
    }
}

/// HTTP method. The engine only ever reads metadata and posts forms or JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// POST.
    Post,
}

/// An HTTP request the driver must send exactly as given.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// GET or POST.
    pub method: Method,
    /// Absolute URL, already checked by `url_safety`.
    pub url: String,
    /// Header name/value pairs.
    pub headers: Vec<(String, String)>,
    /// The body (may carry secrets: never log it).
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub(crate) fn get(url: &str) -> Self {
        Self {
            method: Method::Get,
            url: String::from(url),
            headers: alloc::vec![(String::from("accept"), String::from("application/json"))],
            body: Vec::new(),
        }
    }

    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Bodies and the Authorization header carry secrets.
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("header_names", &names)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// The response to an [`HttpRequest`].
#[derive(Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// HTTP status code.
    pub status: u16,
    /// Header name/value pairs.
    pub headers: Vec<(String, String)>,
    /// The body (token responses carry secrets: never log it).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// What the engine asks the user before any registration or browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRequest {
    /// The MCP server the user is connecting to.
    pub server_url: String,
    /// The authorization server that will be opened.
    pub issuer: String,
    /// The scopes that will be requested (may be empty: the AS's default).
    pub scopes: Vec<String>,
    /// Why authorization is needed now.
    pub reason: ConsentReason,
}

/// Why an interactive authorization is starting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConsentReason {
    /// No token yet.
    #[default]
    FirstLogin,
    /// The stored authorization can no longer be used (expired, revoked).
    Reauthorize,
    /// The server asked for more scope.
    StepUp,
}

/// Something the user or the host log should know; needs only an [`Input::Ack`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A request reached the callback listener but was not accepted; the flow
    /// keeps waiting (missing or wrong `state`, malformed query).
    CallbackRejected {
        /// Why it was not accepted.
        reason: String,
    },
    /// The browser could not be opened; the host should show the URL so the
    /// user can open it by hand. The flow keeps waiting.
    BrowserOpenFailed {
        /// The authorization URL (built from validated parts only).
        url: String,
        /// The host's message.
        reason: String,
    },
    /// A record could not be saved; the flow goes on with what it has in memory.
    StorageWarning {
        /// The kind of record (`tokens`, `registration`, ...).
        record: String,
        /// The host's message.
        message: String,
    },
    /// The configuration overrides the S256 check for this issuer.
    PkceCheckOverridden {
        /// The authorization server.
        issuer: String,
    },
    /// Sign in on another device (RFC 8628 §3.3): show the URI and the
    /// code. The flow polls the token endpoint meanwhile.
    DeviceCode(DeviceCode),
    /// A 2025-03-26 server's metadata names an issuer other than its origin;
    /// accepted on the legacy path only.
    LegacyIssuerDiffers {
        /// The authorization base URL (the server's origin).
        origin: String,
        /// What the document claims.
        issuer: String,
    },
}

/// One thing the engine needs done. Perform it, then feed the matching
/// [`Input`] to `Session::handle`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send this request; answer with [`Input::Http`]. Import: `http.send`.
    Http(HttpRequest),
    /// Read a record; answer with [`Input::Loaded`]. Import: `storage.get`.
    Load {
        /// Storage key (a hash; never a path).
        key: String,
    },
    /// Write a record; answer with [`Input::Stored`]. Import: `storage.set`.
    Save {
        /// Storage key.
        key: String,
        /// The record (JSON; may hold secrets).
        value: Vec<u8>,
    },
    /// Remove a record; answer with [`Input::Stored`]. Import: `storage.delete`.
    Delete {
        /// Storage key.
        key: String,
    },
    /// Take the exclusive lock on a record before reading, refreshing and
    /// rewriting it, so two processes never spend the same rotated refresh
    /// token; answer with [`Input::Locked`]. Import: `storage.lock`. Released
    /// by [`Effect::Unlock`]; a host also releases it when the flow ends.
    Lock {
        /// Storage key of the record.
        key: String,
    },
    /// Release a lock taken with [`Effect::Lock`]; answer with [`Input::Ack`].
    /// Import: `storage.unlock`.
    Unlock {
        /// Storage key of the record.
        key: String,
    },
    /// Sign this JWS signing input with the client's ES256 key; answer with
    /// [`Input::Signed`]. Import: `signer.sign`. The key stays in the host.
    Sign {
        /// `BASE64URL(header) "." BASE64URL(claims)`.
        input: Vec<u8>,
    },
    /// Make a DPoP proof (RFC 9449) over these claims with the host's key
    /// pair `key_id` (created on first use, kept beside the tokens); answer
    /// with [`Input::DpopProof`]. Import: `signer.dpop-proof`. The key stays
    /// in the host.
    DpopProof {
        /// Which key pair (one per issuer and resource).
        key_id: String,
        /// The proof's claims, JSON.
        claims: String,
    },
    /// Bind the loopback callback listener; answer with [`Input::Listening`].
    /// Import: `callback.listener` constructor. The listener lives until the
    /// flow ends (`Step::Done`).
    Listen {
        /// A pinned port, or `None` for any free port.
        port: Option<u16>,
    },
    /// Ask the user; answer with [`Input::Consent`]. Import: `prompts.consent`.
    Consent(ConsentRequest),
    /// Open this URL in the browser; answer with [`Input::Opened`].
    /// Import: `browser.open`.
    OpenBrowser {
        /// The authorization URL.
        url: String,
    },
    /// Wait for the next request to the callback listener; answer with
    /// [`Input::Callback`]. Import: `listener.next`.
    AwaitCallback {
        /// How long to wait at most, in milliseconds.
        timeout_ms: u64,
    },
    /// Tell the user or the log; answer with [`Input::Ack`]. Import: `prompts.notify`.
    Notify(Event),
    /// Wait this long before the next device-grant poll, unless the user
    /// cancels; answer with [`Input::Paused`]. Import: `prompts.pause`.
    Pause {
        /// How long, in ms.
        ms: u64,
    },
    /// Answer the browser's request that [`Input::Callback`] delivered
    /// with this page; answer with [`Input::Ack`]. Import:
    /// `listener.respond`. (A pasted redirect has no one to answer: ack.)
    Respond(Page),
}

/// A transport failure: no HTTP response at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportError {
    /// What went wrong (DNS, TLS, timeout, refused...).
    pub message: String,
}

/// What reached the callback listener.
#[derive(Clone, PartialEq, Eq)]
pub enum CallbackEvent {
    /// A request on the callback path, or a pasted redirect URL: its query
    /// string (without the `?`).
    Redirect {
        /// The raw query string.
        query: String,
    },
    /// The timeout passed with nothing accepted.
    TimedOut,
    /// The user cancelled the wait.
    Cancelled,
}

impl fmt::Debug for CallbackEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The query carries the authorization code: names only.
            CallbackEvent::Redirect { query } => {
                let names: Vec<&str> = query
                    .split('&')
                    .map(|p| p.split('=').next().unwrap_or(""))
                    .take(8)
                    .collect();
                f.debug_struct("Redirect").field("parameters", &names).finish()
            }
            CallbackEvent::TimedOut => f.write_str("TimedOut"),
            CallbackEvent::Cancelled => f.write_str("Cancelled"),
        }
    }
}

/// The driver's answer to the last [`Effect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Answer to [`Effect::Http`].
    Http(Result<HttpResponse, TransportError>),
    /// Answer to [`Effect::Load`]: the bytes, or `None` when absent or unreadable.
    Loaded(Option<Vec<u8>>),
    /// Answer to [`Effect::Load`] when the store itself failed (down, refused,
    /// timed out): the operation ends with [`crate::Error::Storage`]. A store
    /// that cannot be read must not look empty, or a replica would sign in
    /// anew beside a grant it merely could not see.
    LoadFailed(String),
    /// Answer to [`Effect::Save`] and [`Effect::Delete`].
    Stored(Result<(), String>),
    /// Answer to [`Effect::Lock`]: held, or why not (the operation ends with
    /// [`crate::Error::Storage`]: no refresh without the lock).
    Locked(Result<(), String>),
    /// Answer to [`Effect::Sign`]: the 64-byte ES256 signature (r || s), or why not.
    Signed(Result<Vec<u8>, String>),
    /// Answer to [`Effect::DpopProof`]: the compact JWS, or why not.
    DpopProof(Result<String, String>),
    /// Answer to [`Effect::Listen`]: the redirect URI to use, or why binding failed.
    Listening(Result<String, String>),
    /// Answer to [`Effect::Consent`]: `true` to go on.
    Consent(bool),
    /// Answer to [`Effect::OpenBrowser`].
    Opened(Result<(), String>),
    /// Answer to [`Effect::AwaitCallback`].
    Callback(CallbackEvent),
    /// Answer to [`Effect::Pause`]: waited, or the user cancelled (why).
    Paused(Result<(), String>),
    /// Answer to [`Effect::Notify`], [`Effect::Unlock`] and [`Effect::Respond`].
    Ack,
}

/// Identifies one flow, so callers that joined it can fetch its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlowId(pub u64);

/// What a finished operation produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A token to put in `Authorization: Bearer`.
    Token(AccessToken),
    /// The response needed nothing from the engine (not a 401/403).
    Unchanged,
    /// The stored tokens were removed (after revoking them, when asked and
    /// the AS offers it).
    LoggedOut(LogoutReport),
    /// What is known about the server (from `Session::inspect`).
    Status(Status),
    /// The `DPoP` header for a request (from `Session::dpop_proof`); `None`
    /// when the token is not DPoP-bound.
    Proof(Option<String>),
}

/// The engine's answer to every call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Perform this effect, then call `Session::handle` with its input.
    Effect(Effect),
    /// Another caller is driving flow `FlowId`, whose outcome is this
    /// call's too (a token for a token): wait until it is done, then read
    /// `Session::outcome`.
    Wait(FlowId),
    /// Another caller is driving flow `FlowId`, whose outcome is not this
    /// call's (a proof, a logout or a status during a refresh; an
    /// interactive call during a silent one): wait until it is done, then
    /// make this call again.
    Busy(FlowId),
    /// The operation is over.
    Done(Result<Outcome, Error>),
}
