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
//!  token request ─(bound)─▶ Proving ──DpopProof──▶ (the request's phase) ──Http──▶
//!                                 ▲                        │ 400 use_dpop_nonce (once)
//!                                 └────────────────────────┘
//!  dpop_proof ─▶ ProvingResource ──DpopProof──▶ Done(Proof)
//! ```

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;

use super::Session;
use super::state::{Flow, Next, Phase};
use crate::effect::{Effect, HttpRequest, HttpResponse, Outcome};
use crate::error::Error;
use crate::primitives::http_url::HttpUrl;
use crate::wire::dpop::{self, ProofClaims};

/// Nonces kept at once (one per origin the engine talks to).
const MAX_NONCES: usize = 8;

impl Session {
    /// The key a new grant is bound to, if any (see the module doc).
    pub(super) fn dpop_key_for_new_grant(&self) -> Option<String> {
        let (b, md) = (self.binding.as_ref()?, self.metadata.as_ref()?);
        let asked = self.dpop_wanted || b.prm.dpop_bound_access_tokens_required == Some(true);
        (asked && dpop::as_supports_es256(md.dpop_signing_alg_values_supported.as_deref()))
            .then(|| dpop::key_id(&b.issuer, &b.prm.resource))
    }

    /// Sends a token request; first gets a proof when the flow's grant is bound.
    pub(super) fn send_token_request(&mut self, f: &mut Flow, now: u64, req: HttpRequest, then: Phase) -> Next {
        match f.dpop_key.clone() {
            None => Next::Effect(then, Effect::Http(req)),
            Some(key) => self.prove_token_request(f, now, key, req, then),
        }
    }

    fn prove_token_request(&mut self, f: &mut Flow, now: u64, key: String, req: HttpRequest, then: Phase) -> Next {
        let Ok(url) = HttpUrl::parse(&req.url) else {
            return Next::fail(Error::UnexpectedInput {
                expected: "a checked token endpoint",
            });
        };
        let claims = self.proof_claims(f, now, "POST", &url, None);
        Next::Effect(
            Phase::Proving {
                req,
                then: Box::new(then),
            },
            Effect::DpopProof { key_id: key, claims },
        )
    }

    /// The host's proof for a token request: attach it and send.
    pub(super) fn proved_token_request(
        &mut self,
        f: &mut Flow,
        mut req: HttpRequest,
        then: Phase,
        r: Result<String, String>,
    ) -> Next {
        match checked_proof(r) {
            Ok(jws) => {
                req.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("dpop"));
                req.headers.push((String::from("DPoP"), jws));
                f.dpop_sent = Some(req.clone());
                Next::Effect(then, Effect::Http(req))
            }
            Err(e) => Next::fail(e),
        }
    }

    /// Looks at the answer to a token request sent with a proof before its
    /// phase does: keeps the AS's nonce, and answers `use_dpop_nonce` once
    /// with a fresh proof (RFC 9449 §8). `None`: the phase handles it.
    pub(super) fn dpop_answer(&mut self, f: &mut Flow, now: u64, resp: &HttpResponse) -> Option<Next> {
        let sent = f.dpop_sent.take()?;
        let origin = HttpUrl::parse(&sent.url).ok()?.origin();
        if let Some(n) = resp.header("dpop-nonce").filter(|n| dpop::valid_nonce(n)) {
            self.remember_nonce(origin, n);
        }
        if f.dpop_nonce_retried || dpop::as_nonce_challenge(resp).is_none() {
            return None;
        }
        f.dpop_nonce_retried = true;
        let key = f.dpop_key.clone()?;
        let then = core::mem::replace(&mut f.phase, Phase::Idle);
        Some(self.prove_token_request(f, now, key, sent, then))
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
