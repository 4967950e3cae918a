//! `mcp-oauth login <url>`: authorizes with an MCP server and stores the
//! tokens. It asks the server first through the library's authorized client
//! (a stored token is used as is; a 401 names the metadata, one request
//! instead of probing well-known URLs, and the engine authorizes), and only
//! if the server asked for nothing does it authorize directly.
//!
//! With `--device` (or no browser here: `--no-browser`, SSH), the device
//! grant runs when the AS offers it: the address and the code on stderr
//! (and a QR code when it fits), a spinner until the code is entered.
//!
//! Ctrl-C stops the wait for the browser or the code (exit 130);
//! a second Ctrl-C ends the process at once. Records are only ever written
//! whole, and the profile only after a successful login.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Args;
use mcp_oauth_host::browser::{BrowserOpener, ElsewhereBrowser, SystemBrowser, remote_without_display};
use mcp_oauth_host::callback::CallbackOptions;
use mcp_oauth_host::prompts::{ConsentPolicy, TerminalPrompter};
use mcp_oauth_host::storage::default_home;
use mcp_oauth_host::terminal::printable;
use mcp_oauth_host::{AuthorizedClient, Config, Error, Mode, SessionIo};

use super::profile::{MachineGrant, Profile, config_from, parse_authorize_param, save_profile};
use super::{ClientArgs, Failure, http_options, human_expiry, open_session, runtime};

