//! The `mcp:oauth` imports, implemented for real: HTTP (ureq, no redirects,
//! limits), storage (the file store), the browser opener, prompts, the
//! loopback callback listener, the signer, the clock and randomness. One
//! [`HostState`] per session's wasmtime `Store`.

use std::time::Duration;

use wasmtime::StoreLimits;
use wasmtime::component::{Resource, ResourceTable};

use crate::bindings::mcp::oauth::{browser, callback, clock, http, prompts, random, signer, storage, types};
use crate::callback::{Arrival, BindError, Listener};
use crate::http::{HttpClient, HttpError};
use crate::prompts::Trace;
use crate::runtime::SessionIo;
use crate::storage::{LockGuard, Store};

/// What the engine asks the host for, with the host's resources.
pub struct HostState {
    pub(crate) table: ResourceTable,
    pub(crate) http: HttpClient,
    pub(crate) storage: std::sync::Arc<dyn Store>,
    /// The locks the engine holds in this call (released when dropped).
    pub(crate) held: std::collections::HashMap<String, LockGuard>,
    pub(crate) io: SessionIo,
    pub(crate) limits: StoreLimits,
}

impl types::Host for HostState {}

impl crate::bindings::mcp::oauth::engine_types::Host for HostState {}

impl http::Host for HostState {
    fn send(&mut self, req: http::Request) -> Result<http::Response, http::HttpError> {
        let method = match req.method {
            http::Method::Get => "GET",
            http::Method::Post => "POST",
        };
        let request = crate::http::Request {
            method,
            url: req.url.clone(),
            headers: req.headers.into_iter().map(|h| (h.name, h.value)).collect(),
            body: req.body,
        };
        if !self.held.is_empty()
            && let Some(pause) = hold_lock_for_tests()
        {
            // The fault tests signal the process on this line, so that the
            // signal lands inside the pause.
            eprintln!("mcp-oauth test: holding a lock for {} ms", pause.as_millis());
            std::thread::sleep(pause);
        }
        // A lease lost while this process was stopped or slow: another
        // replica may hold the lock now; send nothing (docs/store.md).
        for guard in self.held.values() {
            if let Err(e) = guard.renew() {
                return Err(http::HttpError::Other(e.to_string()));
            }
        }
        let result = self.http.send(&request);
        self.io.prompter.trace(&Trace::Http {
            method,
            url: req.url,
            status: result.as_ref().map(|r| r.status).unwrap_or(0),
        });
        match result {
            Ok(r) => Ok(http::Response {
                status: r.status,
                headers: r
                    .headers
                    .into_iter()
                    .map(|(name, value)| types::Header { name, value })
                    .collect(),
                body: r.body,
            }),
            Err(HttpError::Refused(m)) => Err(http::HttpError::Refused(m)),
            Err(HttpError::Timeout) => Err(http::HttpError::Timeout),
            Err(HttpError::Connection(m)) => Err(http::HttpError::Connection(m)),
            Err(HttpError::TooLarge) => Err(http::HttpError::TooLarge),
            Err(HttpError::Other(m)) => Err(http::HttpError::Other(m)),
        }
    }
}

fn storage_error(e: crate::storage::StoreError) -> storage::StorageError {
    match e {
        crate::storage::StoreError::BadKey(k) => storage::StorageError::Other(format!("bad key {k:?}")),
        io @ crate::storage::StoreError::Io { .. } => storage::StorageError::Io(io.to_string()),
        busy @ crate::storage::StoreError::LockTimeout { .. } => storage::StorageError::Other(busy.to_string()),
        bad @ crate::storage::StoreError::Unsafe { .. } => storage::StorageError::Io(bad.to_string()),
        e @ (crate::storage::StoreError::Secrets(_)
        | crate::storage::StoreError::Config(_)
        | crate::storage::StoreError::LeaseLost { .. }
        | crate::storage::StoreError::Fenced { .. }) => storage::StorageError::Other(e.to_string()),
        remote @ crate::storage::StoreError::Remote(_) => storage::StorageError::Io(remote.to_string()),
    }
}

