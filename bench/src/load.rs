//! The load generator: MQTT clients (rumqttc) and the broker scenarios 1–4, run the same way
//! against every [`Target`]. Every loop is bounded by a duration and a count.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::future::join_all;
use hdrhistogram::Histogram;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::{mpsc, oneshot};

use crate::brokers::{Target, rss_kb};

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
        Via::Tls(creds) => (creds.thing.as_str(), target.tls_port),
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

/// Throughput of one publisher to one subscriber: (delivered msg/s, delivered %).
pub async fn throughput(
    target: &Target,
    pub_via: Via<'_>,
    sub_via: Via<'_>,
    qos: QoS,
    run: &str,
    window: Duration,
) -> Result<(f64, f64)> {
    let topic = format!("bench/tp/{run}");
    let mut sub = connect(target, sub_via).await?;
    sub.subscribe(&topic, qos).await?;
    let publisher = connect(target, pub_via).await?;
    let base = Instant::now();
    let sent = Arc::new(AtomicU64::new(0));
    let (client, counter) = (publisher.client.clone(), Arc::clone(&sent));
    let send = tokio::spawn(async move {
        let payload = stamped(0);
        while base.elapsed() < window && counter.load(Ordering::Relaxed) < 2_000_000 {
            if client.publish(topic.as_str(), qos, false, payload.clone()).await.is_err() {
                break;
            }
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    // Count while publishing, then drain.
    let received = collect(&mut sub.arrivals, base, u64::MAX, Duration::from_millis(1500)).await?;
    send.await?;
    let total =
        if qos == QoS::AtMostOnce { sent.load(Ordering::Relaxed) } else { publisher.acked.load(Ordering::Relaxed) };
    delivered(&mut sub.arrivals, base, received, total, window).await
}

/// Many publishers to one subscriber at QoS 1 over mTLS: (delivered msg/s, delivered %).
pub async fn fan_in(target: &Target, devices: &[Creds], sub: &Creds, window: Duration) -> Result<(f64, f64)> {
    let mut subscriber = connect(target, Via::Tls(sub)).await?;
    subscriber.subscribe("bench/fanin/#", QoS::AtLeastOnce).await?;
    let mut publishers = Vec::new();
    for chunk in devices.chunks(25) {
        let connected = join_all(chunk.iter().map(|c| connect(target, Via::Tls(c)))).await;
        for client in connected {
            publishers.push(client?);
        }
    }
    let base = Instant::now();
    let sent = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (i, p) in publishers.iter().enumerate() {
        let (client, counter) = (p.client.clone(), Arc::clone(&sent));
        let topic = format!("bench/fanin/{i}");
        tasks.push(tokio::spawn(async move {
            let payload = stamped(0);
            let mut mine = 0u32;
            while base.elapsed() < window && mine < 200_000 {
                if client.publish(topic.as_str(), QoS::AtLeastOnce, false, payload.clone()).await.is_err() {
                    break;
                }
                mine += 1;
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let received = collect(&mut subscriber.arrivals, base, u64::MAX, Duration::from_millis(1500)).await?;
    for task in tasks {
        task.await?;
    }
    // What the broker acknowledged is what it owes the subscriber.
    let total: u64 = publishers.iter().map(|p| p.acked.load(Ordering::Relaxed)).sum();
    delivered(&mut subscriber.arrivals, base, received, total, window).await
}

/// Waits for the rest of the `total` messages the subscriber is owed (beyond what `received`
/// already counted); returns (delivered msg/s from `base` to the last arrival, delivered %).
async fn delivered(
    arrivals: &mut mpsc::UnboundedReceiver<Arrival>,
    base: Instant,
    mut received: Received,
    total: u64,
    window: Duration,
) -> Result<(f64, f64)> {
    if received.count < total {
        let more = collect(arrivals, base, total - received.count, Duration::from_millis(1500)).await?;
        received.count += more.count;
        received.last = more.last.or(received.last);
    }
    let elapsed = received.last.map(|t| t.duration_since(base)).unwrap_or(window).as_secs_f64();
    Ok((received.count as f64 / elapsed.max(1e-6), 100.0 * received.count as f64 / total.max(1) as f64))
}

/// Latency at a fixed rate, QoS 1 over mTLS: (p50 ms, p99 ms, max ms, delivered %).
pub async fn latency(
    target: &Target,
    pub_creds: &Creds,
    sub_creds: &Creds,
    rate: u32,
    run: &str,
    window: Duration,
) -> Result<(f64, f64, f64, f64)> {
    let topic = format!("bench/lat/{run}");
    let mut sub = connect(target, Via::Tls(sub_creds)).await?;
    sub.subscribe(&topic, QoS::AtLeastOnce).await?;
    let publisher = connect(target, Via::Tls(pub_creds)).await?;
    let base = Instant::now();
    let total = u64::from(rate) * window.as_secs().max(1);
    let client = publisher.client.clone();
    let send = tokio::spawn(paced(client, topic, QoS::AtLeastOnce, rate, total, base));
    let received = collect(&mut sub.arrivals, base, total, Duration::from_secs(3)).await?;
    let sent = send.await??;
    let ms = |q: f64| received.latency.value_at_quantile(q) as f64 / 1000.0;
    Ok((ms(0.5), ms(0.99), received.latency.max() as f64 / 1000.0, 100.0 * received.count as f64 / sent.max(1) as f64))
}

/// Publishes `total` stamped messages at `rate` per second (paced by the millisecond timer:
/// a 5k/s stream goes out as 5 per millisecond). Returns how many were sent.
pub async fn paced(client: AsyncClient, topic: String, qos: QoS, rate: u32, total: u64, base: Instant) -> Result<u64> {
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        let due = start + Duration::from_secs_f64(sent as f64 / f64::from(rate));
        let now = Instant::now();
        if due > now {
            tokio::time::sleep(due - now).await;
        }
        let nanos = u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        client.publish(topic.as_str(), qos, false, stamped(nanos)).await?;
        sent += 1;
        if start.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    Ok(sent)
}

/// Connection storm over mTLS: (connections/s, kB of broker RSS per idle connection).
pub async fn storm(target: &Target, devices: &[Creds]) -> Result<(f64, f64)> {
    let before = rss_kb(target.pid)?;
    let started = Instant::now();
    let mut clients = Vec::with_capacity(devices.len());
    for chunk in devices.chunks(50) {
        for client in join_all(chunk.iter().map(|c| connect(target, Via::Tls(c)))).await {
            clients.push(client?);
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("{}: connection storm took over 120 s", target.name);
        }
    }
    let rate = clients.len() as f64 / started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kb(target.pid)?;
    let per = after.saturating_sub(before) as f64 / clients.len().max(1) as f64;
    for c in &clients {
        let _ = c.client.try_disconnect();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(clients);
    Ok((rate, per))
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
