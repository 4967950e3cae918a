//! DPoP in the session (RFC 9449, SEP-1932). A new grant is bound to a key
//! only when the resource server asks for it (a `DPoP` challenge, or
//! `dpop_bound_access_tokens_required` in its metadata) and the AS signs
//! ES256 proofs: a Bearer-only server sees nothing change. A bound grant's
//! token requests (code, refresh, machine grants) carry a proof; the AS's
//! `use_dpop_nonce` is answered once with a fresh proof; nonces are kept per
//! origin. Requests to the MCP server get their proof from
//! `Session::dpop_proof` (with `ath`). The key never enters the engine: the
//! host signs (`Effect::DpopProof`).
//!
//! ```text
//!  token request ─(bound)─▶ Proving ──DpopProof──▶ Proved ──Http──▶ (the request's phase)
//!                                 ▲                   │ 400 use_dpop_nonce (once)
//!                                 └───────────────────┘
//!  dpop_proof ─▶ ProvingResource ──DpopProof──▶ Done(Proof)
//! ```

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;

use super::Session;
use super::state::{Authority, Flow, Next, Phase, Proved};
use crate::effect::{Effect, HttpRequest, HttpResponse, Outcome, ServerResponse, Step, TransportError};
use crate::error::Error;
use crate::primitives::http_url::HttpUrl;
use crate::wire::dpop::{self, ProofClaims};

/// Nonces kept at once (one per origin the engine talks to).
const MAX_NONCES: usize = 8;

impl Session {
    /// The key a new grant is bound to, if any (see the module doc).
    pub(super) fn dpop_key_for_new_grant(&self, authority: &Authority) -> Option<String> {
        let (b, md) = (&authority.binding, &authority.metadata);
        let asked = self.dpop_wanted || b.prm.dpop_bound_access_tokens_required == Some(true);
        (asked && dpop::as_supports_es256(md.dpop_signing_alg_values_supported.as_deref()))
            .then(|| dpop::key_id(&b.issuer, &b.prm.resource))
    }

    /// Sends a token request; first gets a proof when the flow's grant is bound.
    pub(super) fn send_token_request(&mut self, f: &mut Flow, now: u64, req: HttpRequest, then: Phase) -> Next {
        match f.dpop_key.clone() {
            None => Next::Effect(then, Effect::Http(req)),
            Some(key) => {
                let p = Proved {
                    req,
                    nonce_retried: false,
                    then: Box::new(then),
                };
                self.prove_token_request(f, now, key, p)
            }
        }
    }

    fn prove_token_request(&mut self, f: &mut Flow, now: u64, key: String, p: Proved) -> Next {
        // Token endpoints are checked URLs (metadata is validated first).
        let Ok(url) = HttpUrl::parse(&p.req.url) else {
            return Next::fail(Error::Internal {
                what: "a token endpoint that is not a checked URL",
            });
        };
        let claims = self.proof_claims(f, now, "POST", &url, None);
        Next::Effect(Phase::Proving(p), Effect::DpopProof { key_id: key, claims })
    }

