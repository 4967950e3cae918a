//! Loading the engine component and running sessions.
//!
//! - One `wasmtime::Engine`, `Linker` and `InstancePre` per [`Runtime`].
//!   The optimized engine is compiled into the binary at build time
//!   (`build.rs`, with `engine_config`'s configuration) and used whenever the
//!   running wasmtime accepts it, so not even a first run compiles. When it
//!   refuses (another CPU, say), the compiled artifact is cached on disk
//!   (`Engine::precompile_component`, `Component::deserialize_file`), keyed
//!   by the component's hash and the engine's compatibility hash, so a CLI
//!   start does not recompile. With [`Uncached::Baseline`], a start without a usable cached artifact
//!   compiles with Winch, wasmtime's baseline compiler (several times faster
//!   to compile, slower code), writes nothing, and leaves the optimized
//!   artifact to [`Runtime::write_cache`] (the CLI runs it in a detached
//!   background process).
//! - One `Store` per [`Session`] (per MCP server), behind a mutex: concurrent
//!   callers take turns, so one flow serves them all.
//! - Fuel bounds guest work per call and a memory limit bounds its growth; a
//!   trap becomes [`Error::Trapped`] and the next call gets a fresh instance.
//!   Nothing stored is lost: the store lives on disk.
//! - A session answers `authorize(Silent)` itself, without entering wasm,
//!   with the last token the engine returned for it while that token is
//!   fresh (until the token's `refresh_at`, the engine's own margin rule); every call that may
//!   change the engine's view forgets it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use wasmtime::component::{HasSelf, Linker, ResourceAny, ResourceTable};
use wasmtime::{Store, StoreLimitsBuilder};

use crate::bindings::exports::mcp::oauth::client::ChallengeOutcome;
use crate::bindings::mcp::oauth::engine_types::{
    AccessToken, AuthError, Config, LogoutReport, Mode, ServerResponse, Status,
};
use crate::bindings::{Engine as EngineWorld, EnginePre};
use crate::browser::BrowserOpener;
use crate::callback::CallbackOptions;
use crate::http::{HttpClient, HttpOptions};
use crate::imports::HostState;
use crate::prompts::Prompter;
use crate::storage::mode::SecretsChoice;
use crate::storage::select::{self, StorePlace};
use crate::storage::{Store as RecordStore, StoreError, private};

mod cache;
mod engine_config;
use cache::{artifact_key, cache_dir_of, compile_and_cache, load_cached, load_component, new_engine, usable_cache_dir};

/// The engine component, built by `build.rs` from guest/component.
pub const COMPONENT: &[u8] = include_bytes!(env!("MCP_OAUTH_COMPONENT"));

/// Everything a session call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The engine ended the flow without a token.
    #[error("{}", describe_auth_error(.0))]
    Auth(AuthError),
    /// The guest trapped; the next call gets a fresh instance.
    #[error("the engine failed ({0}); it was restarted, nothing stored was lost, try again")]
    Trapped(String),
    /// The runtime could not be set up.
    #[error("{0}")]
    Setup(String),
    /// The store cannot be used as configured (its URL, user, password,
    /// TLS or key file): the operator's to fix.
    #[error("{0}")]
    StoreConfig(String),
}

impl Error {
    /// The engine's error, if that is what this is.
    pub fn auth(&self) -> Option<&AuthError> {
        match self {
            Error::Auth(a) => Some(a),
            _ => None,
        }
    }
}

/// A message for every engine error: what happened and what to do.
pub fn describe_auth_error(e: &AuthError) -> String {
    match e {
        AuthError::AuthorizationRequired => {
            "authorization required: no usable token is stored; run `mcp-oauth login <url>`".into()
        }
        AuthError::Declined => "authorization was declined; nothing more will be asked until you retry".into(),
        AuthError::TimedOut => "timed out waiting for the sign-in to be finished (the browser to come back, or the device code to be entered before it expired); run the command again".into(),
        AuthError::Failed(f) => f.message.clone(),
    }
}

