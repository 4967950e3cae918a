//! Refresh (OAuth 2.1 §4.3) under the record lock: lock, re-read (another
//! process may have refreshed meanwhile: its token and its rotated refresh
//! token win), refresh with the same `resource` as the original grant
//! (RFC 8707 §2.2, verbatim from the stored binding), save the rotated token,
//! unlock. `invalid_grant` re-reads storage once for a token another process
//! rotated (RFC 6749 §10.4); then the grant is dead and a new one is needed.

use alloc::string::String;
use alloc::vec::Vec;

use super::Session;
use super::state::{Authority, Flow, Next, Op, Phase, Refresh, Then};
use super::stored::{decode_stored_tokens, load};
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
        if let Some(stored) = self.binding.as_ref().and_then(|b| decode_stored_tokens(b, bytes)) {
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
        self.send_refresh(f, now, false)
    }

    /// Sends the stored refresh token. With no metadata, refresh token or
    /// client at hand, the grant cannot be refreshed: a new one is needed.
    pub(super) fn send_refresh(&mut self, f: &mut Flow, now: u64, retried: bool) -> Next {
        let (Some(authority), Some(t)) = (self.authority(), &self.tokens) else {
            return Next::Queue(Vec::new(), Then::Reauthorize);
        };
        let (Some(used), Some(client)) = (t.refresh_token.clone(), self.client_for(&t.client_id)) else {
            self.tokens = None;
            return Next::Queue(Vec::new(), Then::Reauthorize);
        };
        let (md, b) = (&authority.metadata, &authority.binding);
        let req = token::refresh_request(&md.token_endpoint, &used, &b.prm.resource, &client);
        // A bound grant's refresh token is bound too (public clients, RFC 9449 §5).
        f.dpop_key = t.dpop_key.clone().filter(|k| !k.is_empty());
        let refresh = Refresh {
            used,
            client_id: t.client_id.clone(),
            scope: t.scope.clone(),
            retried,
            authority,
        };
        self.send_token_request(f, now, req, Phase::Refreshing(refresh))
    }

    pub(super) fn refreshed(
        &mut self,
        f: &mut Flow,
        now: u64,
        refresh: Refresh,
        r: Result<HttpResponse, TransportError>,
    ) -> Next {
        let resp = match r {
            Ok(resp) => resp,
            Err(e) => return Next::fail(token_transport(&refresh.authority, &e.message)),
        };
        let (client_id, scope, used) = (&refresh.client_id, refresh.scope.as_deref(), refresh.used.as_str());
        match token::parse_token_response(&resp, now, client_id, scope, Some(used)) {
            Ok(ts) => self.store_tokens(f, &refresh.authority.binding, ts),
            Err(Error::TokenRequestFailed { error: Some(e), .. }) if e == "invalid_grant" => {
                let key = refresh.authority.binding.tokens_key();
                Next::Effect(Phase::ReloadAfterInvalidGrant(refresh), load(key))
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
                Next::Queue(Vec::new(), Then::Reauthorize)
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
        refresh: Refresh,
        bytes: Option<&[u8]>,
    ) -> Next {
        if let Some(stored) = decode_stored_tokens(&refresh.authority.binding, bytes)
            && stored.refresh_token.as_deref().is_some_and(|rt| rt != refresh.used)
            && !refresh.retried
        {
            let fresh = stored.is_fresh(now, self.config.expiry_skew_ms)
                && f.rejected_token() != Some(stored.access_token.as_str());
            self.tokens = Some(stored);
            if fresh {
                return self.finish_with_token();
            }
            return self.send_refresh(f, now, true);
        }
        self.tokens = None;
        Next::Queue(Vec::new(), Then::Reauthorize)
    }

    /// The stored grant is dead (the lock is released by now). After a 401
    /// the binding may be stale too, so discovery starts over; otherwise go
    /// straight to a new authorization.
    pub(super) fn reauthorize(&mut self, f: &mut Flow, now: u64) -> Next {
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
    pub(super) fn client_for(&self, client_id: &str) -> Option<ClientCredentials> {
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
}

/// The token endpoint could not be reached.
pub(super) fn token_transport(authority: &Authority, message: &str) -> Error {
    super::discovery::transport(&authority.metadata.token_endpoint, message)
}
