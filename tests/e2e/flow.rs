//! Flow control: a subscriber slower than its publishers slows them down instead of losing
//! acknowledged messages; memory stays bounded; a dead subscriber cannot stall its publishers
//! for long; two devices publishing to each other do not deadlock; QoS 0 may be dropped, and is
//! counted.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use turf_host::broker::BrokerLimits;
use turf_host::broker::stats::BrokerStatus;
use turf_tests::process::RunningTurf;
use turf_tests::{Device, HostOptions, TIMEOUT, TestHost, permissive_auth, wait_until, with_timeout};

/// Small queues, so a test needs few messages to fill them; a stall timeout long enough that
/// a slow but live client is never taken for stalled on a loaded machine.
fn small_limits(session: u32) -> BrokerLimits {
    BrokerLimits {
        session_queue_bytes: session,
        total_queue_bytes: 4 << 20,
        stall_timeout: Duration::from_secs(10),
        // These tests fill queues from single clients as fast as they can.
        publish_rate: 0,
        ..BrokerLimits::default()
    }
}

/// [`small_limits`] with a short stall timeout, for tests about dead clients (still long enough
/// that a live client on the same busy test thread is not taken for stalled).
fn quick_stall(session: u32) -> BrokerLimits {
    BrokerLimits { stall_timeout: Duration::from_secs(2), ..small_limits(session) }
}

async fn host_with(limits: BrokerLimits) -> Result<TestHost> {
    TestHost::start_with(HostOptions { broker: limits, ..HostOptions::default() }).await
}

async fn broker_status(host: &TestHost) -> Result<BrokerStatus> {
    host.client().status().await?.broker.context("status without broker figures")
}

/// A client on the plain listener whose event loop the caller drives. rumqttc acknowledges an
/// incoming publish when the event loop reads it, so a client that polls slowly acknowledges
/// slowly, and one that stops polling never acknowledges again. (Manual acks would queue behind
/// the client's own pending publishes in rumqttc's request channel.)
async fn raw_client(port: u16, id: &str, inflight: u16) -> Result<(AsyncClient, EventLoop)> {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(120));
    options.set_inflight(inflight);
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    with_timeout(TIMEOUT, "CONNACK", async {
        loop {
            if let Event::Incoming(Packet::ConnAck(_)) = eventloop.poll().await? {
                return Ok::<_, anyhow::Error>(());
            }
        }
    })
    .await??;
    Ok((client, eventloop))
}

/// Subscribes and polls until the SUBACK.
async fn subscribe(client: &AsyncClient, eventloop: &mut EventLoop, filter: &str, qos: QoS) -> Result<()> {
    client.subscribe(filter, qos).await?;
    with_timeout(TIMEOUT, "SUBACK", async {
        loop {
            if let Event::Incoming(Packet::SubAck(_)) = eventloop.poll().await? {
                return Ok::<_, anyhow::Error>(());
            }
        }
    })
    .await?
}

/// Publishes `count` QoS 1 messages `<id>:<n>` to `topic` as fast as the client's in-flight
/// window allows, acknowledging whatever arrives meanwhile; returns once every one was
/// acknowledged by the broker and `receive` messages arrived, with those messages.
async fn publish_all(
    client: AsyncClient,
    mut eventloop: EventLoop,
    id: String,
    topic: String,
    count: usize,
    payload_len: usize,
    receive: usize,
) -> Result<Vec<String>> {
    let sender = {
        let client = client.clone();
        tokio::spawn(async move {
            for n in 0..count {
                let mut payload = format!("{id}:{n}:").into_bytes();
                payload.resize(payload_len.max(payload.len()), b'.');
                client.publish(&topic, QoS::AtLeastOnce, false, payload).await?;
            }
            Ok::<_, rumqttc::ClientError>(())
        })
    };
    let (mut acked, mut received) = (0, Vec::new());
    while acked < count || received.len() < receive {
        match eventloop.poll().await? {
            Event::Incoming(Packet::PubAck(_)) => acked += 1,
            Event::Incoming(Packet::Publish(p)) => received.push(String::from_utf8_lossy(&p.payload).into_owned()),
            _ => {}
        }
    }
    sender.await??;
    Ok(received)
}

