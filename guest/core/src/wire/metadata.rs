//! Discovery: protected resource metadata (RFC 9728), authorization server
//! metadata (RFC 8414 + OIDC Discovery, in the order of MCP 2026-07-28
//! "Authorization Server Metadata Discovery"), and the 2025-03-26 legacy
//! fallbacks ("Authorization Base URL", "Fallbacks for Servers without
//! Metadata Discovery").

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use miniserde::{Deserialize, Serialize};

use crate::error::Error;
use crate::primitives::http_url::HttpUrl;
use crate::primitives::url_safety::check_url;

/// RFC 9728 §3.1 well-known suffix.
pub const PRM_WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";
/// RFC 8414 §3.1 well-known suffix.
pub const OAUTH_WELL_KNOWN: &str = "/.well-known/oauth-authorization-server";
/// OIDC Discovery 1.0 §4 suffix.
pub const OIDC_WELL_KNOWN: &str = "/.well-known/openid-configuration";

/// The URL's path without a terminating slash; empty for the root.
fn trimmed_path(url: &HttpUrl) -> &str {
    url.path().trim_end_matches('/')
}

/// Where to look for protected resource metadata, in order (MCP 2026-07-28
/// "Protected Resource Metadata Discovery Requirements"): the challenge's
/// `resource_metadata` first; then the path-aware well-known URI; then the
/// root one. The path-aware URI is skipped when the server sits at the root.
pub fn prm_candidates(server: &HttpUrl, from_header: Option<&str>) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    if let Some(h) = from_header {
        out.push(String::from(check_url(h, "resource_metadata")?.as_str()));
    }
    let origin = server.origin();
    let path = trimmed_path(server);
    if !path.is_empty() {
        out.push(format!("{origin}{PRM_WELL_KNOWN}{path}"));
    }
    out.push(format!("{origin}{PRM_WELL_KNOWN}"));
    out.dedup();
    Ok(out)
}

/// Protected resource metadata (RFC 9728 §2), the fields the engine uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceMetadata {
    /// The resource identifier, kept verbatim: sent as `resource` exactly so.
    pub resource: String,
    /// Issuers of the authorization servers that protect it.
    pub authorization_servers: Vec<String>,
    /// Scopes the resource uses for basic functionality.
    pub scopes_supported: Option<Vec<String>>,
    /// RFC 9449 §5.2 (as RFC 9728 names it): only DPoP-bound tokens are
    /// accepted.
    pub dpop_bound_access_tokens_required: Option<bool>,
}

/// Why a PRM document was not used.
#[derive(Debug)]
pub enum PrmRejection {
    /// Unusable document: try the next candidate.
    Invalid(String),
    /// A valid document for another resource: stop (RFC 9728 §3.3).
    Fatal(Error),
}

/// Parses and validates a PRM document fetched for `server`.
pub fn parse_prm(body: &[u8], server_url: &str, server: &HttpUrl) -> Result<ResourceMetadata, PrmRejection> {
    let prm: ResourceMetadata = crate::primitives::json::from_json(body).ok_or_else(|| {
        PrmRejection::Invalid(
            "not a protected resource metadata document (JSON with resource and authorization_servers)".into(),
        )
    })?;
    if prm.authorization_servers.is_empty() {
        return Err(PrmRejection::Invalid("no authorization_servers".into()));
    }
    if !resource_covers(&prm.resource, server) {
        return Err(PrmRejection::Fatal(Error::ResourceMismatch {
            resource: crate::primitives::url_safety::printable(&prm.resource),
            server: String::from(server_url),
        }));
    }
    Ok(prm)
}

/// RFC 9728 §3.3 / §7.3: the PRM `resource` must identify this server: same
/// origin, and the server's path at or under the resource's path (segment by
/// segment, so `/mcp` does not cover `/mcp-evil`).
pub fn resource_covers(resource: &str, server: &HttpUrl) -> bool {
    let Ok(res) = HttpUrl::parse(resource) else {
        return false;
    };
    if res.fragment().is_some() || res.origin() != server.origin() {
        return false;
    }
    let rp = trimmed_path(&res);
    let sp = trimmed_path(server);
    rp.is_empty() || sp == rp || sp.strip_prefix(rp).is_some_and(|rest| rest.starts_with('/'))
}