/// How the runtime is set up.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// The store directory (`$MCP_OAUTH_HOME`): the store is opened here
    /// (in the mode its `store.json` pins) unless [`RuntimeOptions::store`]
    /// is given; the artifact cache defaults to `<home>/cache`.
    pub home: PathBuf,
    /// The store to use instead of opening `home` (any [`Store`]
    /// implementation: the file store, the sealed store, your own).
    pub store: Option<Arc<dyn RecordStore>>,
    /// Where secrets live when `home` is opened (`MCP_OAUTH_SECRETS`).
    pub secrets: SecretsChoice,
    /// A shared store and the user whose records these are
    /// (`MCP_OAUTH_STORE`, `MCP_OAUTH_USER`; default: from the environment).
    pub place: StorePlace,
    /// Where compiled artifacts are cached (default `<home>/cache`).
    pub cache_dir: Option<PathBuf>,
    /// HTTP limits.
    pub http: HttpOptions,
    /// Guest instructions allowed per call (fuel).
    pub fuel_per_call: u64,
    /// Guest linear memory cap, bytes.
    pub memory_limit: usize,
    /// Use the optimized engine compiled into this binary at build time
    /// when the running wasmtime accepts it (it checks version,
    /// configuration and CPU): no compile and no cache, even on the first
    /// run. Off, or refused: the artifact cache, then `uncached`.
    pub embedded_artifact: bool,
    /// What to do when the artifact cache has no usable copy.
    pub uncached: Uncached,
    /// Drop a session's engine instance (most of its memory) once a silent
    /// `authorize` leaves it idle with a fresh Bearer token: the host's fast
    /// path answers meanwhile, the session's state is in the store, and the
    /// next call that needs the engine instantiates it again (~0.3 ms). For
    /// hosts holding many sessions; off by default.
    pub release_idle: bool,
}

/// What [`Runtime::new`] does when the artifact cache has no usable copy of
/// the compiled engine (the first run ever, or after a wasmtime upgrade).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Uncached {
    /// Compile with Cranelift (optimized code; the slow start, ~0.4 s) and
    /// cache the artifact.
    #[default]
    Optimize,
    /// Compile with Winch, the baseline compiler, for this runtime only, and
    /// cache nothing: [`Runtime::is_baseline`] then says so, and
    /// [`Runtime::write_cache`] (for example in a background process) caches
    /// the optimized artifact for later starts. Where Winch is unavailable
    /// (not x86-64 or aarch64), this is [`Uncached::Optimize`].
    Baseline,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            home: crate::storage::default_home(),
            store: None,
            secrets: SecretsChoice::Auto,
            place: StorePlace::from_env(),
            cache_dir: None,
            http: HttpOptions::default(),
            fuel_per_call: 20_000_000_000,
            memory_limit: 64 << 20,
            embedded_artifact: true,
            uncached: Uncached::Optimize,
            release_idle: false,
        }
    }
}

/// How one session talks to the user.
#[derive(Clone)]
pub struct SessionIo {
    /// Consent and notices.
    pub prompter: Arc<dyn Prompter>,
    /// The browser.
    pub browser: Arc<dyn BrowserOpener>,
    /// Paste and cancel for the callback.
    pub callback: CallbackOptions,
    /// The client's signing key, for `private_key_jwt`.
    pub signer: Option<Arc<dyn crate::signer::Signer>>,
}

struct Shared {
    engine: wasmtime::Engine,
    pre: EnginePre<HostState>,
    options: RuntimeOptions,
    /// The one store every session of this runtime reads and writes (its
    /// key, if sealed, read once).
    store: Arc<dyn RecordStore>,
    /// Running Winch code (no usable cached artifact at start).
    baseline: bool,
}

/// The loaded engine component. Cheap to clone; share it between sessions.
#[derive(Clone)]
pub struct Runtime {
    shared: Arc<Shared>,
}