    /// The host's proof for a token request: attach it and send.
    pub(super) fn proved_token_request(mut p: Proved, r: Result<String, String>) -> Next {
        match checked_proof(r) {
            Ok(jws) => {
                p.req.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("dpop"));
                p.req.headers.push((String::from("DPoP"), jws));
                let req = p.req.clone();
                Next::Effect(Phase::Proved(p), Effect::Http(req))
            }
            Err(e) => Next::fail(e),
        }
    }

    /// The answer to a token request sent with a proof, before its phase
    /// reads it: keeps the AS's nonce, and answers `use_dpop_nonce` once
    /// with a fresh proof (RFC 9449 §8). `Err`: the phase the answer is for.
    pub(super) fn dpop_answer(
        &mut self,
        f: &mut Flow,
        now: u64,
        mut p: Proved,
        r: &Result<HttpResponse, TransportError>,
    ) -> Result<Next, Box<Phase>> {
        let (Ok(resp), Ok(url)) = (r, HttpUrl::parse(&p.req.url)) else {
            return Err(p.then);
        };
        if let Some(n) = resp.header("dpop-nonce").filter(|n| dpop::valid_nonce(n)) {
            self.remember_nonce(url.origin(), n);
        }
        let key = f.dpop_key.clone();
        match key {
            Some(key) if !p.nonce_retried && dpop::as_nonce_challenge(resp).is_some() => {
                p.nonce_retried = true;
                Ok(self.prove_token_request(f, now, key, p))
            }
            _ => Err(p.then),
        }
    }

    /// `Op::Proof`: a proof for a request to the MCP server with the
    /// current token, or none when that token is not bound.
    pub(super) fn prove_resource(&mut self, f: &mut Flow, now: u64, method: &str, url: &str) -> Next {
        let Some((key, token)) = self
            .tokens
            .as_ref()
            .and_then(|t| Some((t.dpop_key.clone().filter(|k| !k.is_empty())?, t.access_token.clone())))
        else {
            return Next::Done(Ok(Outcome::Proof(None)));
        };
        if method.is_empty() || method.len() > 16 || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Next::fail(Error::InvalidConfig {
                reason: String::from("a DPoP proof needs an upper-case HTTP method"),
            });
        }
        let url = match crate::primitives::url_safety::check_url(url, "request") {
            Ok(u) => u,
            Err(e) => return Next::fail(e),
        };
        let claims = self.proof_claims(f, now, method, &url, Some(&token));
        Next::Effect(Phase::ProvingResource, Effect::DpopProof { key_id: key, claims })
    }

    pub(super) fn proved_resource(r: Result<String, String>) -> Next {
        match checked_proof(r) {
            Ok(jws) => Next::Done(Ok(Outcome::Proof(Some(jws)))),
            Err(e) => Next::fail(e),
        }
    }

    fn proof_claims(&self, f: &mut Flow, now: u64, htm: &str, url: &HttpUrl, token: Option<&str>) -> String {
        let jti = f.entropy.derive("dpop-jti", f.dpop_proofs);
        f.dpop_proofs = f.dpop_proofs.wrapping_add(1);
        let origin = url.origin();
        let nonce = self
            .dpop_nonces
            .iter()
            .find(|(o, _)| *o == origin)
            .map(|(_, n)| n.as_str());
        dpop::claims(&ProofClaims {
            htm,
            url,
            iat_s: now / 1000,
            jti: &jti[..16],
            access_token: token,
            nonce,
        })
    }

    /// What a response means for DPoP before anything else: its nonce is
    /// kept; a `use_dpop_nonce` challenge is answered once with the current
    /// token (the caller retries with a fresh proof); a `DPoP` challenge
    /// makes the next grant a bound one.
    pub(super) fn dpop_response(&mut self, response: &ServerResponse) -> Option<Step> {
        let nonce = response
            .dpop_nonce
            .as_deref()
            .filter(|n| crate::wire::dpop::valid_nonce(n));
        if let Some(n) = nonce {
            self.remember_nonce(self.server.origin(), n);
        }
        if response.status == 401 && crate::wire::dpop::challenges_dpop(&response.www_authenticate) {
            self.dpop_wanted = true;
        }
        crate::wire::dpop::rs_nonce_challenge(response.status, &response.www_authenticate, nonce)?;
        let bound = self.tokens.as_ref().filter(|t| t.dpop_key.is_some());
        match bound {
            Some(t) if !self.rs_nonce_retried => {
                self.rs_nonce_retried = true;
                Some(Step::Done(Ok(Outcome::Token(t.access(self.config.expiry_skew_ms)))))
            }
            // Asked again right after: not a nonce problem this engine can fix.
            _ => Some(Step::Done(Ok(Outcome::Unchanged))),
        }
    }

    /// Keeps the latest nonce of `origin` (a few origins at most).
    pub(super) fn remember_nonce(&mut self, origin: String, nonce: &str) {
        self.dpop_nonces.retain(|(o, _)| *o != origin);
        if self.dpop_nonces.len() >= MAX_NONCES {
            self.dpop_nonces.remove(0);
        }
        self.dpop_nonces.push((origin, String::from(nonce)));
    }
}

fn checked_proof(r: Result<String, String>) -> Result<String, Error> {
    match r {
        Ok(jws) if dpop::check_proof(&jws) => Ok(jws),
        Ok(_) => Err(Error::InvalidConfig {
            reason: String::from("the host's DPoP proof is not a compact JWS"),
        }),
        Err(m) => Err(Error::InvalidConfig {
            reason: format!("the host could not make a DPoP proof: {m}"),
        }),
    }
}
