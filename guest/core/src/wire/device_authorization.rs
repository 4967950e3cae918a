//! The device authorization grant (RFC 8628), for a machine where no
//! browser can reach the loopback listener: the device authorization
//! request (§3.1, with `scope` and `resource` as the authorization request
//! has them), its response (§3.2, every field checked before anything is
//! shown), and the token polls (§3.4, §3.5) with what each answer means.
//!
//! Limits (a hostile AS must not hang or flood the client): the poll
//! interval is at least [`MIN_INTERVAL_MS`] whatever the AS says, an
//! interval longer than the code lives is refused, a `slow_down` adds
//! 5 s (§3.5) up to [`MAX_INTERVAL_MS`], and the user code is shown only
//! when it is short and printable.

use alloc::string::{String, ToString};

use crate::effect::{HttpRequest, HttpResponse};
use crate::error::Error;
use crate::primitives::json::{from_json, oauth_error};
use crate::primitives::url_safety::check_url;
use crate::wire::client_auth::{ClientAuth, ClientCredentials, form_post};
use miniserde::Deserialize;

/// The grant type of the token polls (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// The interval when the AS gives none (RFC 8628 §3.2: 5 seconds).
pub const DEFAULT_INTERVAL_MS: u64 = 5_000;
/// Polls are at least this far apart, whatever the AS says (an `interval`
/// of 0 must not become a busy loop).
pub const MIN_INTERVAL_MS: u64 = 1_000;
/// `slow_down` raises the interval by 5 s each time (§3.5), up to this.
pub const MAX_INTERVAL_MS: u64 = 60_000;
/// The longest user code shown (RFC 8628 §6.1 suggests 8 characters).
pub const MAX_USER_CODE_LEN: usize = 64;

/// RFC 8628 §3.1: the device authorization request, with the client's
/// token endpoint authentication, `scope` and `resource` (RFC 8707) as the
/// authorization request carries them.
pub fn device_authorization_request(
    endpoint: &str,
    client: &ClientCredentials,
    scope: Option<&str>,
    resource: &str,
) -> HttpRequest {
    let mut form = alloc::vec![];
    if let Some(s) = scope {
        form.push(("scope", String::from(s)));
    }
    form.push(("resource", String::from(resource)));
    form_post(endpoint, form, ClientAuth::Credentials(client))
}

/// RFC 8628 §3.4: a token poll for `device_code`, with `resource` (RFC 8707
/// §2.2) as the code exchange has it.
pub fn poll_request(
    token_endpoint: &str,
    device_code: &str,
    resource: &str,
    client: &ClientCredentials,
) -> HttpRequest {
    let form = alloc::vec![
        ("grant_type", String::from(DEVICE_CODE_GRANT)),
        ("device_code", String::from(device_code)),
        ("resource", String::from(resource)),
    ];
    form_post(token_endpoint, form, ClientAuth::Credentials(client))
}

/// A checked device authorization response (RFC 8628 §3.2).
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceAuthorization {
    /// The device verification code: a secret, sent only to the token endpoint.
    pub device_code: String,
    /// What the user types (printable, short).
    pub user_code: String,
    /// Where the user goes (checked like every URL).
    pub verification_uri: String,
    /// The same with the code in it, when the AS gives one (checked too).
    pub verification_uri_complete: Option<String>,
    /// How long the codes live, in ms.
    pub expires_in_ms: u64,
    /// The poll interval, in ms (at least [`MIN_INTERVAL_MS`]).
    pub interval_ms: u64,
}

impl core::fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("device_code", &"<redacted>")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("expires_in_ms", &self.expires_in_ms)
            .field("interval_ms", &self.interval_ms)
            .finish()
    }
}

#[derive(Deserialize)]
struct RawDeviceAuthorization {
    device_code: Option<String>,
    user_code: Option<String>,
    verification_uri: Option<String>,
    verification_uri_complete: Option<String>,
    expires_in: Option<u64>,
    interval: Option<u64>,
}