impl Runtime {
    /// Sets up wasmtime and loads the component (from the artifact cache when possible).
    pub fn new(options: RuntimeOptions) -> Result<Self, Error> {
        // Opening the store may read the keychain (a D-Bus round trip and a
        // key exchange, ~10 ms): done while the component loads.
        let (store, loaded) = std::thread::scope(|scope| {
            let store = match &options.store {
                Some(s) => Ok(s.clone()),
                None => {
                    let opening = scope.spawn(|| select::open(&options.home, &options.place, options.secrets));
                    let loaded = load_component(&options);
                    return (
                        opening
                            .join()
                            .unwrap_or_else(|_| Err(StoreError::Secrets("opening the store panicked".into()))),
                        loaded,
                    );
                }
            };
            (store, load_component(&options))
        });
        let store = store.map_err(|e| match e {
            StoreError::Config(m) => Error::StoreConfig(m),
            e => Error::Setup(e.to_string()),
        })?;
        let (engine, component, baseline) = loaded?;
        let mut linker: Linker<HostState> = Linker::new(&engine);
        EngineWorld::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| Error::Setup(e.to_string()))?;
        let pre = linker
            .instantiate_pre(&component)
            .and_then(EnginePre::new)
            .map_err(|e| Error::Setup(format!("linking the engine component: {e}")))?;
        Ok(Self {
            shared: Arc::new(Shared {
                engine,
                pre,
                options,
                store,
                baseline,
            }),
        })
    }

    /// Whether this runtime runs baseline (Winch) code because the artifact
    /// cache had no usable copy ([`Uncached::Baseline`]); call
    /// [`Runtime::write_cache`] to cache the optimized one for later starts.
    pub fn is_baseline(&self) -> bool {
        self.shared.baseline
    }

    /// Compiles the optimized engine into the artifact cache of `options`
    /// unless a usable copy is already there or another process is writing
    /// it; returns whether this call wrote it. Takes the CPU time of a full
    /// compile (~0.4 s): meant for a background process.
    pub fn write_cache(options: &RuntimeOptions) -> Result<bool, Error> {
        let engine = new_engine(false)?;
        let cache_dir = cache_dir_of(options);
        if !usable_cache_dir(&cache_dir) {
            return Ok(false);
        }
        let path = cache_dir.join(artifact_key(&engine));
        if load_cached(&engine, &path).is_some() {
            return Ok(false);
        }
        // One writer at a time; the others find the work done or under way.
        let lock_path = path.with_extension("lock");
        let lock = match crate::storage::create_private(&lock_path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                private::open_regular(&lock_path).map_err(|e| Error::Setup(format!("{}: {e}", lock_path.display())))?
            }
            Err(e) => return Err(Error::Setup(format!("{}: {e}", lock_path.display()))),
        };
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(false),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::Setup(format!("{}: {e}", lock_path.display())));
            }
        }
        let wrote = if load_cached(&engine, &path).is_some() {
            false
        } else {
            compile_and_cache(&engine, Some(&path))?;
            load_cached(&engine, &path).is_some()
        };
        let _ = std::fs::remove_file(&lock_path);
        drop(lock);
        Ok(wrote)
    }

    /// The options in use.
    pub fn options(&self) -> &RuntimeOptions {
        &self.shared.options
    }

    /// The store the sessions use.
    pub fn store(&self) -> Arc<dyn RecordStore> {
        self.shared.store.clone()
    }

    /// Opens a session for one MCP server.
    pub fn session(&self, server_url: &str, config: Config, io: SessionIo) -> Result<Session, Error> {
        let fuel = self.shared.options.fuel_per_call;
        // Opening checks the URL and config now; with `release_idle` the
        // instance goes at once, and the first call makes another.
        let instance = self.instantiate(server_url, &config, &io)?;
        let instance = (!self.shared.options.release_idle).then_some(instance);
        Ok(Session {
            runtime: self.clone(),
            server_url: server_url.to_string(),
            config,
            io,
            inner: Mutex::new(instance),
            fuel: std::sync::atomic::AtomicU64::new(fuel),
            fast: Mutex::new(None),
        })
    }

    fn instantiate(&self, server_url: &str, config: &Config, io: &SessionIo) -> Result<Instance, Error> {
        let opts = &self.shared.options;
        let state = HostState {
            table: ResourceTable::new(),
            http: HttpClient::new(opts.http.clone()),
            storage: self.shared.store.clone(),
            held: std::collections::HashMap::new(),
            io: io.clone(),
            limits: StoreLimitsBuilder::new()
                .memory_size(opts.memory_limit)
                .instances(4)
                .build(),
        };
        let mut store = Store::new(&self.shared.engine, state);
        store.limiter(|s| &mut s.limits);
        store
            .set_fuel(opts.fuel_per_call)
            .map_err(|e| Error::Setup(e.to_string()))?;
        let bindings = self
            .shared
            .pre
            .instantiate(&mut store)
            .map_err(|e| Error::Setup(format!("instantiating the engine: {e}")))?;
        let handle = bindings
            .mcp_oauth_client()
            .session()
            .call_open(&mut store, server_url, config)
            .map_err(|e| Error::Trapped(e.to_string()))?
            .map_err(Error::Auth)?;
        Ok(Instance {
            store,
            bindings,
            handle,
        })
    }
}

