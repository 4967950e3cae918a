//! `mcp-oauth store seal` / `mcp-oauth store unseal`: converts the store
//! between sealed records (the store key in the keychain or
//! `MCP_OAUTH_STORE_KEY_FILE`) and plain files, under the store lock, and
//! rewrites `store.json` so every host follows (docs/store.md).

use clap::Subcommand;
use mcp_oauth_host::Error;
use mcp_oauth_host::storage::default_home;
use mcp_oauth_host::storage::mode::{seal_store, unseal_store};
use mcp_oauth_host::terminal::printable;

use super::Failure;

/// `mcp-oauth store ...`.
#[derive(Subcommand)]
pub(crate) enum StoreCommand {
    /// Seal every record and key file with a store key kept in the OS
    /// keychain (or MCP_OAUTH_STORE_KEY_FILE)
    Seal,
    /// Open every record and key file back into plain 0600 files and remove
    /// the store key from the keychain
    Unseal,
}

pub(crate) fn run(c: StoreCommand) -> Result<(), Failure> {
    if super::place().url.is_some() {
        return Err(Failure::Usage(
            "`mcp-oauth store seal|unseal` converts a file store; a shared store (--store, MCP_OAUTH_STORE) keeps the mode it was first used in".into(),
        ));
    }
    let home = default_home();
    let done = match c {
        StoreCommand::Seal => seal_store(&home),
        StoreCommand::Unseal => unseal_store(&home),
    }
    .map_err(|e| Failure::Run(Error::Setup(e.to_string())))?;
    eprintln!("mcp-oauth: {}", printable(&done));
    Ok(())
}
