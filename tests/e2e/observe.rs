//! What the console reads beyond `turf status`, through the management API: the broker's
//! sessions and latest refusals (one per client and interval under a flood), what device groups
//! allow a thing, the test client (publish to devices and the bus, live watches, and its
//! refusals), a component's log lines and configuration previews, and HTTPS on the listener.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use rumqttc::QoS;
use serde_json::json;
use turf_host::deploy::config_update::ConfigUpdate;
use turf_host::mgmt::client::ClientError;
use turf_host::mgmt::messages::{ConsoleLimits, Target, TestPublish};
use turf_tests::{
    ConsoleSession, Device, EventStream, HostOptions, Mosquitto, TIMEOUT, TestHost, auth_update, console_session,
    http_request, lamp_policy, plugin_wasm, pubsub_access, session_cookie, stage_component, wait_until,
};

const PROBE: &str = "com.turf.test.Probe";

fn refused_status(result: Result<impl std::fmt::Debug, ClientError>) -> Option<u16> {
    match result {
        Err(ClientError::Refused { status, .. }) => Some(status),
        _ => None,
    }
}

#[actix_rt::test]
async fn sessions_access_and_refusals_are_reported_and_a_flood_adds_one_refusal() -> Result<()> {
    let host = TestHost::start().await?;
    host.deploy(&auth_update(lamp_policy())).await?;
    let lamp = Device::plain(&host, "Lamp1").await?;
    let client = host.client();
    let report = client.clients().await?;
    let session = report.sessions.iter().find(|s| s.client_id == "Lamp1").context("Lamp1 not listed")?;
    ensure!(session.connected && session.listener == "plain", "{session:?}");
    ensure!(session.remote.is_some_and(|r| r.ip().is_loopback()), "{session:?}");
    ensure!(chrono::Utc::now().timestamp() - session.since < 60, "{session:?}");

    // A device retrying a forbidden publish: every one is refused, one line is kept.
    for _ in 0..300 {
        lamp.client.publish("forbidden/x", QoS::AtMostOnce, false, "no").await?;
    }
    lamp.client.publish("lamps/Lamp1/state", QoS::AtLeastOnce, false, "ok").await?;
    wait_until(TIMEOUT, "the refusal listed", || async {
        client
            .clients()
            .await
            .is_ok_and(|r| r.denials.iter().any(|d| d.client_id == "Lamp1" && d.subject == "forbidden/x"))
    })
    .await?;
    let denials = client.clients().await?.denials;
    let lamp_denials: Vec<_> = denials.iter().filter(|d| d.client_id == "Lamp1").collect();
    ensure!(lamp_denials.len() == 1, "one entry per client and interval, not per packet: {lamp_denials:?}");
    ensure!(lamp_denials[0].action == "publish" && lamp_denials[0].reason.contains("Lamps"), "{lamp_denials:?}");

    let access = client.access("Lamp1").await?;
    ensure!(access.configured && access.groups.len() == 1, "{access:?}");
    let publish = access.groups[0].statements.iter().find(|s| s.name == "Publish").context("no Publish statement")?;
    assert_eq!(publish.resources, ["mqtt:topic:lamps/Lamp1/*"], "the thing variable resolved");
    ensure!(client.access("Fan").await?.groups.is_empty(), "no group selects Fan");
    assert_eq!(refused_status(client.access("bad%20name").await), Some(400), "an invalid thing name");

    lamp.vanish().await;
    wait_until(TIMEOUT, "Lamp1 gone or disconnected", || async {
        client.clients().await.is_ok_and(|r| r.sessions.iter().all(|s| s.client_id != "Lamp1" || !s.connected))
    })
    .await?;
    host.shutdown().await
}

