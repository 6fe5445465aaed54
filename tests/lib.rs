//! The shared end-to-end harness: [`TestHost`] runs a real Turf host (real sockets, real TLS,
//! real WebAssembly components, SQLite on disk) in its own thread and temporary root, and the
//! helpers below connect devices, deploy components and wait for things to happen.
//!
//! Every wait is bounded ([`wait_until`], [`with_timeout`]); nothing sleeps to wait. Components
//! come from `plugins/`, built by `make plugins` (the harness says so when they are missing).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, missing_docs)]

mod brokers;
mod devices;
mod host;
mod http;
pub mod process;
mod waits;

pub use self::brokers::*;
pub use self::devices::*;
pub use self::host::*;
pub use self::http::*;
pub use self::waits::*;
