//! Conversions between the core's types and the generated WIT types. Pure
//! data mapping, no behaviour: a rule of the spec never lives here.

extern crate alloc;

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use mcp_oauth_core as core_engine;

#[cfg(not(feature = "sans-io"))]
use crate::adapter as bindings;
#[cfg(feature = "sans-io")]
use crate::machine as bindings;

#[cfg(feature = "sans-io")]
use bindings::exports::mcp::oauth::machine;
use bindings::mcp::oauth::engine_types::{
    AccessToken, AuthError, Config, Failure, FailureKind, Grant, LogoutReport, Mode, OauthFailure, ServerResponse,
    Status,
};
use bindings::mcp::oauth::http::{HttpError, Method, Request, Response};
#[cfg(not(feature = "sans-io"))]
use bindings::mcp::oauth::storage::StorageError;
use bindings::mcp::oauth::types;

pub fn config(c: Config) -> core_engine::Config {
    let d = core_engine::Config::default();
    core_engine::Config {
        client_id: c.client_id,
        client_secret: c.client_secret,
        client_issuer: c.client_issuer,
        client_metadata_url: c.client_metadata_url,
        client_name: c.client_name.unwrap_or(d.client_name),
        scope: c.scope,
        callback_port: c.callback_port,
        callback_timeout_ms: c.callback_timeout_ms.unwrap_or(d.callback_timeout_ms),
        device_grant: c.device_grant,
        allow_missing_s256: c.allow_missing_s256,
        grant: match c.grant {
            None | Some(Grant::AuthorizationCode) => core_engine::Grant::AuthorizationCode,
            Some(Grant::ClientCredentials) => core_engine::Grant::ClientCredentials,
            Some(Grant::IdentityAssertion(a)) => core_engine::Grant::IdentityAssertion {
                idp_token_endpoint: a.idp_token_endpoint,
                id_token: a.id_token,
                idp_client_id: a.idp_client_id,
            },
            Some(Grant::WorkloadIdentity(assertion)) => core_engine::Grant::WorkloadIdentity { assertion },
        },
        private_key_jwt: c.private_key_jwt,
        expiry_skew_ms: c.expiry_skew_ms.unwrap_or(d.expiry_skew_ms),
        max_step_ups: c.max_step_ups.unwrap_or(d.max_step_ups),
        request_offline_access: c.request_offline_access.unwrap_or(d.request_offline_access),
        authorize_params: c.authorize_params.into_iter().map(|p| (p.name, p.value)).collect(),
    }
}

pub fn mode(m: Mode) -> core_engine::Mode {
    match m {
        Mode::Interactive => core_engine::Mode::Interactive,
        Mode::Silent => core_engine::Mode::Silent,
    }
}

pub fn token(t: &core_engine::AccessToken) -> AccessToken {
    AccessToken {
        token: String::from(t.secret()),
        expires_at: t.expires_at,
        refresh_at: t.refresh_at,
        scopes: t.scopes.clone(),
        dpop: t.dpop,
    }
}

pub fn server_response(r: ServerResponse) -> core_engine::ServerResponse {
    core_engine::ServerResponse {
        status: r.status,
        www_authenticate: r.www_authenticate,
        sent_token: r.sent_token,
        dpop_nonce: r.dpop_nonce,
    }
}

pub fn status(s: &core_engine::Status) -> Status {
    Status {
        server_url: s.server_url.clone(),
        resource: s.resource.clone(),
        issuer: s.issuer.clone(),
        client_id: s.client_id.clone(),
        scopes: s.scopes.clone(),
        expires_at: s.expires_at,
        has_token: s.has_token,
        can_refresh: s.can_refresh,
        declined: s.declined,
        legacy: s.legacy,
    }
}

fn oauth(status: u16, error: &Option<String>, description: &Option<String>) -> Option<OauthFailure> {
    Some(OauthFailure {
        status,
        error: error.clone(),
        description: description.clone(),
    })
}

