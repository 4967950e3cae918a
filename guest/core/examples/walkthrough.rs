//! A narrated run of the engine against the in-memory simulated servers:
//! cold start with dynamic registration, a restart with the stored token, an
//! expired token refreshed, a step-up, and a declined consent. Every effect
//! the engine asks for is printed as it happens.
//!
//!     cargo run -p mcp-oauth-core --example walkthrough

#[path = "../tests/sim/mod.rs"]
mod sim;

use mcp_oauth_core::*;
use sim::*;

fn describe(e: &Effect) -> String {
    match e {
        Effect::Http(r) => format!("HTTP {:?} {}", r.method, r.url),
        Effect::Load { key } => format!("storage get {key}"),
        Effect::Save { key, .. } => format!("storage set {key}"),
        Effect::Delete { key } => format!("storage delete {key}"),
        Effect::Lock { key } => format!("storage lock {key}"),
        Effect::Unlock { key } => format!("storage unlock {key}"),
        Effect::Sign { input } => format!("sign a {}-byte client assertion", input.len()),
        Effect::DpopProof { key_id, .. } => format!("make a DPoP proof with key {key_id}"),
        Effect::Listen { port } => format!(
            "bind loopback listener (port {})",
            port.map_or("any".into(), |p| p.to_string())
        ),
        Effect::Consent(c) => format!(
            "ask the user: authorize {} at {} for {:?}?",
            c.server_url, c.issuer, c.scopes
        ),
        Effect::OpenBrowser { url } => format!("open browser: {}…", &url[..url.len().min(70)]),
        Effect::AwaitCallback { timeout_ms } => format!("wait for the redirect (up to {} s)", timeout_ms / 1000),
        Effect::Notify(ev) => format!("notice: {ev:?}"),
        Effect::Pause { ms } => format!("wait {} s before polling for the device grant", ms / 1000),
        Effect::Respond(page) => format!("answer the browser tab (HTTP {})", page.status),
    }
}

fn run(sim: &mut Sim, s: &mut Session, first: Step) -> Result<Outcome, Error> {
    let mut step = first;
    loop {
        step = match step {
            Step::Effect(e) => {
                println!("    engine → {}", describe(&e));
                let input = sim.perform(e);
                s.handle(sim.now, input)
            }
            Step::Wait(_) | Step::Busy(_) => unreachable!("one caller"),
            Step::Done(r) => return r,
        }
    }
}

/// An agent's tool call: token (silently), request, hand 401/403 to the engine.
fn call_tool(sim: &mut Sim, s: &mut Session) -> Result<(), Error> {
    let e = sim.entropy();
    let first = s.authorize(sim.now, Mode::Silent, e);
    let mut token = match run(sim, s, first) {
        Ok(Outcome::Token(t)) => Some(t),
        Err(Error::AuthorizationRequired) => None,
        Err(e) => return Err(e),
        Ok(_) => None,
    };
    loop {
        let resp = sim.mcp_call(token.as_ref().map(|t| t.secret()));
        println!("    agent  → POST {MCP} → HTTP {}", resp.status);
        if resp.status == 200 {
            return Ok(());
        }
        let e = sim.entropy();
        let first = s.on_response(sim.now, &resp, Mode::Interactive, e);
        match run(sim, s, first)? {
            Outcome::Token(t) => token = Some(t),
            _ => return Ok(()),
        }
    }
}

fn chapter(sim: &mut Sim, title: &str, f: impl FnOnce(&mut Sim) -> Result<(), Error>) {
    println!("\n== {title}");
    let before = sim.http_count();
    let result = f(sim);
    println!("   result: {result:?}; HTTP requests: {}", sim.http_count() - before);
}

fn main() {
    let mut sim = Sim::new();
    sim.mcp.challenge_scope = Some("files:read".into());
    chapter(
        &mut sim,
        "Cold start: discovery, dynamic registration, browser, token",
        |sim| call_tool(sim, &mut session()),
    );
    chapter(&mut sim, "Restart: the stored token is used at once", |sim| {
        call_tool(sim, &mut session())
    });
    sim.now += 3_600_000;
    chapter(&mut sim, "An hour later: the token expired, one refresh", |sim| {
        call_tool(sim, &mut session())
    });
    sim.mcp.required_scope = vec!["files:write".into()];
    chapter(&mut sim, "The server wants more scope: step-up", |sim| {
        call_tool(sim, &mut session())
    });
    let mut declining = Sim::new();
    declining.consent_answer = false;
    let mut s = session();
    chapter(&mut declining, "Another user says no: the latch holds", |sim| {
        let first = call_tool(sim, &mut s);
        println!("    first call: {first:?}");
        call_tool(sim, &mut s)
    });
}
