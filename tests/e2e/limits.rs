//! Per-device limits of the `[broker]` table, each tried by a client that goes past it: the
//! refusal is the MQTT reason code (or a closed socket before CONNECT), it is counted in
//! `turf status`, and well-behaved clients are unaffected.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use rumqttc::{Event, Packet, QoS, SubscribeReasonCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use turf_host::broker::BrokerLimits;
use turf_host::broker::stats::BrokerStatus;
use turf_tests::{Device, HostOptions, TIMEOUT, TestHost, wait_until, with_timeout};

async fn host_with(limits: BrokerLimits) -> Result<TestHost> {
    TestHost::start_with(HostOptions { broker: limits, ..HostOptions::default() }).await
}

async fn broker_status(host: &TestHost) -> Result<BrokerStatus> {
    host.client().status().await?.broker.context("status without broker figures")
}

/// Whether the broker closes `socket` within `within` without sending anything.
async fn closed_by_broker(socket: &mut TcpStream, within: Duration) -> Result<bool> {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(within, socket.read(&mut byte)).await {
        Ok(Ok(0)) | Ok(Err(_)) => Ok(true),
        Ok(Ok(_)) => anyhow::bail!("the broker sent data to a socket that sent nothing"),
        Err(_) => Ok(false),
    }
}

/// Sends DISCONNECT and closes the connection once it is written.
async fn leave(mut device: Device) -> Result<()> {
    device.client.disconnect().await?;
    with_timeout(TIMEOUT, "DISCONNECT to be written", async {
        while !matches!(device.next(TIMEOUT).await, Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_)) {}
    })
    .await?;
    device.vanish().await;
    Ok(())
}

#[actix_rt::test]
async fn connections_over_the_listener_limit_are_closed_at_once_and_counted() -> Result<()> {
    let host = host_with(BrokerLimits { max_connections: 3, ..BrokerLimits::default() }).await?;
    let mut devices = Vec::new();
    for i in 0..3 {
        devices.push(Device::plain(&host, &format!("dev{i}")).await?);
    }
    assert!(Device::plain(&host, "dev3").await.is_err(), "a fourth connection is refused");
    let status = broker_status(&host).await?;
    assert!(status.refused.over_max_connections >= 1, "{status:?}");
    assert_eq!(status.connections, 3, "the first three are untouched: {status:?}");

    devices.pop().context("three devices")?.client.disconnect().await?;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let _replacement = loop {
        match Device::plain(&host, "dev3").await {
            Ok(device) => break device,
            Err(_) if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(error) => return Err(error.context("the place of a closed connection was never freed")),
        }
    };
    host.shutdown().await
}

/// `max_connections = 0` means no limit (rmqtt must still get a usable CONNECT pool: a 0 it
/// took literally left connections hanging), and `max_handshakes` refuses 0 by name.
#[actix_rt::test]
async fn no_connection_limit_still_connects_and_zero_handshakes_is_refused() -> Result<()> {
    let host = host_with(BrokerLimits { max_connections: 0, ..BrokerLimits::default() }).await?;
    Device::plain(&host, "unlimited").await.context("max_connections = 0 must not stop connections")?;
    host.shutdown().await?;
    let settings: turf_host::broker::limits::BrokerSettings = toml::from_str("max_handshakes = 0")?;
    let error = BrokerLimits::try_from(settings).unwrap_err();
    assert_eq!(error.to_string(), "broker.max_handshakes: 0 is out of range (1 to 10000)");
    Ok(())
}

