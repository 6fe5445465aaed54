//! Client devices: MQTT clients over real TLS with certificates the host issued (or a rogue CA
//! signed), and the helpers that drive and check their traffic.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use tokio::sync::mpsc;

use crate::{TIMEOUT, TestHost, with_timeout};

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
        mut stop: impl FnMut(&rumqttc::Publish) -> bool,
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

/// A `collect_until` stop that is true once a publish on each of `topics` arrived.
pub fn all_seen(topics: &[&str]) -> impl FnMut(&rumqttc::Publish) -> bool {
    let mut missing = topics.to_vec();
    move |p| {
        missing.retain(|t| *t != p.topic);
        missing.is_empty()
    }
}
