//! The decline latch and the silent-mode gate: the one place that decides
//! whether a flow may involve the user. Once the user declines (Cancel,
//! `access_denied`, a cancelled listener), every flow that would prompt fails
//! fast with `Declined` until `retry()` opens a new epoch (the bug of cagent
//! PR 2949: Cancel re-opening the dialog forever). Silent mode never prompts.
//! Machine grants involve no user and pass both.

use crate::effect::Mode;
use crate::error::Error;

/// May this flow prompt, open the browser and wait for the user? The
/// latch is checked before the mode, so a declined session says `Declined`
/// in either mode.
pub fn may_involve_user(latch: &Latch, mode: Mode, machine_grant: bool) -> Result<(), Error> {
    if machine_grant {
        return Ok(());
    }
    if latch.is_declined() {
        return Err(Error::Declined);
    }
    if mode == Mode::Silent {
        return Err(Error::AuthorizationRequired);
    }
    Ok(())
}

/// Per-session decline latch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latch {
    declined: bool,
    epoch: u32,
}

impl Latch {
    /// The user said no: latch.
    pub fn decline(&mut self) {
        self.declined = true;
    }

    /// True while latched.
    pub fn is_declined(&self) -> bool {
        self.declined
    }

    /// Unlatch and start a new epoch.
    pub fn retry(&mut self) {
        self.declined = false;
        self.epoch = self.epoch.wrapping_add(1);
    }

    /// How many times `retry` has been called (tests count prompts per epoch).
    pub fn epoch(&self) -> u32 {
        self.epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decline_holds_until_retry() {
        let mut l = Latch::default();
        assert!(!l.is_declined());
        l.decline();
        l.decline();
        assert!(l.is_declined());
        l.retry();
        assert!(!l.is_declined());
        assert_eq!(l.epoch(), 1);
    }

    #[test]
    fn gate_rows() {
        let open = Latch::default();
        let mut shut = Latch::default();
        shut.decline();
        // (latch, mode, machine grant) -> verdict
        assert_eq!(may_involve_user(&open, Mode::Interactive, false), Ok(()));
        assert_eq!(
            may_involve_user(&open, Mode::Silent, false),
            Err(Error::AuthorizationRequired)
        );
        assert_eq!(may_involve_user(&shut, Mode::Interactive, false), Err(Error::Declined));
        assert_eq!(may_involve_user(&shut, Mode::Silent, false), Err(Error::Declined));
        assert_eq!(may_involve_user(&shut, Mode::Silent, true), Ok(()));
        assert_eq!(may_involve_user(&open, Mode::Silent, true), Ok(()));
    }
}
