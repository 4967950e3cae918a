//! Stored records: read once per session (binding → AS metadata →
//! registration → tokens), then kept in memory, and read again by a call
//! for a token while none is in memory (another process may have signed
//! in); saved as they change. A new
//! grant is saved before it is handed out, so a rotated refresh token is on
//! disk before anyone uses it. Credentials never cross issuers: when the
//! binding names another issuer, everything tied to the old one is dropped
//! from memory.

use alloc::string::String;
use alloc::vec::Vec;

use super::Session;
use super::state::{Authority, Flow, Next, Phase, Then};
use crate::effect::{Effect, Outcome, Status};
use crate::records::{self, Binding, TokenRecord};
use crate::wire::metadata::AsMetadata;
use crate::wire::token::TokenSet;

pub(super) fn load(key: String) -> Effect {
    Effect::Load { key }
}

pub(super) fn save(key: String, value: Vec<u8>) -> Effect {
    Effect::Save { key, value }
}

/// The tokens stored for `b`, if they are its own.
pub(super) fn decode_stored_tokens(b: &Binding, bytes: Option<&[u8]>) -> Option<TokenSet> {
    records::decode_tokens(bytes, &b.prm.resource, &b.issuer)
}

/// The first read of a session.
pub(super) fn load_binding(server_url: &str) -> Next {
    Next::Effect(Phase::LoadBinding, load(records::binding_key(server_url)))
}

impl Session {
    pub(super) fn loaded_binding(&mut self, f: &mut Flow, now: u64, bytes: Option<&[u8]>) -> Next {
        match records::decode_binding(bytes, &self.server_url) {
            Some(binding) => {
                let key = records::metadata_key(&binding.issuer);
                Next::Effect(Phase::LoadMetadata(binding), load(key))
            }
            None => {
                self.loaded = true;
                self.dispatch(f, now)
            }
        }
    }

    // The binding read travels with the next three; it is the session's once
    // the last record is in.

    pub(super) fn loaded_metadata(&mut self, binding: Binding, bytes: Option<&[u8]>) -> Next {
        self.metadata = self.stored_metadata(bytes, &binding.issuer);
        let key = records::registration_key(&binding.issuer);
        Next::Effect(Phase::LoadRegistration(binding), load(key))
    }

    pub(super) fn loaded_registration(&mut self, binding: Binding, bytes: Option<&[u8]>) -> Next {
        self.registration = records::decode_registration(bytes, &binding.issuer);
        self.registration_loaded_for = Some(binding.issuer.clone());
        let key = binding.tokens_key();
        Next::Effect(Phase::LoadTokens(binding), load(key))
    }

    pub(super) fn loaded_tokens(&mut self, f: &mut Flow, now: u64, binding: Binding, bytes: Option<&[u8]>) -> Next {
        self.tokens = decode_stored_tokens(&binding, bytes);
        self.binding = Some(binding);
        self.loaded = true;
        self.dispatch(f, now)
    }

    /// Keep the new grant, save it, hand out the token (`advance` releases
    /// the lock after the save).
    pub(super) fn store_tokens(&mut self, f: &mut Flow, b: &Binding, mut ts: TokenSet) -> Next {
        if ts.dpop_key.is_some() {
            // `token_type: DPoP`: bound to the key this flow proved with.
            match &f.dpop_key {
                Some(k) => ts.dpop_key = Some(k.clone()),
                None => {
                    return Next::fail(crate::Error::InvalidResponse {
                        what: "token response",
                        detail: String::from("token_type is DPoP, but no DPoP proof was sent"),
                    });
                }
            }
        }
        let record = TokenRecord {
            resource: b.prm.resource.clone(),
            issuer: b.issuer.clone(),
            tokens: ts.clone(),
        };
        let effects = alloc::vec![save(b.tokens_key(), records::encode(&record))];
        let token = ts.access(self.config.expiry_skew_ms);
        self.just_issued = Some(ts.access_token.clone());
        self.tokens = Some(ts);
        Next::Queue(effects, Then::Finish(Ok(Outcome::Token(token))))
    }

    /// What discovery or the stored records established, when both halves
    /// are known.
    pub(super) fn authority(&self) -> Option<Authority> {
        Some(Authority {
            binding: self.binding.clone()?,
            metadata: self.metadata.clone()?,
        })
    }

    /// Stored AS metadata, used only if it would still be accepted today:
    /// safe endpoints, and S256 (or the configured override).
    pub(super) fn stored_metadata(&self, bytes: Option<&[u8]>, issuer: &str) -> Option<AsMetadata> {
        records::decode_metadata(bytes, issuer).filter(|m| {
            m.check_endpoints().is_ok() && (m.supports_s256() || self.config.allow_missing_s256.contains(&m.issuer))
        })
    }

    /// Records where authorization lives; when the issuer changes, everything
    /// tied to the old one (metadata, registration, tokens) is dropped from
    /// memory so no credential crosses to the new issuer.
    pub(super) fn set_binding(&mut self, binding: Binding) {
        // After `forget_binding` the registration still remembers its issuer.
        let previous = self
            .binding
            .as_ref()
            .map(|b| &b.issuer)
            .or(self.registration_loaded_for.as_ref());
        if previous != Some(&binding.issuer) {
            self.metadata = None;
            self.registration = None;
            self.registration_loaded_for = None;
            self.tokens = None;
        }
        self.binding = Some(binding);
    }

    /// The binding may be stale: discover again (metadata for the same issuer
    /// still comes from storage).
    pub(super) fn forget_binding(&mut self) {
        self.binding = None;
        self.metadata = None;
    }

    /// The AS no longer knows our dynamic client: drop it here too.
    pub(super) fn forget_registration(&mut self) -> Vec<Effect> {
        let Some(r) = self.registration.take() else {
            return Vec::new();
        };
        alloc::vec![Effect::Delete {
            key: records::registration_key(&r.issuer),
        }]
    }
}

impl Session {
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
}
