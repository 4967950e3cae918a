//! Discovery, for a new grant: the protected resource metadata (RFC 9728:
//! the challenge's URL, then the path-aware and root well-known URLs), the
//! issuer picked from it, that issuer's metadata (RFC 8414 / OIDC in the
//! spec's order, stored copy first), or, with no PRM anywhere, the 2025-03-26
//! path. Validated metadata must offer S256; binding and metadata are saved.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::Session;
use super::state::{Authority, Candidates, Flow, MachineGrant, Next, Phase, Then};
use super::stored::{load, save};
use crate::effect::{Effect, Event, HttpRequest, HttpResponse, TransportError};
use crate::error::Error;
use crate::policy::decline_latch::may_involve_user;
use crate::primitives::url_safety::check_url;
use crate::records::{self, Binding};
use crate::wire::metadata::{self, AsMetadata, AsRejection, PrmRejection, ResourceMetadata};

pub(super) fn transport(url: &str, message: &str) -> Error {
    Error::Transport {
        url: String::from(url),
        message: String::from(message),
    }
}

fn http_ok(r: &HttpResponse) -> bool {
    (200..300).contains(&r.status)
}

/// A discovery candidate's answer: the 2xx response, `None` when it answered
/// otherwise (noted, try the next), or the transport error that ends the flow.
fn answer(
    c: &mut Candidates,
    url: &str,
    r: Result<HttpResponse, TransportError>,
) -> Result<Option<HttpResponse>, Error> {
    let resp = r.map_err(|e| transport(url, &e.message))?;
    if !http_ok(&resp) {
        c.reject(format!("{url} (HTTP {})", resp.status));
        return Ok(None);
    }
    Ok(Some(resp))
}

impl Session {
    /// No usable token: a new grant. For a user that means discovery,
    /// consent and the browser (never in silent mode, never while declined);
    /// the machine grants need no user and run in either mode.
    pub(super) fn new_grant(&mut self, f: &mut Flow, now: u64) -> Next {
        let machine = self.config.grant.is_machine();
        if let Err(e) = may_involve_user(&self.latch, f.mode(), machine) {
            return Next::fail(e);
        }
        match (&self.binding, self.authority()) {
            (None, _) => match metadata::prm_candidates(&self.server, f.wanted.challenge_prm.as_deref()) {
                Ok(urls) => self.fetch_next_prm(Candidates::new(urls)),
                Err(e) => Next::fail(e),
            },
            (Some(b), None) if b.legacy => self.fetch_legacy_metadata(),
            (Some(b), None) => Self::discover_metadata(b.clone()),
            (Some(_), Some(authority)) if machine => self.machine_grant(f, now, MachineGrant::new(authority)),
            (Some(_), Some(authority)) => self.start_user_grant(f, authority),
        }
    }

    fn fetch_legacy_metadata(&self) -> Next {
        let url = metadata::legacy_metadata_url(&self.server);
        Next::Effect(Phase::FetchLegacyMetadata, Effect::Http(HttpRequest::get(&url)))
    }

    fn fetch_next_prm(&self, mut c: Candidates) -> Next {
        match c.advance() {
            Some(url) => {
                let get = Effect::Http(HttpRequest::get(&url));
                Next::Effect(Phase::FetchPrm { url, candidates: c }, get)
            }
            // No PRM anywhere: a 2025-03-26 server.
            None => self.fetch_legacy_metadata(),
        }
    }

    pub(super) fn fetched_prm(
        &mut self,
        url: String,
        mut c: Candidates,
        r: Result<HttpResponse, TransportError>,
    ) -> Next {
        let resp = match answer(&mut c, &url, r) {
            Ok(Some(resp)) => resp,
            Ok(None) => return self.fetch_next_prm(c),
            Err(e) => return Next::fail(e),
        };
        match metadata::parse_prm(&resp.body, &self.server_url, &self.server) {
            Ok(prm) => self.on_prm(prm, Some(url)),
            Err(PrmRejection::Invalid(why)) => {
                c.reject(format!("{url} ({why})"));
                self.fetch_next_prm(c)
            }
            Err(PrmRejection::Fatal(e)) => Next::fail(e),
        }
    }

