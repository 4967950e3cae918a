//! # mcp-oauth for rmcp
//!
//! A client transport for [rmcp](https://docs.rs/rmcp), the official Rust MCP
//! SDK, whose requests an mcp-oauth engine [`Session`] authorizes. It is
//! rmcp's own Streamable HTTP transport ([`StreamableHttpClientTransport`])
//! over an [`OAuthHttpClient`]: an implementation of rmcp's
//! [`StreamableHttpClient`] trait that wraps another one (rmcp's reqwest
//! client by default), so `().serve(transport)`, `rmcp::serve_client` and
//! every rmcp client API work unchanged.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use mcp_oauth_host::{Config, Runtime, RuntimeOptions, SessionIo};
//! use rmcp::ServiceExt;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let url = "https://mcp.example.com/mcp";
//!     let runtime = Runtime::new(RuntimeOptions::default())?;
//!     let session = runtime.session(url, Config::default(), SessionIo::terminal(false))?;
//!     // Signs in first (consent, then the browser) when nothing usable is stored.
//!     let client = ().serve(mcp_oauth_rmcp::transport(Arc::new(session), url)).await?;
//!     for tool in client.list_all_tools().await? {
//!         println!("{}", tool.name);
//!     }
//!     client.cancel().await?;
//!     Ok(())
//! }
//! ```
//!
//! Every HTTP request of the transport (the POSTs, the GET event stream and
//! its reconnections, the DELETE that ends a session) goes like this:
//!
//! 1. The session gives the token: `authorize(Silent)`, which the host
//!    answers from memory while the token is fresh and the engine answers
//!    with a refresh once it is stale. With nothing stored the request goes
//!    out without a token, and the server's 401 starts the sign-in (3.).
//! 2. The token is attached: `Authorization: Bearer <token>` through the
//!    inner client, or, for a DPoP-bound token, `Authorization: DPoP <token>`
//!    with a `DPoP` proof made for this request's method and URL
//!    ([`Session::dpop_proof`]; proofs are single-use). Both go as custom
//!    headers, which rmcp's clients send as given.
//! 3. A 401 with a challenge (rmcp's `AuthRequired`), or a 403 with one
//!    (`InsufficientScope`), goes to [`Session::on_response`] with the token
//!    the request carried: the engine refreshes, signs in again
//!    ([`Mode::Interactive`], the default; see [`OAuthHttpClient::silent`])
//!    or steps up the scopes, and the request is retried once with the token
//!    it returns. When the engine has nothing better, rmcp gets the 401/403
//!    as it would have.
//!
//! Session calls block (the engine runs in wasmtime, makes HTTP requests and
//! may wait for the user), so they run on tokio's blocking pool, never on an
//! async worker. The session takes them in turn: concurrent requests that
//! all meet a 401 cause one sign-in, and after the user declines every
//! request fails at once, naming the decline, until [`Session::retry`].
//! Engine failures reach rmcp as
//! `StreamableHttpError::Client(OAuthHttpError::Engine(..))`;
//! [`engine_error`] finds them in the error rmcp returns.
//!
//! # Limits
//!
//! - rmcp's client errors carry a 401/403's `WWW-Authenticate` header but no
//!   other header, so a `DPoP-Nonce` the MCP server demands (RFC 9449 §9;
//!   the authorization server's nonces are the engine's own business) is
//!   learnt from a probe: a JSON-RPC `ping` POSTed with the same headers,
//!   which the server rejects the same way, naming the nonce. The request is
//!   then sent again with a proof carrying it. Nonces the server rotates on
//!   successful responses are not seen (rmcp passes no response headers),
//!   so each rotation costs a probe. When the probe brings no nonce the
//!   request fails with [`OAuthHttpError::DpopNonceUnseen`].
//! - The session alone decides what authorizes a request: the transport
//!   configuration's `auth_header`, and `Authorization` or `DPoP` custom
//!   headers, are ignored.
//! - Tokens go to the URL the transport talks to: open the session for that
//!   same URL.

