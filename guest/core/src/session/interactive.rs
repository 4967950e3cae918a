//! The interactive authorization (OAuth 2.1 §4.1): listen on loopback,
//! ask consent, pick the client identity in the spec's order (pre-registered
//! → Client ID Metadata Document → the stored or a new dynamic registration),
//! open the browser, wait for the redirect (state, then iss, then the code:
//! `wire::authorization_response`), exchange the code with the PKCE verifier.
//! A decline, `access_denied` or a cancelled wait sets the decline latch.

use alloc::string::String;

use super::Session;
use super::state::{Authority, Authorization, Channel, Flow, Next, Pending, Phase, Then};
use super::stored::{load, save};
use crate::config::Config;
use crate::effect::{CallbackEvent, ConsentRequest, Effect, Event, HttpResponse, TransportError};
use crate::error::Error;
use crate::primitives::pkce::Pkce;
use crate::primitives::scope;
use crate::primitives::url_safety::{check_loopback_redirect, check_url};
use crate::records;
use crate::wire::authorization_request::AuthorizationRequest;
use crate::wire::authorization_response::{self, Verdict};
use crate::wire::callback_page::{self, PageOutcome};
use crate::wire::client_auth::{ClientCredentials, ClientSource};
use crate::wire::registration;
use crate::wire::token::{self, CodeExchange};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Whether the `n`th rejected callback is reported: the first, then at each
/// power of two (1, 2, 4, 8, ...), so a flood costs a log line per doubling.
/// Junk never ends the wait: only the right `state`, a cancel or the
/// deadline do (an attacker who can reach the loopback port must not be able
/// to make every sign-in fail).
fn report_rejection(n: u32) -> bool {
    n.is_power_of_two()
}

/// The browser is out (or could not open: the URL was shown): wait.
pub(super) fn opened(now: u64, mut pending: Pending, r: Result<(), String>, config: &Config) -> Next {
    pending.deadline = now.saturating_add(config.callback_timeout_ms);
    match r {
        Ok(()) => await_callback(now, pending),
        Err(reason) => {
            let notice = Effect::Notify(Event::BrowserOpenFailed {
                url: pending.url.clone(),
                reason,
            });
            Next::Queue(alloc::vec![notice], Then::AwaitCallback(pending))
        }
    }
}

pub(super) fn await_callback(now: u64, pending: Pending) -> Next {
    let remaining = pending.deadline.saturating_sub(now);
    if remaining == 0 {
        return Next::fail(Error::TimedOut);
    }
    Next::Effect(
        Phase::AwaitingCallback(pending),
        Effect::AwaitCallback { timeout_ms: remaining },
    )
}

impl Session {
    /// A user grant starts: the device grant when the host asked for it and
    /// the AS offers it (no listener then), else the loopback listener.
    pub(super) fn start_user_grant(&mut self, f: &mut Flow, authority: Authority) -> Next {
        if self.config.device_grant
            && let Some(endpoint) = authority.metadata.device_authorization_endpoint.clone()
        {
            if let Err(e) = check_url(&endpoint, "device_authorization_endpoint") {
                return Next::fail(e);
            }
            return self.ask_consent(f, authority, Channel::Device(endpoint));
        }
        let port = self.config.callback_port;
        Next::Effect(Phase::Listening(authority), Effect::Listen { port })
    }

    pub(super) fn listening(&mut self, f: &mut Flow, authority: Authority, r: Result<String, String>) -> Next {
        let redirect_uri = match r {
            Ok(uri) => uri,
            Err(message) => return Next::fail(Error::CallbackListener { message }),
        };
        if let Err(e) = check_loopback_redirect(&redirect_uri) {
            return Next::fail(e);
        }
        self.ask_consent(f, authority, Channel::Loopback(redirect_uri))
    }

    /// Consent comes before any registration, browser or device code.
    fn ask_consent(&mut self, f: &mut Flow, authority: Authority, channel: Channel) -> Next {
        let (b, md) = (&authority.binding, &authority.metadata);
        let scopes = match &f.wanted.scopes {
            Some(s) => s.clone(),
            None => scope::select(
                self.config.scope.as_deref(),
                f.wanted.challenge_scope.as_deref(),
                b.prm.scopes_supported.as_deref(),
                md.scopes_supported.as_deref(),
                self.config.request_offline_access,
            ),
        };
        let ask = ConsentRequest {
            server_url: self.server_url.clone(),
            issuer: b.issuer.clone(),
            scopes: scopes.clone(),
            reason: f.wanted.reason,
        };
        let auth = Authorization {
            authority,
            channel,
            scopes,
            reregistered: false,
        };
        Next::Effect(Phase::Consenting(auth), Effect::Consent(ask))
    }

