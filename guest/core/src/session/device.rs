//! The device authorization grant (RFC 8628), for a machine whose loopback
//! listener no browser can reach: the client (chosen in the spec's order,
//! `interactive.rs`) asks the device authorization endpoint for a code with
//! the same `scope` and `resource` the authorization request would carry,
//! the user is shown where to go and what to type (`Event::DeviceCode`),
//! and the token endpoint is polled:
//!
//! ```text
//!  AuthorizingDevice ─▶ notify(DeviceCode) ─▶ DeviceWaiting ─(interval)─▶ DevicePolling
//!                                                   ▲                        │
//!                                                   └── pending / slow_down ─┤
//!      tokens ─▶ save ─▶ Done    access_denied ─▶ Declined (latch)    expired_token, deadline ─▶ TimedOut
//! ```
//!
//! The wait ends at the code's expiry or the user timeout, whichever is
//! first; the user can cancel any pause (the decline latch, as for the
//! browser). A poll answered `authorization_pending` forever ends there.

use alloc::string::String;

use super::Session;
use super::interactive::may_register_again;
use super::state::{Authorization, Channel, DeviceGrant, Flow, Next, Phase, Then};
use crate::effect::{DeviceCode, Effect, Event, HttpResponse, TransportError};
use crate::error::Error;
use crate::primitives::scope;
use crate::wire::client_auth::ClientCredentials;
use crate::wire::device_authorization::{self, PollAnswer};
use crate::wire::token;

/// Polls at most this many times, however the host waits (at a 1 s
/// minimum interval this is past any code's life).
const MAX_POLLS: u32 = 3_600;

/// The next pause before a poll, or the end when the time is up.
pub(super) fn wait_to_poll(now: u64, grant: DeviceGrant) -> Next {
    let remaining = grant.deadline.saturating_sub(now);
    if remaining == 0 || grant.polls >= MAX_POLLS {
        return Next::fail(Error::TimedOut);
    }
    let ms = grant.interval_ms.min(remaining);
    Next::Effect(Phase::DeviceWaiting(grant), Effect::Pause { ms })
}

impl Session {
    /// RFC 8628 §3.1: ask for a device code for this client.
    pub(super) fn authorize_device(&mut self, auth: Authorization, client: ClientCredentials) -> Next {
        let Channel::Device(endpoint) = &auth.channel else {
            return Next::fail(Error::Internal {
                what: "a device authorization without its endpoint",
            });
        };
        let scope = Some(scope::join(&auth.scopes)).filter(|s| !s.is_empty());
        let resource = &auth.authority.binding.prm.resource;
        let req = device_authorization::device_authorization_request(endpoint, &client, scope.as_deref(), resource);
        Next::Effect(Phase::AuthorizingDevice { auth, client }, Effect::Http(req))
    }

    /// RFC 8628 §3.2: show the code, then wait the interval before the
    /// first poll.
    pub(super) fn device_authorized(
        &mut self,
        now: u64,
        auth: Authorization,
        client: ClientCredentials,
        r: Result<HttpResponse, TransportError>,
    ) -> Next {
        let resp = match r {
            Ok(resp) => resp,
            Err(e) => {
                let url = match &auth.channel {
                    Channel::Device(endpoint) => endpoint.as_str(),
                    Channel::Loopback(_) => "the device authorization endpoint",
                };
                return Next::fail(super::discovery::transport(url, &e.message));
            }
        };
        let device = match device_authorization::parse_device_authorization(&resp) {
            Ok(d) => d,
            // A dynamic client the AS forgot: register again, once.
            Err(Error::AuthorizationFailed { error, .. }) if may_register_again(&error, &client, &auth) => {
                return self.register_again(auth);
            }
            Err(e) => return Next::fail(e),
        };
        let deadline = now.saturating_add(device.expires_in_ms.min(self.config.callback_timeout_ms));
        let show = Effect::Notify(Event::DeviceCode(DeviceCode {
            verification_uri: device.verification_uri.clone(),
            verification_uri_complete: device.verification_uri_complete.clone(),
            user_code: device.user_code.clone(),
            expires_in_s: device.expires_in_ms / 1000,
        }));
        let grant = DeviceGrant {
            auth,
            client,
            interval_ms: device.interval_ms,
            device,
            deadline,
            polls: 0,
        };
        Next::Queue(alloc::vec![show], Then::Poll(grant))
    }

    /// The pause is over (or the user cancelled it): poll once.
    pub(super) fn device_paused(
        &mut self,
        f: &mut Flow,
        now: u64,
        mut grant: DeviceGrant,
        r: Result<(), String>,
    ) -> Next {
        if r.is_err() {
            self.latch.decline();
            return Next::fail(Error::Declined);
        }
        if now >= grant.deadline {
            return Next::fail(Error::TimedOut);
        }
        grant.polls += 1;
        let (b, md) = (&grant.auth.authority.binding, &grant.auth.authority.metadata);
        let req = device_authorization::poll_request(
            &md.token_endpoint,
            &grant.device.device_code,
            &b.prm.resource,
            &grant.client,
        );
        f.dpop_key = self.dpop_key_for_new_grant(&grant.auth.authority);
        self.send_token_request(f, now, req, Phase::DevicePolling(grant))
    }

    /// RFC 8628 §3.5: what the poll's answer leads to.
    pub(super) fn device_polled(
        &mut self,
        f: &mut Flow,
        now: u64,
        mut grant: DeviceGrant,
        r: Result<HttpResponse, TransportError>,
    ) -> Next {
        let resp = match r {
            Ok(resp) => resp,
            Err(e) => return Next::fail(super::refresh::token_transport(&grant.auth.authority, &e.message)),
        };
        match device_authorization::poll_answer(&resp) {
            PollAnswer::Tokens => {
                let requested = Some(scope::join(&grant.auth.scopes)).filter(|s| !s.is_empty());
                match token::parse_token_response(&resp, now, &grant.client.client_id, requested.as_deref(), None) {
                    Ok(ts) => {
                        self.refreshed_after_401 = false;
                        let binding = grant.auth.authority.binding.clone();
                        self.store_tokens(f, &binding, ts)
                    }
                    Err(e) => Next::fail(e),
                }
            }
            PollAnswer::Pending => wait_to_poll(now, grant),
            PollAnswer::SlowDown => {
                grant.interval_ms = device_authorization::slowed(grant.interval_ms);
                wait_to_poll(now, grant)
            }
            PollAnswer::Denied => {
                self.latch.decline();
                Next::fail(Error::Declined)
            }
            PollAnswer::Expired => Next::fail(Error::TimedOut),
            PollAnswer::Failed(e) => Next::fail(e),
        }
    }
}
