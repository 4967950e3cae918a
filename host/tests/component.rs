//! The artifacts themselves: what they import, and the sans-IO face driven
//! across the component boundary with nothing linked in.

use mcp_oauth_host::runtime::COMPONENT;
use wasmtime::component::{Component, Linker, types::ComponentItem};
use wasmtime::{Engine, Store};

const SANS_IO: &[u8] = include_bytes!(env!("MCP_OAUTH_SANS_IO_COMPONENT"));

mod sans_io {
    wasmtime::component::bindgen!({ world: "sans-io", path: "../wit" });
}

use sans_io::exports::mcp::oauth::machine::{Effect, Input, Step};
use sans_io::mcp::oauth::engine_types::{Config, Mode};

fn import_names(engine: &Engine, bytes: &[u8]) -> Vec<(String, bool)> {
    let c = Component::new(engine, bytes).unwrap();
    c.component_type()
        .imports(engine)
        .map(|(name, item)| {
            let has_funcs = match item.ty {
                ComponentItem::ComponentInstance(i) => i
                    .exports(engine)
                    .any(|(_, e)| matches!(e.ty, ComponentItem::ComponentFunc(_) | ComponentItem::Resource(_))),
                _ => true,
            };
            (name.to_string(), has_funcs)
        })
        .collect()
}

// README "The WIT contract": the engine component imports nothing but mcp:oauth interfaces
// (no wasi:cli, wasi:io, wasi:filesystem).
#[test]
fn engine_component_imports_only_mcp_oauth() {
    let engine = Engine::default();
    let names = import_names(&engine, COMPONENT);
    assert!(!names.is_empty());
    for (n, _) in &names {
        assert!(n.starts_with("mcp:oauth/"), "unexpected import {n}");
    }
}

// The sans-IO artifact imports no function at all (only type-only interfaces).
#[test]
fn sans_io_component_imports_no_function() {
    let engine = Engine::default();
    for (n, has_funcs) in import_names(&engine, SANS_IO) {
        assert!(n.starts_with("mcp:oauth/") && !has_funcs, "{n} brings functions");
    }
}

// The machine across the boundary: open, authorize, feed inputs, and see the
// discovery effect a cold interactive start must produce.
#[test]
fn sans_io_machine_steps_across_the_boundary() {
    let engine = Engine::default();
    let component = Component::new(&engine, SANS_IO).unwrap();
    let mut linker: Linker<()> = Linker::new(&engine);
    for i in [
        "mcp:oauth/types@0.1.0",
        "mcp:oauth/http@0.1.0",
        "mcp:oauth/engine-types@0.1.0",
    ] {
        linker.instance(i).unwrap();
    }
    let mut store = Store::new(&engine, ());
    let b = sans_io::SansIo::instantiate(&mut store, &component, &linker).unwrap();
    let m = b.mcp_oauth_machine().session_machine();
    let config = Config {
        client_id: None,
        client_secret: None,
        client_issuer: None,
        client_metadata_url: None,
        client_name: None,
        scope: None,
        callback_port: None,
        callback_timeout_ms: None,
        device_grant: false,
        allow_missing_s256: vec![],
        grant: None,
        private_key_jwt: false,
        expiry_skew_ms: None,
        max_step_ups: None,
        request_offline_access: None,
        authorize_params: Vec::new(),
    };
    let h = m
        .call_open(&mut store, "https://mcp.example.com/mcp", &config)
        .unwrap()
        .unwrap();
    let entropy = vec![7u8; 64];
    let mut step = m
        .call_authorize(&mut store, h, 1_700_000_000_000, Mode::Interactive, &entropy)
        .unwrap();
    // Nothing stored: one load, then discovery starts with the path-aware PRM URL.
    let Step::Effect(Effect::Load(key)) = &step else {
        panic!("{step:?}")
    };
    assert!(key.starts_with("binding-"));
    step = m
        .call_handle(&mut store, h, 1_700_000_000_000, &Input::Loaded(None))
        .unwrap();
    let Step::Effect(Effect::Http(req)) = &step else {
        panic!("{step:?}")
    };
    assert_eq!(
        req.url,
        "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
    );
    // Too little entropy is refused, not trapped.
    let s = m.call_authorize(&mut store, h, 0, Mode::Silent, &[1, 2, 3]).unwrap();
    assert!(matches!(s, Step::Wait(_) | Step::Done(Err(_))), "{s:?}");
    // Silent mode with nothing stored: authorization required, no effect.
    let m2 = m
        .call_open(&mut store, "https://other.example.com/mcp", &config)
        .unwrap()
        .unwrap();
    let s = m.call_authorize(&mut store, m2, 0, Mode::Silent, &entropy).unwrap();
    let Step::Effect(Effect::Load(_)) = s else {
        panic!("{s:?}")
    };
    let s = m.call_handle(&mut store, m2, 0, &Input::Loaded(None)).unwrap();
    assert!(
        matches!(
            s,
            Step::Done(Err(sans_io::mcp::oauth::engine_types::AuthError::AuthorizationRequired))
        ),
        "{s:?}"
    );
}