fn invalid(detail: &str) -> Error {
    Error::InvalidResponse {
        what: "device authorization response",
        detail: detail.to_string(),
    }
}

/// A user code goes onto a terminal and into a page: ASCII letters,
/// digits, `-` and spaces only (RFC 8628 §6.1 recommends a small ASCII
/// set; Unicode tables would cost the engine more than the codes are worth),
/// short.
pub fn user_code_is_showable(code: &str) -> bool {
    !code.trim().is_empty()
        && code.len() <= MAX_USER_CODE_LEN
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b' ')
}

/// Parses and checks a device authorization response: an error answer is
/// [`Error::TokenRequestFailed`]-like ([`Error::AuthorizationFailed`]); a
/// URI that is not https (or loopback http) is [`Error::UnsafeUrl`] and
/// nothing is shown; a user code with controls or escapes, a missing field
/// or an interval longer than the code lives is [`Error::InvalidResponse`].
pub fn parse_device_authorization(resp: &HttpResponse) -> Result<DeviceAuthorization, Error> {
    if !(200..300).contains(&resp.status) {
        let e = oauth_error(&resp.body);
        return Err(Error::AuthorizationFailed {
            error: e.error.unwrap_or_else(|| alloc::format!("HTTP {}", resp.status)),
            description: e.error_description,
        });
    }
    let raw: RawDeviceAuthorization =
        from_json(&resp.body).ok_or_else(|| invalid("not a JSON device authorization response (RFC 8628 §3.2)"))?;
    let device_code = raw
        .device_code
        .filter(|c| !c.is_empty() && c.bytes().all(|b| (0x20..=0x7e).contains(&b)))
        .ok_or_else(|| invalid("no usable device_code"))?;
    let user_code = raw.user_code.ok_or_else(|| invalid("no user_code"))?;
    if !user_code_is_showable(&user_code) {
        return Err(invalid(
            "the user_code has characters that cannot be shown safely (only ASCII letters, digits, '-' and spaces, at most 64)",
        ));
    }
    let verification_uri = raw.verification_uri.ok_or_else(|| invalid("no verification_uri"))?;
    check_url(&verification_uri, "verification_uri")?;
    let verification_uri_complete = match raw.verification_uri_complete {
        Some(u) => {
            check_url(&u, "verification_uri_complete")?;
            Some(u)
        }
        None => None,
    };
    let expires_in_s = raw
        .expires_in
        .filter(|s| *s > 0)
        .ok_or_else(|| invalid("no expires_in"))?;
    let expires_in_ms = expires_in_s.saturating_mul(1000);
    let interval_ms = match raw.interval {
        None => DEFAULT_INTERVAL_MS,
        Some(s) => s.saturating_mul(1000).max(MIN_INTERVAL_MS),
    };
    if interval_ms >= expires_in_ms {
        return Err(invalid(&alloc::format!(
            "the poll interval ({} s) is not shorter than the code's lifetime ({expires_in_s} s)",
            interval_ms / 1000
        )));
    }
    Ok(DeviceAuthorization {
        device_code,
        user_code,
        verification_uri,
        verification_uri_complete,
        expires_in_ms,
        interval_ms,
    })
}

/// What a token poll's answer means (RFC 8628 §3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollAnswer {
    /// A token response (2xx): parse it as any token response.
    Tokens,
    /// `authorization_pending`: poll again after the interval.
    Pending,
    /// `slow_down`: poll again, 5 s slower.
    SlowDown,
    /// `access_denied`: the user said no.
    Denied,
    /// `expired_token`: the code lived out; a new sign-in is needed.
    Expired,
    /// Anything else ends the flow.
    Failed(Error),
}

