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
//!         Step::Busy(id)  => { wait_for(id); step = start_again() }
//!         Step::Done(r)   => break r,
//!     }
//! }
//! ```
//!
//! The modules are layered; each imports only from the layers before it
//! (`tests/layers.rs` checks this, and that no two modules import each other
//! in a circle):
//!
//! 0. vocabulary: [`error`], [`effect`] (what crosses to the host), [`config`]
//! 1. [`primitives`]: URL parsing and safety, JSON, scopes, PKCE, entropy,
//!    WWW-Authenticate
//! 2. [`wire`]: messages to and from the AS, the IdP and the redirect
//! 3. [`records`]: what is persisted
//! 4. [`policy`]: decisions as pure functions
//! 5. [`session`]: the state machine that drives them
//!
//! Where each rule of the spec lives:
//!
//! | rule | file |
//! |---|---|
//! | WWW-Authenticate (RFC 9110 §11.6.1, RFC 6750 §3) | `primitives/www_authenticate.rs` |
//! | URL safety (CVE-2025-6514), strict URL parsing | `primitives/url_safety.rs`, `primitives/http_url.rs` |
//! | scope selection and union | `primitives/scope.rs` |
//! | PKCE S256 (RFC 7636) | `primitives/pkce.rs` |
//! | PRM + AS metadata documents and their URLs, legacy (RFC 9728, RFC 8414) | `wire/metadata.rs` |
//! | the authorization request: PKCE, `state`, `resource`, no `prompt` | `wire/authorization_request.rs` |
//! | `state` checked before the code, RFC 9207 `iss` | `wire/authorization_response.rs` |
//! | DCR (RFC 7591) | `wire/registration.rs` |
//! | token endpoint client authentication (RFC 6749 §2.3) | `wire/client_auth.rs` |
//! | token requests and responses, `resource` (RFC 8707) | `wire/token.rs` |
//! | client credentials, token exchange + jwt-bearer, `private_key_jwt` | `wire/grants.rs` |
//! | persisted records, keys | `records.rs` |
//! | what a 401/403 leads to | `policy/rejection.rs` |
//! | step-up union and cap | `policy/step_up.rs` |
//! | decline latch, silent-mode gate | `policy/decline_latch.rs` |
//! | stored records read once, saved before use, no credential across issuers | `session/stored.rs` |
//! | refresh under the lock, `resource` verbatim on refresh, rotation | `session/refresh.rs` |
//! | discovery order, issuer choice, S256 required | `session/discovery.rs` |
//! | client identity order, browser, redirect, code exchange | `session/interactive.rs` |
//! | the device authorization grant (RFC 8628) | `wire/device_authorization.rs`, `session/device.rs` |
//! | revocation at logout (RFC 7009) | `wire/revocation.rs`, `session/logout.rs` |
//! | the page the browser lands on | `wire/callback_page.rs` |
//! | machine grants | `session/machine.rs` |
//! | single flight, the state diagram | `session/mod.rs` |
//!
//! Each [`Effect`] maps to one import of the `mcp:oauth` WIT package:
//! `Http` → `http.send`, `Load`/`Save`/`Delete`/`Lock`/`Unlock` →
//! `storage.get/set/delete/lock/unlock`,
//! `Listen` → `callback.listener` constructor, `AwaitCallback` →
//! `listener.next`, `OpenBrowser` → `browser.open`, `Consent` →
//! `prompts.consent`, `Notify` → `prompts.notify`, `Pause` → `prompts.pause`,
//! `Respond` → `listener.respond`.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod config;
pub mod effect;
pub mod error;
pub mod policy;
pub mod primitives;
pub mod records;
pub mod report;
pub mod session;
pub mod wire;

pub use config::{Config, Grant};
pub use effect::{
    AccessToken, CallbackEvent, ConsentReason, ConsentRequest, DeviceCode, Effect, Event, FlowId, HttpRequest,
    HttpResponse, Input, LogoutReport, Method, Mode, Outcome, Page, ServerResponse, Status, Step, TransportError,
};
pub use error::Error;
pub use primitives::entropy::Entropy;
pub use session::Session;
