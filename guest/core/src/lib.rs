//! # mcp-oauth-core
//!
//! The client side of the MCP authorization spec (2025-11-25 and 2026-07-28,
//! with the 2025-03-26 and 2025-06-18 behaviours as fallbacks) as a pure,
//! sans-IO state machine. No I/O, no clock, no randomness: the caller passes
//! `now` (unix ms) and [`Entropy`], performs each [`Effect`] and feeds back the
//! matching [`Input`].
//!
//! ```text
//! let mut step = session.authorize(now, Mode::Interactive, entropy);
//! loop {
//!     step = match step {
//!         Step::Effect(e) => session.handle(now, perform(e)),
//!         Step::Wait(id)  => { wait_for(id); break session.outcome(id) }
//!         Step::Done(r)   => break r,
//!     }
//! }
//! ```
//!
//! Where each rule of the spec lives:
//!
//! | rule | module |
//! |---|---|
//! | WWW-Authenticate (RFC 9110 §11.6.1, RFC 6750 §3) | [`www_authenticate`] |
//! | PRM + AS metadata discovery, legacy fallback (RFC 9728, RFC 8414) | [`discovery`] |
//! | PKCE S256 (RFC 7636) | [`pkce`] |
//! | client identity order, DCR (RFC 7591) | [`registration`] |
//! | token endpoint auth (RFC 6749 §2.3) | [`client_auth`] |
//! | client credentials, token exchange + jwt-bearer, `private_key_jwt` (RFC 8693, RFC 7523) | [`grants`] |
//! | token requests and responses, `resource` (RFC 8707) | [`tokens`] |
//! | `state` and `iss` on the redirect (RFC 6749 §10.12, RFC 9207) | [`callback`] |
//! | scope selection and step-up union | [`scope`] |
//! | decline latch | [`latch`] |
//! | URL safety (CVE-2025-6514), strict URL parsing | [`url_safety`], [`http_url`] |
//! | persisted records | [`storage`] |
//! | the flow itself, single flight, round trips | [`session`] |
//!
//! Each [`Effect`] maps to one import of the `mcp:oauth` WIT package:
//! `Http` → `http.send`, `Load`/`Save`/`Delete`/`Lock`/`Unlock` →
//! `storage.get/set/delete/lock/unlock`,
//! `Listen` → `callback.listener` constructor, `AwaitCallback` →
//! `listener.next`, `OpenBrowser` → `browser.open`, `Consent` →
//! `prompts.consent`, `Notify` → `prompts.notify`.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod callback;
pub mod client_auth;
pub mod config;
pub mod discovery;
pub mod effect;
pub mod error;
pub mod grants;
pub mod http_url;
pub mod latch;
pub mod pkce;
pub mod registration;
pub mod scope;
pub mod session;
pub mod storage;
pub mod tokens;
pub mod url_safety;
pub mod www_authenticate;

pub use config::{Config, Grant};
pub use effect::{
    CallbackEvent, ConsentReason, ConsentRequest, Effect, Event, FlowId, HttpRequest, HttpResponse, Input, Method,
    Outcome, Step, TransportError,
};
pub use error::Error;
pub use session::{Entropy, Mode, ServerResponse, Session, Status};
pub use tokens::AccessToken;