/// A subscriber that receives `expected` messages, reading (and so acknowledging) one every
/// `pace`: slower than its publishers. Returns the payloads in arrival order, with the client
/// and its event loop so the connection stays open.
async fn slow_consumer(
    client: AsyncClient,
    mut eventloop: EventLoop,
    expected: usize,
    pace: Duration,
) -> Result<(Vec<String>, AsyncClient, EventLoop)> {
    let mut got = Vec::with_capacity(expected);
    while got.len() < expected {
        if let Event::Incoming(Packet::Publish(p)) = eventloop.poll().await? {
            got.push(String::from_utf8_lossy(&p.payload).into_owned());
            if !pace.is_zero() {
                tokio::time::sleep(pace).await;
            }
        }
    }
    Ok((got, client, eventloop))
}

/// Every publisher's messages arrived exactly once and in order.
fn assert_each_publisher_in_order(payloads: &[String], publishers: usize, count: usize) {
    let mut next: HashMap<&str, usize> = HashMap::new();
    for payload in payloads {
        let mut parts = payload.split(':');
        let (id, n) = (parts.next().unwrap(), parts.next().unwrap().parse::<usize>().unwrap());
        let expected = next.entry(id).or_insert(0);
        assert_eq!(n, *expected, "publisher {id}: message {n} arrived where {expected} was due");
        *expected += 1;
    }
    assert_eq!(next.len(), publishers, "messages from every publisher");
    assert!(next.values().all(|n| *n == count), "every message of every publisher: {next:?}");
}

#[actix_rt::test]
async fn slow_subscriber_at_qos1_loses_nothing_and_slows_its_publishers() -> Result<()> {
    const SESSION: u32 = 16 << 10;
    const PUBLISHERS: usize = 20;
    const EACH: usize = 100;
    let host = host_with(small_limits(SESSION)).await?;
    let port = host.endpoints.plain.unwrap().port();
    let (sub, mut sub_loop) = raw_client(port, "slow-subscriber", 100).await?;
    subscribe(&sub, &mut sub_loop, "flow/fanin", QoS::AtLeastOnce).await?;
    let consumer = tokio::spawn(slow_consumer(sub, sub_loop, PUBLISHERS * EACH, Duration::from_micros(300)));
    let mut publishers = Vec::new();
    for i in 0..PUBLISHERS {
        let id = format!("pub{i}");
        let (client, eventloop) = raw_client(port, &id, 100).await?;
        publishers.push(tokio::spawn(publish_all(client, eventloop, id, "flow/fanin".into(), EACH, 100, 0)));
    }
    let mut peak = 0;
    let all_acked = async {
        for p in publishers {
            p.await??;
        }
        Ok::<_, anyhow::Error>(())
    };
    tokio::pin!(all_acked);
    loop {
        tokio::select! {
            done = &mut all_acked => { done?; break; }
            _ = tokio::time::sleep(Duration::from_millis(20)) => {
                peak = peak.max(broker_status(&host).await?.queued_bytes);
            }
        }
    }
    let (got, _sub, _sub_loop) =
        with_timeout(Duration::from_secs(60), "the slow subscriber to get everything", consumer).await???;
    assert_each_publisher_in_order(&got, PUBLISHERS, EACH);
    let status = broker_status(&host).await?;
    assert!(status.waits > 0, "publishers never had to wait: the subscriber was not slower ({status:?})");
    assert_eq!(status.dropped.total_undelivered(), 0, "{status:?}");
    assert!(peak > 0 && peak <= u64::from(SESSION), "queued {peak} bytes for one subscriber, limit {SESSION}");
    assert_eq!(status.stalled_disconnects, 0);
    host.shutdown().await
}

