//! `WWW-Authenticate` parsing: RFC 9110 §11.6.1 (challenge syntax) and
//! RFC 6750 §3 (the Bearer parameters), as MCP 2026-07-28 "Protected Resource
//! Metadata Discovery Requirements" and "Scope Challenge Handling" use them.
//!
//! Written by hand because no small `no_std` crate parses the full grammar:
//! several challenges in one header value, token68, quoted strings with
//! escapes. The parser works on bytes, never indexes out of range and never
//! panics, whatever the server sends.

use alloc::string::String;
use alloc::vec::Vec;

/// One challenge: `scheme [token68 | param, param, ...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The auth scheme as sent (compare case-insensitively).
    pub scheme: String,
    /// `token68` credentials, if the challenge carries them instead of params.
    pub token68: Option<String>,
    /// Parameters, names lower-cased (they are case-insensitive), values unquoted.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// The value of parameter `name` (case-insensitive), if present.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the engine needs from a 401/403: the Bearer challenge's parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BearerChallenge {
    /// RFC 9728 §5.1: where the protected resource metadata lives.
    pub resource_metadata: Option<String>,
    /// RFC 6750 §3: the scopes the request needs (space-separated).
    pub scope: Option<String>,
    /// RFC 6750 §3.1: `invalid_token`, `insufficient_scope`, ...
    pub error: Option<String>,
    /// Human-readable text from the server.
    pub error_description: Option<String>,
}

