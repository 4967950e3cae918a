//! `mcp-oauth`: log in to MCP servers, print tokens for scripts, see and
//! remove what is stored. The OAuth engine runs sandboxed in WebAssembly.
//! Each command lives in its own file under `cli/`.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use mcp_oauth_host::terminal::printable;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::set_secrets(cli.secrets);
    if let Err(cli::Failure::Usage(m)) = cli::set_place(cli.store, cli.user) {
        eprintln!("mcp-oauth: {}", printable(&m));
        return ExitCode::from(2);
    }
    let command = cli.command;
    #[cfg(unix)]
    if !matches!(command, Command::Proxy(_)) {
        // `mcp-oauth config <url> | head` must end quietly when the reader
        // goes away, as Unix tools do, not panic on a broken pipe. (The
        // proxy keeps Rust's default: it handles its own stdout ending.)
        // SAFETY: restoring the default action of a signal, before any thread.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let result = match command {
        Command::Login(args) => cli::login::login(args),
        Command::Token { url, json } => cli::token::token(&url, json),
        Command::Headers {
            url,
            method,
            request_url,
        } => cli::token::headers(&url, &method, request_url.as_deref()),
        Command::Status { url, json } => cli::status::status(url, json),
        Command::Logout { url, local, ca_file } => cli::logout::logout(&url, !local, ca_file.as_deref()),
        Command::Proxy(args) => cli::proxy::proxy(args),
        Command::Config(args) => cli::config::config(args),
        Command::Store(c) => cli::store::run(c),
        Command::Demo {
            serve: true,
            port,
            access_ttl,
            faults,
            ..
        } => cli::demo::serve_demo(port.unwrap_or(0), access_ttl, &faults),
        Command::Demo { browser, .. } => cli::demo::demo(browser),
        Command::WriteEngineCache { home } => cli::write_engine_cache(home),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(cli::Failure::Usage(m)) => {
            eprintln!("mcp-oauth: {}", printable(&m));
            ExitCode::from(2)
        }
        Err(cli::Failure::Interrupted) => {
            eprintln!(
                "mcp-oauth: stopped (Ctrl-C): the sign-in was stopped (the callback listener closed, the device code abandoned) and nothing half-done was saved."
            );
            ExitCode::from(cli::login::EXIT_INTERRUPTED)
        }
        Err(cli::Failure::Run(e)) => {
            eprintln!("mcp-oauth: {}", printable(&e.to_string()));
            if let Some(h) = cli::hint(&e) {
                eprintln!("hint: {h}");
            }
            ExitCode::from(cli::exit_for(&e))
        }
    }
}
