//! The device broker: who may connect, and MQTT behaviour devices rely on.

use std::sync::Arc;

use anyhow::Result;
use rumqttc::{Event, LastWill, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use turf_tests::{Device, HostOptions, TIMEOUT, TestHost, all_seen, device_tls, foreign_certs};

/// Attempts a TLS connection and reports how it ended.
async fn try_connect(host: &TestHost, client_id: &str, tls: rustls::ClientConfig) -> Result<()> {
    let mut options = MqttOptions::new(client_id, "localhost", host.endpoints.mqtt.port());
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(tls))));
    Device::connect(options).await.map(|_| ())
}

#[actix_rt::test]
async fn registered_device_connects_with_its_thing_name() -> Result<()> {
    let host = TestHost::start().await?;
    let certs = host.add_device("MyClientDevice1")?;
    let mut device = Device::tls(&host, "MyClientDevice1", &certs).await?;
    device.subscribe("clients/MyClientDevice1/hello/world", QoS::AtLeastOnce).await?;
    device.client.publish("clients/MyClientDevice1/hello/world", QoS::AtLeastOnce, false, "hi").await?;
    let got = device.collect_until(TIMEOUT, |_| true).await?;
    assert_eq!(&got[0].payload[..], b"hi");
    host.shutdown().await
}

#[actix_rt::test]
async fn certificate_of_another_thing_is_refused() -> Result<()> {
    let host = TestHost::start().await?;
    let certs = host.add_device("MyClientDevice1")?;
    host.add_device("OtherDevice")?;
    let err = try_connect(&host, "OtherDevice", device_tls(&certs)).await.unwrap_err();
    assert!(err.to_string().contains("NotAuthorized"), "{err}");
    host.shutdown().await
}

#[actix_rt::test]
async fn certificate_from_another_ca_is_refused() -> Result<()> {
    let host = TestHost::start().await?;
    let certs = host.add_device("MyClientDevice1")?;
    let rogue = foreign_certs(host.dir.path(), "MyClientDevice1", &certs);
    let err = try_connect(&host, "MyClientDevice1", device_tls(&rogue)).await.unwrap_err();
    let text = err.to_string();
    assert!(!text.contains("timed out"), "refusal must be prompt: {text}");
    host.shutdown().await
}

#[actix_rt::test]
async fn connection_without_a_client_certificate_is_refused() -> Result<()> {
    let host = TestHost::start().await?;
    let certs = host.add_device("MyClientDevice1")?;
    let tls = {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(certs.join("ca.pem"))? {
            roots.add(c?)?;
        }
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth()
    };
    let err = try_connect(&host, "MyClientDevice1", tls).await.unwrap_err();
    assert!(!err.to_string().contains("timed out"), "{err}");
    host.shutdown().await
}

#[actix_rt::test]
async fn plain_listener_must_be_loopback() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = turf_host::HostConfig::new(dir.path().join("root"));
    config.mqtt_listen = "127.0.0.1:0".parse()?;
    config.plain_listen = Some("0.0.0.0:0".parse()?);
    let err = turf_host::supervisor::start(config).await.err().expect("start must fail");
    assert!(err.to_string().contains("not a loopback address"), "{err}");
    Ok(())
}

#[actix_rt::test]
async fn retained_messages_reach_late_subscribers_and_empty_payload_clears_them() -> Result<()> {
    let host = TestHost::start().await?;
    let publisher = Device::plain(&host, "publisher").await?;
    publisher.client.publish("status/lamp", QoS::AtLeastOnce, true, "on").await?;
    publisher.client.publish("status/door", QoS::AtLeastOnce, true, "closed").await?;
    publisher.client.publish("status/door", QoS::AtLeastOnce, true, "").await?;
    publisher.client.publish("status/sentinel", QoS::AtLeastOnce, false, "x").await?;
    let mut watcher = Device::plain(&host, "watcher").await?;
    watcher.subscribe("status/sentinel", QoS::AtLeastOnce).await?;
    publisher.client.publish("status/sentinel", QoS::AtLeastOnce, false, "x").await?;
    watcher.collect_until(TIMEOUT, |p| p.topic == "status/sentinel").await?;
    let mut late = Device::plain(&host, "late").await?;
    late.subscribe("status/+", QoS::AtLeastOnce).await?;
    late.client.publish("status/sentinel", QoS::AtLeastOnce, false, "end").await?;
    // Retained messages go out from a task of their own: the live sentinel may overtake them.
    let got = late.collect_until(TIMEOUT, all_seen(&["status/sentinel", "status/lamp"])).await?;
    let retained: Vec<_> = got.iter().filter(|p| p.retain).map(|p| (p.topic.as_str(), &p.payload[..])).collect();
    assert_eq!(retained, vec![("status/lamp", &b"on"[..])]);
    host.shutdown().await
}