impl BearerChallenge {
    /// Extracts the Bearer challenge from any number of header values.
    ///
    /// The first `Bearer` challenge wins; if there is none, the first challenge
    /// that names a `resource_metadata` is used (some servers use another
    /// scheme name for the same parameters).
    pub fn from_headers<S: AsRef<str>>(values: &[S]) -> Self {
        // A plain loop: `flat_map` costs the component a kilobyte of iterator code.
        let mut all: Vec<Challenge> = Vec::new();
        for v in values {
            all.extend(parse(v.as_ref()));
        }
        let chosen = all
            .iter()
            .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))
            .or_else(|| all.iter().find(|c| c.param("resource_metadata").is_some()));
        let Some(c) = chosen else {
            return Self::default();
        };
        let get = |n: &str| c.param(n).map(String::from);
        Self {
            resource_metadata: get("resource_metadata"),
            scope: get("scope"),
            error: get("error"),
            error_description: get("error_description"),
        }
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn peek_at(&self, k: usize) -> Option<u8> {
        self.s.get(self.i + k).copied()
    }
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }
    fn skip_ws_and_commas(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.i += 1;
        }
    }
    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &[u8] {
        let start = self.i;
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
        self.s.get(start..self.i).unwrap_or_default()
    }
    /// Reads a quoted-string after its opening quote; handles `\x` escapes.
    /// An unterminated string ends at the end of input.
    fn quoted(&mut self) -> String {
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            self.i += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    if let Some(n) = self.peek() {
                        out.push(n);
                        self.i += 1;
                    }
                }
                _ => out.push(b),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    /// Skips to just past the next comma (recovery from malformed input).
    fn skip_past_comma(&mut self) {
        while let Some(b) = self.peek() {
            self.i += 1;
            if b == b',' {
                break;
            }
        }
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Parses one header value into its challenges. Malformed parts are skipped;
/// what can be read is returned.
pub fn parse(value: &str) -> Vec<Challenge> {
    let mut c = Cursor {
        s: value.as_bytes(),
        i: 0,
    };
    let mut out: Vec<Challenge> = Vec::new();
    loop {
        c.skip_ws_and_commas();
        if c.peek().is_none() {
            break;
        }
        let name = c.take_while(is_tchar);
        if name.is_empty() {
            // Not a token where one must start: skip this list element.
            c.skip_past_comma();
            continue;
        }
        let name = lossy(name);
        let after_name = c.i;
        c.skip_ws();
        if c.peek() == Some(b'=') && !out.is_empty() && c.peek_at(1) != Some(b'=') {
            // `name = value`: a parameter of the current challenge.
            c.i += 1;
            c.skip_ws();
            let val = if c.peek() == Some(b'"') {
                c.i += 1;
                c.quoted()
            } else {
                lossy(c.take_while(is_tchar))
            };
            if let Some(ch) = out.last_mut() {
                ch.params.push((name.to_ascii_lowercase(), val));
            }
            continue;
        }
        // A new challenge: `scheme`, then optionally token68 or params.
        c.i = after_name;
        let mut ch = Challenge {
            scheme: name,
            token68: None,
            params: Vec::new(),
        };
        let had_space = matches!(c.peek(), Some(b' ' | b'\t'));
        c.skip_ws();
        if had_space && c.peek().is_some_and(is_token68_char) {
            // Either token68 (`abc==`, alone in its list element) or the first
            // auth-param (`name=value`). Look past the token characters and
            // any `=` padding to tell them apart.
            let start = c.i;
            c.take_while(is_token68_char);
            c.take_while(|b| b == b'=');
            let token_end = c.i;
            c.skip_ws();
            if matches!(c.peek(), None | Some(b',')) {
                ch.token68 = Some(lossy(c.s.get(start..token_end).unwrap_or_default()));
            } else {
                // Parameters follow: rewind and let the loop read them.
                c.i = start;
            }
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6750 §3 example, MCP 2026-07-28 "Scope Selection Strategy" example.
    #[test]
    fn bearer_with_resource_metadata_and_scope() {
        let h = r#"Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource", scope="files:read""#;
        let b = BearerChallenge::from_headers(&[h]);
        assert_eq!(
            b.resource_metadata.as_deref(),
            Some("https://mcp.example.com/.well-known/oauth-protected-resource")
        );
        assert_eq!(b.scope.as_deref(), Some("files:read"));
    }

    // RFC 9110 §11.6.1: several challenges in one header, case-insensitive
    // scheme and parameter names.
    #[test]
    fn several_challenges_in_one_value() {
        let h = r#"Basic realm="x", BEARER Realm="api", Error="insufficient_scope", SCOPE="a b", error_description="need \"write\"""#;
        let cs = parse(h);
        assert_eq!(cs.len(), 2);
        assert_eq!(cs[0].scheme, "Basic");
        assert_eq!(cs[0].param("realm"), Some("x"));
        let b = BearerChallenge::from_headers(&[h]);
        assert_eq!(b.error.as_deref(), Some("insufficient_scope"));
        assert_eq!(b.scope.as_deref(), Some("a b"));
        assert_eq!(b.error_description.as_deref(), Some(r#"need "write""#));
    }

    // RFC 9110 §11.6.1: a header field may be repeated.
    #[test]
    fn several_header_values() {
        let b =
            BearerChallenge::from_headers(&["Negotiate abc==", r#"Bearer resource_metadata="https://a.example/prm""#]);
        assert_eq!(b.resource_metadata.as_deref(), Some("https://a.example/prm"));
    }

    // RFC 9110 §11.6.1: token68 and unquoted token values.
    #[test]
    fn token68_and_token_values() {
        let cs = parse("Negotiate YIIB+w/abc==, Bearer error=invalid_token, Basic");
        assert_eq!(cs.len(), 3);
        assert_eq!(cs[0].token68.as_deref(), Some("YIIB+w/abc=="));
        assert_eq!(cs[1].param("error"), Some("invalid_token"));
        assert_eq!(cs[2].scheme, "Basic");
        assert!(cs[2].params.is_empty());
        let cs = parse("Custom abc=");
        assert_eq!(cs[0].token68.as_deref(), Some("abc="));
    }

    #[test]
    fn bare_bearer_and_whitespace_around_equals() {
        let b = BearerChallenge::from_headers(&["Bearer"]);
        assert_eq!(b, BearerChallenge::default());
        let b = BearerChallenge::from_headers(&[r#"Bearer  scope = "x y" ,  error = "e""#]);
        assert_eq!(b.scope.as_deref(), Some("x y"));
        assert_eq!(b.error.as_deref(), Some("e"));
    }

    #[test]
    fn malformed_input_is_survived() {
        for h in [
            "",
            ",,,",
            "Bearer scope=\"unterminated",
            "Bearer =x, scope=\"a\"",
            "=,=,=",
            "Bearer scope=\"a\\",
            "\"Bearer\"",
            "Bearer é=ü, scope=\"ß\"",
        ] {
            let _ = parse(h);
            let _ = BearerChallenge::from_headers(&[h]);
        }
        let b = BearerChallenge::from_headers(&["Bearer scope=\"unterminated"]);
        assert_eq!(b.scope.as_deref(), Some("unterminated"));
    }
}
