//! # mcp-oauth host
//!
//! The wasmtime reference host for the mcp-oauth engine component: it loads
//! the sandboxed engine once, supplies every `mcp:oauth` import for real
//! (HTTP, storage, browser, loopback callback, prompts, clock, randomness),
//! hands out one [`Session`] per MCP server, and offers an
//! [`AuthorizedClient`] that attaches tokens and handles 401/403.
//!
//! ```no_run
//! use std::sync::Arc;
//! use mcp_oauth_host::{AuthorizedClient, Runtime, RuntimeOptions, SessionIo, Config};
//!
//! let runtime = Runtime::new(RuntimeOptions::default())?;
//! let session = runtime.session("https://mcp.example.com/mcp", Config::default(), SessionIo::terminal(false))?;
//! let client = AuthorizedClient::new(Arc::new(session), Default::default());
//! let resp = client.post_json("https://mcp.example.com/mcp", br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)?;
//! println!("{}", resp.status);
//! # Ok::<(), mcp_oauth_host::Error>(())
//! ```

pub mod browser;
pub mod callback;
pub mod client;
pub mod demo_server;
pub mod headless;
pub mod http;
pub mod prompts;
pub mod runtime;
pub mod storage;

/// Host bindings generated from `wit/` (world `engine`).
pub mod bindings {
    wasmtime::component::bindgen!({
        world: "engine",
        path: "../wit",
        with: {
            "mcp:oauth/callback.listener": crate::callback::Listener,
        },
    });
}

pub use bindings::exports::mcp::oauth::client::ChallengeOutcome;
pub use bindings::mcp::oauth::engine_types::{AccessToken, AuthError, Config, Mode, ServerResponse, Status};
pub use client::AuthorizedClient;
pub use runtime::{Error, Runtime, RuntimeOptions, Session, SessionIo};

impl Default for Config {
    fn default() -> Self {
        Config {
            client_id: None,
            client_secret: None,
            client_issuer: None,
            client_metadata_url: None,
            client_name: None,
            scope: None,
            callback_port: None,
            callback_timeout_ms: None,
            allow_missing_s256: Vec::new(),
        }
    }
}

impl SessionIo {
    /// Terminal prompts, `$BROWSER` or the system opener, pasting when stdin is
    /// a terminal. `consent_given`: the user already asked to log in.
    pub fn terminal(consent_given: bool) -> Self {
        use std::io::IsTerminal;
        let policy = if consent_given {
            prompts::ConsentPolicy::Allow
        } else {
            prompts::ConsentPolicy::Ask
        };
        SessionIo {
            prompter: std::sync::Arc::new(prompts::TerminalPrompter::new(policy, false)),
            browser: std::sync::Arc::new(browser::SystemBrowser::from_env()),
            callback: callback::CallbackOptions {
                paste: std::io::stdin().is_terminal(),
                cancel: None,
            },
        }
    }
}
