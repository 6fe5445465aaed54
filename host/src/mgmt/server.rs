//! The management API server: actix-web on the Unix socket `DIR/turf.sock` (0600).
//!
//! Each handler turns an HTTP request into one message to the owning service and its reply into
//! JSON; it keeps no state of its own. Refuses to start when another host already answers on the
//! socket, and removes a stale socket file left by a crash.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse, HttpServer, web};
use serde::Deserialize;
use serde::Serialize;
use thiserror::Error;

use super::api::{ConnectivityUpdate, ConsoleToken, ErrorBody, StatusReport};
use super::census::CensusCache;
use super::console::ConsoleLogins;
use super::messages::Streams;
use super::refusal::Refusal;
use crate::bridge::{BridgeHandle, GetBridgeCounts};
use crate::broker::{BrokerHandle, GetBrokerStatus};
use crate::components::{Control, ControlAction, RuntimeHandle};
use crate::connectivity::{ConnectivityHandle, GetConnectivity, SetManualConnectivity};
use crate::deploy::model::DeploymentRequest;
use crate::deploy::{
    CountDeployments, CreateDeployment, DeploymentsHandle, GetComponent, GetDeployment, ListComponents,
    ListDeployments, WaitDeployment,
};
use crate::devices::{DeviceRequest, DevicesHandle, GetServerCert};
use crate::layout::RootLayout;
use crate::pubsub::BusHandle;
use crate::shadow::sync::GetSyncSummary;
use crate::shadow::{GetShadowCounts, ShadowHandle, ShadowRequest};
use crate::upstream::{GetUpstreamStatus, UpstreamHandle};

/// Longest a `wait` request may block.
const MAX_WAIT: Duration = Duration::from_secs(600);

