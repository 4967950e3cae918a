//! The `mcp-oauth` command line: one file per command, the profile record in
//! its own module, the shared set-up here. The library's messages name no
//! flag of this CLI; the hints that do are added here ([`hint`]).

pub(crate) mod config;
pub(crate) mod demo;
pub(crate) mod login;
pub(crate) mod logout;
pub(crate) mod profile;
pub(crate) mod proxy;
pub(crate) mod status;
pub(crate) mod store;
pub(crate) mod token;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use mcp_oauth_host::bindings::mcp::oauth::engine_types::{AuthError, FailureKind};
use mcp_oauth_host::browser::BrowserOpener;
use mcp_oauth_host::callback::CallbackOptions;
use mcp_oauth_host::http::HttpOptions;
use mcp_oauth_host::prompts::{ConsentPolicy, TerminalPrompter};
use mcp_oauth_host::runtime::Uncached;
use mcp_oauth_host::storage::mode::SecretsChoice;
use mcp_oauth_host::storage::select::{self, StorePlace};
use mcp_oauth_host::storage::{Store, StoreError};
use mcp_oauth_host::{Config, Error, Runtime, RuntimeOptions, Session, SessionIo};

pub(crate) const AFTER_HELP: &str = "\
Environment:
  MCP_OAUTH_HOME   where tokens and registrations are stored (default: the platform data dir)
  MCP_OAUTH_SECRETS  auto (default), keychain or file: where secrets live (see --secrets)
  MCP_OAUTH_STORE_KEY_FILE  a file holding the store key in base64 (0600), instead of the keychain
  MCP_OAUTH_STORE  a shared store, redis://... or rediss://... (see --store); MCP_OAUTH_STORE_PASSWORD its password
  MCP_OAUTH_USER   the principal whose tokens these are, on a shared store (see --user)
  BROWSER          command that opens the authorization URL (run directly, URL as last argument)
  MCP_OAUTH_HTTP_TIMEOUT  seconds each HTTP request may take (default 30)
  SSL_CERT_FILE    PEM bundle of the CA certificates to trust (replaces the built-in roots)
  HTTPS_PROXY, NO_PROXY   an HTTP proxy for outgoing requests, and the hosts that bypass it

Exit codes:
  0 ok, 1 error, 2 usage, 3 authorization required (token, silent), 4 declined, 5 timed out,
  130 stopped with Ctrl-C";

#[derive(Parser)]
#[command(name = "mcp-oauth", version, about = "OAuth for MCP servers, done by a sandboxed engine", after_help = AFTER_HELP)]
pub(crate) struct Cli {
    /// Where secrets live: auto (the OS keychain holds the store key when
    /// one answers, else plain files, said once), keychain (sealed, or an
    /// error), file (plain 0600 files). A store keeps the mode it was
    /// created with (store.json); `mcp-oauth store seal|unseal` converts it.
    #[arg(long, global = true, env = "MCP_OAUTH_SECRETS", value_name = "MODE", value_parser = parse_secrets)]
    pub secrets: Option<SecretsChoice>,
    /// A store shared by many replicas, on Redis or Valkey:
    /// redis://[user[:password]@]host[:port][/db][?prefix=P&lease_ms=N], or
    /// rediss:// for TLS (the password may come from
    /// MCP_OAUTH_STORE_PASSWORD; records are sealed with the key in
    /// MCP_OAUTH_STORE_KEY_FILE). Default: files under MCP_OAUTH_HOME.
    #[arg(
        long,
        global = true,
        env = "MCP_OAUTH_STORE",
        value_name = "URL",
        hide_env_values = true
    )]
    pub store: Option<String>,
    /// The principal whose tokens these are, on a store serving many users
    /// (a gateway): 1-128 of [A-Za-z0-9._@+-]. Default: one principal.
    #[arg(long, global = true, env = "MCP_OAUTH_USER", value_name = "NAME")]
    pub user: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

fn parse_secrets(s: &str) -> Result<SecretsChoice, String> {
    s.parse()
}

static SECRETS: std::sync::OnceLock<SecretsChoice> = std::sync::OnceLock::new();

/// Records `--secrets` (or `MCP_OAUTH_SECRETS`) for every command of this run.
pub(crate) fn set_secrets(choice: Option<SecretsChoice>) {
    let _ = SECRETS.set(choice.unwrap_or_default());
}

static PLACE: std::sync::OnceLock<StorePlace> = std::sync::OnceLock::new();
static CA_FILE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Records `--store` and `--user` (or their variables) for every command of
/// this run; a URL or user that cannot be used is a usage error now.
pub(crate) fn set_place(store: Option<String>, user: Option<String>) -> Result<(), Failure> {
    let place = StorePlace {
        url: store.filter(|s| !s.trim().is_empty()),
        user: user.filter(|s| !s.is_empty()),
        ca_file: None,
    };
    place.check().map_err(|e| Failure::Usage(e.to_string()))?;
    let _ = PLACE.set(place);
    Ok(())
}

/// Where the store is, with `--ca-file` when a command took one.
pub(crate) fn place() -> StorePlace {
    let mut p = PLACE.get().cloned().unwrap_or_default();
    p.ca_file = CA_FILE.get().cloned();
    p
}

