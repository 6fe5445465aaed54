//! The shared end-to-end harness: [`TestHost`] runs a real Turf host (real sockets, real TLS,
//! real WebAssembly components, SQLite on disk) in its own thread and temporary root, and the
//! helpers below connect devices, deploy components and wait for things to happen.
//!
//! Every wait is bounded ([`wait_until`], [`with_timeout`]); nothing sleeps to wait. Components
//! come from `plugins/`, built by `make plugins` (the harness says so when they are missing).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, missing_docs)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::mpsc;
use turf_host::deploy::model::{DeploymentRecord, DeploymentRequest};
use turf_host::mgmt::client::Client;
use turf_host::upstream::config::{Endpoint, MqttVersion, UpstreamConfig};
use turf_host::watch::WatchConfig;
use turf_host::{Endpoints, HostConfig};

pub mod process;

/// Default bound on every wait in the suite.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Polls `condition` every 20 ms until it holds or `timeout` passes.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut condition: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition().await {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Awaits `future` for at most `timeout`.
pub async fn with_timeout<T>(timeout: Duration, what: &str, future: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(timeout, future).await.map_err(|_| anyhow!("timed out after {timeout:?}: {what}"))
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A plugin built by `make plugins` (`target/wasm32-wasip2/plugin/<crate>.wasm`).
pub fn plugin_wasm(crate_file: &str) -> PathBuf {
    let path = workspace().join("target/wasm32-wasip2/plugin").join(format!("{crate_file}.wasm"));
    assert!(path.is_file(), "{} is missing: run `make plugins` (or `make test`) first", path.display());
    path
}

/// The `turf` binary cargo built next to this test.
pub fn turf_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join("turf");
    assert!(bin.is_file(), "{} is missing: build it with `cargo build -p turf-host`", bin.display());
    bin
}

/// A running host in a temporary root.
pub struct TestHost {
    pub dir: Arc<TempDir>,
    pub root: PathBuf,
    pub endpoints: Endpoints,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::sync::oneshot::Receiver<()>>,
}

/// How to start a [`TestHost`].
pub struct HostOptions {
    pub plain: bool,
    pub root: Option<(Arc<TempDir>, PathBuf)>,
    pub mqtt_listen: SocketAddr,
    /// Auth configuration deployed once the host is up (`None`: leave it unconfigured).
    pub auth: Option<Value>,
    /// Folders to hot-reload from.
    pub watch: WatchConfig,
    /// The upstream ("IotCore") broker.
    pub upstream: Option<UpstreamConfig>,
    /// Queue limits of the broker and the host's message path.
    pub broker: turf_host::broker::BrokerLimits,
}

impl Default for HostOptions {
    fn default() -> Self {
        Self {
            plain: true,
            root: None,
            mqtt_listen: "127.0.0.1:0".parse().unwrap(),
            auth: Some(permissive_auth()),
            watch: WatchConfig::default(),
            upstream: None,
            broker: turf_host::broker::BrokerLimits::default(),
        }
    }
}

/// Device groups that let every thing do everything (tests that are not about policies).
pub fn permissive_auth() -> Value {
    json!({"deviceGroups": {
        "formatVersion": "2021-03-05",
        "definitions": {"Everyone": {"selectionRule": "thingName: *", "policyName": "AllowAll"}},
        "policies": {"AllowAll": {"All": {"operations": ["*"], "resources": ["*"]}}}
    }})
}

/// The tutorial's step-2 Auth configuration, from `recipes/tutorial/`.
pub fn tutorial_auth() -> Value {
    let path = workspace().join("recipes/tutorial/step2-client-device-auth.json");
    let document: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    document["aws.greengrass.clientdevices.Auth"]["MERGE"].clone()
}

/// A deployment that merges `config` into the Auth component.
pub fn auth_update(config: Value) -> DeploymentRequest {
    let update =
        turf_host::deploy::config_update::ConfigUpdate { merge: Some(config), reset: vec!["/deviceGroups".to_owned()] };
    DeploymentRequest {
        update_config: [("aws.greengrass.clientdevices.Auth".to_owned(), update)].into_iter().collect(),
        ..DeploymentRequest::default()
    }
}

