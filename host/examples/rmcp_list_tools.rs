//! Lists an MCP server's tools with rmcp, the requests authorized by
//! mcp-oauth:
//!
//!     cargo run -p mcp-oauth --example rmcp_list_tools -- https://mcp.example.com/mcp
//!
//! The first run signs in (it asks before opening the browser); later runs
//! use the stored token, refreshed when stale. The store is mcp-oauth's
//! (`$MCP_OAUTH_HOME`), shared with the CLI: after `mcp-oauth login <url>`
//! this example asks nothing. (The transport is the crate `mcp-oauth-rmcp`,
//! integrations/rmcp; `rmcp` is re-exported there, so the versions match.)

use std::sync::Arc;

use mcp_oauth_host::{Config, Runtime, RuntimeOptions, SessionIo};
use mcp_oauth_rmcp::rmcp::ServiceExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: rmcp_list_tools <MCP server URL>");
        std::process::exit(2);
    };
    let runtime = Runtime::new(RuntimeOptions::default())?;
    // Terminal prompts, `$BROWSER` or the system's opener.
    let session = runtime.session(&url, Config::default(), SessionIo::terminal(false))?;
    let client = ().serve(mcp_oauth_rmcp::transport(Arc::new(session), url.as_str())).await?;
    for tool in client.list_all_tools().await? {
        println!("{}", tool.name);
    }
    client.cancel().await?;
    Ok(())
}
