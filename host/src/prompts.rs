//! The `prompts` import: consent on a terminal, notices and progress on
//! stderr (quiet when stderr is not a terminal), and an optional narration of
//! every step for `mcp-oauth demo`.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::bindings::mcp::oauth::types::{ConsentReason, ConsentRequest, DeviceCode, Event};

/// One step the host performed for the engine (for narration; no secrets).
#[derive(Debug, Clone)]
pub enum Trace {
    /// An HTTP request went out.
    Http {
        /// GET or POST.
        method: &'static str,
        /// The URL.
        url: String,
        /// The status that came back (0: no response).
        status: u16,
    },
    /// A record was written.
    Saved {
        /// Its kind (`tokens`, `registration`, ...).
        kind: String,
    },
    /// The loopback listener is up.
    Listening {
        /// Its redirect URI.
        redirect_uri: String,
    },
    /// The browser was asked to open the authorization URL.
    BrowserOpened {
        /// The URL.
        url: String,
    },
    /// A request reached the callback.
    CallbackArrived,
}

/// How the host talks to the user.
pub trait Prompter: Send + Sync {
    /// Ask whether to authorize; `Err` when no one can be asked.
    fn consent(&self, ask: &ConsentRequest) -> Result<bool, String>;
    /// Show a notice.
    fn notify(&self, event: &Event);
    /// The browser was asked to open the authorization URL (it may not
    /// have: say where to go by hand).
    fn browser_opened(&self, _url: &str) {}
    /// The flow is (or is no longer) waiting for the browser.
    fn waiting(&self, _waiting: bool) {}
    /// The flow is (or is no longer) waiting between device-grant polls.
    fn polling(&self, waiting: bool) {
        self.waiting(waiting)
    }
    /// A step happened (narration).
    fn trace(&self, _step: &Trace) {}
}

/// Whether consent is asked or given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentPolicy {
    /// Ask on the terminal; no terminal means no.
    Ask,
    /// The user already asked for this (e.g. ran `login`): go on.
    Allow,
    /// Never authorize (scripts that must not start a flow).
    Deny,
}

/// Prompts on stdin/stderr.
pub struct TerminalPrompter {
    policy: ConsentPolicy,
    narrate: bool,
    quiet: bool,
    /// The browser is elsewhere: ask for the address it lands on, and no
    /// spinner (its redraws would garble the line being pasted).
    paste_only: bool,
    /// The running spinner: its stop flag and thread.
    spinner: Mutex<Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>>,
}

impl TerminalPrompter {
    /// A prompter with this consent policy; `narrate` prints every step.
    pub fn new(policy: ConsentPolicy, narrate: bool) -> Self {
        Self {
            policy,
            narrate,
            quiet: !std::io::stderr().is_terminal(),
            paste_only: false,
            spinner: Mutex::new(None),
        }
    }

    /// Starts (`Some`) or stops (`None`) the one spinner line; the next
    /// message starts on a clean line.
    fn spin(&self, on: bool, what: &'static str) {
        let mut slot = self.spinner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((stop, thread)) = slot.take() {
            // Wait for its last frame, so the next message starts on a clean line.
            stop.store(true, Ordering::SeqCst);
            let _ = thread.join();
        }
        if on {
            let stop = Arc::new(AtomicBool::new(false));
            let flag = stop.clone();
            let thread = std::thread::spawn(move || {
                let frames = ['|', '/', '-', '\\'];
                let mut i = 0;
                while !flag.load(Ordering::SeqCst) {
                    eprint!("\r{} {what} (Ctrl-C to stop) ", frames[i % 4]);
                    let _ = std::io::stderr().flush();
                    i += 1;
                    std::thread::sleep(Duration::from_millis(120));
                }
                eprint!("\r\x1b[2K");
            });
            *slot = Some((stop, thread));
        }
    }

    /// For a browser on another machine: the URL is shown with a plain
    /// request to paste the address the browser lands on, and no spinner.
    pub fn paste_only(mut self) -> Self {
        self.paste_only = true;
        self
    }
}

fn reason_text(r: ConsentReason) -> &'static str {
    match r {
        ConsentReason::FirstLogin => "needs your authorization",
        ConsentReason::Reauthorize => "needs you to authorize again",
        ConsentReason::StepUp => "asks for more permissions",
    }
}

/// One line describing a notice (no secrets: events carry none). Every
/// field a server could have chosen is made printable.
pub fn describe_event(event: &Event) -> String {
    use crate::terminal::printable as p;
    match event {
        Event::CallbackRejected(why) => format!("ignored a request to the callback: {}; still waiting", p(why)),
        Event::BrowserOpenFailed(f) => format!(
            "could not open a browser ({}). Open this URL yourself:\n\n  {}\n",
            p(&f.reason),
            p(&f.url)
        ),
        Event::StorageWarning(w) => format!("could not save the {} record: {}", p(&w.record_kind), p(&w.message)),
        Event::PkceCheckOverridden(i) => {
            format!(
                "warning: {} does not advertise PKCE S256; going on because the configuration allows it",
                p(i)
            )
        }
        Event::LegacyIssuerDiffers(l) => {
            format!("note: legacy server {} names its issuer {}", p(&l.origin), p(&l.issuer))
        }
        Event::DeviceCode(d) => device_code_text(d),
    }
}

