//! Scope selection (MCP 2026-07-28 "Scope Selection Strategy") and the
//! step-up union ("Step-Up Authorization Flow").

use alloc::string::String;
use alloc::vec::Vec;

/// Splits a space-separated scope string into its scopes, in order, without
/// duplicates or empty entries.
pub fn split(scope: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        if !out.iter().any(|o| o == s) {
            out.push(String::from(s));
        }
    }
    out
}

/// Joins scopes with single spaces.
pub fn join(scopes: &[String]) -> String {
    scopes.join(" ")
}

/// The union of `held` and `challenged`, `held` first, no duplicates.
pub fn union(held: &[String], challenged: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in held.iter().chain(challenged) {
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    out
}

/// The scopes for an initial authorization, in the spec's priority order:
/// an explicit configuration wins; then the challenge's `scope`; then the
/// PRM's `scopes_supported`; else none (the `scope` parameter is omitted).
///
/// `offline_access` is added only when the authorization server lists it in
/// its `scopes_supported` ("Refresh Tokens": MAY add when listed) and a scope
/// is being sent at all: added to an omitted scope it would narrow the AS's
/// default grant to nothing but refresh.
pub fn select(
    configured: Option<&str>,
    challenged: Option<&str>,
    prm_supported: Option<&[String]>,
    as_supported: Option<&[String]>,
    want_offline_access: bool,
) -> Vec<String> {
    let mut scopes = if let Some(c) = configured.filter(|c| !c.trim().is_empty()) {
        split(c)
    } else if let Some(c) = challenged.filter(|c| !c.trim().is_empty()) {
        split(c)
    } else if let Some(s) = prm_supported {
        s.iter().filter(|s| !s.is_empty()).cloned().collect()
    } else {
        Vec::new()
    };
    let as_lists_offline = as_supported.is_some_and(|s| s.iter().any(|x| x == OFFLINE_ACCESS));
    if want_offline_access && as_lists_offline && !scopes.is_empty() && !scopes.iter().any(|s| s == OFFLINE_ACCESS) {
        scopes.push(String::from(OFFLINE_ACCESS));
    }
    scopes
}

/// The OIDC scope that asks for a refresh token.
pub const OFFLINE_ACCESS: &str = "offline_access";

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| String::from(*x)).collect()
    }

    // MCP 2026-07-28 "Scope Selection Strategy", priority 1: the challenge.
    #[test]
    fn challenge_scope_wins_over_scopes_supported() {
        let got = select(None, Some("files:read"), Some(&v(&["a", "b"])), None, true);
        assert_eq!(got, v(&["files:read"]));
    }

    // Priority 2: all of scopes_supported; else omitted.
    #[test]
    fn scopes_supported_then_omitted() {
        assert_eq!(select(None, None, Some(&v(&["a", "b"])), None, true), v(&["a", "b"]));
        assert!(select(None, None, None, Some(&v(&["offline_access"])), true).is_empty());
    }

    // "Refresh Tokens": offline_access only when the AS lists it.
    #[test]
    fn offline_access_only_when_listed() {
        let listed = v(&["a", "offline_access"]);
        assert_eq!(
            select(None, Some("a"), None, Some(&listed), true),
            v(&["a", "offline_access"])
        );
        assert_eq!(select(None, Some("a"), None, Some(&v(&["a"])), true), v(&["a"]));
        assert_eq!(select(None, Some("a"), None, None, true), v(&["a"]));
        assert_eq!(select(None, Some("a"), None, Some(&listed), false), v(&["a"]));
    }

    #[test]
    fn configured_scope_overrides() {
        assert_eq!(select(Some("x  y"), Some("a"), None, None, false), v(&["x", "y"]));
    }

    // "Step-Up Authorization Flow": union of held and challenged scopes.
    #[test]
    fn union_keeps_held_scopes() {
        assert_eq!(union(&v(&["a", "b"]), &v(&["b", "c"])), v(&["a", "b", "c"]));
        assert_eq!(split(" a  b a "), vec![String::from("a"), String::from("b")]);
    }
}
