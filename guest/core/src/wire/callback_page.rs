//! The page the user's browser lands on at the loopback listener (RFC 8252
//! §7.3), the one template every host serves: the outcome in a sentence
//! (signed in, declined, failed and why, a stray request ignored) and what
//! to do next. Inline CSS only, allowed by its hash under a
//! Content-Security-Policy that allows nothing else; `no-store`; readable
//! in light and dark mode; every piece of text that came from a server is
//! escaped and shortened.

use alloc::string::String;
use alloc::vec::Vec;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use crate::effect::Page;

/// What the page reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageOutcome<'a> {
    /// Tokens were obtained (and saved) for `server`.
    SignedIn {
        /// The MCP server URL.
        server: &'a str,
    },
    /// The user (or the AS on their behalf) said no.
    Declined {
        /// The MCP server URL.
        server: &'a str,
    },
    /// The sign-in ended without a token; `reason` is the engine's message.
    Failed {
        /// The MCP server URL.
        server: &'a str,
        /// Why (may hold server text: escaped).
        reason: &'a str,
    },
    /// A request that was not this sign-in's redirect (wrong or no `state`).
    Ignored,
}

const STYLE: &str = "\
:root{color-scheme:light dark;--bg:#f6f7f9;--card:#fff;--fg:#1b1f24;--muted:#57606a;--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--line:#d0d7de}\
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--card:#161b22;--fg:#e6edf3;--muted:#9198a1;--ok:#3fb950;--bad:#f85149;--warn:#d29922;--line:#30363d}}\
*{box-sizing:border-box}\
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;background:var(--bg);color:var(--fg);font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;padding:24px}\
main{max-width:34rem;width:100%;background:var(--card);border:1px solid var(--line);border-radius:12px;padding:32px}\
.mark{width:48px;height:48px;border-radius:50%;display:flex;align-items:center;justify-content:center;font-size:28px;font-weight:700;color:#fff;margin-bottom:16px}\
.ok .mark{background:var(--ok)}.bad .mark{background:var(--bad)}.warn .mark{background:var(--warn)}\
h1{font-size:1.4rem;margin:0 0 8px}\
p{margin:0 0 12px;overflow-wrap:anywhere}\
.next{color:var(--muted);margin:16px 0 0}\
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.9em}\
footer{color:var(--muted);font-size:.8rem;margin-top:24px}";

/// The most characters of a reason shown.
const MAX_REASON: usize = 400;

/// Escapes text for HTML content and attributes; control characters become
/// U+FFFD; at most `max` characters (then an ellipsis).
pub fn escape(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max) + 16);
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The Content-Security-Policy: nothing but this page's own style.
pub fn content_security_policy() -> String {
    let hash = STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
    alloc::format!(
        "default-src 'none'; style-src 'sha256-{hash}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// Renders the page for `outcome`.
pub fn render(outcome: PageOutcome<'_>) -> Page {
    let (class, mark, title, detail, next, status) = match outcome {
        PageOutcome::SignedIn { server } => (
            "ok",
            "&#10003;",
            "Signed in",
            alloc::format!("mcp-oauth is signed in to <code>{}</code>.", escape(server, 300)),
            "You can close this tab and return to your application.",
            200,
        ),
        PageOutcome::Declined { server } => (
            "warn",
            "&#8211;",
            "Sign-in declined",
            alloc::format!(
                "The sign-in to <code>{}</code> was declined. Nothing was saved.",
                escape(server, 300)
            ),
            "To sign in after all, start it again from your application. You can close this tab.",
            200,
        ),
        PageOutcome::Failed { server, reason } => (
            "bad",
            "!",
            "Sign-in failed",
            alloc::format!(
                "The sign-in to <code>{}</code> failed: {}",
                escape(server, 300),
                escape(reason, MAX_REASON)
            ),
            "Your application has the details. You can close this tab.",
            200,
        ),
        PageOutcome::Ignored => (
            "warn",
            "?",
            "Request ignored",
            String::from("This request does not belong to the sign-in in progress and was ignored."),
            "If you started a sign-in, finish it in the tab it opened. You can close this tab.",
            400,
        ),
    };
    let body = alloc::format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta name=\"color-scheme\" content=\"light dark\"><title>{title} - mcp-oauth</title>\
<style>{STYLE}</style></head><body><main class=\"{class}\"><div class=\"mark\" aria-hidden=\"true\">{mark}</div>\
<h1>{title}</h1><p>{detail}</p><p class=\"next\">{next}</p><footer>mcp-oauth</footer></main></body></html>"
    );
    let headers: Vec<(String, String)> = [
        ("content-type", String::from("text/html; charset=utf-8")),
        ("cache-control", String::from("no-store")),
        ("content-security-policy", content_security_policy()),
        ("x-content-type-options", String::from("nosniff")),
        ("referrer-policy", String::from("no-referrer")),
    ]
    .into_iter()
    .map(|(k, v)| (String::from(k), v))
    .collect();
    Page { status, headers, body }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_text_is_escaped_and_shortened() {
        let reason = "<script>alert(1)</script>\u{1b}[2J".repeat(40);
        let p = render(PageOutcome::Failed {
            server: "https://mcp.example/\"><img>",
            reason: &reason,
        });
        assert!(!p.body.contains("<script>") && !p.body.contains("<img>") && !p.body.contains('\u{1b}'));
        assert!(p.body.contains("&lt;script&gt;") && p.body.contains('…'));
    }

    #[test]
    fn each_outcome_says_what_happened() {
        let s = "https://mcp.example/mcp";
        let text = |o| render(o).body;
        assert!(text(PageOutcome::SignedIn { server: s }).contains("Signed in"));
        assert!(text(PageOutcome::Declined { server: s }).contains("declined"));
        let failed = text(PageOutcome::Failed {
            server: s,
            reason: "invalid_grant",
        });
        assert!(failed.contains("failed") && failed.contains("invalid_grant"));
        assert!(text(PageOutcome::Ignored).contains("ignored"));
        assert_eq!(render(PageOutcome::Ignored).status, 400);
    }

    #[test]
    fn the_policy_allows_only_the_pages_own_style() {
        let p = render(PageOutcome::SignedIn {
            server: "https://x.example",
        });
        let csp = p.headers.iter().find(|(k, _)| k == "content-security-policy").unwrap();
        assert!(csp.1.starts_with("default-src 'none'; style-src 'sha256-"));
        assert!(p.headers.iter().any(|(k, v)| k == "cache-control" && v == "no-store"));
        assert!(!p.body.contains("http://") && !p.body.contains("src="));
    }
}