mod error;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use error::{HttpError, Rejection, from_inner};
pub use error::{OAuthHttpError, engine_error};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderName, HeaderValue};
use mcp_oauth_host::{AccessToken, AuthError, ChallengeOutcome, Mode, ServerResponse, Session};
/// The rmcp this transport is built for (pinned), so an embedder's rmcp
/// types are the same ones.
pub use rmcp;
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::common::client_side_sse::BoxedSseResponse;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClient, StreamableHttpClientTransportConfig, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};

/// The redirects the default inner client follows for one request, at most.
const MAX_REDIRECTS: usize = 10;

/// The DPoP nonce probe's deadline.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// A longer `DPoP-Nonce` is not a nonce this client keeps.
const MAX_NONCE_LEN: usize = 1024;

/// rmcp's Streamable HTTP transport to `url`, every request authorized by
/// `session` (see the crate docs), over rmcp's reqwest client. Call it
/// inside a tokio runtime: rmcp spawns the transport's worker there.
///
/// Panics if reqwest cannot set up its client (with the `rustls-no-provider`
/// feature: when no rustls crypto provider is installed).
pub fn transport(session: Arc<Session>, url: impl Into<Arc<str>>) -> StreamableHttpClientTransport<OAuthHttpClient> {
    StreamableHttpClientTransport::with_client(
        OAuthHttpClient::new(session),
        StreamableHttpClientTransportConfig::with_uri(url),
    )
}

/// rmcp's [`StreamableHttpClient`] with mcp-oauth authorization: it wraps
/// `C` (rmcp's reqwest client by default) and authorizes every request `C`
/// makes through a [`Session`]. Cheap to clone; clones share the session.
///
/// Give it to rmcp with your own transport configuration:
/// `StreamableHttpClientTransport::with_client(OAuthHttpClient::new(session), config)`.
#[derive(Clone)]
pub struct OAuthHttpClient<C = reqwest::Client> {
    inner: C,
    session: Arc<Session>,
    mode: Mode,
    /// For the DPoP nonce probe, made when first needed.
    probe: OnceLock<reqwest::Client>,
}

impl OAuthHttpClient {
    /// Over rmcp's reqwest client, set up as rmcp's own `from_uri` sets it
    /// up: no idle connection pool, and only same-origin 307 and 308
    /// redirects (they keep the method and body), at most 10.
    ///
    /// Panics if reqwest cannot set up its client (see [`transport`]).
    pub fn new(session: Arc<Session>) -> Self {
        Self::with_client(default_http_client(), session)
    }
}

impl<C> OAuthHttpClient<C> {
    /// Over `inner`, any rmcp client that sends its custom headers as given
    /// (the DPoP headers are custom headers) and reports 401/403 challenges
    /// as `AuthRequired`/`InsufficientScope`, as rmcp's own clients do.
    pub fn with_client(inner: C, session: Arc<Session>) -> Self {
        Self {
            inner,
            session,
            mode: Mode::Interactive,
            probe: OnceLock::new(),
        }
    }

    /// Never involve the user: a rejection that needs a new sign-in fails
    /// with the engine's `AuthorizationRequired` instead.
    pub fn silent(mut self) -> Self {
        self.mode = Mode::Silent;
        self
    }

    /// The session.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// The client it wraps.
    pub fn inner(&self) -> &C {
        &self.inner
    }
}

/// The `DPoP` header's name.
fn dpop_header() -> HeaderName {
    HeaderName::from_static("dpop")
}

/// `value` as a header value that HTTP/2 never indexes and `Debug` hides.
fn secret_header(value: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(value).ok()?;
    v.set_sensitive(true);
    Some(v)
}

/// reqwest as rmcp's `from_uri` sets it up (its `default_http_client` is
/// private): no idle connection pool, only same-origin 307 and 308
/// redirects.
fn default_http_client() -> reqwest::Client {
    // ring, as the host: a no-op when the application installed a provider.
    #[cfg(feature = "rustls")]
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            // A 301, 302 or 303 would turn the POST into a GET without its
            // body; another origin would get the session id and headers.
            let keeps_body = matches!(
                attempt.status(),
                reqwest::StatusCode::TEMPORARY_REDIRECT | reqwest::StatusCode::PERMANENT_REDIRECT
            );
            let same_origin = attempt
                .previous()
                .first()
                .is_some_and(|first| first.origin() == attempt.url().origin());
            if !keeps_body || !same_origin {
                attempt.stop()
            } else if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
            } else {
                attempt.follow()
            }
        }))
        .build()
        .expect("reqwest could not set up its HTTP client (no TLS crypto provider installed?)")
}

