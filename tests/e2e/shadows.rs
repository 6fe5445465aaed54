//! Device shadows: over MQTT through the bridge routes, from components, and durability.

use anyhow::Result;
use rumqttc::QoS;
use serde_json::{Value, json};
use turf_tests::{Device, TIMEOUT, TestHost, plugin_wasm, stage_component};

const PROBE: &str = "com.turf.test.Probe";

fn json_of(publish: &rumqttc::Publish) -> Value {
    serde_json::from_slice(&publish.payload).unwrap_or(Value::Null)
}

#[actix_rt::test]
async fn devices_use_shadows_over_mqtt_through_the_bridge_routes() -> Result<()> {
    let host = TestHost::start().await?;
    host.deploy_shadow_routes().await?;
    let certs = host.add_device("MyClientDevice1")?;
    let mut light = Device::tls(&host, "MyClientDevice1", &certs).await?;
    light.subscribe("$aws/things/MyClientDevice1/shadow/#", QoS::AtLeastOnce).await?;
    let base = "$aws/things/MyClientDevice1/shadow";

    light.client.publish(format!("{base}/get"), QoS::AtLeastOnce, false, r#"{"clientToken":"g1"}"#).await?;
    let got = light.collect_until(TIMEOUT, |p| p.topic.ends_with("/get/rejected")).await?;
    let rejected = json_of(got.last().unwrap());
    assert_eq!((rejected["code"].as_u64(), rejected["clientToken"].as_str()), (Some(404), Some("g1")), "{rejected}");

    host.turf_ok(&[
        "shadow",
        "update",
        "MyClientDevice1",
        r#"{"state":{"desired":{"color":"blue"}},"clientToken":"mgr-1"}"#,
    ])?;
    let got = light.collect_until(TIMEOUT, |p| p.topic.ends_with("/update/delta")).await?;
    let delta = json_of(got.last().unwrap());
    assert_eq!(delta["state"], json!({"color": "blue"}));
    assert_eq!(delta["clientToken"], "mgr-1", "the delta carries the requester's token");

    let report = json!({"state": {"reported": {"color": "blue"}}, "clientToken": "mgr-1"});
    light.client.publish(format!("{base}/update"), QoS::AtLeastOnce, false, report.to_string()).await?;
    let got = light
        .collect_until(TIMEOUT, |p| {
            p.topic.ends_with("/update/accepted") && json_of(p)["state"].get("reported").is_some()
        })
        .await?;
    let accepted = json_of(got.last().unwrap());
    assert_eq!((accepted["version"].as_u64(), accepted["clientToken"].as_str()), (Some(2), Some("mgr-1")));
    assert!(got.iter().any(|p| p.topic.ends_with("/update/documents")));

    light.client.publish(format!("{base}/get"), QoS::AtLeastOnce, false, r#"{"clientToken":"g2"}"#).await?;
    let got = light.collect_until(TIMEOUT, |p| p.topic.ends_with("/get/accepted")).await?;
    let document = json_of(got.last().unwrap());
    assert_eq!(document["state"], json!({"desired": {"color": "blue"}, "reported": {"color": "blue"}}));
    assert_eq!(document["version"], 2);

    let stale = json!({"state": {"reported": {"color": "red"}}, "version": 1, "clientToken": "old"});
    light.client.publish(format!("{base}/update"), QoS::AtLeastOnce, false, stale.to_string()).await?;
    let got = light.collect_until(TIMEOUT, |p| p.topic.ends_with("/update/rejected")).await?;
    assert_eq!(json_of(got.last().unwrap())["code"], 409);
    host.shutdown().await
}

#[actix_rt::test]
async fn without_the_bridge_routes_devices_cannot_reach_shadows() -> Result<()> {
    let host = TestHost::start().await?;
    let device = Device::plain(&host, "MyClientDevice1").await?;
    device
        .client
        .publish(
            "$aws/things/MyClientDevice1/shadow/update",
            QoS::AtLeastOnce,
            false,
            r#"{"state":{"reported":{"a":1}}}"#,
        )
        .await?;
    let mut marker = Device::plain(&host, "marker").await?;
    marker.subscribe("marker/#", QoS::AtLeastOnce).await?;
    device.client.publish("marker/x", QoS::AtLeastOnce, false, "m").await?;
    marker.collect_until(TIMEOUT, |p| p.topic == "marker/x").await?;
    let missing = host.turf(&["shadow", "get", "MyClientDevice1"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404 No shadow exists with name: Unnamed Shadow"));
    host.shutdown().await
}

#[actix_rt::test]
async fn components_use_shadows_within_their_access_control() -> Result<()> {
    let host = TestHost::start().await?;
    host.turf_ok(&["shadow", "update", "MyClientDevice1", r#"{"state":{"reported":{"color":"red"}}}"#])?;
    host.turf_ok(&["shadow", "update", "MyClientDevice1", "--name", "lamp", r#"{"state":{"reported":{"on":true}}}"#])?;
    let config = json!({
        "shadow": [
            {"op": "get", "thing": "MyClientDevice1", "name": ""},
            {"op": "update", "thing": "MyClientDevice1", "name": "", "payload": {"state": {"desired": {"color": "green"}}, "clientToken": "c1"}},
            {"op": "update", "thing": "MyClientDevice1", "name": "", "payload": {"state": {"desired": {"color": "x"}}, "version": 1}},
            {"op": "get", "thing": "Elsewhere", "name": ""},
            {"op": "get", "thing": "MyClientDevice1", "name": "lamp"},
            {"op": "get", "thing": "MyClientDevice2", "name": ""},
            {"op": "update", "thing": "MyClientDevice1", "name": "", "payload": {"desired": 1}},
            {"op": "list", "thing": "MyClientDevice1", "name": ""}
        ],
        "accessControl": {"aws.greengrass.ShadowManager": {"p": {
            "operations": ["aws.greengrass#GetThingShadow", "aws.greengrass#UpdateThingShadow", "aws.greengrass#ListNamedShadowsForThing"],
            "resources": ["$aws/things/MyClientDevice*/shadow", "MyClientDevice1"]}}}
    });
    host.deploy_probe(PROBE, config).await?;
    let log = host.log(PROBE);
    let line = |needle: &str| log.lines().find(|l| l.contains(needle)).unwrap_or_default().to_owned();
    assert!(line("shadow get MyClientDevice1/: ok").contains(r#""reported":{"color":"red"}"#), "{log}");
    assert!(line("shadow update MyClientDevice1/: ok").contains(r#""clientToken":"c1""#), "{log}");
    assert!(log.contains("shadow update MyClientDevice1/: failed: conflict: Version conflict"), "{log}");
    assert!(
        log.contains("shadow get Elsewhere/: failed: unauthorized: Principal com.turf.test.Probe is not authorized"),
        "{log}"
    );
    assert!(
        log.contains("shadow get MyClientDevice1/lamp: failed: unauthorized"),
        "named shadows need their own resource:\n{log}"
    );
    assert!(log.contains("shadow get MyClientDevice2/: failed: resource not found: No shadow found"), "{log}");
    assert!(log.contains("shadow update MyClientDevice1/: failed: invalid arguments: Invalid JSON: state: is missing but it is required"), "{log}");
    assert!(log.contains("shadow list MyClientDevice1/: ok lamp"), "{log}");
    let shown = host.turf_ok(&["shadow", "get", "MyClientDevice1"])?;
    let document: Value = serde_json::from_str(&shown)?;
    assert_eq!(document["state"]["delta"], json!({"color": "green"}));
    host.shutdown().await
}

#[actix_rt::test]
async fn configuration_updates_reach_subscribed_components() -> Result<()> {
    let host = TestHost::start().await?;
    let stage = host.scratch("stage");
    let watcher = "com.turf.test.Watcher";
    let config = json!({"names": ["a"], "other": 1, "watchConfig": [["names"]]});
    host.deploy(&stage_component(&stage.join("w"), watcher, "1.0.0", &plugin_wasm("test_probe"), config)).await?;
    host.wait_for_log(watcher, "watching names", 1).await?;
    let update = |merge: Value| turf_tests::merge_update(watcher, merge);
    host.deploy(&update(json!({"other": 2}))).await?;
    host.deploy(&update(json!({"names": ["a", "b"]}))).await?;
    host.wait_for_log(watcher, &format!("configuration update {watcher} names"), 1).await?;
    assert_eq!(host.log(watcher).matches("configuration update").count(), 1, "only the subscribed path notifies");

    let writer = "com.turf.test.Writer";
    let config = json!({"updateConfig": {"keyPath": ["settings"], "value": {"mode": "eco"}}, "watchConfig": []});
    host.deploy(&stage_component(&stage.join("x"), writer, "1.0.0", &plugin_wasm("test_probe"), config)).await?;
    host.wait_for_log(writer, "updated config settings", 1).await?;
    let status = host.client().status().await?;
    assert!(status.components.iter().any(|c| c.name == writer));
    let denied = json!({"updateConfig": {"keyPath": ["accessControl"], "value": {"x": 1}}});
    host.deploy(&stage_component(
        &stage.join("y"),
        "com.turf.test.Sneaky",
        "1.0.0",
        &plugin_wasm("test_probe"),
        denied,
    ))
    .await?;
    host.wait_for_log(
        "com.turf.test.Sneaky",
        "update config failed: invalid arguments: Config update is not allowed for following fields [accessControl]",
        1,
    )
    .await?;
    host.shutdown().await
}

/// `rateLimits` as Greengrass enforces them: a device flooding its own shadow gets 20 requests
/// a second (plus what refills while it sends) and a 429 for the rest; after a second it is
/// served again.
#[actix_rt::test]
async fn a_device_flooding_its_shadow_is_throttled_with_429() -> Result<()> {
    let host = TestHost::start().await?;
    host.deploy_shadow_routes().await?;
    let certs = host.add_device("MyClientDevice1")?;
    let mut light = Device::tls(&host, "MyClientDevice1", &certs).await?;
    light.subscribe("$aws/things/MyClientDevice1/shadow/update/+", QoS::AtLeastOnce).await?;
    let topic = "$aws/things/MyClientDevice1/shadow/update";
    const SENT: usize = 60;
    let started = std::time::Instant::now();
    for n in 0..SENT {
        let update = json!({"state": {"reported": {"n": n}}, "clientToken": format!("u{n}")});
        light.client.publish(topic, QoS::AtLeastOnce, false, update.to_string()).await?;
    }
    let last = format!("u{}", SENT - 1);
    let got = light
        .collect_until(TIMEOUT, |p| {
            (p.topic.ends_with("/accepted") || p.topic.ends_with("/rejected")) && json_of(p)["clientToken"] == *last
        })
        .await?;
    let accepted = got.iter().filter(|p| p.topic.ends_with("/update/accepted")).count();
    let throttled: Vec<Value> = got.iter().filter(|p| p.topic.ends_with("/update/rejected")).map(json_of).collect();
    assert_eq!(accepted + throttled.len(), SENT, "every request is answered once");
    // A burst of 20, then 20 a second refill while the manager works through them (each write
    // waits for its fsync, so on a slow disk that takes longer): never more, never fewer than 20.
    let refill = (20.0 * started.elapsed().as_secs_f64()).ceil() as usize;
    assert!((20..=21 + refill).contains(&accepted), "a burst of 20 plus {refill} refilled, got {accepted}");
    assert!(accepted < SENT, "the flood was throttled");
    assert!(throttled.iter().all(|r| r["code"] == 429 && r["message"] == "Too Many Requests"), "{throttled:?}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let again = json!({"state": {"reported": {"n": "again"}}, "clientToken": "again"});
    light.client.publish(topic, QoS::AtLeastOnce, false, again.to_string()).await?;
    light
        .collect_until(TIMEOUT, |p| p.topic.ends_with("/update/accepted") && json_of(p)["clientToken"] == "again")
        .await?;
    host.shutdown().await
}
