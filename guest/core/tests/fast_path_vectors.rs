//! `tests/vectors/fast_path.json` against the engine itself: the hosts'
//! silent fast path (a token served from the store before the engine is
//! instantiated) serves only what a new session of the engine would serve
//! over the same store, each case's `engine` says what the engine does, and
//! a host answers `nothing_stored` itself only where the engine would say
//! authorization-required.
//! The Node and Python packages run the same file against their fast path.

use std::collections::BTreeMap;

use mcp_oauth_core::records::key;
use mcp_oauth_core::*;
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors/fast_path.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// What the engine does for a silent token call over `records`: the token,
/// or "refresh" (it takes the record lock) or the error's name.
fn engine(server_url: &str, now: u64, records: &BTreeMap<String, Vec<u8>>) -> Result<AccessToken, &'static str> {
    let mut s = Session::new(server_url, Config::default()).unwrap();
    let mut step = s.authorize(now, Mode::Silent, Entropy([7; 64]));
    for _ in 0..20 {
        step = match step {
            Step::Effect(Effect::Load { key }) => s.handle(now, Input::Loaded(records.get(&key).cloned())),
            Step::Effect(Effect::Lock { .. }) => return Err("refresh"),
            Step::Done(Ok(Outcome::Token(t))) => return Ok(t),
            Step::Done(Err(Error::AuthorizationRequired)) => return Err("authorization-required"),
            other => panic!("a silent call over a store asked for {other:?}"),
        };
    }
    panic!("no answer in 20 steps")
}

#[test]
fn the_fast_path_serves_only_what_the_engine_serves() {
    let v = vectors();
    let skew = v["skew_ms"].as_u64().unwrap();
    assert_eq!(
        skew,
        Config::default().expiry_skew_ms,
        "the vectors assume the default skew"
    );
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    assert!(cases.iter().filter(|c| c["nothing_stored"] == true).count() >= 2);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let url = c["server_url"].as_str().unwrap();
        let now = c["now"].as_u64().unwrap();
        let records: BTreeMap<String, Vec<u8>> = c["records"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().as_bytes().to_vec()))
            .collect();
        let got = engine(url, now, &records);
        match (c["engine"].as_str().unwrap(), &got) {
            ("token", Ok(_)) => {}
            (want, Err(e)) if want == *e => {}
            (want, _) => panic!("{name}: the engine did {got:?}, the vectors say {want}"),
        }
        // A host answers "nothing stored" itself only where the engine says
        // authorization-required, and never for a case it serves.
        if c["nothing_stored"].as_bool().unwrap() {
            assert_eq!(got.as_ref().err(), Some(&"authorization-required"), "{name}");
            assert!(c["serve"].is_null(), "{name}: served and nothing stored");
            let (binding, tokens) = (
                key("binding", &[url]),
                key("tokens", &["https://mcp.example.com/mcp", "https://auth.example.com"]),
            );
            assert!(
                !records.contains_key(&binding) || !records.contains_key(&tokens),
                "{name}: nothing stored, yet both records are there"
            );
        }
        if c["serve"].is_null() {
            continue;
        }
        let t = got.unwrap_or_else(|e| panic!("{name}: served, but the engine did {e}"));
        let serve = &c["serve"];
        assert_eq!(t.secret(), serve["access_token"].as_str().unwrap(), "{name}");
        assert_eq!(t.expires_at, serve["expires_at"].as_u64(), "{name}");
        assert_eq!(t.refresh_at, serve["refresh_at"].as_u64(), "{name}");
        let scopes: Vec<&str> = serve["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert_eq!(t.scopes, scopes, "{name}");
        assert!(!t.dpop, "{name}: a served token is never bound");
        assert!(t.refresh_at.unwrap() > now, "{name}: served stale");
    }
}

#[test]
fn the_vectors_keys_are_the_engines() {
    let v = vectors();
    for c in v["cases"].as_array().unwrap() {
        let url = c["server_url"].as_str().unwrap();
        for k in c["records"].as_object().unwrap().keys() {
            let binding = key("binding", &[url]);
            let tokens = key("tokens", &["https://mcp.example.com/mcp", "https://auth.example.com"]);
            let metadata = key("metadata", &["https://auth.example.com"]);
            assert!(
                [binding, tokens, metadata].contains(k),
                "{}: unexpected key {k}",
                c["name"]
            );
        }
    }
}
