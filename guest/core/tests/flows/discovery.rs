//! Discovery: the protected resource metadata at each place it may be, the
//! authorization server metadata candidates in the spec's order, the legacy
//! 2025-03-26 path, and the checks that stop a flow before anything opens
//! (issuer, resource, S256, unsafe endpoints) (`session/discovery.rs`).

use mcp_oauth_core::*;

use crate::sim::*;

#[test]
fn prm_at_path_aware_well_known() {
    let mut sim = Sim::new();
    sim.mcp.prm_at = PrmAt::PathAware;
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    assert_eq!(
        urls(&sim),
        [
            MCP,
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
            ASM,
            REG,
            TOK,
            MCP
        ]
    );
}

#[test]
fn prm_at_root_well_known() {
    let mut sim = Sim::new();
    sim.mcp.prm_at = PrmAt::Root;
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    assert_eq!(
        urls(&sim),
        [
            MCP,
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
            "https://mcp.example.com/.well-known/oauth-protected-resource",
            ASM,
            REG,
            TOK,
            MCP
        ]
    );
}

// MCP 2026-07-28: for an issuer with a path, three candidates in order.
#[test]
fn as_metadata_each_candidate_with_path() {
    let cands = [
        "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
        "https://auth.example.com/.well-known/openid-configuration/tenant1",
        "https://auth.example.com/tenant1/.well-known/openid-configuration",
    ];
    for (i, served) in cands.iter().enumerate() {
        let mut sim = Sim::new();
        sim.asc.issuer = "https://auth.example.com/tenant1".into();
        sim.asc.claimed_issuer = sim.asc.issuer.clone();
        sim.asc.metadata_urls = vec![served.to_string()];
        sim.call_tool(&mut session(), Mode::Interactive).unwrap();
        let got = urls(&sim);
        assert_eq!(&got[2..3 + i], &cands[..=i], "served at candidate {i}");
        assert_eq!(got.len(), 6 + i);
    }
}

// Without a path: OAuth first, then OIDC.
#[test]
fn as_metadata_oidc_without_path() {
    let mut sim = Sim::new();
    sim.asc.metadata_urls = vec!["https://auth.example.com/.well-known/openid-configuration".into()];
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    assert_eq!(
        urls(&sim)[2..4],
        [ASM, "https://auth.example.com/.well-known/openid-configuration"]
    );
}

// A candidate with a 4xx, non-JSON or invalid document moves to the next.
#[test]
fn as_metadata_skips_bad_documents() {
    let mut sim = Sim::new();
    sim.asc.metadata_urls = vec!["https://auth.example.com/.well-known/openid-configuration".into()];
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    assert_eq!(sim.count("well-known/oauth-authorization-server"), 1);
}

// 2026-07-28: issuer mismatch → the metadata is not used; nothing opens.
#[test]
fn issuer_mismatch_stops_before_anything_opens() {
    let mut sim = Sim::new();
    sim.asc.claimed_issuer = "https://honest.example".into();
    let err = sim.call_tool(&mut session(), Mode::Interactive).unwrap_err();
    assert!(matches!(err, Error::IssuerMismatch { .. }), "{err:?}");
    assert_eq!(sim.consents.len() + sim.opens.len(), 0);
    assert_eq!(sim.count("/register") + sim.count("/token"), 0);
}

// RFC 9728 §3.3: a PRM for another resource stops discovery.
#[test]
fn resource_mismatch_stops_before_authorization() {
    let mut sim = Sim::new();
    sim.mcp.prm_resource = "https://evil.example.com/mcp".into();
    let err = sim.call_tool(&mut session(), Mode::Interactive).unwrap_err();
    assert!(matches!(err, Error::ResourceMismatch { .. }), "{err:?}");
    assert_eq!(urls(&sim), [MCP, PRM_HDR]);
    assert!(sim.opens.is_empty());
}

