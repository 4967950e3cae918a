//! World `sans-io`: the `machine` export. No imports: the host performs each
//! effect and feeds the result back.

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use core_engine::{Entropy, Session, Step};
use mcp_oauth_core as core_engine;

use crate::convert;

wit_bindgen::generate!({
    world: "sans-io",
    path: "../../wit",
});

use exports::mcp::oauth::machine;
use mcp::oauth::engine_types::{AuthError, Config, Mode, ServerResponse};

struct Component;

export!(Component);

impl machine::Guest for Component {
    type SessionMachine = MachineSession;
}

/// The sans-IO face: the host performs each effect itself.
pub struct MachineSession {
    engine: RefCell<Session>,
}

fn step_out(step: Step) -> machine::Step {
    match step {
        Step::Effect(e) => machine::Step::Effect(convert::effect(e)),
        Step::Wait(id) => machine::Step::Wait(id.0),
        Step::Busy(id) => machine::Step::Busy(id.0),
        Step::Done(r) => machine::Step::Done(convert::outcome_result(r)),
    }
}

fn machine_entropy(bytes: &[u8]) -> Result<Entropy, machine::Step> {
    Entropy::from_slice(bytes).map_err(|e| machine::Step::Done(Err(convert::auth_error(&e))))
}

impl machine::GuestSessionMachine for MachineSession {
    fn open(server_url: String, config: Config) -> Result<machine::SessionMachine, AuthError> {
        let engine = Session::new(&server_url, convert::config(config)).map_err(|e| convert::auth_error(&e))?;
        Ok(machine::SessionMachine::new(MachineSession {
            engine: RefCell::new(engine),
        }))
    }

    fn authorize(&self, now_ms: u64, mode: Mode, entropy: Vec<u8>) -> machine::Step {
        match machine_entropy(&entropy) {
            Ok(e) => step_out(self.engine.borrow_mut().authorize(now_ms, convert::mode(mode), e)),
            Err(step) => step,
        }
    }

    fn on_response(&self, now_ms: u64, response: ServerResponse, mode: Mode, entropy: Vec<u8>) -> machine::Step {
        match machine_entropy(&entropy) {
            Ok(e) => {
                let resp = convert::server_response(response);
                step_out(
                    self.engine
                        .borrow_mut()
                        .on_response(now_ms, &resp, convert::mode(mode), e),
                )
            }
            Err(step) => step,
        }
    }

    fn handle(&self, now_ms: u64, input: machine::Input) -> machine::Step {
        step_out(self.engine.borrow_mut().handle(now_ms, convert::input(input)))
    }

    fn outcome(&self, id: u64) -> Option<Result<machine::Outcome, AuthError>> {
        self.engine
            .borrow()
            .outcome(core_engine::FlowId(id))
            .map(convert::outcome_result)
    }

    fn dpop_proof(&self, now_ms: u64, method: String, url: String, entropy: Vec<u8>) -> machine::Step {
        match machine_entropy(&entropy) {
            Ok(e) => step_out(self.engine.borrow_mut().dpop_proof(now_ms, &method, &url, e)),
            Err(step) => step,
        }
    }

    fn retry(&self) {
        self.engine.borrow_mut().retry();
    }

    fn logout(&self, now_ms: u64, revoke: bool) -> machine::Step {
        step_out(self.engine.borrow_mut().logout(now_ms, revoke))
    }

    fn inspect(&self, now_ms: u64) -> machine::Step {
        step_out(self.engine.borrow_mut().inspect(now_ms))
    }
}