/// `MCP_OAUTH_TEST_HOLD_LOCK_MS` (at most 10 s): a pause before a request
/// sent while a lock is held (after the record was read under it), said on
/// stderr when it starts, so that fault tests can stop or kill a process
/// that holds one (host/tests/redis_faults.rs). Unset in normal use.
fn hold_lock_for_tests() -> Option<Duration> {
    static HOLD: std::sync::OnceLock<Option<Duration>> = std::sync::OnceLock::new();
    *HOLD.get_or_init(|| {
        std::env::var("MCP_OAUTH_TEST_HOLD_LOCK_MS")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .map(|ms| Duration::from_millis(ms.min(10_000)))
    })
}

impl storage::Host for HostState {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, storage::StorageError> {
        self.storage.get(&key).map_err(storage_error)
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), storage::StorageError> {
        let r = self.storage.set(&key, &value).map_err(storage_error);
        if r.is_ok() {
            let kind = key.split('-').next().unwrap_or("").to_string();
            self.io.prompter.trace(&Trace::Saved { kind });
        }
        r
    }

    fn delete(&mut self, key: String) -> Result<(), storage::StorageError> {
        self.storage.delete(&key).map_err(storage_error)
    }

    fn lock(&mut self, key: String) -> Result<(), storage::StorageError> {
        if !self.held.contains_key(&key) {
            let guard = self.storage.lock(&key).map_err(storage_error)?;
            self.held.insert(key, guard);
        }
        Ok(())
    }

    fn unlock(&mut self, key: String) {
        self.held.remove(&key);
    }
}

impl browser::Host for HostState {
    fn open(&mut self, url: String) -> Result<(), browser::BrowserError> {
        if let Err(m) = crate::browser::check_openable(&url) {
            return Err(browser::BrowserError::Refused(m));
        }
        self.io.prompter.trace(&Trace::BrowserOpened { url: url.clone() });
        self.io.browser.open(&url).map_err(browser::BrowserError::Failed)?;
        self.io.prompter.browser_opened(&url);
        Ok(())
    }
}

impl prompts::Host for HostState {
    fn consent(&mut self, ask: types::ConsentRequest) -> Result<prompts::ConsentAnswer, prompts::PromptError> {
        match self.io.prompter.consent(&ask) {
            Ok(true) => Ok(prompts::ConsentAnswer::Allow),
            Ok(false) => Ok(prompts::ConsentAnswer::Deny),
            Err(_) => Err(prompts::PromptError::Unavailable),
        }
    }

    fn notify(&mut self, ev: types::Event) {
        self.io.prompter.notify(&ev);
    }

    /// A device-grant pause, in 100 ms steps so Ctrl-C (the callback's
    /// cancel flag) ends it at once; at most 10 minutes whatever is asked.
    fn pause(&mut self, ms: u64) -> Result<(), prompts::PromptError> {
        let cancel = self.io.callback.cancel.clone();
        let cancelled = || {
            cancel
                .as_ref()
                .is_some_and(|c| c.load(std::sync::atomic::Ordering::SeqCst))
        };
        let deadline = std::time::Instant::now() + Duration::from_millis(ms.min(600_000));
        self.io.prompter.polling(true);
        let r = loop {
            if cancelled() {
                break Err(prompts::PromptError::Other("cancelled by the user".into()));
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                break Ok(());
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(100)));
        };
        self.io.prompter.polling(false);
        r
    }
}

impl callback::Host for HostState {}

impl callback::HostListener for HostState {
    fn bind(&mut self, port: Option<u16>) -> Result<Resource<Listener>, callback::ListenerError> {
        let l = Listener::bind(port, self.io.callback.clone()).map_err(|e| match e {
            BindError::PortInUse(p) => callback::ListenerError::PortInUse(p),
            other => callback::ListenerError::Other(other.to_string()),
        })?;
        self.io.prompter.trace(&Trace::Listening {
            redirect_uri: l.redirect_uri(),
        });
        self.table
            .push(l)
            .map_err(|e| callback::ListenerError::Other(e.to_string()))
    }

    fn redirect_uri(&mut self, this: Resource<Listener>) -> String {
        self.table.get(&this).map(|l| l.redirect_uri()).unwrap_or_default()
    }

    fn next(
        &mut self,
        this: Resource<Listener>,
        timeout_ms: u64,
    ) -> Result<types::CallbackEvent, callback::ListenerError> {
        let listener = self
            .table
            .get_mut(&this)
            .map_err(|e| callback::ListenerError::Other(e.to_string()))?;
        self.io.prompter.waiting(true);
        let arrival = listener.next(Duration::from_millis(timeout_ms));
        self.io.prompter.waiting(false);
        Ok(match arrival {
            Arrival::Redirect(q) => {
                self.io.prompter.trace(&Trace::CallbackArrived);
                types::CallbackEvent::Redirect(q)
            }
            Arrival::TimedOut => types::CallbackEvent::TimedOut,
            Arrival::Cancelled => types::CallbackEvent::Cancelled,
        })
    }

