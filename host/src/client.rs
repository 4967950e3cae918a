//! An authorized HTTP client for agents: attaches the session's token, hands
//! a 401/403 to the engine and retries once with the new token. Share it
//! between threads: N concurrent requests that all hit 401 cause one flow
//! (one consent prompt, one browser), and after a decline every request fails
//! fast with `Declined` until [`AuthorizedClient::retry`].

use std::sync::Arc;

use crate::bindings::exports::mcp::oauth::client::ChallengeOutcome;
use crate::bindings::mcp::oauth::engine_types::{AccessToken, AuthError, Failure, FailureKind, Mode, ServerResponse};
use crate::http::{HttpClient, HttpOptions, Request, Response};
use crate::runtime::{Error, Session};

/// See the module docs.
#[derive(Clone)]
pub struct AuthorizedClient {
    session: Arc<Session>,
    http: HttpClient,
    mode: Mode,
}

impl AuthorizedClient {
    /// A client over `session`; interactive (may prompt) by default.
    pub fn new(session: Arc<Session>, http: HttpOptions) -> Self {
        Self {
            session,
            http: HttpClient::new(http),
            mode: Mode::Interactive,
        }
    }

    /// Never prompt: fail with `AuthorizationRequired` instead.
    pub fn silent(mut self) -> Self {
        self.mode = Mode::Silent;
        self
    }

    /// The session.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// Clears the decline latch: the next request may prompt again.
    pub fn retry(&self) -> Result<(), Error> {
        self.session.retry()
    }

    fn send_with(&self, req: &Request, token: Option<&AccessToken>) -> Result<Response, Error> {
        let mut r = req.clone();
        r.headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("authorization") && !k.eq_ignore_ascii_case("dpop"));
        if let Some(t) = token {
            r.headers.push(("authorization".into(), authorization(t)));
            // A bound token goes only with a fresh proof (RFC 9449 §7.1).
            if t.dpop {
                let proof = self.session.dpop_proof(req.method, &req.url)?.ok_or_else(|| {
                    Error::Auth(AuthError::Failed(Failure {
                        kind: FailureKind::Other,
                        message: "the engine made no DPoP proof for a DPoP-bound token".into(),
                        oauth: None,
                    }))
                })?;
                r.headers.push(("dpop".into(), proof));
            }
        }
        self.http.send(&r).map_err(|e| {
            Error::Auth(AuthError::Failed(Failure {
                kind: FailureKind::Transport,
                message: format!(
                    "could not reach {} ({}): {e}; check the URL and your network",
                    req.url, req.method
                ),
                oauth: None,
            }))
        })
    }

    /// Sends `req` with the current token; on 401/403 lets the engine fix
    /// authorization and retries: once, or twice when a DPoP nonce demand
    /// follows a fresh authorization (RFC 9449 §9). Never more.
    pub fn send(&self, req: &Request) -> Result<Response, Error> {
        let mut token = match self.session.authorize(Mode::Silent) {
            Ok(t) => Some(t),
            Err(Error::Auth(AuthError::AuthorizationRequired)) => None,
            Err(e) => return Err(e),
        };
        let mut resp = self.send_with(req, token.as_ref())?;
        let mut retried = false;
        for _ in 0..2 {
            if resp.status != 401 && resp.status != 403 {
                break;
            }
            let dpop_nonce = match nonce_signal(resp.status, &resp.header_values("dpop-nonce"), retried) {
                NonceSignal::Challenge(n) => n,
                _ => None,
            };
            let challenge = ServerResponse {
                status: resp.status,
                www_authenticate: resp.header_values("www-authenticate"),
                sent_token: token.as_ref().map(|t| t.token.clone()),
                dpop_nonce,
            };
            match self.session.on_response(&challenge, self.mode)? {
                ChallengeOutcome::Token(t) => {
                    resp = self.send_with(req, Some(&t))?;
                    token = Some(t);
                    retried = true;
                }
                ChallengeOutcome::Unchanged => break,
            }
        }
        if let NonceSignal::Note(n) = nonce_signal(resp.status, &resp.header_values("dpop-nonce"), retried) {
            self.session.note_success(resp.status, token.map(|t| t.token), n);
        }
        Ok(resp)
    }
}

/// What a response from the MCP server tells the engine: its `DPoP-Nonce`
/// (RFC 9449 §8, §9), and whether a token handed out after a challenge
/// works. The rule every host follows (`tests/vectors/dpop_nonce_signals.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NonceSignal {
    /// A 401 or 403: goes with the challenge (the nonce, if any).
    Challenge(Option<String>),
    /// A 2xx that carries a nonce (kept for the next proof), or that answers
    /// a request sent again after a challenge (the new token works: the
    /// engine re-arms its once-per-rejection refresh).
    Note(Option<String>),
    /// Anything else: ignored.
    Ignore,
}

/// The signal of a response with `status` and these `DPoP-Nonce` values
/// (in order: the first counts; an empty one is none); `retried`: the
/// request was sent again after a challenge.
pub fn nonce_signal(status: u16, nonces: &[String], retried: bool) -> NonceSignal {
    let nonce = nonces.first().filter(|n| !n.is_empty()).cloned();
    match (status, nonce) {
        (401 | 403, n) => NonceSignal::Challenge(n),
        (200..=299, Some(n)) => NonceSignal::Note(Some(n)),
        (200..=299, None) if retried => NonceSignal::Note(None),
        _ => NonceSignal::Ignore,
    }
}

/// The `Authorization` value for a token: `DPoP` when bound, else `Bearer`.
pub fn authorization(t: &AccessToken) -> String {
    let scheme = if t.dpop { "DPoP" } else { "Bearer" };
    format!("{scheme} {}", t.token)
}

impl AuthorizedClient {
    /// POSTs a JSON body (MCP over HTTP), accepting JSON or an event stream.
    pub fn post_json(&self, url: &str, body: &[u8]) -> Result<Response, Error> {
        self.send(&Request {
            method: "POST",
            url: url.to_string(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("accept".into(), "application/json, text/event-stream".into()),
            ],
            body: body.to_vec(),
        })
    }
}
