//! The wasmtime engine, its epoch ticker, and the cache of compiled components.
//!
//! One [`Engine`] per host, with epoch interruption on: a plain thread bumps the epoch every
//! [`TICK`] so a guest call can be given a deadline (see `instance`). Compiling a component with
//! Cranelift takes tens of milliseconds, so compiled code is cached in a host-private directory
//! (0700) keyed by the SHA-256 of the `.wasm` and the engine's compatibility hash; loading from
//! the cache takes well under a millisecond. Only files this module wrote are ever deserialized.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use thiserror::Error;
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

use crate::fsutil::{self, Access};

/// How often the epoch advances; the granularity of call deadlines.
pub const TICK: Duration = Duration::from_millis(10);

/// A failure to create the engine or compile a component.
#[derive(Debug, Error)]
pub enum EngineError {
    /// wasmtime refused the engine configuration.
    #[error("cannot create the WebAssembly engine: {0}")]
    Engine(String),
    /// The artifact could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The artifact.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a WebAssembly component (or does not validate).
    #[error("{path} is not a valid WebAssembly component: {reason}")]
    Invalid {
        /// The artifact.
        path: PathBuf,
        /// What wasmtime said.
        reason: String,
    },
    /// The cache directory could not be created.
    #[error("cannot create the compiled-component cache {path}: {source}")]
    Cache {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Creates the engine and starts its epoch ticker (which stops when the engine is dropped).
pub fn new_engine() -> Result<Engine, EngineError> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    let engine = Engine::new(&config).map_err(|e| EngineError::Engine(e.to_string()))?;
    let weak = engine.weak();
    let spawned = std::thread::Builder::new().name("turf-epoch".to_owned()).spawn(move || {
        loop {
            std::thread::sleep(TICK);
            let Some(engine) = weak.upgrade() else { break };
            engine.increment_epoch();
        }
    });
    spawned.map_err(|e| EngineError::Engine(format!("cannot start the epoch ticker: {e}")))?;
    Ok(engine)
}

/// Compiled components on disk, keyed by content.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    /// A cache in `dir`, created 0700 if needed.
    pub fn new(dir: &Path) -> Result<Self, EngineError> {
        fsutil::create_private_dir(dir).map_err(|source| EngineError::Cache { path: dir.to_path_buf(), source })?;
        Ok(Self { dir: dir.to_path_buf() })
    }

    fn entry(&self, engine: &Engine, wasm: &[u8]) -> PathBuf {
        let mut compat = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut compat);
        let digest = hex::encode(Sha256::digest(wasm));
        self.dir.join(format!("{digest}-{:016x}.cwasm", compat.finish()))
    }

    /// Loads the component at `path`, compiling it on a cache miss. Blocking: call it from a
    /// blocking thread.
    pub fn load(&self, engine: &Engine, path: &Path) -> Result<Component, EngineError> {
        let wasm = std::fs::read(path).map_err(|source| EngineError::Read { path: path.to_path_buf(), source })?;
        let entry = self.entry(engine, &wasm);
        if entry.exists() {
            // SAFETY: the cache directory is private to this host (0700) and only ever holds files
            // written below by `precompile_component` of an engine with the same compatibility hash.
            #[allow(unsafe_code)]
            let cached = unsafe { Component::deserialize_file(engine, &entry) };
            match cached {
                Ok(component) => return Ok(component),
                Err(error) => {
                    tracing::warn!(path = %entry.display(), %error, "discarding unusable compiled component")
                }
            }
        }
        let invalid = |e: wasmtime::Error| EngineError::Invalid { path: path.to_path_buf(), reason: format!("{e:#}") };
        let compiled = engine.precompile_component(&wasm).map_err(invalid)?;
        if let Err(error) = fsutil::write_atomic(&entry, &compiled, Access::Private) {
            tracing::warn!(path = %entry.display(), %error, "cannot cache compiled component");
        }
        // SAFETY: `compiled` was produced just above by this engine's `precompile_component`.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, &compiled) }.map_err(invalid)?;
        Ok(component)
    }
}
