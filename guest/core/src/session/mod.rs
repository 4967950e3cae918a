//! The session: one per MCP server. A sans-IO state machine in the manner of
//! quinn-proto and str0m: calls start an operation, `handle` feeds each
//! effect's result back, and every answer is a [`Step`]. Time (`now`, unix ms)
//! and entropy are arguments; the session never reads a clock or the OS.
//!
//! ```text
//!  authorize / on_response / logout / inspect
//!        │
//!        ▼
//!  stored records ──(first call only)── LoadBinding → LoadMetadata → LoadRegistration → LoadTokens
//!        │
//!        ▼
//!  policy::rejection::decide ── use current token ───────────────────────────────▶ Done
//!        │            └──────── refresh: Locking → ReloadBeforeRefresh → Refreshing ─▶ save ─▶ Done
//!        │                                        (invalid_grant → ReloadAfterInvalidGrant)
//!        ▼  new grant (decline_latch gate: never silent, never while declined)
//!  discovery: FetchPrm* → LoadCachedMetadata → FetchMetadata*   (or FetchLegacyMetadata)
//!        │
//!        ├── machine grant: [ExchangingIdentity] → [Signing] → MachineToken ─▶ save ─▶ Done
//!        ▼
//!  interactive: Listening → Consenting → [LoadRegistrationForFlow] → [Registering]
//!               → OpeningBrowser → AwaitingCallback* → ExchangingCode ─▶ save ─▶ Done
//! ```
//!
//! One file per stage: [`stored`] (records), [`refresh`], [`discovery`],
//! [`interactive`], [`machine`], [`dpop`]. What a stage established travels
//! to the next in its phase (a binding read, an `Authority` discovered, a
//! `Refresh` under way). Each stage's handlers return a [`Next`];
//! [`Session::advance`] is the one place where the phase changes and the
//! record lock is released. A call made while a flow runs gets `Wait` (its
//! outcome is yours) or `Busy` (call again after it).

mod device;
mod discovery;
mod dpop;
mod inputs;
mod interactive;
mod logout;
mod machine;
mod refresh;
mod state;
mod stored;

use alloc::string::String;
use alloc::vec::Vec;

use crate::config::Config;
use crate::effect::{Effect, FlowId, Input, Mode, Outcome, Page, ServerResponse, Step};
use crate::error::Error;
use crate::policy::decline_latch::Latch;
use crate::policy::rejection::{self, Decision, Facts, Trigger};
use crate::primitives::entropy::Entropy;
use crate::primitives::http_url::HttpUrl;
use crate::primitives::url_safety::check_url;
use crate::primitives::www_authenticate::BearerChallenge;
use crate::records::Binding;
use crate::wire::callback_page::{self, PageOutcome};
use crate::wire::metadata::AsMetadata;
use crate::wire::registration::Registration;
use crate::wire::token::TokenSet;
use state::{Flow, MachineGrant, Next, Op, Phase, Then, Wanted};

/// The engine for one MCP server.
pub struct Session {
    config: Config,
    server_url: String,
    server: HttpUrl,
    /// The stored records were read once (they are kept in memory after).
    loaded: bool,
    binding: Option<Binding>,
    metadata: Option<AsMetadata>,
    registration: Option<Registration>,
    /// The issuer whose registration record was read (it may be absent).
    registration_loaded_for: Option<String>,
    tokens: Option<TokenSet>,
    latch: Latch,
    step_ups: u8,
    refreshed_after_401: bool,
    /// The access token the AS issued in the current operation (cleared by
    /// `authorize`): the MCP server refusing it is not something another
    /// refresh or sign-in can fix.
    just_issued: Option<String>,
    /// A token the server refused that way: refused again, at once.
    refused: Option<String>,
    /// The MCP server asked for DPoP (a `DPoP` challenge): bind new grants.
    dpop_wanted: bool,
    /// The latest `DPoP-Nonce` per origin (RFC 9449 §8, §9).
    dpop_nonces: Vec<(String, String)>,
    /// A resource server nonce challenge was answered since the last success.
    rs_nonce_retried: bool,
    next_flow: u64,
    flow: Option<Flow>,
    last: Option<(FlowId, Result<Outcome, Error>)>,
}