#[actix_rt::test]
async fn silent_sockets_are_closed_after_the_handshake_timeout_and_hold_no_handshake_place() -> Result<()> {
    // A timeout long enough that a loaded machine tells "refused at once" from "timed out".
    let timeout = Duration::from_secs(2);
    let limits = BrokerLimits { handshake_timeout: timeout, max_handshakes: 2, ..BrokerLimits::default() };
    let host = host_with(limits).await?;
    let plain = host.endpoints.plain.context("plain listener")?;
    let mut first = TcpStream::connect(plain).await?;
    let mut second = TcpStream::connect(plain).await?;
    // Both handshake places are taken: a third socket is closed at once, before any timeout.
    let mut third = TcpStream::connect(plain).await?;
    let opened = std::time::Instant::now();
    ensure!(closed_by_broker(&mut third, TIMEOUT).await?, "third socket still open");
    ensure!(opened.elapsed() < timeout, "the third socket was timed out, not refused: {:?}", opened.elapsed());
    // The silent two are closed by the timeout, on the TLS listener just the same.
    ensure!(closed_by_broker(&mut first, TIMEOUT).await?, "first silent socket never closed");
    ensure!(closed_by_broker(&mut second, TIMEOUT).await?, "second silent socket never closed");
    let mut tls = TcpStream::connect(host.endpoints.mqtt).await?;
    ensure!(closed_by_broker(&mut tls, TIMEOUT).await?, "a silent socket on the TLS listener stays open");
    // A client that completed TLS and then stalls before its CONNECT is closed as well.
    let mut slow = TcpStream::connect(plain).await?;
    slow.write_all(&[0x10]).await?; // the first byte of a CONNECT, and nothing more
    ensure!(closed_by_broker(&mut slow, TIMEOUT).await?, "a half-sent CONNECT holds its socket");

    let status = broker_status(&host).await?;
    assert!(status.refused.over_max_handshakes >= 1, "{status:?}");
    assert!(status.refused.handshake_timeouts >= 3, "{status:?}");
    Device::plain(&host, "polite").await.context("a well-behaved client still connects")?;
    host.shutdown().await
}

#[actix_rt::test]
async fn a_packet_over_the_size_limit_closes_its_connection_and_reaches_nobody() -> Result<()> {
    let host = host_with(BrokerLimits { max_packet_bytes: 4096, ..BrokerLimits::default() }).await?;
    let mut observer = Device::plain(&host, "observer").await?;
    observer.subscribe("big/#", QoS::AtLeastOnce).await?;
    let mut options = Device::plain_options(&host, "big-sender");
    options.set_max_packet_size(1 << 20, 1 << 20);
    let mut sender = Device::connect(options).await?;
    sender.client.publish("big/one", QoS::AtLeastOnce, false, vec![b'x'; 8192]).await?;
    sender.wait_closed(TIMEOUT).await.context("an oversized packet must end its connection")?;
    let polite = Device::plain(&host, "polite").await?;
    polite.client.publish("big/small", QoS::AtLeastOnce, false, vec![b'y'; 1024]).await?;
    let seen = observer.collect_until(TIMEOUT, |p| p.topic == "big/small").await?;
    assert!(seen.iter().all(|p| p.topic != "big/one"), "the oversized message was routed");
    host.shutdown().await
}

