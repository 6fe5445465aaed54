//! The management API: how the `turf` CLI talks to a running host.
//!
//! JSON over HTTP/1.1 on the Unix socket `DIR/turf.sock` (owner-only). The server forwards each
//! request as one message to the service that owns the answer; it holds no state itself.
//!
//! - `api`: request and reply types, shared with the client.
//! - `server`: the actix-web app.
//! - `client`: what the CLI uses.
//! - `refusal`: the HTTP status of each service error.
//! - `census`: the cached census of unreadable rows that status and metrics report.
//! - `http`: the loopback HTTP listener: `/metrics` (`metrics`, `exposition`: the Prometheus
//!   text) and the console, the same API under `/api` behind a login (`console`: tokens and
//!   sessions).
//! - `observe`: the routes the console needs beyond the CLI's: sessions and refusals, a thing's
//!   access, log lines, configuration previews, and the test client (`messages`: publish and
//!   live watches over server-sent events).

pub mod api;
mod census;
pub mod client;
pub mod console;
pub mod exposition;
pub mod http;
pub mod messages;
pub mod metrics;
pub mod observe;
pub mod refusal;
pub mod server;