#[actix_rt::test]
async fn dead_subscriber_is_disconnected_and_its_publishers_go_on() -> Result<()> {
    const COUNT: usize = 400;
    let host = host_with(quick_stall(16 << 10)).await?;
    let port = host.endpoints.plain.unwrap().port();
    // Subscribes, then never reads its socket again (and so never acknowledges).
    let (dead, mut dead_loop) = raw_client(port, "dead-subscriber", 100).await?;
    subscribe(&dead, &mut dead_loop, "flow/dead", QoS::AtLeastOnce).await?;
    let mut healthy = Device::plain(&host, "healthy-subscriber").await?;
    healthy.subscribe("flow/dead", QoS::AtLeastOnce).await?;
    let (client, eventloop) = raw_client(port, "publisher", 100).await?;
    let published = publish_all(client, eventloop, "p".into(), "flow/dead".into(), COUNT, 200, 0);
    with_timeout(Duration::from_secs(30), "every publish acknowledged", published).await??;
    let got = healthy.collect_until(TIMEOUT, |p| p.payload.starts_with(format!("p:{}:", COUNT - 1).as_bytes())).await?;
    assert_each_publisher_in_order(
        &got.iter().map(|p| String::from_utf8_lossy(&p.payload).into_owned()).collect::<Vec<_>>(),
        1,
        COUNT,
    );
    let status = broker_status(&host).await?;
    assert_eq!(status.stalled_disconnects, 1, "{status:?}");
    drop(dead_loop);
    host.shutdown().await
}

#[actix_rt::test]
async fn two_devices_publishing_to_each_other_do_not_deadlock() -> Result<()> {
    const COUNT: usize = 1000;
    let host = host_with(small_limits(8 << 10)).await?;
    let port = host.endpoints.plain.unwrap().port();
    let (a, mut a_loop) = raw_client(port, "device-a", 100).await?;
    subscribe(&a, &mut a_loop, "cycle/a", QoS::AtLeastOnce).await?;
    let (b, mut b_loop) = raw_client(port, "device-b", 100).await?;
    subscribe(&b, &mut b_loop, "cycle/b", QoS::AtLeastOnce).await?;
    // Each publishes to the other while acknowledging what it receives, until both its own
    // messages are acknowledged and it received all of the other's.
    let to_b = publish_all(a, a_loop, "a".into(), "cycle/b".into(), COUNT, 64, COUNT);
    let to_a = publish_all(b, b_loop, "b".into(), "cycle/a".into(), COUNT, 64, COUNT);
    let (ra, rb) = with_timeout(Duration::from_secs(60), "both directions to finish", async {
        tokio::join!(tokio::spawn(to_b), tokio::spawn(to_a))
    })
    .await?;
    assert_each_publisher_in_order(&ra??, 1, COUNT);
    assert_each_publisher_in_order(&rb??, 1, COUNT);
    let status = broker_status(&host).await?;
    assert_eq!(status.stalled_disconnects, 0, "a cycle must not need the stall timeout: {status:?}");
    assert_eq!(status.dropped.total_undelivered(), 0, "{status:?}");
    host.shutdown().await
}

