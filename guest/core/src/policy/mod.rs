//! Layer 4, policy: the decisions of a session as pure functions of what it
//! knows, each in the file named after its rule, each unit-tested by row.

pub mod decline_latch;
pub mod rejection;
pub mod step_up;
