//! `mcp-oauth proxy <url>`: a stdio MCP server that relays to the remote one,
//! authorized by the engine (see `mcp_oauth_host::proxy`). Set-up errors
//! (a bad URL, an unset `${VAR}` in a header, an unreadable CA bundle) are
//! usage errors, before anything is sent.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use mcp_oauth_host::browser::SystemBrowser;
use mcp_oauth_host::callback::CallbackOptions;
use mcp_oauth_host::proxy::auth::Authorizer;
use mcp_oauth_host::proxy::headers::parse_header;
use mcp_oauth_host::proxy::log::{Log, ProxyPrompter};
use mcp_oauth_host::proxy::stdio::ClientWriter;
use mcp_oauth_host::proxy::upstream::{Limits, Upstream};
use mcp_oauth_host::proxy::{TransportMode, run};
use mcp_oauth_host::storage::default_home;
use mcp_oauth_host::{Config, Error, SessionIo};

use super::profile::{Profile, config_from, load_profile, parse_authorize_param};
use super::{ClientArgs, Failure, http_options, open_session, runtime};

/// Which transport to speak to the server.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Transport {
    /// Streamable HTTP; the 2024-11-05 HTTP+SSE transport if the server refuses it
    HttpFirst,
    /// HTTP+SSE first, then Streamable HTTP
    SseFirst,
    /// Streamable HTTP only
    HttpOnly,
    /// HTTP+SSE only
    SseOnly,
}

#[derive(Args)]
pub(crate) struct ProxyArgs {
    /// The MCP server URL, e.g. https://mcp.example.com/mcp
    pub url: String,
    #[command(flatten)]
    pub client: ClientArgs,
    /// Scopes to request, space-separated (default: what the server asks for)
    #[arg(long)]
    pub scope: Option<String>,
    /// Listen for the browser's redirect on this port (default: any free port)
    #[arg(long)]
    pub callback_port: Option<u16>,
    /// Seconds to wait for the browser to come back
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Sign in with a code on any device (the device authorization grant,
    /// RFC 8628) when the authorization server offers it; the address and
    /// the code go to stderr, where a browser sign-in's URL goes (the
    /// default in an SSH session with no display)
    #[arg(long)]
    pub device: bool,
    /// An extra authorization request parameter, e.g. audience=https://api.example/
    /// (repeatable; never replaces one the engine sets)
    #[arg(long = "authorize-param", value_name = "NAME=VALUE", value_parser = parse_authorize_param)]
    pub authorize_params: Vec<(String, String)>,
    /// A header for every request, "Name: value"; ${VAR} expands from the
    /// environment (repeatable)
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// The transport to the server
    #[arg(long, value_enum, default_value_t = Transport::HttpFirst)]
    pub transport: Transport,
    /// Seconds to wait for a response head, and between two reads of a response
    #[arg(long, default_value_t = 300)]
    pub request_timeout: u64,
    /// PEM bundle of the CA certificates to trust, for the MCP server and the
    /// authorization server (replaces the built-in roots)
    #[arg(long, env = "SSL_CERT_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Write a debug log (secrets redacted) under <store>/logs/
    #[arg(long)]
    pub debug: bool,
}

pub(crate) fn proxy(a: ProxyArgs) -> Result<(), Failure> {
    let mut headers = Vec::new();
    for raw in &a.headers {
        headers.push(parse_header(raw, |v| std::env::var(v).ok()).map_err(Failure::Usage)?);
    }
    let http = http_options(a.ca_file.as_deref())?;
    let roots = http.root_certs.clone();
    let home = default_home();
    let store = super::open_store(&home)?;
    let log = Arc::new(if a.debug {
        let path = home.join("logs").join(format!("proxy-{}.log", std::process::id()));
        let log = Log::with_file(&path).map_err(|e| Error::Setup(format!("opening {}: {e}", path.display())))?;
        log.notice(&format!("debug log: {}", path.display()));
        log
    } else {
        Log::stderr_only()
    });
    // What `login` stored for this server, overridden by what was given here.
    let profile = Profile {
        client_id: a.client.client_id,
        client_secret: a.client.client_secret,
        client_metadata_url: a.client.client_metadata_url,
        scope: a.scope,
        authorize_params: a.authorize_params,
        ..Profile::default()
    }
    .or(load_profile(&*store, &a.url));
    let (base, signer) = config_from(&profile)?;
    let remote = mcp_oauth_host::browser::remote_without_display(|k| std::env::var(k).ok());
    let config = Config {
        callback_port: a.callback_port,
        callback_timeout_ms: Some(a.timeout.saturating_mul(1000)),
        device_grant: a.device || remote,
        ..base
    };
    // stdin is the JSON-RPC stream: no paste, no consent prompt there.
    let io = SessionIo {
        prompter: Arc::new(ProxyPrompter::new(log.clone(), &a.url)),
        browser: Arc::new(SystemBrowser::from_env()),
        callback: CallbackOptions {
            paste: false,
            cancel: None,
        },
        signer,
    };
    let rt = runtime(home, http)?;
    let session = open_session(&rt, &a.url, config.clone(), io.clone())?;
    // A static Authorization header means the server takes that instead of OAuth.
    let static_auth = headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("authorization"));
    let auth = (!static_auth).then(|| Arc::new(Authorizer::new(rt, session, config, io, log.clone())));
    log.debug(&format!(
        "proxy for {} (transport {:?}, headers: {}{})",
        a.url,
        a.transport,
        headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", "),
        if static_auth {
            "; static Authorization, no OAuth"
        } else {
            ""
        }
    ));
    let limits = Limits {
        request: std::time::Duration::from_secs(a.request_timeout.max(1)),
        ..Limits::default()
    };
    let up = Arc::new(Upstream::new(auth, headers, limits, roots, log));
    let mode = match a.transport {
        Transport::HttpFirst => TransportMode::HttpFirst,
        Transport::SseFirst => TransportMode::SseFirst,
        Transport::HttpOnly => TransportMode::HttpOnly,
        Transport::SseOnly => TransportMode::SseOnly,
    };
    let out = ClientWriter::new(Box::new(std::io::stdout()));
    run(
        up,
        &a.url,
        mode,
        Box::new(std::io::BufReader::new(std::io::stdin())),
        out,
    );
    Ok(())
}