#[actix_rt::test]
async fn subscriptions_beyond_the_quota_or_too_deep_get_their_own_failure_codes() -> Result<()> {
    use rumqttc::v5::mqttbytes::QoS as QoS5;
    use rumqttc::v5::mqttbytes::v5::{Packet as Packet5, PubAckReason, SubscribeReasonCode as Code5};
    use rumqttc::v5::{AsyncClient, Event as Event5, MqttOptions};
    let limits = BrokerLimits { max_subscriptions: 2, max_topic_levels: 3, ..BrokerLimits::default() };
    let host = host_with(limits).await?;
    let plain = host.endpoints.plain.context("plain listener")?;
    let (client, mut eventloop) = AsyncClient::new(MqttOptions::new("v5-device", "127.0.0.1", plain.port()), 20);
    for filter in ["a/1", "a/2", "a/1", "a/3", "a/b/c/d"] {
        client.subscribe(filter, QoS5::AtLeastOnce).await?;
    }
    client.publish("a/b/c/d", QoS5::AtLeastOnce, false, "deep").await?;
    client.publish("a/1", QoS5::AtLeastOnce, false, "fine").await?;
    let (mut codes, mut acks) = (Vec::new(), Vec::new());
    with_timeout(TIMEOUT, "five SUBACKs and two PUBACKs", async {
        while codes.len() < 5 || acks.len() < 2 {
            match eventloop.poll().await? {
                Event5::Incoming(Packet5::SubAck(ack)) => codes.extend(ack.return_codes),
                Event5::Incoming(Packet5::PubAck(ack)) => acks.push(ack.reason),
                _ => {}
            }
        }
        Ok::<_, anyhow::Error>(())
    })
    .await??;
    let granted = Code5::Success(QoS5::AtLeastOnce);
    assert_eq!(
        codes,
        vec![granted, granted, granted, Code5::QuotaExceeded, Code5::TopicFilterInvalid],
        "a re-subscription is not a new one; the third new one is over quota; five levels are too deep"
    );
    assert_eq!(acks, vec![PubAckReason::TopicNameInvalid, PubAckReason::Success]);

    // MQTT 3.1.1 has one failure code for all of it.
    let mut old = Device::plain(&host, "v311-device").await?;
    old.subscribe("b/1", QoS::AtLeastOnce).await?;
    old.subscribe("b/2", QoS::AtLeastOnce).await?;
    assert_eq!(old.subscribe("b/3", QoS::AtLeastOnce).await?, vec![SubscribeReasonCode::Failure]);
    // ... and none for a publish: a publish over a limit closes its connection.
    old.client.publish("b/c/d/e", QoS::AtLeastOnce, false, "deep").await?;
    old.wait_closed(TIMEOUT).await.context("a 3.1.1 publish over the depth limit must end the connection")?;
    let status = broker_status(&host).await?;
    assert_eq!((status.refused.subscribes, status.refused.publishes), (3, 2), "{status:?}");
    host.shutdown().await
}

#[actix_rt::test]
async fn a_client_over_the_publish_rate_is_slowed_down_and_loses_nothing() -> Result<()> {
    const RATE: u32 = 50;
    const COUNT: usize = 200;
    let host = host_with(BrokerLimits { publish_rate: RATE, ..BrokerLimits::default() }).await?;
    let mut observer = Device::plain(&host, "observer").await?;
    observer.subscribe("rate/#", QoS::AtLeastOnce).await?;
    let flooder = Device::plain(&host, "flooder").await?;
    let started = std::time::Instant::now();
    for n in 0..COUNT {
        flooder.client.publish(format!("rate/{n}"), QoS::AtMostOnce, false, "x").await?;
    }
    let last = format!("rate/{}", COUNT - 1);
    let seen = observer.collect_until(Duration::from_secs(30), |p| p.topic == last).await?;
    let elapsed = started.elapsed();
    assert_eq!(seen.len(), COUNT, "every message arrives, in order");
    // One second's burst, then RATE per second: the last of COUNT cannot pass before this.
    let floor = Duration::from_secs_f64((COUNT as f64 - f64::from(RATE)) / f64::from(RATE) * 0.9);
    assert!(elapsed >= floor, "{COUNT} publishes at {RATE}/s took only {elapsed:?}");
    let status = broker_status(&host).await?;
    assert!(status.refused.publish_throttles > 0, "{status:?}");
    assert_eq!(status.dropped.total_undelivered(), 0, "{status:?}");
    host.shutdown().await
}

