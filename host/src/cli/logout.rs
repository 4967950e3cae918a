//! `mcp-oauth logout <url>`: removes the stored tokens and the login profile.

use mcp_oauth_host::Error;
use mcp_oauth_host::storage::{FileStore, default_home};

use super::profile::{load_profile, profile_key, records_config};
use super::{Failure, http_options, open_session, quiet_io, runtime};

pub(crate) fn logout(url: &str) -> Result<(), Failure> {
    let home = default_home();
    let store = FileStore::open(&home).map_err(|e| Error::Setup(e.to_string()))?;
    let session = open_session(
        &runtime(home, http_options(None)?)?,
        url,
        records_config(&load_profile(&store, url)),
        quiet_io(),
    )?;
    session.logout()?;
    let _ = store.delete(&profile_key(url));
    eprintln!(
        "Logged out of {}: its tokens were removed.",
        mcp_oauth_host::terminal::printable(url)
    );
    Ok(())
}