/// Retained messages are kept in `turf.db`: a restart serves the same ones (a cleared one stays
/// cleared), as Greengrass's Moquette does.
#[actix_rt::test]
async fn retained_messages_survive_a_host_restart() -> Result<()> {
    let host = TestHost::start().await?;
    let mut publisher = Device::plain(&host, "publisher").await?;
    publisher.client.publish("status/lamp", QoS::AtLeastOnce, true, "on").await?;
    publisher.client.publish("status/door", QoS::AtLeastOnce, true, "closed").await?;
    publisher.client.publish("status/door", QoS::AtLeastOnce, true, "").await?;
    publisher.client.publish("status/fan", QoS::AtMostOnce, true, vec![0u8, 159, 146, 150]).await?;
    // A round trip through the broker: everything before it was handled.
    publisher.subscribe("status/sentinel", QoS::AtLeastOnce).await?;
    publisher.client.publish("status/sentinel", QoS::AtLeastOnce, false, "x").await?;
    publisher.collect_until(TIMEOUT, |p| p.topic == "status/sentinel").await?;
    publisher.vanish().await;

    let host = host.restart().await?;
    let mut late = Device::plain(&host, "late").await?;
    late.subscribe("status/+", QoS::AtLeastOnce).await?;
    late.client.publish("status/sentinel", QoS::AtLeastOnce, false, "end").await?;
    let got = late.collect_until(TIMEOUT, all_seen(&["status/sentinel", "status/lamp", "status/fan"])).await?;
    let mut retained: Vec<_> =
        got.iter().filter(|p| p.retain).map(|p| (p.topic.as_str(), p.payload.to_vec(), p.qos)).collect();
    retained.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(
        retained,
        vec![
            ("status/fan", vec![0u8, 159, 146, 150], QoS::AtMostOnce),
            ("status/lamp", b"on".to_vec(), QoS::AtLeastOnce)
        ]
    );
    let status = host.client().status().await?.broker.expect("broker status");
    assert_eq!(status.retained_messages, 2, "{status:?}");
    host.shutdown().await
}

#[actix_rt::test]
async fn qos2_is_delivered_exactly_once() -> Result<()> {
    let host = TestHost::start().await?;
    let mut sub = Device::plain(&host, "sub").await?;
    sub.subscribe("q2/#", QoS::ExactlyOnce).await?;
    let publisher = Device::plain(&host, "pub").await?;
    // More than rmqtt's default in-flight window of 16, sent without waiting for acks.
    for i in 0..100 {
        publisher.client.publish(format!("q2/{i}"), QoS::ExactlyOnce, false, i.to_string()).await?;
    }
    let got = sub.collect_until(TIMEOUT, |p| p.topic == "q2/99").await?;
    let topics: Vec<_> = got.iter().map(|p| p.topic.clone()).collect();
    assert_eq!(topics, (0..100).map(|i| format!("q2/{i}")).collect::<Vec<_>>());
    assert!(got.iter().all(|p| p.qos == QoS::ExactlyOnce));
    host.shutdown().await
}

#[actix_rt::test]
async fn last_will_is_published_when_a_device_vanishes() -> Result<()> {
    let host = TestHost::start().await?;
    let mut watcher = Device::plain(&host, "watcher").await?;
    watcher.subscribe("wills/#", QoS::AtLeastOnce).await?;
    let mut options = Device::plain_options(&host, "mortal");
    options.set_last_will(LastWill::new("wills/mortal", "gone", QoS::AtLeastOnce, false));
    let mortal = Device::connect(options).await?;
    mortal.vanish().await;
    let got = watcher.collect_until(TIMEOUT, |p| p.topic == "wills/mortal").await?;
    assert_eq!(&got.last().unwrap().payload[..], b"gone");
    host.shutdown().await
}

#[actix_rt::test]
async fn persistent_session_keeps_subscriptions_and_queues_qos1_while_offline() -> Result<()> {
    let host = TestHost::start().await?;
    let mut options = Device::plain_options(&host, "sleepy");
    options.set_clean_session(false);
    let mut sleepy = Device::connect(options.clone()).await?;
    sleepy.subscribe("mail/#", QoS::AtLeastOnce).await?;
    sleepy.vanish().await;
    let sender = Device::plain(&host, "sender").await?;
    sender.client.publish("mail/1", QoS::AtLeastOnce, false, "while you were out").await?;
    let mut probe = Device::plain(&host, "probe").await?;
    probe.subscribe("mail/#", QoS::AtLeastOnce).await?;
    sender.client.publish("mail/2", QoS::AtLeastOnce, false, "second").await?;
    probe.collect_until(TIMEOUT, |p| p.topic == "mail/2").await?;
    let mut back = Device::start(options);
    let mut present = false;
    let mut topics = Vec::new();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while topics.len() < 2 && tokio::time::Instant::now() < deadline {
        match back.next(TIMEOUT).await? {
            Event::Incoming(Packet::ConnAck(ack)) => present = ack.session_present,
            Event::Incoming(Packet::Publish(p)) => topics.push(p.topic),
            _ => {}
        }
    }
    assert!(present, "session must be resumed");
    assert_eq!(topics, vec!["mail/1".to_owned(), "mail/2".to_owned()]);
    host.shutdown().await
}