/// Authorization server metadata (RFC 8414 §2), the fields the engine uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AsMetadata {
    /// The issuer identifier.
    pub issuer: String,
    /// Where the browser goes.
    pub authorization_endpoint: String,
    /// Where codes and refresh tokens are exchanged.
    pub token_endpoint: String,
    /// RFC 7591 registration endpoint.
    pub registration_endpoint: Option<String>,
    /// Scopes the AS knows (used only to decide on `offline_access`).
    pub scopes_supported: Option<Vec<String>>,
    /// PKCE methods; must include `S256`.
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// Client authentication methods at the token endpoint.
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// Client ID Metadata Document support.
    pub client_id_metadata_document_supported: Option<bool>,
    /// RFC 9207 §3: the AS sends `iss` in authorization responses.
    pub authorization_response_iss_parameter_supported: Option<bool>,
    /// RFC 9449 §5.1: the JWS algorithms it accepts in DPoP proofs.
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
    /// RFC 8628 §4: where a device asks for a user code (checked when used).
    pub device_authorization_endpoint: Option<String>,
    /// RFC 7009 / RFC 8414 §2: where tokens are revoked (checked when used).
    pub revocation_endpoint: Option<String>,
}

impl AsMetadata {
    /// True when the AS advertises PKCE S256.
    pub fn supports_s256(&self) -> bool {
        self.code_challenge_methods_supported
            .as_ref()
            .is_some_and(|m| m.iter().any(|x| x == "S256"))
    }

    /// Refuses any endpoint that is not https (or loopback http).
    pub fn check_endpoints(&self) -> Result<(), Error> {
        check_url(&self.authorization_endpoint, "authorization_endpoint")?;
        check_url(&self.token_endpoint, "token_endpoint")?;
        if let Some(r) = &self.registration_endpoint {
            check_url(r, "registration_endpoint")?;
        }
        Ok(())
    }
}

/// The metadata URLs to try for `issuer`, in the spec's priority order:
/// three for an issuer with a path, two without.
pub fn as_metadata_candidates(issuer: &str) -> Result<Vec<String>, Error> {
    let url = check_url(issuer, "issuer")?;
    if url.query().is_some() {
        return Err(Error::UnsafeUrl {
            what: "issuer",
            url: crate::primitives::url_safety::printable(issuer),
            reason: "an issuer identifier has no query component (RFC 8414 §2)".into(),
        });
    }
    let origin = url.origin();
    let path = trimmed_path(&url);
    Ok(if path.is_empty() {
        alloc::vec![
            format!("{origin}{OAUTH_WELL_KNOWN}"),
            format!("{origin}{OIDC_WELL_KNOWN}"),
        ]
    } else {
        alloc::vec![
            format!("{origin}{OAUTH_WELL_KNOWN}{path}"),
            format!("{origin}{OIDC_WELL_KNOWN}{path}"),
            format!("{origin}{path}{OIDC_WELL_KNOWN}"),
        ]
    })
}

/// Why an AS metadata document was not used.
#[derive(Debug)]
pub enum AsRejection {
    /// Unusable document: try the next candidate.
    Invalid(String),
    /// The document names another issuer: not used; try the next candidate,
    /// and report this if none works.
    IssuerMismatch(String),
    /// An endpoint is unsafe: stop at once.
    Fatal(Error),
}

/// Parses AS metadata and checks it against the issuer used to find it:
/// identical strings (RFC 8414 §3.3; MCP 2026-07-28).
pub fn parse_as_metadata(body: &[u8], expected_issuer: &str) -> Result<AsMetadata, AsRejection> {
    let md = parse_metadata_document(body)?;
    if md.issuer != expected_issuer {
        return Err(AsRejection::IssuerMismatch(crate::primitives::url_safety::printable(
            &md.issuer,
        )));
    }
    md.check_endpoints().map_err(AsRejection::Fatal)?;
    Ok(md)
}

