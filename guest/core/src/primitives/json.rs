//! JSON in and out of the engine, and the OAuth error body (RFC 6749 §5.2)
//! that token, registration and exchange endpoints share.

use alloc::string::String;
use miniserde::Deserialize;
use miniserde::json;

/// Parses JSON into `T`; anything that is not UTF-8 JSON of that shape is `None`.
pub fn from_json<T: Deserialize>(bytes: &[u8]) -> Option<T> {
    json::from_str(core::str::from_utf8(bytes).ok()?).ok()
}

/// An OAuth error body (RFC 6749 §5.2).
#[derive(Deserialize, Default)]
pub struct OAuthErrorBody {
    /// Error code.
    pub error: Option<String>,
    /// Description.
    pub error_description: Option<String>,
}

/// Reads an OAuth error body; anything else reads as an empty one.
pub fn oauth_error(body: &[u8]) -> OAuthErrorBody {
    from_json(body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_and_garbage() {
        let e = oauth_error(br#"{"error":"invalid_grant","error_description":"gone"}"#);
        assert_eq!(e.error.as_deref(), Some("invalid_grant"));
        assert_eq!(e.error_description.as_deref(), Some("gone"));
        assert!(oauth_error(b"<html>").error.is_none());
        assert!(oauth_error(b"\xff").error.is_none());
        assert!(from_json::<OAuthErrorBody>(b"[1]").is_none());
    }
}
