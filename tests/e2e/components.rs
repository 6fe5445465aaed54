//! WebAssembly components: access control, restarts, budgets and timers, with real guests.

use anyhow::Result;
use rumqttc::QoS;
use serde_json::json;
use turf_host::deploy::model::DeploymentState;
use turf_tests::{Device, TestHost, bridge_update, plugin_wasm, pubsub_access, stage_component};

const PROBE: &str = "com.turf.test.Probe";

/// Routes every device topic under `prefix/#` to pubsub.
async fn route_to_pubsub(host: &TestHost, prefix: &str) -> Result<()> {
    let filter = format!("{prefix}/#");
    let record = host.deploy(&bridge_update(&[("ToPubsub", &filter, "LocalMqtt", "Pubsub")])).await?;
    assert_eq!(record.state, DeploymentState::Succeeded, "{:?}", record.error);
    Ok(())
}

#[actix_rt::test]
async fn component_without_subscribe_permission_gets_unauthorized() -> Result<()> {
    let host = TestHost::start().await?;
    route_to_pubsub(&host, "area").await?;
    let config = json!({
        "subscribe": ["area/allowed", "area/#"],
        "accessControl": pubsub_access(PROBE, &["SubscribeToTopic"], &["area/allowed"]),
    });
    let request = stage_component(&host.scratch("stage"), PROBE, "1.0.0", &plugin_wasm("test_probe"), config);
    let record = host.deploy(&request).await?;
    assert_eq!(record.state, DeploymentState::Succeeded, "{:?}", record.error);
    host.wait_for_log(PROBE, "subscribed area/allowed", 1).await?;
    host.wait_for_log(
        PROBE,
        "subscribe area/# failed: unauthorized: Principal com.turf.test.Probe is not authorized to perform \
         aws.greengrass.ipc.pubsub:aws.greengrass#SubscribeToTopic on resource area/#",
        1,
    )
    .await?;
    let device = Device::plain(&host, "sensor").await?;
    device.client.publish("area/secret", QoS::AtLeastOnce, false, "hidden").await?;
    device.client.publish("area/allowed", QoS::AtLeastOnce, false, "visible").await?;
    host.wait_for_log(PROBE, "message area/allowed: visible", 1).await?;
    assert!(!host.log(PROBE).contains("hidden"), "nothing may be subscribed after a denial");
    host.shutdown().await
}

#[actix_rt::test]
async fn trapping_component_is_restarted_and_the_host_keeps_serving() -> Result<()> {
    let host = TestHost::start().await?;
    route_to_pubsub(&host, "work").await?;
    let stage = host.scratch("stage");
    let fragile = "com.turf.test.Fragile";
    let steady = "com.turf.test.Steady";
    for (name, filter) in [(fragile, "work/fragile"), (steady, "work/steady")] {
        let config =
            json!({"subscribe": [filter], "accessControl": pubsub_access(name, &["SubscribeToTopic"], &["*"])});
        let request = stage_component(&stage.join(name), name, "1.0.0", &plugin_wasm("test_probe"), config);
        let record = host.deploy(&request).await?;
        assert_eq!(record.state, DeploymentState::Succeeded, "{:?}", record.error);
    }
    let device = Device::plain(&host, "worker").await?;
    device.client.publish("work/fragile", QoS::AtLeastOnce, false, "trap").await?;
    host.wait_for_log(fragile, "ERRORED: on-message", 1).await?;
    host.wait_for_log(fragile, "probe ready", 2).await?;
    device.client.publish("work/steady", QoS::AtLeastOnce, false, "still here").await?;
    device.client.publish("work/fragile", QoS::AtLeastOnce, false, "after restart").await?;
    host.wait_for_log(steady, "message work/steady: still here", 1).await?;
    host.wait_for_log(fragile, "message work/fragile: after restart", 1).await?;
    let status = host.client().status().await?;
    let info = status.components.iter().find(|c| c.name == fragile).unwrap();
    assert_eq!(info.restarts, 1);
    assert_eq!(info.state.to_string(), "RUNNING");
    host.shutdown().await
}

#[actix_rt::test]
async fn component_that_errors_three_times_becomes_broken() -> Result<()> {
    let host = TestHost::start().await?;
    route_to_pubsub(&host, "doom").await?;
    let config = json!({"subscribe": ["doom/x"], "accessControl": pubsub_access(PROBE, &["SubscribeToTopic"], &["*"])});
    let request = stage_component(&host.scratch("stage"), PROBE, "1.0.0", &plugin_wasm("test_probe"), config);
    host.deploy(&request).await?;
    let device = Device::plain(&host, "doomsayer").await?;
    for round in 1..=3 {
        host.wait_for_log(PROBE, "probe ready", round).await?;
        device.client.publish("doom/x", QoS::AtLeastOnce, false, "trap").await?;
    }
    host.wait_for_log(PROBE, "BROKEN", 1).await?;
    let status = host.client().status().await?;
    assert_eq!(status.components.iter().find(|c| c.name == PROBE).unwrap().state.to_string(), "BROKEN");
    host.shutdown().await
}

#[actix_rt::test]
async fn runaway_component_is_cut_off_by_its_call_budget() -> Result<()> {
    let host = TestHost::start().await?;
    route_to_pubsub(&host, "spin").await?;
    let config = json!({"subscribe": ["spin/x"], "accessControl": pubsub_access(PROBE, &["SubscribeToTopic"], &["*"])});
    let request = stage_component(&host.scratch("stage"), PROBE, "1.0.0", &plugin_wasm("test_probe"), config);
    host.deploy(&request).await?;
    let device = Device::plain(&host, "spinner").await?;
    device.client.publish("spin/x", QoS::AtLeastOnce, false, "spin").await?;
    host.wait_for_log(PROBE, "longer than its budget", 1).await?;
    host.wait_for_log(PROBE, "probe ready", 2).await?;
    host.shutdown().await
}

