//! The client the official MCP conformance suite drives:
//!
//!     conformance-client <server-url>
//!
//! with `MCP_CONFORMANCE_SCENARIO` and, for some scenarios,
//! `MCP_CONFORMANCE_CONTEXT` (JSON: pre-registered credentials, ...). It uses
//! only the host library's public API: an empty store per run, a headless
//! browser that follows the redirect chain to the loopback listener, and
//! `https://conformance-test.local/client-metadata.json` as its client ID
//! metadata document URL. It connects, picks the protocol version (2026-07-28
//! through `server/discover`, or the 2025-11-25 `initialize` handshake for
//! servers that don't speak it), lists the tools and calls each one, then
//! exits 0; any failure prints the reason and exits 1.

use std::process::ExitCode;
use std::sync::Arc;

use mcp_oauth_demo::headless::HeadlessBrowser;
use mcp_oauth_host::callback::CallbackOptions;
use mcp_oauth_host::mcp::McpClient;
use mcp_oauth_host::prompts::{ConsentPolicy, TerminalPrompter};
use mcp_oauth_host::{AuthorizedClient, Runtime, RuntimeOptions, SessionIo};

/// Arguments for a tool from its input schema: a plausible value per property.
fn sample_arguments(schema: &serde_json::Value) -> serde_json::Value {
    let mut args = serde_json::Map::new();
    if let Some(props) = schema["properties"].as_object() {
        for (i, (name, p)) in props.iter().enumerate() {
            let v = match p["type"].as_str() {
                Some("number") | Some("integer") => serde_json::json!(i + 2),
                Some("boolean") => serde_json::json!(true),
                Some("array") => serde_json::json!([]),
                Some("object") => serde_json::json!({}),
                _ => serde_json::json!("test"),
            };
            args.insert(name.clone(), v);
        }
    }
    serde_json::Value::Object(args)
}

fn run(url: &str) -> Result<(), String> {
    let context: serde_json::Value = std::env::var("MCP_CONFORMANCE_CONTEXT")
        .ok()
        .and_then(|c| serde_json::from_str(&c).ok())
        .unwrap_or_default();
    let mut n = [0u8; 8];
    getrandom::fill(&mut n).map_err(|e| e.to_string())?;
    let home = std::env::temp_dir().join(format!("mcp-oauth-conformance-{:016x}", u64::from_le_bytes(n)));
    let runtime = Runtime::new(RuntimeOptions {
        home: home.clone(),
        ..RuntimeOptions::default()
    })
    .map_err(|e| e.to_string())?;
    let scenario = std::env::var("MCP_CONFORMANCE_SCENARIO").unwrap_or_default();
    let (config, signer) =
        mcp_oauth_demo::conformance::config_for(&context, &scenario, "mcp-oauth conformance client")?;
    let io = SessionIo {
        prompter: Arc::new(TerminalPrompter::new(ConsentPolicy::Allow, false)),
        browser: Arc::new(HeadlessBrowser),
        callback: CallbackOptions::default(),
        signer,
    };
    let session = runtime.session(url, config, io).map_err(|e| e.to_string())?;
    let client = McpClient::new(
        AuthorizedClient::new(Arc::new(session), Default::default()),
        url,
        "mcp-oauth-conformance-client",
    );
    let result = (|| {
        client.initialize().map_err(|e| format!("initialize: {e}"))?;
        eprintln!("protocol: {:?}", client.era());
        let tools = client.list_tools().map_err(|e| format!("tools/list: {e}"))?;
        // Some scenarios name the calls to make (`toolCalls` in the context);
        // otherwise every tool is called with plausible arguments.
        let calls: Vec<(String, serde_json::Value)> = match context["toolCalls"].as_array() {
            Some(list) => list
                .iter()
                .take(64)
                .map(|c| {
                    (
                        c["name"].as_str().unwrap_or_default().to_string(),
                        c["arguments"].clone(),
                    )
                })
                .collect(),
            None => tools
                .iter()
                .map(|t| {
                    (
                        t["name"].as_str().unwrap_or_default().to_string(),
                        sample_arguments(&t["inputSchema"]),
                    )
                })
                .collect(),
        };
        for (name, arguments) in calls {
            let out = client
                .call_tool(&name, arguments)
                .map_err(|e| format!("tools/call {name}: {e}"))?;
            eprintln!("called {name}: {out}");
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&home);
    result
}

fn main() -> ExitCode {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: conformance-client <server-url>");
        return ExitCode::from(2);
    };
    match run(&url) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("conformance-client: {e}");
            ExitCode::from(1)
        }
    }
}
