//! DPoP at the fake servers (RFC 9449): proofs are checked for shape and
//! claims (`typ`, `htm`, `htu` without query, fresh `jti`, `iat`, `ath` at
//! the resource, the demanded nonce), tokens issued with a proof are bound
//! to its `jwk` and accepted only with a proof by the same key. Signatures
//! are not verified here (the simulator's host signs with a fake key); the
//! conformance suite's servers verify real ES256 signatures.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::{Request, Response, Servers};

/// What a proof asserted.
pub(crate) struct Proof {
    /// The public key, as its JSON (the binding).
    pub jwk: String,
    pub nonce: Option<String>,
}

fn b64json(part: &str) -> Option<serde_json::Value> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

impl Servers {
    /// Checks the request's `DPoP` header (if any) for `htm`/`htu`
    /// (and `ath` of `token`). A malformed proof is an error response and a
    /// violation: this engine never sends one.
    pub(crate) fn dpop_proof(
        &mut self,
        now_ms: u64,
        req: &Request,
        token: Option<&str>,
    ) -> Result<Option<Proof>, Response> {
        let Some(jws) = req.header("dpop") else { return Ok(None) };
        let parts: Vec<&str> = jws.split('.').collect();
        let (header, claims) = match parts.as_slice() {
            [h, c, s] if !s.is_empty() => (b64json(h), b64json(c)),
            _ => (None, None),
        };
        let (Some(header), Some(claims)) = (header, claims) else {
            return Err(self.bad_proof("a DPoP header that is not a JWS"));
        };
        let jti = claims["jti"].as_str().unwrap_or_default().to_string();
        let iat = claims["iat"].as_u64().unwrap_or(0);
        let problems = [
            (header["typ"] != "dpop+jwt", "typ is not dpop+jwt"),
            (header["alg"] != "ES256", "alg is not ES256"),
            (!header["jwk"].is_object(), "no jwk"),
            (claims["htm"] != req.method.as_str(), "htm is not the request's method"),
            (claims["htu"] != without_query(&req.url), "htu is not the request URL"),
            (jti.len() < 16 || self.dpop_jtis.contains(&jti), "jti missing or reused"),
            (iat.abs_diff(now_ms / 1000) > 300, "iat is not now"),
            (
                token.is_some_and(|t| claims["ath"] != URL_SAFE_NO_PAD.encode(Sha256::digest(t.as_bytes())).as_str()),
                "ath is not the token's hash",
            ),
            (token.is_none() && !claims["ath"].is_null(), "ath on a token request"),
        ];
        if let Some((_, why)) = problems.iter().find(|(bad, _)| *bad) {
            return Err(self.bad_proof(why));
        }
        self.dpop_jtis.push(jti);
        Ok(Some(Proof {
            jwk: header["jwk"].to_string(),
            nonce: claims["nonce"].as_str().map(String::from),
        }))
    }

    fn bad_proof(&mut self, why: &str) -> Response {
        self.violations.push(format!("DPoP proof: {why}"));
        Response::oauth_error(400, "invalid_dpop_proof")
    }

    /// The AS's nonce demand (§8): 400 `use_dpop_nonce` with the nonce.
    pub(crate) fn as_nonce_missing(&self, proof: &Proof) -> Option<Response> {
        let want = self.asc.dpop_nonce.as_ref()?;
        (proof.nonce.as_ref() != Some(want)).then(|| {
            let mut r = Response::oauth_error(400, "use_dpop_nonce");
            r.headers.push(("dpop-nonce".into(), want.clone()));
            r
        })
    }

    /// Binds what `resp` issued to the proof's key: `token_type: DPoP`.
    pub(crate) fn bind(&mut self, mut resp: Response, proof: &Proof) -> Response {
        let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&resp.body) else {
            return resp;
        };
        if resp.status != 200 {
            return resp;
        }
        for k in ["access_token", "refresh_token"] {
            if let Some(t) = v[k].as_str() {
                self.dpop_bound.insert(t.to_string(), proof.jwk.clone());
            }
        }
        v["token_type"] = serde_json::json!("DPoP");
        resp.body = v.to_string().into_bytes();
        resp
    }

    /// The resource server's nonce demand (§9): 401 with a DPoP challenge.
    pub(crate) fn rs_nonce_missing(&self, proof: &Proof) -> Option<Response> {
        let want = self.mcp.dpop_nonce.as_ref()?;
        (proof.nonce.as_ref() != Some(want)).then(|| Response {
            status: 401,
            headers: vec![
                (
                    "www-authenticate".into(),
                    "DPoP error=\"use_dpop_nonce\", error_description=\"a nonce is required\"".into(),
                ),
                ("dpop-nonce".into(), want.clone()),
            ],
            body: b"unauthorized".to_vec(),
        })
    }
}