/// The three outcomes callers branch on keep their own case; everything else
/// carries the core's message, which says what to do next.
pub fn auth_error(e: &core_engine::Error) -> AuthError {
    use core_engine::Error as E;
    let (kind, oauth_failure) = match e {
        E::AuthorizationRequired => return AuthError::AuthorizationRequired,
        E::Declined => return AuthError::Declined,
        E::TimedOut => return AuthError::TimedOut,
        E::InvalidConfig { .. } => (FailureKind::InvalidConfig, None),
        E::UnsafeUrl { .. } => (FailureKind::UnsafeUrl, None),
        E::Transport { .. } => (FailureKind::Transport, None),
        E::DiscoveryFailed { .. } => (FailureKind::DiscoveryFailed, None),
        E::ResourceMismatch { .. } => (FailureKind::ResourceMismatch, None),
        E::IssuerMismatch { .. } => (FailureKind::IssuerMismatch, None),
        E::PkceUnsupported { .. } => (FailureKind::PkceUnsupported, None),
        E::NoClientIdentity { .. } => (FailureKind::NoClientIdentity, None),
        E::ClientIssuerMismatch { .. } => (FailureKind::ClientIssuerMismatch, None),
        E::RegistrationFailed {
            status,
            error,
            description,
        } => (FailureKind::RegistrationFailed, oauth(*status, error, description)),
        E::AuthorizationFailed { error, description } => (
            FailureKind::AuthorizationFailed,
            oauth(0, &Some(error.clone()), description),
        ),
        E::IssMismatch { .. } => (FailureKind::IssMismatch, None),
        E::TokenRequestFailed {
            status,
            error,
            description,
        } => (FailureKind::TokenRequestFailed, oauth(*status, error, description)),
        E::InvalidResponse { .. } => (FailureKind::InvalidResponse, None),
        E::StepUpLimit { .. } => (FailureKind::StepUpLimit, None),
        E::TokenRefused { .. } => (FailureKind::TokenRefused, None),
        E::Forbidden { .. } => (FailureKind::Forbidden, None),
        E::CallbackListener { .. } => (FailureKind::CallbackListener, None),
        E::Storage { .. } => (FailureKind::Storage, None),
        E::UnexpectedInput { .. } | E::Internal { .. } => (FailureKind::Other, None),
    };
    AuthError::Failed(Failure {
        kind,
        message: e.to_string(),
        oauth: oauth_failure,
    })
}

/// An adapter-level failure (host bug or missing entropy).
#[cfg(not(feature = "sans-io"))]
pub fn other(message: &str) -> AuthError {
    AuthError::Failed(Failure {
        kind: FailureKind::Other,
        message: String::from(message),
        oauth: None,
    })
}

fn headers_out(h: &[(String, String)]) -> Vec<types::Header> {
    h.iter()
        .map(|(name, value)| types::Header {
            name: name.clone(),
            value: value.clone(),
        })
        .collect()
}

fn headers_in(h: Vec<types::Header>) -> Vec<(String, String)> {
    h.into_iter().map(|x| (x.name, x.value)).collect()
}

pub fn request(r: &core_engine::HttpRequest) -> Request {
    Request {
        method: match r.method {
            core_engine::Method::Get => Method::Get,
            core_engine::Method::Post => Method::Post,
        },
        url: r.url.clone(),
        headers: headers_out(&r.headers),
        body: r.body.clone(),
    }
}

pub fn response(r: Response) -> core_engine::HttpResponse {
    core_engine::HttpResponse {
        status: r.status,
        headers: headers_in(r.headers),
        body: r.body,
    }
}

pub fn http_error(e: &HttpError) -> String {
    match e {
        HttpError::Refused(m) => alloc::format!("refused by the host: {m}"),
        HttpError::Timeout => String::from("timed out"),
        HttpError::Connection(m) => alloc::format!("connection failed: {m}"),
        HttpError::TooLarge => String::from("the response is larger than the host allows"),
        HttpError::Other(m) => m.clone(),
    }
}

#[cfg(feature = "sans-io")]
fn http_error_in(e: HttpError) -> core_engine::TransportError {
    core_engine::TransportError {
        message: http_error(&e),
    }
}

#[cfg(not(feature = "sans-io"))]
pub fn storage_error(e: &StorageError) -> String {
    match e {
        StorageError::Io(m) | StorageError::Other(m) => m.clone(),
    }
}

pub fn consent_request(c: &core_engine::ConsentRequest) -> types::ConsentRequest {
    types::ConsentRequest {
        server_url: c.server_url.clone(),
        issuer: c.issuer.clone(),
        scopes: c.scopes.clone(),
        reason: match c.reason {
            core_engine::ConsentReason::FirstLogin => types::ConsentReason::FirstLogin,
            core_engine::ConsentReason::Reauthorize => types::ConsentReason::Reauthorize,
            core_engine::ConsentReason::StepUp => types::ConsentReason::StepUp,
        },
    }
}

