//! Machine grants: client credentials (OAuth 2.1 §4.2, SEP-1046), the
//! enterprise identity assertion (SEP-990: RFC 8693 exchange at the IdP, then
//! the RFC 7523 jwt-bearer grant) and workload identity federation (SEP-1933:
//! the workload's own JWT in the jwt-bearer grant). A failed grant is an
//! error, never retried nor swapped for another grant. No user, no browser, no latch; allowed in
//! silent mode; repeated (not refreshed) when the token expires. A
//! `private_key_jwt` assertion is signed by the host (`Effect::Sign`).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::Session;
use super::state::{Authority, Flow, MachineGrant, Next, Phase};
use crate::config::Grant;
use crate::effect::{Effect, HttpResponse, TransportError};
use crate::error::Error;
use crate::primitives::scope;
use crate::wire::client_auth::{ClientCredentials, ClientSource};
use crate::wire::{grants, token};

impl Session {
    /// The next request of a machine grant, given what it has so far.
    pub(super) fn machine_grant(&mut self, f: &mut Flow, now: u64, mut g: MachineGrant) -> Next {
        let (b, md) = (&g.authority.binding, &g.authority.metadata);
        let Some(client_id) = self.config.client_id.clone() else {
            return Next::fail(Error::InvalidConfig {
                reason: String::from("a machine grant needs a pre-registered client id"),
            });
        };
        if g.scopes.is_empty() {
            g.scopes = f.wanted.scopes.clone().unwrap_or_else(|| {
                scope::select(
                    self.config.scope.as_deref(),
                    f.wanted.challenge_scope.as_deref(),
                    b.prm.scopes_supported.as_deref(),
                    md.scopes_supported.as_deref(),
                    false,
                )
            });
        }
        let scope = Some(scope::join(&g.scopes)).filter(|s| !s.is_empty());
        let resource = b.prm.resource.clone();
        if let Grant::IdentityAssertion {
            idp_token_endpoint,
            id_token,
            idp_client_id,
        } = &self.config.grant
            && g.id_jag.is_none()
        {
            let req = grants::token_exchange_request(
                idp_token_endpoint,
                id_token,
                &b.issuer,
                &resource,
                scope.as_deref(),
                idp_client_id.as_deref(),
            );
            return Next::Effect(Phase::ExchangingIdentity(g), Effect::Http(req));
        }
        if self.config.private_key_jwt && g.assertion.is_none() {
            let jti = f.entropy.derive("jti", f.attempt);
            let input = grants::assertion_signing_input(&client_id, &b.issuer, now, &jti);
            return Next::Effect(
                Phase::Signing {
                    grant: g,
                    input: input.clone(),
                },
                Effect::Sign { input },
            );
        }
        let client = ClientCredentials::new(
            ClientSource::PreRegistered,
            &client_id,
            self.config.client_secret.as_deref(),
            None,
            md.token_endpoint_auth_methods_supported.as_deref(),
        );
        let auth = grants::client_auth(&client, g.assertion.as_deref());
        let bearer_assertion = match (&g.id_jag, &self.config.grant) {
            (Some(jag), _) => Some(jag.as_str()),
            (None, Grant::WorkloadIdentity { assertion }) => Some(assertion.as_str()),
            _ => None,
        };
        let req = match bearer_assertion {
            Some(a) => grants::jwt_bearer_request(&md.token_endpoint, a, &resource, scope.as_deref(), auth),
            None => grants::client_credentials_request(&md.token_endpoint, &resource, scope.as_deref(), auth),
        };
        f.dpop_key = self.dpop_key_for_new_grant(&g.authority);
        let then = Phase::MachineToken {
            authority: g.authority,
            client_id,
            scopes: g.scopes,
        };
        self.send_token_request(f, now, req, then)
    }

    pub(super) fn exchanged_identity(
        &mut self,
        f: &mut Flow,
        now: u64,
        mut g: MachineGrant,
        r: Result<HttpResponse, TransportError>,
    ) -> Next {
        let resp = match r {
            Ok(resp) => resp,
            Err(e) => {
                let url = match &self.config.grant {
                    Grant::IdentityAssertion { idp_token_endpoint, .. } => idp_token_endpoint.clone(),
                    _ => String::new(),
                };
                return Next::fail(super::discovery::transport(&url, &e.message));
            }
        };
        match grants::parse_token_exchange(&resp) {
            Ok(jag) => {
                g.id_jag = Some(jag);
                self.machine_grant(f, now, g)
            }
            Err(e) => Next::fail(e),
        }
    }

    pub(super) fn signed(
        &mut self,
        f: &mut Flow,
        now: u64,
        mut g: MachineGrant,
        input: &[u8],
        r: Result<Vec<u8>, String>,
    ) -> Next {
        let sig = match r {
            Ok(sig) => sig,
            Err(m) => {
                return Next::fail(Error::InvalidConfig {
                    reason: format!("the host could not sign the client assertion: {m}"),
                });
            }
        };
        match grants::finish_assertion(input, &sig) {
            Ok(a) => {
                g.assertion = Some(a);
                self.machine_grant(f, now, g)
            }
            Err(e) => Next::fail(e),
        }
    }

    pub(super) fn machine_token(
        &mut self,
        f: &mut Flow,
        now: u64,
        authority: &Authority,
        client_id: &str,
        scopes: &[String],
        r: Result<HttpResponse, TransportError>,
    ) -> Next {
        let resp = match r {
            Ok(resp) => resp,
            Err(e) => return Next::fail(super::refresh::token_transport(authority, &e.message)),
        };
        let requested = Some(scope::join(scopes)).filter(|s| !s.is_empty());
        match token::parse_token_response(&resp, now, client_id, requested.as_deref(), None) {
            Ok(ts) => self.store_tokens(f, &authority.binding, ts),
            Err(e) => Next::fail(e),
        }
    }
}
