//! The state of a running flow. Each [`Phase`] names the one input it waits
//! for and owns the data only it needs: the pending authorization's PKCE
//! verifier, `state`, client and redirect URI live in
//! [`Phase::AwaitingCallback`], and are dropped with it once a code is
//! accepted. The phase changes in one place, `Session::advance` in `mod.rs`.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use crate::effect::{ConsentReason, Effect, FlowId, HttpRequest, LogoutReport, Mode, Outcome};
use crate::error::Error;
use crate::policy::rejection::Trigger;
use crate::primitives::entropy::Entropy;
use crate::primitives::pkce::Pkce;
use crate::records::Binding;
use crate::wire::client_auth::ClientCredentials;
use crate::wire::device_authorization::DeviceAuthorization;
use crate::wire::metadata::AsMetadata;

/// What the caller asked for.
#[derive(Debug, Clone)]
pub(super) enum Op {
    Authorize {
        mode: Mode,
        trigger: Trigger,
    },
    /// Revoke at the AS first (RFC 7009) when `revoke`.
    Logout {
        revoke: bool,
    },
    Inspect,
    /// A DPoP proof for a request to the MCP server.
    Proof {
        method: String,
        url: String,
    },
}

impl Op {
    /// Whether a caller asking for `other` can take this running
    /// operation's outcome as its own: a token for a token, from a flow
    /// that may prompt whenever the caller may.
    pub fn joinable_by(&self, other: &Op) -> bool {
        match (self, other) {
            (Op::Authorize { mode: running, .. }, Op::Authorize { mode: asking, .. }) => {
                *running == Mode::Interactive || *asking == Mode::Silent
            }
            _ => false,
        }
    }
}

/// One operation in progress (single flight: at most one per session).
pub(super) struct Flow {
    pub id: FlowId,
    pub op: Op,
    pub entropy: Entropy,
    pub phase: Phase,
    /// Fire-and-forget effects (save, delete, notify, unlock) still to go out.
    pub outbox: VecDeque<Effect>,
    /// The record lock this flow holds: taken by `refresh::locked`,
    /// released only by `Session::advance` (before a new grant or the end).
    pub held_lock: Option<String>,
    /// What a new grant asks for, as the decision set it.
    pub wanted: Wanted,
    /// Authorization attempts so far (each derives a fresh verifier and state).
    pub attempt: u8,
    /// The DPoP key this flow's token request is bound to (RFC 9449).
    pub dpop_key: Option<String>,
    /// Proofs made in this flow (each gets its own `jti`).
    pub dpop_proofs: u8,
    /// The browser's request that brought the redirect waits for its page:
    /// `Session::advance` answers it with the outcome before the flow ends.
    pub browser_waiting: bool,
}

impl Flow {
    pub fn mode(&self) -> Mode {
        match self.op {
            Op::Authorize { mode, .. } => mode,
            Op::Logout { .. } | Op::Inspect | Op::Proof { .. } => Mode::Silent,
        }
    }

    pub fn trigger(&self) -> Option<&Trigger> {
        match &self.op {
            Op::Authorize { trigger, .. } => Some(trigger),
            Op::Logout { .. } | Op::Inspect | Op::Proof { .. } => None,
        }
    }

    /// The token the server refused, when a 401/403 started the flow.
    pub fn rejected_token(&self) -> Option<&str> {
        self.trigger().and_then(Trigger::rejected)
    }
}

/// What a new grant asks for.
#[derive(Debug, Clone, Default)]
pub(super) struct Wanted {
    pub reason: ConsentReason,
    /// Exactly these scopes (a union after a challenge or step-up).
    pub scopes: Option<Vec<String>>,
    /// The 401 challenge's `scope`, first in line for the usual selection.
    pub challenge_scope: Option<String>,
    /// The 401 challenge's `resource_metadata`, first PRM candidate.
    pub challenge_prm: Option<String>,
}

/// What discovery established, or the stored records held: where
/// authorization lives and its AS's validated metadata. The phases of a new
/// grant and of a refresh own it, so none of them can run without it.
#[derive(Debug, Clone)]
pub(super) struct Authority {
    pub binding: Binding,
    pub metadata: AsMetadata,
}

/// A refresh on its way: what it was started with travels with it.
#[derive(Debug, Clone)]
pub(super) struct Refresh {
    pub authority: Authority,
    /// The refresh token sent (a rotated one is never sent twice).
    pub used: String,
    /// The client the grant was issued to, and the scope it holds.
    pub client_id: String,
    pub scope: Option<String>,
    /// A refresh token another process rotated was tried once already.
    pub retried: bool,
}

