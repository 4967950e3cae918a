//! The authorization server's and the IdP's endpoints: registration,
//! authorization, token (code with PKCE, refresh with rotation, client
//! credentials, jwt-bearer) and RFC 8693 token exchange.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use crate::{AccessState, Client, CodeGrant, RefreshState, Request, Response, Servers};

/// The stand-in "ES256" signature the simulated host makes and the fake AS
/// checks: SHA-256 of the input, twice (64 bytes).
pub fn fake_signature(input: &[u8]) -> Vec<u8> {
    let a = Sha256::digest(input);
    let mut out = a.to_vec();
    out.extend_from_slice(&Sha256::digest(a));
    out
}

pub(crate) fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

impl Servers {
    pub(crate) fn register(&mut self, req: &Request) -> Response {
        let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
        if v["application_type"] != "native" {
            self.violations.push("DCR must ask for a native client".into());
        }
        let redirect_uris: Vec<String> = serde_json::from_value(v["redirect_uris"].clone()).unwrap_or_default();
        let grant_types: Vec<String> = serde_json::from_value(v["grant_types"].clone()).unwrap_or_default();
        let device_only = grant_types.iter().any(|g| g == crate::device::DEVICE_CODE_GRANT)
            && !grant_types.iter().any(|g| g == "authorization_code");
        if device_only && (!redirect_uris.is_empty() || v["response_types"] != serde_json::json!([])) {
            self.violations
                .push("a device-only client registers no redirect URI and no response type".into());
        }
        if redirect_uris.is_empty() && !device_only {
            return Response::oauth_error(400, "invalid_redirect_uri");
        }
        for r in &redirect_uris {
            if !r.starts_with("http://127.0.0.1:") {
                self.violations.push(format!("loopback redirect expected, got {r}"));
            }
        }
        let method = v["token_endpoint_auth_method"]
            .as_str()
            .unwrap_or("client_secret_basic")
            .to_string();
        let id = format!(
            "{}{}",
            self.next_id("client"),
            self.asc.hostile_text.clone().unwrap_or_default()
        );
        let secret = (method != "none").then(|| self.next_id("secret"));
        self.clients.insert(
            id.clone(),
            Client {
                redirect_uris: redirect_uris.clone(),
                secret: secret.clone(),
                method: method.clone(),
            },
        );
        let claimed = self.asc.registered_redirect_uris.clone().unwrap_or(redirect_uris);
        let mut out =
            serde_json::json!({"client_id": id, "redirect_uris": claimed, "token_endpoint_auth_method": method});
        if let Some(s) = secret {
            out["client_secret"] = serde_json::json!(s);
        }
        Response::json(201, out)
    }

    fn client(&self, id: &str) -> Option<Client> {
        if self.asc.forget_clients {
            return None;
        }
        if let Some(c) = self.clients.get(id) {
            return Some(c.clone());
        }
        if let Some((_, secret, method)) = self.preregistered.iter().find(|(i, _, _)| i == id) {
            return Some(Client {
                redirect_uris: vec![],
                secret: secret.clone(),
                method: method.clone(),
            });
        }
        if id.starts_with("https://") && self.asc.cimd {
            return Some(Client {
                redirect_uris: vec![],
                secret: None,
                method: "none".into(),
            });
        }
        None
    }

    /// The authorization page: validates the request, "asks the user"
    /// (approves, or denies with `deny`), redirects back.
    pub(crate) fn authorize(&mut self, url: &url::Url) -> Response {
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        let get = |k: &str| q.get(k).cloned().unwrap_or_default();
        let mut bad = Vec::new();
        if get("response_type") != "code" {
            bad.push("response_type must be code");
        }
        if get("code_challenge_method") != "S256" || get("code_challenge").is_empty() {
            bad.push("PKCE S256 is required");
        }
        if q.contains_key("prompt") && self.asc.forbid_prompt {
            bad.push("no forced prompt");
        }
        if !q.contains_key("resource") {
            bad.push("resource on authorize");
        }
        if !bad.is_empty() {
            self.violations.extend(bad.iter().map(|b| b.to_string()));
            return Response::text(400, &format!("invalid authorization request: {}", bad.join(", ")));
        }
        let resource = get("resource");
        self.resources_seen.push(("authorize", resource.clone()));
        self.scopes_requested.push(q.get("scope").cloned());
        let (client_id, redirect_uri) = (get("client_id"), get("redirect_uri"));
        let state = if self.asc.wrong_state {
            "not-your-state".to_string()
        } else {
            get("state")
        };
        let (iss_param, iss) = (self.asc.iss_param, self.asc.issuer.clone());
        let redirect = |pairs: Vec<(&str, String)>| {
            let mut ser = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in pairs {
                ser.append_pair(k, &v);
            }
            if iss_param {
                ser.append_pair("iss", &iss);
            }
            Response::redirect(format!("{redirect_uri}?{}", ser.finish()))
        };
        match self.client(&client_id) {
            Some(c) if c.redirect_uris.is_empty() || c.redirect_uris.contains(&redirect_uri) => {}
            _ => return redirect(vec![("error", "unauthorized_client".into()), ("state", state)]),
        }
        if self.asc.deny {
            let pairs = match self.asc.hostile_text.clone() {
                // A hostile AS picks an error the client shows, with its text.
                Some(h) => vec![
                    ("error", format!("invalid_scope{h}")),
                    ("error_description", h),
                    ("state", state),
                ],
                None => vec![("error", "access_denied".to_string()), ("state", state)],
            };
            return redirect(pairs);
        }
        let code = self.next_id("code");
        self.codes.insert(
            code.clone(),
            CodeGrant {
                client_id,
                redirect_uri: redirect_uri.clone(),
                challenge: get("code_challenge"),
                resource,
                scope: q.get("scope").cloned().unwrap_or_else(|| "default".into()),
            },
        );
        redirect(vec![("code", code), ("state", state)])
    }