    pub(super) fn consented(&mut self, f: &mut Flow, auth: Authorization, yes: bool) -> Next {
        if yes {
            self.choose_client(f, auth)
        } else {
            self.latch.decline();
            Next::fail(Error::Declined)
        }
    }

    /// Client identity in the spec's priority order.
    pub(super) fn choose_client(&mut self, f: &mut Flow, auth: Authorization) -> Next {
        let (b, md) = (&auth.authority.binding, &auth.authority.metadata);
        let issuer = b.issuer.clone();
        let supported = md.token_endpoint_auth_methods_supported.as_deref();
        let client = if let Some(id) = &self.config.client_id {
            if let Some(ci) = &self.config.client_issuer
                && *ci != issuer
            {
                return Next::fail(Error::ClientIssuerMismatch {
                    configured: ci.clone(),
                    actual: issuer,
                });
            }
            let secret = self.config.client_secret.as_deref();
            ClientCredentials::new(ClientSource::PreRegistered, id, secret, None, supported)
        } else if let (Some(url), Some(true)) = (
            &self.config.client_metadata_url,
            md.client_id_metadata_document_supported,
        ) {
            ClientCredentials::new(ClientSource::MetadataDocument, url, None, None, supported)
        } else if self.registration_loaded_for.as_deref() != Some(issuer.as_str()) {
            let key = records::registration_key(&issuer);
            return Next::Effect(Phase::LoadRegistrationForFlow(auth), load(key));
        } else if let Some(r) = self
            .registration
            .as_ref()
            .filter(|r| r.usable_for(&issuer, auth.redirect_uri()))
        {
            ClientCredentials::new(
                ClientSource::Dynamic,
                &r.client_id,
                r.client_secret.as_deref(),
                r.token_endpoint_auth_method.as_deref(),
                supported,
            )
        } else if let Some(endpoint) = &md.registration_endpoint {
            let req = registration::registration_request(endpoint, md, &self.config.client_name, auth.redirect_uri());
            return Next::Effect(Phase::Registering(auth), Effect::Http(req));
        } else {
            return Next::fail(Error::NoClientIdentity {
                offers: registration::offers(md, self.config.client_metadata_url.is_some()),
                issuer,
            });
        };
        match auth.channel {
            Channel::Loopback(_) => self.open_browser(f, auth, client),
            Channel::Device(_) => self.authorize_device(auth, client),
        }
    }

    pub(super) fn loaded_registration_for_flow(
        &mut self,
        f: &mut Flow,
        auth: Authorization,
        bytes: Option<&[u8]>,
    ) -> Next {
        let issuer = &auth.authority.binding.issuer;
        self.registration = records::decode_registration(bytes, issuer);
        self.registration_loaded_for = Some(issuer.clone());
        self.choose_client(f, auth)
    }

    pub(super) fn registered(&mut self, auth: Authorization, r: Result<HttpResponse, TransportError>) -> Next {
        let md = &auth.authority.metadata;
        let resp = match r {
            Ok(resp) => resp,
            Err(e) => {
                // Registering is entered only with an endpoint (choose_client).
                let url = md
                    .registration_endpoint
                    .as_deref()
                    .unwrap_or("the registration endpoint");
                return Next::fail(super::discovery::transport(url, &e.message));
            }
        };
        let issuer = &auth.authority.binding.issuer;
        match registration::parse_registration(&resp, issuer, auth.redirect_uri()) {
            Ok(reg) => {
                let save = save(records::registration_key(&reg.issuer), records::encode(&reg));
                self.registration = Some(reg);
                Next::Queue(alloc::vec![save], Then::ChooseClient(auth))
            }
            Err(e) => Next::fail(e),
        }
    }

    /// Builds the authorization URL from validated parts only and opens it.
    fn open_browser(&mut self, f: &mut Flow, auth: Authorization, client: ClientCredentials) -> Next {
        let (b, md) = (&auth.authority.binding, &auth.authority.metadata);
        let Some(redirect_uri) = auth.redirect_uri() else {
            return Next::fail(Error::Internal {
                what: "a browser opened without a redirect URI",
            });
        };
        let endpoint = match check_url(&md.authorization_endpoint, "authorization_endpoint") {
            Ok(u) => u,
            Err(e) => return Next::fail(e),
        };
        let pkce = Pkce::from_entropy(&f.entropy.derive("pkce", f.attempt));
        let state = URL_SAFE_NO_PAD.encode(f.entropy.derive("state", f.attempt));
        f.attempt = f.attempt.wrapping_add(1);
        let scope = Some(scope::join(&auth.scopes)).filter(|s| !s.is_empty());
        let url = AuthorizationRequest {
            endpoint: &endpoint,
            client_id: &client.client_id,
            redirect_uri,
            code_challenge: pkce.challenge(),
            state: &state,
            resource: &b.prm.resource,
            scope: scope.as_deref(),
            extra: &self.config.authorize_params,
        }
        .url();
        let effect = Effect::OpenBrowser { url: url.clone() };
        let pending = Pending {
            auth,
            client,
            pkce,
            state,
            url,
            deadline: 0,
            rejected: 0,
        };
        Next::Effect(Phase::OpeningBrowser(pending), effect)
    }