/// URLs tried in order until one answers with a usable document.
#[derive(Debug, Clone, Default)]
pub(super) struct Candidates {
    urls: Vec<String>,
    next: usize,
    /// What each tried URL gave, for the error when none works.
    pub tried: Vec<String>,
    /// An AS metadata document that named another issuer.
    pub issuer_mismatch: Option<String>,
}

impl Candidates {
    pub fn new(urls: Vec<String>) -> Self {
        Self {
            urls,
            ..Self::default()
        }
    }

    /// The next URL to try (the list is finite: this ends).
    pub fn advance(&mut self) -> Option<String> {
        let url = self.urls.get(self.next).cloned();
        if url.is_some() {
            self.next += 1;
        }
        url
    }

    pub fn reject(&mut self, why: String) {
        self.tried.push(why);
    }
}

/// How the user's approval comes back.
#[derive(Debug, Clone)]
pub(super) enum Channel {
    /// A redirect to this loopback URI (checked), where the listener answers.
    Loopback(String),
    /// The device grant (RFC 8628): the user approves elsewhere; the flow
    /// polls. The AS's device authorization endpoint (checked).
    Device(String),
}

/// An interactive authorization once its channel is set up.
#[derive(Debug, Clone)]
pub(super) struct Authorization {
    pub authority: Authority,
    pub channel: Channel,
    /// The scopes consented to (empty: the AS's default).
    pub scopes: Vec<String>,
    /// A rejected dynamic client was registered again once already.
    pub reregistered: bool,
}

/// The browser is out: everything the redirect and code exchange need.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    pub auth: Authorization,
    pub client: ClientCredentials,
    pub pkce: Pkce,
    /// Single use: dropped with this value once a code is accepted.
    pub state: String,
    /// The authorization URL, to show when the browser could not open.
    pub url: String,
    /// When the wait for the redirect ends (unix ms).
    pub deadline: u64,
    /// Requests to the callback that were not this login's redirect.
    pub rejected: u32,
}

impl Authorization {
    /// The loopback redirect URI; `None` for the device grant.
    pub fn redirect_uri(&self) -> Option<&str> {
        match &self.channel {
            Channel::Loopback(uri) => Some(uri),
            Channel::Device(_) => None,
        }
    }
}

/// A device grant being polled (RFC 8628 §3.4): the code (a secret) and
/// the interval travel here, and are dropped when the flow ends.
#[derive(Debug, Clone)]
pub(super) struct DeviceGrant {
    pub auth: Authorization,
    pub client: ClientCredentials,
    pub device: DeviceAuthorization,
    /// The poll interval now (raised by `slow_down`).
    pub interval_ms: u64,
    /// When the wait ends (unix ms): the code's life or the user timeout.
    pub deadline: u64,
    /// Polls sent so far (bounded even if a host does not wait).
    pub polls: u32,
}

