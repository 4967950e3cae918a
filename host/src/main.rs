//! `mcp-oauth`: log in to MCP servers, print tokens for scripts, see and
//! remove what is stored. The OAuth engine runs sandboxed in WebAssembly.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use mcp_oauth_host::bindings::mcp::oauth::engine_types::{AuthError, Mode, ServerResponse, Status};
use mcp_oauth_host::browser::{BrowserOpener, SystemBrowser};
use mcp_oauth_host::callback::CallbackOptions;
use mcp_oauth_host::demo_server::{DemoServer, Faults};
use mcp_oauth_host::headless::HeadlessBrowser;
use mcp_oauth_host::http::{HttpClient, HttpOptions, Request};
use mcp_oauth_host::prompts::{ConsentPolicy, TerminalPrompter};
use mcp_oauth_host::storage::{FileStore, default_home};
use mcp_oauth_host::{AuthorizedClient, ChallengeOutcome, Config, Error, Runtime, RuntimeOptions, SessionIo};

const AFTER_HELP: &str = "\
Environment:
  MCP_OAUTH_HOME   where tokens and registrations are stored (default: the platform data dir)
  BROWSER          command that opens the authorization URL (run directly, URL as last argument)

Exit codes:
  0 ok, 1 error, 2 usage, 3 authorization required (token, silent), 4 declined, 5 timed out";