/// Classifies a poll's answer.
pub fn poll_answer(resp: &HttpResponse) -> PollAnswer {
    if (200..300).contains(&resp.status) {
        return PollAnswer::Tokens;
    }
    match oauth_error(&resp.body).error.as_deref() {
        Some("authorization_pending") => PollAnswer::Pending,
        Some("slow_down") => PollAnswer::SlowDown,
        Some("access_denied") => PollAnswer::Denied,
        Some("expired_token") => PollAnswer::Expired,
        _ => PollAnswer::Failed(crate::wire::token::token_error(resp)),
    }
}

/// The interval after a `slow_down` (RFC 8628 §3.5: +5 s), capped.
pub fn slowed(interval_ms: u64) -> u64 {
    interval_ms.saturating_add(5_000).min(MAX_INTERVAL_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: alloc::vec![],
            body: body.as_bytes().to_vec(),
        }
    }

    fn parse(body: &str) -> Result<DeviceAuthorization, Error> {
        parse_device_authorization(&resp(200, body))
    }

    const OK: &str = r#"{"device_code":"D","user_code":"WDJB-MJHT","verification_uri":"https://as.example/device","verification_uri_complete":"https://as.example/device?user_code=WDJB-MJHT","expires_in":900,"interval":5}"#;

    #[test]
    fn a_good_answer_is_read_and_its_debug_hides_the_device_code() {
        let d = parse(OK).unwrap();
        assert_eq!(d.user_code, "WDJB-MJHT");
        assert_eq!(d.interval_ms, 5_000);
        assert_eq!(d.expires_in_ms, 900_000);
        assert!(!alloc::format!("{d:?}").contains("\"D\""));
    }

    #[test]
    fn hostile_uris_are_refused_before_anything_is_shown() {
        for uri in [
            "javascript:alert(1)",
            "file:///etc/passwd",
            "http://evil.example/device",
        ] {
            let body = OK.replace("https://as.example/device\"", &alloc::format!("{uri}\""));
            assert!(matches!(parse(&body), Err(Error::UnsafeUrl { .. })), "{uri}");
        }
        let body = OK.replace("https://as.example/device?user_code=WDJB-MJHT", "javascript:x");
        assert!(matches!(parse(&body), Err(Error::UnsafeUrl { .. })));
    }

    #[test]
    fn a_user_code_with_terminal_escapes_is_refused() {
        for code in ["\\u001b[2J", "AB\\nCD", "", "<b>x</b>"] {
            let body = OK.replace(
                "WDJB-MJHT\",\"verification_uri\"",
                &alloc::format!("{code}\",\"verification_uri\""),
            );
            assert!(matches!(parse(&body), Err(Error::InvalidResponse { .. })), "{code}");
        }
    }

    #[test]
    fn intervals_are_bounded() {
        assert_eq!(
            parse(&OK.replace("\"interval\":5", "\"interval\":0"))
                .unwrap()
                .interval_ms,
            1_000
        );
        assert_eq!(
            parse(&OK.replace(",\"interval\":5", "")).unwrap().interval_ms,
            DEFAULT_INTERVAL_MS
        );
        let huge = OK.replace("\"interval\":5", "\"interval\":1000000000");
        assert!(matches!(parse(&huge), Err(Error::InvalidResponse { .. })));
        assert_eq!(slowed(5_000), 10_000);
        assert_eq!(slowed(59_000), MAX_INTERVAL_MS);
    }

    #[test]
    fn poll_answers_follow_rfc_8628() {
        let e = |code: &str| resp(400, &alloc::format!("{{\"error\":\"{code}\"}}"));
        assert_eq!(poll_answer(&e("authorization_pending")), PollAnswer::Pending);
        assert_eq!(poll_answer(&e("slow_down")), PollAnswer::SlowDown);
        assert_eq!(poll_answer(&e("access_denied")), PollAnswer::Denied);
        assert_eq!(poll_answer(&e("expired_token")), PollAnswer::Expired);
        assert!(matches!(poll_answer(&e("invalid_client")), PollAnswer::Failed(_)));
        assert_eq!(poll_answer(&resp(200, "{}")), PollAnswer::Tokens);
    }
}
