//! The management API client the `turf` CLI uses: HTTP/1.1 over the host's Unix socket.
//!
//! Must run inside an actix system (the CLI's `main` provides one). Errors say whether the host
//! is not running, refused the request (with its reason), or answered something unreadable.

use std::path::{Path, PathBuf};
use std::time::Duration;

use actix_service::fn_service;
use actix_tls::connect::{ConnectError, ConnectInfo, Connection};
use awc::http::Uri;
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

use super::api::{ConnectivityUpdate, ConsoleToken, ErrorBody, PREFIX, StatusReport};
use crate::components::ControlAction;
use crate::connectivity::{ConnectivityInfo, ConnectivityReport};
use crate::deploy::model::{ComponentDetails, ComponentInfo, DeploymentRecord, DeploymentRequest};
use crate::devices::{DeviceReply, DeviceRequest};
use crate::shadow::{ShadowReply, ShadowRequest};

/// A failed API call.
#[derive(Debug, Error)]
pub enum ClientError {
    /// Nothing answers on the socket.
    #[error(
        "no turf host is running with root {root} (no answer on {socket}); start one with `turf run --root {root}`"
    )]
    NotRunning {
        /// The root directory.
        root: String,
        /// The socket path.
        socket: PathBuf,
    },
    /// The request could not be sent or the reply not read.
    #[error("talking to the host failed: {0}")]
    Transport(String),
    /// The host refused the request: the HTTP status and the service's own text.
    #[error("{error}")]
    Refused {
        /// The HTTP status (see `mgmt::refusal` for which error gets which).
        status: u16,
        /// What the service said.
        error: String,
    },
}

/// A client bound to one host's socket.
pub struct Client {
    http: awc::Client,
    socket: PathBuf,
}

impl Client {
    /// A client for the host listening on `socket`.
    pub fn new(socket: &Path) -> Self {
        let path = socket.to_path_buf();
        let connector = fn_service(move |request: ConnectInfo<Uri>| {
            let path = path.clone();
            async move {
                let stream = actix_rt::net::UnixStream::connect(&path).await.map_err(ConnectError::Io)?;
                Ok::<_, ConnectError>(Connection::new(request.request().clone(), stream))
            }
        });
        let http = awc::Client::builder()
            .connector(awc::Connector::new().connector(connector))
            .timeout(Duration::from_secs(30))
            .finish();
        Self { http, socket: socket.to_path_buf() }
    }

    /// True when a host answers on `socket`.
    pub fn is_running(socket: &Path) -> bool {
        std::os::unix::net::UnixStream::connect(socket).is_ok()
    }

    fn url(path: &str) -> String {
        format!("http://turf.local{PREFIX}{path}")
    }

    fn not_running(&self) -> ClientError {
        let root = self.socket.parent().map(|p| p.display().to_string()).unwrap_or_default();
        ClientError::NotRunning { root, socket: self.socket.clone() }
    }

