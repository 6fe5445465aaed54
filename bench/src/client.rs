//! MQTT clients for the load generator (rumqttc, MQTT 3.1.1): connecting over mutual TLS or the
//! plain port, 64-byte payloads stamped with their send time, and counting what arrives. Every
//! wait is bounded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::{mpsc, oneshot};

use crate::brokers::Target;

/// A device's credentials, issued by Turf's CA (mosquitto trusts the same CA).
#[derive(Debug, Clone)]
pub struct Creds {
    /// Thing name (and client id).
    pub thing: String,
    /// Certificate, PEM.
    pub cert_pem: String,
    /// Key, PEM.
    pub key_pem: String,
    /// CA, PEM.
    pub ca_pem: String,
}

impl Creds {
    fn tls(&self) -> Result<Arc<rustls::ClientConfig>> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(cert?)?;
        }
        let chain = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())?;
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        Ok(Arc::new(config))
    }
}

/// How a client reaches the broker.
#[derive(Clone, Copy)]
pub enum Via<'a> {
    /// The mutual-TLS port with these credentials.
    Tls(&'a Creds),
    /// The plain loopback port with this client id.
    Plain(&'a str),
}

/// A received publish with its arrival time.
pub struct Arrival {
    /// When it arrived.
    pub at: Instant,
    /// Its payload.
    pub payload: bytes::Bytes,
}

/// A connected client whose event loop runs in its own task.
pub struct Client {
    /// Publish and subscribe with it.
    pub client: AsyncClient,
    /// Publishes it receives.
    pub arrivals: mpsc::UnboundedReceiver<Arrival>,
    subacks: mpsc::UnboundedReceiver<()>,
    /// PUBACKs received (QoS 1 publishes the broker took responsibility for).
    pub acked: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connects and waits for CONNACK (at most 20 s).
pub async fn connect(target: &Target, via: Via<'_>) -> Result<Client> {
    let (id, port) = match via {
        Via::Tls(creds) => {
            (creds.thing.as_str(), target.tls_port.with_context(|| format!("{} has no mTLS listener", target.name))?)
        }
        Via::Plain(id) => (id, target.plain_port),
    };
    let mut options = MqttOptions::new(id, "localhost", port);
    options.set_keep_alive(Duration::from_secs(60));
    options.set_max_packet_size(256 * 1024, 256 * 1024);
    if let Via::Tls(creds) = via {
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(creds.tls()?)));
    }
    // A small request queue, so a publisher waits for the broker instead of queueing in memory.
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let mut network = eventloop.network_options();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    let acked = Arc::new(AtomicU64::new(0));
    let acks = Arc::clone(&acked);
    let (tx, arrivals) = mpsc::unbounded_channel();
    let (sub_tx, subacks) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = oneshot::channel::<Result<(), String>>();
    let task = tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(Ok(()));
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send(Arrival { at: Instant::now(), payload: p.payload });
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = sub_tx.send(());
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acks.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(e) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(Err(e.to_string()));
                    }
                    return;
                }
            }
        }
    });
    match tokio::time::timeout(Duration::from_secs(20), ready_rx).await {
        Ok(Ok(Ok(()))) => Ok(Client { client, arrivals, subacks, acked, task }),
        Ok(Ok(Err(e))) => bail!("{} refused {id}: {e}", target.name),
        _ => bail!("{}: no CONNACK for {id}", target.name),
    }
}

impl Client {
    /// Subscribes and waits for the SUBACK.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> Result<()> {
        self.client.subscribe(filter, qos).await?;
        tokio::time::timeout(Duration::from_secs(10), self.subacks.recv()).await.context("no SUBACK")?;
        Ok(())
    }
}

/// A 64-byte payload whose first 8 bytes are `nanos`.
pub fn stamped(nanos: u64) -> Vec<u8> {
    let mut payload = vec![b'x'; 64];
    payload[..8].copy_from_slice(&nanos.to_le_bytes());
    payload
}

fn stamp_of(payload: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(payload.get(..8)?.try_into().ok()?))
}

/// What a receiving side counted.
pub struct Received {
    /// Messages.
    pub count: u64,
    /// When the last arrived.
    pub last: Option<Instant>,
    /// Latencies in µs (from the stamp in each payload).
    pub latency: Histogram<u64>,
}

/// Nanoseconds since `base`, for a payload's stamp.
pub fn nanos_since(base: Instant) -> u64 {
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Collects arrivals until `expected` arrived or nothing came for `idle`; latencies are measured
/// from `base` (the clock the payloads' stamps count from).
pub(crate) async fn collect(
    arrivals: &mut mpsc::UnboundedReceiver<Arrival>,
    base: Instant,
    expected: u64,
    idle: Duration,
) -> Result<Received> {
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut count, mut last) = (0, None);
    while count < expected {
        match tokio::time::timeout(idle, arrivals.recv()).await {
            Ok(Some(arrival)) => {
                count += 1;
                last = Some(arrival.at);
                if let Some(sent) = stamp_of(&arrival.payload) {
                    let now = u64::try_from(arrival.at.duration_since(base).as_nanos()).unwrap_or(u64::MAX);
                    let _ = latency.record((now.saturating_sub(sent) / 1000).max(1));
                }
            }
            _ => break,
        }
    }
    Ok(Received { count, last, latency })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_in_64_byte_payloads() {
        let p = stamped(123_456_789);
        assert_eq!(p.len(), 64);
        assert_eq!(stamp_of(&p), Some(123_456_789));
        assert_eq!(stamp_of(b"short"), None);
    }
}