#[derive(Parser)]
#[command(name = "mcp-oauth", version, about = "OAuth for MCP servers, done by a sandboxed engine", after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone, Default)]
struct ClientArgs {
    /// A pre-registered client id (otherwise: client metadata document or dynamic registration)
    #[arg(long)]
    client_id: Option<String>,
    /// The pre-registered client's secret (prefer the MCP_OAUTH_CLIENT_SECRET variable)
    #[arg(long, env = "MCP_OAUTH_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// Your Client ID Metadata Document URL (https, with a path)
    #[arg(long)]
    client_metadata_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Authorize with an MCP server (opens the browser) and store the tokens
    Login {
        /// The MCP server URL, e.g. https://mcp.example.com/mcp
        url: String,
        #[command(flatten)]
        client: ClientArgs,
        /// Scopes to request, space-separated (default: what the server asks for)
        #[arg(long)]
        scope: Option<String>,
        /// Listen for the redirect on this port (default: any free port)
        #[arg(long)]
        callback_port: Option<u16>,
        /// Do not open a browser: print the URL and read the redirect URL pasted back
        #[arg(long)]
        no_browser: bool,
        /// Seconds to wait for the browser to come back
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Print a valid access token (refreshing if needed); never interactive
    Token {
        /// The MCP server URL
        url: String,
    },
    /// Show what is stored: issuer, client, scopes, expiry (never a secret)
    Status {
        /// One server; all known servers when omitted
        url: Option<String>,
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Remove the stored tokens for a server
    Logout {
        /// The MCP server URL
        url: String,
    },
    /// Run the whole flow against a built-in local server, narrating each step
    Demo {
        /// Open your real browser instead of following redirects headlessly
        #[arg(long)]
        browser: bool,
        /// Only run the local servers, print their URLs, and wait for Ctrl-C
        /// (to test other hosts and clients against them)
        #[arg(long)]
        serve: bool,
        /// With --serve: the port to listen on, on 127.0.0.1 (default: any free port)
        #[arg(long, requires = "serve")]
        port: Option<u16>,
        /// With --serve: access token lifetime in seconds
        #[arg(long, requires = "serve", default_value_t = 3600)]
        access_ttl: u64,
    },
}

/// The exit codes of the CLI contract.
fn exit_for(e: &Error) -> u8 {
    match e.auth() {
        Some(AuthError::AuthorizationRequired) => 3,
        Some(AuthError::Declined) => 4,
        Some(AuthError::TimedOut) => 5,
        _ => 1,
    }
}

/// What `login` was given, kept (0600, in the store) so that `token`,
/// `status` and `logout` use the same client identity.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Profile {
    client_id: Option<String>,
    client_secret: Option<String>,
    client_metadata_url: Option<String>,
    scope: Option<String>,
}

fn profile_key(url: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(url.as_bytes());
    format!(
        "cli-profile-{}",
        d.iter().take(20).map(|b| format!("{b:02x}")).collect::<String>()
    )
}

fn load_profile(store: &FileStore, url: &str) -> Profile {
    store
        .get(&profile_key(url))
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn config_from(p: &Profile) -> Config {
    Config {
        client_id: p.client_id.clone(),
        client_secret: p.client_secret.clone(),
        client_metadata_url: p.client_metadata_url.clone(),
        scope: p.scope.clone(),
        ..Config::default()
    }
}

fn runtime(home: std::path::PathBuf) -> Result<Runtime, Error> {
    Runtime::new(RuntimeOptions {
        home,
        ..RuntimeOptions::default()
    })
}

/// A browser that never opens: the engine then shows the URL to paste from.
struct NoBrowser;

impl BrowserOpener for NoBrowser {
    fn open(&self, _url: &str) -> Result<(), String> {
        Err("--no-browser was given".into())
    }
}

fn human_expiry(at: Option<u64>) -> String {
    let Some(at) = at else { return "unknown".into() };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    if at <= now {
        format!("expired {} min ago", (now - at) / 60_000)
    } else {
        format!("in {} min", (at - now) / 60_000)
    }
}

fn print_status(s: &Status) {
    println!("{}", s.server_url);
    let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    println!("  issuer:      {}", or_none(&s.issuer));
    println!("  client id:   {}", or_none(&s.client_id));
    println!(
        "  scopes:      {}",
        if s.scopes.is_empty() {
            "-".into()
        } else {
            s.scopes.join(" ")
        }
    );
    println!(
        "  token:       {}",
        if s.has_token {
            format!("stored, expires {}", human_expiry(s.expires_at))
        } else {
            "none".into()
        }
    );
    println!("  can refresh: {}", if s.can_refresh { "yes" } else { "no" });
}

fn status_json(s: &Status) -> serde_json::Value {
    serde_json::json!({
        "server_url": s.server_url,
        "resource": s.resource,
        "issuer": s.issuer,
        "client_id": s.client_id,
        "scopes": s.scopes,
        "expires_at": s.expires_at,
        "has_token": s.has_token,
        "can_refresh": s.can_refresh,
        "legacy": s.legacy,
    })
}

fn login(
    url: &str,
    client: ClientArgs,
    scope: Option<String>,
    callback_port: Option<u16>,
    no_browser: bool,
    timeout: u64,
) -> Result<(), Error> {
    let home = default_home();
    let store = FileStore::open(&home).map_err(|e| Error::Setup(e.to_string()))?;
    let profile = Profile {
        client_id: client.client_id,
        client_secret: client.client_secret,
        client_metadata_url: client.client_metadata_url,
        scope,
    };
    let config = Config {
        callback_port,
        callback_timeout_ms: Some(timeout.saturating_mul(1000)),
        ..config_from(&profile)
    };
    let browser: Arc<dyn BrowserOpener> = if no_browser {
        Arc::new(NoBrowser)
    } else {
        Arc::new(SystemBrowser::from_env())
    };
    let io = SessionIo {
        prompter: Arc::new(TerminalPrompter::new(ConsentPolicy::Allow, false)),
        browser,
        callback: CallbackOptions {
            paste: no_browser || std::io::stdin().is_terminal(),
            cancel: None,
        },
        signer: None,
    };
    let session = runtime(home)?.session(url, config, io)?;
    let _ = store.set(&profile_key(url), &serde_json::to_vec(&profile).unwrap_or_default());
    if session.authorize(Mode::Silent).is_err() {
        // Ask the server first: its 401 names the metadata (one request
        // instead of probing well-known URLs).
        let probe = HttpClient::new(HttpOptions::default()).send(&Request {
            method: "POST",
            url: url.to_string(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("accept".into(), "application/json, text/event-stream".into()),
            ],
            body: br#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#.to_vec(),
        });
        match probe {
            Ok(r) if r.status == 401 || r.status == 403 => {
                let challenge = ServerResponse {
                    status: r.status,
                    www_authenticate: r.header_values("www-authenticate"),
                    sent_token: None,
                };
                if let ChallengeOutcome::Unchanged = session.on_response(&challenge, Mode::Interactive)? {
                    session.authorize(Mode::Interactive)?;
                }
            }
            _ => {
                session.authorize(Mode::Interactive)?;
            }
        }
    }
    let st = session.status()?;
    eprintln!(
        "Logged in to {url} (issuer {}, token expires {}).",
        st.issuer.unwrap_or_default(),
        human_expiry(st.expires_at)
    );
    Ok(())
}

fn quiet_io() -> SessionIo {
    SessionIo {
        prompter: Arc::new(TerminalPrompter::new(ConsentPolicy::Deny, false)),
        browser: Arc::new(NoBrowser),
        callback: CallbackOptions::default(),
        signer: None,
    }
}

fn token(url: &str) -> Result<(), Error> {
    let home = default_home();
    let store = FileStore::open(&home).map_err(|e| Error::Setup(e.to_string()))?;
    let config = config_from(&load_profile(&store, url));
    let session = runtime(home)?.session(url, config, quiet_io())?;
    let t = session.authorize(Mode::Silent)?;
    println!("{}", t.token);
    Ok(())
}

fn status(url: Option<String>, json: bool) -> Result<(), Error> {
    let home = default_home();
    let store = FileStore::open(&home).map_err(|e| Error::Setup(e.to_string()))?;
    let urls = match url {
        Some(u) => vec![u],
        None => store.known_servers(),
    };
    if urls.is_empty() {
        if json {
            println!("[]");
        } else {
            eprintln!("No servers yet. Log in with: mcp-oauth login <url>");
        }
        return Ok(());
    }
    let rt = runtime(home)?;
    let mut all = Vec::new();
    for u in urls {
        let session = rt.session(&u, config_from(&load_profile(&store, &u)), quiet_io())?;
        all.push(session.status()?);
    }
    if json {
        let v: Vec<_> = all.iter().map(status_json).collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        for s in &all {
            print_status(s);
        }
    }
    Ok(())
}

fn logout(url: &str) -> Result<(), Error> {
    let home = default_home();
    let store = FileStore::open(&home).map_err(|e| Error::Setup(e.to_string()))?;
    let session = runtime(home)?.session(url, config_from(&load_profile(&store, url)), quiet_io())?;
    session.logout()?;
    let _ = store.delete(&profile_key(url));
    eprintln!("Logged out of {url}: its tokens were removed.");
    Ok(())
}

/// `demo --serve`: the demo's servers alone, until the process is stopped.
fn serve_demo(port: u16, access_ttl: u64) -> Result<(), Error> {
    let faults = Faults {
        access_ttl_secs: Some(access_ttl),
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

fn demo(real_browser: bool) -> Result<(), Error> {
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

    println!("3. A new process finds everything in storage: no discovery, no browser:");
    let before = server.log().len();
    let again = rt.session(&mcp, Config::default(), io)?;
    again.authorize(Mode::Silent)?;
    print_status(&again.status()?);
    println!("   requests to the server: {}\n", server.log().len() - before);

    println!("Everything the server saw:");
    for line in server.log() {
        println!("  {line}");
    }
    let _ = std::fs::remove_dir_all(&home);
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Login {
            url,
            client,
            scope,
            callback_port,
            no_browser,
            timeout,
        } => login(&url, client, scope, callback_port, no_browser, timeout),
        Command::Token { url } => token(&url),
        Command::Status { url, json } => status(url, json),
        Command::Logout { url } => logout(&url),
        Command::Demo {
            serve: true,
            port,
            access_ttl,
            ..
        } => serve_demo(port.unwrap_or(0), access_ttl),
        Command::Demo { browser, .. } => demo(browser),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-oauth: {e}");
            ExitCode::from(exit_for(&e))
        }
    }
}
