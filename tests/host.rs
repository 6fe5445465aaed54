//! A real Turf host for a test: [`TestHost`] in its own thread and temporary root, and the
//! deployments the tests give it (components from `plugins/`, bridge routes, auth policies).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::mpsc;
use turf_host::deploy::model::{DeploymentRecord, DeploymentRequest};
use turf_host::mgmt::client::Client;
use turf_host::upstream::config::UpstreamConfig;
use turf_host::watch::WatchConfig;
use turf_host::{Endpoints, HostConfig};

use crate::{TIMEOUT, wait_until, with_timeout};

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
    /// Serve the HTTP listener over TLS.
    pub http_tls: bool,
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
            http_tls: false,
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

/// Lamps may connect and subscribe to anything, and publish only under `lamps/<own name>/`.
pub fn lamp_policy() -> serde_json::Value {
    json!({"deviceGroups": {
        "formatVersion": "2021-03-05",
        "definitions": {"Lamps": {"selectionRule": "thingName: Lamp*", "policyName": "OwnTopics"}},
        "policies": {"OwnTopics": {
            "Connect": {"operations": ["mqtt:connect", "mqtt:subscribe"], "resources": ["*"]},
            "Publish": {"operations": ["mqtt:publish"], "resources": ["mqtt:topic:lamps/${iot:Connection.Thing.ThingName}/*"]}}}
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
        config.http_listen = "127.0.0.1:0".parse().unwrap();
        config.http_tls = options.http_tls;
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

    /// Stops the host and starts a new one on the same root with `options` (its `root` is
    /// replaced by this host's).
    pub async fn restart_with(self, options: HostOptions) -> Result<Self> {
        let (dir, root) = (Arc::clone(&self.dir), self.root.clone());
        self.shutdown().await?;
        Self::start_with(HostOptions { root: Some((dir, root)), ..options }).await
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

/// `GET path` from a plain HTTP/1.0 server on loopback: the status, the headers and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String, String)> {
    http_request(addr, "GET", path, &[]).await
}

/// One HTTP/1.0 request with `headers` to a server on loopback (`Host` is `addr` unless
/// `headers` names one): the status, the headers and the body.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, String, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let connect = tokio::net::TcpStream::connect(addr);
    let mut stream = with_timeout(TIMEOUT, "connecting to the HTTP listener", connect).await??;
    let mut request = format!("{method} {path} HTTP/1.0\r\nContent-Length: 0\r\n");
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {addr}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut reply = Vec::new();
    with_timeout(TIMEOUT, "the HTTP reply", stream.read_to_end(&mut reply)).await??;
    let reply = String::from_utf8(reply)?;
    let (head, body) = reply.split_once("\r\n\r\n").context("an HTTP reply without a blank line")?;
    let status = head.split_whitespace().nth(1).context("no status")?.parse()?;
    Ok((status, head.to_owned(), body.to_owned()))
}

/// The Python with `awsiotsdk` installed (`make sdk-env`), or `TURF_SDK_PYTHON`.
pub fn sdk_python() -> PathBuf {
    let python = std::env::var_os("TURF_SDK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/pyenv/bin/python"));
    assert!(
        python.is_file(),
        "{} is missing: run `make sdk-env` (part of `make test`) to install awsiotsdk",
        python.display()
    );
    python
}

/// Runs a script from `tests/sdk` as `thing` (certificates in `certs`, discovering `host`);
/// returns its stdout, failing on a non-zero exit.
pub fn sdk_script(host: &TestHost, thing: &str, certs: &Path, script: &str, extra: &[&str]) -> Result<String> {
    let output = Command::new(sdk_python())
        .arg(workspace().join("tests/sdk").join(script))
        .args(["--thing", thing])
        .arg("--cert")
        .arg(certs.join("device.pem.crt"))
        .arg("--key")
        .arg(certs.join("private.pem.key"))
        .arg("--ca")
        .arg(certs.join("ca.pem"))
        .arg("--discovery-port")
        .arg(host.endpoints.discovery.port().to_string())
        .args(extra)
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!("{script} failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(stdout)
}