#[actix_rt::test]
async fn the_test_client_publishes_to_devices_and_the_bus_and_watches_both_live() -> Result<()> {
    let host = TestHost::start().await?;
    let config =
        json!({"subscribe": ["console/#"], "accessControl": pubsub_access(PROBE, &["SubscribeToTopic"], &["*"])});
    let stage = host.scratch("stage");
    host.deploy(&stage_component(&stage, PROBE, "1.0.0", &plugin_wasm("test_probe"), config)).await?;
    let client = host.client();
    let mut lamp = Device::plain(&host, "Lamp").await?;
    lamp.subscribe("lamp/commands", QoS::AtLeastOnce).await?;
    let session = console_session(&host).await?;
    let http = host.endpoints.http;

    // Watch devices: what the lamp publishes streams in, with who sent it.
    let (status, devices) =
        EventStream::open(http, "/api/v1/messages/stream?target=local-mqtt&filter=lamp/%23", &session).await?;
    let mut devices = devices.with_context(|| format!("watch refused: {status}"))?;
    let publish = |target, topic: &str, payload: &str| TestPublish {
        target,
        topic: topic.into(),
        payload: payload.into(),
        qos: 1,
    };
    client.publish(&publish(Target::LocalMqtt, "lamp/commands", "on")).await?;
    let got = lamp.collect_until(TIMEOUT, |p| p.topic == "lamp/commands").await?;
    assert_eq!(got.last().map(|p| &p.payload[..]), Some(&b"on"[..]), "the device got the operator's message");
    lamp.client.publish("lamp/state", QoS::AtLeastOnce, false, "{\"on\": true}").await?;
    let event = devices.next(TIMEOUT).await?;
    assert_eq!((event["topic"].as_str(), event["from"].as_str()), (Some("lamp/state"), Some("Lamp")), "{event}");
    assert_eq!(event["payload"], "{\"on\": true}");

    // Watch the bus and publish on it: the stream and the subscribed component both see it.
    let (_, bus) =
        EventStream::open(http, "/api/v1/messages/stream?target=pubsub&filter=console/%23", &session).await?;
    let mut bus = bus.context("bus watch refused")?;
    client.publish(&publish(Target::Pubsub, "console/hello", "from the operator")).await?;
    let event = bus.next(TIMEOUT).await?;
    assert_eq!((event["topic"].as_str(), event["from"].as_str()), (Some("console/hello"), Some("turf-console")));
    host.wait_for_log(PROBE, "message console/hello: from the operator", 1).await?;
    let tail = client.log_tail(PROBE, 5).await?;
    ensure!(tail.lines.len() <= 5 && tail.lines.iter().any(|l| l.contains("console/hello")), "{tail:?}");

    // Refusals, each with its reason.
    let bad_topic = client.publish(&publish(Target::LocalMqtt, "lamp/+/x", "x")).await;
    assert_eq!(refused_status(bad_topic), Some(400));
    let huge = client.publish(&publish(Target::Pubsub, "console/big", &"x".repeat(200 * 1024))).await;
    assert_eq!(refused_status(huge), Some(400));
    let no_upstream = client.publish(&publish(Target::IotCore, "up/x", "x")).await;
    assert_eq!(refused_status(no_upstream), Some(409));
    let max_watches = ConsoleLimits::default().max_watches;
    let mut open = vec![devices, bus];
    for _ in open.len()..max_watches {
        let (status, stream) =
            EventStream::open(http, "/api/v1/messages/stream?target=pubsub&filter=%23", &session).await?;
        open.push(stream.with_context(|| format!("watch {} refused: {status}", open.len() + 1))?);
    }
    let (status, _) = EventStream::open(http, "/api/v1/messages/stream?target=pubsub&filter=%23", &session).await?;
    assert_eq!(status, 429, "at most {max_watches} watches");
    let forged = ConsoleSession { cookie: "turf_console=x".into(), key: session.key.clone() };
    let (status, _) = EventStream::open(http, "/api/v1/messages/stream?target=pubsub&filter=%23", &forged).await?;
    assert_eq!(status, 401, "no watch without a session");
    let cookie_only = ConsoleSession { cookie: session.cookie.clone(), key: String::new() };
    let (status, _) = EventStream::open(http, "/api/v1/messages/stream?target=pubsub&filter=%23", &cookie_only).await?;
    assert_eq!(status, 401, "no watch with the cookie alone");
    drop(open);
    // A watch slot comes back once its browser left (noticed at the next keep-alive), and a
    // watch lives no longer than the session that opened it.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let mut watch = loop {
        let (status, stream) =
            EventStream::open(http, "/api/v1/messages/stream?target=pubsub&filter=%23", &session).await?;
        if let Some(stream) = stream {
            break stream;
        }
        ensure!(status == 429 && tokio::time::Instant::now() < deadline, "no watch slot came back: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (status, _, _) = http_request(http, "POST", "/logout", &session.headers()).await?;
    assert_eq!(status, 200);
    ensure!(watch.closed_within(TIMEOUT).await?, "a watch outlived its session");
    host.shutdown().await
}

#[actix_rt::test]
async fn a_configuration_preview_follows_the_deployment_rule_and_deploys_the_same() -> Result<()> {
    let host = TestHost::start().await?;
    let defaults = json!({"subscribe": ["a/#"], "threshold": 5, "accessControl": pubsub_access(PROBE, &["SubscribeToTopic"], &["*"])});
    let stage = host.scratch("stage");
    host.deploy(&stage_component(&stage, PROBE, "1.0.0", &plugin_wasm("test_probe"), defaults)).await?;
    let client = host.client();
    let update =
        ConfigUpdate { merge: Some(json!({"threshold": 9, "extra": {"on": true}})), reset: vec!["/subscribe".into()] };
    let preview = client.preview(PROBE, &update).await?;
    assert_eq!(preview.result["threshold"], 9);
    assert_eq!(preview.result["extra"], json!({"on": true}));
    assert_eq!(preview.result["subscribe"], json!(["a/#"]), "RESET puts the default back");
    ensure!(
        preview.changed.contains(&"threshold".to_owned()) && preview.changed.contains(&"extra".to_owned()),
        "{preview:?}"
    );

    let record = host.deploy(&turf_tests::merge_update(PROBE, update.merge.clone().unwrap_or_default())).await?;
    ensure!(record.error.is_none(), "{:?}", record.error);
    assert_eq!(client.component(PROBE).await?.configuration, preview.result, "the preview is what deploying gives");

    let not_object = ConfigUpdate { merge: Some(json!([1, 2])), reset: Vec::new() };
    assert_eq!(refused_status(client.preview(PROBE, &not_object).await), Some(400));
    assert_eq!(refused_status(client.preview("com.example.Ghost", &update).await), Some(404));
    host.shutdown().await
}

#[actix_rt::test]
async fn https_serves_the_console_with_the_core_ca_certificate_and_secure_cookies() -> Result<()> {
    let host = TestHost::start_with(HostOptions { http_tls: true, ..HostOptions::default() }).await?;
    let url = turf_tests::login_link(&host)?;
    ensure!(url.starts_with(&format!("https://{}/login?token=", host.endpoints.http)), "{url}");
    let path = &url[url.find("/login").context("no path")?..];

    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&host.endpoints.ca_cert)? {
        roots.add(cert?)?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let socket = tokio::net::TcpStream::connect(host.endpoints.http).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost")?;
    let mut stream = turf_tests::with_timeout(TIMEOUT, "TLS handshake", connector.connect(name, socket)).await??;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes()).await?;
    let mut reply = Vec::new();
    turf_tests::with_timeout(TIMEOUT, "the HTTPS reply", stream.read_to_end(&mut reply)).await??;
    let reply = String::from_utf8_lossy(&reply);
    ensure!(reply.starts_with("HTTP/1.0 303") || reply.starts_with("HTTP/1.1 303"), "{reply}");
    let cookie = session_cookie(&reply).context("no session cookie")?;
    ensure!(reply.to_ascii_lowercase().contains("; secure"), "a session cookie over HTTPS is Secure: {reply}");
    ensure!(cookie.starts_with("turf_console="));

    // Plain HTTP on the TLS port gets no page.
    let plain = http_request(host.endpoints.http, "GET", "/metrics", &[]).await;
    ensure!(plain.map(|(status, _, _)| status != 200).unwrap_or(true), "plain HTTP must not be served on the TLS port");
    host.shutdown().await
}