/// The device grant's instructions (RFC 8628 §3.3): where to go and the
/// code, each on its own line so a script can read them (`  open  <uri>`,
/// `  code  <code>`); the link with the code in it when there is one.
pub fn device_code_text(d: &DeviceCode) -> String {
    use crate::terminal::printable as p;
    let lifetime = match d.expires_in_s {
        s if s < 120 => format!("{s} s"),
        s => format!("{} min", s / 60),
    };
    let mut out = format!(
        "to sign in, open this address on any device and enter the code:\n\n  open  {}\n  code  {}\n",
        p(&d.verification_uri),
        p(&d.user_code)
    );
    if let Some(full) = &d.verification_uri_complete {
        out.push_str(&format!("\n  or open {} (the code is filled in)\n", p(full)));
    }
    out.push_str(&format!("\nThe code expires in {lifetime}."));
    out
}

impl Prompter for TerminalPrompter {
    fn consent(&self, ask: &ConsentRequest) -> Result<bool, String> {
        match self.policy {
            ConsentPolicy::Allow => return Ok(true),
            ConsentPolicy::Deny => return Ok(false),
            ConsentPolicy::Ask => {}
        }
        if !std::io::stdin().is_terminal() {
            return Err("no terminal to ask for consent".into());
        }
        let scopes = if ask.scopes.is_empty() {
            "the server's default scopes".to_string()
        } else {
            ask.scopes.join(" ")
        };
        let p = crate::terminal::printable;
        eprint!(
            "{} {}.\nSign in at {} for {}? [Y/n] ",
            p(&ask.server_url),
            reason_text(ask.reason),
            p(&ask.issuer),
            p(&scopes)
        );
        let _ = std::io::stderr().flush();
        let line = crate::callback::stdin_lines()
            .lock()
            .map_err(|_| "stdin is unavailable".to_string())?
            .recv()
            .map_err(|_| "stdin closed".to_string())?;
        Ok(!matches!(line.trim().to_ascii_lowercase().as_str(), "n" | "no"))
    }

    fn notify(&self, event: &Event) {
        // A browser failure or a device code must reach the user even when
        // stderr is not a terminal.
        let must = matches!(event, Event::BrowserOpenFailed(_) | Event::DeviceCode(_));
        if !self.quiet || must || self.narrate {
            eprintln!("mcp-oauth: {}", describe_event(event));
        }
        if let Event::DeviceCode(d) = event
            && !self.quiet
            && let Some(qr) =
                crate::terminal::qr_code(d.verification_uri_complete.as_deref().unwrap_or(&d.verification_uri))
        {
            eprintln!("\n{qr}");
        }
    }

    fn polling(&self, waiting: bool) {
        // Nothing is pasted during a device grant: the spinner is welcome.
        self.spin(
            waiting && !self.quiet && !self.narrate,
            "waiting for the code to be entered",
        );
    }

    fn browser_opened(&self, url: &str) {
        // Always shown (a log reader may be the one who has to act); the
        // narration already names the step.
        let url = crate::terminal::printable(url);
        if self.paste_only {
            eprintln!(
                "Open this address in a browser and sign in:\n\n  {url}\n\nThen paste the address your browser lands on here:"
            );
        } else if !self.narrate {
            eprintln!("mcp-oauth: opened the browser to sign in. If it didn't open, visit:\n\n  {url}\n");
        }
    }

    fn waiting(&self, waiting: bool) {
        let on = waiting && !self.quiet && !self.narrate && !self.paste_only;
        self.spin(on, "waiting for the browser to finish signing in");
    }

    fn trace(&self, step: &Trace) {
        if self.narrate {
            eprintln!("  {}", crate::terminal::printable(&narrate(step)));
        }
    }
}

/// Words for one step, naming what a URL is for.
pub fn narrate(step: &Trace) -> String {
    match step {
        Trace::Http { method, url, status } => {
            let what = if url.contains("/.well-known/oauth-protected-resource") || url.ends_with("/prm") {
                "protected resource metadata (RFC 9728)"
            } else if url.contains("/.well-known/oauth-authorization-server")
                || url.contains("/.well-known/openid-configuration")
            {
                "authorization server metadata (RFC 8414)"
            } else if url.ends_with("/register") {
                "dynamic client registration (RFC 7591)"
            } else if url.ends_with("/token") {
                "token endpoint"
            } else {
                "request"
            };
            format!("{what}: {method} {url} -> {status}")
        }
        Trace::Saved { kind } => format!("saved the {kind} record"),
        Trace::Listening { redirect_uri } => format!("loopback listener ready at {redirect_uri}"),
        Trace::BrowserOpened { url } => {
            let short: String = url.chars().take(90).collect();
            format!("browser opened at {short}...")
        }
        Trace::CallbackArrived => "the browser came back to the loopback listener".to_string(),
    }
}