impl core::fmt::Debug for Session {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("server_url", &self.server_url)
            .field("issuer", &self.binding.as_ref().map(|b| &b.issuer))
            .field("has_token", &self.tokens.is_some())
            .field("declined", &self.latch.is_declined())
            .field("phase", &self.flow.as_ref().map(|f| f.phase.expects()))
            .finish()
    }
}

impl Session {
    /// A session for the MCP server at `server_url` (kept verbatim).
    pub fn new(server_url: &str, config: Config) -> Result<Self, Error> {
        config.validate()?;
        let server = check_url(server_url, "server")?;
        Ok(Self {
            config,
            server_url: String::from(server_url),
            server,
            loaded: false,
            binding: None,
            metadata: None,
            registration: None,
            registration_loaded_for: None,
            tokens: None,
            latch: Latch::default(),
            step_ups: 0,
            refreshed_after_401: false,
            just_issued: None,
            refused: None,
            dpop_wanted: false,
            dpop_nonces: Vec::new(),
            rs_nonce_retried: false,
            next_flow: 1,
            flow: None,
            last: None,
        })
    }

    // ---- the public API ----------------------------------------------------

    /// Get a token: a stored fresh one at once, else refresh, else (in
    /// interactive mode) a full authorization.
    pub fn authorize(&mut self, now: u64, mode: Mode, entropy: Entropy) -> Step {
        // A new operation: what an earlier one was issued is no longer "just".
        self.just_issued = None;
        let trigger = Trigger::Ask;
        self.begin(now, Op::Authorize { mode, trigger }, entropy)
    }

    /// Tell the engine how the MCP server answered. A 401 leads to a refresh
    /// or a new authorization; a 403 `insufficient_scope` to a step-up; other
    /// statuses finish at once with [`Outcome::Unchanged`].
    /// A nonce is kept and a success answered even while a flow runs.
    pub fn on_response(&mut self, now: u64, response: &ServerResponse, mode: Mode, entropy: Entropy) -> Step {
        if let Some(step) = self.dpop_response(response) {
            return step;
        }
        let challenge = BearerChallenge::from_headers(&response.www_authenticate);
        let rejected = response.sent_token.clone();
        let trigger = match response.status {
            401 => Trigger::Unauthorized { challenge, rejected },
            403 if challenge.error.as_deref() == Some("insufficient_scope") => {
                Trigger::InsufficientScope { challenge, rejected }
            }
            403 => {
                return Step::Done(Err(Error::Forbidden {
                    error: challenge.error,
                    description: challenge.error_description,
                }));
            }
            s => {
                if (200..300).contains(&s) {
                    // A success re-arms the once-per-rejection refresh.
                    self.refreshed_after_401 = false;
                    self.rs_nonce_retried = false;
                    if response.sent_token.is_some() {
                        self.just_issued = None;
                    }
                }
                return Step::Done(Ok(Outcome::Unchanged));
            }
        };
        self.begin(now, Op::Authorize { mode, trigger }, entropy)
    }

    /// The `DPoP` header for a request to the MCP server (`method`, full
    /// `url`) with the current token: [`Outcome::Proof`], `None` when the
    /// token is not DPoP-bound (at once, even while a flow runs). Each
    /// proof is single-use: one per request.
    pub fn dpop_proof(&mut self, now: u64, method: &str, url: &str, entropy: Entropy) -> Step {
        let unbound = |t: &TokenSet| t.dpop_key.as_deref().is_none_or(str::is_empty);
        if self.loaded && self.tokens.as_ref().is_none_or(unbound) {
            return Step::Done(Ok(Outcome::Proof(None)));
        }
        let op = Op::Proof {
            method: String::from(method),
            url: String::from(url),
        };
        self.begin(now, op, entropy)
    }

    /// Remove the stored tokens for this server; with `revoke`, revoke
    /// them at the AS first (RFC 7009) when it offers that.
    /// [`Outcome::LoggedOut`] reports what the AS did.
    pub fn logout(&mut self, now: u64, revoke: bool) -> Step {
        self.begin(now, Op::Logout { revoke }, Entropy([0; 64]))
    }

    /// Load what is stored and report it as [`Outcome::Status`].
    pub fn inspect(&mut self, now: u64) -> Step {
        self.begin(now, Op::Inspect, Entropy([0; 64]))
    }

    /// Clear the decline latch (and the step-up count): the next authorize may
    /// prompt again.
    pub fn retry(&mut self) {
        self.latch.retry();
        self.step_ups = 0;
    }

