//! The session: one per MCP server. A sans-IO state machine in the manner of
//! quinn-proto and str0m: calls start an operation, `handle` feeds each
//! effect's result back, and every answer is a [`Step`]. Time (`now`, unix ms)
//! and entropy are arguments; the session never reads a clock or the OS.
//!
//! Phases of a flow, in order (each is a [`Phase`] variant):
//! load stored records → (fresh token: done) → refresh → discovery (PRM, AS
//! metadata, or the legacy path) → listen → consent → client identity →
//! browser → callback → code exchange → save.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::callback::{self, Verdict};
use crate::client_auth::{AuthMethod, ClientCredentials, ClientSource};
use crate::config::{Config, Grant};
use crate::discovery::{self, AsMetadata, AsRejection, PrmRejection, ResourceMetadata};
use crate::effect::{
    CallbackEvent, ConsentReason, ConsentRequest, Effect, Event, FlowId, HttpRequest, HttpResponse, Input, Outcome,
    Step,
};
use crate::error::Error;
use crate::grants;
use crate::http_url::HttpUrl;
use crate::latch::Latch;
use crate::pkce::Pkce;
use crate::registration::{self, Registration};
use crate::scope;
use crate::storage::{self, Binding, TokenRecord};
use crate::tokens::{self, CodeExchange, TokenSet};
use crate::url_safety::{check_redirect_uri, check_url};
use crate::www_authenticate::BearerChallenge;

/// Random bytes from the caller, for the PKCE verifier and `state`.
#[derive(Clone, PartialEq, Eq)]
pub struct Entropy(pub [u8; 64]);

impl core::fmt::Debug for Entropy {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Entropy(<redacted>)")
    }
}

impl Entropy {
    /// Takes the first 64 bytes of `bytes`; fewer is a configuration error.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let arr: [u8; 64] = bytes
            .get(..64)
            .and_then(|b| b.try_into().ok())
            .ok_or(Error::InvalidConfig {
                reason: String::from("entropy must be at least 64 random bytes"),
            })?;
        Ok(Self(arr))
    }

    /// 32 bytes for `purpose`, distinct per purpose and attempt.
    fn derive(&self, purpose: &str, attempt: u8) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.0);
        h.update(purpose.as_bytes());
        h.update([attempt]);
        h.finalize().into()
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
}

impl core::fmt::Debug for ServerResponse {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ServerResponse")
            .field("status", &self.status)
            .field("www_authenticate", &self.www_authenticate)
            .field("sent_token", &self.sent_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// What is known about the server's authorization (no secrets).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    /// The server URL.
    pub server_url: String,
    /// The resource tokens are requested for.
    pub resource: Option<String>,
    /// The authorization server in use.
    pub issuer: Option<String>,
    /// The client id in use for that issuer.
    pub client_id: Option<String>,
    /// The scopes of the stored token.
    pub scopes: Vec<String>,
    /// When the stored access token expires (unix ms).
    pub expires_at: Option<u64>,
    /// A token is stored.
    pub has_token: bool,
    /// A refresh token is stored.
    pub can_refresh: bool,
    /// The decline latch is set.
    pub declined: bool,
    /// The server is a 2025-03-26 server without PRM.
    pub legacy: bool,
}

#[derive(Debug, Clone)]
enum Trigger {
    /// A caller wants a token.
    Plain,
    /// The server answered 401.
    Unauthorized {
        challenge: BearerChallenge,
        rejected: Option<String>,
    },
    /// The server answered 403 insufficient_scope.
    StepUp {
        challenge: BearerChallenge,
        rejected: Option<String>,
    },
}

#[derive(Debug, Clone)]
enum Op {
    Authorize { mode: Mode, trigger: Trigger },
    Logout,
    Inspect,
}

/// Where a flow stands: which input it waits for.
#[derive(Debug, Clone)]
enum Phase {
    LoadBinding,
    LoadMetadata,
    LoadRegistration,
    LoadTokens,
    Locking,
    ReloadBeforeRefresh,
    Refreshing,
    ReloadAfterInvalidGrant,
    FetchPrm,
    LoadCachedMetadata,
    FetchMetadata,
    FetchLegacyMetadata,
    Listening,
    Consenting,
    LoadRegistrationForFlow,
    Registering,
    OpeningBrowser,
    AwaitingCallback,
    ExchangingCode,
    ExchangingIdentity,
    Signing,
    MachineToken,
    /// Saves, deletes and notices go out one by one, then `Then` runs.
    Draining(Then),
}

/// What to do once queued effects are out.
#[derive(Debug, Clone)]
enum Then {
    Listen,
    MachineGrant,
    ChooseClient,
    AwaitCallback,
    /// The stored grant is dead: authorize anew (or say it is required).
    Reauthorize,
    Finish(Result<Outcome, Error>),
}

struct Flow {
    id: FlowId,
    op: Op,
    entropy: Entropy,
    phase: Phase,
    outbox: VecDeque<Effect>,
    // discovery
    candidates: Vec<String>,
    next: usize,
    tried: Vec<String>,
    issuer_mismatch: Option<String>,
    /// The `resource_metadata` of the challenge that started the flow.
    challenge_prm: Option<String>,
    /// The `scope` of that challenge.
    challenge_scope: Option<String>,
    // authorization
    reason: ConsentReason,
    scopes: Option<Vec<String>>,
    redirect_uri: Option<String>,
    client: Option<ClientCredentials>,
    pkce: Option<Pkce>,
    state: Option<String>,
    auth_url: String,
    deadline: u64,
    attempt: u8,
    reregistered: bool,
    // refresh
    used_refresh: Option<String>,
    refresh_retried: bool,
    /// The record lock this flow holds (released before it ends).
    held_lock: Option<String>,
    // machine grants
    id_jag: Option<String>,
    client_assertion: Option<String>,
    signing_input: Vec<u8>,
}

/// The engine for one MCP server.
pub struct Session {
    config: Config,
    server_url: String,
    server: HttpUrl,
    loaded: bool,
    binding: Option<Binding>,
    metadata: Option<AsMetadata>,
    registration: Option<Registration>,
    registration_loaded_for: Option<String>,
    tokens: Option<TokenSet>,
    latch: Latch,
    step_ups: u8,
    refreshed_after_401: bool,
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
            .field("phase", &self.flow.as_ref().map(|f| &f.phase))
            .finish()
    }
}

fn http_ok(r: &HttpResponse) -> bool {
    (200..300).contains(&r.status)
}