    async fn read<T: DeserializeOwned>(
        &self,
        sent: Result<
            awc::ClientResponse<impl futures::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin>,
            awc::error::SendRequestError,
        >,
    ) -> Result<(u16, T), ClientError> {
        let mut response = sent.map_err(|e| match e {
            awc::error::SendRequestError::Connect(_) => self.not_running(),
            other => ClientError::Transport(other.to_string()),
        })?;
        let status = response.status();
        let body = response.body().limit(64 << 20).await.map_err(|e| ClientError::Transport(e.to_string()))?;
        if !status.is_success() {
            let text = serde_json::from_slice::<ErrorBody>(&body)
                .map(|b| b.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
            return Err(ClientError::Refused { status: status.as_u16(), error: text });
        }
        let value = serde_json::from_slice(&body)
            .map_err(|e| ClientError::Transport(format!("unreadable reply ({status}): {e}")))?;
        Ok((status.as_u16(), value))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, timeout: Duration) -> Result<(u16, T), ClientError> {
        let sent = self.http.get(Self::url(path)).timeout(timeout).send().await;
        self.read(sent).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        let sent = self.http.post(Self::url(path)).send_json(body).await;
        Ok(self.read(sent).await?.1)
    }

    /// A one-time console login token.
    pub async fn console_token(&self) -> Result<ConsoleToken, ClientError> {
        self.post("/console/token", &serde_json::json!({})).await
    }

    /// The host's status and components.
    pub async fn status(&self) -> Result<StatusReport, ClientError> {
        Ok(self.get("/status", Duration::from_secs(30)).await?.1)
    }

    /// Performs a device operation.
    pub async fn device(&self, request: &DeviceRequest) -> Result<DeviceReply, ClientError> {
        self.post("/devices", request).await
    }

    /// Performs a shadow operation.
    pub async fn shadow(&self, request: &ShadowRequest) -> Result<ShadowReply, ClientError> {
        self.post("/shadows", request).await
    }

    /// The current connectivity.
    pub async fn connectivity(&self) -> Result<ConnectivityReport, ClientError> {
        Ok(self.get("/connectivity", Duration::from_secs(30)).await?.1)
    }

    /// Sets (or with `None` clears) the manual connectivity.
    pub async fn set_connectivity(
        &self,
        manual: Option<Vec<ConnectivityInfo>>,
    ) -> Result<ConnectivityReport, ClientError> {
        let sent = self.http.put(Self::url("/connectivity")).send_json(&ConnectivityUpdate { manual }).await;
        Ok(self.read(sent).await?.1)
    }

    /// Submits a deployment.
    pub async fn create_deployment(&self, request: &DeploymentRequest) -> Result<DeploymentRecord, ClientError> {
        self.post("/deployments", request).await
    }

    /// One deployment.
    pub async fn deployment(&self, id: &str) -> Result<DeploymentRecord, ClientError> {
        Ok(self.get(&format!("/deployments/{id}"), Duration::from_secs(30)).await?.1)
    }

    /// Recent deployments, newest first.
    pub async fn deployments(&self) -> Result<Vec<DeploymentRecord>, ClientError> {
        Ok(self.get("/deployments", Duration::from_secs(30)).await?.1)
    }

    /// Waits up to `timeout` for a deployment to finish, or with `after` for it to have more
    /// than that many progress events; the record tells which happened.
    pub async fn wait_deployment(
        &self,
        id: &str,
        timeout: Duration,
        after: Option<usize>,
    ) -> Result<DeploymentRecord, ClientError> {
        let mut path = format!("/deployments/{id}/wait?timeout_secs={}", timeout.as_secs().max(1));
        if let Some(after) = after {
            path.push_str(&format!("&after={after}"));
        }
        Ok(self.get(&path, timeout + Duration::from_secs(10)).await?.1)
    }

    /// Every component with its state.
    pub async fn components(&self) -> Result<Vec<ComponentInfo>, ClientError> {
        Ok(self.get("/components", Duration::from_secs(30)).await?.1)
    }

    /// One component in detail.
    pub async fn component(&self, name: &str) -> Result<ComponentDetails, ClientError> {
        Ok(self.get(&format!("/components/{name}"), Duration::from_secs(30)).await?.1)
    }

    /// Restarts or stops a component; a restart replies once its `init` finished.
    pub async fn control(&self, name: &str, action: ControlAction) -> Result<(), ClientError> {
        let action = match action {
            ControlAction::Restart => "restart",
            ControlAction::Stop => "stop",
        };
        let sent = self
            .http
            .post(Self::url(&format!("/components/{name}/{action}")))
            .timeout(Duration::from_secs(120))
            .send()
            .await;
        self.read::<serde_json::Value>(sent).await.map(|_| ())
    }

    /// Where shadow sync stands (one thing's shadows, or all).
    pub async fn sync_status(&self, thing: Option<&str>) -> Result<crate::shadow::sync::SyncStatus, ClientError> {
        let path = match thing {
            Some(thing) => format!("/shadows/sync?thing={thing}"),
            None => "/shadows/sync".to_owned(),
        };
        Ok(self.get(&path, Duration::from_secs(30)).await?.1)
    }

    /// The broker's sessions and its latest refusals.
    pub async fn clients(&self) -> Result<crate::broker::clients::ClientsReport, ClientError> {
        Ok(self.get("/clients", Duration::from_secs(30)).await?.1)
    }

    /// The device groups that select `thing` and what they allow it.
    pub async fn access(&self, thing: &str) -> Result<crate::devices::ThingAccess, ClientError> {
        Ok(self.get(&format!("/devices/{thing}/access"), Duration::from_secs(30)).await?.1)
    }

    /// Publishes a test message on the bus, to devices or upstream.
    pub async fn publish(&self, message: &crate::mgmt::messages::TestPublish) -> Result<(), ClientError> {
        self.post::<_, serde_json::Value>("/messages", message).await.map(|_| ())
    }

    /// A component's last `lines` log lines.
    pub async fn log_tail(&self, name: &str, lines: usize) -> Result<crate::mgmt::observe::LogTail, ClientError> {
        Ok(self.get(&format!("/components/{name}/logs?lines={lines}"), Duration::from_secs(30)).await?.1)
    }

    /// The configuration `update` would give component `name`, without deploying it.
    pub async fn preview(
        &self,
        name: &str,
        update: &crate::deploy::config_update::ConfigUpdate,
    ) -> Result<crate::mgmt::observe::ConfigPreview, ClientError> {
        self.post(&format!("/components/{name}/preview"), update).await
    }
}
