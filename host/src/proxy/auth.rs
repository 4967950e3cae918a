//! Authorization for the proxy's requests, through the engine: the stored
//! token when there is one; on 401/403 the engine refreshes, re-authorizes or
//! steps up. A flow that needs the browser runs under the cross-process
//! login lock, in a session opened after the lock is taken (so it sees what
//! another process stored meanwhile). A failed flow latches for the life of
//! the proxy: later requests fail fast with the same error, never another
//! browser tab.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::log::Log;
use super::login_lock::{LoginLock, now_ms};
use crate::Config;
use crate::bindings::exports::mcp::oauth::client::ChallengeOutcome;
use crate::bindings::mcp::oauth::engine_types::{AccessToken, AuthError, FailureKind, Mode, ServerResponse};
use crate::runtime::{Error, Runtime, Session, SessionIo, describe_auth_error};

/// Why a request could not be authorized: sent to the client as a JSON-RPC
/// error.
#[derive(Debug, Clone)]
pub struct AuthFailure {
    /// `declined`, `timed-out`, `authorization-required` or `failed`.
    pub kind: String,
    /// What to show.
    pub message: String,
}

/// See the module docs.
pub struct Authorizer {
    runtime: Runtime,
    url: String,
    config: Config,
    io: SessionIo,
    session: Mutex<Arc<Session>>,
    latch: Mutex<Option<AuthFailure>>,
    flow: Mutex<()>,
    lock_path: PathBuf,
    lock_wait: Duration,
    log: Arc<Log>,
}

fn kind_of(e: &Error) -> &'static str {
    match e.auth() {
        Some(AuthError::Declined) => "declined",
        Some(AuthError::TimedOut) => "timed-out",
        Some(AuthError::AuthorizationRequired) => "authorization-required",
        _ => "failed",
    }
}

impl Authorizer {
    /// An authorizer over `session` (already opened for `url`).
    pub fn new(runtime: Runtime, session: Session, config: Config, io: SessionIo, log: Arc<Log>) -> Self {
        let url = session.server_url().to_string();
        let lock_path = super::login_lock::lock_path(&runtime.options().home, &url);
        // The other process's browser wait, plus its exchange.
        let lock_wait = Duration::from_millis(config.callback_timeout_ms.unwrap_or(300_000)) + Duration::from_secs(60);
        Self {
            runtime,
            url,
            config,
            io,
            session: Mutex::new(Arc::new(session)),
            latch: Mutex::new(None),
            flow: Mutex::new(()),
            lock_path,
            lock_wait,
            log,
        }
    }

    fn session(&self) -> Arc<Session> {
        self.session.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn latched(&self) -> Result<(), AuthFailure> {
        match &*self.latch.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(f) => Err(f.clone()),
            None => Ok(()),
        }
    }

    fn failure(&self, e: &Error) -> AuthFailure {
        let message = match e.auth() {
            Some(AuthError::Declined) => format!(
                "authorization for {} was declined; restart this MCP server in your client to sign in again",
                self.url
            ),
            Some(AuthError::TimedOut) => format!(
                "timed out waiting for the browser to sign in to {}; restart this MCP server in your client to try again, or sign in first with: mcp-oauth login {}",
                self.url, self.url
            ),
            Some(a) => format!("authorization for {} failed: {}", self.url, describe_auth_error(a)),
            None => format!("authorization for {} failed: {e}", self.url),
        };
        AuthFailure {
            kind: kind_of(e).to_string(),
            message,
        }
    }

    fn latch(&self, f: &AuthFailure) {
        self.log.notice(&f.message);
        *self.latch.lock().unwrap_or_else(|e| e.into_inner()) = Some(f.clone());
    }

    /// The token to send now, if any. Never involves the user.
    pub fn token(&self) -> Result<Option<AccessToken>, AuthFailure> {
        self.latched()?;
        match self.session().authorize(Mode::Silent) {
            Ok(t) => Ok(Some(t)),
            Err(Error::Auth(AuthError::AuthorizationRequired)) => Ok(None),
            Err(e) if matches!(e.auth(), Some(AuthError::Declined)) => {
                let f = self.failure(&e);
                self.latch(&f);
                Err(f)
            }
            Err(e) => Err(self.failure(&e)),
        }
    }

