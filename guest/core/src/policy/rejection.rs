//! What a request for a token, a 401 or a 403 leads to: a pure decision over
//! what the session knows, in the order a reader checks it.
//!
//! | trigger | rule | decision |
//! |---|---|---|
//! | any 401/403 | the rejected token was already replaced by a fresh one (another caller renewed it), or none was sent | use the current token |
//! | 401 | the rejected token was issued by the AS in this operation (or was refused so before) | fail with `TokenRefused`: no refresh, no new grant |
//! | ask | stored token fresh | use it |
//! | ask | expired, refresh token and metadata at hand | refresh |
//! | 401 | a token was rejected and no refresh was spent since the last success | refresh (once per rejection) |
//! | 401 | a token was rejected, or the challenge names other metadata | re-discover, then authorize |
//! | 401 | challenge `scope` | held scopes ∪ challenge (or the challenge first, when nothing is held) |
//! | 403 `insufficient_scope` | step-ups left | authorize for held ∪ challenged (`step_up`) |
//! | 403 `insufficient_scope` | cap reached | fail with `StepUpLimit` |
//! | 403 other | | fail with `Forbidden` |
//!
//! Whether a new grant may involve the user is `decline_latch`'s call.

use alloc::string::String;
use alloc::vec::Vec;

use crate::effect::{ConsentReason, Mode};
use crate::error::Error;
use crate::policy::decline_latch::{Latch, may_involve_user};
use crate::policy::step_up;
use crate::primitives::scope;
use crate::primitives::www_authenticate::BearerChallenge;
use crate::wire::token::TokenSet;

/// Why a flow started.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// A caller wants a token.
    Ask,
    /// The server answered 401.
    Unauthorized {
        /// Its Bearer challenge.
        challenge: BearerChallenge,
        /// The token the request carried.
        rejected: Option<String>,
    },
    /// The server answered 403 `insufficient_scope`.
    InsufficientScope {
        /// Its Bearer challenge.
        challenge: BearerChallenge,
        /// The token the request carried.
        rejected: Option<String>,
    },
}

impl Trigger {
    /// The access token the server refused, if any.
    pub fn rejected(&self) -> Option<&str> {
        match self {
            Trigger::Ask => None,
            Trigger::Unauthorized { rejected, .. } | Trigger::InsufficientScope { rejected, .. } => rejected.as_deref(),
        }
    }
}

/// Whether `trigger` rejects a token the server already refused after its
/// issue (`refused`) or one the AS issued in this operation (`issued`: since
/// the host's last `authorize`; an operation is an authorize and the
/// `on_response` calls that follow it).
pub fn refuses_fresh(issued: Option<&str>, refused: Option<&str>, trigger: &Trigger) -> bool {
    trigger
        .rejected()
        .is_some_and(|r| issued == Some(r) || refused == Some(r))
}

/// What the session knows when it decides.
pub struct Facts<'a> {
    /// Now, unix ms.
    pub now: u64,
    /// Tokens this close to expiry count as expired.
    pub skew_ms: u64,
    /// The rejected token was issued by the AS in this operation, or the
    /// server refused it so before ([`refuses_fresh`]).
    pub rejected_just_issued: bool,
    /// The resource the grant is for (for the error), when bound.
    pub resource: Option<&'a str>,
    /// The stored grant.
    pub tokens: Option<&'a TokenSet>,
    /// The AS metadata is at hand (a refresh needs its token endpoint).
    pub metadata_known: bool,
    /// The configured grant needs no user (client credentials, assertion).
    pub machine_grant: bool,
    /// A refresh was already spent on a 401 since the last success.
    pub refreshed_since_success: bool,
    /// `Some(where the PRM was found)` when a binding is stored.
    pub bound_prm_url: Option<Option<&'a str>>,
    /// Step-ups made this session, and the cap.
    pub step_ups: u8,
    /// The cap on step-ups per session.
    pub max_step_ups: u8,
    /// The decline latch.
    pub latch: &'a Latch,
    /// Interactive or silent.
    pub mode: Mode,
}