#[actix_rt::test]
async fn a_persistent_session_is_kept_no_longer_than_the_limit() -> Result<()> {
    let host =
        host_with(BrokerLimits { max_session_expiry: Duration::from_secs(1), ..BrokerLimits::default() }).await?;
    let mut options = Device::plain_options(&host, "sleeper");
    options.set_clean_session(false);
    let mut device = Device::connect(options.clone()).await?;
    device.subscribe("wake/#", QoS::AtLeastOnce).await?;
    leave(device).await?;
    // Gone once the broker's expiry timer ran (it may run late on a loaded machine).
    wait_until(TIMEOUT, "the sleeper's session to expire", || async {
        let clients = host.client().clients().await;
        clients.is_ok_and(|r| r.sessions.iter().all(|s| s.client_id != "sleeper"))
    })
    .await?;
    let mut back = Device::start(options);
    let present = with_timeout(TIMEOUT, "CONNACK", async {
        loop {
            if let Ok(Event::Incoming(Packet::ConnAck(ack))) = back.next(TIMEOUT).await {
                return ack.session_present;
            }
        }
    })
    .await?;
    assert!(!present, "the session outlived max_session_expiry");
    host.shutdown().await
}

#[actix_rt::test]
async fn an_offline_session_holds_at_most_its_message_count() -> Result<()> {
    const KEPT: u32 = 5;
    let limits = BrokerLimits { session_queue_messages: KEPT, ..BrokerLimits::default() };
    let host = host_with(limits).await?;
    let mut options = Device::plain_options(&host, "offline");
    options.set_clean_session(false);
    let mut device = Device::connect(options.clone()).await?;
    device.subscribe("queue/#", QoS::AtLeastOnce).await?;
    leave(device).await?;
    let publisher = Device::plain(&host, "publisher").await?;
    for n in 0..20 {
        publisher.client.publish(format!("queue/{n}"), QoS::AtLeastOnce, false, "x").await?;
    }
    wait_until(TIMEOUT, "the publishes to be routed", || async {
        broker_status(&host).await.is_ok_and(|s| s.dropped.queue_full >= 15)
    })
    .await?;
    let mut back = Device::connect(options).await?;
    // The kept ones within the suite's timeout, then a quiet second for any extra.
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let wait = match received.len() < KEPT as usize {
            true => deadline.saturating_duration_since(tokio::time::Instant::now()),
            false => Duration::from_secs(1),
        };
        match back.next(wait).await {
            Ok(Event::Incoming(Packet::Publish(p))) => received.push(p.topic),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let first: Vec<String> = (0..KEPT).map(|n| format!("queue/{n}")).collect();
    assert_eq!(received, first, "the first {KEPT} were kept, in order");
    let status = broker_status(&host).await?;
    assert_eq!(status.dropped.queue_full, 15, "{status:?}");
    host.shutdown().await
}

#[actix_rt::test]
async fn a_retained_message_the_store_has_no_room_for_is_refused_with_quota_exceeded() -> Result<()> {
    use rumqttc::v5::mqttbytes::QoS as QoS5;
    use rumqttc::v5::mqttbytes::v5::PubAckReason;
    use rumqttc::v5::{AsyncClient, MqttOptions};
    let host = host_with(BrokerLimits { retained_messages: 2, ..BrokerLimits::default() }).await?;
    let plain = host.endpoints.plain.context("plain listener")?;
    let (client, mut eventloop) = AsyncClient::new(MqttOptions::new("retainer", "127.0.0.1", plain.port()), 20);
    client.publish("r/1", QoS5::AtLeastOnce, true, "1").await?;
    client.publish("r/2", QoS5::AtLeastOnce, true, "2").await?;
    client.publish("r/3", QoS5::AtLeastOnce, true, "3").await?;
    client.publish("r/1", QoS5::AtLeastOnce, true, "1 again").await?;
    client.publish("r/3", QoS5::AtLeastOnce, false, "live only").await?;
    let acks = turf_tests::v5::pubacks(&mut eventloop, 5).await?;
    use PubAckReason::{QuotaExceeded, Success};
    assert_eq!(acks, vec![Success, Success, QuotaExceeded, Success, Success], "only a new retained topic is over");
    let status = broker_status(&host).await?;
    assert_eq!((status.retained_messages, status.refused.retained), (2, 1), "{status:?}");
    host.shutdown().await
}