fn transport(url: &str, message: &str) -> Error {
    Error::Transport {
        url: String::from(url),
        message: String::from(message),
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
            next_flow: 1,
            flow: None,
            last: None,
        })
    }

    // ---- operations -------------------------------------------------------

    /// Get a token: a stored fresh one at once, else refresh, else (in
    /// interactive mode) a full authorization.
    pub fn authorize(&mut self, now: u64, mode: Mode, entropy: Entropy) -> Step {
        self.begin(
            now,
            Op::Authorize {
                mode,
                trigger: Trigger::Plain,
            },
            entropy,
        )
    }

    /// Tell the engine how the MCP server answered. A 401 leads to a refresh
    /// or a new authorization; a 403 `insufficient_scope` to a step-up; other
    /// statuses finish at once with [`Outcome::Unchanged`].
    pub fn on_response(&mut self, now: u64, response: &ServerResponse, mode: Mode, entropy: Entropy) -> Step {
        if let Some(f) = &self.flow {
            return Step::Wait(f.id);
        }
        let challenge = BearerChallenge::from_headers(&response.www_authenticate);
        let rejected = response.sent_token.clone();
        let trigger = match response.status {
            401 => Trigger::Unauthorized { challenge, rejected },
            403 if challenge.error.as_deref() == Some("insufficient_scope") => Trigger::StepUp { challenge, rejected },
            403 => {
                return Step::Done(Err(Error::Forbidden {
                    error: challenge.error,
                    description: challenge.error_description,
                }));
            }
            s => {
                if (200..300).contains(&s) {
                    self.refreshed_after_401 = false;
                }
                return Step::Done(Ok(Outcome::Unchanged));
            }
        };
        self.begin(now, Op::Authorize { mode, trigger }, entropy)
    }

    /// Remove the stored tokens for this server.
    pub fn logout(&mut self, now: u64) -> Step {
        self.begin(now, Op::Logout, Entropy([0; 64]))
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

    /// The outcome of a finished flow, for callers that got [`Step::Wait`].
    /// `None` while it runs, or when a newer flow has finished since (call
    /// `authorize` again then).
    pub fn outcome(&self, id: FlowId) -> Option<Result<Outcome, Error>> {
        self.last.as_ref().filter(|(i, _)| *i == id).map(|(_, r)| r.clone())
    }

    /// What is known in memory now (see [`Session::inspect`] to load first).
    pub fn status(&self) -> Status {
        let client_id = self.tokens.as_ref().map(|t| t.client_id.clone()).or_else(|| {
            self.config
                .client_id
                .clone()
                .or_else(|| self.registration.as_ref().map(|r| r.client_id.clone()))
        });
        Status {
            server_url: self.server_url.clone(),
            resource: self.binding.as_ref().map(|b| b.prm.resource.clone()),
            issuer: self.binding.as_ref().map(|b| b.issuer.clone()),
            client_id,
            scopes: self.tokens.as_ref().map(TokenSet::scopes).unwrap_or_default(),
            expires_at: self.tokens.as_ref().and_then(|t| t.expires_at),
            has_token: self.tokens.is_some(),
            can_refresh: self.tokens.as_ref().is_some_and(|t| t.refresh_token.is_some()),
            declined: self.latch.is_declined(),
            legacy: self.binding.as_ref().is_some_and(|b| b.legacy),
        }
    }

    /// Feed the result of the last effect.
    pub fn handle(&mut self, now: u64, input: Input) -> Step {
        let Some(mut f) = self.flow.take() else {
            return Step::Done(Err(Error::UnexpectedInput {
                expected: "nothing (no flow is running)",
            }));
        };
        let step = self.on_input(&mut f, now, input);
        self.settle(f, step)
    }

    // ---- flow plumbing ----------------------------------------------------

    fn begin(&mut self, now: u64, op: Op, entropy: Entropy) -> Step {
        if let Some(f) = &self.flow {
            return Step::Wait(f.id);
        }
        let id = FlowId(self.next_flow);
        self.next_flow += 1;
        let mut f = Flow {
            id,
            op,
            entropy,
            phase: Phase::LoadBinding,
            outbox: VecDeque::new(),
            candidates: Vec::new(),
            next: 0,
            tried: Vec::new(),
            issuer_mismatch: None,
            challenge_prm: None,
            challenge_scope: None,
            reason: ConsentReason::FirstLogin,
            scopes: None,
            redirect_uri: None,
            client: None,
            pkce: None,
            state: None,
            auth_url: String::new(),
            deadline: 0,
            attempt: 0,
            reregistered: false,
            used_refresh: None,
            refresh_retried: false,
            held_lock: None,
            id_jag: None,
            client_assertion: None,
            signing_input: Vec::new(),
        };
        let step = if self.loaded {
            self.dispatch(&mut f, now)
        } else {
            emit(&mut f, Phase::LoadBinding, load(storage::binding_key(&self.server_url)))
        };
        self.settle(f, step)
    }

    fn settle(&mut self, mut f: Flow, step: Step) -> Step {
        // Every ending releases a held lock first, whatever path got here.
        let step = match step {
            Step::Done(r) if f.held_lock.is_some() => {
                let key = f.held_lock.take().unwrap_or_default();
                f.phase = Phase::Draining(Then::Finish(r));
                Step::Effect(Effect::Unlock { key })
            }
            other => other,
        };
        if let Step::Done(r) = &step {
            self.last = Some((f.id, r.clone()));
            self.flow = None;
        } else {
            self.flow = Some(f);
        }
        step
    }

    /// Queue fire-and-forget effects (save, delete, notify), then go on.
    fn queue(&mut self, f: &mut Flow, now: u64, effects: Vec<Effect>, then: Then) -> Step {
        f.outbox.extend(effects);
        f.phase = Phase::Draining(then);
        self.drain(f, now)
    }

    fn drain(&mut self, f: &mut Flow, now: u64) -> Step {
        if let Some(e) = f.outbox.pop_front() {
            return Step::Effect(e);
        }
        let Phase::Draining(then) = core::mem::replace(&mut f.phase, Phase::LoadBinding) else {
            return Step::Done(Err(Error::UnexpectedInput {
                expected: "a queued effect",
            }));
        };
        match then {
            Then::Listen => emit(
                f,
                Phase::Listening,
                Effect::Listen {
                    port: self.config.callback_port,
                },
            ),
            Then::MachineGrant => self.machine_grant(f, now),
            Then::ChooseClient => self.choose_client(f),
            Then::AwaitCallback => self.await_callback(f, now),
            Then::Reauthorize => self.reauthorize(f, now),
            Then::Finish(r) => Step::Done(r),
        }
    }

    fn on_input(&mut self, f: &mut Flow, now: u64, input: Input) -> Step {
        let phase = f.phase.clone();
        match (phase, input) {
            (Phase::Draining(_), Input::Stored(r)) => {
                if let Err(message) = r {
                    f.outbox.push_front(Effect::Notify(Event::StorageWarning {
                        record: String::from("record"),
                        message,
                    }));
                }
                self.drain(f, now)
            }
            (Phase::Draining(_), Input::Ack) => self.drain(f, now),

            // -- stored records -------------------------------------------
            (Phase::LoadBinding, Input::Loaded(b)) => match storage::decode_binding(b.as_deref(), &self.server_url) {
                Some(binding) => {
                    let key = storage::metadata_key(&binding.issuer);
                    self.binding = Some(binding);
                    emit(f, Phase::LoadMetadata, load(key))
                }
                None => {
                    self.loaded = true;
                    self.dispatch(f, now)
                }
            },
            (Phase::LoadMetadata, Input::Loaded(b)) => {
                let Some(binding) = &self.binding else {
                    return unexpected("a binding");
                };
                self.metadata = self.stored_metadata(b.as_deref(), &binding.issuer.clone());
                let key = storage::registration_key(&binding.issuer);
                emit(f, Phase::LoadRegistration, load(key))
            }
            (Phase::LoadRegistration, Input::Loaded(b)) => {
                let Some(binding) = &self.binding else {
                    return unexpected("a binding");
                };
                self.registration = storage::decode_registration(b.as_deref(), &binding.issuer);
                self.registration_loaded_for = Some(binding.issuer.clone());
                let key = storage::tokens_key(&binding.prm.resource, &binding.issuer);
                emit(f, Phase::LoadTokens, load(key))
            }
            (Phase::LoadTokens, Input::Loaded(b)) => {
                if let Some(binding) = &self.binding {
                    self.tokens = storage::decode_tokens(b.as_deref(), &binding.prm.resource, &binding.issuer);
                }
                self.loaded = true;
                self.dispatch(f, now)
            }

            // -- refresh --------------------------------------------------
            (Phase::Locking, Input::Locked(r)) => {
                // Without the lock (the host could not take it) go on: the
                // re-read below still narrows the race, and the host has
                // already reported its own failure.
                let key = self.tokens_key();
                if r.is_ok() {
                    f.held_lock = Some(key.clone());
                }
                emit(f, Phase::ReloadBeforeRefresh, load(key))
            }
            (Phase::ReloadBeforeRefresh, Input::Loaded(b)) => {
                if let Some(stored) = self.decode_stored_tokens(b.as_deref()) {
                    let current = self.tokens.as_ref().map(|t| t.access_token.as_str());
                    if current != Some(stored.access_token.as_str()) {
                        // Another process refreshed meanwhile: its token (and
                        // its rotated refresh token) supersede ours.
                        let rejected = rejected_token(&f.op);
                        let usable = stored.is_fresh(now, self.config.expiry_skew_ms)
                            && rejected != Some(stored.access_token.as_str());
                        self.tokens = Some(stored);
                        if usable {
                            return self.finish_with_token();
                        }
                    }
                }
                self.send_refresh(f, now)
            }
            (Phase::Refreshing, Input::Http(r)) => {
                let resp = match r {
                    Ok(resp) => resp,
                    Err(e) => return Step::Done(Err(self.token_transport(&e.message))),
                };
                let (client_id, scope, previous) = match &self.tokens {
                    Some(t) => (t.client_id.clone(), t.scope.clone(), f.used_refresh.clone()),
                    None => return unexpected("a token to refresh"),
                };
                match tokens::parse_token_response(&resp, now, &client_id, scope.as_deref(), previous.as_deref()) {
                    Ok(ts) => self.store_tokens(f, now, ts),
                    Err(Error::TokenRequestFailed { error: Some(e), .. }) if e == "invalid_grant" => {
                        let key = self.tokens_key();
                        emit(f, Phase::ReloadAfterInvalidGrant, load(key))
                    }
                    Err(Error::TokenRequestFailed { error: Some(e), .. }) if e == "invalid_client" => {
                        // The registration is gone at the AS: drop it and the
                        // grant made with it, then register and authorize anew.
                        self.tokens = None;
                        let effects = self.forget_registration();
                        self.queue(f, now, effects, Then::Reauthorize)
                    }
                    // Any other OAuth refusal (4xx with an error code): the
                    // grant is unusable. A 5xx or a bare error is transient:
                    // keep the grant and report.
                    Err(Error::TokenRequestFailed {
                        status, error: Some(_), ..
                    }) if (400..500).contains(&status) => {
                        self.tokens = None;
                        self.reauthorize(f, now)
                    }
                    Err(e) => Step::Done(Err(e)),
                }
            }
            (Phase::ReloadAfterInvalidGrant, Input::Loaded(b)) => {
                // RFC 6749 §10.4 rotation: another process may hold the newer
                // refresh token. Use it once; else the grant is dead.
                if let Some(stored) = self.decode_stored_tokens(b.as_deref())
                    && stored.refresh_token.is_some()
                    && stored.refresh_token != f.used_refresh
                    && !f.refresh_retried
                {
                    f.refresh_retried = true;
                    let fresh = stored.is_fresh(now, self.config.expiry_skew_ms)
                        && rejected_token(&f.op) != Some(stored.access_token.as_str());
                    self.tokens = Some(stored);
                    if fresh {
                        return self.finish_with_token();
                    }
                    return self.send_refresh(f, now);
                }
                self.tokens = None;
                self.reauthorize(f, now)
            }

            // -- discovery ------------------------------------------------
            (Phase::FetchPrm, Input::Http(r)) => {
                let url = f.candidates.get(f.next.wrapping_sub(1)).cloned().unwrap_or_default();
                let resp = match r {
                    Ok(resp) => resp,
                    Err(e) => return Step::Done(Err(transport(&url, &e.message))),
                };
                if !http_ok(&resp) {
                    f.tried.push(format!("{url} (HTTP {})", resp.status));
                    return self.fetch_next_prm(f);
                }
                match discovery::parse_prm(&resp.body, &self.server_url, &self.server) {
                    Ok(prm) => self.on_prm(f, prm, Some(url)),
                    Err(PrmRejection::Invalid(why)) => {
                        f.tried.push(format!("{url} ({why})"));
                        self.fetch_next_prm(f)
                    }
                    Err(PrmRejection::Fatal(e)) => Step::Done(Err(e)),
                }
            }
            (Phase::LoadCachedMetadata, Input::Loaded(b)) => {
                let Some(issuer) = self.binding.as_ref().map(|b| b.issuer.clone()) else {
                    return unexpected("a binding");
                };
                match self.stored_metadata(b.as_deref(), &issuer) {
                    Some(md) => self.accept_metadata(f, now, md, Vec::new()),
                    None => self.discover_metadata(f, &issuer),
                }
            }
            (Phase::FetchMetadata, Input::Http(r)) => {
                let url = f.candidates.get(f.next.wrapping_sub(1)).cloned().unwrap_or_default();
                let resp = match r {
                    Ok(resp) => resp,
                    Err(e) => return Step::Done(Err(transport(&url, &e.message))),
                };
                if !http_ok(&resp) {
                    f.tried.push(format!("{url} (HTTP {})", resp.status));
                    return self.fetch_next_metadata(f);
                }
                let issuer = self.binding.as_ref().map(|b| b.issuer.clone()).unwrap_or_default();
                match discovery::parse_as_metadata(&resp.body, &issuer) {
                    Ok(md) => self.accept_metadata(f, now, md, Vec::new()),
                    Err(AsRejection::Invalid(why)) => {
                        f.tried.push(format!("{url} ({why})"));
                        self.fetch_next_metadata(f)
                    }
                    Err(AsRejection::IssuerMismatch(found)) => {
                        f.tried.push(format!("{url} (issuer \"{found}\")"));
                        f.issuer_mismatch = Some(found);
                        self.fetch_next_metadata(f)
                    }
                    Err(AsRejection::Fatal(e)) => Step::Done(Err(e)),
                }
            }
            (Phase::FetchLegacyMetadata, Input::Http(r)) => {
                let url = discovery::legacy_metadata_url(&self.server);
                let resp = match r {
                    Ok(resp) => resp,
                    Err(e) => return Step::Done(Err(transport(&url, &e.message))),
                };
                let base = discovery::legacy_base(&self.server);
                let md = if http_ok(&resp) {
                    match discovery::parse_legacy_metadata(&resp.body, &base) {
                        Ok(md) => md,
                        Err(AsRejection::Fatal(e)) => return Step::Done(Err(e)),
                        Err(_) => discovery::legacy_default_metadata(&self.server),
                    }
                } else {
                    discovery::legacy_default_metadata(&self.server)
                };
                let mut notices = Vec::new();
                if md.issuer != base {
                    notices.push(Effect::Notify(Event::LegacyIssuerDiffers {
                        origin: base,
                        issuer: md.issuer.clone(),
                    }));
                }
                self.set_binding(Binding {
                    server_url: self.server_url.clone(),
                    prm: ResourceMetadata {
                        resource: self.server_url.clone(),
                        authorization_servers: alloc::vec![md.issuer.clone()],
                        scopes_supported: None,
                    },
                    resource_metadata_url: None,
                    issuer: md.issuer.clone(),
                    legacy: true,
                });
                self.accept_metadata(f, now, md, notices)
            }

            // -- authorization --------------------------------------------
            (Phase::Listening, Input::Listening(r)) => match r {
                Ok(uri) => match check_redirect_uri(&uri) {
                    Ok(_) => {
                        f.redirect_uri = Some(uri);
                        self.ask_consent(f)
                    }
                    Err(e) => Step::Done(Err(e)),
                },
                Err(message) => Step::Done(Err(Error::CallbackListener { message })),
            },
            (Phase::Consenting, Input::Consent(yes)) => {
                if yes {
                    self.choose_client(f)
                } else {
                    self.latch.decline();
                    Step::Done(Err(Error::Declined))
                }
            }
            (Phase::LoadRegistrationForFlow, Input::Loaded(b)) => {
                let issuer = self.binding.as_ref().map(|b| b.issuer.clone()).unwrap_or_default();
                self.registration = storage::decode_registration(b.as_deref(), &issuer);
                self.registration_loaded_for = Some(issuer);
                self.choose_client(f)
            }
            (Phase::Registering, Input::Http(r)) => {
                let (Some(binding), Some(redirect)) = (&self.binding, &f.redirect_uri) else {
                    return unexpected("a binding and a redirect URI");
                };
                let resp = match r {
                    Ok(resp) => resp,
                    Err(e) => {
                        let url = self.metadata.as_ref().and_then(|m| m.registration_endpoint.clone());
                        return Step::Done(Err(transport(&url.unwrap_or_default(), &e.message)));
                    }
                };
                match registration::parse_registration(&resp, &binding.issuer, redirect) {
                    Ok(reg) => {
                        let save = save(storage::registration_key(&reg.issuer), storage::encode(&reg));
                        self.registration = Some(reg);
                        self.queue(f, now, alloc::vec![save], Then::ChooseClient)
                    }
                    Err(e) => Step::Done(Err(e)),
                }
            }
            (Phase::OpeningBrowser, Input::Opened(r)) => {
                f.deadline = now.saturating_add(self.config.callback_timeout_ms);
                match r {
                    Ok(()) => self.await_callback(f, now),
                    Err(reason) => {
                        let notice = Effect::Notify(Event::BrowserOpenFailed {
                            url: f.auth_url.clone(),
                            reason,
                        });
                        self.queue(f, now, alloc::vec![notice], Then::AwaitCallback)
                    }
                }
            }
            (Phase::AwaitingCallback, Input::Callback(ev)) => match ev {
                CallbackEvent::Redirect { query } => self.on_redirect(f, now, &query),
                CallbackEvent::TimedOut => Step::Done(Err(Error::TimedOut)),
                CallbackEvent::Cancelled => {
                    self.latch.decline();
                    Step::Done(Err(Error::Declined))
                }
            },
            (Phase::ExchangingCode, Input::Http(r)) => {
                let resp = match r {
                    Ok(resp) => resp,
                    Err(e) => return Step::Done(Err(self.token_transport(&e.message))),
                };
                let Some(client) = f.client.clone() else {
                    return unexpected("a client");
                };
                let requested = f.scopes.as_deref().map(scope::join).filter(|s| !s.is_empty());
                match tokens::parse_token_response(&resp, now, &client.client_id, requested.as_deref(), None) {
                    Ok(ts) => {
                        self.refreshed_after_401 = false;
                        self.store_tokens(f, now, ts)
                    }
                    Err(Error::TokenRequestFailed { error: Some(e), .. })
                        if e == "invalid_client" && client.source == ClientSource::Dynamic && !f.reregistered =>
                    {
                        f.reregistered = true;
                        let effects = self.forget_registration();
                        self.queue(f, now, effects, Then::ChooseClient)
                    }
                    Err(e) => Step::Done(Err(e)),
                }
            }
            // -- machine grants -----------------------------------------
            (Phase::ExchangingIdentity, Input::Http(r)) => {
                let resp = match r {
                    Ok(resp) => resp,
                    Err(e) => {
                        let url = match &self.config.grant {
                            Grant::IdentityAssertion { idp_token_endpoint, .. } => idp_token_endpoint.clone(),
                            _ => String::new(),
                        };
                        return Step::Done(Err(transport(&url, &e.message)));
                    }
                };
                match grants::parse_token_exchange(&resp) {
                    Ok(jag) => {
                        f.id_jag = Some(jag);
                        self.machine_grant(f, now)
                    }
                    Err(e) => Step::Done(Err(e)),
                }
            }
            (Phase::Signing, Input::Signed(r)) => match r.map_err(|m| Error::InvalidConfig {
                reason: format!("the host could not sign the client assertion: {m}"),
            }) {
                Ok(sig) => match grants::finish_assertion(&f.signing_input, &sig) {
                    Ok(a) => {
                        f.client_assertion = Some(a);
                        self.machine_grant(f, now)
                    }
                    Err(e) => Step::Done(Err(e)),
                },
                Err(e) => Step::Done(Err(e)),
            },
            (Phase::MachineToken, Input::Http(r)) => {
                let resp = match r {
                    Ok(resp) => resp,
                    Err(e) => return Step::Done(Err(self.token_transport(&e.message))),
                };
                let client_id = f.client.as_ref().map(|c| c.client_id.clone()).unwrap_or_default();
                let requested = f.scopes.as_deref().map(scope::join).filter(|s| !s.is_empty());
                match tokens::parse_token_response(&resp, now, &client_id, requested.as_deref(), None) {
                    Ok(ts) => self.store_tokens(f, now, ts),
                    Err(e) => Step::Done(Err(e)),
                }
            }
            (phase, _) => unexpected(phase.expects()),
        }
    }

    // ---- decisions --------------------------------------------------------

    fn dispatch(&mut self, f: &mut Flow, now: u64) -> Step {
        match f.op.clone() {
            Op::Inspect => Step::Done(Ok(Outcome::Status(self.status()))),
            Op::Logout => {
                let effects = match &self.binding {
                    Some(_) => alloc::vec![Effect::Delete { key: self.tokens_key() }],
                    None => Vec::new(),
                };
                self.tokens = None;
                self.queue(f, now, effects, Then::Finish(Ok(Outcome::LoggedOut)))
            }
            Op::Authorize { trigger, .. } => self.decide(f, now, trigger),
        }
    }

    fn decide(&mut self, f: &mut Flow, now: u64, trigger: Trigger) -> Step {
        let skew = self.config.expiry_skew_ms;
        match trigger {
            Trigger::Plain => {
                if let Some(t) = &self.tokens {
                    if t.is_fresh(now, skew) {
                        return self.finish_with_token();
                    }
                    if t.refresh_token.is_some() && self.metadata.is_some() && !self.config.grant.is_machine() {
                        return self.start_refresh(f);
                    }
                }
                let reason = if self.tokens.is_some() {
                    ConsentReason::Reauthorize
                } else {
                    ConsentReason::FirstLogin
                };
                self.need_interaction(f, now, reason)
            }
            Trigger::Unauthorized { challenge, rejected } => {
                if let Some(step) = self.superseded(now, rejected.as_deref()) {
                    return step;
                }
                f.challenge_prm = challenge.resource_metadata.clone();
                if rejected.is_some()
                    && let Some(t) = self.tokens.as_mut()
                {
                    // The server says this token is no good, whatever its expiry.
                    t.expires_at = Some(0);
                }
                let can_refresh = self.tokens.as_ref().is_some_and(|t| t.refresh_token.is_some())
                    && self.metadata.is_some()
                    && !self.config.grant.is_machine();
                if rejected.is_some() && can_refresh && !self.refreshed_after_401 {
                    self.refreshed_after_401 = true;
                    return self.start_refresh(f);
                }
                // A rejected token, or a challenge that points at other
                // metadata: what is stored may be stale, so rediscover (the AS
                // metadata still comes from storage when the issuer is the same).
                let moved = matches!((&self.binding, &challenge.resource_metadata),
                    (Some(b), Some(rm)) if b.resource_metadata_url.as_deref() != Some(rm.as_str()));
                if rejected.is_some() || moved {
                    self.forget_binding();
                }
                if let Some(s) = challenge.scope.as_deref().filter(|s| !s.trim().is_empty()) {
                    let held = self.tokens.as_ref().map(TokenSet::scopes).unwrap_or_default();
                    if held.is_empty() {
                        // First authorization: the spec's selection, with the
                        // challenge's scope first in line.
                        f.challenge_scope = Some(String::from(s));
                    } else {
                        f.scopes = Some(scope::union(&held, &scope::split(s)));
                    }
                }
                let reason = if rejected.is_some() {
                    ConsentReason::Reauthorize
                } else {
                    ConsentReason::FirstLogin
                };
                self.need_interaction(f, now, reason)
            }
            Trigger::StepUp { challenge, rejected } => {
                if let Some(step) = self.superseded(now, rejected.as_deref()) {
                    return step;
                }
                let challenged = scope::split(challenge.scope.as_deref().unwrap_or(""));
                if self.step_ups >= self.config.max_step_ups {
                    return Step::Done(Err(Error::StepUpLimit {
                        attempts: self.step_ups,
                        scope: scope::join(&challenged),
                    }));
                }
                let machine = self.config.grant.is_machine();
                if self.latch.is_declined() && !machine {
                    return Step::Done(Err(Error::Declined));
                }
                if matches!(f.op, Op::Authorize { mode: Mode::Silent, .. }) && !machine {
                    return Step::Done(Err(Error::AuthorizationRequired));
                }
                self.step_ups += 1;
                let held = self.tokens.as_ref().map(TokenSet::scopes).unwrap_or_default();
                f.scopes = Some(scope::union(&held, &challenged));
                self.need_interaction(f, now, ConsentReason::StepUp)
            }
        }
    }

    /// The stored grant is dead. After a 401 the binding may be stale too, so
    /// discovery starts over; otherwise go straight to a new authorization.
    fn reauthorize(&mut self, f: &mut Flow, now: u64) -> Step {
        if f.held_lock.is_some() {
            let unlock = self.release(f);
            return self.queue(f, now, unlock, Then::Reauthorize);
        }
        if matches!(
            f.op,
            Op::Authorize {
                trigger: Trigger::Unauthorized { .. },
                ..
            }
        ) {
            self.forget_binding();
        }
        self.need_interaction(f, now, ConsentReason::Reauthorize)
    }

    /// A 401/403 for a request sent without a token, or with one that has
    /// since been replaced (a concurrent caller already authorized or
    /// refreshed): hand out the current token, no second flow.
    fn superseded(&mut self, now: u64, rejected: Option<&str>) -> Option<Step> {
        let t = self.tokens.as_ref()?;
        let replaced = rejected.is_none_or(|r| r != t.access_token);
        (replaced && t.is_fresh(now, self.config.expiry_skew_ms)).then(|| self.finish_with_token())
    }

    /// No usable token: a new grant. For a user that means discovery,
    /// consent and the browser (never in silent mode, never while declined);
    /// the machine grants need no user and run in either mode.
    fn need_interaction(&mut self, f: &mut Flow, now: u64, reason: ConsentReason) -> Step {
        let machine = self.config.grant.is_machine();
        if self.latch.is_declined() && !machine {
            return Step::Done(Err(Error::Declined));
        }
        if matches!(f.op, Op::Authorize { mode: Mode::Silent, .. }) && !machine {
            return Step::Done(Err(Error::AuthorizationRequired));
        }
        f.reason = reason;
        match (&self.binding, &self.metadata) {
            (None, _) => match discovery::prm_candidates(&self.server, f.challenge_prm.as_deref()) {
                Ok(c) => {
                    f.candidates = c;
                    f.next = 0;
                    f.tried.clear();
                    self.fetch_next_prm(f)
                }
                Err(e) => Step::Done(Err(e)),
            },
            (Some(b), None) if b.legacy => emit(
                f,
                Phase::FetchLegacyMetadata,
                Effect::Http(HttpRequest::get(&discovery::legacy_metadata_url(&self.server))),
            ),
            (Some(b), None) => {
                let issuer = b.issuer.clone();
                self.discover_metadata(f, &issuer)
            }
            (Some(_), Some(_)) if machine => self.machine_grant(f, now),
            (Some(_), Some(_)) => emit(
                f,
                Phase::Listening,
                Effect::Listen {
                    port: self.config.callback_port,
                },
            ),
        }
    }

    fn fetch_next_prm(&mut self, f: &mut Flow) -> Step {
        if let Some(url) = f.candidates.get(f.next).cloned() {
            f.next += 1;
            return emit(f, Phase::FetchPrm, Effect::Http(HttpRequest::get(&url)));
        }
        // No PRM anywhere: a 2025-03-26 server.
        emit(
            f,
            Phase::FetchLegacyMetadata,
            Effect::Http(HttpRequest::get(&discovery::legacy_metadata_url(&self.server))),
        )
    }

    fn on_prm(&mut self, f: &mut Flow, prm: ResourceMetadata, url: Option<String>) -> Step {
        // RFC 9728 §7.6: the client picks. A pre-registered client bound to one
        // of the listed issuers picks that one; else the first usable issuer.
        let usable: Vec<&String> = prm
            .authorization_servers
            .iter()
            .filter(|i| check_url(i, "issuer").is_ok())
            .collect();
        let preferred = self
            .config
            .client_issuer
            .as_ref()
            .and_then(|ci| usable.iter().find(|i| **i == ci));
        let Some(issuer) = preferred.or(usable.first()).map(|s| (*s).clone()) else {
            let first = prm.authorization_servers.first().cloned().unwrap_or_default();
            return Step::Done(Err(check_url(&first, "authorization server").err().unwrap_or(
                Error::DiscoveryFailed {
                    what: "usable authorization server",
                    tried: String::from("the protected resource metadata"),
                },
            )));
        };
        self.set_binding(Binding {
            server_url: self.server_url.clone(),
            prm,
            resource_metadata_url: url,
            issuer: issuer.clone(),
            legacy: false,
        });
        emit(f, Phase::LoadCachedMetadata, load(storage::metadata_key(&issuer)))
    }

    /// Starts trying the issuer's metadata URLs in the spec's order.
    fn discover_metadata(&mut self, f: &mut Flow, issuer: &str) -> Step {
        match discovery::as_metadata_candidates(issuer) {
            Ok(c) => {
                f.candidates = c;
                f.next = 0;
                f.tried.clear();
                self.fetch_next_metadata(f)
            }
            Err(e) => Step::Done(Err(e)),
        }
    }

    fn fetch_next_metadata(&mut self, f: &mut Flow) -> Step {
        if let Some(url) = f.candidates.get(f.next).cloned() {
            f.next += 1;
            return emit(f, Phase::FetchMetadata, Effect::Http(HttpRequest::get(&url)));
        }
        let expected = self.binding.as_ref().map(|b| b.issuer.clone()).unwrap_or_default();
        Step::Done(Err(match f.issuer_mismatch.take() {
            Some(found) => Error::IssuerMismatch { expected, found },
            None => Error::DiscoveryFailed {
                what: "authorization server metadata",
                tried: f.tried.join(", "),
            },
        }))
    }

    /// Validated metadata: check PKCE, persist binding and metadata, listen.
    fn accept_metadata(&mut self, f: &mut Flow, now: u64, md: AsMetadata, mut effects: Vec<Effect>) -> Step {
        if !md.supports_s256() {
            if !self.config.allow_missing_s256.contains(&md.issuer) {
                return Step::Done(Err(Error::PkceUnsupported { issuer: md.issuer }));
            }
            effects.push(Effect::Notify(Event::PkceCheckOverridden {
                issuer: md.issuer.clone(),
            }));
        }
        if let Some(b) = &self.binding {
            effects.push(save(storage::binding_key(&self.server_url), storage::encode(b)));
        }
        effects.push(save(storage::metadata_key(&md.issuer), storage::encode(&md)));
        self.metadata = Some(md);
        let then = if self.config.grant.is_machine() {
            Then::MachineGrant
        } else {
            Then::Listen
        };
        self.queue(f, now, effects, then)
    }

    fn ask_consent(&mut self, f: &mut Flow) -> Step {
        let (Some(b), Some(md)) = (&self.binding, &self.metadata) else {
            return unexpected("discovered metadata");
        };
        let scopes = match &f.scopes {
            Some(s) => s.clone(),
            None => scope::select(
                self.config.scope.as_deref(),
                f.challenge_scope.as_deref(),
                b.prm.scopes_supported.as_deref(),
                md.scopes_supported.as_deref(),
                self.config.request_offline_access,
            ),
        };
        f.scopes = Some(scopes.clone());
        let ask = ConsentRequest {
            server_url: self.server_url.clone(),
            issuer: b.issuer.clone(),
            scopes,
            reason: f.reason,
        };
        emit(f, Phase::Consenting, Effect::Consent(ask))
    }

    /// Client identity in the spec's priority order.
    fn choose_client(&mut self, f: &mut Flow) -> Step {
        let (Some(b), Some(md), Some(redirect)) = (&self.binding, &self.metadata, &f.redirect_uri) else {
            return unexpected("discovered metadata and a redirect URI");
        };
        let issuer = b.issuer.clone();
        let supported = md.token_endpoint_auth_methods_supported.as_deref();
        let client = if let Some(id) = &self.config.client_id {
            if let Some(ci) = &self.config.client_issuer
                && *ci != issuer
            {
                return Step::Done(Err(Error::ClientIssuerMismatch {
                    configured: ci.clone(),
                    actual: issuer,
                }));
            }
            let secret = self.config.client_secret.clone();
            ClientCredentials {
                client_id: id.clone(),
                method: AuthMethod::choose(secret.is_some(), None, supported),
                client_secret: secret,
                source: ClientSource::PreRegistered,
            }
        } else if let (Some(url), Some(true)) = (
            &self.config.client_metadata_url,
            md.client_id_metadata_document_supported,
        ) {
            ClientCredentials {
                client_id: url.clone(),
                client_secret: None,
                method: AuthMethod::None,
                source: ClientSource::MetadataDocument,
            }
        } else if self.registration_loaded_for.as_deref() != Some(issuer.as_str()) {
            return emit(
                f,
                Phase::LoadRegistrationForFlow,
                load(storage::registration_key(&issuer)),
            );
        } else if let Some(r) = self.registration.as_ref().filter(|r| r.usable_for(&issuer, redirect)) {
            ClientCredentials {
                client_id: r.client_id.clone(),
                method: AuthMethod::choose(
                    r.client_secret.is_some(),
                    r.token_endpoint_auth_method.as_deref(),
                    supported,
                ),
                client_secret: r.client_secret.clone(),
                source: ClientSource::Dynamic,
            }
        } else if let Some(endpoint) = &md.registration_endpoint {
            let req = registration::registration_request(endpoint, md, &self.config.client_name, redirect);
            return emit(f, Phase::Registering, Effect::Http(req));
        } else {
            return Step::Done(Err(Error::NoClientIdentity {
                offers: registration::offers(md, self.config.client_metadata_url.is_some()),
                issuer,
            }));
        };
        f.client = Some(client);
        self.open_browser(f)
    }

    /// Builds the authorization URL from validated parts only and opens it.
    fn open_browser(&mut self, f: &mut Flow) -> Step {
        let (Some(b), Some(md), Some(redirect), Some(client)) =
            (&self.binding, &self.metadata, &f.redirect_uri, &f.client)
        else {
            return unexpected("a client and a redirect URI");
        };
        let url = match check_url(&md.authorization_endpoint, "authorization_endpoint") {
            Ok(u) => u,
            Err(e) => return Step::Done(Err(e)),
        };
        let pkce = Pkce::from_entropy(&f.entropy.derive("pkce", f.attempt));
        let state = URL_SAFE_NO_PAD.encode(f.entropy.derive("state", f.attempt));
        f.attempt = f.attempt.wrapping_add(1);
        let scope = f.scopes.as_deref().map(scope::join).filter(|s| !s.is_empty());
        let mut params = alloc::vec![
            ("response_type", "code"),
            ("client_id", client.client_id.as_str()),
            ("redirect_uri", redirect.as_str()),
            ("code_challenge", pkce.challenge()),
            ("code_challenge_method", "S256"),
            ("state", state.as_str()),
            ("resource", b.prm.resource.as_str()),
        ];
        if let Some(s) = scope.as_deref() {
            params.push(("scope", s));
        }
        f.auth_url = url.with_query_pairs(params);
        f.pkce = Some(pkce);
        f.state = Some(state);
        let url = f.auth_url.clone();
        emit(f, Phase::OpeningBrowser, Effect::OpenBrowser { url })
    }

    fn await_callback(&mut self, f: &mut Flow, now: u64) -> Step {
        let remaining = f.deadline.saturating_sub(now);
        if remaining == 0 {
            return Step::Done(Err(Error::TimedOut));
        }
        emit(
            f,
            Phase::AwaitingCallback,
            Effect::AwaitCallback { timeout_ms: remaining },
        )
    }

    fn on_redirect(&mut self, f: &mut Flow, now: u64, query: &str) -> Step {
        let (Some(b), Some(md), Some(state)) = (&self.binding, &self.metadata, &f.state) else {
            return unexpected("a pending authorization");
        };
        let iss_supported = md.authorization_response_iss_parameter_supported == Some(true);
        match callback::check(query, state, &b.issuer, iss_supported) {
            Verdict::Rejected(reason) => {
                let notice = Effect::Notify(Event::CallbackRejected { reason });
                self.queue(f, now, alloc::vec![notice], Then::AwaitCallback)
            }
            Verdict::IssMismatch => Step::Done(Err(Error::IssMismatch {
                expected: b.issuer.clone(),
            })),
            Verdict::Denied => {
                self.latch.decline();
                Step::Done(Err(Error::Declined))
            }
            Verdict::Failed { error, description } => {
                Step::Done(Err(Error::AuthorizationFailed { error, description }))
            }
            Verdict::Code(code) => {
                // `state` is single use: it is gone once a code is accepted.
                f.state = None;
                let (Some(pkce), Some(client), Some(redirect)) = (&f.pkce, &f.client, &f.redirect_uri) else {
                    return unexpected("a pending authorization");
                };
                let req = tokens::code_request(&CodeExchange {
                    token_endpoint: &md.token_endpoint,
                    code: &code,
                    redirect_uri: redirect,
                    verifier: pkce.verifier(),
                    resource: &b.prm.resource,
                    client,
                });
                emit(f, Phase::ExchangingCode, Effect::Http(req))
            }
        }
    }

    /// Refresh under the record lock: lock, re-read (another process may have
    /// refreshed), refresh, save the rotated token, unlock.
    /// Client credentials or an identity assertion: (IdP exchange,) (host
    /// signature,) token request. No user, no browser.
    fn machine_grant(&mut self, f: &mut Flow, now: u64) -> Step {
        let (Some(b), Some(md)) = (&self.binding, &self.metadata) else {
            return unexpected("discovered metadata");
        };
        let Some(client_id) = self.config.client_id.clone() else {
            return Step::Done(Err(Error::InvalidConfig {
                reason: String::from("a machine grant needs a pre-registered client id"),
            }));
        };
        let scopes = f.scopes.clone().unwrap_or_else(|| {
            scope::select(
                self.config.scope.as_deref(),
                f.challenge_scope.as_deref(),
                b.prm.scopes_supported.as_deref(),
                md.scopes_supported.as_deref(),
                false,
            )
        });
        let scope = Some(scope::join(&scopes)).filter(|s| !s.is_empty());
        f.scopes = Some(scopes);
        let resource = b.prm.resource.clone();
        if let Grant::IdentityAssertion {
            idp_token_endpoint,
            id_token,
            idp_client_id,
        } = &self.config.grant
            && f.id_jag.is_none()
        {
            let req = grants::token_exchange_request(
                idp_token_endpoint,
                id_token,
                &b.issuer,
                &resource,
                scope.as_deref(),
                idp_client_id.as_deref(),
            );
            return emit(f, Phase::ExchangingIdentity, Effect::Http(req));
        }
        if self.config.private_key_jwt && f.client_assertion.is_none() {
            let jti = f.entropy.derive("jti", f.attempt);
            let input = grants::assertion_signing_input(&client_id, &b.issuer, now, &jti);
            f.signing_input = input.clone();
            return emit(f, Phase::Signing, Effect::Sign { input });
        }
        let secret = self.config.client_secret.clone();
        let client = ClientCredentials {
            client_id,
            method: AuthMethod::choose(
                secret.is_some(),
                None,
                md.token_endpoint_auth_methods_supported.as_deref(),
            ),
            client_secret: secret,
            source: ClientSource::PreRegistered,
        };
        let auth = grants::client_auth(&client, f.client_assertion.as_deref());
        let req = match &f.id_jag {
            Some(jag) => grants::jwt_bearer_request(&md.token_endpoint, jag, &resource, scope.as_deref(), auth),
            None => grants::client_credentials_request(&md.token_endpoint, &resource, scope.as_deref(), auth),
        };
        f.client = Some(client);
        emit(f, Phase::MachineToken, Effect::Http(req))
    }

    fn start_refresh(&mut self, f: &mut Flow) -> Step {
        let key = self.tokens_key();
        emit(f, Phase::Locking, Effect::Lock { key })
    }

    fn release(&mut self, f: &mut Flow) -> Vec<Effect> {
        f.held_lock
            .take()
            .map(|key| Effect::Unlock { key })
            .into_iter()
            .collect()
    }

    /// The client a stored grant was issued to, if it is still at hand.
    fn client_for(&self, client_id: &str) -> Option<ClientCredentials> {
        let md = self.metadata.as_ref()?;
        let supported = md.token_endpoint_auth_methods_supported.as_deref();
        if self.config.client_id.as_deref() == Some(client_id) {
            let secret = self.config.client_secret.clone();
            return Some(ClientCredentials {
                client_id: String::from(client_id),
                method: AuthMethod::choose(secret.is_some(), None, supported),
                client_secret: secret,
                source: ClientSource::PreRegistered,
            });
        }
        if self.config.client_metadata_url.as_deref() == Some(client_id) {
            return Some(ClientCredentials {
                client_id: String::from(client_id),
                client_secret: None,
                method: AuthMethod::None,
                source: ClientSource::MetadataDocument,
            });
        }
        let r = self.registration.as_ref().filter(|r| r.client_id == client_id)?;
        Some(ClientCredentials {
            client_id: r.client_id.clone(),
            method: AuthMethod::choose(
                r.client_secret.is_some(),
                r.token_endpoint_auth_method.as_deref(),
                supported,
            ),
            client_secret: r.client_secret.clone(),
            source: ClientSource::Dynamic,
        })
    }

    fn send_refresh(&mut self, f: &mut Flow, now: u64) -> Step {
        let (Some(b), Some(md), Some(t)) = (&self.binding, &self.metadata, &self.tokens) else {
            return self.reauthorize(f, now);
        };
        let (Some(rt), Some(client)) = (t.refresh_token.clone(), self.client_for(&t.client_id)) else {
            self.tokens = None;
            return self.reauthorize(f, now);
        };
        let req = tokens::refresh_request(&md.token_endpoint, &rt, &b.prm.resource, &client);
        f.used_refresh = Some(rt);
        emit(f, Phase::Refreshing, Effect::Http(req))
    }

    /// Keep the new grant, save it (a rotated refresh token is on disk before
    /// anyone uses it), then hand out the access token.
    fn store_tokens(&mut self, f: &mut Flow, now: u64, ts: TokenSet) -> Step {
        let Some(b) = &self.binding else {
            return unexpected("a binding");
        };
        let record = TokenRecord {
            resource: b.prm.resource.clone(),
            issuer: b.issuer.clone(),
            tokens: ts.clone(),
        };
        let mut effects = alloc::vec![save(self.tokens_key(), storage::encode(&record))];
        effects.extend(self.release(f));
        let token = ts.access();
        self.tokens = Some(ts);
        self.queue(f, now, effects, Then::Finish(Ok(Outcome::Token(token))))
    }

    fn finish_with_token(&self) -> Step {
        match &self.tokens {
            Some(t) => Step::Done(Ok(Outcome::Token(t.access()))),
            None => unexpected("a token"),
        }
    }

    // ---- small helpers ----------------------------------------------------

    fn tokens_key(&self) -> String {
        self.binding
            .as_ref()
            .map(|b| storage::tokens_key(&b.prm.resource, &b.issuer))
            .unwrap_or_default()
    }

    /// Stored AS metadata, used only if it would still be accepted today:
    /// safe endpoints, and S256 (or the configured override).
    fn stored_metadata(&self, bytes: Option<&[u8]>, issuer: &str) -> Option<AsMetadata> {
        storage::decode_metadata(bytes, issuer).filter(|m| {
            m.check_endpoints().is_ok() && (m.supports_s256() || self.config.allow_missing_s256.contains(&m.issuer))
        })
    }

    fn decode_stored_tokens(&self, bytes: Option<&[u8]>) -> Option<TokenSet> {
        let b = self.binding.as_ref()?;
        storage::decode_tokens(bytes, &b.prm.resource, &b.issuer)
    }

    fn token_transport(&self, message: &str) -> Error {
        let url = self.metadata.as_ref().map(|m| m.token_endpoint.as_str()).unwrap_or("");
        transport(url, message)
    }

    /// Records where authorization lives; when the issuer changes, everything
    /// tied to the old one (metadata, registration, tokens) is dropped from
    /// memory so no credential crosses to the new issuer.
    fn set_binding(&mut self, binding: Binding) {
        // After `forget_binding` the registration still remembers its issuer.
        let previous = self
            .binding
            .as_ref()
            .map(|b| &b.issuer)
            .or(self.registration_loaded_for.as_ref());
        let same_issuer = previous == Some(&binding.issuer);
        if !same_issuer {
            self.metadata = None;
            self.registration = None;
            self.registration_loaded_for = None;
            self.tokens = None;
        }
        self.binding = Some(binding);
    }

    fn forget_binding(&mut self) {
        self.binding = None;
        self.metadata = None;
    }

    fn forget_registration(&mut self) -> Vec<Effect> {
        let Some(r) = self.registration.take() else {
            return Vec::new();
        };
        alloc::vec![Effect::Delete {
            key: storage::registration_key(&r.issuer),
        }]
    }
}