/// `mcp-oauth login`'s arguments.
#[derive(Args)]
pub(crate) struct LoginArgs {
    /// The MCP server URL, e.g. https://mcp.example.com/mcp
    pub url: String,
    #[command(flatten)]
    pub client: ClientArgs,
    /// Scopes to request, space-separated (default: what the server asks for)
    #[arg(long)]
    pub scope: Option<String>,
    /// Listen for the redirect on this port (default: any free port)
    #[arg(long)]
    pub callback_port: Option<u16>,
    /// No browser on this machine: sign in with a code on any other device
    /// when the authorization server offers the device grant (RFC 8628),
    /// else print the URL and read the address the browser lands on, pasted
    /// back (the default in an SSH session with no display)
    #[arg(long)]
    pub no_browser: bool,
    /// Sign in with a code on any device (the device authorization grant,
    /// RFC 8628) when the authorization server offers it
    #[arg(long)]
    pub device: bool,
    /// Seconds to wait for the sign-in (the browser, or the code to be entered)
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// An extra authorization request parameter, e.g. audience=https://api.example/
    /// (repeatable; never replaces one the engine sets)
    #[arg(long = "authorize-param", value_name = "NAME=VALUE", value_parser = parse_authorize_param)]
    pub authorize_params: Vec<(String, String)>,
    /// Get tokens with the client credentials grant, no browser (needs
    /// --client-id with --client-secret or --private-key)
    #[arg(long, conflicts_with_all = ["id_token_file", "workload_token_file"])]
    pub client_credentials: bool,
    /// Workload identity federation: present the JWT in this file (e.g. a
    /// Kubernetes service account token) to the AS, no browser (read again
    /// whenever a token is needed; needs --client-id)
    #[arg(long, value_name = "FILE", conflicts_with = "id_token_file")]
    pub workload_token_file: Option<PathBuf>,
    /// Authenticate the client with private_key_jwt (ES256), signing with this
    /// PKCS#8 PEM key file (kept where it is; its path is remembered)
    #[arg(long, value_name = "FILE")]
    pub private_key: Option<PathBuf>,
    /// Enterprise-managed authorization: exchange the IdP ID token in this
    /// file for access, no browser (read again whenever a token is needed)
    #[arg(long, value_name = "FILE", requires = "idp_token_endpoint")]
    pub id_token_file: Option<PathBuf>,
    /// With --id-token-file: the IdP's token endpoint
    #[arg(long, value_name = "URL", requires = "id_token_file")]
    pub idp_token_endpoint: Option<String>,
    /// With --id-token-file: the client id at the IdP
    #[arg(long, value_name = "ID", requires = "id_token_file")]
    pub idp_client_id: Option<String>,
    /// PEM bundle of the CA certificates to trust (default: SSL_CERT_FILE, else the built-in roots)
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

/// Set by the first Ctrl-C (the callback wait polls it).
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Exit status of a login stopped with Ctrl-C (128 + SIGINT, as shells do).
pub(crate) const EXIT_INTERRUPTED: u8 = 130;

pub(crate) fn login(a: LoginArgs) -> Result<(), Failure> {
    let home = default_home();
    let grant = if a.client_credentials {
        Some(MachineGrant::ClientCredentials)
    } else if let Some(id_token_file) = a.id_token_file {
        Some(MachineGrant::IdentityAssertion {
            idp_token_endpoint: a.idp_token_endpoint.unwrap_or_default(),
            id_token_file: absolute(id_token_file),
            idp_client_id: a.idp_client_id,
        })
    } else {
        a.workload_token_file.map(|f| MachineGrant::WorkloadIdentity {
            token_file: absolute(f),
        })
    };
    let profile = Profile {
        client_id: a.client.client_id,
        client_secret: a.client.client_secret,
        client_metadata_url: a.client.client_metadata_url,
        scope: a.scope,
        authorize_params: a.authorize_params,
        grant,
        private_key: a.private_key.map(absolute),
    };
    let (base, signer) = config_from(&profile)?;
    let elsewhere = a.no_browser || remote_without_display(|k| std::env::var(k).ok());
    let config = Config {
        callback_port: a.callback_port,
        callback_timeout_ms: Some(a.timeout.saturating_mul(1000)),
        // No browser can reach this machine's listener: a code is easier.
        device_grant: a.device || elsewhere,
        ..base
    };
    if elsewhere && !a.no_browser && profile.grant.is_none() {
        eprintln!("mcp-oauth: SSH session with no display: not opening a browser here (--no-browser).");
    }
    let (browser, prompter): (Arc<dyn BrowserOpener>, _) = if elsewhere {
        let p = TerminalPrompter::new(ConsentPolicy::Allow, false).paste_only();
        (Arc::new(ElsewhereBrowser), p)
    } else {
        let p = TerminalPrompter::new(ConsentPolicy::Allow, false);
        (Arc::new(SystemBrowser::from_env()), p)
    };
    let cancel = Arc::new(AtomicBool::new(false));
    watch_ctrl_c(cancel.clone());
    let io = SessionIo {
        prompter: Arc::new(prompter),
        browser,
        callback: CallbackOptions {
            paste: elsewhere || std::io::stdin().is_terminal(),
            cancel: Some(cancel),
        },
        signer,
    };
    let url = a.url.as_str();
    let http = http_options(a.ca_file.as_deref())?;
    let rt = runtime(home, http.clone())?;
    let store = rt.store();
    let session = Arc::new(open_session(&rt, url, config, io)?);
    let result = (|| -> Result<(), Error> {
        let client = AuthorizedClient::new(session.clone(), http);
        client.post_json(url, br#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#)?;
        if session.authorize(Mode::Silent).is_err() {
            // The server answered without asking for authorization: authorize
            // anyway (discovery from the well-known URLs).
            session.authorize(Mode::Interactive)?;
        }
        Ok(())
    })();
    if INTERRUPTED.load(Ordering::SeqCst) {
        return Err(Failure::Interrupted);
    }
    result?;
    save_profile(&*store, url, &profile);
    let st = session.status()?;
    eprintln!(
        "Logged in to {} (issuer {}, token expires {}).",
        printable(url),
        printable(st.issuer.as_deref().unwrap_or_default()),
        human_expiry(st.expires_at)
    );
    Ok(())
}

/// The first Ctrl-C cancels the wait for the browser; the second exits.
fn watch_ctrl_c(cancel: Arc<AtomicBool>) {
    let installed = ctrlc::set_handler(move || {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
        cancel.store(true, Ordering::SeqCst);
    });
    if let Err(e) = installed {
        eprintln!("mcp-oauth: warning: Ctrl-C will end the login abruptly ({e})");
    }
}

/// A file path as given, made absolute so the profile works from any directory.
fn absolute(p: PathBuf) -> PathBuf {
    std::path::absolute(&p).unwrap_or(p)
}
