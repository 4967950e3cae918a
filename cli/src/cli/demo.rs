//! `mcp-oauth demo`: the whole flow against the built-in local servers,
//! narrated; `demo --serve` runs those servers alone for other clients.

use std::sync::Arc;

use mcp_oauth_demo::headless::HeadlessBrowser;
use mcp_oauth_demo::server::{DemoServer, Faults};
use mcp_oauth_host::browser::{BrowserOpener, SystemBrowser};
use mcp_oauth_host::callback::CallbackOptions;
use mcp_oauth_host::http::HttpOptions;
use mcp_oauth_host::prompts::{ConsentPolicy, TerminalPrompter};
use mcp_oauth_host::storage::default_home;
use mcp_oauth_host::{AuthorizedClient, Config, Error, Runtime, RuntimeOptions, SessionIo};

use super::status::print_status;

/// `demo --serve`: the demo's servers alone, until the process is stopped.
pub(crate) fn serve_demo(port: u16, access_ttl: u64, fault: &[String]) -> Result<(), super::Failure> {
    let faults = Faults {
        access_ttl_secs: Some(access_ttl),
        deny: fault.iter().any(|f| f == "deny"),
        token_error: fault.iter().any(|f| f == "token-error"),
        ..Faults::default()
    };
    let server = DemoServer::start_on(port, faults)
        .map_err(|e| Error::Setup(format!("starting the demo server on port {port}: {e}")))?;
    println!("MCP server:           {}", server.mcp_url());
    println!("authorization server: {}", server.base());
    println!(
        "test hooks:           GET {0}/_demo/log (requests seen, refresh reuse), POST {0}/_demo/revoke (revoke all tokens)",
        server.base()
    );
    println!("Stop with Ctrl-C.");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    loop {
        std::thread::park();
    }
}

pub(crate) fn demo(real_browser: bool) -> Result<(), super::Failure> {
    let server =
        DemoServer::start(Faults::default()).map_err(|e| Error::Setup(format!("starting the demo server: {e}")))?;
    let home = std::env::temp_dir().join(format!("mcp-oauth-demo-{}", std::process::id()));
    let mcp = server.mcp_url();
    println!("mcp-oauth demo");
    println!(
        "A local authorization server and MCP server are running at {}.",
        server.base()
    );
    println!(
        "Tokens for this demo are stored in {} (removed at the end).\n",
        home.display()
    );
    let browser: Arc<dyn BrowserOpener> = if real_browser {
        Arc::new(SystemBrowser::from_env())
    } else {
        Arc::new(HeadlessBrowser)
    };
    let io = SessionIo {
        prompter: Arc::new(TerminalPrompter::new(ConsentPolicy::Allow, true)),
        browser,
        callback: CallbackOptions::default(),
        signer: None,
    };
    let rt = Runtime::new(RuntimeOptions {
        home: home.clone(),
        cache_dir: Some(default_home().join("cache")),
        ..RuntimeOptions::default()
    })?;
    let session = Arc::new(rt.session(&mcp, Config::default(), io.clone())?);
    let client = AuthorizedClient::new(session.clone(), HttpOptions::default());

    println!("1. An agent calls tools/list with no token. The server answers 401, and the engine");
    println!("   discovers, registers, opens the browser, receives the code and gets a token:");
    let r = client.post_json(&mcp, br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)?;
    println!("   -> HTTP {} {}\n", r.status, String::from_utf8_lossy(&r.body));

    println!("2. The next call carries the stored token at once (one request):");
    let before = server.log().len();
    let r = client.post_json(
        &mcp,
        br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello from an authorized call"}}}"#,
    )?;
    println!("   -> HTTP {} {}", r.status, String::from_utf8_lossy(&r.body));
    println!("   requests to the server: {}\n", server.log().len() - before);

    println!("3. A new process (`mcp-oauth token`, same store) finds everything in storage:");
    println!("   no discovery, no browser, no request at all:");
    let before = server.log().len();
    let exe = std::env::current_exe().map_err(|e| Error::Setup(format!("finding this program: {e}")))?;
    let out = std::process::Command::new(exe)
        .args(["token", &mcp])
        .env("MCP_OAUTH_HOME", &home)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::Setup(format!("starting `mcp-oauth token`: {e}")))?;
    if !out.status.success() {
        return Err(Error::Setup(format!(
            "`mcp-oauth token` in a new process failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .into());
    }
    // The token is a secret even here: say what came back, not what it is.
    let printed = String::from_utf8_lossy(&out.stdout).trim().len();
    println!("   -> it printed an access token ({printed} characters)");
    print_status(&rt.session(&mcp, Config::default(), io)?.status()?);
    println!("   requests to the server: {}\n", server.log().len() - before);

    println!("Everything the server saw:");
    for line in server.log() {
        println!("  {line}");
    }
    let _ = std::fs::remove_dir_all(&home);
    Ok(())
}
