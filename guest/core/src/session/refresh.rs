//! Refresh (OAuth 2.1 §4.3) under the record lock: lock, re-read (another
//! process may have refreshed meanwhile: its token and its rotated refresh
//! token win), refresh with the same `resource` as the original grant
//! (RFC 8707 §2.2, verbatim from the stored binding), save the rotated token,
//! unlock. `invalid_grant` re-reads storage once for a token another process
//! rotated (RFC 6749 §10.4); then the grant is dead and a new one is needed.

use alloc::string::String;

use super::Session;
use super::state::{Flow, Next, Op, Phase, Then};
use super::stored::load;
use crate::effect::{Effect, HttpResponse, TransportError};
use crate::error::Error;
use crate::policy::rejection::Trigger;
use crate::wire::client_auth::{ClientCredentials, ClientSource};
use crate::wire::token;

pub(super) fn start(key: String) -> Next {
    Next::Effect(Phase::Locking { key: key.clone() }, Effect::Lock { key })
}

/// Without the lock (held past the host's deadline, or a store that is
/// down) the refresh does not happen: another process may be spending the
/// same refresh token.
pub(super) fn locked(f: &mut Flow, key: String, r: Result<(), String>) -> Next {
    if let Err(message) = r {
        return Next::fail(Error::Storage { message });
    }
    f.held_lock = Some(key.clone());
    Next::Effect(Phase::ReloadBeforeRefresh, load(key))
}

impl Session {
    pub(super) fn reloaded_before_refresh(&mut self, f: &mut Flow, now: u64, bytes: Option<&[u8]>) -> Next {
        if let Some(stored) = self.decode_stored_tokens(bytes) {
            let current = self.tokens.as_ref().map(|t| t.access_token.as_str());
            if current != Some(stored.access_token.as_str()) {
                // Another process refreshed meanwhile: its token (and its
                // rotated refresh token) supersede ours.
                let usable = stored.is_fresh(now, self.config.expiry_skew_ms)
                    && f.rejected_token() != Some(stored.access_token.as_str());
                self.tokens = Some(stored);
                if usable {
                    return self.finish_with_token();
                }
            }
        }
        self.send_refresh(f, now)
    }

    pub(super) fn send_refresh(&mut self, f: &mut Flow, now: u64) -> Next {
        let (Some(b), Some(md), Some(t)) = (&self.binding, &self.metadata, &self.tokens) else {
            return self.reauthorize(f, now);
        };
        let (Some(rt), Some(client)) = (t.refresh_token.clone(), self.client_for(&t.client_id)) else {
            self.tokens = None;
            return self.reauthorize(f, now);
        };
        let req = token::refresh_request(&md.token_endpoint, &rt, &b.prm.resource, &client);
        // A bound grant's refresh token is bound too (public clients, RFC 9449 §5).
        f.dpop_key = t.dpop_key.clone().filter(|k| !k.is_empty());
        self.send_token_request(f, now, req, Phase::Refreshing { used: rt })
    }

    pub(super) fn refreshed(
        &mut self,
        f: &mut Flow,
        now: u64,
        used: String,
        r: Result<HttpResponse, TransportError>,
    ) -> Next {
        let resp = match r {
            Ok(resp) => resp,
            Err(e) => return Next::fail(self.token_transport(&e.message)),
        };
        let Some(t) = &self.tokens else {
            return Next::fail(Error::UnexpectedInput { expected: "a token" });
        };
        let (client_id, scope) = (t.client_id.clone(), t.scope.clone());
        match token::parse_token_response(&resp, now, &client_id, scope.as_deref(), Some(&used)) {
            Ok(ts) => self.store_tokens(f, ts),
            Err(Error::TokenRequestFailed { error: Some(e), .. }) if e == "invalid_grant" => {
                let key = self.tokens_key();
                Next::Effect(Phase::ReloadAfterInvalidGrant { used }, load(key))
            }
            Err(Error::TokenRequestFailed { error: Some(e), .. }) if e == "invalid_client" => {
                // The registration is gone at the AS: drop it and the grant
                // made with it, then register and authorize anew.
                self.tokens = None;
                Next::Queue(self.forget_registration(), Then::Reauthorize)
            }
            // Any other OAuth refusal (4xx with an error code): the grant is
            // unusable. A 5xx or a bare error is transient: keep the grant.
            Err(Error::TokenRequestFailed {
                status, error: Some(_), ..
            }) if (400..500).contains(&status) => {
                self.tokens = None;
                self.reauthorize(f, now)
            }
            Err(e) => Next::fail(e),
        }
    }

    /// RFC 6749 §10.4 rotation: another process may hold the newer refresh
    /// token. Use it once; else the grant is dead.
    pub(super) fn reloaded_after_invalid_grant(
        &mut self,
        f: &mut Flow,
        now: u64,
        used: &str,
        bytes: Option<&[u8]>,
    ) -> Next {
        if let Some(stored) = self.decode_stored_tokens(bytes)
            && stored.refresh_token.as_deref().is_some_and(|rt| rt != used)
            && !f.refresh_retried
        {
            f.refresh_retried = true;
            let fresh = stored.is_fresh(now, self.config.expiry_skew_ms)
                && f.rejected_token() != Some(stored.access_token.as_str());
            self.tokens = Some(stored);
            if fresh {
                return self.finish_with_token();
            }
            return self.send_refresh(f, now);
        }
        self.tokens = None;
        self.reauthorize(f, now)
    }

    /// The stored grant is dead. After a 401 the binding may be stale too, so
    /// discovery starts over; otherwise go straight to a new authorization.
    pub(super) fn reauthorize(&mut self, f: &mut Flow, now: u64) -> Next {
        if let Some(key) = f.held_lock.take() {
            return Next::Queue(alloc::vec![Effect::Unlock { key }], Then::Reauthorize);
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
        f.wanted.reason = crate::effect::ConsentReason::Reauthorize;
        self.new_grant(f, now)
    }

    /// The client a stored grant was issued to, if it is still at hand.
    fn client_for(&self, client_id: &str) -> Option<ClientCredentials> {
        let md = self.metadata.as_ref()?;
        let supported = md.token_endpoint_auth_methods_supported.as_deref();
        if self.config.client_id.as_deref() == Some(client_id) {
            return Some(ClientCredentials::new(
                ClientSource::PreRegistered,
                client_id,
                self.config.client_secret.as_deref(),
                None,
                supported,
            ));
        }
        if self.config.client_metadata_url.as_deref() == Some(client_id) {
            return Some(ClientCredentials::new(
                ClientSource::MetadataDocument,
                client_id,
                None,
                None,
                supported,
            ));
        }
        let r = self.registration.as_ref().filter(|r| r.client_id == client_id)?;
        Some(ClientCredentials::new(
            ClientSource::Dynamic,
            &r.client_id,
            r.client_secret.as_deref(),
            r.token_endpoint_auth_method.as_deref(),
            supported,
        ))
    }

    pub(super) fn token_transport(&self, message: &str) -> Error {
        let url = self.metadata.as_ref().map(|m| m.token_endpoint.as_str()).unwrap_or("");
        super::discovery::transport(url, message)
    }
}