struct Instance {
    store: Store<HostState>,
    bindings: EngineWorld,
    handle: ResourceAny,
}

/// The last token the engine returned to `authorize(Silent)`, and until
/// when (Unix ms: the engine's `refresh_at`) the host may hand it out
/// without asking the engine. Deliberately not `Debug`: it holds a secret.
struct FastToken {
    token: AccessToken,
    serve_until_ms: u64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One MCP server's authorization. `Send + Sync`: share it (in an `Arc`)
/// between threads; calls take turns, so N concurrent callers cause one flow.
pub struct Session {
    runtime: Runtime,
    server_url: String,
    config: Config,
    io: SessionIo,
    inner: Mutex<Option<Instance>>,
    fuel: std::sync::atomic::AtomicU64,
    /// The host's silent fast path. Written only while `inner` is held, in
    /// the order of the engine calls, so it never outlives the engine state
    /// that produced it; also cleared before a call that may change it.
    fast: Mutex<Option<FastToken>>,
}

impl Session {
    /// The server URL.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// Whether the session holds an engine instance now (see
    /// [`RuntimeOptions::release_idle`]).
    pub fn is_resident(&self) -> bool {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// Sets the guest instruction budget per call (fuel).
    pub fn set_fuel_per_call(&self, fuel: u64) {
        self.fuel.store(fuel, std::sync::atomic::Ordering::SeqCst);
    }

    /// Runs `f` in the engine. The silent fast path is forgotten afterwards:
    /// a call not known to leave the engine's tokens alone may change them.
    fn call<R>(
        &self,
        f: impl FnOnce(&mut Store<HostState>, &EngineWorld, ResourceAny) -> wasmtime::Result<R>,
    ) -> Result<R, Error> {
        self.call_then(f, |_, fast| *fast = None)
    }

    /// Forgets the silent fast path's token now (before a call that may
    /// change the engine's view, so nobody is served it meanwhile).
    fn forget_token(&self) {
        *self.fast.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Runs `f` in the engine, then `then` on its result and the silent fast
    /// path, still holding the instance (a trap forgets the fast path).
    fn call_then<R>(
        &self,
        f: impl FnOnce(&mut Store<HostState>, &EngineWorld, ResourceAny) -> wasmtime::Result<R>,
        then: impl FnOnce(&R, &mut Option<FastToken>),
    ) -> Result<R, Error> {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            *guard = Some(self.runtime.instantiate(&self.server_url, &self.config, &self.io)?);
        }
        let inst = guard
            .as_mut()
            .ok_or_else(|| Error::Setup("no engine instance".into()))?;
        let fuel = self.fuel.load(std::sync::atomic::Ordering::SeqCst);
        inst.store.set_fuel(fuel).map_err(|e| Error::Setup(e.to_string()))?;
        let result = f(&mut inst.store, &inst.bindings, inst.handle);
        // Locks never outlive a call, whatever the guest did.
        // Every lock the call took is released here, whatever happened.
        inst.store.data_mut().held.clear();
        let mut fast = self.fast.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(r) => {
                then(&r, &mut fast);
                Ok(r)
            }
            Err(trap) => {
                *fast = None;
                // Drop the broken instance; the next call starts a fresh one.
                *guard = None;
                Err(Error::Trapped(
                    format!("{trap:#}").lines().next().unwrap_or("trap").to_string(),
                ))
            }
        }
    }

    /// A usable token: stored, refreshed, or (interactive) newly authorized.
    ///
    /// `Silent` is answered by the host, without entering the engine, with
    /// the token the engine last returned to a silent call, while that
    /// token's `refresh_at` (the engine's margin rule) is in the future.
    pub fn authorize(&self, mode: Mode) -> Result<AccessToken, Error> {
        let f = |store: &mut Store<HostState>, b: &EngineWorld, h| {
            b.mcp_oauth_client().session().call_authorize(store, h, mode)
        };
        if !matches!(mode, Mode::Silent) {
            self.forget_token();
            return self.call(f)?.map_err(Error::Auth);
        }
        {
            let fast = self.fast.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(t) = fast.as_ref()
                && now_ms() < t.serve_until_ms
            {
                return Ok(t.token.clone());
            }
        }
        let r = self
            .call_then(f, |r, fast| {
                *fast = match r {
                    // Served until the engine would refresh it (its margin
                    // rule, not a copy here); a token of unknown lifetime
                    // is never served by the host.
                    Ok(token) => token.refresh_at.map(|at| FastToken {
                        token: token.clone(),
                        serve_until_ms: at,
                    }),
                    Err(_) => None,
                }
            })?
            .map_err(Error::Auth);
        if self.runtime.shared.options.release_idle {
            self.release_if_idle();
        }
        r
    }