/// A deployment that merges `merge` into `component`'s configuration.
pub fn merge_update(component: &str, merge: Value) -> DeploymentRequest {
    let update = turf_host::deploy::config_update::ConfigUpdate { merge: Some(merge), reset: Vec::new() };
    DeploymentRequest {
        update_config: [(component.to_owned(), update)].into_iter().collect(),
        ..DeploymentRequest::default()
    }
}

impl TestHost {
    /// A host with both listeners on loopback ports chosen by the OS.
    pub async fn start() -> Result<Self> {
        Self::start_with(HostOptions::default()).await
    }

    /// A host configured by `options`.
    pub async fn start_with(options: HostOptions) -> Result<Self> {
        let (dir, root) = match options.root {
            Some(existing) => existing,
            None => {
                let dir = Arc::new(tempfile::tempdir()?);
                let root = dir.path().join("root");
                (dir, root)
            }
        };
        let mut config = HostConfig::new(&root);
        config.mqtt_listen = options.mqtt_listen;
        config.plain_listen = options.plain.then(|| "127.0.0.1:0".parse().unwrap());
        config.discovery_listen = "127.0.0.1:0".parse().unwrap();
        config.watch = options.watch;
        config.upstream = options.upstream;
        config.broker = options.broker;
        let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Result<Endpoints, String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new().name("turf-test-host".to_owned()).spawn(move || {
            let system = actix_rt::System::new();
            let ready = ready_tx.clone();
            let result = system.block_on(turf_host::run(
                config,
                move |endpoints| {
                    let _ = ready.send(Ok(endpoints.clone()));
                },
                async move {
                    let _ = stop_rx.await;
                },
            ));
            if let Err(error) = result {
                let _ = ready_tx.send(Err(error.to_string()));
            }
            let _ = done_tx.send(());
        })?;
        let endpoints = with_timeout(TIMEOUT, "host start", ready_rx.recv())
            .await?
            .ok_or_else(|| anyhow!("host thread ended before it was ready"))?
            .map_err(|e| anyhow!("host failed to start: {e}"))?;
        let host = Self { dir, root, endpoints, stop: Some(stop_tx), done: Some(done_rx) };
        if let Some(auth) = options.auth {
            let record = host.deploy(&auth_update(auth)).await?;
            if record.state != turf_host::deploy::model::DeploymentState::Succeeded {
                bail!("auth deployment failed: {:?}", record.error);
            }
        }
        Ok(host)
    }