    /// The server refused `sent` with `status`: a token to retry with, or
    /// `None` when the engine leaves the answer as it is.
    pub fn rejected(
        &self,
        status: u16,
        www_authenticate: Vec<String>,
        sent: Option<String>,
        dpop_nonce: Option<String>,
    ) -> Result<Option<AccessToken>, AuthFailure> {
        self.latched()?;
        // One flow per process: the others wait here, then find its token.
        let _flow = self.flow.lock().unwrap_or_else(|e| e.into_inner());
        self.latched()?;
        let challenge = ServerResponse {
            status,
            www_authenticate,
            sent_token: sent.clone(),
            dpop_nonce,
        };
        self.log
            .debug(&format!("HTTP {status} from the MCP server; asking the engine"));
        // Without the user first: a token another request renewed, or a refresh.
        match self.session().on_response(&challenge, Mode::Silent) {
            Ok(ChallengeOutcome::Token(t)) => return Ok(Some(t)),
            Ok(ChallengeOutcome::Unchanged) => return Ok(None),
            Err(Error::Auth(AuthError::AuthorizationRequired)) => {}
            Err(e) => {
                let f = self.failure(&e);
                if matches!(e.auth(), Some(AuthError::Declined)) {
                    self.latch(&f);
                }
                return Err(f);
            }
        }
        self.interactive(&challenge, sent)
    }

    /// The `DPoP` header for a request with the current token, if bound.
    pub fn proof(&self, method: &str, url: &str) -> Result<Option<String>, AuthFailure> {
        self.session().dpop_proof(method, url).map_err(|e| self.failure(&e))
    }

    /// A 2xx the engine hears of ([`crate::client::nonce_signal`]): its
    /// `DPoP-Nonce`, and that the token sent after a challenge works.
    pub fn success(&self, status: u16, sent_token: Option<String>, nonce: Option<String>) {
        self.session().note_success(status, sent_token, nonce);
    }

    fn interactive(
        &self,
        challenge: &ServerResponse,
        sent: Option<String>,
    ) -> Result<Option<AccessToken>, AuthFailure> {
        let waited_from = now_ms();
        let lock = LoginLock::acquire(&self.lock_path, self.lock_wait).map_err(|m| AuthFailure {
            kind: "failed".into(),
            message: m,
        })?;
        if let Some(o) = lock.failure_since(waited_from) {
            // Someone else's flow failed while we waited: same answer, no tab.
            let f = AuthFailure {
                kind: o.kind,
                message: o.message,
            };
            self.latch(&f);
            return Err(f);
        }
        // A new session reads the store afresh: another process may have
        // stored tokens while we waited.
        let fresh = match self.runtime.session(&self.url, self.config.clone(), self.io.clone()) {
            Ok(s) => Arc::new(s),
            Err(e) => return Err(self.failure(&e)),
        };
        *self.session.lock().unwrap_or_else(|e| e.into_inner()) = fresh.clone();
        if let Ok(t) = fresh.authorize(Mode::Silent)
            && Some(&t.token) != sent.as_ref()
        {
            self.log.debug("another process stored a token meanwhile; using it");
            return Ok(Some(t));
        }
        self.log
            .notice(&format!("{} needs you to sign in; opening the browser", self.url));
        match fresh.on_response(challenge, Mode::Interactive) {
            Ok(ChallengeOutcome::Token(t)) => {
                self.log.notice(&format!("signed in to {}", self.url));
                Ok(Some(t))
            }
            Ok(ChallengeOutcome::Unchanged) => Ok(None),
            Err(e) => {
                let f = self.failure(&e);
                // Transport trouble is not the person's answer: no latch.
                let transient = matches!(e.auth(), Some(AuthError::Failed(x)) if x.kind == FailureKind::Transport)
                    || matches!(e, Error::Trapped(_));
                if !transient {
                    lock.note_failure(&f.kind, &f.message);
                    self.latch(&f);
                }
                Err(f)
            }
        }
    }
}
