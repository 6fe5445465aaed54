//! The supervisor: the only place that knows every service's concrete type and wires them.
//!
//! Startup order: root directories → CA and server certificate → broker (listening) → discovery →
//! device auth (pushes the authorization snapshot to the broker) → connectivity → pubsub bus →
//! bridge → component runtime and deployments → management API → restoring the last successful
//! deployment (the API answers while components start) → watcher. The host is "ready" when
//! [`start`] returns. Shutdown is the reverse and explicit, each step with a deadline so SIGTERM
//! ends the process within 10 s whatever a component does: stop accepting (API, watcher,
//! deployments, discovery) → components (a call in progress is killed past its deadline) →
//! upstream → broker (listeners and device sessions); the services' actors end with the system.
//! What a step had to abandon is logged.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_web::dev::ServerHandle;
use thiserror::Error;

use crate::bridge::{Bridge, BridgeHandle};
use crate::broker::{Broker, BrokerAddrs, BrokerError, BrokerHandle, BrokerOptions, StopBroker};
use crate::components::{ComponentRuntime, HostServices, RuntimeHandle, StopAll};
use crate::config::HostConfig;
use crate::connectivity::{self, Connectivity, ConnectivityHandle};
use crate::deploy::records::RecordsError;
use crate::deploy::{CloseDeployments, DeploymentServices, Deployments, DeploymentsHandle, Restore};
use crate::devices::ca::{CaError, server_sans};
use crate::devices::registry::RegistryError;
use crate::devices::{DeviceAuth, DeviceBook, DeviceError, DevicePeers, DevicesHandle};
use crate::discovery::{Discovery, DiscoveryError, DynamicTls, StopDiscovery};
use crate::layout::RootLayout;
use crate::memory::Trimmer;
use crate::mgmt::api::StatusReport;
use crate::mgmt::http;
use crate::mgmt::server::{self, MgmtError, MgmtServices};
use crate::pubsub::{BusHandle, PubsubBus};
use crate::shadow::store::ShadowStore;
use crate::shadow::sync::ShadowSync;
use crate::shadow::sync::records::SyncRecords;
use crate::shadow::{ShadowHandle, ShadowManager};
use crate::upstream::{StopUpstream, Upstream, UpstreamHandle, UpstreamStartError};
use crate::watch::{StopWatcher, Watcher};
use crate::{components, fsutil, store};

