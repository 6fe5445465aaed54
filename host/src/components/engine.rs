//! The wasmtime engine, its epoch ticker, and the cache of compiled components.
//!
//! One [`Engine`] per host, with epoch interruption on: a plain thread bumps the epoch every
//! [`TICK`] while a guest call is in progress, and the guest yields at each tick, so its
//! wall-clock budget can fire and other work runs between its slices (see `instance`); with no
//! call in progress the thread sleeps until the next one starts.
//!
//! Compiling with Cranelift takes memory the host would keep long after (the allocator does not
//! give it back, and the compiler's code pages stay mapped). So `turf run` compiles in a helper
//! process, its own binary run as `turf compile-component IN OUT` ([`Compiler::Helper`]), which
//! writes the compiled code into the cache and exits; the host only loads it. Hosts embedded
//! in a program without that binary compile in-process ([`Compiler::InProcess`]). Compiling a component with
//! Cranelift takes tens of milliseconds, so compiled code is cached in a host-private directory
//! (0700) keyed by the SHA-256 of the `.wasm` and the engine's compatibility hash; loading from
//! the cache takes well under a millisecond. Only files this module wrote are ever deserialized.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};
use thiserror::Error;
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

pub use super::ticker::{Busy, EpochTicker};
use crate::fsutil::{self, Access};

/// How often the epoch advances; the longest slice a guest runs before it yields.
pub const TICK: Duration = super::ticker::TICK;

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

/// The engine and the ticker that gives calls into it their deadlines.
#[derive(Clone)]
pub struct WasmEngine {
    /// The wasmtime engine.
    pub engine: Engine,
    /// Advances the engine's epoch while a call runs.
    pub ticker: EpochTicker,
}

/// The engine configuration; the compile helper builds the same one, so what it compiles loads
/// here.
fn config() -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config
}

/// Creates the engine and its epoch ticker (which ends when the last handle is dropped).
pub fn new_engine() -> Result<WasmEngine, EngineError> {
    let engine = Engine::new(&config()).map_err(|e| EngineError::Engine(e.to_string()))?;
    let weak = engine.weak();
    let ticker = EpochTicker::start(move || weak.upgrade().map(|engine| engine.increment_epoch()).is_some())
        .map_err(|e| EngineError::Engine(format!("cannot start the epoch ticker: {e}")))?;
    Ok(WasmEngine { engine, ticker })
}

/// Where components are compiled on a cache miss.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Compiler {
    /// In this process, on a blocking thread.
    #[default]
    InProcess,
    /// In a child process: this `turf` binary, run as `turf compile-component IN OUT`.
    Helper(PathBuf),
}

/// Longest a compile helper may run before it is killed.
const HELPER_TIMEOUT: Duration = Duration::from_secs(120);

/// `turf compile-component`: compiles the component at `input` for this host's engine and writes
/// the result to `output` (0600). The compile helper's whole job.
pub fn compile_to_file(input: &Path, output: &Path) -> Result<(), EngineError> {
    let engine = Engine::new(&config()).map_err(|e| EngineError::Engine(e.to_string()))?;
    let wasm = std::fs::read(input).map_err(|source| EngineError::Read { path: input.to_path_buf(), source })?;
    let compiled = engine
        .precompile_component(&wasm)
        .map_err(|e| EngineError::Invalid { path: input.to_path_buf(), reason: format!("{e:#}") })?;
    fsutil::write_atomic(output, &compiled, Access::Private)
        .map_err(|source| EngineError::Cache { path: output.to_path_buf(), source })
}

/// Runs the compile helper `exe` on `input`, waiting at most [`HELPER_TIMEOUT`]. `Ok(false)`:
/// the helper cannot be started (its binary was replaced or removed since the host started).
fn compile_in_helper(exe: &Path, input: &Path, output: &Path) -> Result<bool, EngineError> {
    let failed = |reason: String| EngineError::Invalid { path: input.to_path_buf(), reason };
    let spawned = Command::new(exe)
        .arg("compile-component")
        .arg(input)
        .arg(output)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) => {
            tracing::warn!(exe = %exe.display(), %error, "cannot start the compile helper; compiling in-process");
            return Ok(false);
        }
    };
    // Read what it says while it runs: a full pipe would otherwise stall it until the timeout.
    let stderr = child.stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut pipe, &mut text);
            text
        })
    });
    let deadline = std::time::Instant::now() + HELPER_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(format!("compiling took longer than {HELPER_TIMEOUT:?}")));
            }
            Err(e) => return Err(failed(format!("cannot wait for the compiler: {e}"))),
        }
    };
    let stderr = stderr.and_then(|reader| reader.join().ok()).unwrap_or_default();
    if status.success() {
        return Ok(true);
    }
    let reason = stderr.trim().strip_prefix("error: ").unwrap_or(stderr.trim()).to_owned();
    Err(failed(if reason.is_empty() { format!("the compiler failed ({status})") } else { reason }))
}

/// Compiled components on disk, keyed by content.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
    compiler: Compiler,
}

impl CompileCache {
    /// A cache in `dir`, created 0700 if needed, filled by `compiler`.
    pub fn new(dir: &Path, compiler: Compiler) -> Result<Self, EngineError> {
        fsutil::create_private_dir(dir).map_err(|source| EngineError::Cache { path: dir.to_path_buf(), source })?;
        Ok(Self { dir: dir.to_path_buf(), compiler })
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
            match Self::deserialize(engine, &entry) {
                Ok(component) => return Ok(component),
                Err(error) => {
                    tracing::warn!(path = %entry.display(), %error, "discarding unusable compiled component")
                }
            }
        }
        let invalid = |e: wasmtime::Error| EngineError::Invalid { path: path.to_path_buf(), reason: format!("{e:#}") };
        if let Compiler::Helper(exe) = &self.compiler
            && compile_in_helper(exe, path, &entry)?
        {
            return Self::deserialize(engine, &entry).map_err(invalid);
        }
        let compiled = engine.precompile_component(&wasm).map_err(invalid)?;
        if let Err(error) = fsutil::write_atomic(&entry, &compiled, Access::Private) {
            tracing::warn!(path = %entry.display(), %error, "cannot cache compiled component");
        }
        // SAFETY: `compiled` was produced just above by this engine's `precompile_component`.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, &compiled) }.map_err(invalid)?;
        Ok(component)
    }

    fn deserialize(engine: &Engine, entry: &Path) -> wasmtime::Result<Component> {
        // SAFETY: the cache directory is private to this host (0700) and only ever holds files
        // written by `precompile_component` of an engine with the same configuration and
        // compatibility hash (this process, or its compile helper: the same binary), 0600.
        #[allow(unsafe_code)]
        unsafe {
            Component::deserialize_file(engine, entry)
        }
    }
}