#[actix_rt::test]
async fn the_test_client_publishes_upstream_and_watches_what_the_cloud_sends() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cloud = Mosquitto::start(dir.path()).await?;
    let host = TestHost::start_with(HostOptions { upstream: Some(cloud.upstream()), ..HostOptions::default() }).await?;
    wait_until(TIMEOUT, "the upstream connected", || async {
        host.client().status().await.is_ok_and(|s| s.upstream.is_some_and(|u| u.state == "connected"))
    })
    .await?;
    let mut observer = cloud.observer("cloud-observer").await?;
    observer.subscribe("console/up", QoS::AtLeastOnce).await?;
    let session = console_session(&host).await?;
    let path = "/api/v1/messages/stream?target=iot-core&filter=cloud/%23";
    let (status, watch) = EventStream::open(host.endpoints.http, path, &session).await?;
    let mut watch = watch.with_context(|| format!("upstream watch refused: {status}"))?;
    // The watch's upstream SUBSCRIBE completes after the stream opened: publish until a copy
    // arrives (bounded).
    let mut event = None;
    for _ in 0..40 {
        observer.client.publish("cloud/lamp", QoS::AtLeastOnce, false, "from the cloud").await?;
        if let Ok(seen) = watch.next(Duration::from_millis(500)).await {
            event = Some(seen);
            break;
        }
    }
    let event = event.context("nothing from the cloud reached the watch")?;
    assert_eq!((event["topic"].as_str(), event["payload"].as_str()), (Some("cloud/lamp"), Some("from the cloud")));
    assert!(event["from"].is_null(), "the cloud's publisher is not known: {event}");

    let message =
        TestPublish { target: Target::IotCore, topic: "console/up".into(), payload: "to the cloud".into(), qos: 1 };
    host.client().publish(&message).await?;
    let got = observer.collect_until(TIMEOUT, |p| p.topic == "console/up").await?;
    assert_eq!(got.last().map(|p| &p.payload[..]), Some(&b"to the cloud"[..]));
    host.shutdown().await
}
