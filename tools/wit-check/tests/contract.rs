//! The WIT contract: parses, documents every item, and maps every effect the
//! engine core can emit to a case of `machine.effect` and to a host import.

use mcp_oauth_core::{Effect, Input};
use wit_parser::{Resolve, TypeDefKind, WorldItem, WorldKey};

/// The WIT `effect` case and the import (`interface.function`) for an effect.
/// The match is exhaustive: a new `Effect` variant does not compile until it
/// is mapped here.
fn wit_names(e: &Effect) -> (&'static str, &'static str) {
    match e {
        Effect::Http(_) => ("http", "http.send"),
        Effect::Load { .. } => ("load", "storage.get"),
        Effect::Save { .. } => ("save", "storage.set"),
        Effect::Delete { .. } => ("delete", "storage.delete"),
        Effect::Lock { .. } => ("lock", "storage.lock"),
        Effect::Unlock { .. } => ("unlock", "storage.unlock"),
        Effect::Sign { .. } => ("sign", "signer.sign"),
        Effect::DpopProof { .. } => ("dpop-proof", "signer.dpop-proof"),
        Effect::Listen { .. } => ("listen", "callback.[static]listener.bind"),
        Effect::Consent(_) => ("consent", "prompts.consent"),
        Effect::OpenBrowser { .. } => ("open-browser", "browser.open"),
        Effect::AwaitCallback { .. } => ("await-callback", "callback.[method]listener.next"),
        Effect::Notify(_) => ("notify", "prompts.notify"),
        Effect::Pause { .. } => ("pause", "prompts.pause"),
        Effect::Respond(_) => ("respond", "callback.[method]listener.respond"),
    }
}

/// Same for inputs.
fn wit_input(i: &Input) -> &'static str {
    match i {
        Input::Http(_) => "http",
        Input::Loaded(_) => "loaded",
        Input::LoadFailed(_) => "load-failed",
        Input::Stored(_) => "stored",
        Input::Locked(_) => "locked",
        Input::Signed(_) => "signed",
        Input::DpopProof(_) => "dpop-proof",
        Input::Listening(_) => "listening",
        Input::Consent(_) => "consent",
        Input::Opened(_) => "opened",
        Input::Callback(_) => "callback",
        Input::Paused(_) => "paused",
        Input::Ack => "ack",
    }
}

fn every_effect() -> Vec<Effect> {
    use mcp_oauth_core::*;
    vec![
        Effect::Http(HttpRequest {
            method: Method::Get,
            url: String::new(),
            headers: vec![],
            body: vec![],
        }),
        Effect::Load { key: String::new() },
        Effect::Save {
            key: String::new(),
            value: vec![],
        },
        Effect::Delete { key: String::new() },
        Effect::Lock { key: String::new() },
        Effect::Unlock { key: String::new() },
        Effect::Sign { input: vec![] },
        Effect::DpopProof {
            key_id: String::new(),
            claims: String::new(),
        },
        Effect::Listen { port: None },
        Effect::Consent(ConsentRequest {
            server_url: String::new(),
            issuer: String::new(),
            scopes: vec![],
            reason: ConsentReason::FirstLogin,
        }),
        Effect::OpenBrowser { url: String::new() },
        Effect::AwaitCallback { timeout_ms: 0 },
        Effect::Notify(Event::PkceCheckOverridden { issuer: String::new() }),
        Effect::Pause { ms: 0 },
        Effect::Respond(Page {
            status: 200,
            headers: vec![],
            body: String::new(),
        }),
    ]
}

fn every_input() -> Vec<Input> {
    vec![
        Input::Http(Err(mcp_oauth_core::TransportError { message: String::new() })),
        Input::Loaded(None),
        Input::LoadFailed(String::new()),
        Input::Stored(Ok(())),
        Input::Locked(Ok(())),
        Input::Signed(Ok(vec![])),
        Input::DpopProof(Ok(String::new())),
        Input::Listening(Ok(String::new())),
        Input::Consent(true),
        Input::Paused(Ok(())),
        Input::Opened(Ok(())),
        Input::Callback(mcp_oauth_core::CallbackEvent::TimedOut),
        Input::Ack,
    ]
}