#[actix_rt::test]
async fn dollar_aws_topics_work_and_are_hidden_from_hash() -> Result<()> {
    let host = TestHost::start().await?;
    let mut everything = Device::plain(&host, "everything").await?;
    everything.subscribe("#", QoS::AtLeastOnce).await?;
    let mut shadow = Device::plain(&host, "shadow").await?;
    let codes = shadow.subscribe("$aws/things/+/shadow/#", QoS::AtLeastOnce).await?;
    assert!(matches!(codes[0], rumqttc::SubscribeReasonCode::Success(_)));
    let publisher = Device::plain(&host, "MyClientDevice1").await?;
    publisher.client.publish("$aws/things/MyClientDevice1/shadow/update", QoS::AtLeastOnce, false, "{}").await?;
    publisher.client.publish("plain/marker", QoS::AtLeastOnce, false, "m").await?;
    let got = shadow.collect_until(TIMEOUT, |_| true).await?;
    assert_eq!(got[0].topic, "$aws/things/MyClientDevice1/shadow/update");
    let seen = everything.collect_until(TIMEOUT, |p| p.topic == "plain/marker").await?;
    assert!(seen.iter().all(|p| !p.topic.starts_with('$')), "{:?}", seen.iter().map(|p| &p.topic).collect::<Vec<_>>());
    host.shutdown().await
}

#[actix_rt::test]
async fn shutdown_closes_the_listeners() -> Result<()> {
    let host = TestHost::start_with(HostOptions { plain: true, ..HostOptions::default() }).await?;
    let addr = host.endpoints.mqtt;
    let plain = host.endpoints.plain.unwrap();
    let socket = host.endpoints.socket.clone();
    host.shutdown().await?;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "TLS listener still open");
    assert!(tokio::net::TcpStream::connect(plain).await.is_err(), "plain listener still open");
    assert!(!socket.exists(), "management socket left behind");
    Ok(())
}

/// A raw MQTT 3.1.1 CONNECT for `client_id` with `keep_alive` seconds and a clean session.
fn connect_packet(client_id: &str, keep_alive: u16) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x02];
    body.extend_from_slice(&keep_alive.to_be_bytes());
    body.extend_from_slice(&u16::try_from(client_id.len()).unwrap().to_be_bytes());
    body.extend_from_slice(client_id.as_bytes());
    let mut packet = vec![0x10, u8::try_from(body.len()).unwrap()];
    packet.extend(body);
    packet
}

/// Connects over the plain listener with a raw socket and reads the CONNACK.
async fn raw_connect(host: &TestHost, client_id: &str, keep_alive: u16) -> Result<tokio::net::TcpStream> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(host.endpoints.plain.unwrap()).await?;
    socket.write_all(&connect_packet(client_id, keep_alive)).await?;
    let mut connack = [0u8; 4];
    turf_tests::with_timeout(TIMEOUT, "CONNACK", socket.read_exact(&mut connack)).await??;
    assert_eq!(connack, [0x20, 2, 0, 0], "CONNACK accepted");
    Ok(socket)
}

#[actix_rt::test]
async fn a_silent_client_is_dropped_once_its_keep_alive_passes_and_a_pinging_one_is_not() -> Result<()> {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = TestHost::start().await?;
    // rmqtt allows keep-alive + 3 s for keep-alives under 6 s: 5 s here.
    let started = Instant::now();
    let mut silent = raw_connect(&host, "silent", 2).await?;
    let mut pinging = raw_connect(&host, "pinging", 2).await?;
    let pings = async {
        let mut answer = [0u8; 2];
        for _ in 0..8 {
            pinging.write_all(&[0xC0, 0]).await?;
            pinging.read_exact(&mut answer).await?;
            assert_eq!(answer, [0xD0, 0], "PINGRESP");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Ok::<_, anyhow::Error>(())
    };
    let closed = async {
        let mut byte = [0u8; 1];
        let read = silent.read(&mut byte).await;
        assert!(matches!(read, Ok(0) | Err(_)), "the broker sent something instead of closing: {read:?}");
        started.elapsed()
    };
    let (pinged, closed_after) = tokio::join!(turf_tests::with_timeout(TIMEOUT, "pings", pings), closed);
    pinged??;
    assert!(closed_after >= Duration::from_millis(4500), "closed too early: {closed_after:?}");
    assert!(closed_after <= Duration::from_secs(8), "closed too late: {closed_after:?}");
    host.shutdown().await
}