/// Why the host could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// The root directory could not be prepared.
    #[error("cannot prepare root directory {path}: {source}")]
    Root {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The CA failed.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The broker failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Opening the device book failed.
    #[error(transparent)]
    Devices(#[from] DeviceError),
    /// The discovery endpoint failed.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Deployment records failed.
    #[error(transparent)]
    Records(#[from] RecordsError),
    /// The WebAssembly engine failed.
    #[error(transparent)]
    Engine(#[from] components::engine::EngineError),
    /// The management API failed.
    #[error(transparent)]
    Mgmt(#[from] MgmtError),
    /// The upstream connection could not be set up.
    #[error(transparent)]
    Upstream(#[from] UpstreamStartError),
}

/// Where a running host can be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Mutual-TLS device listener.
    pub mqtt: SocketAddr,
    /// Plain loopback listener, if enabled.
    pub plain: Option<SocketAddr>,
    /// Discovery endpoint.
    pub discovery: SocketAddr,
    /// The local HTTP listener (`/metrics`, the console).
    pub http: SocketAddr,
    /// Whether it serves HTTPS.
    pub http_tls: bool,
    /// Management API socket.
    pub socket: PathBuf,
    /// Root directory.
    pub root: PathBuf,
    /// The core CA certificate (what devices trust).
    pub ca_cert: PathBuf,
    /// The upstream ("IotCore") broker, if configured.
    pub upstream: Option<String>,
}

impl Endpoints {
    /// `http://ADDR` or `https://ADDR`: where the metrics and the console are served.
    pub fn http_url(&self) -> String {
        format!("{}://{}", if self.http_tls { "https" } else { "http" }, self.http)
    }
}

/// A started host.
pub struct Host {
    endpoints: Endpoints,
    broker: BrokerHandle,
    discovery: Addr<Discovery>,
    runtime: RuntimeHandle,
    upstream: UpstreamHandle,
    deployments: DeploymentsHandle,
    watcher: Addr<Watcher>,
    mgmt: ServerHandle,
    http: ServerHandle,
}

/// Deadline of each shutdown step but the components' and the broker's. All steps together
/// take at most 0.5 × 5 + 3.5 + 1.5 = 7.5 s, under the 10 s the process has after SIGTERM.
const STEP_DEADLINE: Duration = Duration::from_millis(500);

/// Runs one shutdown step within `deadline`; logs and returns `None` when it had to be abandoned.
async fn step<T>(what: &str, deadline: Duration, work: impl Future<Output = T>) -> Option<T> {
    let outcome = tokio::time::timeout(deadline, work).await.ok();
    if outcome.is_none() {
        tracing::warn!(
            step = what,
            deadline_ms = deadline.as_millis() as u64,
            "shutdown step abandoned: it did not finish in time"
        );
    }
    outcome
}

impl Host {
    /// Where the host can be reached.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// Stops accepting, stops components, then the upstream link and the broker, each within a
    /// deadline (at most 7.5 s in all). Services end with the system.
    pub async fn shutdown(self) {
        tracing::info!("shutting down");
        let listeners = futures::future::join(self.mgmt.stop(false), self.http.stop(false));
        step("management API and HTTP listener", STEP_DEADLINE, listeners).await;
        let _ = step("watcher", STEP_DEADLINE, self.watcher.send(StopWatcher)).await;
        if let Some(Ok(Some(id))) =
            step("deployments", STEP_DEADLINE, self.deployments.close.send(CloseDeployments)).await
        {
            tracing::warn!(
                deployment = id,
                "shutdown abandons the deployment in progress; it is marked FAILED at the next start"
            );
        }
        let _ = step("discovery", STEP_DEADLINE, self.discovery.send(StopDiscovery)).await;
        let deadline = components::STOP_ALL_TIMEOUT + Duration::from_millis(1500);
        if let Some(Ok(abandoned)) = step("components", deadline, self.runtime.stop_all.send(StopAll)).await
            && !abandoned.is_empty()
        {
            tracing::warn!(components = ?abandoned, "components did not stop in time; their calls were killed");
        }
        let _ = step("upstream", STEP_DEADLINE, self.upstream.stop.send(StopUpstream)).await;
        let _ = step("broker", STEP_DEADLINE * 3, self.broker.stop.send(StopBroker)).await;
        let _ = std::fs::remove_file(&self.endpoints.socket);
        tracing::info!("stopped");
    }
}

fn prepare_root(config: &HostConfig) -> Result<(), StartError> {
    let layout = config.layout();
    server::ensure_free(&layout.socket())?;
    let root_err = |path: PathBuf| move |source| StartError::Root { path, source };
    fsutil::create_private_dir(layout.root()).map_err(root_err(layout.root().to_path_buf()))?;
    for dir in [layout.logs_dir(), layout.recipes_dir(), layout.plugins_dir()] {
        std::fs::create_dir_all(&dir).map_err(root_err(dir.clone()))?;
    }
    store::open(&layout.database())
        .map_err(|e| StartError::Root { path: layout.database(), source: std::io::Error::other(e.to_string()) })?;
    Ok(())
}

/// The services that face devices: broker, discovery, device auth, connectivity.
struct Edge {
    broker: BrokerHandle,
    discovery: Addr<Discovery>,
    devices: DevicesHandle,
    connectivity: ConnectivityHandle,
    addrs: BrokerAddrs,
    discovery_addr: SocketAddr,
    ca_cert: PathBuf,
    /// The server certificate discovery serves (reloaded in place), for the HTTP listener.
    tls: Arc<DynamicTls>,
}

/// Starts the broker (listening), discovery, device auth and connectivity. The broker's server
/// certificate names the stored manual endpoints, if any, from the start.
async fn start_edge(config: &HostConfig, trimmer: &Trimmer) -> Result<Edge, StartError> {
    let layout = config.layout();
    let book = DeviceBook::open(&layout)?;
    let connectivity_db = store::open(&layout.database())?;
    let manual = connectivity::load_manual(&connectivity_db);
    let sans = server_sans(manual.iter().flatten().flatten().map(|c| c.host_address.as_str()));
    let (tls, _) = book.ca().ensure_server_cert(&config.thing_name, &sans)?;
    book.write_client_roots()?;
    let ca_cert = book.ca().cert_path();
    let (broker, addrs) = Broker::start(&BrokerOptions {
        mqtt_listen: config.mqtt_listen,
        plain_listen: config.plain_listen,
        tls: tls.clone(),
        limits: config.broker,
        trimmer: trimmer.clone(),
        database: layout.database(),
    })
    .await?;
    let broker = BrokerHandle::of(&broker.start());
    // Discovery asks device auth, which reloads discovery's TLS: one of them starts first.
    let devices_ctx = Context::<DeviceAuth>::new();
    let devices = DevicesHandle::of(&devices_ctx.address());
    let (discovery, discovery_addr) = Discovery::start(config.discovery_listen, &tls, devices.discover.clone())?;
    let discovery_tls = discovery.tls();
    let discovery = discovery.start();
    let outputs =
        DevicePeers { auth: broker.auth.clone(), tls: vec![broker.tls.clone(), discovery.clone().recipient()] };
    devices_ctx.run(DeviceAuth::new(book, config.thing_name.clone(), outputs));
    let connectivity = Connectivity::new(connectivity_db, manual, addrs.mqtt, devices.connectivity.clone()).start();
    let connectivity = ConnectivityHandle::of(&connectivity);
    Ok(Edge { broker, discovery, devices, connectivity, addrs, discovery_addr, ca_cert, tls: discovery_tls })
}

/// The services behind the edge: bus, shadows, upstream, bridge, components, deployments.
struct Core {
    bus: BusHandle,
    bridge: BridgeHandle,
    shadows: ShadowHandle,
    upstream: UpstreamHandle,
    runtime: RuntimeHandle,
    deployments: DeploymentsHandle,
}

/// Starts the shadow manager and its sync, on a thread of their own (every update is fsynced).
fn start_shadows(config: &HostConfig, bus: &BusHandle, upstream: &UpstreamHandle) -> Result<ShadowHandle, StartError> {
    let layout = config.layout();
    let store = ShadowStore::open(&layout.database())?;
    let records = SyncRecords::open(&layout.database())?;
    let arbiter = Arbiter::new().handle();
    let (subscribe, publish) = (bus.subscribe.clone(), bus.publish.clone());
    let manager = ShadowManager::start_in_arbiter(&arbiter, move |_| ShadowManager::new(store, subscribe, publish));
    let (local, list_local) = (manager.clone().recipient(), manager.clone().recipient());
    let (thing, bus, upstream) = (config.thing_name.clone(), bus.clone(), upstream.clone());
    // Its own thread: sync's record reads and merges for cloud traffic never delay a local request.
    let sync = ShadowSync::start_in_arbiter(&Arbiter::new().handle(), move |_| {
        ShadowSync::new(thing, records, local, list_local, bus, upstream)
    });
    Ok(ShadowHandle::of(&manager, &sync))
}

/// Starts the bus, the shadow manager and shadow sync (each on its own thread), the upstream link, the bridge, the
/// component runtime and the deployment service.
fn start_core(config: &HostConfig, edge: &Edge, trimmer: &Trimmer) -> Result<Core, StartError> {
    let layout = config.layout();
    let bus = BusHandle::of(&PubsubBus::new().start());
    let upstream_pool = crate::flow::CreditPool::new(config.broker.host_queue_bytes);
    let upstream = Upstream::new(config.upstream.clone(), &layout.database(), upstream_pool)?.start();
    let upstream = UpstreamHandle::of(&upstream, config.upstream.is_some());
    let shadows = start_shadows(config, &bus, &upstream)?;
    let bridge = BridgeHandle::of(&Bridge::new(edge.broker.clone(), bus.clone(), upstream.clone()).start());

    let deployments_ctx = Context::<Deployments>::new();
    let services = HostServices {
        bus: bus.clone(),
        shadows: shadows.clone(),
        upstream: upstream.clone(),
        config_store: deployments_ctx.address().recipient(),
        status: deployments_ctx.address().recipient(),
    };
    let runtime =
        ComponentRuntime::new(layout.clone(), config.component_limits.clone(), config.compiler.clone(), services)?;
    let runtime = RuntimeHandle::of(&runtime.start());
    let targets = DeploymentServices {
        runtime: runtime.clone(),
        bridge: bridge.clone(),
        devices: edge.devices.clone(),
        connectivity: edge.connectivity.clone(),
        shadows: shadows.clone(),
        trimmer: trimmer.clone(),
    };
    let deployments = deployments_ctx.run(Deployments::new(layout, config.thing_name.clone(), targets)?);
    Ok(Core { bus, bridge, shadows, upstream, runtime, deployments: DeploymentsHandle::of(&deployments) })
}

/// Starts every service; must be called inside an actix system.
pub async fn start(config: HostConfig) -> Result<Host, StartError> {
    let layout = config.layout();
    prepare_root(&config)?;
    let trimmer = Trimmer::new();
    let edge = start_edge(&config, &trimmer).await?;
    let core = start_core(&config, &edge, &trimmer)?;
    let mut services = mgmt_services(&config, &layout, &edge, &core);
    let tls = config.http_tls.then(|| Arc::clone(&edge.tls));
    let (http, http_addr) = http::start(config.http_listen, tls, services.clone())?;
    services.status.http = Some(http_addr);
    services.status.http_tls = config.http_tls;
    let endpoints = Endpoints {
        mqtt: edge.addrs.mqtt,
        plain: edge.addrs.plain,
        discovery: edge.discovery_addr,
        http: http_addr,
        http_tls: config.http_tls,
        socket: layout.socket(),
        root: layout.root().to_path_buf(),
        ca_cert: edge.ca_cert.clone(),
        upstream: config.upstream.as_ref().map(|u| u.endpoint.to_string()),
    };
    let mgmt = server::start(&layout.socket(), services)?;
    // The management API already answers (`turf component list` shows components starting);
    // each component's start is bounded by its init budget.
    if core.deployments.restore.send(Restore).await.is_err() {
        tracing::error!("deployment service stopped while restoring");
    }
    let watcher = Watcher::new(layout.clone(), config.watch.clone(), core.deployments.clone()).start();
    tracing::info!(mqtt = %endpoints.mqtt, plain = ?endpoints.plain, discovery = %endpoints.discovery, "turf ready");
    // Start-up's one-off work (certificates, database, restoring components) is over.
    trimmer.hint(crate::memory::Burst::OneOff);
    let Edge { broker, discovery, .. } = edge;
    let Core { runtime, upstream, deployments, .. } = core;
    Ok(Host { endpoints, broker, discovery, runtime, upstream, deployments, watcher, mgmt, http })
}

/// What the management API talks to, and the facts of this host it reports.
fn mgmt_services(config: &HostConfig, layout: &RootLayout, edge: &Edge, core: &Core) -> MgmtServices {
    let status = StatusReport {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        thing_name: config.thing_name.clone(),
        root: layout.root().to_path_buf(),
        mqtt: edge.addrs.mqtt,
        plain: edge.addrs.plain,
        discovery: edge.discovery_addr,
        http: None,
        http_tls: false,
        started_at: store::now_secs(),
        components: Vec::new(),
        upstream: None,
        broker: None,
        server_cert: None,
        unreadable: Vec::new(),
        census_error: None,
        process: None,
        deployments: std::collections::BTreeMap::new(),
        shadows: None,
        shadow_sync: None,
        bridge: Vec::new(),
    };
    MgmtServices {
        devices: edge.devices.clone(),
        connectivity: edge.connectivity.clone(),
        shadows: core.shadows.clone(),
        deployments: core.deployments.clone(),
        runtime: core.runtime.clone(),
        upstream: core.upstream.clone(),
        broker: edge.broker.clone(),
        bridge: core.bridge.clone(),
        status,
        census: Arc::default(),
        logins: Arc::default(),
        bus: core.bus.clone(),
        streams: Arc::default(),
        console: config.console,
    }
}
