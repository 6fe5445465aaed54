//! Types and paths of the management API (JSON over HTTP/1.1 on `DIR/turf.sock`), shared by the
//! server and the CLI's client. Plain serde data.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::connectivity::ConnectivityInfo;
use crate::deploy::model::ComponentInfo;

/// Path prefix of every endpoint.
pub const PREFIX: &str = "/v1";

/// `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Turf version.
    pub version: String,
    /// Thing name of this core device.
    pub thing_name: String,
    /// Root directory.
    pub root: PathBuf,
    /// Mutual-TLS device listener.
    pub mqtt: SocketAddr,
    /// Plain loopback listener.
    pub plain: Option<SocketAddr>,
    /// Discovery endpoint (HTTPS, mutual TLS).
    pub discovery: SocketAddr,
    /// The local HTTP listener (`/metrics`, the console).
    #[serde(default)]
    pub http: Option<SocketAddr>,
    /// Whether it serves HTTPS.
    #[serde(default)]
    pub http_tls: bool,
    /// Seconds since the epoch when the host started.
    pub started_at: i64,
    /// Components and their states.
    pub components: Vec<ComponentInfo>,
    /// The upstream ("IotCore") connection.
    #[serde(default)]
    pub upstream: Option<crate::upstream::UpstreamStatus>,
    /// The broker's queues and drop counters.
    #[serde(default)]
    pub broker: Option<crate::broker::stats::BrokerStatus>,
    /// The broker's server certificate.
    #[serde(default)]
    pub server_cert: Option<crate::devices::ServerCertStatus>,
    /// Stored rows that cannot be read, per table (empty: none).
    #[serde(default)]
    pub unreadable: Vec<crate::store::UnreadableRows>,
    /// Deployments in the history by state (`SUCCEEDED`, `FAILED`, ...).
    #[serde(default)]
    pub deployments: std::collections::BTreeMap<String, u64>,
    /// What the shadow manager answered.
    #[serde(default)]
    pub shadows: Option<crate::shadow::counts::ShadowCounts>,
    /// Shadow sync with the upstream.
    #[serde(default)]
    pub shadow_sync: Option<crate::shadow::sync::SyncSummary>,
    /// Messages the bridge relayed, per route and direction.
    #[serde(default)]
    pub bridge: Vec<crate::bridge::RouteCount>,
    /// The host process's memory, CPU time and file descriptors.
    #[serde(default)]
    pub process: Option<crate::procstat::ProcessStats>,
    /// Why the database could not be checked for unreadable rows, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub census_error: Option<String>,
}

/// `PUT /v1/connectivity`: a manual endpoint list, or `None` to go back to the IP detector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectivityUpdate {
    /// The endpoints.
    pub manual: Option<Vec<ConnectivityInfo>>,
}

/// `POST /v1/console/token`: a one-time console login token and the URL that uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleToken {
    /// The token (valid for 5 minutes, once).
    pub token: String,
    /// `http://HOST:PORT/login?token=...`, when the HTTP listener runs.
    pub url: Option<String>,
}

/// Body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
}
