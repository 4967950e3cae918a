//! The decline latch (the bug of cagent PR 2949: Cancel re-opening the dialog
//! forever). Once the user declines, every flow that would prompt fails fast
//! with `Declined` until `retry()` opens a new epoch.

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
}
