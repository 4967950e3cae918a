//! URL safety: every URL that reaches an effect passes through here first.
//!
//! Rule (docs/architecture.md; MCP 2026-07-28 "Communication Security"):
//! a URL taken from metadata, a registration response or a header is used only
//! when it is `https`, or `http` on a loopback host. Everything else
//! (`javascript:`, `data:`, `file:`, other schemes, userinfo, fragments on
//! endpoints, whitespace or control characters that different parsers read
//! differently) is refused before any effect uses it (CVE-2025-6514).

use alloc::string::{String, ToString};

use crate::error::Error;
use crate::primitives::http_url::{Host, HttpUrl};

/// Parses `raw` strictly and accepts it only if it is safe to fetch or open.
///
/// `what` names the field the URL came from, so the error can say which one
/// was refused.
pub fn check_url(raw: &str, what: &'static str) -> Result<HttpUrl, Error> {
    let refuse = |reason: &str| Error::UnsafeUrl {
        what,
        url: printable(raw),
        reason: reason.to_string(),
    };
    let url = HttpUrl::parse(raw).map_err(refuse)?;
    if url.fragment().is_some() {
        return Err(refuse("it has a fragment"));
    }
    if url.scheme() == "http" && !is_loopback(&url) {
        return Err(refuse(
            "plain http is allowed only to a loopback host (localhost, 127.0.0.0/8, [::1])",
        ));
    }
    Ok(url)
}

/// True when the URL's host is `localhost`, an address in 127.0.0.0/8 or `::1`.
pub fn is_loopback(url: &HttpUrl) -> bool {
    match url.host() {
        Host::Domain(d) => d == "localhost",
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// Checks the redirect URI the host's listener reports: it must be plain
/// `http` on a loopback IP literal (RFC 8252 §7.3, §8.3), with no query or
/// fragment.
pub fn check_loopback_redirect(raw: &str) -> Result<HttpUrl, Error> {
    let url = check_url(raw, "redirect_uri")?;
    let ip_literal = matches!(url.host(), Host::Ipv4(_) | Host::Ipv6(_));
    if url.scheme() != "http" || !ip_literal || url.query().is_some() {
        return Err(Error::UnsafeUrl {
            what: "redirect_uri",
            url: printable(raw),
            reason: "the callback must be http on a loopback IP address, with no query".into(),
        });
    }
    Ok(url)
}

/// A copy of an untrusted URL that is safe to put in an error message: cut
/// short and stripped of control characters (no terminal escapes).
pub fn printable(raw: &str) -> String {
    const MAX: usize = 200;
    let mut out: String = raw
        .chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .take(MAX)
        .collect();
    if raw.chars().count() > MAX {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // MCP "Communication Security": https, or http on loopback only.
    #[test]
    fn accepts_https_and_loopback_http() {
        for ok in [
            "https://auth.example.com/authorize",
            "https://auth.example.com:8443/a?b=c",
            "http://localhost:3000/cb",
            "http://LOCALHOST/x",
            "http://127.0.0.1:9/",
            "http://127.5.6.7/",
            "http://[::1]:8080/",
        ] {
            assert!(check_url(ok, "t").is_ok(), "{ok} should be accepted");
        }
    }

    // CVE-2025-6514: nothing but http(s) ever reaches the browser opener.
    #[test]
    fn refuses_dangerous_schemes_and_tricks() {
        for bad in [
            "javascript:alert(1)",
            "data:text/html,<script>",
            "file:///etc/passwd",
            "ftp://example.com/",
            "vbscript:msgbox",
            "http://example.com/",
            "http://localhost.evil.com/",
            "http://127.0.0.1.nip.io/",
            "https://user:pass@example.com/",
            "https://localhost@evil.com/",
            "https://example.com/#frag",
            " https://example.com/",
            "https://example.com/a b",
            "https:\\\\evil.com",
            "https://example.com/\n",
            "",
            "/relative/path",
            "https://exa$(touch /tmp/x)mple.com",
        ] {
            assert!(check_url(bad, "t").is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn redirect_uri_must_be_loopback_ip_http() {
        assert!(check_loopback_redirect("http://127.0.0.1:4000/callback").is_ok());
        assert!(check_loopback_redirect("http://[::1]:4000/callback").is_ok());
        assert!(check_loopback_redirect("http://localhost:4000/callback").is_err());
        assert!(check_loopback_redirect("https://127.0.0.1:4000/callback").is_err());
        assert!(check_loopback_redirect("http://127.0.0.1:4000/callback?x=1").is_err());
    }

    #[test]
    fn printable_strips_control_characters() {
        let p = printable("https://e.com/\u{1b}[31mred");
        assert!(!p.contains('\u{1b}'));
    }
}
