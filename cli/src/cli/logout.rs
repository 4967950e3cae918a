//! `mcp-oauth logout <url>`: revokes the tokens at the authorization server
//! (RFC 7009: refresh token first, then the access token; unless `--local`
//! or the AS offers no revocation), then removes them, the DPoP key of that
//! server and the login profile. A revocation that fails is reported on
//! stderr and the tokens are removed here anyway: exit 0, since nothing
//! stays usable from this machine.

use std::path::Path;

use mcp_oauth_host::storage::default_home;
use mcp_oauth_host::terminal::printable;

use super::profile::{load_profile, profile_key, records_config};
use super::{Failure, http_options, open_session, quiet_io, runtime};

pub(crate) fn logout(url: &str, revoke: bool, ca_file: Option<&Path>) -> Result<(), Failure> {
    let home = default_home();
    let rt = runtime(home, http_options(ca_file)?)?;
    let store = rt.store();
    let session = open_session(&rt, url, records_config(&load_profile(&*store, url)), quiet_io())?;
    let st = session.status()?;
    let report = session.logout(revoke)?;
    // The DPoP key pair of this (issuer, resource): useless without the tokens.
    if let (Some(issuer), Some(resource)) = (&st.issuer, &st.resource) {
        let _ = store.delete_key_file(&mcp_oauth_core::wire::dpop::key_id(issuer, resource));
    }
    let _ = store.delete(&profile_key(url));
    let issuer = printable(st.issuer.as_deref().unwrap_or("the authorization server")).into_owned();
    if !report.revoked.is_empty() {
        let what = report.revoked.iter().map(|t| t.replace('_', " ")).collect::<Vec<_>>();
        eprintln!("Revoked the {} at {issuer}.", what.join(" and the "));
    }
    if let Some(why) = &report.failed {
        eprintln!(
            "mcp-oauth: warning: could not revoke at {issuer}: {}. They may stay valid there until they expire.",
            printable(why)
        );
    }
    if let Some(why) = report.skipped.as_ref().filter(|_| revoke && st.has_token) {
        eprintln!("Not revoked: {}.", printable(why));
    }
    eprintln!(
        "Logged out of {}: its tokens were removed from this machine.",
        printable(url)
    );
    Ok(())
}
