//! The host log: `logs/turf.log` under the root (rotated by size, see `rotate`), and stderr.
//!
//! `tracing` events from Turf at the requested level; dependencies (rmqtt, actix, wasmtime) at
//! `warn`, so a refused TLS handshake still shows. A full `RUST_LOG`-style directive string is
//! accepted too, and `RUST_LOG` itself when `--log-level` is not given. At `debug`, one device
//! message can be followed through the host: its `message{from, topic}` span is entered by the
//! broker's tap, the bridge and the bus, and a component's call is a `component{name, export}`
//! span inside it; each deployment's lines carry `deployment{id}`. Component output never goes here: it has its own files (see
//! `components::log`).

use std::path::Path;

use crate::rotate::RotatingFile;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Lines queued for the log file's writer thread. The queue is allocated whole up front
/// (tracing-appender's default of 128,000 lines took 4 MB of an idle host's memory); when it
/// is full, the logging thread waits for the writer instead of dropping lines.
const LOG_QUEUE_LINES: usize = 4096;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The level or directive string is invalid.
    #[error("--log-level {level:?} is not a level (error, warn, info, debug, trace) or a filter directive: {reason}")]
    BadLevel {
        /// What was given.
        level: String,
        /// What the parser said.
        reason: String,
    },
    /// The log directory or file could not be created.
    #[error("cannot create log file {path}: {source}")]
    Dir {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A global subscriber was already installed.
    #[error("logging was already initialised: {0}")]
    Init(String),
}

/// `--log-level` when it is not given.
pub const DEFAULT_LEVEL: &str = "info";

fn filter(level: &str) -> Result<EnvFilter, LoggingError> {
    let directives = match level {
        "error" | "warn" | "info" | "debug" | "trace" => format!("warn,turf_host={level},turf={level}"),
        custom => custom.to_owned(),
    };
    EnvFilter::try_new(&directives)
        .map_err(|e| LoggingError::BadLevel { level: level.to_owned(), reason: e.to_string() })
}

/// Sends logs to `logs_dir/turf.log` and stderr. Keep the guard alive until exit so the file
/// writer flushes.
pub fn init(logs_dir: &Path, level: &str) -> Result<WorkerGuard, LoggingError> {
    // `RUST_LOG` (e.g. `turf=debug`) stands in for a `--log-level` left at its default.
    let from_env = std::env::var("RUST_LOG").ok().filter(|v| !v.trim().is_empty() && level == DEFAULT_LEVEL);
    let filter = filter(from_env.as_deref().unwrap_or(level))?;
    std::fs::create_dir_all(logs_dir).map_err(|source| LoggingError::Dir { path: logs_dir.to_path_buf(), source })?;
    let path = logs_dir.join("turf.log");
    let file = RotatingFile::open(&path).map_err(|source| LoggingError::Dir { path, source })?;
    let (file, guard) = NonBlockingBuilder::default().buffered_lines_limit(LOG_QUEUE_LINES).lossy(false).finish(file);
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .compact(),
        )
        .with(tracing_subscriber::fmt::layer().with_writer(file).with_ansi(false))
        .try_init()
        .map_err(|e| LoggingError::Init(e.to_string()))?;
    Ok(guard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_directives_parse_and_garbage_does_not() {
        assert!(filter("info").is_ok());
        assert!(filter("turf_host::broker=trace,warn").is_ok());
        assert!(matches!(filter("loud=="), Err(LoggingError::BadLevel { .. })));
    }
}