    /// Stops the host and waits for its thread to finish.
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            with_timeout(TIMEOUT, "host shutdown", done).await?.context("host thread panicked")?;
        }
        Ok(())
    }

    /// Stops the host and returns its root so a new host can start on it.
    pub async fn restart(self) -> Result<Self> {
        self.restart_after(|_| Ok(())).await
    }

    /// Stops the host, lets `change` edit its root (e.g. its database) while it is stopped, and
    /// starts a new host on it.
    pub async fn restart_after(self, change: impl FnOnce(&Path) -> Result<()>) -> Result<Self> {
        let (dir, root) = (Arc::clone(&self.dir), self.root.clone());
        self.shutdown().await?;
        change(&root)?;
        Self::start_with(HostOptions { root: Some((dir, root)), auth: None, ..HostOptions::default() }).await
    }

    /// A management client (call inside an actix system, e.g. `#[actix_rt::test]`).
    pub fn client(&self) -> Client {
        Client::new(&self.endpoints.socket)
    }

    /// A scratch folder inside the test's temporary directory.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(&path).unwrap();
        path
    }

    /// Runs the `turf` binary against this host's root.
    pub fn turf(&self, args: &[&str]) -> Output {
        Command::new(turf_bin()).arg("--root").arg(&self.root).args(args).output().unwrap()
    }

    /// Runs the `turf` binary and fails unless it succeeds; returns its stdout.
    pub fn turf_ok(&self, args: &[&str]) -> Result<String> {
        let output = self.turf(args);
        if !output.status.success() {
            bail!(
                "turf {} failed:\n{}\n{}",
                args.join(" "),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Adds a device through the CLI and returns its certificate folder.
    pub fn add_device(&self, thing: &str) -> Result<PathBuf> {
        let out = self.scratch(&format!("certs-{thing}"));
        let output = self.turf(&["device", "add", thing, "--out", out.to_str().unwrap()]);
        if !output.status.success() {
            bail!("turf device add failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(out)
    }

    /// Submits a deployment and waits for its outcome.
    pub async fn deploy(&self, request: &DeploymentRequest) -> Result<DeploymentRecord> {
        let client = self.client();
        let record = client.create_deployment(request).await?;
        Ok(client.wait_deployment(&record.id, TIMEOUT, None).await?)
    }

    /// Deploys `plugins/test-probe` as component `name` 1.0.0 with `config` as its default
    /// configuration, fails unless the deployment succeeds, and waits until the probe is ready.
    pub async fn deploy_probe(&self, name: &str, config: Value) -> Result<()> {
        let stage = self.scratch(&format!("stage-{name}"));
        let record = self.deploy(&stage_component(&stage, name, "1.0.0", &plugin_wasm("test_probe"), config)).await?;
        anyhow::ensure!(
            record.state == turf_host::deploy::model::DeploymentState::Succeeded,
            "deploying {name} failed: {:?}",
            record.error
        );
        self.wait_for_log(name, "probe ready", 1).await
    }

    /// Deploys the tutorial's step-5 bridge routes that carry shadow topics between devices
    /// (LocalMqtt) and the shadow manager (Pubsub); fails unless the deployment succeeds.
    pub async fn deploy_shadow_routes(&self) -> Result<()> {
        let routes = [
            ("ShadowsLocalMqttToPubsub", "$aws/things/+/shadow/#", "LocalMqtt", "Pubsub"),
            ("ShadowsPubsubToLocalMqtt", "$aws/things/+/shadow/#", "Pubsub", "LocalMqtt"),
        ];
        let record = self.deploy(&bridge_update(&routes)).await?;
        anyhow::ensure!(
            record.state == turf_host::deploy::model::DeploymentState::Succeeded,
            "deploying the shadow routes failed: {:?}",
            record.error
        );
        Ok(())
    }

    /// The text of a component's log (empty when it does not exist yet).
    pub fn log(&self, component: &str) -> String {
        std::fs::read_to_string(self.root.join("logs").join(format!("{component}.log"))).unwrap_or_default()
    }

    /// Waits until a component's log has at least `count` lines containing `needle`.
    pub async fn wait_for_log(&self, component: &str, needle: &str, count: usize) -> Result<()> {
        let what = format!("{count} × {needle:?} in the log of {component}");
        let result =
            wait_until(TIMEOUT, &what, || async { self.log(component).matches(needle).count() >= count }).await;
        result.with_context(|| format!("log of {component}:\n{}", self.log(component)))
    }

    /// The TLS device address as `localhost:<port>`.
    pub fn broker(&self) -> String {
        format!("localhost:{}", self.endpoints.mqtt.port())
    }
}

/// A host with the tutorial's Auth policy ([`tutorial_auth`]) and MyClientDevice1 registered,
/// associated and discoverable at the TLS listener; returns it with the device's certificate
/// folder.
pub async fn tutorial_host() -> Result<(TestHost, PathBuf)> {
    let host = TestHost::start_with(HostOptions { auth: Some(tutorial_auth()), ..HostOptions::default() }).await?;
    let certs = host.add_device("MyClientDevice1")?;
    host.turf_ok(&["device", "associate", "MyClientDevice1"])?;
    host.turf_ok(&["connectivity", "set", &format!("127.0.0.1:{}", host.endpoints.mqtt.port())])?;
    Ok((host, certs))
}

/// Lays out a component for deployment: recipe in `<dir>/recipes`, wasm in
/// `<dir>/artifacts/<name>/<version>/`. Returns the request that deploys it.
pub fn stage_component(dir: &Path, name: &str, version: &str, wasm: &Path, default_config: Value) -> DeploymentRequest {
    let file = wasm.file_name().unwrap().to_str().unwrap();
    let recipe = json!({
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": name,
        "ComponentVersion": version,
        "ComponentPublisher": "Turf tests",
        "ComponentConfiguration": {"DefaultConfiguration": default_config},
        "Manifests": [{"Platform": {"os": "linux"}, "Lifecycle": {"Run": format!("{{artifacts:path}}/{file}")}}]
    });
    let recipes = dir.join("recipes");
    let artifacts = dir.join("artifacts").join(name).join(version);
    std::fs::create_dir_all(&recipes).unwrap();
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(recipes.join(format!("{name}-{version}.json")), serde_json::to_string_pretty(&recipe).unwrap())
        .unwrap();
    std::fs::copy(wasm, artifacts.join(file)).unwrap();
    DeploymentRequest {
        recipe_dir: Some(recipes),
        artifact_dir: Some(dir.join("artifacts")),
        merge: [(name.to_owned(), version.to_owned())].into_iter().collect(),
        ..DeploymentRequest::default()
    }
}

/// `accessControl` granting `operations` on `resources` for local pubsub.
pub fn pubsub_access(component: &str, operations: &[&str], resources: &[&str]) -> Value {
    json!({"aws.greengrass.ipc.pubsub": {format!("{component}:pubsub:1"): {
        "policyDescription": "test policy",
        "operations": operations.iter().map(|o| format!("aws.greengrass#{o}")).collect::<Vec<_>>(),
        "resources": resources,
    }}})
}

/// A bridge configuration update with the given routes `(name, filter, source, target)`.
pub fn bridge_update(routes: &[(&str, &str, &str, &str)]) -> DeploymentRequest {
    let mapping: serde_json::Map<String, Value> = routes
        .iter()
        .map(|(name, topic, source, target)| {
            ((*name).to_owned(), json!({"topic": topic, "source": source, "target": target}))
        })
        .collect();
    merge_update("aws.greengrass.clientdevices.mqtt.Bridge", json!({"mqttTopicMapping": mapping}))
}

/// A certificate folder for `thing` signed by a CA no host has seen; trusts the host CA in `trust`.
pub fn foreign_certs(dir: &Path, thing: &str, trust: &Path) -> PathBuf {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, thing);
    rogue_certs(dir, &format!("foreign-{thing}"), params, trust)
}

/// A certificate folder (`name`) with a certificate that copies the serial number and subject
/// of the one in the folder `original`, signed by a CA no host has seen; trusts the host CA
/// in `trust`.
pub fn look_alike_certs(dir: &Path, name: &str, original: &Path, trust: &Path) -> PathBuf {
    let pem = std::fs::read(original.join("device.pem.crt")).unwrap();
    let (_, block) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = block.parse_x509().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    for org in cert.subject().iter_organization() {
        params.distinguished_name.push(rcgen::DnType::OrganizationName, org.as_str().unwrap());
    }
    for cn in cert.subject().iter_common_name() {
        params.distinguished_name.push(rcgen::DnType::CommonName, cn.as_str().unwrap());
    }
    params.serial_number = Some(rcgen::SerialNumber::from_slice(cert.raw_serial()));
    rogue_certs(dir, name, params, trust)
}

/// Signs `params` with a new CA into the folder `name` (device.pem.crt, private.pem.key,
/// rogue-ca.pem, and ca.pem copied from `trust`).
fn rogue_certs(dir: &Path, name: &str, params: rcgen::CertificateParams, trust: &Path) -> PathBuf {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "Rogue CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, &ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let out = dir.join(name);
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("device.pem.crt"), cert.pem()).unwrap();
    std::fs::write(out.join("private.pem.key"), key.serialize_pem()).unwrap();
    std::fs::write(out.join("rogue-ca.pem"), ca_cert.pem()).unwrap();
    std::fs::copy(trust.join("ca.pem"), out.join("ca.pem")).unwrap();
    out
}

/// rustls client configuration from a certificate folder written by `turf device add`.
pub fn device_tls(certs: &Path) -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(certs.join("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let chain: Vec<_> =
        CertificateDer::pem_file_iter(certs.join("device.pem.crt")).unwrap().map(|c| c.unwrap()).collect();
    let key = PrivateKeyDer::from_pem_file(certs.join("private.pem.key")).unwrap();
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap()
}

/// An MQTT client whose events are pumped into a channel.
pub struct Device {
    pub client: AsyncClient,
    pub events: mpsc::UnboundedReceiver<Result<Event, String>>,
    pump: tokio::task::JoinHandle<()>,
}

impl Device {
    /// Connects over mutual TLS as `client_id` with the certificates in `certs`.
    pub async fn tls(host: &TestHost, client_id: &str, certs: &Path) -> Result<Self> {
        let mut options = MqttOptions::new(client_id, "localhost", host.endpoints.mqtt.port());
        options.set_keep_alive(Duration::from_secs(30));
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(device_tls(certs)))));
        Self::connect(options).await
    }

    /// Connects to the plain loopback listener as `client_id`.
    pub async fn plain(host: &TestHost, client_id: &str) -> Result<Self> {
        Self::connect(Self::plain_options(host, client_id)).await
    }

    /// Options for the plain listener (to customise before [`Device::connect`]).
    pub fn plain_options(host: &TestHost, client_id: &str) -> MqttOptions {
        let plain = host.endpoints.plain.expect("host started without a plain listener");
        let mut options = MqttOptions::new(client_id, "127.0.0.1", plain.port());
        options.set_keep_alive(Duration::from_secs(30));
        options
    }

    /// Connects with `options`; fails unless the broker accepts.
    pub async fn connect(options: MqttOptions) -> Result<Self> {
        let mut device = Self::start(options);
        loop {
            match device.next(TIMEOUT).await? {
                Event::Incoming(Packet::ConnAck(ack)) if ack.code == rumqttc::ConnectReturnCode::Success => {
                    return Ok(device);
                }
                Event::Incoming(Packet::ConnAck(ack)) => bail!("connection refused: {:?}", ack.code),
                _ => {}
            }
        }
    }

    /// Starts connecting without waiting for the outcome.
    pub fn start(options: MqttOptions) -> Self {
        let (client, eventloop) = AsyncClient::new(options, 100);
        let (tx, events) = mpsc::unbounded_channel();
        let pump = tokio::spawn(pump(eventloop, tx));
        Self { client, events, pump }
    }

    /// Drops the connection without a DISCONNECT packet, as a device that loses power.
    pub async fn vanish(self) {
        self.pump.abort();
        let _ = self.pump.await;
    }

    /// The next event, or the connection error.
    pub async fn next(&mut self, timeout: Duration) -> Result<Event> {
        match with_timeout(timeout, "next MQTT event", self.events.recv()).await? {
            Some(Ok(event)) => Ok(event),
            Some(Err(error)) => bail!("{error}"),
            None => bail!("connection closed"),
        }
    }

    /// Reads events until the connection ends: an error, a DISCONNECT from the broker, or the
    /// end of the event stream. Fails if it is still open after `timeout`.
    pub async fn wait_closed(&mut self, timeout: Duration) -> Result<()> {
        let closed = async {
            loop {
                match self.events.recv().await {
                    Some(Ok(Event::Incoming(Packet::Disconnect)) | Err(_)) | None => return,
                    Some(Ok(_)) => {}
                }
            }
        };
        with_timeout(timeout, "the connection is still open", closed).await
    }

    /// Subscribes and waits for the SUBACK; returns its return codes.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> Result<Vec<rumqttc::SubscribeReasonCode>> {
        self.client.subscribe(filter, qos).await?;
        loop {
            if let Event::Incoming(Packet::SubAck(ack)) = self.next(TIMEOUT).await? {
                return Ok(ack.return_codes);
            }
        }
    }

    /// Collects incoming publishes until `stop` returns true for one (inclusive) or `timeout`.
    pub async fn collect_until(
        &mut self,
        timeout: Duration,
        stop: impl Fn(&rumqttc::Publish) -> bool,
    ) -> Result<Vec<rumqttc::Publish>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let done = stop(&p);
                    out.push(p);
                    if done {
                        return Ok(out);
                    }
                }
                Ok(_) => {}
                Err(e) => bail!(
                    "{e} (after {} messages: {:?})",
                    out.len(),
                    out.iter().map(|p| p.topic.clone()).collect::<Vec<_>>()
                ),
            }
        }
    }
}