    /// RFC 9728 §7.6: the client picks. A pre-registered client bound to one
    /// of the listed issuers picks that one; else the first usable issuer.
    fn on_prm(&mut self, prm: ResourceMetadata, url: Option<String>) -> Next {
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
            // Why the first one was refused, when the PRM listed any.
            let refused = prm
                .authorization_servers
                .first()
                .and_then(|first| check_url(first, "authorization server").err());
            return Next::fail(refused.unwrap_or(Error::DiscoveryFailed {
                what: "usable authorization server",
                tried: String::from("the protected resource metadata"),
            }));
        };
        let binding = Binding {
            server_url: self.server_url.clone(),
            prm,
            resource_metadata_url: url,
            issuer,
            legacy: false,
        };
        self.set_binding(binding.clone());
        let key = records::metadata_key(&binding.issuer);
        Next::Effect(Phase::LoadCachedMetadata(binding), load(key))
    }

    pub(super) fn loaded_cached_metadata(&mut self, binding: Binding, bytes: Option<&[u8]>) -> Next {
        match self.stored_metadata(bytes, &binding.issuer) {
            Some(md) => self.accept_metadata(binding, md, Vec::new()),
            None => Self::discover_metadata(binding),
        }
    }

    /// Starts trying the issuer's metadata URLs in the spec's order.
    fn discover_metadata(binding: Binding) -> Next {
        match metadata::as_metadata_candidates(&binding.issuer) {
            Ok(urls) => Self::fetch_next_metadata(binding, Candidates::new(urls)),
            Err(e) => Next::fail(e),
        }
    }

    fn fetch_next_metadata(binding: Binding, mut candidates: Candidates) -> Next {
        if let Some(url) = candidates.advance() {
            let get = Effect::Http(HttpRequest::get(&url));
            return Next::Effect(
                Phase::FetchMetadata {
                    binding,
                    url,
                    candidates,
                },
                get,
            );
        }
        Next::fail(match candidates.issuer_mismatch.take() {
            Some(found) => Error::IssuerMismatch {
                expected: binding.issuer,
                found,
            },
            None => Error::DiscoveryFailed {
                what: "authorization server metadata",
                tried: candidates.tried.join(", "),
            },
        })
    }

    pub(super) fn fetched_metadata(
        &mut self,
        binding: Binding,
        url: String,
        mut c: Candidates,
        r: Result<HttpResponse, TransportError>,
    ) -> Next {
        let resp = match answer(&mut c, &url, r) {
            Ok(Some(resp)) => resp,
            Ok(None) => return Self::fetch_next_metadata(binding, c),
            Err(e) => return Next::fail(e),
        };
        match metadata::parse_as_metadata(&resp.body, &binding.issuer) {
            Ok(md) => self.accept_metadata(binding, md, Vec::new()),
            Err(AsRejection::Invalid(why)) => {
                c.reject(format!("{url} ({why})"));
                Self::fetch_next_metadata(binding, c)
            }
            Err(AsRejection::IssuerMismatch(found)) => {
                c.reject(format!("{url} (issuer \"{found}\")"));
                c.issuer_mismatch = Some(found);
                Self::fetch_next_metadata(binding, c)
            }
            Err(AsRejection::Fatal(e)) => Next::fail(e),
        }
    }

    /// 2025-03-26: metadata at the server's origin, else default endpoints.
    pub(super) fn fetched_legacy_metadata(&mut self, r: Result<HttpResponse, TransportError>) -> Next {
        let url = metadata::legacy_metadata_url(&self.server);
        let resp = match r {
            Ok(resp) => resp,
            Err(e) => return Next::fail(transport(&url, &e.message)),
        };
        let base = metadata::legacy_base(&self.server);
        let md = if http_ok(&resp) {
            match metadata::parse_legacy_metadata(&resp.body, &base) {
                Ok(md) => md,
                Err(AsRejection::Fatal(e)) => return Next::fail(e),
                Err(_) => metadata::legacy_default_metadata(&self.server),
            }
        } else {
            metadata::legacy_default_metadata(&self.server)
        };
        let mut notices = Vec::new();
        if md.issuer != base {
            notices.push(Effect::Notify(Event::LegacyIssuerDiffers {
                origin: base,
                issuer: md.issuer.clone(),
            }));
        }
        let binding = Binding {
            server_url: self.server_url.clone(),
            prm: ResourceMetadata {
                resource: self.server_url.clone(),
                authorization_servers: alloc::vec![md.issuer.clone()],
                scopes_supported: None,
                dpop_bound_access_tokens_required: None,
            },
            resource_metadata_url: None,
            issuer: md.issuer.clone(),
            legacy: true,
        };
        self.set_binding(binding.clone());
        self.accept_metadata(binding, md, notices)
    }

    /// Validated metadata: check PKCE, persist binding and metadata, and
    /// hand both to the grant's next phases.
    fn accept_metadata(&mut self, binding: Binding, md: AsMetadata, mut effects: Vec<Effect>) -> Next {
        if !md.supports_s256() {
            if !self.config.allow_missing_s256.contains(&md.issuer) {
                return Next::fail(Error::PkceUnsupported { issuer: md.issuer });
            }
            effects.push(Effect::Notify(Event::PkceCheckOverridden {
                issuer: md.issuer.clone(),
            }));
        }
        effects.push(save(records::binding_key(&self.server_url), records::encode(&binding)));
        effects.push(save(records::metadata_key(&md.issuer), records::encode(&md)));
        self.metadata = Some(md.clone());
        let authority = Authority { binding, metadata: md };
        let then = if self.config.grant.is_machine() {
            Then::MachineGrant(authority)
        } else {
            Then::Listen(authority)
        };
        Next::Queue(effects, then)
    }
}