    /// RFC 8693 at the IdP: an ID token for an ID-JAG addressed to the AS.
    pub(crate) fn idp_token(&mut self, req: &Request) -> Response {
        let f = form(&req.body);
        let is = |k: &str, v: &str| f.get(k).map(String::as_str) == Some(v);
        let ok = is("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange")
            && is("subject_token", &self.idp_accepts.clone())
            && is("subject_token_type", "urn:ietf:params:oauth:token-type:id_token")
            && is("requested_token_type", "urn:ietf:params:oauth:token-type:id-jag")
            && f.get("audience") == Some(&self.asc.issuer)
            && f.get("resource") == Some(&self.mcp.prm_resource);
        if !ok {
            return Response::oauth_error(400, "invalid_request");
        }
        let jag = self.next_id("jag");
        self.id_jags.push(jag.clone());
        Response::json(
            200,
            serde_json::json!({"access_token": jag, "issued_token_type": "urn:ietf:params:oauth:token-type:id-jag", "token_type": "N_A"}),
        )
    }

    /// Client authentication at the token endpoint: `none`, basic, post or
    /// a `private_key_jwt` assertion (checked against [`fake_signature`]).
    pub(crate) fn authenticate(&self, req: &Request, f: &HashMap<String, String>) -> Result<String, Response> {
        let refuse = || Response::oauth_error(401, "invalid_client");
        if let Some(assertion) = f.get("client_assertion") {
            let (input, sig) = assertion.rsplit_once('.').ok_or_else(refuse)?;
            let claims = input.split('.').nth(1).and_then(|c| URL_SAFE_NO_PAD.decode(c).ok());
            let claims: serde_json::Value = claims.and_then(|c| serde_json::from_slice(&c).ok()).unwrap_or_default();
            let id = claims["iss"].as_str().unwrap_or_default().to_string();
            let good = URL_SAFE_NO_PAD.decode(sig).ok() == Some(fake_signature(input.as_bytes()))
                && claims["sub"] == claims["iss"]
                && claims["aud"] == self.asc.issuer
                && f.get("client_assertion_type").map(String::as_str)
                    == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                && self.client(&id).is_some();
            return if good { Ok(id) } else { Err(refuse()) };
        }
        let (id, secret) = match req.header("authorization").and_then(|h| h.strip_prefix("Basic ")) {
            Some(b) => {
                let raw = STANDARD
                    .decode(b)
                    .ok()
                    .and_then(|r| String::from_utf8(r).ok())
                    .ok_or_else(refuse)?;
                let (i, s) = raw.split_once(':').ok_or_else(refuse)?;
                let dec = |x: &str| {
                    url::form_urlencoded::parse(format!("a={x}").as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default()
                };
                (dec(i), Some((dec(s), "client_secret_basic")))
            }
            None => (
                f.get("client_id").cloned().unwrap_or_default(),
                f.get("client_secret").map(|s| (s.clone(), "client_secret_post")),
            ),
        };
        let c = self.client(&id).ok_or_else(refuse)?;
        match (&c.secret, secret) {
            (None, None) if c.method == "none" => Ok(id),
            (Some(expected), Some((got, how))) if *expected == got && how == c.method => Ok(id),
            _ => Err(refuse()),
        }
    }

    pub(crate) fn issue(
        &mut self,
        now_ms: u64,
        client_id: &str,
        resource: &str,
        scope: &str,
        grant: Issue,
    ) -> Response {
        let family = grant.family.unwrap_or_else(|| {
            self.counter += 1;
            self.counter
        });
        let at = self.next_id("at");
        self.access.insert(
            at.clone(),
            AccessState {
                resource: resource.into(),
                scope: scope.split(' ').map(String::from).collect(),
                expires_at_ms: now_ms + self.asc.access_ttl_s * 1000,
                revoked: false,
                family,
            },
        );
        let mut v = serde_json::json!({"access_token": at, "token_type": "Bearer", "expires_in": self.asc.access_ttl_s, "scope": scope});
        if grant.with_refresh {
            let rt = self.next_id("rt");
            self.refresh.insert(
                rt.clone(),
                RefreshState {
                    client_id: client_id.into(),
                    resource: resource.into(),
                    scope: scope.into(),
                    used: false,
                    family,
                },
            );
            v["refresh_token"] = serde_json::json!(rt);
        }
        Response::json(200, v)
    }

    pub(crate) fn token(&mut self, now_ms: u64, req: &Request) -> Response {
        if let Some(h) = &self.asc.hostile_text
            && self.asc.deny
        {
            // A hostile AS refusing at the token endpoint too.
            return Response::json(
                400,
                serde_json::json!({"error": format!("invalid_grant{h}"), "error_description": h}),
            );
        }
        let f = form(&req.body);
        let client_id = match self.authenticate(req, &f) {
            Ok(c) => c,
            Err(r) => return r,
        };
        let proof = match self.dpop_proof(now_ms, req, None) {
            Ok(p) => p,
            Err(r) => return r,
        };
        if let Some(r) = proof.as_ref().and_then(|p| self.as_nonce_missing(p)) {
            return r;
        }
        // A bound refresh token needs a proof by its key (RFC 9449 §5).
        if f.get("grant_type").map(String::as_str) == Some("refresh_token")
            && let Some(jwk) = f.get("refresh_token").and_then(|rt| self.dpop_bound.get(rt))
            && proof.as_ref().map(|p| &p.jwk) != Some(jwk)
        {
            self.violations
                .push("a DPoP-bound refresh token was used without its key".into());
            return Response::oauth_error(400, "invalid_grant");
        }
        let resp = self.token_grant(now_ms, req, &f, client_id);
        match &proof {
            Some(p) => self.bind(resp, p),
            None => resp,
        }
    }

    fn token_grant(&mut self, now_ms: u64, req: &Request, f: &HashMap<String, String>, client_id: String) -> Response {
        let _ = req;
        let resource = f.get("resource").cloned().unwrap_or_default();
        let new = Issue {
            family: None,
            with_refresh: self.asc.issue_refresh,
        };
        match f.get("grant_type").map(String::as_str) {
            Some("authorization_code") => {
                self.resources_seen.push(("token", resource.clone()));
                if let Some(c) = f.get("code") {
                    self.used_codes.push(c.clone());
                }
                let Some(g) = f.get("code").and_then(|c| self.codes.remove(c)) else {
                    return Response::oauth_error(400, "invalid_grant");
                };
                let verifier = f.get("code_verifier").cloned().unwrap_or_default();
                let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
                if g.client_id != client_id
                    || f.get("redirect_uri") != Some(&g.redirect_uri)
                    || challenge != g.challenge
                    || resource != g.resource
                {
                    return Response::oauth_error(400, "invalid_grant");
                }
                self.issue(now_ms, &client_id, &resource, &g.scope, new)
            }
            Some("refresh_token") => {
                self.resources_seen.push(("refresh", resource.clone()));
                let rt = f.get("refresh_token").cloned().unwrap_or_default();
                let Some(st) = self.refresh.get(&rt).cloned() else {
                    return Response::oauth_error(400, "invalid_grant");
                };
                if self.revoked_families.contains(&st.family) {
                    return Response::oauth_error(400, "invalid_grant");
                }
                if st.used {
                    // RFC 9700 §4.14.2: reuse of a rotated token revokes the family.
                    self.reuse_detected = true;
                    self.revoked_families.push(st.family);
                    return Response::oauth_error(400, "invalid_grant");
                }
                if st.client_id != client_id || st.resource != resource {
                    return Response::oauth_error(400, "invalid_grant");
                }
                if self.asc.rotate
                    && let Some(s) = self.refresh.get_mut(&rt)
                {
                    s.used = true;
                }
                self.refresh_ok += 1;
                let grant = Issue {
                    family: Some(st.family),
                    with_refresh: self.asc.rotate && self.asc.issue_refresh,
                };
                self.issue(now_ms, &client_id, &resource, &st.scope, grant)
            }
            Some(crate::device::DEVICE_CODE_GRANT) => self.device_poll(now_ms, f, &client_id),
            Some("client_credentials") => {
                self.resources_seen.push(("client_credentials", resource.clone()));
                let scope = f.get("scope").cloned().unwrap_or_else(|| "default".into());
                let grant = Issue {
                    family: None,
                    with_refresh: false,
                };
                self.issue(now_ms, &client_id, &resource, &scope, grant)
            }
            Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
                let jag = f.get("assertion").cloned().unwrap_or_default();
                if !self.id_jags.contains(&jag) && !self.workload_jwts.contains(&jag) {
                    return Response::oauth_error(400, "invalid_grant");
                }
                let scope = f.get("scope").cloned().unwrap_or_else(|| "default".into());
                self.issue(now_ms, &client_id, &resource, &scope, new)
            }
            _ => Response::oauth_error(400, "unsupported_grant_type"),
        }
    }
}

/// How a grant is issued: in which refresh family, with a refresh token?
pub(crate) struct Issue {
    pub family: Option<u64>,
    pub with_refresh: bool,
}