/// A failure to start the API.
#[derive(Debug, Error)]
pub enum MgmtError {
    /// A host already runs on this root.
    #[error(
        "another turf host is already running with this root (it answers on {0}); stop it first or use another --root"
    )]
    AlreadyRunning(PathBuf),
    /// The HTTP listener was asked for on an address other than loopback.
    #[error(
        "--http-listen {0}: plain HTTP is served on loopback only (anyone on the network could read the host's figures and a console login); use 127.0.0.1:PORT, or add --http-tls to serve HTTPS with a certificate from the core CA"
    )]
    NotLoopback(std::net::SocketAddr),
    /// The HTTP listener could not be bound.
    #[error("cannot listen on {addr} (--http-listen): {source}")]
    BindHttp {
        /// The address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The socket could not be bound.
    #[error("cannot listen on {path}: {source}")]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The services the API talks to (their handles, built by the supervisor), and the static facts
/// it reports.
#[derive(Clone)]
pub struct MgmtServices {
    /// Device auth: every device operation, the broker certificate.
    pub devices: DevicesHandle,
    /// The endpoint list.
    pub connectivity: ConnectivityHandle,
    /// The shadow manager.
    pub shadows: ShadowHandle,
    /// Deployments and the components they deployed.
    pub deployments: DeploymentsHandle,
    /// Restart or stop a component.
    pub runtime: RuntimeHandle,
    /// The upstream connection.
    pub upstream: UpstreamHandle,
    /// The broker's queues and drop counters.
    pub broker: BrokerHandle,
    /// The bridge's counts per route.
    pub bridge: BridgeHandle,
    /// Static part of the status report (the rest is filled in per request).
    pub status: StatusReport,
    /// The last census of unreadable rows.
    pub census: Arc<CensusCache>,
    /// Console tokens and sessions.
    pub logins: Arc<ConsoleLogins>,
    /// The bus (the console's test client).
    pub bus: BusHandle,
    /// The test client's live watches.
    pub streams: Arc<Streams>,
    /// The test client's limits.
    pub console: super::messages::ConsoleLimits,
}

pub(super) fn error(status: StatusCode, text: impl ToString) -> HttpResponse {
    HttpResponse::build(status).json(ErrorBody { error: text.to_string() })
}

pub(super) fn unavailable(e: MailboxError) -> HttpResponse {
    error(StatusCode::SERVICE_UNAVAILABLE, format!("host service unavailable: {e}"))
}

pub(super) fn json<T: Serialize>(value: T) -> HttpResponse {
    HttpResponse::Ok().json(value)
}

/// Asks a service something it always answers: its answer as JSON, 503 if it is gone.
pub(super) async fn ask<M, T>(service: &Recipient<M>, request: M) -> HttpResponse
where
    M: Message<Result = T> + Send + 'static,
    T: Serialize + Send + 'static,
{
    match service.send(request).await {
        Ok(answer) => json(answer),
        Err(e) => unavailable(e),
    }
}

/// A refusal as its status (mapped in [`super::refusal`]) and its text.
pub(super) fn refused(refusal: &impl Refusal) -> HttpResponse {
    error(refusal.status(), refusal)
}

/// Asks a service something it may refuse: its answer as JSON, a refusal as its status and
/// text, 503 if the service is gone.
pub(super) async fn ask_or_refuse<M, T, E>(service: &Recipient<M>, request: M) -> HttpResponse
where
    M: Message<Result = Result<T, E>> + Send + 'static,
    T: Serialize + Send + 'static,
    E: Refusal + Send + 'static,
{
    match service.send(request).await {
        Ok(Ok(answer)) => json(answer),
        Ok(Err(refusal)) => refused(&refusal),
        Err(e) => unavailable(e),
    }
}

/// Everything `turf status` and `/metrics` report, asked of each service now (the census of
/// unreadable rows too if `fresh`, else at most a minute old).
pub async fn gather(services: &MgmtServices, fresh: bool) -> Result<StatusReport, MailboxError> {
    let components = services.deployments.components.send(ListComponents).await?;
    let upstream = services.upstream.status.send(GetUpstreamStatus).await?;
    let server_cert = services.devices.server_cert.send(GetServerCert).await?;
    let broker = services.broker.status.send(GetBrokerStatus).await?;
    let shadows = services.shadows.counts.send(GetShadowCounts).await?;
    let shadow_sync = services.shadows.sync_summary.send(GetSyncSummary).await?;
    let bridge = services.bridge.counts.send(GetBridgeCounts).await?;
    let deployments = match services.deployments.counts.send(CountDeployments).await? {
        Ok(counts) => counts,
        Err(error) => {
            tracing::warn!(%error, "cannot count deployments for the status report");
            BTreeMap::new()
        }
    };
    let census = services.census.get(RootLayout::new(&services.status.root).database(), fresh).await;
    let (unreadable, census_error) = match census {
        Ok(unreadable) => (unreadable, None),
        Err(error) => (Vec::new(), Some(error)),
    };
    Ok(StatusReport {
        components,
        upstream: Some(upstream),
        broker: Some(broker),
        server_cert,
        unreadable,
        census_error,
        process: Some(crate::procstat::read()),
        deployments,
        shadows: Some(shadows),
        shadow_sync: Some(shadow_sync),
        bridge,
        ..services.status.clone()
    })
}

async fn status(services: web::Data<MgmtServices>) -> HttpResponse {
    match gather(&services, true).await {
        Ok(report) => json(report),
        Err(e) => unavailable(e),
    }
}

async fn devices(services: web::Data<MgmtServices>, body: web::Json<DeviceRequest>) -> HttpResponse {
    ask_or_refuse(&services.devices.requests, body.into_inner()).await
}

async fn shadows(services: web::Data<MgmtServices>, body: web::Json<ShadowRequest>) -> HttpResponse {
    ask_or_refuse(&services.shadows.requests, body.into_inner()).await
}

async fn get_connectivity(services: web::Data<MgmtServices>) -> HttpResponse {
    ask(&services.connectivity.get, GetConnectivity).await
}

async fn set_connectivity(services: web::Data<MgmtServices>, body: web::Json<ConnectivityUpdate>) -> HttpResponse {
    ask_or_refuse(&services.connectivity.set, SetManualConnectivity(body.into_inner().manual)).await
}

async fn create_deployment(services: web::Data<MgmtServices>, body: web::Json<DeploymentRequest>) -> HttpResponse {
    ask_or_refuse(&services.deployments.create, CreateDeployment(body.into_inner())).await
}

async fn list_deployments(services: web::Data<MgmtServices>) -> HttpResponse {
    ask_or_refuse(&services.deployments.list, ListDeployments).await
}

async fn get_deployment(services: web::Data<MgmtServices>, id: web::Path<String>) -> HttpResponse {
    let id = id.into_inner();
    match services.deployments.get.send(GetDeployment { id: id.clone() }).await {
        Ok(Ok(Some(record))) => json(record),
        Ok(Ok(None)) => error(StatusCode::NOT_FOUND, format!("no deployment with id {id}")),
        Ok(Err(refusal)) => refused(&refusal),
        Err(e) => unavailable(e),
    }
}

#[derive(Deserialize)]
struct WaitQuery {
    timeout_secs: Option<u64>,
    /// Progress events already seen: reply as soon as there are more (long poll).
    after: Option<usize>,
}

async fn wait_deployment(
    services: web::Data<MgmtServices>,
    id: web::Path<String>,
    query: web::Query<WaitQuery>,
) -> HttpResponse {
    let id = id.into_inner();
    let timeout = query.timeout_secs.map(Duration::from_secs).unwrap_or(MAX_WAIT).min(MAX_WAIT);
    let waited = tokio::time::timeout(
        timeout,
        services.deployments.wait.send(WaitDeployment { id: id.clone(), after: query.after }),
    )
    .await;
    match waited {
        Ok(Ok(Some(record))) => json(record),
        Ok(Ok(None)) => error(StatusCode::NOT_FOUND, format!("no deployment with id {id}")),
        Ok(Err(e)) => unavailable(e),
        Err(_) => match services.deployments.get.send(GetDeployment { id }).await {
            Ok(Ok(Some(record))) => HttpResponse::build(StatusCode::ACCEPTED).json(record),
            Ok(Ok(None)) => error(StatusCode::NOT_FOUND, "deployment vanished"),
            Ok(Err(refusal)) => refused(&refusal),
            Err(e) => unavailable(e),
        },
    }
}

async fn list_components(services: web::Data<MgmtServices>) -> HttpResponse {
    ask(&services.deployments.components, ListComponents).await
}

async fn get_component(services: web::Data<MgmtServices>, name: web::Path<String>) -> HttpResponse {
    let name = name.into_inner();
    match services.deployments.component.send(GetComponent { name: name.clone() }).await {
        Ok(Some(details)) => json(details),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no component named {name} is deployed")),
        Err(e) => unavailable(e),
    }
}

async fn control_component(
    services: web::Data<MgmtServices>,
    path: web::Path<(String, ControlAction)>,
) -> HttpResponse {
    let (name, action) = path.into_inner();
    match services.runtime.control.send(Control { name, action }).await {
        Ok(Ok(())) => json(serde_json::json!({})),
        Ok(Err(refusal)) => refused(&refusal),
        Err(e) => unavailable(e),
    }
}

/// A one-time console login token (`turf console`), and where to use it.
async fn console_token(services: web::Data<MgmtServices>) -> HttpResponse {
    let token = services.logins.issue_token(Instant::now());
    let scheme = if services.status.http_tls { "https" } else { "http" };
    let url = services.status.http.map(|addr| format!("{scheme}://{addr}/login?token={token}"));
    json(ConsoleToken { token, url })
}

/// Every route of the API, as the Unix socket serves them.
pub(super) fn routes(config: &mut web::ServiceConfig) {
    config.service(api_scope().route("/console/token", web::post().to(console_token)));
}

/// The API as the console serves it under `/api`, behind its login: all but minting login
/// tokens, so a console session (or whoever took its cookie and key) cannot outlive itself.
pub(super) fn console_routes(config: &mut web::ServiceConfig) {
    config.service(api_scope());
}

fn api_scope() -> actix_web::Scope {
    let scope = super::observe::routes(web::scope(super::api::PREFIX));
    scope
        .route("/status", web::get().to(status))
        .route("/devices", web::post().to(devices))
        .route("/shadows", web::post().to(shadows))
        .route("/connectivity", web::get().to(get_connectivity))
        .route("/connectivity", web::put().to(set_connectivity))
        .route("/deployments", web::get().to(list_deployments))
        .route("/deployments", web::post().to(create_deployment))
        .route("/deployments/{id}", web::get().to(get_deployment))
        .route("/deployments/{id}/wait", web::get().to(wait_deployment))
        .route("/components", web::get().to(list_components))
        .route("/components/{name}", web::get().to(get_component))
        .route("/components/{name}/{action}", web::post().to(control_component))
}

/// Request bodies: at most 4 MiB; one that does not parse is a 400 naming what is wrong.
pub(super) fn json_config() -> web::JsonConfig {
    web::JsonConfig::default().limit(4 << 20).error_handler(|err, _| {
        let text = format!("invalid request body: {err}");
        actix_web::error::InternalError::from_response(err, error(StatusCode::BAD_REQUEST, text)).into()
    })
}

/// Fails when another host already answers on `socket`.
pub fn ensure_free(socket: &Path) -> Result<(), MgmtError> {
    if std::os::unix::net::UnixStream::connect(socket).is_ok() {
        return Err(MgmtError::AlreadyRunning(socket.to_path_buf()));
    }
    Ok(())
}

/// Starts serving on `socket`; returns the handle that stops it.
pub fn start(socket: &Path, services: MgmtServices) -> Result<ServerHandle, MgmtError> {
    ensure_free(socket)?;
    let bind = |source| MgmtError::Bind { path: socket.to_path_buf(), source };
    if socket.exists() {
        std::fs::remove_file(socket).map_err(bind)?;
    }
    let data = web::Data::new(services);
    let server = HttpServer::new(move || App::new().app_data(data.clone()).app_data(json_config()).configure(routes))
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .bind_uds(socket)
        .map_err(bind)?
        .run();
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600)).map_err(bind)?;
    let handle = server.handle();
    actix_rt::spawn(async move {
        if let Err(error) = server.await {
            tracing::error!(%error, "management API stopped");
        }
    });
    Ok(handle)
}
