//! The state of a running flow. Each [`Phase`] names the one input it waits
//! for and owns the data only it needs: the pending authorization's PKCE
//! verifier, `state`, client and redirect URI live in
//! [`Phase::AwaitingCallback`], and are dropped with it once a code is
//! accepted. The phase changes in one place, `Session::advance` in `mod.rs`.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use crate::effect::{ConsentReason, Effect, FlowId, HttpRequest, Mode, Outcome};
use crate::error::Error;
use crate::policy::rejection::Trigger;
use crate::primitives::entropy::Entropy;
use crate::primitives::pkce::Pkce;
use crate::wire::client_auth::ClientCredentials;

/// What the caller asked for.
#[derive(Debug, Clone)]
pub(super) enum Op {
    Authorize {
        mode: Mode,
        trigger: Trigger,
    },
    Logout,
    Inspect,
    /// A DPoP proof for a request to the MCP server.
    Proof {
        method: String,
        url: String,
    },
}

/// One operation in progress (single flight: at most one per session).
pub(super) struct Flow {
    pub id: FlowId,
    pub op: Op,
    pub entropy: Entropy,
    pub phase: Phase,
    /// Fire-and-forget effects (save, delete, notify, unlock) still to go out.
    pub outbox: VecDeque<Effect>,
    /// The record lock this flow holds; released before the flow ends.
    pub held_lock: Option<String>,
    /// What a new grant asks for, as the decision set it.
    pub wanted: Wanted,
    /// Authorization attempts so far (each derives a fresh verifier and state).
    pub attempt: u8,
    /// A rejected dynamic client was registered again once already.
    pub reregistered: bool,
    /// A refresh token another process rotated was tried once already.
    pub refresh_retried: bool,
    /// The DPoP key this flow's token request is bound to (RFC 9449).
    pub dpop_key: Option<String>,
    /// The token request just sent with a proof, kept for a nonce retry.
    pub dpop_sent: Option<HttpRequest>,
    /// The AS's `use_dpop_nonce` was answered once already.
    pub dpop_nonce_retried: bool,
    /// Proofs made in this flow (each gets its own `jti`).
    pub dpop_proofs: u8,
}

impl Flow {
    pub fn mode(&self) -> Mode {
        match self.op {
            Op::Authorize { mode, .. } => mode,
            Op::Logout | Op::Inspect | Op::Proof { .. } => Mode::Silent,
        }
    }

    pub fn trigger(&self) -> Option<&Trigger> {
        match &self.op {
            Op::Authorize { trigger, .. } => Some(trigger),
            Op::Logout | Op::Inspect | Op::Proof { .. } => None,
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

    /// The URL whose answer is being read.
    pub fn current(&self) -> String {
        self.next
            .checked_sub(1)
            .and_then(|i| self.urls.get(i))
            .cloned()
            .unwrap_or_default()
    }

    pub fn reject(&mut self, why: String) {
        self.tried.push(why);
    }
}

/// An interactive authorization once the listener is up.
#[derive(Debug, Clone)]
pub(super) struct Authorization {
    /// The loopback redirect URI the listener answers on (checked).
    pub redirect_uri: String,
    /// The scopes consented to (empty: the AS's default).
    pub scopes: Vec<String>,
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

/// A machine grant's progress: (ID-JAG from the IdP,) (signed assertion,)
/// token request.
#[derive(Debug, Clone, Default)]
pub(super) struct MachineGrant {
    pub scopes: Vec<String>,
    pub id_jag: Option<String>,
    pub assertion: Option<String>,
}

/// Where a flow stands: which input it waits for, with what it needs.
#[derive(Debug, Clone)]
pub(super) enum Phase {
    /// Only while a handler runs.
    Idle,
    // stored records
    LoadBinding,
    LoadMetadata,
    LoadRegistration,
    LoadTokens,
    // refresh
    Locking {
        key: String,
    },
    ReloadBeforeRefresh,
    Refreshing {
        used: String,
    },
    ReloadAfterInvalidGrant {
        used: String,
    },
    // discovery
    FetchPrm(Candidates),
    LoadCachedMetadata {
        issuer: String,
    },
    FetchMetadata {
        issuer: String,
        candidates: Candidates,
    },
    FetchLegacyMetadata,
    // interactive authorization
    Listening,
    Consenting(Authorization),
    LoadRegistrationForFlow(Authorization),
    Registering(Authorization),
    OpeningBrowser(Pending),
    AwaitingCallback(Pending),
    ExchangingCode {
        auth: Authorization,
        client: ClientCredentials,
    },
    // machine grants
    ExchangingIdentity(MachineGrant),
    Signing {
        grant: MachineGrant,
        input: Vec<u8>,
    },
    MachineToken {
        client_id: String,
        scopes: Vec<String>,
    },
    // DPoP (dpop.rs)
    /// A token request waits for its proof, then goes out and `then` waits
    /// for the answer.
    Proving {
        req: HttpRequest,
        then: alloc::boxed::Box<Phase>,
    },
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
            | Phase::LoadMetadata
            | Phase::LoadRegistration
            | Phase::LoadTokens
            | Phase::ReloadBeforeRefresh
            | Phase::ReloadAfterInvalidGrant { .. }
            | Phase::LoadCachedMetadata { .. }
            | Phase::LoadRegistrationForFlow(_) => "Loaded",
            Phase::Refreshing { .. }
            | Phase::FetchPrm(_)
            | Phase::FetchMetadata { .. }
            | Phase::FetchLegacyMetadata
            | Phase::Registering(_)
            | Phase::ExchangingCode { .. }
            | Phase::ExchangingIdentity(_)
            | Phase::MachineToken { .. } => "Http",
            Phase::Locking { .. } => "Locked",
            Phase::Signing { .. } => "Signed",
            Phase::Proving { .. } | Phase::ProvingResource => "DpopProof",
            Phase::Listening => "Listening",
            Phase::Consenting(_) => "Consent",
            Phase::OpeningBrowser(_) => "Opened",
            Phase::AwaitingCallback(_) => "Callback",
            Phase::Draining(_) => "Stored or Ack",
            Phase::Idle => "nothing",
        }
    }
}

/// What runs once queued effects are out.
#[derive(Debug, Clone)]
pub(super) enum Then {
    Listen,
    MachineGrant,
    ChooseClient(Authorization),
    AwaitCallback(Pending),
    /// The stored grant is dead: authorize anew (or say it is required).
    Reauthorize,
    Finish(Result<Outcome, Error>),
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
