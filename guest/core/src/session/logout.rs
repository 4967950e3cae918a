//! Logout (RFC 7009): revoke at the AS, refresh token first (its
//! revocation takes the grant's access tokens with it, §2.1), then the
//! access token, each with the client's token endpoint authentication;
//! then forget them here and in the store, whatever the AS said. A
//! revocation that fails is reported in the outcome, never a reason to
//! keep the tokens.

use alloc::string::String;
use alloc::vec::Vec;

use super::Session;
use super::state::{Next, Phase, Revocation, Then};
use crate::effect::{Effect, HttpResponse, LogoutReport, Outcome, TransportError};
use crate::primitives::url_safety::check_url;
use crate::wire::revocation::{self, Revoked};

impl Session {
    /// `logout`: revoke first when asked and possible, then forget.
    pub(super) fn start_logout(&mut self, revoke: bool) -> Next {
        let mut report = LogoutReport::default();
        let skip = |report: &mut LogoutReport, why: &str| report.skipped = Some(String::from(why));
        let Some(t) = self.tokens.as_ref().filter(|_| revoke) else {
            match revoke {
                false => skip(&mut report, "asked to forget the tokens on this machine only"),
                true => skip(&mut report, "no tokens are stored"),
            }
            return self.forget_tokens(report);
        };
        let Some(endpoint) = self.metadata.as_ref().and_then(|m| m.revocation_endpoint.clone()) else {
            skip(
                &mut report,
                "the authorization server advertises no revocation_endpoint",
            );
            return self.forget_tokens(report);
        };
        if let Err(e) = check_url(&endpoint, "revocation_endpoint") {
            report.failed = Some(alloc::format!("{e}"));
            return self.forget_tokens(report);
        }
        let Some(client) = self.client_for(&t.client_id) else {
            report.failed = Some(String::from(
                "the client the tokens were issued to is no longer known here, so they cannot be revoked",
            ));
            return self.forget_tokens(report);
        };
        let mut left = Vec::new();
        if let Some(rt) = &t.refresh_token {
            left.push(("refresh_token", rt.clone()));
        }
        left.push(("access_token", t.access_token.clone()));
        left.reverse(); // popped from the back: refresh token first
        self.revoke_next(Revocation {
            endpoint,
            client,
            left,
            report,
        })
    }

    fn revoke_next(&mut self, mut rev: Revocation) -> Next {
        match rev.left.pop() {
            Some((hint, token)) => {
                let req = revocation::revocation_request(&rev.endpoint, &token, hint, &rev.client);
                rev.left.push((hint, token)); // until its answer is in
                Next::Effect(Phase::Revoking(rev), Effect::Http(req))
            }
            None => self.forget_tokens(rev.report),
        }
    }

    /// One revocation's answer. A transport failure stops the revocations
    /// (the AS is unreachable); an error answer is reported and the next
    /// token is still tried.
    pub(super) fn revoked(&mut self, mut rev: Revocation, r: Result<HttpResponse, TransportError>) -> Next {
        let Some((hint, _)) = rev.left.pop() else {
            return self.forget_tokens(rev.report);
        };
        match r.map(|resp| revocation::revocation_answer(&resp)) {
            Ok(Revoked::Yes) => rev.report.revoked.push(String::from(hint)),
            Ok(Revoked::NotSupported) => {
                rev.report.skipped = Some(alloc::format!(
                    "the authorization server does not revoke an {hint} of this kind; it stays valid until it expires"
                ))
            }
            Ok(Revoked::Refused(why)) => {
                rev.report.failed = Some(alloc::format!(
                    "the authorization server refused to revoke the {hint}: {why}"
                ))
            }
            Err(e) => {
                rev.report.failed = Some(alloc::format!("could not reach {}: {}", rev.endpoint, e.message));
                return self.forget_tokens(rev.report);
            }
        }
        self.revoke_next(rev)
    }

    /// The stored tokens go, here and in the store.
    pub(super) fn forget_tokens(&mut self, report: LogoutReport) -> Next {
        self.tokens = None;
        let effects = match &self.binding {
            Some(b) => alloc::vec![Effect::Delete { key: b.tokens_key() }],
            None => Vec::new(),
        };
        Next::Queue(effects, Then::Finish(Ok(Outcome::LoggedOut(report))))
    }
}