fn parse_metadata_document(body: &[u8]) -> Result<AsMetadata, AsRejection> {
    let md: AsMetadata = crate::primitives::json::from_json(body).ok_or_else(|| {
        AsRejection::Invalid("not an authorization server metadata document (JSON with issuer and endpoints)".into())
    })?;
    if md.authorization_endpoint.is_empty() || md.token_endpoint.is_empty() {
        return Err(AsRejection::Invalid("missing authorization or token endpoint".into()));
    }
    Ok(md)
}

/// 2025-03-26 "Authorization Base URL": the server URL with its path dropped.
pub fn legacy_base(server: &HttpUrl) -> String {
    server.origin()
}

/// 2025-03-26: the one metadata URL of a server without PRM.
pub fn legacy_metadata_url(server: &HttpUrl) -> String {
    format!("{}{OAUTH_WELL_KNOWN}", legacy_base(server))
}

/// Parses a 2025-03-26 server's metadata. The issuer is not required to match
/// the base URL here: that revision located metadata by the server's origin,
/// and real servers of that era publish another issuer. The caller records
/// which issuer it uses and tells the user when it differs. Endpoints are
/// checked as strictly as anywhere else.
pub fn parse_legacy_metadata(body: &[u8], base: &str) -> Result<AsMetadata, AsRejection> {
    let mut md = parse_metadata_document(body)?;
    if md.issuer.is_empty() || check_url(&md.issuer, "issuer").is_err() {
        md.issuer = String::from(base);
    }
    md.check_endpoints().map_err(AsRejection::Fatal)?;
    Ok(md)
}