async fn pump(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<Result<Event, String>>) {
    loop {
        let event = eventloop.poll().await;
        let failed = event.is_err();
        if tx.send(event.map_err(|e| e.to_string())).is_err() || failed {
            break;
        }
    }
}

/// Publishes `1`, `2`, … to a topic at a steady pace until stopped (at most `MAX_TICKS`).
pub struct Ticker {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<u32>,
}

/// Upper bound on what a [`Ticker`] sends, so a test that forgets to stop it still ends.
pub const MAX_TICKS: u32 = 5000;

impl Ticker {
    /// Starts publishing on `topic` (QoS 1) every `period`.
    pub fn start(client: AsyncClient, topic: &str, period: Duration) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let topic = topic.to_owned();
        let task = tokio::spawn(async move {
            let mut sent = 0;
            while sent < MAX_TICKS && stopped.try_recv().is_err() {
                if client.publish(&topic, QoS::AtLeastOnce, false, (sent + 1).to_string()).await.is_err() {
                    break;
                }
                sent += 1;
                tokio::time::sleep(period).await;
            }
            sent
        });
        Self { stop, task }
    }

    /// Stops and returns how many were sent.
    pub async fn stop(self) -> Result<u32> {
        let _ = self.stop.send(());
        Ok(with_timeout(TIMEOUT, "ticker stop", self.task).await??)
    }
}

