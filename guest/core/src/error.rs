//! The one error type of the engine. Every message says what went wrong and
//! what to do next; none carries a token, secret, code or verifier.

use alloc::string::String;
use core::fmt;

/// Everything that can end a flow without a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The configuration or the server URL given to the session is unusable.
    InvalidConfig {
        /// What is wrong with it.
        reason: String,
    },
    /// A URL from metadata, a registration or a header was refused.
    UnsafeUrl {
        /// The field it came from.
        what: &'static str,
        /// The URL, shortened and stripped of control characters.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// The network request failed before a response arrived.
    Transport {
        /// The URL that was requested.
        url: String,
        /// The host's description of the failure.
        message: String,
    },
    /// No protected resource or authorization server metadata could be found.
    DiscoveryFailed {
        /// Which document was being looked for.
        what: &'static str,
        /// The URLs that were tried and what each returned.
        tried: String,
    },
    /// The PRM `resource` does not identify the server it was fetched for
    /// (RFC 9728 §3.3, §7.3).
    ResourceMismatch {
        /// The `resource` the metadata names.
        resource: String,
        /// The MCP server URL in use.
        server: String,
    },
    /// AS metadata named a different `issuer` than the one used to find it
    /// (RFC 8414 §3.3; MCP 2026-07-28 "Authorization Server Metadata Discovery").
    IssuerMismatch {
        /// The issuer the metadata URL was built from.
        expected: String,
        /// The issuer the document claims.
        found: String,
    },
    /// The AS does not advertise PKCE S256 (MCP 2025-11-25 "Authorization Code
    /// Protection").
    PkceUnsupported {
        /// The authorization server.
        issuer: String,
    },
    /// No way to identify this client to the AS.
    NoClientIdentity {
        /// The authorization server.
        issuer: String,
        /// What the AS offers, in words.
        offers: String,
    },
    /// Pre-registered credentials belong to another authorization server
    /// (MCP 2026-07-28 "Authorization Server Binding").
    ClientIssuerMismatch {
        /// The issuer the credentials were configured for.
        configured: String,
        /// The issuer the server now points to.
        actual: String,
    },
    /// Dynamic client registration was refused.
    RegistrationFailed {
        /// HTTP status of the registration response.
        status: u16,
        /// OAuth error code, if the AS sent one.
        error: Option<String>,
        /// The AS's description, if any.
        description: Option<String>,
    },
    /// Silent mode needs a user to authorize; nothing was prompted.
    AuthorizationRequired,
    /// The user declined (consent refused, `access_denied`, cancelled). Later
    /// calls fail fast with this until `retry()`.
    Declined,
    /// The authorization server answered the redirect with an error.
    AuthorizationFailed {
        /// The OAuth error code.
        error: String,
        /// The AS's description, if any.
        description: Option<String>,
    },
    /// The redirect's `iss` does not match the authorization server in use
    /// (RFC 9207 §2.4; MCP 2026-07-28 "Authorization Response Validation").
    /// The AS's error text, if any, is deliberately not shown.
    IssMismatch {
        /// The issuer the engine expected.
        expected: String,
    },
    /// The token endpoint refused the request.
    TokenRequestFailed {
        /// HTTP status.
        status: u16,
        /// OAuth error code, if any.
        error: Option<String>,
        /// The AS's description, if any.
        description: Option<String>,
    },
    /// A response could not be understood.
    InvalidResponse {
        /// Which response.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// No redirect arrived before the deadline.
    TimedOut,
    /// The server keeps asking for more scopes (MCP "Step-Up Authorization
    /// Flow": retry limits).
    StepUpLimit {
        /// How many step-ups this session has done.
        attempts: u8,
        /// The scopes the last challenge asked for.
        scope: String,
    },
    /// The MCP server answered 401 to a token its authorization server
    /// issued in the same operation: the sign-in worked, the server refuses
    /// what the AS gives (an audience or resource the two disagree on).
    TokenRefused {
        /// The resource the token was issued for (RFC 8707).
        resource: String,
    },
    /// The MCP server refused the request for a reason a new token cannot fix.
    Forbidden {
        /// The server's error code, if any.
        error: Option<String>,
        /// The server's description, if any.
        description: Option<String>,
    },
    /// The loopback callback listener could not be started.
    CallbackListener {
        /// The host's message (names the port when a pinned port is taken).
        message: String,
    },
    /// The store could not be read, or its lock not had (the host's message
    /// names it and says what to do); nothing was changed.
    Storage {
        /// The host's message.
        message: String,
    },
    /// The driver fed an input the engine was not waiting for, or called
    /// `handle` with no flow running (a host bug).
    UnexpectedInput {
        /// What the engine was waiting for.
        expected: &'static str,
    },
    /// The engine broke one of its own rules (an engine bug, not the host's).
    Internal {
        /// Which rule.
        what: &'static str,
    },
}

fn opt(f: &mut fmt::Formatter<'_>, label: &str, v: &Option<String>) -> fmt::Result {
    match v {
        Some(v) => write!(f, " ({label}: {v})"),
        None => Ok(()),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Error::*;
        match self {
            InvalidConfig { reason } => write!(f, "invalid configuration: {reason}"),
            UnsafeUrl {
                what: "server",
                url,
                reason,
            } => {
                write!(f, "the server URL \"{url}\" cannot be used: {reason}")
            }
            UnsafeUrl { what, url, reason } => write!(
                f,
                "refused the {what} URL \"{url}\": {reason}; the server's metadata is misconfigured or malicious, nothing was opened"
            ),
            Transport { url, message } => write!(f, "could not reach {url}: {message}; check the URL and your network"),
            DiscoveryFailed { what, tried } => write!(
                f,
                "no {what} found (tried {tried}); check the server URL, or pass the client configuration explicitly"
            ),
            ResourceMismatch { resource, server } => write!(
                f,
                "the server's protected resource metadata names resource \"{resource}\", which does not cover \"{server}\"; refusing to authorize (possible misconfiguration or attack)"
            ),
            IssuerMismatch { expected, found } => write!(
                f,
                "authorization server metadata claims issuer \"{found}\" but was looked up for \"{expected}\"; refusing to use it"
            ),
            PkceUnsupported { issuer } => write!(
                f,
                "authorization server {issuer} does not advertise PKCE S256 (code_challenge_methods_supported); refusing to authorize. If you trust it, allow it explicitly in the configuration"
            ),
            NoClientIdentity { issuer, offers } => write!(
                f,
                "no way to identify this client to {issuer}: {offers}. Configure a pre-registered client id or a client ID metadata document URL"
            ),
            ClientIssuerMismatch { configured, actual } => write!(
                f,
                "the configured client credentials are for {configured}, but the server now uses {actual}; register a client with the new authorization server"
            ),
            RegistrationFailed {
                status,
                error,
                description,
            } => {
                write!(f, "dynamic client registration failed with HTTP {status}")?;
                opt(f, "error", error)?;
                opt(f, "description", description)?;
                write!(f, "; pass a pre-registered client id instead")
            }
            AuthorizationRequired => write!(f, "authorization required: no usable token is stored"),
            Declined => write!(
                f,
                "authorization was declined; nothing more will be asked until you retry"
            ),
            AuthorizationFailed { error, description } => {
                write!(f, "the authorization server returned error \"{error}\"")?;
                opt(f, "description", description)
            }
            IssMismatch { expected } => write!(
                f,
                "the authorization response did not come from {expected} (iss mismatch, RFC 9207); possible mix-up attack, the response was discarded"
            ),
            TokenRequestFailed {
                status,
                error,
                description,
            } => {
                write!(f, "the token endpoint answered HTTP {status}")?;
                opt(f, "error", error)?;
                opt(f, "description", description)
            }
            InvalidResponse { what, detail } => write!(f, "invalid {what}: {detail}"),
            TimedOut => write!(
                f,
                "timed out waiting for the sign-in to be finished (the browser to come back to the loopback redirect, or the device code to be entered before it expired)"
            ),
            StepUpLimit { attempts, scope } => write!(
                f,
                "the server still demands more scope ({scope}) after {attempts} step-up authorizations; giving up"
            ),
            TokenRefused { resource } => write!(
                f,
                "the MCP server refused (HTTP 401) a token its authorization server just issued for resource {resource}; \
                 signing in again would not help: the tokens are kept, check that the server accepts tokens for that resource"
            ),
            Forbidden { error, description } => {
                write!(f, "the server refused the request (HTTP 403)")?;
                opt(f, "error", error)?;
                opt(f, "description", description)
            }
            CallbackListener { message } => write!(
                f,
                "could not start the loopback callback listener: {message}; free the port or configure another callback port"
            ),
            Storage { message } => write!(f, "the token store failed: {message}; nothing was changed"),
            UnexpectedInput { expected } => write!(
                f,
                "host bug: the engine was waiting for {expected} and got something else"
            ),
            Internal { what } => write!(
                f,
                "internal error in the engine ({what}); nothing was sent or saved after it, please report it"
            ),
        }
    }
}

impl core::error::Error for Error {}