/// A new grant to obtain, and what to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGrant {
    /// What the consent prompt says.
    pub reason: ConsentReason,
    /// Forget the stored binding and discover again.
    pub rediscover: bool,
    /// Exactly these scopes (a union), or `None` for the usual selection.
    pub scopes: Option<Vec<String>>,
    /// The challenge's scope, first in line for the usual selection.
    pub challenge_scope: Option<String>,
    /// This is a step-up (counts against the cap).
    pub step_up: bool,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Hand out the token in memory.
    UseCurrent,
    /// Refresh the stored grant under the record lock.
    Refresh,
    /// Obtain a new grant.
    Authorize(NewGrant),
    /// Stop with this error.
    Fail(Error),
}

/// The decision, and whether the token in memory must count as expired from
/// now on (the server refused it, whatever its `expires_at` says).
pub fn decide(trigger: &Trigger, k: &Facts<'_>) -> (Decision, bool) {
    // The hot path first (every request asks): nothing below is needed when
    // the token in memory will do.
    if let Some(t) = k.tokens
        && t.is_fresh(k.now, k.skew_ms)
        && trigger.rejected().is_none_or(|r| r != t.access_token)
    {
        return (Decision::UseCurrent, false);
    }
    let can_refresh = k.tokens.is_some_and(|t| t.refresh_token.is_some()) && k.metadata_known && !k.machine_grant;
    let held = k.tokens.map(TokenSet::scopes).unwrap_or_default();
    let rejected = trigger.rejected().is_some();
    let mut grant = NewGrant {
        reason: if k.tokens.is_some() {
            ConsentReason::Reauthorize
        } else {
            ConsentReason::FirstLogin
        },
        rediscover: false,
        scopes: None,
        challenge_scope: None,
        step_up: false,
    };
    let mut expire = false;
    match trigger {
        Trigger::Ask if can_refresh => return (Decision::Refresh, false),
        Trigger::Ask => {}
        Trigger::Unauthorized { .. } if k.rejected_just_issued => {
            // The AS issued it moments ago and the server refuses it: a
            // refresh or a new sign-in would only be refused again.
            let resource = String::from(k.resource.unwrap_or_default());
            return (Decision::Fail(Error::TokenRefused { resource }), false);
        }
        Trigger::Unauthorized { challenge, .. } => {
            expire = rejected && k.tokens.is_some();
            if rejected && can_refresh && !k.refreshed_since_success {
                return (Decision::Refresh, expire);
            }
            let moved = matches!((k.bound_prm_url, &challenge.resource_metadata),
                (Some(bound), Some(named)) if bound != Some(named.as_str()));
            if let Some(s) = challenge.scope.as_deref().filter(|s| !s.trim().is_empty()) {
                if held.is_empty() {
                    grant.challenge_scope = Some(String::from(s));
                } else {
                    grant.scopes = Some(scope::union(&held, &scope::split(s)));
                }
            }
            grant.reason = if rejected {
                ConsentReason::Reauthorize
            } else {
                ConsentReason::FirstLogin
            };
            grant.rediscover = rejected || moved;
        }
        Trigger::InsufficientScope { challenge, .. } => {
            let scopes = step_up::next_scopes(&held, challenge.scope.as_deref(), k.step_ups, k.max_step_ups)
                .and_then(|s| may_involve_user(k.latch, k.mode, k.machine_grant).map(|()| s));
            match scopes {
                Ok(s) => grant.scopes = Some(s),
                Err(e) => return (Decision::Fail(e), false),
            }
            grant.reason = ConsentReason::StepUp;
            grant.step_up = true;
        }
    }
    (Decision::Authorize(grant), expire)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn tokens(access: &str, expires_at: u64, refresh: bool, scope: &str) -> TokenSet {
        TokenSet {
            access_token: String::from(access),
            expires_at: Some(expires_at),
            refresh_token: refresh.then(|| String::from("rt")),
            scope: Some(String::from(scope)),
            client_id: String::from("c"),
            dpop_key: None,
            lifetime_ms: None,
        }
    }

    fn facts<'a>(t: Option<&'a TokenSet>, latch: &'a Latch) -> Facts<'a> {
        Facts {
            now: 1_000_000,
            skew_ms: 1_000,
            rejected_just_issued: false,
            resource: Some("https://m/mcp"),
            tokens: t,
            metadata_known: true,
            machine_grant: false,
            refreshed_since_success: false,
            bound_prm_url: Some(Some("https://m/prm")),
            step_ups: 0,
            max_step_ups: 3,
            latch,
            mode: Mode::Interactive,
        }
    }

    fn unauthorized(rejected: Option<&str>, prm: Option<&str>, scope: Option<&str>) -> Trigger {
        Trigger::Unauthorized {
            challenge: BearerChallenge {
                resource_metadata: prm.map(String::from),
                scope: scope.map(String::from),
                ..BearerChallenge::default()
            },
            rejected: rejected.map(String::from),
        }
    }

    fn insufficient(rejected: &str, scope: &str) -> Trigger {
        Trigger::InsufficientScope {
            challenge: BearerChallenge {
                scope: Some(String::from(scope)),
                error: Some(String::from("insufficient_scope")),
                ..BearerChallenge::default()
            },
            rejected: Some(String::from(rejected)),
        }
    }

    fn grant(d: (Decision, bool)) -> NewGrant {
        match d.0 {
            Decision::Authorize(g) => g,
            other => panic!("expected a new grant, got {other:?}"),
        }
    }

    #[test]
    fn a_401_to_a_token_issued_moments_ago_fails_without_a_refresh() {
        let l = Latch::default();
        let t = tokens("a", 2_000_000, true, "x");
        let k = Facts {
            rejected_just_issued: true,
            ..facts(Some(&t), &l)
        };
        assert_eq!(
            decide(&unauthorized(Some("a"), None, None), &k),
            (
                Decision::Fail(Error::TokenRefused {
                    resource: String::from("https://m/mcp")
                }),
                false
            )
        );
        // The same token from storage (not issued here): one refresh.
        assert_eq!(
            decide(&unauthorized(Some("a"), None, None), &facts(Some(&t), &l)).0,
            Decision::Refresh
        );
        // A 403 insufficient_scope is a step-up still, within the cap.
        assert!(matches!(decide(&insufficient("a", "y"), &k).0, Decision::Authorize(_)));
    }

    #[test]
    fn ask_uses_a_fresh_token() {
        let l = Latch::default();
        let t = tokens("a", 2_000_000, true, "x");
        assert_eq!(
            decide(&Trigger::Ask, &facts(Some(&t), &l)),
            (Decision::UseCurrent, false)
        );
    }

    #[test]
    fn ask_refreshes_an_expired_token_inside_the_skew() {
        let l = Latch::default();
        let t = tokens("a", 1_000_500, true, "x");
        assert_eq!(decide(&Trigger::Ask, &facts(Some(&t), &l)).0, Decision::Refresh);
    }

    #[test]
    fn ask_without_refresh_or_metadata_authorizes_again() {
        let l = Latch::default();
        let t = tokens("a", 0, false, "x");
        assert_eq!(
            grant(decide(&Trigger::Ask, &facts(Some(&t), &l))).reason,
            ConsentReason::Reauthorize
        );
        let t = tokens("a", 0, true, "x");
        let mut k = facts(Some(&t), &l);
        k.metadata_known = false;
        assert!(matches!(decide(&Trigger::Ask, &k).0, Decision::Authorize(_)));
        assert_eq!(
            grant(decide(&Trigger::Ask, &facts(None, &l))).reason,
            ConsentReason::FirstLogin
        );
    }

    #[test]
    fn a_401_for_a_token_already_replaced_uses_the_new_one() {
        let l = Latch::default();
        let t = tokens("new", 2_000_000, true, "x");
        assert_eq!(
            decide(&unauthorized(Some("old"), None, None), &facts(Some(&t), &l)).0,
            Decision::UseCurrent
        );
        assert_eq!(
            decide(&unauthorized(None, None, None), &facts(Some(&t), &l)).0,
            Decision::UseCurrent
        );
        assert_eq!(
            decide(&insufficient("old", "y"), &facts(Some(&t), &l)).0,
            Decision::UseCurrent
        );
    }

    #[test]
    fn a_401_refreshes_once_per_rejection() {
        let l = Latch::default();
        let t = tokens("a", 2_000_000, true, "x");
        let trigger = unauthorized(Some("a"), None, None);
        assert_eq!(decide(&trigger, &facts(Some(&t), &l)), (Decision::Refresh, true));
        let mut k = facts(Some(&t), &l);
        k.refreshed_since_success = true;
        let g = grant(decide(&trigger, &k));
        assert!(g.rediscover, "a rejected token means the binding may be stale");
        assert_eq!(g.reason, ConsentReason::Reauthorize);
    }

    #[test]
    fn machine_grants_are_never_refreshed() {
        let l = Latch::default();
        let t = tokens("a", 0, true, "x");
        let mut k = facts(Some(&t), &l);
        k.machine_grant = true;
        assert!(matches!(decide(&Trigger::Ask, &k).0, Decision::Authorize(_)));
    }

    #[test]
    fn a_challenge_naming_other_metadata_rediscovers() {
        let l = Latch::default();
        let g = grant(decide(
            &unauthorized(None, Some("https://m/other"), None),
            &facts(None, &l),
        ));
        assert!(g.rediscover);
        let g = grant(decide(
            &unauthorized(None, Some("https://m/prm"), None),
            &facts(None, &l),
        ));
        assert!(!g.rediscover);
        assert_eq!(g.reason, ConsentReason::FirstLogin);
    }

    #[test]
    fn a_401_scope_is_unioned_with_what_is_held() {
        let l = Latch::default();
        let t = tokens("a", 0, false, "x y");
        let g = grant(decide(
            &unauthorized(Some("a"), None, Some("y z")),
            &facts(Some(&t), &l),
        ));
        assert_eq!(
            g.scopes,
            Some(vec![String::from("x"), String::from("y"), String::from("z")])
        );
        let g = grant(decide(&unauthorized(None, None, Some("y z")), &facts(None, &l)));
        assert_eq!((g.scopes, g.challenge_scope.as_deref()), (None, Some("y z")));
    }

    #[test]
    fn step_up_asks_for_the_union_until_the_cap() {
        let l = Latch::default();
        let t = tokens("a", 2_000_000, true, "x");
        let g = grant(decide(&insufficient("a", "w"), &facts(Some(&t), &l)));
        assert!(g.step_up);
        assert_eq!(g.scopes, Some(vec![String::from("x"), String::from("w")]));
        let mut k = facts(Some(&t), &l);
        k.step_ups = 3;
        assert!(matches!(
            decide(&insufficient("a", "w"), &k).0,
            Decision::Fail(Error::StepUpLimit { .. })
        ));
    }

    #[test]
    fn step_up_respects_the_latch_and_silent_mode() {
        let mut l = Latch::default();
        let t = tokens("a", 2_000_000, true, "x");
        let mut k = facts(Some(&t), &l);
        k.mode = Mode::Silent;
        assert_eq!(
            decide(&insufficient("a", "w"), &k).0,
            Decision::Fail(Error::AuthorizationRequired)
        );
        l.decline();
        assert_eq!(
            decide(&insufficient("a", "w"), &facts(Some(&t), &l)).0,
            Decision::Fail(Error::Declined)
        );
    }
}
