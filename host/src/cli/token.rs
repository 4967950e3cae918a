//! `mcp-oauth token <url>`: prints a valid access token (refreshing, or
//! running the stored machine grant again, if needed) and nothing else;
//! never interactive.

use mcp_oauth_host::storage::{FileStore, default_home};
use mcp_oauth_host::{Error, Mode, SessionIo};

use super::profile::{config_from, load_profile};
use super::{Failure, http_options, open_session, quiet_io, runtime};

pub(crate) fn token(url: &str) -> Result<(), Failure> {
    let home = default_home();
    let store = FileStore::open(&home).map_err(|e| Error::Setup(e.to_string()))?;
    let (config, signer) = config_from(&load_profile(&store, url))?;
    let io = SessionIo { signer, ..quiet_io() };
    let session = open_session(&runtime(home, http_options(None)?)?, url, config, io)?;
    let t = session.authorize(Mode::Silent)?;
    println!("{}", t.token);
    Ok(())
}