/// Echoes of a [`Ticker`] as `(number, variant)`, from payloads `<variant>|<n>`.
pub fn echoes(publishes: &[rumqttc::Publish]) -> Result<Vec<(u32, String)>> {
    publishes
        .iter()
        .map(|p| {
            let text = String::from_utf8_lossy(&p.payload);
            let (variant, n) = text.split_once('|').ok_or_else(|| anyhow!("echo without variant: {text}"))?;
            Ok((n.parse()?, variant.to_owned()))
        })
        .collect()
}

/// Checks that `echoes` hold every number from the first to `last` exactly once, in order.
pub fn assert_none_lost(echoes: &[(u32, String)], last: u32) {
    let numbers: Vec<u32> = echoes.iter().map(|(n, _)| *n).collect();
    let first = numbers.first().copied().unwrap_or(1);
    let expected: Vec<u32> = (first..=last).collect();
    assert_eq!(numbers, expected, "echoes out of order, duplicated or lost");
}

/// Debian's mosquitto as the "cloud" broker: TLS on a loopback port, client certificates
/// required, sessions kept across restarts (so a test's observer misses nothing).
pub struct Mosquitto {
    dir: PathBuf,
    pub port: u16,
    child: Option<std::process::Child>,
}

/// Where Debian installs mosquitto (`make test` installs it).
fn mosquitto_bin() -> PathBuf {
    let path = PathBuf::from("/usr/sbin/mosquitto");
    assert!(path.is_file(), "mosquitto is missing: `make test` installs it (apt-get install mosquitto)");
    path
}