/// 2025-03-26 "Fallbacks for Servers without Metadata Discovery": the default
/// endpoints at the base URL. That revision made PKCE mandatory for every
/// client and server, so S256 is assumed here (and only here).
pub fn legacy_default_metadata(server: &HttpUrl) -> AsMetadata {
    let base = legacy_base(server);
    AsMetadata {
        issuer: base.clone(),
        authorization_endpoint: format!("{base}/authorize"),
        token_endpoint: format!("{base}/token"),
        registration_endpoint: Some(format!("{base}/register")),
        code_challenge_methods_supported: Some(alloc::vec![String::from("S256")]),
        ..<AsMetadata as Default>::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> HttpUrl {
        HttpUrl::parse(s).unwrap()
    }

    // MCP 2026-07-28 "Protected Resource Metadata Discovery Requirements":
    // header first, then path-aware, then root.
    #[test]
    fn prm_candidate_order() {
        let s = u("https://example.com/public/mcp");
        assert_eq!(
            prm_candidates(&s, None).unwrap(),
            [
                "https://example.com/.well-known/oauth-protected-resource/public/mcp",
                "https://example.com/.well-known/oauth-protected-resource"
            ]
        );
        let c = prm_candidates(&s, Some("https://example.com/prm")).unwrap();
        assert_eq!(c[0], "https://example.com/prm");
        assert_eq!(c.len(), 3);
        assert_eq!(
            prm_candidates(&u("https://example.com"), None).unwrap(),
            ["https://example.com/.well-known/oauth-protected-resource"]
        );
        assert!(prm_candidates(&s, Some("javascript:alert(1)")).is_err());
    }

    // RFC 9728 §3.3: resource must identify the server.
    #[test]
    fn resource_must_cover_server() {
        let s = u("https://example.com/public/mcp");
        assert!(resource_covers("https://example.com/public/mcp", &s));
        assert!(resource_covers("https://example.com/public", &s));
        assert!(resource_covers("https://example.com", &s));
        assert!(resource_covers("https://example.com/", &s));
        assert!(resource_covers("HTTPS://EXAMPLE.COM/public", &s));
        assert!(!resource_covers("https://example.com/pub", &s));
        assert!(!resource_covers("https://example.com/public/mcp/x", &s));
        assert!(!resource_covers("https://other.com/public/mcp", &s));
        assert!(!resource_covers("http://example.com/public/mcp", &s));
        assert!(!resource_covers("https://example.com:8443/public/mcp", &s));
        assert!(!resource_covers("not a url", &s));
    }

    #[test]
    fn prm_resource_is_kept_verbatim() {
        let s = u("https://mcp.example.com");
        let prm = parse_prm(
            br#"{"resource":"https://mcp.example.com","authorization_servers":["https://a.example"]}"#,
            "https://mcp.example.com",
            &s,
        )
        .unwrap();
        assert_eq!(prm.resource, "https://mcp.example.com");
        assert!(matches!(
            parse_prm(
                br#"{"resource":"https://evil.com","authorization_servers":["https://a"]}"#,
                "x",
                &s
            ),
            Err(PrmRejection::Fatal(Error::ResourceMismatch { .. }))
        ));
        assert!(matches!(parse_prm(b"<html>", "x", &s), Err(PrmRejection::Invalid(_))));
    }

    // MCP 2026-07-28 "Authorization Server Metadata Discovery": 3 URLs with a
    // path, 2 without.
    #[test]
    fn as_metadata_candidate_order() {
        assert_eq!(
            as_metadata_candidates("https://auth.example.com/tenant1").unwrap(),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
                "https://auth.example.com/.well-known/openid-configuration/tenant1",
                "https://auth.example.com/tenant1/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            as_metadata_candidates("https://auth.example.com").unwrap(),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server",
                "https://auth.example.com/.well-known/openid-configuration",
            ]
        );
        assert!(as_metadata_candidates("http://auth.example.com").is_err());
    }

    fn md_json(issuer: &str, authz: &str) -> alloc::vec::Vec<u8> {
        format!(
            r#"{{"issuer":"{issuer}","authorization_endpoint":"{authz}","token_endpoint":"https://a.example/token","code_challenge_methods_supported":["S256"]}}"#
        )
        .into_bytes()
    }

    // MCP 2026-07-28: issuer identical to the one used to build the URL.
    #[test]
    fn issuer_must_match_exactly() {
        let ok = parse_as_metadata(
            &md_json("https://a.example", "https://a.example/authorize"),
            "https://a.example",
        );
        assert!(ok.unwrap().supports_s256());
        for expected in ["https://a.example/", "https://A.example", "https://honest.example"] {
            assert!(matches!(
                parse_as_metadata(&md_json("https://a.example", "https://a.example/authorize"), expected),
                Err(AsRejection::IssuerMismatch(_))
            ));
        }
    }

    // Security rules: unsafe endpoints stop discovery.
    #[test]
    fn unsafe_endpoints_are_fatal() {
        for bad in [
            "javascript:alert(1)",
            "file:///etc/passwd",
            "http://evil.example/authorize",
        ] {
            assert!(matches!(
                parse_as_metadata(&md_json("https://a.example", bad), "https://a.example"),
                Err(AsRejection::Fatal(Error::UnsafeUrl { .. }))
            ));
        }
    }

    // 2025-03-26 fallbacks.
    #[test]
    fn legacy_paths() {
        let s = u("https://api.example.com/v1/mcp");
        assert_eq!(
            legacy_metadata_url(&s),
            "https://api.example.com/.well-known/oauth-authorization-server"
        );
        let d = legacy_default_metadata(&s);
        assert_eq!(d.authorization_endpoint, "https://api.example.com/authorize");
        assert_eq!(d.token_endpoint, "https://api.example.com/token");
        assert_eq!(
            d.registration_endpoint.as_deref(),
            Some("https://api.example.com/register")
        );
        let md = parse_legacy_metadata(
            &md_json("https://other.example", "https://api.example.com/a"),
            "https://api.example.com",
        )
        .unwrap();
        assert_eq!(md.issuer, "https://other.example");
    }
}
