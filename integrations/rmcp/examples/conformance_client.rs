//! The client the official MCP conformance suites drive, built on rmcp:
//!
//!     conformance_client <server-url>
//!
//! with `MCP_CONFORMANCE_SCENARIO` and, for some scenarios,
//! `MCP_CONFORMANCE_CONTEXT` (JSON: pre-registered credentials, keys, ...).
//! MCP goes through rmcp's own client (`serve_with_lifecycle`, `list_all_tools`,
//! `call_tool`) over `mcp_oauth_rmcp::transport`; OAuth is the engine's, as
//! an rmcp agent would use it: an empty store per run, a headless browser that
//! follows the redirect chain to the loopback listener, and
//! `https://conformance-test.local/client-metadata.json` as the client ID
//! metadata document URL. It tries `server/discover` (2026-07-28) and falls
//! back to the `initialize` handshake (2025-11-25) for servers that do not
//! speak it, lists the tools, calls each (or the calls the context names),
//! and exits 0; any failure prints the reason and exits 1.
//!
//! tests/conformance/rmcp builds it and runs both suites with it.

use std::process::ExitCode;
use std::sync::Arc;

use mcp_oauth_demo::headless::HeadlessBrowser;
use mcp_oauth_host::callback::CallbackOptions;
use mcp_oauth_host::prompts::{ConsentPolicy, TerminalPrompter};
use mcp_oauth_host::storage::mode::SecretsChoice;
use mcp_oauth_host::{Runtime, RuntimeOptions, SessionIo};
use rmcp::model::{CallToolRequestParams, ClientConfig, ProtocolVersion};
use rmcp::{ClientLifecycleMode, ClientServiceExt};
use serde_json::{Map, Value, json};

/// At most this many tool calls per run, whatever the context lists.
const MAX_CALLS: usize = 64;

/// Arguments for a tool from its input schema: a plausible value per property.
fn sample_arguments(schema: &Map<String, Value>) -> Map<String, Value> {
    let mut args = Map::new();
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (i, (name, p)) in props.iter().enumerate() {
            let v = match p["type"].as_str() {
                Some("number") | Some("integer") => json!(i + 2),
                Some("boolean") => json!(true),
                Some("array") => json!([]),
                Some("object") => json!({}),
                _ => json!("test"),
            };
            args.insert(name.clone(), v);
        }
    }
    args
}

/// The calls to make: `toolCalls` from the context, else every tool with
/// plausible arguments.
fn calls(context: &Value, tools: &[rmcp::model::Tool]) -> Vec<(String, Map<String, Value>)> {
    match context["toolCalls"].as_array() {
        Some(list) => list
            .iter()
            .take(MAX_CALLS)
            .map(|c| {
                let name = c["name"].as_str().unwrap_or_default().to_string();
                (name, c["arguments"].as_object().cloned().unwrap_or_default())
            })
            .collect(),
        None => tools
            .iter()
            .take(MAX_CALLS)
            .map(|t| (t.name.to_string(), sample_arguments(&t.input_schema)))
            .collect(),
    }
}

async fn run(url: &str, home: &std::path::Path) -> Result<(), String> {
    let context: Value = std::env::var("MCP_CONFORMANCE_CONTEXT")
        .ok()
        .and_then(|c| serde_json::from_str(&c).ok())
        .unwrap_or_default();
    let scenario = std::env::var("MCP_CONFORMANCE_SCENARIO").unwrap_or_default();
    let (config, signer) =
        mcp_oauth_demo::conformance::config_for(&context, &scenario, "mcp-oauth rmcp conformance client")?;
    let runtime = Runtime::new(RuntimeOptions {
        home: home.to_path_buf(),
        secrets: SecretsChoice::File,
        ..RuntimeOptions::default()
    })
    .map_err(|e| e.to_string())?;
    let io = SessionIo {
        prompter: Arc::new(TerminalPrompter::new(ConsentPolicy::Allow, false)),
        browser: Arc::new(HeadlessBrowser),
        callback: CallbackOptions::default(),
        signer,
    };
    let session = Arc::new(runtime.session(url, config, io).map_err(|e| e.to_string())?);
    let auto = ClientLifecycleMode::Auto {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        legacy_version: Some(ProtocolVersion::V_2025_11_25),
    };
    let client = match ClientConfig::default()
        .serve_with_lifecycle(mcp_oauth_rmcp::transport(session.clone(), url), auto)
        .await
    {
        Ok(client) => client,
        // rmcp falls back from `server/discover` only on the errors a
        // 2026-07-28 peer names; a 2025 server that answers any method with
        // `{}` fails the probe instead. Then the `initialize` handshake, once
        // (never after an engine failure: that is no protocol question).
        Err(e) if mcp_oauth_rmcp::engine_error(&e).is_none() => {
            eprintln!("server/discover failed ({e}); trying initialize");
            // rmcp's default config names its newest version, which has no
            // `initialize`: the handshake names 2025-11-25.
            ClientConfig::default()
                .with_protocol_version(ProtocolVersion::V_2025_11_25)
                .serve_with_lifecycle(mcp_oauth_rmcp::transport(session, url), ClientLifecycleMode::Initialize)
                .await
                .map_err(|e| format!("connect: {}", reason(&e)))?
        }
        Err(e) => return Err(format!("connect: {}", reason(&e))),
    };
    let result = async {
        let tools = client
            .list_all_tools()
            .await
            .map_err(|e| format!("tools/list: {}", reason(&e)))?;
        for (name, arguments) in calls(&context, &tools) {
            let mut params = CallToolRequestParams::new(name.clone());
            params.arguments = Some(arguments);
            let out = client
                .call_tool(params)
                .await
                .map_err(|e| format!("tools/call {name}: {}", reason(&e)))?;
            eprintln!("called {name}: error={:?}", out.is_error);
        }
        Ok(())
    }
    .await;
    let _ = client.cancel().await;
    result
}

/// An rmcp error with the engine's failure named when it is one.
fn reason(e: &(dyn std::error::Error + 'static)) -> String {
    match mcp_oauth_rmcp::engine_error(e) {
        Some(engine) => format!("{e} (engine: {engine})"),
        None => e.to_string(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: conformance_client <server-url>");
        return ExitCode::from(2);
    };
    let mut n = [0u8; 8];
    if let Err(e) = getrandom::fill(&mut n) {
        eprintln!("conformance_client: no randomness for the store's name: {e}");
        return ExitCode::from(1);
    }
    let home = std::env::temp_dir().join(format!("mcp-oauth-rmcp-conformance-{:016x}", u64::from_le_bytes(n)));
    let result = run(&url, &home).await;
    let _ = std::fs::remove_dir_all(&home);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("conformance_client: {e}");
            ExitCode::from(1)
        }
    }
}