#[actix_rt::test]
async fn timers_call_the_component_periodically() -> Result<()> {
    let host = TestHost::start().await?;
    let config = json!({"timerMs": 30});
    let request = stage_component(&host.scratch("stage"), PROBE, "1.0.0", &plugin_wasm("test_probe"), config);
    let record = host.deploy(&request).await?;
    assert_eq!(record.state, DeploymentState::Succeeded, "{:?}", record.error);
    host.wait_for_log(PROBE, "tick 1 3", 1).await?;
    host.shutdown().await
}

#[actix_rt::test]
async fn component_publishes_reach_other_components_with_permission_checked() -> Result<()> {
    let host = TestHost::start().await?;
    let stage = host.scratch("stage");
    let listener = "com.turf.test.Listener";
    let config =
        json!({"subscribe": ["news/#"], "accessControl": pubsub_access(listener, &["SubscribeToTopic"], &["news/#"])});
    host.deploy_probe(listener, config).await?;
    let talker = "com.turf.test.Talker";
    let config = json!({
        "publish": [{"topic": "news/today", "payload": "extra"}, {"topic": "gossip/x", "payload": "psst"}, {"topic": "news/+", "payload": "bad"}],
        "accessControl": pubsub_access(talker, &["PublishToTopic"], &["news/*"]),
    });
    host.deploy(&stage_component(&stage.join("t"), talker, "1.0.0", &plugin_wasm("test_probe"), config)).await?;
    host.wait_for_log(talker, "published news/today", 1).await?;
    host.wait_for_log(talker, "publish gossip/x failed: unauthorized", 1).await?;
    host.wait_for_log(
        talker,
        "publish news/+ failed: invalid arguments: Publish topic must not contain a wildcard.",
        1,
    )
    .await?;
    host.wait_for_log(listener, "message news/today: extra", 1).await?;
    host.shutdown().await
}

/// At `RUST_LOG=turf=debug`, one device message can be followed through the host in its log:
/// the broker's tap, the bridge and the bus log inside its `message{from, topic}` span, and the
/// component's `on-message` is a `component{…}` span inside it.
#[actix_rt::test]
async fn one_device_message_can_be_followed_through_the_host_in_the_debug_log() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    let turf = {
        let root = root.clone();
        tokio::task::spawn_blocking(move || {
            // The environment of `turf run` only, through a shell, so the test process keeps its own.
            turf_tests::process::RunningTurf::start_with_env(&root, &[("RUST_LOG", "turf=debug")])
        })
        .await??
        .0
    };
    let client = turf_host::mgmt::client::Client::new(&root.join("turf.sock"));
    let deploy = |request| {
        let client = &client;
        async move {
            let record = client.create_deployment(&request).await?;
            let record = client.wait_deployment(&record.id, std::time::Duration::from_secs(30), None).await?;
            anyhow::ensure!(record.state == DeploymentState::Succeeded, "{:?}", record.error);
            anyhow::Ok(())
        }
    };
    deploy(bridge_update(&[("ToPubsub", "trace/#", "LocalMqtt", "Pubsub")])).await?;
    let config =
        json!({"subscribe": ["trace/x"], "accessControl": pubsub_access(PROBE, &["SubscribeToTopic"], &["*"])});
    deploy(stage_component(&dir.path().join("stage"), PROBE, "1.0.0", &plugin_wasm("test_probe"), config)).await?;
    let mut options = rumqttc::MqttOptions::new("tracer", "127.0.0.1", turf.plain);
    options.set_keep_alive(std::time::Duration::from_secs(30));
    let (device, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    device.publish("trace/x", QoS::AtLeastOnce, false, "follow me").await?;
    let component_log = root.join("logs").join(format!("{PROBE}.log"));
    turf_tests::wait_until(turf_tests::TIMEOUT, "the probe to get the message", || async {
        std::fs::read_to_string(&component_log).unwrap_or_default().contains("message trace/x: follow me")
    })
    .await?;
    let path = "message{from=tracer topic=trace/x}";
    let host_log = root.join("logs/turf.log");
    turf_tests::wait_until(turf_tests::TIMEOUT, "the call to be logged", || async {
        std::fs::read_to_string(&host_log).unwrap_or_default().contains("call finished")
    })
    .await?;
    let log = std::fs::read_to_string(&host_log)?;
    let hops: Vec<&str> = log.lines().filter(|l| l.contains(path)).collect();
    for (hop, needle) in [
        ("the broker's tap", "device message handed to the host"),
        ("the bridge", "relayed"),
        ("the bus", "published on the bus"),
        ("the component", &format!("component{{name={PROBE} export=on-message}}")),
    ] {
        assert!(hops.iter().any(|l| l.contains(needle)), "{hop} is not on the message's path:\n{}", hops.join("\n"));
    }
    assert!(
        hops.iter().all(|l| l.contains("session{client_id=tracer")),
        "a message's path is part of its sender's session:\n{}",
        hops.join("\n")
    );
    assert!(
        log.lines().any(|l| l.contains("session{client_id=tracer") && l.contains("device connected")),
        "the session's own lines carry it"
    );
    assert!(log.contains("deployment{id="), "deployment lines carry their id");
    tokio::task::spawn_blocking(move || turf.terminate()).await??;
    Ok(())
}