    /// True while the decline latch is set.
    pub fn is_declined(&self) -> bool {
        self.latch.is_declined()
    }

    /// The outcome of a finished flow, for callers that got [`Step::Wait`]
    /// (a [`Step::Busy`] caller calls again instead).
    /// `None` while it runs, or when a newer flow has finished since (call
    /// `authorize` again then).
    pub fn outcome(&self, id: FlowId) -> Option<Result<Outcome, Error>> {
        self.last.as_ref().filter(|(i, _)| *i == id).map(|(_, r)| r.clone())
    }

    /// Feed the result of the last effect.
    pub fn handle(&mut self, now: u64, input: Input) -> Step {
        let Some(mut f) = self.flow.take() else {
            return Step::Done(Err(Error::UnexpectedInput {
                expected: "nothing (no flow is running)",
            }));
        };
        let phase = core::mem::replace(&mut f.phase, Phase::Idle);
        let next = self.on_input(&mut f, now, phase, input);
        let step = self.advance(&mut f, now, next);
        self.settle(f, step)
    }

    // ---- the one place the phase changes ----------------------------------

    fn begin(&mut self, now: u64, op: Op, entropy: Entropy) -> Step {
        if let Some(f) = &self.flow {
            return match f.op.joinable_by(&op) {
                true => Step::Wait(f.id),
                false => Step::Busy(f.id),
            };
        }
        let id = FlowId(self.next_flow);
        self.next_flow += 1;
        let mut f = Flow {
            id,
            op,
            entropy,
            phase: Phase::Idle,
            outbox: Default::default(),
            held_lock: None,
            wanted: Wanted::default(),
            attempt: 0,
            dpop_key: None,
            dpop_proofs: 0,
            browser_waiting: false,
        };
        // A caller asking for a token while none is in memory gets the store
        // read again first: a sign-in made meanwhile by another process
        // (`mcp-oauth login`, a replica) is found, not answered
        // "authorization required" for the rest of the session. A declined
        // session answers Declined whatever is stored.
        let ask_again = self.tokens.is_none()
            && !self.latch.is_declined()
            && matches!(
                f.op,
                Op::Authorize {
                    trigger: Trigger::Ask,
                    ..
                }
            );
        let next = if self.loaded && !ask_again {
            self.dispatch(&mut f, now)
        } else {
            stored::load_binding(&self.server_url)
        };
        let step = self.advance(&mut f, now, next);
        self.settle(f, step)
    }

    /// Carries out a handler's [`Next`]: sets the phase and says what the
    /// host must do. Queued effects go out first. The one place the record
    /// lock is released: before a new grant or the end, whatever path got
    /// there.
    fn advance(&mut self, f: &mut Flow, now: u64, mut next: Next) -> Step {
        // Each round either returns or drains a queue it just filled; the
        // queue is refilled only by handlers that end in an effect, so a
        // small bound is generous.
        for _ in 0..64 {
            next = match next {
                Next::Effect(phase, effect) => {
                    f.phase = phase;
                    return Step::Effect(effect);
                }
                // The browser tab that brought the redirect learns the outcome.
                Next::Done(r) if f.browser_waiting => {
                    f.browser_waiting = false;
                    let page = self.page_for(&r);
                    Next::Queue(alloc::vec![Effect::Respond(page)], Then::Finish(r))
                }
                Next::Done(r) if f.held_lock.is_some() => Next::Queue(Vec::new(), Then::Finish(r)),
                Next::Done(r) => return Step::Done(r),
                Next::Queue(effects, then) => {
                    f.outbox.extend(effects);
                    if then.releases_lock()
                        && let Some(key) = f.held_lock.take()
                    {
                        f.outbox.push_back(Effect::Unlock { key });
                    }
                    match f.outbox.pop_front() {
                        Some(effect) => {
                            f.phase = Phase::Draining(then);
                            return Step::Effect(effect);
                        }
                        None => self.resume(f, now, then),
                    }
                }
            };
        }
        Step::Done(Err(Error::Internal {
            what: "a flow that does not end",
        }))
    }

    fn settle(&mut self, f: Flow, step: Step) -> Step {
        if let Step::Done(r) = &step {
            self.last = Some((f.id, r.clone()));
            self.flow = None;
        } else {
            self.flow = Some(f);
        }
        step
    }

