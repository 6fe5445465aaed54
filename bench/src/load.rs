//! The load generator's broker scenarios 1–4 (throughput, fan-in, latency, connection storm),
//! run the same way against every [`Target`] with the clients of [`crate::client`]. Every loop is
//! bounded by a duration and a count.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use futures::future::join_all;
use hdrhistogram::Histogram;
use rumqttc::{AsyncClient, QoS};
use tokio::sync::mpsc;

use crate::brokers::Target;
use crate::client::{Arrival, Client, Creds, Received, Via, collect, connect, nanos_since, stamped};
use crate::procfs::rss_kb;

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
    let delivery = delivered(&mut sub.arrivals, base, received, total, window).await?;
    Ok((delivery.rate, delivery.share))
}

/// What one fan-in run measured.
pub struct FanIn {
    /// Delivered msg/s, from the first publish to the last arrival.
    pub rate: f64,
    /// Delivered share of what the broker acknowledged (PUBACKs the publishers received), %.
    pub share: f64,
    /// Median latency of what arrived (publish called → arrival), ms.
    pub p50_ms: f64,
}

/// Many publishers to one subscriber at QoS 1, each publishing stamped messages as fast as the
/// broker takes them for `window`. Every client disconnects before this returns.
pub async fn fan_in(target: &Target, devices: &[Via<'_>], sub: Via<'_>, window: Duration) -> Result<FanIn> {
    let mut subscriber = connect(target, sub).await?;
    subscriber.subscribe("bench/fanin/#", QoS::AtLeastOnce).await?;
    let mut publishers = Vec::new();
    for chunk in devices.chunks(25) {
        let connected = join_all(chunk.iter().map(|&via| connect(target, via))).await;
        for client in connected {
            publishers.push(client?);
        }
    }
    let base = Instant::now();
    let mut tasks = Vec::new();
    for (i, p) in publishers.iter().enumerate() {
        let client = p.client.clone();
        let topic = format!("bench/fanin/{i}");
        tasks.push(tokio::spawn(async move {
            let mut mine = 0u32;
            while base.elapsed() < window && mine < 200_000 {
                let payload = stamped(nanos_since(base));
                if client.publish(topic.as_str(), QoS::AtLeastOnce, false, payload).await.is_err() {
                    break;
                }
                mine += 1;
            }
        }));
    }
    let received = collect(&mut subscriber.arrivals, base, u64::MAX, Duration::from_millis(1500)).await?;
    for task in tasks {
        task.await?;
    }
    // What the broker acknowledged is what it owes the subscriber.
    let total: u64 = publishers.iter().map(|p| p.acked.load(Ordering::Relaxed)).sum();
    let delivery = delivered(&mut subscriber.arrivals, base, received, total, window).await?;
    publishers.push(subscriber);
    disconnect(publishers).await;
    Ok(FanIn {
        rate: delivery.rate,
        share: delivery.share,
        p50_ms: delivery.latency.value_at_quantile(0.5) as f64 / 1000.0,
    })
}

/// Sends DISCONNECT from each client and gives the broker a moment to close them.
async fn disconnect(clients: Vec<Client>) {
    for c in &clients {
        let _ = c.client.try_disconnect();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(clients);
}

/// What the subscriber got of what it was owed.
struct Delivery {
    /// Delivered msg/s from the first publish to the last arrival.
    rate: f64,
    /// Delivered share of what it was owed, %.
    share: f64,
    /// Latencies of what arrived, µs.
    latency: Histogram<u64>,
}

/// Waits for the rest of the `total` messages the subscriber is owed (beyond what `received`
/// already counted).
async fn delivered(
    arrivals: &mut mpsc::UnboundedReceiver<Arrival>,
    base: Instant,
    mut received: Received,
    total: u64,
    window: Duration,
) -> Result<Delivery> {
    if received.count < total {
        let more = collect(arrivals, base, total - received.count, Duration::from_millis(1500)).await?;
        received.count += more.count;
        received.last = more.last.or(received.last);
        received.latency.add(&more.latency)?;
    }
    let elapsed = received.last.map(|t| t.duration_since(base)).unwrap_or(window).as_secs_f64();
    Ok(Delivery {
        rate: received.count as f64 / elapsed.max(1e-6),
        share: 100.0 * received.count as f64 / total.max(1) as f64,
        latency: received.latency,
    })
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
        client.publish(topic.as_str(), qos, false, stamped(nanos_since(base))).await?;
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
