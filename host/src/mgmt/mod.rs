//! The management API: how the `turf` CLI talks to a running host.
//!
//! JSON over HTTP/1.1 on the Unix socket `DIR/turf.sock` (owner-only). The server forwards each
//! request as one message to the service that owns the answer; it holds no state itself.
//!
//! - `api`: request and reply types, shared with the client.
//! - `server`: the actix-web app.
//! - `client`: what the CLI uses.

pub mod api;
pub mod client;
pub mod exposition;
pub mod http;
pub mod metrics;
pub mod refusal;
pub mod server;
