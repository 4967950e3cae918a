//! World `engine`: the `client` export, driven through the imports.

extern crate alloc;

use alloc::string::String;
use core::cell::RefCell;

use core_engine::{CallbackEvent, Effect, Entropy, Input, Outcome, Session, Step, TransportError};
use mcp_oauth_core as core_engine;

use crate::convert;

wit_bindgen::generate!({
    world: "engine",
    path: "../../wit",
});

use exports::mcp::oauth::client::{self, ChallengeOutcome};
use mcp::oauth::callback::{Listener, ListenerError};
use mcp::oauth::engine_types::{AccessToken, AuthError, Config, LogoutReport, Mode, ServerResponse, Status};
use mcp::oauth::{browser, clock, http, prompts, random, signer, storage};

struct Component;

export!(Component);

impl client::Guest for Component {
    type Session = ClientSession;
}

/// A session driven through the imports.
pub struct ClientSession {
    engine: RefCell<Session>,
}

impl ClientSession {
    /// Runs one operation to its end, performing every effect. The listener
    /// lives exactly as long as the flow.
    fn drive(&self, start: impl FnOnce(&mut Session, u64) -> Step) -> Result<Outcome, AuthError> {
        let mut engine = self.engine.borrow_mut();
        let mut listener: Option<Listener> = None;
        let mut step = start(&mut engine, clock::now_ms());
        loop {
            step = match step {
                Step::Effect(e) => {
                    let input = perform(e, &mut listener);
                    engine.handle(clock::now_ms(), input)
                }
                // One instance runs one call at a time; the host serialises
                // callers, so a running flow here is a host bug.
                Step::Wait(_) | Step::Busy(_) => return Err(convert::other("a flow is already running")),
                Step::Done(r) => return r.map_err(|e| convert::auth_error(&e)),
            };
        }
    }

    /// 64 random bytes from the host (the core refuses too few, or zeros).
    fn with_entropy(&self) -> Result<Entropy, AuthError> {
        Entropy::from_slice(&random::get_random_bytes(64)).map_err(|e| convert::auth_error(&e))
    }
}

impl client::GuestSession for ClientSession {
    fn open(server_url: String, config: Config) -> Result<client::Session, AuthError> {
        let engine = Session::new(&server_url, convert::config(config)).map_err(|e| convert::auth_error(&e))?;
        Ok(client::Session::new(ClientSession {
            engine: RefCell::new(engine),
        }))
    }

    fn authorize(&self, mode: Mode) -> Result<AccessToken, AuthError> {
        let entropy = self.with_entropy()?;
        match self.drive(|s, now| s.authorize(now, convert::mode(mode), entropy))? {
            Outcome::Token(t) => Ok(convert::token(&t)),
            _ => Err(convert::other("no token")),
        }
    }

    fn on_response(&self, response: ServerResponse, mode: Mode) -> Result<ChallengeOutcome, AuthError> {
        let entropy = self.with_entropy()?;
        let resp = convert::server_response(response);
        match self.drive(|s, now| s.on_response(now, &resp, convert::mode(mode), entropy))? {
            Outcome::Token(t) => Ok(ChallengeOutcome::Token(convert::token(&t))),
            _ => Ok(ChallengeOutcome::Unchanged),
        }
    }

    fn dpop_proof(&self, method: String, url: String) -> Result<Option<String>, AuthError> {
        let entropy = self.with_entropy()?;
        match self.drive(|s, now| s.dpop_proof(now, &method, &url, entropy))? {
            Outcome::Proof(p) => Ok(p),
            _ => Err(convert::other("no proof")),
        }
    }

    fn retry(&self) {
        self.engine.borrow_mut().retry();
    }

    fn logout(&self, revoke: bool) -> Result<LogoutReport, AuthError> {
        match self.drive(|s, now| s.logout(now, revoke))? {
            Outcome::LoggedOut(r) => Ok(convert::logout_report(r)),
            _ => Err(convert::other("no logout report")),
        }
    }

    fn status(&self) -> Result<Status, AuthError> {
        match self.drive(|s, now| s.inspect(now))? {
            Outcome::Status(st) => Ok(convert::status(&st)),
            _ => Err(convert::other("no status")),
        }
    }
}

/// Performs one effect through the imports.
fn perform(effect: Effect, listener: &mut Option<Listener>) -> Input {
    match effect {
        Effect::Http(req) => {
            Input::Http(
                http::send(&convert::request(&req))
                    .map(convert::response)
                    .map_err(|e| TransportError {
                        message: convert::http_error(&e),
                    }),
            )
        }
        Effect::Load { key } => match storage::get(&key) {
            Ok(bytes) => Input::Loaded(bytes),
            Err(e) => Input::LoadFailed(convert::storage_error(&e)),
        },
        Effect::Save { key, value } => {
            Input::Stored(storage::set(&key, &value).map_err(|e| convert::storage_error(&e)))
        }
        Effect::Delete { key } => Input::Stored(storage::delete(&key).map_err(|e| convert::storage_error(&e))),
        Effect::Lock { key } => Input::Locked(storage::lock(&key).map_err(|e| convert::storage_error(&e))),
        Effect::Unlock { key } => {
            storage::unlock(&key);
            Input::Ack
        }
        Effect::Sign { input } => Input::Signed(signer::sign(&input).map_err(|e| match e {
            signer::SignerError::NoKey => String::from("no signing key is configured"),
            signer::SignerError::Failed(m) => m,
        })),
        Effect::DpopProof { key_id, claims } => {
            Input::DpopProof(signer::dpop_proof(&key_id, &claims).map_err(|e| match e {
                signer::SignerError::NoKey => String::from("the host keeps no DPoP keys"),
                signer::SignerError::Failed(m) => m,
            }))
        }
        Effect::Listen { port } => match Listener::bind(port) {
            Ok(l) => {
                let uri = l.redirect_uri();
                *listener = Some(l);
                Input::Listening(Ok(uri))
            }
            Err(ListenerError::PortInUse(p)) => {
                Input::Listening(Err(alloc::format!("port {p} is already in use on 127.0.0.1")))
            }
            Err(ListenerError::Other(m)) => Input::Listening(Err(m)),
        },
        Effect::Consent(ask) => Input::Consent(matches!(
            prompts::consent(&convert::consent_request(&ask)),
            Ok(prompts::ConsentAnswer::Allow)
        )),
        Effect::OpenBrowser { url } => Input::Opened(browser::open(&url).map_err(|e| match e {
            browser::BrowserError::Refused(m) | browser::BrowserError::Failed(m) => m,
        })),
        Effect::AwaitCallback { timeout_ms } => match listener.as_ref() {
            Some(l) => Input::Callback(match l.next(timeout_ms) {
                Ok(ev) => convert::callback_event(ev),
                Err(_) => CallbackEvent::TimedOut,
            }),
            None => Input::Callback(CallbackEvent::TimedOut),
        },
        Effect::Notify(ev) => {
            prompts::notify(&convert::event(&ev));
            Input::Ack
        }
        Effect::Pause { ms } => Input::Paused(prompts::pause(ms).map_err(|e| match e {
            prompts::PromptError::Unavailable => String::from("cancelled"),
            prompts::PromptError::Other(m) => m,
        })),
        Effect::Respond(page) => {
            if let Some(l) = listener.as_ref() {
                l.respond(&convert::page(page));
            }
            Input::Ack
        }
    }
}
