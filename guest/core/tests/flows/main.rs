//! Whole flows through the engine against the simulated servers, each
//! asserting the exact HTTP requests it made (docs/architecture.md "Round trips").
//! One test crate (`cargo test -p mcp-oauth-core --test flows`), a module per
//! stage of a session, named as the engine's code is split:
//!
//! | module | what it covers |
//! |---|---|
//! | `stored` | warm starts, stored records, logout and status, a move to another issuer |
//! | `refresh` | expiry, refresh under the lock, rotation, `invalid_grant` / `invalid_client` |
//! | `discovery` | protected resource and AS metadata, the legacy path, checks before anything opens |
//! | `interactive` | cold round trips per client identity, registration, scope, browser and redirect |
//! | `machine` | client credentials, identity assertion, workload identity |
//! | `decline_latch` | declines latch until `retry()`; silent mode never prompts |
//! | `concurrent_callers` | callers during a flow join it; many 401s cost one renewal (`Wait` and `Busy` in detail: `tests/single_flight.rs`) |
//! | `rejection` | 401 and 403 from the MCP server, step-up |
//! | `device` | the device authorization grant: interval, `slow_down`, denial, expiry, hostile answers |
//! | `logout` | revocation at logout, and what a failed one leaves |
//! | `pages` | the page each browser tab that reaches the listener is answered with |
//!
//! The simulator and the helpers every module uses (`urls`, the endpoint
//! constants) are in `tests/sim`, shared with the other test crates.

#[path = "../sim/mod.rs"]
mod sim;

mod concurrent_callers;
mod decline_latch;
mod device;
mod discovery;
mod interactive;
mod logout;
mod machine;
mod pages;
mod refresh;
mod rejection;
mod stored;