#[actix_rt::test]
async fn qos0_for_a_full_subscriber_is_dropped_and_counted_without_slowing_the_publisher() -> Result<()> {
    const COUNT: usize = 20_000;
    let host = host_with(small_limits(16 << 10)).await?;
    let port = host.endpoints.plain.unwrap().port();
    let (dead, mut dead_loop) = raw_client(port, "dead-qos0", 100).await?;
    subscribe(&dead, &mut dead_loop, "flow/qos0", QoS::AtMostOnce).await?;
    let (client, mut eventloop) = raw_client(port, "qos0-publisher", 100).await?;
    let sender = tokio::spawn(async move {
        for _ in 0..COUNT {
            client.publish("flow/qos0", QoS::AtMostOnce, false, vec![b'x'; 1024]).await?;
        }
        client.disconnect().await?;
        Ok::<_, rumqttc::ClientError>(())
    });
    with_timeout(Duration::from_secs(60), "the QoS 0 publisher to send everything", async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await?;
    sender.await??;
    wait_until(TIMEOUT, "QoS 0 drops to be counted", || async {
        broker_status(&host).await.is_ok_and(|s| s.dropped.queue_full > 0)
    })
    .await?;
    drop(dead_loop);
    host.shutdown().await
}

#[actix_rt::test]
async fn broker_advertises_its_own_receive_maximum_to_mqtt5_clients() -> Result<()> {
    use rumqttc::v5::mqttbytes::v5::Packet as V5Packet;
    let host = TestHost::start().await?;
    let mut options = rumqttc::v5::MqttOptions::new("v5-client", "127.0.0.1", host.endpoints.plain.unwrap().port());
    options.set_receive_maximum(Some(10));
    let (_client, mut eventloop) = rumqttc::v5::AsyncClient::new(options, 10);
    let ack = with_timeout(TIMEOUT, "CONNACK", async {
        loop {
            if let rumqttc::v5::Event::Incoming(V5Packet::ConnAck(ack)) = eventloop.poll().await? {
                return Ok::<_, anyhow::Error>(ack);
            }
        }
    })
    .await??;
    let receive_max = ack.properties.and_then(|p| p.receive_max);
    assert_eq!(receive_max, Some(1024), "the server's own limit, whatever the client's is");
    host.shutdown().await
}

/// Kilobytes of resident memory of `turf` sampled every 50 ms while `work` runs; the peak.
async fn peak_rss_during<T>(turf: &RunningTurf, work: impl std::future::Future<Output = T>) -> Result<(T, u64)> {
    tokio::pin!(work);
    let mut peak = turf.rss_kb()?;
    loop {
        tokio::select! {
            out = &mut work => return Ok((out, peak.max(turf.rss_kb()?))),
            _ = tokio::time::sleep(Duration::from_millis(50)) => peak = peak.max(turf.rss_kb()?),
        }
    }
}

#[actix_rt::test]
async fn fan_in_of_a_hundred_publishers_keeps_memory_bounded_and_delivers_everything() -> Result<()> {
    const PUBLISHERS: usize = 100;
    const EACH: usize = 200;
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    let (turf, _, _) = RunningTurf::start(&root)?;
    let update = serde_json::json!({"aws.greengrass.clientdevices.Auth": {
        "MERGE": permissive_auth(), "RESET": ["/deviceGroups"]
    }});
    let out = turf.turf(&["deployment", "create", "--update-config", &update.to_string()]);
    if !out.status.success() {
        bail!("deploying the auth policy failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let idle = turf.rss_kb()?;
    let (sub, mut sub_loop) = raw_client(turf.plain, "fan-in-subscriber", 100).await?;
    subscribe(&sub, &mut sub_loop, "flow/hundred", QoS::AtLeastOnce).await?;
    let consumer = tokio::spawn(slow_consumer(sub, sub_loop, PUBLISHERS * EACH, Duration::ZERO));
    let mut publishers = Vec::new();
    for i in 0..PUBLISHERS {
        let id = format!("p{i}");
        let (client, eventloop) = raw_client(turf.plain, &id, 64).await?;
        publishers.push(tokio::spawn(publish_all(client, eventloop, id, "flow/hundred".into(), EACH, 64, 0)));
    }
    let work = async {
        for p in publishers {
            p.await??;
        }
        with_timeout(Duration::from_secs(120), "the subscriber to get everything", consumer).await??
    };
    let (got, peak) = peak_rss_during(&turf, work).await?;
    assert_each_publisher_in_order(&got?.0, PUBLISHERS, EACH);
    let grown = peak.saturating_sub(idle);
    assert!(grown < 48 * 1024, "RSS grew by {grown} kB under the flood (idle {idle} kB, peak {peak} kB)");
    turf.terminate()?;
    Ok(())
}

#[actix_rt::test]
async fn a_device_flooding_its_shadow_is_slowed_to_the_shadow_managers_pace_and_loses_no_update() -> Result<()> {
    const UPDATES: usize = 300;
    const HOST: u32 = 16 << 10;
    let host = host_with(BrokerLimits { host_queue_bytes: HOST, ..small_limits(64 << 10) }).await?;
    host.deploy_shadow_routes().await?;
    // The shadow manager's own rate limits would answer most of this flood with 429 (that is
    // tested in shadows.rs); lifted here, the hops before it must slow the device instead.
    let unlimited = serde_json::json!({"rateLimits": {
        "maxLocalRequestsPerSecondPerThing": 1_000_000, "maxTotalLocalRequestsRate": 1_000_000}});
    let record = host.deploy(&turf_tests::merge_update("aws.greengrass.ShadowManager", unlimited)).await?;
    assert_eq!(record.state, turf_host::deploy::model::DeploymentState::Succeeded, "{:?}", record.error);
    let port = host.endpoints.plain.unwrap().port();
    let (client, mut eventloop) = raw_client(port, "FloodThing", 100).await?;
    let base = "$aws/things/FloodThing/shadow";
    subscribe(&client, &mut eventloop, &format!("{base}/update/accepted"), QoS::AtLeastOnce).await?;
    let sender = {
        let client = client.clone();
        tokio::spawn(async move {
            for n in 1..=UPDATES {
                let update = serde_json::json!({"state": {"reported": {"n": n}}});
                client.publish(format!("{base}/update"), QoS::AtLeastOnce, false, update.to_string()).await?;
            }
            Ok::<_, rumqttc::ClientError>(())
        })
    };
    let (mut acked, mut accepted, mut peak, mut last_version) = (0, 0, 0, 0);
    let mut sample = tokio::time::interval(Duration::from_millis(20));
    with_timeout(Duration::from_secs(60), "every update acknowledged and accepted", async {
        while acked < UPDATES || accepted < UPDATES {
            tokio::select! {
                event = eventloop.poll() => match event? {
                    Event::Incoming(Packet::PubAck(_)) => acked += 1,
                    Event::Incoming(Packet::Publish(p)) => {
                        accepted += 1;
                        let document: serde_json::Value = serde_json::from_slice(&p.payload)?;
                        last_version = document["version"].as_u64().unwrap_or_default();
                    }
                    _ => {}
                },
                _ = sample.tick() => peak = peak.max(broker_status(&host).await?.host_bytes),
            }
        }
        Ok::<_, anyhow::Error>(())
    })
    .await??;
    sender.await??;
    assert_eq!(last_version, UPDATES as u64, "every update was applied, in order");
    let status = broker_status(&host).await?;
    assert!(status.host_waits > 0, "the device was never slowed: {status:?}");
    assert!(peak <= status.host_bytes_limit, "{peak} bytes in transit, limit {}", status.host_bytes_limit);
    assert_eq!(status.dropped.total_undelivered(), 0, "{status:?}");
    host.shutdown().await
}

/// Round trips of one client to itself (publish, receive its own message) every `period` until
/// `stop` is set; the round-trip times.
async fn round_trips(port: u16, id: String, period: Duration, stop: Arc<AtomicBool>) -> Result<Vec<Duration>> {
    let (client, mut eventloop) = raw_client(port, &id, 10).await?;
    let topic = format!("rtt/{id}");
    subscribe(&client, &mut eventloop, &topic, QoS::AtLeastOnce).await?;
    let mut times = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let sent = tokio::time::Instant::now();
        client.publish(topic.clone(), QoS::AtLeastOnce, false, "ping").await?;
        with_timeout(TIMEOUT, "a round trip", async {
            loop {
                if let Event::Incoming(Packet::Publish(p)) = eventloop.poll().await?
                    && p.topic == topic
                {
                    return Ok::<_, anyhow::Error>(());
                }
            }
        })
        .await??;
        times.push(sent.elapsed());
        tokio::time::sleep(period).await;
    }
    Ok(times)
}

/// The hostile case of issue 12: one authorized device publishes to its own shadow as fast as
/// it can for 10 s, against a `turf run` process with default limits. Bounds (debug build, on
/// a loaded 2-core machine): the process survives, its RSS stays within 32 MB of idle, and
/// three other devices' round-trip p99 stays under 500 ms.
#[actix_rt::test]
async fn a_device_flooding_its_shadow_for_ten_seconds_cannot_grow_the_host_or_slow_other_devices() -> Result<()> {
    const FLOOD: Duration = Duration::from_secs(10);
    const RSS_GROWTH_KB: u64 = 32 * 1024;
    const P99: Duration = Duration::from_millis(500);
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    let (turf, _, _) = RunningTurf::start(&root)?;
    let routes = serde_json::json!({
        "aws.greengrass.clientdevices.Auth": {"MERGE": permissive_auth(), "RESET": ["/deviceGroups"]},
        "aws.greengrass.clientdevices.mqtt.Bridge": {"MERGE": {"mqttTopicMapping": {
            "ShadowsLocalMqttToPubsub": {"topic": "$aws/things/+/shadow/#", "source": "LocalMqtt", "target": "Pubsub"},
            "ShadowsPubsubToLocalMqtt": {"topic": "$aws/things/+/shadow/#", "source": "Pubsub", "target": "LocalMqtt"}}}}
    });
    let out = turf.turf(&["deployment", "create", "--update-config", &routes.to_string()]);
    if !out.status.success() {
        bail!("deploying failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let idle = turf.rss_kb()?;
    let stop = Arc::new(AtomicBool::new(false));
    let observers: Vec<_> = (0..3)
        .map(|i| {
            tokio::spawn(round_trips(turf.plain, format!("bystander{i}"), Duration::from_millis(20), Arc::clone(&stop)))
        })
        .collect();

    let (flooder, mut flood_loop) = raw_client(turf.plain, "FloodThing", 100).await?;
    let base = "$aws/things/FloodThing/shadow";
    subscribe(&flooder, &mut flood_loop, &format!("{base}/update/+"), QoS::AtMostOnce).await?;
    let flood = {
        let stop = Arc::clone(&stop);
        async move {
            let sender = {
                let flooder = flooder.clone();
                let stop = Arc::clone(&stop);
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let update = serde_json::json!({"state": {"reported": {"n": n}}}).to_string();
                        if flooder.publish(format!("{base}/update"), QoS::AtLeastOnce, false, update).await.is_err() {
                            break;
                        }
                    }
                    n
                })
            };
            let (mut accepted, mut rejected) = (0u64, 0u64);
            let deadline = tokio::time::Instant::now() + FLOOD;
            while tokio::time::Instant::now() < deadline {
                match tokio::time::timeout_at(deadline, flood_loop.poll()).await {
                    Ok(Ok(Event::Incoming(Packet::Publish(p)))) if p.topic.ends_with("/accepted") => accepted += 1,
                    Ok(Ok(Event::Incoming(Packet::Publish(p)))) if p.topic.ends_with("/rejected") => rejected += 1,
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(anyhow::anyhow!("the flooder's connection failed: {e}")),
                    Err(_) => break,
                }
            }
            stop.store(true, Ordering::Relaxed);
            sender.abort();
            Ok::<_, anyhow::Error>((accepted, rejected))
        }
    };
    let (outcome, peak) = peak_rss_during(&turf, flood).await?;
    let (accepted, rejected) = outcome?;
    let mut times = Vec::new();
    for observer in observers {
        times.extend(observer.await??);
    }
    times.sort();
    let p99 = times[(times.len() * 99 / 100).min(times.len() - 1)];
    let grown = peak.saturating_sub(idle);
    println!(
        "shadow flood 10 s: {accepted} accepted, {rejected} rejected; RSS idle {idle} kB, peak {peak} kB; \
         bystander round trips: {} samples, p50 {:?}, p99 {p99:?}",
        times.len(),
        times[times.len() / 2]
    );
    assert!(accepted > 0 && rejected > 0, "the flood was served and throttled ({accepted} / {rejected})");
    assert!(times.len() >= 100, "the bystanders kept working: {} round trips", times.len());
    assert!(grown < RSS_GROWTH_KB, "RSS grew by {grown} kB (idle {idle} kB, peak {peak} kB)");
    assert!(p99 < P99, "bystanders' round-trip p99 {p99:?} under the flood");
    let status = turf.turf(&["status"]);
    assert!(status.status.success(), "the host still answers: {}", String::from_utf8_lossy(&status.stderr));
    assert!(turf.terminate()?.success(), "the host exits cleanly after the flood");
    Ok(())
}
