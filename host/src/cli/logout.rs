//! `mcp-oauth logout <url>`: removes the stored tokens, the DPoP key of that
//! server and the login profile.

use mcp_oauth_host::storage::default_home;

use super::profile::{load_profile, profile_key, records_config};
use super::{Failure, http_options, open_session, quiet_io, runtime};

pub(crate) fn logout(url: &str) -> Result<(), Failure> {
    let home = default_home();
    let rt = runtime(home, http_options(None)?)?;
    let store = rt.store();
    let session = open_session(&rt, url, records_config(&load_profile(&*store, url)), quiet_io())?;
    let st = session.status()?;
    session.logout()?;
    // The DPoP key pair of this (issuer, resource): useless without the tokens.
    if let (Some(issuer), Some(resource)) = (&st.issuer, &st.resource) {
        let _ = store.delete_key_file(&mcp_oauth_core::wire::dpop::key_id(issuer, resource));
    }
    let _ = store.delete(&profile_key(url));
    eprintln!(
        "Logged out of {}: its tokens were removed.",
        mcp_oauth_host::terminal::printable(url)
    );
    Ok(())
}
