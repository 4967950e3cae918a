//! The authorization response at the loopback redirect: `state` first
//! (RFC 6749 §10.12, constant time, single use), then RFC 9207 `iss` per the
//! MCP 2026-07-28 "Authorization Response Validation" table, then `error` or
//! `code`.

use alloc::string::String;
use alloc::vec::Vec;
use subtle::ConstantTimeEq;

/// What a request that reached the callback means for the flow.
#[derive(Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not a valid response for this flow; report it and keep waiting.
    Rejected(String),
    /// `iss` does not match: stop, and show none of the AS's error text.
    IssMismatch,
    /// The user declined at the authorization server (`access_denied`).
    Denied,
    /// The AS returned another error.
    Failed {
        /// OAuth error code.
        error: String,
        /// The AS's description.
        description: Option<String>,
    },
    /// The authorization code (secret: single use, never logged).
    Code(String),
}

impl core::fmt::Debug for Verdict {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Verdict::Code(_) => f.write_str("Code(<redacted>)"),
            Verdict::Rejected(r) => write!(f, "Rejected({r:?})"),
            Verdict::IssMismatch => f.write_str("IssMismatch"),
            Verdict::Denied => f.write_str("Denied"),
            Verdict::Failed { error, .. } => write!(f, "Failed({error:?})"),
        }
    }
}

/// Checks a callback query against the flow's expectations.
///
/// `iss_supported` is the AS's `authorization_response_iss_parameter_supported`.
pub fn check(query: &str, expected_state: &str, issuer: &str, iss_supported: bool) -> Verdict {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (i, (k, v)) in form_urlencoded::parse(query.trim_start_matches('?').as_bytes()).enumerate() {
        // A real response has a handful; a flood is not worth scanning.
        if i >= 32 {
            return Verdict::Rejected("too many parameters".into());
        }
        // RFC 6749 §3.1: parameters must not be repeated.
        if pairs.iter().any(|(pk, _)| *pk == k) {
            return Verdict::Rejected("a parameter appears twice".into());
        }
        pairs.push((k.into_owned(), v.into_owned()));
    }
    let get = |n: &str| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());

    // 1. state, before anything else is read.
    match get("state") {
        None => return Verdict::Rejected("the request has no state parameter".into()),
        Some(s) if !bool::from(s.as_bytes().ct_eq(expected_state.as_bytes())) => {
            return Verdict::Rejected("the state parameter does not match this login".into());
        }
        Some(_) => {}
    }

    // 2. iss (RFC 9207 §2.4), simple string comparison, no normalization.
    match (iss_supported, get("iss")) {
        (_, Some(iss)) if iss != issuer => return Verdict::IssMismatch,
        (true, None) => return Verdict::IssMismatch,
        _ => {}
    }

    // 3. error or code.
    if let Some(error) = get("error") {
        if error == "access_denied" {
            return Verdict::Denied;
        }
        return Verdict::Failed {
            error: String::from(error),
            description: get("error_description").map(String::from),
        };
    }
    match get("code") {
        Some(code) if !code.is_empty() => Verdict::Code(String::from(code)),
        _ => Verdict::Rejected("the request has neither code nor error".into()),
    }
}