/// The store, in the mode its manifest pins: the shared store `--store`
/// names, else the file store at `home`.
pub(crate) fn open_store(home: &std::path::Path) -> Result<Arc<dyn Store>, Failure> {
    let choice = SECRETS.get().copied().unwrap_or_default();
    select::open(home, &place(), choice).map_err(|e| match e {
        StoreError::Config(m) => Failure::Usage(m),
        e => Failure::Run(Error::Setup(e.to_string())),
    })
}

#[derive(Args, Clone, Default)]
pub(crate) struct ClientArgs {
    /// A pre-registered client id (otherwise: client metadata document or dynamic registration)
    #[arg(long)]
    pub client_id: Option<String>,
    /// The pre-registered client's secret (prefer the MCP_OAUTH_CLIENT_SECRET variable)
    #[arg(long, env = "MCP_OAUTH_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// Your Client ID Metadata Document URL (https, with a path)
    #[arg(long)]
    pub client_metadata_url: Option<String>,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Authorize with an MCP server (opens the browser, or runs a machine grant) and store the tokens
    Login(login::LoginArgs),
    /// Print a valid access token (refreshing if needed); never interactive
    Token {
        /// The MCP server URL
        url: String,
        /// Print JSON: the token, its type (Bearer or DPoP), expiry and scopes
        #[arg(long)]
        json: bool,
    },
    /// Print the headers for one request with a valid token, one per line:
    /// `Authorization` and, for a DPoP-bound token, a fresh `DPoP` proof;
    /// never interactive
    Headers {
        /// The MCP server URL
        url: String,
        /// The request's HTTP method
        #[arg(long, default_value = "POST")]
        method: String,
        /// The request's URL, when not the server URL itself
        #[arg(long = "for", value_name = "URL")]
        request_url: Option<String>,
    },
    /// Show what is stored: issuer, client, scopes, expiry (never a secret)
    Status {
        /// One server; all known servers when omitted
        url: Option<String>,
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Sign out of a server: revoke its tokens at the authorization server
    /// (RFC 7009, when it offers that), then remove them here. A revocation
    /// that fails is reported; the tokens are removed here anyway.
    Logout {
        /// The MCP server URL
        url: String,
        /// Only remove the tokens from this machine; revoke nothing
        #[arg(long)]
        local: bool,
        /// PEM bundle of the CA certificates to trust (default: SSL_CERT_FILE, else the built-in roots)
        #[arg(long, value_name = "FILE")]
        ca_file: Option<std::path::PathBuf>,
    },
    /// A stdio MCP server for desktop clients that relays to <url>, signing in as needed
    Proxy(proxy::ProxyArgs),
    /// Print the JSON for Claude Desktop / Cursor that runs `mcp-oauth proxy <url>`
    Config(config::ConfigArgs),
    /// Convert the store between sealed (the store key in the keychain or
    /// MCP_OAUTH_STORE_KEY_FILE) and plain files
    #[command(subcommand)]
    Store(store::StoreCommand),
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
        /// With --serve: misbehave, for tests (repeatable): `deny` (the
        /// user declines, in the browser and on the device), `token-error`
        /// (the token endpoint answers invalid_grant)
        #[arg(long = "fault", requires = "serve", value_name = "FAULT", value_parser = ["deny", "token-error"])]
        faults: Vec<String>,
    },
    /// Internal: compile the optimized engine into the artifact cache of
    /// <HOME> (started detached by a run that found no usable cache)
    #[command(name = "__write-engine-cache", hide = true)]
    WriteEngineCache {
        /// The store directory
        home: PathBuf,
    },
}

/// The exit codes of the CLI contract.
pub(crate) fn exit_for(e: &Error) -> u8 {
    match e.auth() {
        Some(AuthError::AuthorizationRequired) => 3,
        Some(AuthError::Declined) => 4,
        Some(AuthError::TimedOut) => 5,
        _ if matches!(e, Error::StoreConfig(_)) => 2,
        _ => 1,
    }
}

/// What to do next, in this CLI's terms, for errors a flag can fix.
pub(crate) fn hint(e: &Error) -> Option<&'static str> {
    match e.auth()? {
        AuthError::AuthorizationRequired => Some("log in first: mcp-oauth login <url>"),
        AuthError::TimedOut => Some(
            "run the command again (--timeout SECS allows longer); with no browser on this machine, --device signs in with a code",
        ),
        AuthError::Failed(f) => match f.kind {
            FailureKind::CallbackListener => Some("free the port, or choose another with --callback-port"),
            FailureKind::NoClientIdentity => Some("pass --client-id (and --client-secret) or --client-metadata-url"),
            FailureKind::RegistrationFailed => Some("pass a pre-registered client with --client-id"),
            _ => None,
        },
        AuthError::Declined => None,
    }
}

/// Why a command failed: what the user typed (exit 2), or the run itself.
pub(crate) enum Failure {
    /// A usage error, in words that say what to type instead.
    Usage(String),
    /// The library's error.
    Run(Error),
    /// Stopped with Ctrl-C before it finished.
    Interrupted,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Run(e)
    }
}

