//! Step-up authorization (MCP "Scope Challenge Handling", RFC 6750 §3.1): a
//! 403 `insufficient_scope` asks for the union of the scopes held and the
//! scopes challenged (never fewer than before), at most `max_step_ups` times
//! per session (config, default 3) so a server that is never satisfied cannot
//! loop the user through the browser. `retry()` resets the count.

use alloc::vec::Vec;

use alloc::string::String;

use crate::error::Error;
use crate::primitives::scope;

/// The scopes to ask for at the next step-up, or the error once the cap is
/// reached (`attempts` step-ups already made this session).
pub fn next_scopes(held: &[String], challenged: Option<&str>, attempts: u8, cap: u8) -> Result<Vec<String>, Error> {
    let challenged = scope::split(challenged.unwrap_or(""));
    if attempts >= cap {
        return Err(Error::StepUpLimit {
            attempts,
            scope: scope::join(&challenged),
        });
    }
    Ok(scope::union(held, &challenged))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| String::from(*x)).collect()
    }

    #[test]
    fn union_keeps_what_is_held() {
        assert_eq!(
            next_scopes(&s(&["a", "b"]), Some("b c"), 0, 3).unwrap(),
            s(&["a", "b", "c"])
        );
    }

    #[test]
    fn nothing_held_asks_for_the_challenge() {
        assert_eq!(next_scopes(&[], Some("x"), 2, 3).unwrap(), s(&["x"]));
    }

    #[test]
    fn the_cap_stops_the_loop() {
        assert_eq!(
            next_scopes(&s(&["a"]), Some("z"), 3, 3),
            Err(Error::StepUpLimit {
                attempts: 3,
                scope: String::from("z")
            })
        );
        assert!(next_scopes(&[], None, 0, 0).is_err());
        let _ = vec![0u8];
    }
}