impl Mosquitto {
    /// Writes a CA, a server certificate, client certificates (`core`, `observer`) and a
    /// configuration under `dir`, and starts mosquitto.
    pub async fn start(dir: &Path) -> Result<Self> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        std::fs::create_dir_all(dir)?;
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "Cloud test CA");
        let ca_cert = ca_params.self_signed(&ca_key)?;
        std::fs::write(dir.join("ca.pem"), ca_cert.pem())?;
        let issuer = Issuer::new(ca_params, &ca_key);
        let server_key = KeyPair::generate()?;
        let mut server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
        server.distinguished_name.push(DnType::CommonName, "localhost");
        std::fs::write(dir.join("server.pem"), server.signed_by(&server_key, &issuer)?.pem())?;
        std::fs::write(dir.join("server.key"), server_key.serialize_pem())?;
        for client in ["core", "observer"] {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params.distinguished_name.push(DnType::CommonName, client);
            let out = dir.join(client);
            std::fs::create_dir_all(&out)?;
            std::fs::write(out.join("device.pem.crt"), params.signed_by(&key, &issuer)?.pem())?;
            std::fs::write(out.join("private.pem.key"), key.serialize_pem())?;
            std::fs::write(out.join("ca.pem"), ca_cert.pem())?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let conf = format!(
            "user root\nlistener {port} 127.0.0.1\n\
             cafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n\
             require_certificate true\nuse_identity_as_username true\nallow_anonymous true\n\
             persistence true\npersistence_location {d}/\nautosave_interval 0\n\
             max_queued_messages 100000\nlog_dest file {d}/mosquitto.log\nlog_type all\n",
            d = dir.display()
        );
        std::fs::write(dir.join("mosquitto.conf"), conf)?;
        let mut broker = Self { dir: dir.to_path_buf(), port, child: None };
        broker.run().await?;
        Ok(broker)
    }

    async fn run(&mut self) -> Result<()> {
        let child = Command::new(mosquitto_bin())
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let port = self.port;
        let up = wait_until(TIMEOUT, "mosquitto to listen", || async move {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        })
        .await;
        up.with_context(|| std::fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default())
    }

    /// Stops it (SIGTERM, so it saves its sessions) and waits until it is gone.
    pub async fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            Command::new("kill").args(["-TERM", &child.id().to_string()]).status()?;
            with_timeout(TIMEOUT, "mosquitto to stop", async {
                loop {
                    if child.try_wait().ok().flatten().is_some() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await?;
        }
        Ok(())
    }

    /// Starts it again on the same port.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop().await?;
        self.run().await
    }

    /// The upstream configuration a core uses to reach it.
    pub fn upstream(&self) -> UpstreamConfig {
        let core = self.dir.join("core");
        UpstreamConfig {
            endpoint: Endpoint { host: "localhost".to_owned(), port: self.port, tls: true },
            client_id: "TurfCore".to_owned(),
            cert: Some(core.join("device.pem.crt")),
            key: Some(core.join("private.pem.key")),
            ca: Some(core.join("ca.pem")),
            keepalive: Duration::from_secs(30),
            version: MqttVersion::V311,
            min_reconnect_delay: Duration::from_millis(200),
            max_reconnect_delay: Duration::from_secs(1),
            spool_max_bytes: 1 << 20,
            spool_max_messages: 10_000,
        }
    }

    /// Options for an MQTT 5 "cloud-side" client (its event loop is the caller's).
    pub fn observer_v5(&self, client_id: &str) -> rumqttc::v5::MqttOptions {
        let mut options = rumqttc::v5::MqttOptions::new(client_id, "localhost", self.port);
        options.set_keep_alive(Duration::from_secs(30));
        let tls = device_tls(&self.dir.join("observer"));
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(tls))));
        options
    }

    /// A "cloud-side" client with a persistent session (`clean_session = false`).
    pub async fn observer(&self, client_id: &str) -> Result<Device> {
        let mut options = MqttOptions::new(client_id, "localhost", self.port);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_clean_session(false);
        let tls = device_tls(&self.dir.join("observer"));
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(tls))));
        Device::connect(options).await
    }

    /// Its log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// MQTT 5 client helpers (rumqttc's v5 client; the caller drives the event loop).