/// The DPoP nonce probe's client: no redirects, a deadline.
fn probe_http_client() -> reqwest::Client {
    #[cfg(feature = "rustls")]
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(PROBE_TIMEOUT)
        .build()
        .expect("reqwest could not set up its HTTP client (no TLS crypto provider installed?)")
}

impl<C> OAuthHttpClient<C>
where
    C: StreamableHttpClient + Sync,
{
    /// Runs `f` on the session, on tokio's blocking pool.
    async fn engine<R, F>(&self, f: F) -> Result<R, HttpError<C::Error>>
    where
        R: Send + 'static,
        F: FnOnce(&Session) -> Result<R, mcp_oauth_host::Error> + Send + 'static,
    {
        let session = Arc::clone(&self.session);
        match tokio::task::spawn_blocking(move || f(session.as_ref())).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(StreamableHttpError::Client(OAuthHttpError::Engine(e))),
            Err(e) => Err(StreamableHttpError::TokioJoinError(e)),
        }
    }

    /// The inner client's `auth_header` (a Bearer token) and custom headers
    /// for one request with `token`. A DPoP-bound token goes as
    /// `Authorization: DPoP` with a proof for `method` and `uri`, both as
    /// custom headers, and no `auth_header` (the inner client would add a
    /// Bearer one).
    async fn credentials(
        &self,
        method: &'static str,
        uri: &str,
        token: Option<&AccessToken>,
        custom_headers: &HashMap<HeaderName, HeaderValue>,
    ) -> Result<(Option<String>, HashMap<HeaderName, HeaderValue>), HttpError<C::Error>> {
        let mut headers = custom_headers.clone();
        headers.remove(&AUTHORIZATION);
        headers.remove(&dpop_header());
        let Some(token) = token else {
            return Ok((None, headers));
        };
        if !token.dpop {
            return Ok((Some(token.token.clone()), headers));
        }
        // A bound token goes only with a fresh proof (RFC 9449 §7.1).
        let url = uri.to_string();
        let Some(proof) = self.engine(move |s| s.dpop_proof(method, &url)).await? else {
            return Err(StreamableHttpError::Client(OAuthHttpError::NoDpopProof));
        };
        let (Some(authorization), Some(proof)) =
            (secret_header(&format!("DPoP {}", token.token)), secret_header(&proof))
        else {
            return Err(StreamableHttpError::Client(OAuthHttpError::InvalidHeader));
        };
        headers.insert(AUTHORIZATION, authorization);
        headers.insert(dpop_header(), proof);
        Ok((None, headers))
    }

    /// Sends with `send` (the inner client's call: `auth_header`, custom
    /// headers) with the session's token; a 401/403 challenge goes to the
    /// engine, and the request is sent once more with the token it returns.
    async fn authorized<T, F, Fut>(
        &self,
        method: &'static str,
        uri: &str,
        custom_headers: &HashMap<HeaderName, HeaderValue>,
        send: F,
    ) -> Result<T, HttpError<C::Error>>
    where
        F: Fn(Option<String>, HashMap<HeaderName, HeaderValue>) -> Fut,
        Fut: Future<Output = Result<T, StreamableHttpError<C::Error>>>,
    {
        // Nothing stored yet: the request goes without a token, and the
        // server's 401 starts the sign-in. Any other failure (a decline
        // latched, a broken store) ends the request here, without HTTP.
        let mut token = self
            .engine(|s| match s.authorize(Mode::Silent) {
                Ok(t) => Ok(Some(t)),
                Err(mcp_oauth_host::Error::Auth(AuthError::AuthorizationRequired)) => Ok(None),
                Err(e) => Err(e),
            })
            .await?;
        let (mut retried, mut probed) = (false, false);
        loop {
            let (auth_header, headers) = self.credentials(method, uri, token.as_ref(), custom_headers).await?;
            let rejection = match send(auth_header, headers).await {
                Ok(r) => {
                    // The token handed out for a challenge works: the engine
                    // re-arms its once-per-rejection refresh (rmcp reports
                    // no status or header of a success: 200, no nonce).
                    if retried || probed {
                        let sent = token.map(|t| t.token);
                        self.engine(move |s| {
                            s.note_success(200, sent, None);
                            Ok(())
                        })
                        .await?;
                    }
                    return Ok(r);
                }
                Err(StreamableHttpError::AuthRequired(e)) => Rejection::Unauthorized(e),
                Err(StreamableHttpError::InsufficientScope(e)) => Rejection::Forbidden(e),
                Err(e) => return Err(from_inner(e)),
            };
            // A DPoP nonce demand (RFC 9449 §9) gets its own try, once per
            // request; every other challenge one retry.
            let dpop_nonce = if rejection.asks_for_dpop_nonce() && !probed {
                probed = true;
                let nonce = self.probe_dpop_nonce(uri, token.as_ref(), custom_headers).await?;
                Some(nonce.ok_or(StreamableHttpError::Client(OAuthHttpError::DpopNonceUnseen))?)
            } else if retried || rejection.asks_for_dpop_nonce() {
                return Err(rejection.into_error());
            } else {
                retried = true;
                None
            };
            let response = ServerResponse {
                status: rejection.status(),
                www_authenticate: vec![rejection.challenge().to_string()],
                // The engine tells a stale 401 (another request has already
                // replaced the token) from a rejection of the current token.
                sent_token: token.as_ref().map(|t| t.token.clone()),
                dpop_nonce,
            };
            let mode = self.mode;
            match self.engine(move |s| s.on_response(&response, mode)).await? {
                ChallengeOutcome::Token(t) => token = Some(t),
                ChallengeOutcome::Unchanged => return Err(rejection.into_error()),
            }
        }
    }

    /// The `DPoP-Nonce` an MCP server demands. rmcp's errors carry a 401's
    /// `WWW-Authenticate` and no other header, so the nonce comes from a
    /// probe: a JSON-RPC `ping` POSTed to the same URL with the request's
    /// headers, its token and a fresh proof. A server that demands a nonce
    /// rejects the probe as it did the request, before reading it, and says
    /// the nonce again; a ping it does read changes nothing. `None` when the
    /// probe fails or brings no usable nonce.
    async fn probe_dpop_nonce(
        &self,
        uri: &str,
        token: Option<&AccessToken>,
        custom_headers: &HashMap<HeaderName, HeaderValue>,
    ) -> Result<Option<String>, HttpError<C::Error>> {
        let (_, headers) = self.credentials("POST", uri, token, custom_headers).await?;
        let client = self.probe.get_or_init(probe_http_client);
        let mut request = client
            .post(uri)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream")
            .body(r#"{"jsonrpc":"2.0","id":"mcp-oauth-dpop-nonce","method":"ping"}"#);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        // The body is never read: only the header is wanted.
        let Ok(response) = request.send().await else {
            return Ok(None);
        };
        Ok(response
            .headers()
            .get("dpop-nonce")
            .and_then(|v| v.to_str().ok())
            .filter(|n| !n.is_empty() && n.len() <= MAX_NONCE_LEN)
            .map(String::from))
    }
}