    /// What runs once queued effects are out.
    fn resume(&mut self, f: &mut Flow, now: u64, then: Then) -> Next {
        match then {
            Then::Listen(authority) => self.start_user_grant(f, authority),
            Then::MachineGrant(authority) => self.machine_grant(f, now, MachineGrant::new(authority)),
            Then::ChooseClient(auth) => self.choose_client(f, auth),
            Then::AwaitCallback(pending) => interactive::await_callback(now, pending),
            Then::Poll(grant) => device::wait_to_poll(now, grant),
            Then::Reauthorize => self.reauthorize(f, now),
            Then::Finish(r) => Next::Done(r),
        }
    }

    // ---- dispatch, in flow order -------------------------------------------

    /// With the stored records in memory: what the operation leads to.
    fn dispatch(&mut self, f: &mut Flow, now: u64) -> Next {
        let trigger = match &f.op {
            Op::Inspect => return Next::Done(Ok(Outcome::Status(self.status()))),
            Op::Logout { revoke } => return self.start_logout(*revoke),
            Op::Proof { method, url } => {
                let (method, url) = (method.clone(), url.clone());
                return self.prove_resource(f, now, &method, &url);
            }
            Op::Authorize { trigger, .. } => trigger.clone(),
        };
        // A Bearer token refused with a DPoP challenge is fixed by binding.
        let unbound = self.dpop_wanted && self.tokens.as_ref().is_some_and(|t| t.dpop_key.is_none());
        let facts = Facts {
            now,
            skew_ms: self.config.expiry_skew_ms,
            rejected_just_issued: !unbound
                && rejection::refuses_fresh(self.just_issued.as_deref(), self.refused.as_deref(), &trigger),
            resource: self.binding.as_ref().map(|b| b.prm.resource.as_str()),
            tokens: self.tokens.as_ref(),
            metadata_known: self.metadata.is_some(),
            machine_grant: self.config.grant.is_machine(),
            refreshed_since_success: self.refreshed_after_401,
            bound_prm_url: self.binding.as_ref().map(|b| b.resource_metadata_url.as_deref()),
            step_ups: self.step_ups,
            max_step_ups: self.config.max_step_ups,
            latch: &self.latch,
            mode: f.mode(),
        };
        let (decision, expire_current) = rejection::decide(&trigger, &facts);
        if let Trigger::Unauthorized { challenge, .. } = &trigger {
            f.wanted.challenge_prm = challenge.resource_metadata.clone();
        }
        if expire_current && let Some(t) = self.tokens.as_mut() {
            // The server says this token is no good, whatever its expiry.
            t.expires_at = Some(0);
        }
        match decision {
            Decision::UseCurrent => self.finish_with_token(),
            Decision::Refresh => {
                if matches!(trigger, Trigger::Unauthorized { .. }) {
                    self.refreshed_after_401 = true;
                }
                match &self.binding {
                    Some(b) => refresh::start(b.tokens_key()),
                    None => Next::fail(Error::Internal {
                        what: "a refresh with no binding read",
                    }),
                }
            }
            Decision::Fail(e) => {
                if matches!(e, Error::TokenRefused { .. }) {
                    self.refused = trigger.rejected().map(String::from);
                }
                Next::fail(e)
            }
            Decision::Authorize(grant) => {
                if grant.rediscover {
                    self.forget_binding();
                }
                if grant.step_up {
                    self.step_ups += 1;
                }
                f.wanted.reason = grant.reason;
                f.wanted.scopes = grant.scopes;
                f.wanted.challenge_scope = grant.challenge_scope;
                self.new_grant(f, now)
            }
        }
    }

    /// The page for the browser tab that brought the redirect.
    fn page_for(&self, r: &Result<Outcome, Error>) -> Page {
        let server = self.server_url.as_str();
        callback_page::render(match r {
            Ok(_) => PageOutcome::SignedIn { server },
            Err(Error::Declined) => PageOutcome::Declined { server },
            Err(e) => {
                let reason = alloc::format!("{e}");
                return callback_page::render(PageOutcome::Failed {
                    server,
                    reason: &reason,
                });
            }
        })
    }

    /// Hands out the current token (the decision found one).
    fn finish_with_token(&self) -> Next {
        match &self.tokens {
            Some(t) => Next::Done(Ok(Outcome::Token(t.access(self.config.expiry_skew_ms)))),
            None => Next::fail(Error::Internal {
                what: "a token handed out with none in memory",
            }),
        }
    }
}
