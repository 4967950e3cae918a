//! The page each browser request that reaches the listener is answered with
//! (`wire/callback_page.rs`): a stray request at once, this sign-in's
//! redirect once the outcome is known (after the token exchange and save),
//! exactly one page per request.

use mcp_oauth_core::*;

use crate::sim::*;

fn page_text(p: &Page) -> &str {
    &p.body
}

/// PRM at the well-known URL: found without a 401, so a test may start
/// with `authorize`.
fn world() -> Sim {
    let mut sim = Sim::new();
    sim.mcp.prm_at = PrmAt::PathAware;
    sim
}

#[test]
fn a_sign_in_answers_its_tab_after_the_tokens_are_saved() {
    let mut sim = world();
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    assert_eq!(sim.pages.len(), 1);
    assert!(page_text(&sim.pages[0]).contains("Signed in") && page_text(&sim.pages[0]).contains(MCP));
    // The page went out after the tokens were saved.
    let save = sim.transcript.iter().position(|t| t.starts_with("Save")).unwrap();
    let page = sim.transcript.iter().position(|t| t.starts_with("Respond")).unwrap();
    assert!(save < page);
}

#[test]
fn a_declined_sign_in_says_so() {
    let mut sim = world();
    sim.asc.deny = true;
    let mut s = session();
    assert_eq!(sim.authorize(&mut s, Mode::Interactive), Err(Error::Declined));
    assert_eq!(sim.pages.len(), 1);
    assert!(page_text(&sim.pages[0]).contains("declined"));
}

#[test]
fn a_failed_exchange_says_why_and_escapes_server_text() {
    let mut sim = world();
    sim.asc.hostile_text = Some("<script>x</script>".into());
    sim.asc.deny = false;
    // The token endpoint refuses every code.
    sim.asc.token_endpoint = Some("https://auth.example.com/nowhere".into());
    let mut s = session();
    let r = sim.authorize(&mut s, Mode::Interactive);
    assert!(r.is_err());
    assert_eq!(sim.pages.len(), 1);
    let text = page_text(&sim.pages[0]);
    assert!(text.contains("Sign-in failed") && text.contains("404"), "{text}");
    assert!(!text.contains("<script>"));
}

#[test]
fn stray_requests_are_answered_at_once_and_the_wait_goes_on() {
    let mut sim = world();
    for _ in 0..3 {
        sim.stray_callbacks.push_back(CallbackEvent::Redirect {
            query: "state=forged&code=x".into(),
        });
    }
    let mut s = session();
    sim.call_tool(&mut s, Mode::Interactive).unwrap();
    // Three "ignored" pages, then this sign-in's.
    assert_eq!(sim.pages.len(), 4);
    assert!(
        sim.pages[..3]
            .iter()
            .all(|p| p.status == 400 && page_text(p).contains("ignored"))
    );
    assert!(page_text(&sim.pages[3]).contains("Signed in"));
}

#[test]
fn a_timed_out_wait_answers_no_one() {
    let mut sim = world();
    sim.browser = Browser::Lost;
    let mut s = session();
    assert_eq!(sim.authorize(&mut s, Mode::Interactive), Err(Error::TimedOut));
    assert!(sim.pages.is_empty());
}