pub fn event(e: &core_engine::Event) -> types::Event {
    use core_engine::Event as E;
    match e {
        E::CallbackRejected { reason } => types::Event::CallbackRejected(reason.clone()),
        E::BrowserOpenFailed { url, reason } => types::Event::BrowserOpenFailed(types::BrowserFailure {
            url: url.clone(),
            reason: reason.clone(),
        }),
        E::StorageWarning { record, message } => types::Event::StorageWarning(types::StorageWarning {
            record_kind: record.clone(),
            message: message.clone(),
        }),
        E::PkceCheckOverridden { issuer } => types::Event::PkceCheckOverridden(issuer.clone()),
        E::LegacyIssuerDiffers { origin, issuer } => types::Event::LegacyIssuerDiffers(types::LegacyIssuer {
            origin: origin.clone(),
            issuer: issuer.clone(),
        }),
        E::DeviceCode(d) => types::Event::DeviceCode(types::DeviceCode {
            verification_uri: d.verification_uri.clone(),
            verification_uri_complete: d.verification_uri_complete.clone(),
            user_code: d.user_code.clone(),
            expires_in_s: d.expires_in_s,
        }),
    }
}

pub fn page(p: core_engine::Page) -> types::Page {
    types::Page {
        status: p.status,
        headers: p
            .headers
            .into_iter()
            .map(|(name, value)| types::Header { name, value })
            .collect(),
        body: p.body,
    }
}

pub fn logout_report(r: core_engine::LogoutReport) -> LogoutReport {
    LogoutReport {
        revoked: r.revoked,
        failed: r.failed,
        skipped: r.skipped,
    }
}

pub fn callback_event(e: types::CallbackEvent) -> core_engine::CallbackEvent {
    match e {
        types::CallbackEvent::Redirect(query) => core_engine::CallbackEvent::Redirect { query },
        types::CallbackEvent::TimedOut => core_engine::CallbackEvent::TimedOut,
        types::CallbackEvent::Cancelled => core_engine::CallbackEvent::Cancelled,
    }
}

#[cfg(feature = "sans-io")]
pub fn effect(e: core_engine::Effect) -> machine::Effect {
    use core_engine::Effect as E;
    match e {
        E::Http(r) => machine::Effect::Http(request(&r)),
        E::Load { key } => machine::Effect::Load(key),
        E::Save { key, value } => machine::Effect::Save(machine::SaveRequest { key, value }),
        E::Delete { key } => machine::Effect::Delete(key),
        E::Lock { key } => machine::Effect::Lock(key),
        E::Unlock { key } => machine::Effect::Unlock(key),
        E::Sign { input } => machine::Effect::Sign(input),
        E::DpopProof { key_id, claims } => machine::Effect::DpopProof(machine::DpopProofRequest { key_id, claims }),
        E::Listen { port } => machine::Effect::Listen(port),
        E::Consent(c) => machine::Effect::Consent(consent_request(&c)),
        E::OpenBrowser { url } => machine::Effect::OpenBrowser(url),
        E::AwaitCallback { timeout_ms } => machine::Effect::AwaitCallback(timeout_ms),
        E::Notify(ev) => machine::Effect::Notify(event(&ev)),
        E::Pause { ms } => machine::Effect::Pause(ms),
        E::Respond(p) => machine::Effect::Respond(page(p)),
    }
}

#[cfg(feature = "sans-io")]
pub fn input(i: machine::Input) -> core_engine::Input {
    use core_engine::Input as I;
    match i {
        machine::Input::Http(r) => I::Http(r.map(response).map_err(http_error_in)),
        machine::Input::Loaded(b) => I::Loaded(b),
        machine::Input::LoadFailed(m) => I::LoadFailed(m),
        machine::Input::Stored(r) => I::Stored(r),
        machine::Input::Locked(r) => I::Locked(r),
        machine::Input::Signed(r) => I::Signed(r),
        machine::Input::DpopProof(r) => I::DpopProof(r),
        machine::Input::Listening(r) => I::Listening(r),
        machine::Input::Consent(b) => I::Consent(b),
        machine::Input::Opened(r) => I::Opened(r),
        machine::Input::Callback(ev) => I::Callback(callback_event(ev)),
        machine::Input::Paused(r) => I::Paused(r),
        machine::Input::Ack => I::Ack,
    }
}

#[cfg(feature = "sans-io")]
pub fn outcome_result(r: Result<core_engine::Outcome, core_engine::Error>) -> Result<machine::Outcome, AuthError> {
    match r {
        Ok(core_engine::Outcome::Token(t)) => Ok(machine::Outcome::Token(token(&t))),
        Ok(core_engine::Outcome::Unchanged) => Ok(machine::Outcome::Unchanged),
        Ok(core_engine::Outcome::LoggedOut(r)) => Ok(machine::Outcome::LoggedOut(logout_report(r))),
        Ok(core_engine::Outcome::Status(s)) => Ok(machine::Outcome::Status(status(&s))),
        Ok(core_engine::Outcome::Proof(p)) => Ok(machine::Outcome::Proof(p)),
        Err(e) => Err(auth_error(&e)),
    }
}