fn variant_cases(resolve: &Resolve, iface: &str, ty: &str) -> Vec<String> {
    let (_, i) = resolve
        .interfaces
        .iter()
        .find(|(_, i)| i.name.as_deref() == Some(iface))
        .unwrap_or_else(|| panic!("interface {iface} missing"));
    let id = i.types[ty];
    match &resolve.types[id].kind {
        TypeDefKind::Variant(v) => v.cases.iter().map(|c| c.name.clone()).collect(),
        other => panic!("{iface}.{ty} is not a variant: {other:?}"),
    }
}

fn engine_imports(resolve: &Resolve) -> Vec<String> {
    let (_, world) = resolve
        .worlds
        .iter()
        .find(|(_, w)| w.name == "engine")
        .expect("world engine");
    let mut out = Vec::new();
    for (key, item) in &world.imports {
        if let (WorldKey::Interface(id), WorldItem::Interface { .. }) = (key, item) {
            let iface = &resolve.interfaces[*id];
            let name = iface.name.clone().unwrap_or_default();
            for f in iface.functions.keys() {
                out.push(format!("{name}.{f}"));
            }
        }
    }
    out
}

#[test]
fn the_package_parses() {
    let resolve = wit_check::load().expect("parse");
    let names: Vec<&str> = resolve.worlds.iter().map(|(_, w)| w.name.as_str()).collect();
    assert!(names.contains(&"engine") && names.contains(&"sans-io"), "{names:?}");
}

#[test]
fn every_item_is_documented() {
    let resolve = wit_check::load().unwrap();
    let missing = wit_check::undocumented(&resolve);
    assert!(missing.is_empty(), "items without a doc comment: {missing:#?}");
}

#[test]
fn every_effect_maps_to_a_wit_case_and_an_import() {
    let resolve = wit_check::load().unwrap();
    let cases = variant_cases(&resolve, "machine", "effect");
    let imports = engine_imports(&resolve);
    let effects = every_effect();
    assert_eq!(effects.len(), cases.len(), "one WIT case per effect");
    for e in &effects {
        let (case, import) = wit_names(e);
        assert!(cases.iter().any(|c| c == case), "no machine.effect case {case}");
        assert!(
            imports.iter().any(|i| i == import),
            "no import {import}; have {imports:?}"
        );
    }
    let inputs = variant_cases(&resolve, "machine", "input");
    assert_eq!(every_input().len(), inputs.len());
    for i in every_input() {
        assert!(inputs.iter().any(|c| c == wit_input(&i)));
    }
}

#[test]
fn engine_world_exports_client_and_sans_io_exports_machine() {
    let resolve = wit_check::load().unwrap();
    let exports = |name: &str| -> Vec<String> {
        let (_, w) = resolve.worlds.iter().find(|(_, w)| w.name == name).unwrap();
        w.exports
            .keys()
            .filter_map(|k| match k {
                WorldKey::Interface(id) => resolve.interfaces[*id].name.clone(),
                WorldKey::Name(n) => Some(n.clone()),
            })
            .collect()
    };
    assert_eq!(exports("engine"), ["client"]);
    assert_eq!(exports("sans-io"), ["machine"]);
}

#[test]
fn sans_io_world_imports_nothing() {
    let resolve = wit_check::load().unwrap();
    let (_, world) = resolve.worlds.iter().find(|(_, w)| w.name == "sans-io").unwrap();
    let imported: Vec<String> = world
        .imports
        .iter()
        .filter_map(|(k, _)| match k {
            WorldKey::Interface(id) => resolve.interfaces[*id].name.clone(),
            WorldKey::Name(n) => Some(n.clone()),
        })
        .filter(|n| !["types", "http", "engine-types"].contains(&n.as_str()))
        .collect();
    // Only type-only interfaces may be pulled in by `use`.
    assert!(imported.is_empty(), "{imported:?}");
    for (key, _) in &world.imports {
        if let WorldKey::Interface(id) = key {
            let i = &resolve.interfaces[*id];
            if i.name.as_deref() == Some("http") {
                // `use http.{request}` pulls the interface in; it must only be
                // types from the machine's point of view (no function used).
                assert!(i.functions.contains_key("send"));
            }
        }
    }
}