    pub(super) fn callback(&mut self, f: &mut Flow, now: u64, mut pending: Pending, ev: CallbackEvent) -> Next {
        let query = match ev {
            CallbackEvent::Redirect { query } => query,
            CallbackEvent::TimedOut => return Next::fail(Error::TimedOut),
            CallbackEvent::Cancelled => {
                self.latch.decline();
                return Next::fail(Error::Declined);
            }
        };
        let (b, md) = (&pending.auth.authority.binding, &pending.auth.authority.metadata);
        let iss_supported = md.authorization_response_iss_parameter_supported == Some(true);
        let verdict = authorization_response::check(&query, &pending.state, &b.issuer, iss_supported);
        // This sign-in's redirect: its browser tab gets the outcome's page
        // once there is one (`Session::advance`).
        f.browser_waiting = !matches!(verdict, Verdict::Rejected(_));
        match verdict {
            Verdict::Rejected(reason) => {
                pending.rejected = pending.rejected.saturating_add(1);
                let mut effects = alloc::vec![Effect::Respond(callback_page::render(PageOutcome::Ignored))];
                if report_rejection(pending.rejected) {
                    let reason = match pending.rejected {
                        1 => reason,
                        n => alloc::format!("{reason} ({n} such requests so far)"),
                    };
                    effects.push(Effect::Notify(Event::CallbackRejected { reason }));
                }
                Next::Queue(effects, Then::AwaitCallback(pending))
            }
            Verdict::IssMismatch => Next::fail(Error::IssMismatch {
                expected: b.issuer.clone(),
            }),
            Verdict::Denied => {
                self.latch.decline();
                Next::fail(Error::Declined)
            }
            Verdict::Failed { error, description } => Next::fail(Error::AuthorizationFailed { error, description }),
            Verdict::Code(code) => {
                // `state` is single use: it goes with `pending` here.
                let req = token::code_request(&CodeExchange {
                    token_endpoint: &md.token_endpoint,
                    code: &code,
                    redirect_uri: pending.auth.redirect_uri().unwrap_or_default(),
                    verifier: pending.pkce.verifier(),
                    resource: &b.prm.resource,
                    client: &pending.client,
                });
                f.dpop_key = self.dpop_key_for_new_grant(&pending.auth.authority);
                let Pending { auth, client, .. } = pending;
                self.send_token_request(f, now, req, Phase::ExchangingCode { auth, client })
            }
        }
    }

    pub(super) fn exchanged_code(
        &mut self,
        f: &mut Flow,
        now: u64,
        auth: Authorization,
        client: ClientCredentials,
        r: Result<HttpResponse, TransportError>,
    ) -> Next {
        let resp = match r {
            Ok(resp) => resp,
            Err(e) => return Next::fail(super::refresh::token_transport(&auth.authority, &e.message)),
        };
        let requested = Some(scope::join(&auth.scopes)).filter(|s| !s.is_empty());
        match token::parse_token_response(&resp, now, &client.client_id, requested.as_deref(), None) {
            Ok(ts) => {
                self.refreshed_after_401 = false;
                self.store_tokens(f, &auth.authority.binding, ts)
            }
            Err(Error::TokenRequestFailed { error: Some(e), .. }) if may_register_again(&e, &client, &auth) => {
                self.register_again(auth)
            }
            Err(e) => Next::fail(e),
        }
    }

    /// The AS no longer knows our dynamic client: forget it and register
    /// again (once per flow: `may_register_again`).
    pub(super) fn register_again(&mut self, auth: Authorization) -> Next {
        let auth = Authorization {
            reregistered: true,
            ..auth
        };
        Next::Queue(self.forget_registration(), Then::ChooseClient(auth))
    }
}

/// An `invalid_client` to a dynamic client not registered again yet in
/// this flow: the AS forgot it (a restart, a cleanup).
pub(super) fn may_register_again(error: &str, client: &ClientCredentials, auth: &Authorization) -> bool {
    error == "invalid_client" && client.source == ClientSource::Dynamic && !auth.reregistered
}
