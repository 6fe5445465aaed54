//! Peer brokers the suite starts: Debian's mosquitto as the "cloud" upstream, and MQTT 5 client
//! helpers for observing it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use turf_host::upstream::config::{Endpoint, MqttVersion, UpstreamConfig};

use crate::{Device, TIMEOUT, device_tls, wait_until, with_timeout};

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
