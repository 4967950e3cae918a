//! Dispatch: the input a phase waits for, to the stage's handler, in flow
//! order. Anything else is the host answering out of turn.

use alloc::string::String;
use alloc::vec::Vec;

use super::Session;
use super::state::{Flow, Next, Phase};
use super::{interactive, refresh};
use crate::effect::{Effect, Event, Input};
use crate::error::Error;

impl Session {
    /// The input for the phase the flow waits in (taken out while it runs).
    pub(super) fn on_input(&mut self, f: &mut Flow, now: u64, phase: Phase, input: Input) -> Next {
        match (phase, input) {
            // A store that cannot be read is not an empty one (effect.rs).
            (_, Input::LoadFailed(message)) => Next::fail(Error::Storage { message }),
            (Phase::Draining(then), Input::Stored(r)) => {
                if let Err(message) = r {
                    f.outbox.push_front(Effect::Notify(Event::StorageWarning {
                        record: String::from("record"),
                        message,
                    }));
                }
                Next::Queue(Vec::new(), then)
            }
            (Phase::Draining(then), Input::Ack) => Next::Queue(Vec::new(), then),

            // stored records (stored.rs)
            (Phase::LoadBinding, Input::Loaded(b)) => self.loaded_binding(f, now, b.as_deref()),
            (Phase::LoadMetadata(binding), Input::Loaded(b)) => self.loaded_metadata(binding, b.as_deref()),
            (Phase::LoadRegistration(binding), Input::Loaded(b)) => self.loaded_registration(binding, b.as_deref()),
            (Phase::LoadTokens(binding), Input::Loaded(b)) => self.loaded_tokens(f, now, binding, b.as_deref()),

            // refresh (refresh.rs)
            (Phase::Locking { key }, Input::Locked(r)) => refresh::locked(f, key, r),
            (Phase::ReloadBeforeRefresh, Input::Loaded(b)) => self.reloaded_before_refresh(f, now, b.as_deref()),
            (Phase::Refreshing(refresh), Input::Http(r)) => self.refreshed(f, now, refresh, r),
            (Phase::ReloadAfterInvalidGrant(refresh), Input::Loaded(b)) => {
                self.reloaded_after_invalid_grant(f, now, refresh, b.as_deref())
            }

            // discovery (discovery.rs)
            (Phase::FetchPrm { url, candidates }, Input::Http(r)) => self.fetched_prm(url, candidates, r),
            (Phase::LoadCachedMetadata(binding), Input::Loaded(b)) => {
                self.loaded_cached_metadata(binding, b.as_deref())
            }
            (
                Phase::FetchMetadata {
                    binding,
                    url,
                    candidates,
                },
                Input::Http(r),
            ) => self.fetched_metadata(binding, url, candidates, r),
            (Phase::FetchLegacyMetadata, Input::Http(r)) => self.fetched_legacy_metadata(r),

            // interactive authorization (interactive.rs)
            (Phase::Listening(authority), Input::Listening(r)) => self.listening(f, authority, r),
            (Phase::Consenting(auth), Input::Consent(yes)) => self.consented(f, auth, yes),
            (Phase::LoadRegistrationForFlow(auth), Input::Loaded(b)) => {
                self.loaded_registration_for_flow(f, auth, b.as_deref())
            }
            (Phase::Registering(auth), Input::Http(r)) => self.registered(auth, r),
            (Phase::OpeningBrowser(pending), Input::Opened(r)) => interactive::opened(now, pending, r, &self.config),
            (Phase::AwaitingCallback(pending), Input::Callback(ev)) => self.callback(f, now, pending, ev),
            (Phase::ExchangingCode { auth, client }, Input::Http(r)) => self.exchanged_code(f, now, auth, client, r),

            // the device grant (device.rs)
            (Phase::AuthorizingDevice { auth, client }, Input::Http(r)) => self.device_authorized(now, auth, client, r),
            (Phase::DeviceWaiting(grant), Input::Paused(r)) => self.device_paused(f, now, grant, r),
            (Phase::DevicePolling(grant), Input::Http(r)) => self.device_polled(f, now, grant, r),

            // logout (logout.rs)
            (Phase::Revoking(rev), Input::Http(r)) => self.revoked(rev, r),

            // machine grants (machine.rs)
            (Phase::ExchangingIdentity(grant), Input::Http(r)) => self.exchanged_identity(f, now, grant, r),
            (Phase::Signing { grant, input }, Input::Signed(r)) => self.signed(f, now, grant, &input, r),
            (
                Phase::MachineToken {
                    authority,
                    client_id,
                    scopes,
                },
                Input::Http(r),
            ) => self.machine_token(f, now, &authority, &client_id, &scopes, r),

            // DPoP (dpop.rs): a proved request's answer is DPoP's first
            (Phase::Proving(p), Input::DpopProof(r)) => Self::proved_token_request(p, r),
            (Phase::Proved(p), Input::Http(r)) => match self.dpop_answer(f, now, p, &r) {
                Ok(next) => next,
                // `then` is never a DPoP phase: this recurses once.
                Err(then) => self.on_input(f, now, *then, Input::Http(r)),
            },
            (Phase::ProvingResource, Input::DpopProof(r)) => Self::proved_resource(r),

            (phase, _) => Next::fail(Error::UnexpectedInput {
                expected: phase.expects(),
            }),
        }
    }
}
