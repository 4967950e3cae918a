//! The errors an [`OAuthHttpClient`](crate::OAuthHttpClient) adds to the
//! wrapped client's, how an engine error is found again in rmcp's, and which
//! of the wrapped client's errors are a challenge for the engine.

use std::error::Error as StdError;
use std::fmt;

use rmcp::transport::streamable_http_client::{AuthRequiredError, InsufficientScopeError, StreamableHttpError};

/// What an [`OAuthHttpClient`] adds to the errors of the client it wraps
/// (rmcp gets it as `StreamableHttpError::Client`).
#[derive(Debug)]
#[non_exhaustive]
pub enum OAuthHttpError<E> {
    /// The engine ended without a token: the user declined, the sign-in
    /// timed out, authorization is required (silent mode), or a failure that
    /// says what to do next.
    Engine(mcp_oauth_host::Error),
    /// The wrapped client failed.
    Http(E),
    /// The engine made no DPoP proof for a DPoP-bound token.
    NoDpopProof,
    /// The access token or its DPoP proof is no valid HTTP header value.
    InvalidHeader,
    /// The MCP server demands a DPoP nonce (RFC 9449 §9), and the probe
    /// for it brought none (see the crate docs' limits).
    DpopNonceUnseen,
}

impl<E: fmt::Display> fmt::Display for OAuthHttpError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Engine(e) => fmt::Display::fmt(e, f),
            Self::Http(e) => fmt::Display::fmt(e, f),
            Self::NoDpopProof => f.write_str("the engine made no DPoP proof for a DPoP-bound token"),
            Self::InvalidHeader => f.write_str("the access token or its DPoP proof is not a valid HTTP header value"),
            Self::DpopNonceUnseen => f.write_str(
                "the MCP server demands a DPoP nonce (RFC 9449 §9) but did not name one when asked again; \
                 use the mcp-oauth proxy or AuthorizedClient with this server",
            ),
        }
    }
}

impl<E: StdError + 'static> StdError for OAuthHttpError<E> {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        // Transparent: the message is the wrapped error's own.
        match self {
            Self::Engine(e) => StdError::source(e),
            Self::Http(e) => StdError::source(e),
            _ => None,
        }
    }
}

/// The engine's error in an error rmcp returned, if the engine is what
/// failed it: looks along `error`'s sources for the error of an
/// [`OAuthHttpClient`] over reqwest. Pass a failed request's
/// `rmcp::ServiceError` itself; for a failed connection's
/// `ClientInitializeError::TransportError { error, .. }` pass `error` (rmcp
/// does not chain it as the source).
pub fn engine_error<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a mcp_oauth_host::Error> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(StreamableHttpError::Client(OAuthHttpError::Engine(found))) =
            e.downcast_ref::<HttpError<reqwest::Error>>()
        {
            return Some(found);
        }
        if let Some(OAuthHttpError::Engine(found)) = e.downcast_ref::<OAuthHttpError<reqwest::Error>>() {
            return Some(found);
        }
        if let Some(found) = e.downcast_ref::<mcp_oauth_host::Error>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

/// The error rmcp gets from an [`OAuthHttpClient`] over a client whose
/// error is `E`.
pub(crate) type HttpError<E> = StreamableHttpError<OAuthHttpError<E>>;

/// A 401 or a 403 that carried a challenge, as rmcp's clients report them.
pub(crate) enum Rejection {
    Unauthorized(AuthRequiredError),
    Forbidden(InsufficientScopeError),
}

impl Rejection {
    pub(crate) fn status(&self) -> u16 {
        match self {
            Self::Unauthorized(_) => 401,
            Self::Forbidden(_) => 403,
        }
    }

    /// The `WWW-Authenticate` value (rmcp keeps the first).
    pub(crate) fn challenge(&self) -> &str {
        match self {
            Self::Unauthorized(e) => &e.www_authenticate_header,
            Self::Forbidden(e) => &e.www_authenticate_header,
        }
    }

    /// The MCP server's DPoP nonce demand (RFC 9449 §9): a 401 with
    /// `error="use_dpop_nonce"`. Its `DPoP-Nonce` header is not at hand.
    pub(crate) fn asks_for_dpop_nonce(&self) -> bool {
        self.status() == 401 && self.challenge().to_ascii_lowercase().contains("use_dpop_nonce")
    }

    /// rmcp's error for it, as the inner client reported it.
    pub(crate) fn into_error<E: StdError + Send + Sync + 'static>(self) -> HttpError<E> {
        match self {
            Self::Unauthorized(e) => StreamableHttpError::AuthRequired(e),
            Self::Forbidden(e) => StreamableHttpError::InsufficientScope(e),
        }
    }
}

/// The inner client's error as this client's: the same variant (rmcp's
/// worker acts on several: a 404's `SessionExpired`, `ServerDoesNotSupportSse`,
/// the challenges), the inner client's own error wrapped.
pub(crate) fn from_inner<E: StdError + Send + Sync + 'static>(e: StreamableHttpError<E>) -> HttpError<E> {
    use rmcp::transport::streamable_http_client::StreamableHttpError as S;
    match e {
        S::Client(e) => S::Client(OAuthHttpError::Http(e)),
        S::Sse(e) => S::Sse(e),
        S::Io(e) => S::Io(e),
        S::HttpStatus(e) => S::HttpStatus(e),
        S::UnexpectedEndOfStream => S::UnexpectedEndOfStream,
        S::UnexpectedServerResponse(m) => S::UnexpectedServerResponse(m),
        S::ResponseBodyTooLarge { max_size } => S::ResponseBodyTooLarge { max_size },
        S::UnexpectedContentType(t) => S::UnexpectedContentType(t),
        S::ServerDoesNotSupportSse => S::ServerDoesNotSupportSse,
        S::ServerDoesNotSupportDeleteSession => S::ServerDoesNotSupportDeleteSession,
        S::TokioJoinError(e) => S::TokioJoinError(e),
        S::Deserialize(e) => S::Deserialize(e),
        S::TransportChannelClosed => S::TransportChannelClosed,
        S::MissingSessionIdInResponse => S::MissingSessionIdInResponse,
        S::AuthRequired(e) => S::AuthRequired(e),
        S::InsufficientScope(e) => S::InsufficientScope(e),
        S::ReservedHeaderConflict(h) => S::ReservedHeaderConflict(h),
        S::SessionExpired => S::SessionExpired,
        S::SessionRecoveryTimeout => S::SessionRecoveryTimeout,
        S::ReinitializationFailed(e) => S::ReinitializationFailed(e),
        S::ControlRequestTimeout => S::ControlRequestTimeout,
        // `Auth` (rmcp's `auth` feature, which this crate does not use) and
        // whatever a later rmcp adds: its message is kept.
        other => S::UnexpectedServerResponse(other.to_string().into()),
    }
}
