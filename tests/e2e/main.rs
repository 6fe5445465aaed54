//! End-to-end tests: a real host, real sockets, real TLS, real WebAssembly components.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, missing_docs)]

mod auth;
mod bridge;
mod broker;
mod cli;
mod components;
mod console;
mod deployments;
mod discovery;
mod errors;
mod flow;
mod hot_reload;
mod lifecycle;
mod limits;
mod metrics;
mod mqtt5;
mod observe;
mod sandbox;
mod sdk;
mod shadow_sync;
mod shadows;
mod tutorial;
mod upstream;