    /// [`RuntimeOptions::release_idle`]: drops the instance when the fast
    /// path holds a Bearer token (a DPoP-bound one needs the engine for every
    /// proof) and nothing in the engine's memory would be lost: no decline
    /// latch set (asked of the engine itself).
    fn release_if_idle(&self) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let fast = self.fast.lock().unwrap_or_else(|e| e.into_inner());
        let Some(inst) = guard.as_mut() else { return };
        if fast.as_ref().is_none_or(|t| t.token.dpop) {
            return;
        }
        let status = inst
            .bindings
            .mcp_oauth_client()
            .session()
            .call_status(&mut inst.store, inst.handle);
        if matches!(status, Ok(Ok(ref st)) if !st.declined) {
            *guard = None;
        }
    }

    /// Reacts to the MCP server's answer.
    pub fn on_response(&self, response: &ServerResponse, mode: Mode) -> Result<ChallengeOutcome, Error> {
        let f = |store: &mut Store<HostState>, b: &EngineWorld, h| {
            b.mcp_oauth_client()
                .session()
                .call_on_response(store, h, response, mode)
        };
        if matches!(response.status, 401 | 403) {
            // A rejection: the engine refreshes, re-authorizes or steps up.
            self.forget_token();
            self.call(f)
        } else {
            // Anything else leaves the engine's tokens as they are.
            self.call_then(f, |_, _| {})
        }?
        .map_err(Error::Auth)
    }

    /// Clears the decline latch.
    pub fn retry(&self) -> Result<(), Error> {
        self.forget_token();
        self.call(|store, b, h| b.mcp_oauth_client().session().call_retry(store, h))
    }

    /// Removes the stored tokens; with `revoke`, revokes them at the AS
    /// first when it offers that. The report says what the AS did.
    pub fn logout(&self, revoke: bool) -> Result<LogoutReport, Error> {
        self.forget_token();
        self.call(|store, b, h| b.mcp_oauth_client().session().call_logout(store, h, revoke))?
            .map_err(Error::Auth)
    }

    /// What is stored for this server.
    pub fn status(&self) -> Result<Status, Error> {
        self.call_then(
            |store, b, h| b.mcp_oauth_client().session().call_status(store, h),
            |_, _| {},
        )?
        .map_err(Error::Auth)
    }

    /// Keeps a `DPoP-Nonce` a successful response carried: the one to use
    /// in the next proof (RFC 9449 §9).
    pub fn note_dpop_nonce(&self, status: u16, nonce: String) {
        self.note_success(status, None, Some(nonce));
    }

    /// Tells the engine about a 2xx from the MCP server (see
    /// [`crate::client::nonce_signal`]): its `DPoP-Nonce`, and, after a
    /// request sent again with a token the engine handed out for a
    /// challenge (`sent_token`), that the token works, which re-arms the
    /// engine's once-per-rejection refresh. Without it a long-lived
    /// client's next 401 would end in a new sign-in instead of a refresh.
    pub fn note_success(&self, status: u16, sent_token: Option<String>, dpop_nonce: Option<String>) {
        let ok = ServerResponse {
            status,
            www_authenticate: Vec::new(),
            sent_token,
            dpop_nonce,
        };
        let _ = self.on_response(&ok, Mode::Silent);
    }

    /// The `DPoP` header for a request to the MCP server with the current
    /// token (RFC 9449), or `None` when the token is not DPoP-bound. One
    /// per request: proofs are single-use.
    pub fn dpop_proof(&self, method: &str, url: &str) -> Result<Option<String>, Error> {
        self.call_then(
            |store, b, h| b.mcp_oauth_client().session().call_dpop_proof(store, h, method, url),
            |_, _| {},
        )?
        .map_err(Error::Auth)
    }
}
