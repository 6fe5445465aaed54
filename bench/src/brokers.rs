//! The brokers under test, as child processes: Turf (`turf run`, release build) and Debian's
//! mosquitto configured like it — the same server certificate, CA and device certificates
//! (issued by Turf's CA), client certificates required on the TLS port, a plain loopback port,
//! TCP_NODELAY, 1024 in-flight messages and 128 KiB packets. A process still running when its
//! handle is dropped (a scenario failed) is killed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::api::Api;

/// A broker the load generator can reach.
#[derive(Debug, Clone)]
pub struct Target {
    /// `turf`, `mosquitto` or `rumqttd`.
    pub name: &'static str,
    /// Mutual-TLS port, for the brokers that take part in the mTLS scenarios.
    pub tls_port: Option<u16>,
    /// Plain loopback port.
    pub plain_port: u16,
    /// Process id (for RSS).
    pub pid: u32,
}

fn port_of(line: &str) -> Result<u16> {
    Ok(line.rsplit(':').next().context("no port")?.trim().parse()?)
}

/// `turf run` in a child process.
pub struct TurfProcess {
    child: Child,
    /// Its root directory.
    pub root: PathBuf,
    /// Where it listens.
    pub target: Target,
    /// From exec to its "turf is ready" line.
    pub ready_after: Duration,
}

/// Writes `root/config.toml` (unless there is one) lifting the per-client limits the scenarios
/// exceed on purpose, as the peers have none: the publish rate (one client publishes as fast
/// as it can), and connections and handshakes per listener (the storm opens 2,000 at once;
/// handshakes cannot be unlimited, 4,096 is more than the storm needs).
fn lift_client_limits(root: &Path) -> Result<()> {
    let file = root.join("config.toml");
    if file.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(root).with_context(|| format!("create {}", root.display()))?;
    let config = "# turf-bench: the peers have no such limits\n[broker]\npublish_rate = 0\nmax_connections = 0\nmax_handshakes = 4096\n";
    std::fs::write(&file, config).with_context(|| format!("write {}", file.display()))
}

impl TurfProcess {
    /// Starts `bin run` on `root` with loopback listeners.
    pub fn start(bin: &Path, root: &Path) -> Result<Self> {
        lift_client_limits(root)?;
        let started = Instant::now();
        let mut child = Command::new(bin)
            .arg("--root")
            .arg(root)
            .args(["run", "--mqtt-listen", "127.0.0.1:0", "--plain-listen", "127.0.0.1:0"])
            .args(["--discovery-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--log-level", "warn"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let (mut tls, mut plain, mut ready_after) = (None, None, None);
        while tls.is_none() || plain.is_none() {
            let Some(line) = lines.next() else {
                bail!("turf exited before it was ready (see {}/logs/turf.log)", root.display());
            };
            let line = line?;
            if line == "turf is ready" {
                ready_after = Some(started.elapsed());
            } else if line.starts_with("  devices (MQTT, mutual TLS): ") {
                tls = Some(port_of(&line)?);
            } else if line.starts_with("  local tools (MQTT, plain): ") {
                plain = Some(port_of(&line)?);
            }
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let pid = child.id();
        Ok(Self {
            child,
            root: root.to_path_buf(),
            target: Target { name: "turf", tls_port: tls, plain_port: plain.unwrap_or(0), pid },
            ready_after: ready_after.unwrap_or_default(),
        })
    }

    /// Its management API.
    pub fn api(&self) -> Api {
        Api::new(&self.root.join("turf.sock"))
    }

    /// Stops it with SIGTERM and waits (at most 20 s, then SIGKILL).
    pub fn stop(mut self) -> Result<()> {
        terminate(&mut self.child)
    }
}

impl Drop for TurfProcess {
    fn drop(&mut self) {
        kill_if_running(&mut self.child);
    }
}

/// SIGTERM, then waits at most 20 s for `child` to exit before SIGKILL.
pub(crate) fn terminate(child: &mut Child) -> Result<()> {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill()?;
    child.wait()?;
    Ok(())
}

/// SIGKILL for a child that is still running (a handle dropped without `stop`).
pub(crate) fn kill_if_running(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Device groups that let every device do everything (the benchmarks are not about policies).
pub fn allow_all(api: &Api) -> Result<()> {
    let request = json!({"update_config": {"aws.greengrass.clientdevices.Auth": {"MERGE": {"deviceGroups": {
        "formatVersion": "2021-03-05",
        "definitions": {"All": {"selectionRule": "thingName: *", "policyName": "AllowAll"}},
        "policies": {"AllowAll": {"All": {"operations": ["*"], "resources": ["*"]}}}}}}}});
    deploy(api, &request)
}

/// Submits a deployment and waits until it succeeded.
pub fn deploy(api: &Api, request: &serde_json::Value) -> Result<()> {
    let record: serde_json::Value = api.post("/deployments", request)?;
    let id = record["id"].as_str().context("no deployment id")?.to_owned();
    let done: serde_json::Value = api.get(&format!("/deployments/{id}/wait?timeout_secs=120"))?;
    if done["state"] != "SUCCEEDED" {
        bail!("deployment {id} ended {}: {}", done["state"], done["error"]);
    }
    Ok(())
}

/// mosquitto in a child process, configured like Turf.
pub struct MosquittoProcess {
    child: Child,
    /// Where it listens.
    pub target: Target,
}

/// Debian's mosquitto binary.
pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// A loopback port nobody listens on right now.
pub(crate) fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl MosquittoProcess {
    /// Starts mosquitto with Turf's certificates from `turf_root/ca`, writing its
    /// configuration under `dir`.
    pub fn start(turf_root: &Path, dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let ca = turf_root.join("ca");
        let (tls_port, plain_port) = (free_port()?, free_port()?);
        let conf = format!(
            "user root\nper_listener_settings true\nset_tcp_nodelay true\n\
             max_inflight_messages 1024\nmax_packet_size 131072\npersistence false\nlog_dest none\n\
             listener {tls_port} 127.0.0.1\ncafile {ca}/client-roots.pem\ncertfile {ca}/server.pem\nkeyfile {ca}/server.key\n\
             require_certificate true\nuse_identity_as_username true\nallow_anonymous true\n\
             listener {plain_port} 127.0.0.1\nallow_anonymous true\n",
            ca = ca.display()
        );
        let path = dir.join("mosquitto.conf");
        std::fs::write(&path, conf)?;
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start mosquitto (make bench installs it)")?;
        let pid = child.id();
        // Made before the wait, so that dropping it on failure kills the child.
        let mosquitto = Self { child, target: Target { name: "mosquitto", tls_port: Some(tls_port), plain_port, pid } };
        wait_listening(plain_port, "mosquitto")?;
        Ok(mosquitto)
    }

    /// Stops it.
    pub fn stop(mut self) -> Result<()> {
        terminate(&mut self.child)
    }
}

impl Drop for MosquittoProcess {
    fn drop(&mut self) {
        kill_if_running(&mut self.child);
    }
}

/// Waits (at most 10 s) until `port` on loopback accepts connections.
pub(crate) fn wait_listening(port: u16, name: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("{name} did not start listening on port {port} within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// mosquitto's version line (`mosquitto -h` prints it first).
pub fn mosquitto_version() -> String {
    Command::new(MOSQUITTO)
        .arg("-h")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or_default().to_owned())
        .unwrap_or_default()
}
