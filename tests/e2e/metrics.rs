//! `GET /metrics` on the local HTTP listener and `turf status --json`: the figures move by
//! exactly the traffic a test makes, both say the same, and the listener stays on loopback.

use anyhow::{Context, Result, ensure};
use rumqttc::QoS;
use turf_tests::{Device, TIMEOUT, TestHost, http_get};

/// The value of the sample `series` (name and labels as written) in a scrape.
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn scrape(host: &TestHost) -> Result<String> {
    let (status, head, body) = http_get(host.endpoints.http, "/metrics").await?;
    ensure!(status == 200, "GET /metrics answered {status}: {body}");
    ensure!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    Ok(body)
}

#[actix_rt::test]
async fn counters_move_by_the_traffic_made_and_turf_status_json_says_the_same() -> Result<()> {
    let host = TestHost::start().await?;
    host.add_device("Lamp")?;
    let before = scrape(&host).await?;
    let received =
        |scrape: &str, qos: &str| sample(scrape, &format!("turf_mqtt_messages_received_total{{qos=\"{qos}\"}}"));
    let failures = "turf_mqtt_authentication_failures_total{reason=\"thing_client_id\"}";
    let allowed = "turf_mqtt_authorization_decisions_total{action=\"publish\",result=\"allowed\"}";
    let (q1, q0) = (received(&before, "1").context("no QoS 1 series")?, received(&before, "0").context("no QoS 0")?);
    let (failed, publish_allowed) =
        (sample(&before, failures).context("no failure series")?, sample(&before, allowed).context("no decisions")?);

    let publisher = Device::plain(&host, "meter").await?;
    for n in 0..25 {
        publisher.client.publish("meter/qos1", QoS::AtLeastOnce, false, format!("{n}")).await?;
    }
    for n in 0..5 {
        publisher.client.publish("meter/qos0", QoS::AtMostOnce, false, format!("{n}")).await?;
    }
    // A local tool may not take a registered thing's client id: an authentication failure.
    assert!(Device::plain(&host, "Lamp").await.is_err());

    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let after = loop {
        let now = scrape(&host).await?;
        // Every figure below is counted at its own step of routing: wait for all of them.
        let unrouted = "turf_mqtt_messages_dropped_total{reason=\"no_subscriber\"}";
        let counted = received(&now, "1") == Some(q1 + 25.0)
            && received(&now, "0") == Some(q0 + 5.0)
            && sample(&now, failures) == Some(failed + 1.0)
            && sample(&now, allowed) == Some(publish_allowed + 30.0)
            && sample(&now, unrouted) == sample(&before, unrouted).map(|n| n + 30.0);
        if counted {
            break now;
        }
        ensure!(tokio::time::Instant::now() < deadline, "the publishes were not counted within {TIMEOUT:?}:\n{now}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(sample(&after, failures), Some(failed + 1.0), "one refused CONNECT, counted by its reason");
    assert_eq!(sample(&after, allowed), Some(publish_allowed + 30.0));
    for family in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "turf_mqtt_connections",
        "turf_components{state=\"RUNNING\"}",
    ] {
        assert!(after.lines().any(|l| l.starts_with(family)), "{family} is missing:\n{after}");
    }
    assert!(after.contains("# TYPE turf_mqtt_messages_received_total counter"));

    let unrouted = "turf_mqtt_messages_dropped_total{reason=\"no_subscriber\"}";
    assert_eq!(sample(&after, unrouted), sample(&before, unrouted).map(|n| n + 30.0), "nobody subscribed");

    // Delivered: a subscriber at QoS 1 gets 10 copies, counted as sent.
    let sent = "turf_mqtt_messages_sent_total{qos=\"1\"}";
    let sent_before = sample(&after, sent).context("no sent series")?;
    let mut reader = Device::plain(&host, "reader").await?;
    reader.subscribe("meter/echo", QoS::AtLeastOnce).await?;
    for n in 0..10 {
        publisher.client.publish("meter/echo", QoS::AtLeastOnce, false, format!("{n}")).await?;
    }
    reader.collect_until(TIMEOUT, |p| p.payload.as_ref() == b"9").await?;
    let delivered = scrape(&host).await?;
    assert_eq!(sample(&delivered, sent), Some(sent_before + 10.0));
    assert_eq!(sample(&delivered, "turf_mqtt_subscriptions"), Some(1.0));

    let json: serde_json::Value = serde_json::from_str(&host.turf_ok(&["status", "--json"])?)?;
    let traffic = &json["broker"]["traffic"];
    assert_eq!(traffic["received_qos1"].as_f64(), received(&delivered, "1"), "turf status --json: {traffic}");
    assert_eq!(traffic["sent_qos1"].as_f64(), sample(&delivered, sent));
    assert_eq!(traffic["authentication_failures"]["thing_client_id"].as_f64(), sample(&delivered, failures));
    assert!(json["process"]["resident_bytes"].as_u64().is_some_and(|b| b > 0));
    host.shutdown().await
}

#[actix_rt::test]
async fn the_http_listener_is_refused_on_an_address_other_than_loopback() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = turf_host::HostConfig::new(dir.path().join("root"));
    config.mqtt_listen = "127.0.0.1:0".parse()?;
    config.discovery_listen = "127.0.0.1:0".parse()?;
    config.http_listen = "0.0.0.0:0".parse()?;
    let error = turf_host::supervisor::start(config).await.err().context("start must fail")?;
    let text = error.to_string();
    assert!(text.contains("plain HTTP is served on loopback only") && text.contains("--http-tls"), "{text}");
    Ok(())
}

#[actix_rt::test]
async fn deployments_shadow_answers_and_bridge_routes_are_counted() -> Result<()> {
    let host = TestHost::start().await?;
    host.deploy_shadow_routes().await?;
    let device = Device::plain(&host, "meter").await?;
    device.client.publish("$aws/things/Ghost/shadow/get", QoS::AtLeastOnce, false, "{}").await?;
    ensure!(!host.turf(&["shadow", "get", "Ghost"]).status.success(), "Ghost has no shadow");

    let to_bus =
        "turf_bridge_messages_total{route=\"ShadowsLocalMqttToPubsub\",source=\"LocalMqtt\",target=\"Pubsub\"}";
    let to_devices =
        "turf_bridge_messages_total{route=\"ShadowsPubsubToLocalMqtt\",source=\"Pubsub\",target=\"LocalMqtt\"}";
    let rejected_gets = "turf_shadow_requests_total{operation=\"get\",result=\"rejected\"}";
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let counted = loop {
        let now = scrape(&host).await?;
        // The device's get and the CLI's get, both 404: the device's request crossed to the bus,
        // and both rejections (published on the bus, as Greengrass does) back to the devices.
        if sample(&now, rejected_gets) == Some(2.0) && sample(&now, to_devices) == Some(2.0) {
            break now;
        }
        ensure!(tokio::time::Instant::now() < deadline, "not counted within {TIMEOUT:?}:\n{now}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(sample(&counted, to_bus), Some(1.0));
    assert_eq!(sample(&counted, "turf_shadow_rejections_total{code=\"404\"}"), Some(2.0));
    // The Auth configuration at start and the shadow routes.
    assert_eq!(sample(&counted, "turf_deployments_total{result=\"succeeded\"}"), Some(2.0));
    assert_eq!(sample(&counted, "turf_deployments_pending"), Some(0.0));
    host.shutdown().await
}