// Legacy 2025-03-26: no PRM; metadata at the server's origin.
#[test]
fn legacy_server_with_metadata() {
    let mut sim = Sim::legacy(true);
    sim.mcp.prm_at = PrmAt::Nowhere;
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    assert_eq!(
        urls(&sim),
        [
            MCP,
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
            "https://mcp.example.com/.well-known/oauth-protected-resource",
            "https://mcp.example.com/.well-known/oauth-authorization-server",
            "https://mcp.example.com/register",
            "https://mcp.example.com/token",
            MCP
        ]
    );
    // After a restart nothing is rediscovered.
    sim.requests.clear();
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    assert_eq!(urls(&sim), [MCP]);
}

// Legacy without metadata: the default endpoints.
#[test]
fn legacy_server_default_endpoints() {
    let mut sim = Sim::legacy(false);
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    let u = urls(&sim);
    assert_eq!(
        u[4..],
        ["https://mcp.example.com/register", "https://mcp.example.com/token", MCP]
    );
    assert!(sim.opens[0].starts_with("https://mcp.example.com/authorize?"));
}

// Legacy metadata naming another issuer: accepted on that path only, reported.
#[test]
fn legacy_issuer_difference_is_reported() {
    let mut sim = Sim::legacy(true);
    sim.asc.claimed_issuer = "https://mcp.example.com/".into();
    sim.asc.issuer = "https://mcp.example.com/".into();
    sim.call_tool(&mut session(), Mode::Interactive).unwrap();
    assert!(
        sim.notices
            .iter()
            .any(|n| matches!(n, Event::LegacyIssuerDiffers { .. }))
    );
}

#[test]
fn missing_s256_is_refused_unless_overridden() {
    let mut sim = Sim::new();
    sim.asc.s256 = false;
    let err = sim.call_tool(&mut session(), Mode::Interactive).unwrap_err();
    assert_eq!(err, Error::PkceUnsupported { issuer: ISSUER.into() });
    assert!(sim.opens.is_empty());
    let mut sim = Sim::new();
    sim.asc.s256 = false;
    let mut s = session_with(Config {
        allow_missing_s256: vec![ISSUER.into()],
        ..Config::default()
    });
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    assert!(
        sim.notices
            .contains(&Event::PkceCheckOverridden { issuer: ISSUER.into() })
    );
    assert!(sim.opens[0].contains("code_challenge_method=S256"));
}

// CVE-2025-6514: a malicious AS's endpoints never reach the browser.
#[test]
fn malicious_endpoints_are_refused_before_opening() {
    for bad_base in ["javascript:alert(1)//", "file:///tmp", "http://evil.example"] {
        let mut sim = Sim::new();
        sim.mcp.prm_at = PrmAt::PathAware;
        let md = serde_json::json!({
            "issuer": ISSUER,
            "authorization_endpoint": format!("{bad_base}/authorize"),
            "token_endpoint": "https://auth.example.com/token",
            "code_challenge_methods_supported": ["S256"],
        });
        let mut s = session();
        let e = sim.entropy();
        let mut step = s.authorize(sim.now, Mode::Interactive, e);
        let out = loop {
            step = match step {
                Step::Effect(Effect::Http(req)) if req.url == ASM => {
                    s.handle(sim.now, Input::Http(Ok(json(md.clone()))))
                }
                Step::Effect(Effect::OpenBrowser { url }) => panic!("opened {url}"),
                Step::Effect(e) => {
                    let i = sim.perform(e);
                    s.handle(sim.now, i)
                }
                Step::Done(r) => break r,
                Step::Wait(_) | Step::Busy(_) => unreachable!(),
            };
        };
        assert!(matches!(out, Err(Error::UnsafeUrl { .. })), "{bad_base}: {out:?}");
    }
}

// Stored metadata is used only if it would still be accepted: after the
// S256 override is removed, a stored document without S256 is refetched and
// refused.
#[test]
fn stored_metadata_is_rechecked_for_s256() {
    let mut sim = Sim::new();
    sim.asc.s256 = false;
    let allow = Config {
        allow_missing_s256: vec![ISSUER.into()],
        ..Config::default()
    };
    sim.call_tool(&mut session_with(allow), Mode::Interactive).unwrap();
    sim.revoke_access_tokens();
    sim.forget_refresh_tokens();
    let err = sim.call_tool(&mut session(), Mode::Interactive).unwrap_err();
    assert_eq!(err, Error::PkceUnsupported { issuer: ISSUER.into() });
}