pub mod v5 {
    use anyhow::Result;
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason};
    use rumqttc::v5::{AsyncClient, Event, EventLoop};

    use crate::{TIMEOUT, with_timeout};

    /// Subscribes at QoS 1 and polls until the SUBACK.
    pub async fn subscribed(client: &AsyncClient, eventloop: &mut EventLoop, filter: &str) -> Result<()> {
        client.subscribe(filter, QoS::AtLeastOnce).await?;
        with_timeout(TIMEOUT, "SUBACK", async {
            loop {
                if let Event::Incoming(Packet::SubAck(_)) = eventloop.poll().await? {
                    return Ok::<_, anyhow::Error>(());
                }
            }
        })
        .await?
    }

    /// Polls until `count` PUBACKs arrived; their reason codes, in order.
    pub async fn pubacks(eventloop: &mut EventLoop, count: usize) -> Result<Vec<PubAckReason>> {
        let mut reasons = Vec::new();
        with_timeout(TIMEOUT, "PUBACKs", async {
            while reasons.len() < count {
                if let Event::Incoming(Packet::PubAck(ack)) = eventloop.poll().await? {
                    reasons.push(ack.reason);
                }
            }
            Ok::<_, anyhow::Error>(())
        })
        .await??;
        Ok(reasons)
    }
}
