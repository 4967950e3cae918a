//! The device authorization grant (RFC 8628) and token revocation
//! (RFC 7009), as a well-behaved AS does them, with the checks a client
//! must pass: `resource` on the device request and the polls, polls no
//! closer than the interval (after a `slow_down`, 5 s more), revocation
//! with the client's authentication. The user on the other device is
//! scripted by [`DeviceFlow`].

use std::collections::HashMap;

use crate::authorization::form;
use crate::{Request, Response, Servers};

/// The grant type of device polls.
pub(crate) const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The device grant's behaviour, and the scripted user on the other device.
#[derive(Clone, Debug)]
pub struct DeviceFlow {
    /// `interval` in the answer (seconds).
    pub interval_s: u64,
    /// `expires_in` in the answer (seconds).
    pub expires_in_s: u64,
    /// The user approves once this many polls have been answered
    /// `authorization_pending`; `None`: the user never comes.
    pub approve_after_polls: Option<u32>,
    /// The user denies instead of approving.
    pub deny: bool,
    /// Answer the first poll `slow_down` (a busy AS).
    pub slow_down_first: bool,
    /// The `user_code` given.
    pub user_code: String,
    /// The `verification_uri` given (default `<base>/device`).
    pub verification_uri: Option<String>,
    /// Also give `verification_uri_complete`.
    pub complete_uri: bool,
}

impl Default for DeviceFlow {
    fn default() -> Self {
        Self {
            interval_s: 5,
            expires_in_s: 600,
            approve_after_polls: Some(2),
            deny: false,
            slow_down_first: false,
            user_code: "WDJB-MJHT".into(),
            verification_uri: None,
            complete_uri: true,
        }
    }
}

#[derive(Clone, Debug)]
struct Pending {
    client_id: String,
    resource: String,
    scope: String,
    expires_at_ms: u64,
    interval_ms: u64,
    last_poll_ms: Option<u64>,
    polls: u32,
}

/// What the AS saw of device grants and revocations.
#[derive(Debug, Default)]
pub struct DeviceLog {
    /// Device authorization requests answered.
    pub authorizations: usize,
    /// Token polls with the device code grant.
    pub polls: usize,
    /// `slow_down` answers.
    pub slow_downs: usize,
    /// Revocations: (`token_type_hint`, whether the token was known).
    pub revocations: Vec<(String, bool)>,
    codes: HashMap<String, Pending>,
}

impl Servers {
    /// RFC 8628 §3.1–3.2.
    pub(crate) fn device_authorization(&mut self, now_ms: u64, req: &Request) -> Response {
        let Some(flow) = self.asc.device.clone() else {
            return Response::text(404, "not found");
        };
        let f = form(&req.body);
        let client_id = match self.authenticate(req, &f) {
            Ok(c) => c,
            Err(r) => return r,
        };
        let Some(resource) = f.get("resource").cloned() else {
            self.violations
                .push("resource on the device authorization request".into());
            return Response::oauth_error(400, "invalid_target");
        };
        self.resources_seen.push(("device", resource.clone()));
        self.scopes_requested.push(f.get("scope").cloned());
        let device_code = self.next_id("dc");
        self.device_log.codes.insert(
            device_code.clone(),
            Pending {
                client_id,
                resource,
                scope: f.get("scope").cloned().unwrap_or_else(|| "default".into()),
                expires_at_ms: now_ms + flow.expires_in_s * 1000,
                interval_ms: flow.interval_s * 1000,
                last_poll_ms: None,
                polls: 0,
            },
        );
        self.device_log.authorizations += 1;
        let uri = flow
            .verification_uri
            .clone()
            .unwrap_or_else(|| format!("{}/device", self.asc.base));
        let mut v = serde_json::json!({
            "device_code": device_code,
            "user_code": flow.user_code,
            "verification_uri": uri,
            "expires_in": flow.expires_in_s,
            "interval": flow.interval_s,
        });
        if flow.complete_uri {
            v["verification_uri_complete"] = serde_json::json!(format!("{uri}?user_code={}", flow.user_code));
        }
        Response::json(200, v)
    }

    /// RFC 8628 §3.4–3.5: one poll.
    pub(crate) fn device_poll(&mut self, now_ms: u64, f: &HashMap<String, String>, client_id: &str) -> Response {
        let flow = self.asc.device.clone().unwrap_or_default();
        self.device_log.polls += 1;
        let code = f.get("device_code").cloned().unwrap_or_default();
        let resource = f.get("resource").cloned().unwrap_or_default();
        self.resources_seen.push(("device-poll", resource.clone()));
        let Some(p) = self.device_log.codes.get_mut(&code) else {
            return Response::oauth_error(400, "invalid_grant");
        };
        if p.client_id != client_id || p.resource != resource {
            return Response::oauth_error(400, "invalid_grant");
        }
        if now_ms >= p.expires_at_ms {
            self.device_log.codes.remove(&code);
            return Response::oauth_error(400, "expired_token");
        }
        let too_soon = p.last_poll_ms.is_some_and(|last| now_ms < last + p.interval_ms);
        p.last_poll_ms = Some(now_ms);
        if too_soon {
            self.violations
                .push("a device poll came sooner than the interval".into());
        }
        if too_soon || (flow.slow_down_first && p.polls == 0) {
            p.polls += 1;
            p.interval_ms += 5_000;
            self.device_log.slow_downs += 1;
            return Response::oauth_error(400, "slow_down");
        }
        p.polls += 1;
        match flow.approve_after_polls {
            Some(n) if p.polls > n => {}
            _ => return Response::oauth_error(400, "authorization_pending"),
        }
        let p = self.device_log.codes.remove(&code).unwrap_or_else(|| unreachable!());
        if flow.deny {
            return Response::oauth_error(400, "access_denied");
        }
        let grant = crate::authorization::Issue {
            family: None,
            with_refresh: self.asc.issue_refresh,
        };
        self.issue(now_ms, &p.client_id, &p.resource, &p.scope, grant)
    }

    /// RFC 7009 §2: revokes a refresh token (and its grant's access tokens)
    /// or an access token; 200 whether it was known or not.
    pub(crate) fn revoke(&mut self, req: &Request) -> Response {
        let f = form(&req.body);
        if let Err(r) = self.authenticate(req, &f) {
            return r;
        }
        let token = f.get("token").cloned().unwrap_or_default();
        let hint = f.get("token_type_hint").cloned().unwrap_or_default();
        let known = self.revoke_token(&token);
        self.device_log.revocations.push((hint, known));
        Response::json(200, serde_json::json!({}))
    }
}