/// The query of a redirect URL the user pasted (when the browser could not
/// reach the loopback listener): it must be `redirect_uri` itself, parsed by
/// the same strict parser as every other URL, with a query. The query then
/// goes through [`check`] like a redirect that arrived.
pub fn pasted_query(line: &str, redirect_uri: &str) -> Result<String, &'static str> {
    let url = crate::primitives::http_url::HttpUrl::parse(line.trim())
        .map_err(|_| "that is not a URL; paste the whole address from the browser's address bar")?;
    let without_query = url.as_str().split(['?', '#']).next().unwrap_or("");
    if without_query != redirect_uri {
        return Err("that URL is not the redirect address of this login");
    }
    match url.query() {
        Some(q) if !q.is_empty() => Ok(String::from(q)),
        _ => Err("that URL has no query; copy the address after the browser came back (it contains code= and state=)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "https://auth.example.com";

    // RFC 6749 §10.12: state is checked first.
    #[test]
    fn state_missing_or_wrong_is_rejected() {
        assert!(matches!(check("code=abc", "s1", ISS, false), Verdict::Rejected(_)));
        assert!(matches!(
            check("code=abc&state=s2", "s1", ISS, false),
            Verdict::Rejected(_)
        ));
        assert!(matches!(
            check("code=abc&state=s1x", "s1", ISS, false),
            Verdict::Rejected(_)
        ));
        assert!(matches!(
            check("code=a&state=s1&state=s1", "s1", ISS, false),
            Verdict::Rejected(_)
        ));
        // An error with a bad state is never read, let alone shown.
        assert!(matches!(
            check("error=access_denied&state=zz", "s1", ISS, false),
            Verdict::Rejected(_)
        ));
        assert_eq!(
            check("code=abc&state=s1", "s1", ISS, false),
            Verdict::Code("abc".into())
        );
    }

    // MCP 2026-07-28 "Authorization Response Validation", the four rows.
    #[test]
    fn iss_table() {
        let with = |iss: &str| format!("code=c&state=s&iss={iss}");
        // supported + present: compare.
        assert_eq!(check(&with(ISS), "s", ISS, true), Verdict::Code("c".into()));
        assert_eq!(
            check(&with("https://evil.example"), "s", ISS, true),
            Verdict::IssMismatch
        );
        // supported + absent: reject.
        assert_eq!(check("code=c&state=s", "s", ISS, true), Verdict::IssMismatch);
        // not supported + present: still compare.
        assert_eq!(
            check(&with("https://evil.example"), "s", ISS, false),
            Verdict::IssMismatch
        );
        // not supported + absent: proceed.
        assert_eq!(check("code=c&state=s", "s", ISS, false), Verdict::Code("c".into()));
        // No normalization: trailing slash, case, default port all differ.
        for v in [
            "https://auth.example.com/",
            "HTTPS://auth.example.com",
            "https://auth.example.com:443",
        ] {
            assert_eq!(check(&with(v), "s", ISS, true), Verdict::IssMismatch, "{v}");
        }
        // Percent-decoding of the form value happens first (RFC 9207 §2.4).
        assert_eq!(
            check("code=c&state=s&iss=https%3A%2F%2Fauth.example.com", "s", ISS, true),
            Verdict::Code("c".into())
        );
    }

    #[test]
    fn errors_after_state_and_iss() {
        assert_eq!(check("error=access_denied&state=s", "s", ISS, false), Verdict::Denied);
        assert_eq!(
            check("error=server_error&error_description=boom&state=s", "s", ISS, false),
            Verdict::Failed {
                error: "server_error".into(),
                description: Some("boom".into())
            }
        );
        // On iss mismatch the error is not acted on.
        assert_eq!(
            check("error=access_denied&state=s&iss=https://x", "s", ISS, false),
            Verdict::IssMismatch
        );
        assert!(!format!("{:?}", Verdict::Code("secret".into())).contains("secret"));
    }

    #[test]
    fn pasted_urls_must_be_the_redirect_with_a_query() {
        let r = "http://127.0.0.1:4000/callback";
        assert_eq!(
            pasted_query(" http://127.0.0.1:4000/callback?code=x&state=y\n", r),
            Ok(String::from("code=x&state=y"))
        );
        for bad in [
            "hello",
            "https://evil.example/callback?code=x",
            "http://127.0.0.1:4001/callback?code=x",
            "http://127.0.0.1:4000/callbackx?code=x",
            "http://127.0.0.1:4000/callback",
            "http://127.0.0.1:4000/callback?",
            "http://user@127.0.0.1:4000/callback?code=x",
            "http://127.0.0.1:4000\\callback?code=x",
        ] {
            assert!(pasted_query(bad, r).is_err(), "{bad}");
        }
    }
}