impl Phase {
    fn expects(&self) -> &'static str {
        match self {
            Phase::LoadBinding
            | Phase::LoadMetadata
            | Phase::LoadRegistration
            | Phase::LoadTokens
            | Phase::ReloadBeforeRefresh
            | Phase::ReloadAfterInvalidGrant
            | Phase::LoadCachedMetadata
            | Phase::LoadRegistrationForFlow => "Loaded",
            Phase::Refreshing
            | Phase::FetchPrm
            | Phase::FetchMetadata
            | Phase::FetchLegacyMetadata
            | Phase::Registering
            | Phase::ExchangingCode => "Http",
            Phase::Locking => "Locked",
            Phase::ExchangingIdentity | Phase::MachineToken => "Http",
            Phase::Signing => "Signed",
            Phase::Listening => "Listening",
            Phase::Consenting => "Consent",
            Phase::OpeningBrowser => "Opened",
            Phase::AwaitingCallback => "Callback",
            Phase::Draining(_) => "Stored or Ack",
        }
    }
}

fn rejected_token(op: &Op) -> Option<&str> {
    match op {
        Op::Authorize {
            trigger: Trigger::Unauthorized { rejected, .. } | Trigger::StepUp { rejected, .. },
            ..
        } => rejected.as_deref(),
        _ => None,
    }
}

fn emit(f: &mut Flow, phase: Phase, effect: Effect) -> Step {
    f.phase = phase;
    Step::Effect(effect)
}

fn load(key: String) -> Effect {
    Effect::Load { key }
}

fn save(key: String, value: Vec<u8>) -> Effect {
    Effect::Save { key, value }
}

fn unexpected(expected: &'static str) -> Step {
    Step::Done(Err(Error::UnexpectedInput { expected }))
}
