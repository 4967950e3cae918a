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
use crate::storage::FileStore;

/// What the engine asks the host for, with the host's resources.
pub struct HostState {
    pub(crate) table: ResourceTable,
    pub(crate) http: HttpClient,
    pub(crate) storage: FileStore,
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
    }
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
        self.storage.lock(&key).map_err(storage_error)
    }

    fn unlock(&mut self, key: String) {
        self.storage.unlock(&key);
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
    fn get_random_bytes(&mut self, len: u32) -> Vec<u8> {
        let mut out = vec![0u8; len.min(4096) as usize];
        // An OS without randomness gets zeros, which the engine refuses.
        let _ = getrandom::fill(&mut out);
        out
    }
}