    fn respond(&mut self, this: Resource<Listener>, page: types::Page) {
        if let Ok(listener) = self.table.get_mut(&this) {
            let headers: Vec<(String, String)> = page.headers.into_iter().map(|h| (h.name, h.value)).collect();
            listener.respond(page.status, &headers, &page.body);
        }
    }

    fn drop(&mut self, this: Resource<Listener>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl signer::Host for HostState {
    fn sign(&mut self, input: Vec<u8>) -> Result<Vec<u8>, signer::SignerError> {
        match &self.io.signer {
            Some(s) => s.sign(&input).map_err(signer::SignerError::Failed),
            None => Err(signer::SignerError::NoKey),
        }
    }

    fn dpop_proof(&mut self, key_id: String, claims: String) -> Result<String, signer::SignerError> {
        crate::signer::dpop_proof(&*self.storage, &key_id, &claims).map_err(signer::SignerError::Failed)
    }
}

impl clock::Host for HostState {
    fn now_ms(&mut self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

impl random::Host for HostState {
    /// Served from a per-thread pool refilled from the OS 1 KiB at a time
    /// (the engine asks for 64 bytes per call: one system call per 16
    /// calls); each byte is handed out once and zeroed in the pool as it is
    /// taken. A forked child drops the pool it inherited.
    fn get_random_bytes(&mut self, len: u32) -> Vec<u8> {
        use std::cell::RefCell;
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

        const POOL: usize = 1024;
        /// Forks seen; a pool filled under another count is stale.
        static FORKS: AtomicU64 = AtomicU64::new(0);
        /// Whether the fork handler is installed (else no pooling).
        static POOLING: AtomicBool = AtomicBool::new(false);
        static INSTALL: std::sync::Once = std::sync::Once::new();
        struct Pool {
            buf: [u8; POOL],
            pos: usize,
            forks: u64,
        }
        impl Drop for Pool {
            fn drop(&mut self) {
                for b in &mut self.buf {
                    // SAFETY: a valid, aligned byte of our own buffer.
                    unsafe { std::ptr::write_volatile(b, 0) };
                }
            }
        }
        thread_local! {
            static RANDOM: RefCell<Pool> = const {
                RefCell::new(Pool { buf: [0; POOL], pos: POOL, forks: 0 })
            };
        }
        #[cfg(unix)]
        extern "C" fn forked() {
            FORKS.fetch_add(1, Ordering::SeqCst);
        }
        INSTALL.call_once(|| {
            #[cfg(unix)]
            // SAFETY: registers a handler that only increments an atomic
            // (async-signal-safe), run in the child after fork().
            let ok = unsafe { libc::pthread_atfork(None, None, Some(forked)) } == 0;
            #[cfg(not(unix))]
            let ok = true;
            POOLING.store(ok, Ordering::SeqCst);
        });

        let len = len.min(4096) as usize;
        let mut out = vec![0u8; len];
        let pooled = POOLING.load(Ordering::Relaxed)
            && RANDOM
                .try_with(|pool| {
                    let mut p = pool.borrow_mut();
                    let forks = FORKS.load(Ordering::SeqCst);
                    if p.forks != forks {
                        p.buf.fill(0);
                        p.pos = POOL;
                        p.forks = forks;
                    }
                    let mut filled = 0;
                    while filled < len {
                        if p.pos == POOL {
                            if getrandom::fill(&mut p.buf).is_err() {
                                p.buf.fill(0);
                                return false;
                            }
                            p.pos = 0;
                        }
                        let n = (len - filled).min(POOL - p.pos);
                        let from = p.pos;
                        out[filled..filled + n].copy_from_slice(&p.buf[from..from + n]);
                        p.buf[from..from + n].fill(0);
                        p.pos += n;
                        filled += n;
                    }
                    true
                })
                .unwrap_or(false);
        if !pooled && getrandom::fill(&mut out).is_err() {
            // An OS without randomness gets zeros, which the engine refuses.
            out.fill(0);
        }
        out
    }
}