/// A logout's revocations (RFC 7009): what is left to revoke, what was.
#[derive(Debug, Clone)]
pub(super) struct Revocation {
    pub endpoint: String,
    pub client: ClientCredentials,
    /// (`token_type_hint`, token), refresh token first.
    pub left: Vec<(&'static str, String)>,
    pub report: LogoutReport,
}

/// A machine grant's progress: (ID-JAG from the IdP,) (signed assertion,)
/// token request.
#[derive(Debug, Clone)]
pub(super) struct MachineGrant {
    pub authority: Authority,
    pub scopes: Vec<String>,
    pub id_jag: Option<String>,
    pub assertion: Option<String>,
}

impl MachineGrant {
    pub fn new(authority: Authority) -> Self {
        Self {
            authority,
            scopes: Vec::new(),
            id_jag: None,
            assertion: None,
        }
    }
}

/// Where a flow stands: which input it waits for, with what it needs.
#[derive(Debug, Clone)]
pub(super) enum Phase {
    /// Only while a handler runs.
    Idle,
    // stored records
    LoadBinding,
    // the binding read travels until the last record is in
    LoadMetadata(Binding),
    LoadRegistration(Binding),
    LoadTokens(Binding),
    // refresh
    Locking {
        key: String,
    },
    ReloadBeforeRefresh,
    Refreshing(Refresh),
    ReloadAfterInvalidGrant(Refresh),
    // discovery
    FetchPrm {
        url: String,
        candidates: Candidates,
    },
    LoadCachedMetadata(Binding),
    FetchMetadata {
        binding: Binding,
        url: String,
        candidates: Candidates,
    },
    FetchLegacyMetadata,
    // interactive authorization
    Listening(Authority),
    Consenting(Authorization),
    LoadRegistrationForFlow(Authorization),
    Registering(Authorization),
    OpeningBrowser(Pending),
    AwaitingCallback(Pending),
    ExchangingCode {
        auth: Authorization,
        client: ClientCredentials,
    },
    // the device grant (device.rs)
    AuthorizingDevice {
        auth: Authorization,
        client: ClientCredentials,
    },
    DeviceWaiting(DeviceGrant),
    DevicePolling(DeviceGrant),
    // logout (logout.rs)
    Revoking(Revocation),
    // machine grants
    ExchangingIdentity(MachineGrant),
    Signing {
        grant: MachineGrant,
        input: Vec<u8>,
    },
    MachineToken {
        authority: Authority,
        client_id: String,
        scopes: Vec<String>,
    },
    // DPoP (dpop.rs)
    /// A token request waits for its proof; then it goes out (`Proved`).
    Proving(Proved),
    /// A token request sent with a proof: its answer is DPoP's first (a
    /// nonce to keep, `use_dpop_nonce` to answer once), then `then`'s.
    Proved(Proved),
    /// A proof for a request to the MCP server.
    ProvingResource,
    /// Queued effects go out one by one, then `Then` runs.
    Draining(Then),
}

impl Phase {
    /// The input this phase waits for, for the host-bug error.
    pub fn expects(&self) -> &'static str {
        match self {
            Phase::LoadBinding
            | Phase::LoadMetadata(_)
            | Phase::LoadRegistration(_)
            | Phase::LoadTokens(_)
            | Phase::ReloadBeforeRefresh
            | Phase::ReloadAfterInvalidGrant(_)
            | Phase::LoadCachedMetadata(_)
            | Phase::LoadRegistrationForFlow(_) => "Loaded",
            Phase::Refreshing(_)
            | Phase::Proved(_)
            | Phase::FetchPrm { .. }
            | Phase::FetchMetadata { .. }
            | Phase::FetchLegacyMetadata
            | Phase::Registering(_)
            | Phase::ExchangingCode { .. }
            | Phase::AuthorizingDevice { .. }
            | Phase::DevicePolling(_)
            | Phase::Revoking(_)
            | Phase::ExchangingIdentity(_)
            | Phase::MachineToken { .. } => "Http",
            Phase::Locking { .. } => "Locked",
            Phase::Signing { .. } => "Signed",
            Phase::Proving(_) | Phase::ProvingResource => "DpopProof",
            Phase::Listening(_) => "Listening",
            Phase::Consenting(_) => "Consent",
            Phase::OpeningBrowser(_) => "Opened",
            Phase::AwaitingCallback(_) => "Callback",
            Phase::DeviceWaiting(_) => "Paused",
            Phase::Draining(_) => "Stored or Ack",
            Phase::Idle => "nothing",
        }
    }
}

/// A token request bound to a DPoP key, and the phase its answer is for.
#[derive(Debug, Clone)]
pub(super) struct Proved {
    pub req: HttpRequest,
    /// The AS's `use_dpop_nonce` was answered once already.
    pub nonce_retried: bool,
    /// Never `Proving` nor `Proved` (dpop.rs builds it from a request's phase).
    pub then: alloc::boxed::Box<Phase>,
}

/// What runs once queued effects are out.
#[derive(Debug, Clone)]
pub(super) enum Then {
    Listen(Authority),
    MachineGrant(Authority),
    ChooseClient(Authorization),
    AwaitCallback(Pending),
    /// The user has the device code: wait the interval, then poll.
    Poll(DeviceGrant),
    /// The stored grant is dead: authorize anew (or say it is required).
    Reauthorize,
    Finish(Result<Outcome, Error>),
}

impl Then {
    /// Whether the record lock is released before this runs: it is held
    /// across a refresh only, never into a new grant nor past the end.
    pub fn releases_lock(&self) -> bool {
        matches!(self, Then::Reauthorize | Then::Finish(_))
    }
}

/// What a handler decided; `Session::advance` carries it out.
pub(super) enum Next {
    /// Ask the host for `Effect`, then wait in `Phase` for its answer.
    Effect(Phase, Effect),
    /// Send these fire-and-forget effects, then go on with `Then`.
    Queue(Vec<Effect>, Then),
    /// The flow ends.
    Done(Result<Outcome, Error>),
}

impl Next {
    pub fn fail(e: Error) -> Self {
        Next::Done(Err(e))
    }
}