/// A session for the URL the user gave. A URL the engine refuses here is the
/// user's mistake (nothing was fetched yet): a usage error.
pub(crate) fn open_session(rt: &Runtime, url: &str, config: Config, io: SessionIo) -> Result<Session, Failure> {
    rt.session(url, config, io).map_err(|e| match e.auth() {
        Some(AuthError::Failed(f)) if f.kind == FailureKind::UnsafeUrl => Failure::Usage(format!(
            "{}; give the MCP server's https URL, e.g. https://mcp.example.com/mcp",
            f.message
        )),
        Some(AuthError::Failed(f)) if f.kind == FailureKind::InvalidConfig => {
            Failure::Usage(format!("{} (see --help for the client flags)", f.message))
        }
        _ => Failure::Run(e),
    })
}

/// The engine's HTTP client as the environment sets it up:
/// `MCP_OAUTH_HTTP_TIMEOUT` (seconds) is the deadline of each request
/// (default 30; a server that accepts and never answers costs one such
/// deadline per command: every later request would go to the same place);
/// `ca_file`, else `SSL_CERT_FILE`, replaces the trusted CA roots;
/// `HTTPS_PROXY` / `NO_PROXY` are read by the client itself.
pub(crate) fn http_options(ca_file: Option<&std::path::Path>) -> Result<HttpOptions, Failure> {
    let mut o = HttpOptions::default();
    if let Some(secs) = std::env::var("MCP_OAUTH_HTTP_TIMEOUT")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| (1..=3600).contains(s))
    {
        o.total_timeout = std::time::Duration::from_secs(secs);
        o.connect_timeout = o.connect_timeout.min(o.total_timeout);
    }
    let env_ca = std::env::var_os("SSL_CERT_FILE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    if let Some(path) = ca_file {
        // rediss:// trusts the same roots.
        let _ = CA_FILE.set(path.to_path_buf());
    }
    if let Some(path) = ca_file.map(std::path::Path::to_path_buf).or(env_ca) {
        let roots = mcp_oauth_host::http::load_roots(&path)
            .map_err(|e| Failure::Usage(format!("{e} (from --ca-file or SSL_CERT_FILE)")))?;
        o.root_certs = Some(roots);
    }
    Ok(o)
}

/// The runtime for `home`; it opens the store (in the mode `store.json`
/// pins, reading the keychain while the engine loads): `rt.store()`.
pub(crate) fn runtime(home: PathBuf, http: HttpOptions) -> Result<Runtime, Failure> {
    let rt = Runtime::new(RuntimeOptions {
        home,
        secrets: SECRETS.get().copied().unwrap_or_default(),
        place: place(),
        http,
        // The tests of the fallback (a binary whose embedded engine the
        // running wasmtime refuses) turn it off; unset in normal use.
        embedded_artifact: std::env::var_os("MCP_OAUTH_TEST_NO_EMBEDDED_ENGINE").is_none(),
        uncached: Uncached::Baseline,
        ..RuntimeOptions::default()
    })?;
    if rt.is_baseline() {
        // The embedded engine was refused and none was cached: this run uses Winch's quick
        // compile, and a detached process caches the optimized one for the
        // next runs.
        spawn_cache_writer(&rt.options().home);
    }
    Ok(rt)
}

/// Starts `mcp-oauth __write-engine-cache <home>` in the background: no
/// shell, no environment, no stdio, its own process group (a Ctrl-C at the
/// terminal does not reach it). Best effort: without it, the next run
/// compiles again.
fn spawn_cache_writer(home: &std::path::Path) {
    let Ok(exe) = std::env::current_exe() else { return };
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("__write-engine-cache")
        .arg(home)
        .env_clear()
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    if let Ok(mut child) = cmd.spawn() {
        // Reaped when it ends if this process lives longer (the proxy).
        std::thread::spawn(move || child.wait());
    }
}

/// `__write-engine-cache`: the background half of a first run.
pub(crate) fn write_engine_cache(home: PathBuf) -> Result<(), Failure> {
    #[cfg(unix)]
    // SAFETY: lowering this process's own priority; no memory is involved.
    unsafe {
        libc::nice(10);
    }
    Runtime::write_cache(&RuntimeOptions {
        home,
        ..RuntimeOptions::default()
    })
    .map(|_| ())
    .map_err(Failure::Run)
}

/// A browser that never opens: the engine then shows the URL to paste from.
pub(crate) struct NoBrowser;

impl BrowserOpener for NoBrowser {
    fn open(&self, _url: &str) -> Result<(), String> {
        Err("--no-browser was given".into())
    }
}

/// For commands that must never involve the user.
pub(crate) fn quiet_io() -> SessionIo {
    SessionIo {
        prompter: Arc::new(TerminalPrompter::new(ConsentPolicy::Deny, false)),
        browser: Arc::new(NoBrowser),
        callback: CallbackOptions::default(),
        signer: None,
    }
}

/// "in 59 min", "expired 3 min ago", "unknown".
pub(crate) fn human_expiry(at: Option<u64>) -> String {
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
