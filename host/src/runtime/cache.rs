//! The compiled-engine cache: artifacts keyed by the component's hash and
//! the engine's compatibility hash, kept only in a private directory and
//! checked before they are deserialized (deserializing runs native code).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use super::{COMPONENT, Error, RuntimeOptions, Uncached};
use crate::storage::private;

pub(super) fn artifact_key(engine: &wasmtime::Engine) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let digest = Sha256::digest(COMPONENT);
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("engine-{hex}-{:016x}.cwasm", h.finish())
}

pub(super) fn new_engine(baseline: bool) -> Result<wasmtime::Engine, Error> {
    wasmtime::Engine::new(&super::engine_config::config(baseline)).map_err(|e| Error::Setup(e.to_string()))
}

/// The optimized artifact `build.rs` compiled from [`COMPONENT`] into this
/// binary (empty when the build could not make one).
static PRECOMPILED: &[u8] = include_bytes!(env!("MCP_OAUTH_PRECOMPILED"));

/// The engine compiled at build time, when the running wasmtime accepts it:
/// wasmtime checks the artifact's version, configuration and CPU features
/// against `engine` and refuses it otherwise (a binary copied to an older
/// CPU, say); then the cache or a compile takes over.
pub(super) fn embedded(engine: &wasmtime::Engine) -> Option<Component> {
    if PRECOMPILED.is_empty() {
        return None;
    }
    // SAFETY: the bytes are part of this binary, made by
    // `precompile_component` at build time from the component embedded
    // beside them, with the configuration `engine` has; no input from
    // outside the binary reaches them.
    unsafe { Component::deserialize(engine, PRECOMPILED) }.ok()
}

pub(super) fn cache_dir_of(options: &RuntimeOptions) -> PathBuf {
    options.cache_dir.clone().unwrap_or_else(|| options.home.join("cache"))
}

/// Whether compiled artifacts may be cached in (and loaded from) `cache_dir`:
/// deserializing runs native code, so only a private directory of ours that
/// is not a symlink (`storage::private`) will do. Warns when it won't.
pub(super) fn usable_cache_dir(cache_dir: &Path) -> bool {
    match private::private_dir(cache_dir) {
        Ok(()) => true,
        Err(why) => {
            eprintln!(
                "mcp-oauth: warning: not caching the compiled engine in {}: {why}",
                cache_dir.display()
            );
            false
        }
    }
}

/// The cached artifact at `path` (in a usable cache dir), if it is a regular
/// file of ours that nobody else can write and it deserializes.
pub(super) fn load_cached(engine: &wasmtime::Engine, path: &Path) -> Option<Component> {
    private::check_trusted_file(path).ok()?;
    // SAFETY: the file is a regular file owned by this user, writable by
    // nobody else, in a private directory of ours, written by
    // `precompile_component` of an engine with the same compatibility hash
    // (part of the file name).
    unsafe { Component::deserialize_file(engine, path) }.ok()
}

/// Compiles the optimized artifact and writes it to `path` (atomically: a
/// private temporary file renamed into place). Returns the bytes.
pub(super) fn compile_and_cache(engine: &wasmtime::Engine, path: Option<&Path>) -> Result<Vec<u8>, Error> {
    let bytes = engine
        .precompile_component(COMPONENT)
        .map_err(|e| Error::Setup(format!("compiling the engine component: {e}")))?;
    if let Some(path) = path {
        let mut n = [0u8; 8];
        let _ = getrandom::fill(&mut n);
        let tmp = path.with_extension(format!("tmp{}-{:016x}", std::process::id(), u64::from_le_bytes(n)));
        let written = crate::storage::create_private(&tmp).and_then(|mut f| {
            use std::io::Write;
            f.write_all(&bytes)?;
            f.sync_all()
        });
        if written.is_err() || std::fs::rename(&tmp, path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
    Ok(bytes)
}

/// Loads the component compiled into the binary, else from the artifact
/// cache; without a usable copy, compiles it: with Winch and nothing cached for [`Uncached::Baseline`]
/// (the returned flag), else optimized and cached (in memory only when the
/// cache dir is not private).
pub(super) fn load_component(options: &RuntimeOptions) -> Result<(wasmtime::Engine, Component, bool), Error> {
    let engine = new_engine(false)?;
    if options.embedded_artifact
        && let Some(c) = embedded(&engine)
    {
        return Ok((engine, c, false));
    }
    let cache_dir = cache_dir_of(options);
    let cache_ok = usable_cache_dir(&cache_dir);
    let path = cache_dir.join(artifact_key(&engine));
    if cache_ok && let Some(c) = load_cached(&engine, &path) {
        return Ok((engine, c, false));
    }
    if options.uncached == Uncached::Baseline
        && let Ok(winch) = new_engine(true)
        && let Ok(c) = Component::new(&winch, COMPONENT)
    {
        return Ok((winch, c, true));
    }
    let bytes = compile_and_cache(&engine, cache_ok.then_some(path.as_path()))?;
    // SAFETY: `bytes` was produced just now by this engine.
    let c = unsafe { Component::deserialize(&engine, &bytes) }
        .map_err(|e| Error::Setup(format!("loading the engine component: {e}")))?;
    Ok((engine, c, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binary_carries_an_artifact_its_own_engine_accepts() {
        assert!(!PRECOMPILED.is_empty(), "build.rs made no artifact");
        assert!(embedded(&new_engine(false).unwrap()).is_some());
    }

    #[test]
    fn an_engine_configured_otherwise_refuses_it() {
        // Winch's engine stands for any wasmtime the artifact was not made
        // for: the refusal is wasmtime's own check, and the caller falls back.
        assert!(embedded(&new_engine(true).unwrap()).is_none());
        let mut other = super::super::engine_config::config(false);
        other.consume_fuel(false);
        assert!(embedded(&wasmtime::Engine::new(&other).unwrap()).is_none());
    }
}
