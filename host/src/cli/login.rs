//! `mcp-oauth login <url>`: authorizes with an MCP server and stores the
//! tokens. It asks the server first through the library's authorized client
//! (a stored token is used as is; a 401 names the metadata, one request
//! instead of probing well-known URLs, and the engine authorizes), and only
//! if the server asked for nothing does it authorize directly.

use std::io::IsTerminal;
use std::sync::Arc;

use mcp_oauth_host::browser::{BrowserOpener, SystemBrowser};
use mcp_oauth_host::callback::CallbackOptions;
use mcp_oauth_host::prompts::{ConsentPolicy, TerminalPrompter};
use mcp_oauth_host::storage::{FileStore, default_home};
use mcp_oauth_host::terminal::printable;
use mcp_oauth_host::{AuthorizedClient, Config, Error, Mode, SessionIo};

use super::profile::{Profile, config_from, save_profile};
use super::{ClientArgs, Failure, NoBrowser, human_expiry, open_session, runtime};

/// What `login` was asked to do.
pub(crate) struct LoginArgs {
    pub url: String,
    pub client: ClientArgs,
    pub scope: Option<String>,
    pub callback_port: Option<u16>,
    pub no_browser: bool,
    pub timeout_secs: u64,
}

pub(crate) fn login(a: LoginArgs) -> Result<(), Failure> {
    let home = default_home();
    let store = FileStore::open(&home).map_err(|e| Error::Setup(e.to_string()))?;
    let profile = Profile {
        client_id: a.client.client_id,
        client_secret: a.client.client_secret,
        client_metadata_url: a.client.client_metadata_url,
        scope: a.scope,
    };
    let config = Config {
        callback_port: a.callback_port,
        callback_timeout_ms: Some(a.timeout_secs.saturating_mul(1000)),
        ..config_from(&profile)
    };
    let browser: Arc<dyn BrowserOpener> = if a.no_browser {
        Arc::new(NoBrowser)
    } else {
        Arc::new(SystemBrowser::from_env())
    };
    let io = SessionIo {
        prompter: Arc::new(TerminalPrompter::new(ConsentPolicy::Allow, false)),
        browser,
        callback: CallbackOptions {
            paste: a.no_browser || std::io::stdin().is_terminal(),
            cancel: None,
        },
        signer: None,
    };
    let url = a.url.as_str();
    let session = Arc::new(open_session(&runtime(home)?, url, config, io)?);
    save_profile(&store, url, &profile);
    let client = AuthorizedClient::new(session.clone(), super::http_options());
    client.post_json(url, br#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#)?;
    if session.authorize(Mode::Silent).is_err() {
        // The server answered without asking for authorization: authorize
        // anyway (discovery from the well-known URLs).
        session.authorize(Mode::Interactive)?;
    }
    let st = session.status()?;
    eprintln!(
        "Logged in to {} (issuer {}, token expires {}).",
        printable(url),
        printable(st.issuer.as_deref().unwrap_or_default()),
        human_expiry(st.expires_at)
    );
    Ok(())
}
