//! Loading the engine component and running sessions.
//!
//! - One `wasmtime::Engine`, `Linker` and `InstancePre` per [`Runtime`]; the
//!   compiled artifact is cached on disk (`Engine::precompile_component`,
//!   `Component::deserialize_file`), keyed by the component's hash and the
//!   engine's compatibility hash, so a CLI start does not recompile.
//! - One `Store` per [`Session`] (per MCP server), behind a mutex: concurrent
//!   callers take turns, so one flow serves them all.
//! - Fuel bounds guest work per call and a memory limit bounds its growth; a
//!   trap becomes [`Error::Trapped`] and the next call gets a fresh instance.
//!   Nothing stored is lost: the store lives on disk.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, ResourceAny, ResourceTable};
use wasmtime::{Store, StoreLimitsBuilder};

use crate::bindings::exports::mcp::oauth::client::ChallengeOutcome;
use crate::bindings::mcp::oauth::engine_types::{AccessToken, AuthError, Config, Mode, ServerResponse, Status};
use crate::bindings::{Engine as EngineWorld, EnginePre};
use crate::browser::BrowserOpener;
use crate::callback::CallbackOptions;
use crate::http::{HttpClient, HttpOptions};
use crate::imports::HostState;
use crate::prompts::Prompter;
use crate::storage::{FileStore, private};

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
        AuthError::TimedOut => "timed out waiting for the browser to come back; run the command again (or use --no-browser to paste the redirect URL)".into(),
        AuthError::Failed(f) => f.message.clone(),
    }
}

/// How the runtime is set up.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// The store directory (`$MCP_OAUTH_HOME`).
    pub home: PathBuf,
    /// Where compiled artifacts are cached (default `<home>/cache`).
    pub cache_dir: Option<PathBuf>,
    /// HTTP limits.
    pub http: HttpOptions,
    /// Guest instructions allowed per call (fuel).
    pub fuel_per_call: u64,
    /// Guest linear memory cap, bytes.
    pub memory_limit: usize,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            home: crate::storage::default_home(),
            cache_dir: None,
            http: HttpOptions::default(),
            fuel_per_call: 20_000_000_000,
            memory_limit: 64 << 20,
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
}

/// The loaded engine component. Cheap to clone; share it between sessions.
#[derive(Clone)]
pub struct Runtime {
    shared: Arc<Shared>,
}

fn artifact_key(engine: &wasmtime::Engine) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let digest = Sha256::digest(COMPONENT);
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("engine-{hex}-{:016x}.cwasm", h.finish())
}