impl<C> StreamableHttpClient for OAuthHttpClient<C>
where
    C: StreamableHttpClient + Sync,
{
    type Error = OAuthHttpError<C::Error>;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        self.authorized("POST", &uri, &custom_headers, |auth, headers| {
            let (uri, message, session_id) = (uri.clone(), message.clone(), session_id.clone());
            async move { self.inner.post_message(uri, message, session_id, auth, headers).await }
        })
        .await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        self.authorized("POST", &uri, &custom_headers, |auth, headers| {
            let (uri, message, session_id) = (uri.clone(), message.clone(), session_id.clone());
            async move {
                self.inner
                    .post_message_with_max_sse_event_size(uri, message, session_id, auth, headers, max_sse_event_size)
                    .await
            }
        })
        .await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        self.authorized("POST", &uri, &custom_headers, |auth, headers| {
            let (uri, message, session_id) = (uri.clone(), message.clone(), session_id.clone());
            async move {
                self.inner
                    .post_message_with_response_limits(uri, message, session_id, auth, headers, limits)
                    .await
            }
        })
        .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), StreamableHttpError<Self::Error>> {
        self.authorized("DELETE", &uri, &custom_headers, |auth, headers| {
            let (uri, session_id) = (uri.clone(), session_id.clone());
            async move { self.inner.delete_session(uri, session_id, auth, headers).await }
        })
        .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxedSseResponse, StreamableHttpError<Self::Error>> {
        self.authorized("GET", &uri, &custom_headers, |auth, headers| {
            let (uri, session_id, last_event_id) = (uri.clone(), session_id.clone(), last_event_id.clone());
            async move {
                self.inner
                    .get_stream(uri, session_id, last_event_id, auth, headers)
                    .await
            }
        })
        .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<BoxedSseResponse, StreamableHttpError<Self::Error>> {
        self.authorized("GET", &uri, &custom_headers, |auth, headers| {
            let (uri, session_id, last_event_id) = (uri.clone(), session_id.clone(), last_event_id.clone());
            async move {
                self.inner
                    .get_stream_with_max_sse_event_size(
                        uri,
                        session_id,
                        last_event_id,
                        auth,
                        headers,
                        max_sse_event_size,
                    )
                    .await
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::transport::streamable_http_client::{AuthRequiredError, InsufficientScopeError};

    #[test]
    fn only_a_dpop_nonce_demand_is_one() {
        let unauthorized = |h: &str| Rejection::Unauthorized(AuthRequiredError::new(h.into()));
        assert!(
            unauthorized(r#"DPoP error="use_dpop_nonce", error_description="a nonce is required""#)
                .asks_for_dpop_nonce()
        );
        assert!(!unauthorized(r#"DPoP error="invalid_token", algs="ES256""#).asks_for_dpop_nonce());
        assert!(!unauthorized(r#"Bearer resource_metadata="https://a.example/.well-known/x""#).asks_for_dpop_nonce());
        let forbidden = Rejection::Forbidden(InsufficientScopeError::new(
            r#"DPoP error="use_dpop_nonce""#.into(),
            None,
        ));
        assert!(!forbidden.asks_for_dpop_nonce(), "a 403 is no nonce demand");
    }

    #[test]
    fn the_inner_clients_variants_are_kept() {
        let e = from_inner::<std::io::Error>(StreamableHttpError::SessionExpired);
        assert!(matches!(e, StreamableHttpError::SessionExpired));
        let e = from_inner::<std::io::Error>(StreamableHttpError::Client(std::io::Error::other("boom")));
        assert!(matches!(e, StreamableHttpError::Client(OAuthHttpError::Http(_))));
        assert!(e.to_string().contains("boom"), "{e}");
        let e = from_inner::<std::io::Error>(StreamableHttpError::AuthRequired(AuthRequiredError::new(
            "Bearer".into(),
        )));
        assert!(matches!(e, StreamableHttpError::AuthRequired(_)));
    }

    #[test]
    fn engine_errors_are_found_in_rmcp_errors() {
        let declined = mcp_oauth_host::Error::Auth(AuthError::Declined);
        let e: HttpError<reqwest::Error> = StreamableHttpError::Client(OAuthHttpError::Engine(declined));
        assert!(matches!(
            engine_error(&e),
            Some(mcp_oauth_host::Error::Auth(AuthError::Declined))
        ));
        assert!(e.to_string().contains("declined"), "{e}");
        let other: HttpError<reqwest::Error> = StreamableHttpError::SessionExpired;
        assert!(engine_error(&other).is_none());
    }

    #[test]
    fn secrets_are_sensitive_header_values() {
        assert!(secret_header("DPoP abc").is_some_and(|v| v.is_sensitive()));
        assert!(secret_header("bad\nvalue").is_none());
    }
}