/// Loads the component from the artifact cache, compiling (and caching) it
/// when the cache has no usable copy. Deserializing runs native code, so the
/// cache is used only when it is private: a directory of ours that is not a
/// symlink (`storage::private`), and an artifact that is a regular file of
/// ours that nobody else can write. Otherwise the engine is compiled in
/// memory and nothing is cached.
fn load_component(engine: &wasmtime::Engine, cache_dir: &Path) -> Result<Component, Error> {
    let cache_ok = match private::private_dir(cache_dir) {
        Ok(()) => true,
        Err(why) => {
            eprintln!(
                "mcp-oauth: warning: not caching the compiled engine in {}: {why}",
                cache_dir.display()
            );
            false
        }
    };
    let path = cache_dir.join(artifact_key(engine));
    if cache_ok && private::check_trusted_file(&path).is_ok() {
        // SAFETY: the file is a regular file owned by this user, writable by
        // nobody else, in a private directory of ours, written by
        // `precompile_component` of an engine with the same compatibility
        // hash (part of the file name).
        if let Ok(c) = unsafe { Component::deserialize_file(engine, &path) } {
            return Ok(c);
        }
    }
    let bytes = engine
        .precompile_component(COMPONENT)
        .map_err(|e| Error::Setup(format!("compiling the engine component: {e}")))?;
    if cache_ok {
        let mut n = [0u8; 8];
        let _ = getrandom::fill(&mut n);
        let tmp = path.with_extension(format!("tmp{}-{:016x}", std::process::id(), u64::from_le_bytes(n)));
        let written = crate::storage::create_private(&tmp).and_then(|mut f| {
            use std::io::Write;
            f.write_all(&bytes)?;
            f.sync_all()
        });
        if written.is_err() || std::fs::rename(&tmp, &path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
    // SAFETY: `bytes` was produced just now by this engine.
    unsafe { Component::deserialize(engine, &bytes) }
        .map_err(|e| Error::Setup(format!("loading the engine component: {e}")))
}

impl Runtime {
    /// Sets up wasmtime and loads the component (from the artifact cache when possible).
    pub fn new(options: RuntimeOptions) -> Result<Self, Error> {
        let mut config = wasmtime::Config::new();
        config.consume_fuel(true);
        let engine = wasmtime::Engine::new(&config).map_err(|e| Error::Setup(e.to_string()))?;
        let cache_dir = options.cache_dir.clone().unwrap_or_else(|| options.home.join("cache"));
        let component = load_component(&engine, &cache_dir)?;
        let mut linker: Linker<HostState> = Linker::new(&engine);
        EngineWorld::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| Error::Setup(e.to_string()))?;
        let pre = linker
            .instantiate_pre(&component)
            .and_then(EnginePre::new)
            .map_err(|e| Error::Setup(format!("linking the engine component: {e}")))?;
        Ok(Self {
            shared: Arc::new(Shared { engine, pre, options }),
        })
    }

    /// The options in use.
    pub fn options(&self) -> &RuntimeOptions {
        &self.shared.options
    }

    /// Opens a session for one MCP server.
    pub fn session(&self, server_url: &str, config: Config, io: SessionIo) -> Result<Session, Error> {
        let fuel = self.shared.options.fuel_per_call;
        let instance = self.instantiate(server_url, &config, &io)?;
        Ok(Session {
            runtime: self.clone(),
            server_url: server_url.to_string(),
            config,
            io,
            inner: Mutex::new(Some(instance)),
            fuel: std::sync::atomic::AtomicU64::new(fuel),
        })
    }

    fn instantiate(&self, server_url: &str, config: &Config, io: &SessionIo) -> Result<Instance, Error> {
        let opts = &self.shared.options;
        let storage = FileStore::open(&opts.home).map_err(|e| Error::Setup(e.to_string()))?;
        let state = HostState {
            table: ResourceTable::new(),
            http: HttpClient::new(opts.http.clone()),
            storage,
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

/// One MCP server's authorization. `Send + Sync`: share it (in an `Arc`)
/// between threads; calls take turns, so N concurrent callers cause one flow.
pub struct Session {
    runtime: Runtime,
    server_url: String,
    config: Config,
    io: SessionIo,
    inner: Mutex<Option<Instance>>,
    fuel: std::sync::atomic::AtomicU64,
}

impl Session {
    /// The server URL.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// Sets the guest instruction budget per call (fuel).
    pub fn set_fuel_per_call(&self, fuel: u64) {
        self.fuel.store(fuel, std::sync::atomic::Ordering::SeqCst);
    }

    fn call<R>(
        &self,
        f: impl FnOnce(&mut Store<HostState>, &EngineWorld, ResourceAny) -> wasmtime::Result<R>,
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
        inst.store.data_mut().storage.unlock_all();
        match result {
            Ok(r) => Ok(r),
            Err(trap) => {
                // Drop the broken instance; the next call starts a fresh one.
                *guard = None;
                Err(Error::Trapped(
                    format!("{trap:#}").lines().next().unwrap_or("trap").to_string(),
                ))
            }
        }
    }

    /// A usable token: stored, refreshed, or (interactive) newly authorized.
    pub fn authorize(&self, mode: Mode) -> Result<AccessToken, Error> {
        self.call(|store, b, h| b.mcp_oauth_client().session().call_authorize(store, h, mode))?
            .map_err(Error::Auth)
    }

    /// Reacts to the MCP server's answer.
    pub fn on_response(&self, response: &ServerResponse, mode: Mode) -> Result<ChallengeOutcome, Error> {
        self.call(|store, b, h| {
            b.mcp_oauth_client()
                .session()
                .call_on_response(store, h, response, mode)
        })?
        .map_err(Error::Auth)
    }

    /// Clears the decline latch.
    pub fn retry(&self) -> Result<(), Error> {
        self.call(|store, b, h| b.mcp_oauth_client().session().call_retry(store, h))
    }

    /// Removes the stored tokens.
    pub fn logout(&self) -> Result<(), Error> {
        self.call(|store, b, h| b.mcp_oauth_client().session().call_logout(store, h))?
            .map_err(Error::Auth)
    }

    /// What is stored for this server.
    pub fn status(&self) -> Result<Status, Error> {
        self.call(|store, b, h| b.mcp_oauth_client().session().call_status(store, h))?
            .map_err(Error::Auth)
    }
}
