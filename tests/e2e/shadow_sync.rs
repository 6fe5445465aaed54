//! Shadow sync with the upstream against a real shadow service: a second Turf host plays the
//! cloud (its shadow manager answers the AWS IoT shadow MQTT API through bridge routes) and the
//! core under test connects to it as its upstream, over mutual TLS. Device → core → cloud,
//! cloud → core → device, conflicts merged by the rule, deletes, a restart with pending work, an
//! outage, the outbound rate, and the AWS IoT Device SDK's shadow client on the cloud side.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use rumqttc::QoS;
use serde_json::{Value, json};
use turf_host::deploy::model::DeploymentState;
use turf_host::shadow::{ShadowOperation, ShadowReply, ShadowRequest};
use turf_host::upstream::config::{Endpoint, MqttVersion, UpstreamConfig};
use turf_tests::{Device, HostOptions, TIMEOUT, TestHost, http_get, merge_update, sdk_script, wait_until};

const SHADOW_MANAGER: &str = "aws.greengrass.ShadowManager";
const CORE_ID: &str = "CoreUnderTest";

/// The cloud, the core connected to it, and how the core reaches it.
struct Pair {
    cloud: TestHost,
    core: TestHost,
    upstream: UpstreamConfig,
}

/// The upstream configuration that reaches `cloud` as [`CORE_ID`] (registered there).
fn upstream_to(cloud: &TestHost) -> Result<UpstreamConfig> {
    let certs = cloud.add_device(CORE_ID)?;
    Ok(UpstreamConfig {
        endpoint: Endpoint { host: "localhost".to_owned(), port: cloud.endpoints.mqtt.port(), tls: true },
        client_id: CORE_ID.to_owned(),
        cert: Some(certs.join("device.pem.crt")),
        key: Some(certs.join("private.pem.key")),
        ca: Some(certs.join("ca.pem")),
        keepalive: Duration::from_secs(30),
        version: MqttVersion::V311,
        min_reconnect_delay: Duration::from_millis(200),
        max_reconnect_delay: Duration::from_secs(1),
        spool_max_bytes: 1 << 20,
        spool_max_messages: 10_000,
    })
}

/// Starts the cloud and a core syncing by `synchronize` (and `rateLimits`, if given).
async fn pair(shadow_manager: Value) -> Result<Pair> {
    let cloud = TestHost::start().await?;
    cloud.deploy_shadow_routes().await?;
    let upstream = upstream_to(&cloud)?;
    let core = TestHost::start_with(HostOptions { upstream: Some(upstream.clone()), ..HostOptions::default() }).await?;
    core.deploy_shadow_routes().await?;
    configure(&core, shadow_manager).await?;
    Ok(Pair { cloud, core, upstream })
}

async fn configure(core: &TestHost, shadow_manager: Value) -> Result<()> {
    let record = core.deploy(&merge_update(SHADOW_MANAGER, shadow_manager)).await?;
    ensure!(record.state == DeploymentState::Succeeded, "sync configuration refused: {:?}", record.error);
    Ok(())
}

fn lamp_sync() -> Value {
    json!({"synchronize": {"shadowDocuments": [{"thingName": "Lamp", "namedShadows": ["schedule"]}]}})
}

/// The state of `thing`'s classic shadow on `host` (`None`: no shadow).
async fn state(host: &TestHost, thing: &str) -> Result<Option<Value>> {
    named_state(host, thing, "").await
}

/// The state of `thing`'s shadow `name` on `host`.
async fn named_state(host: &TestHost, thing: &str, name: &str) -> Result<Option<Value>> {
    let request =
        ShadowRequest { thing: thing.into(), name: name.into(), operation: ShadowOperation::Get, rate_limited: false };
    match host.client().shadow(&request).await {
        Ok(ShadowReply::Document { document }) => Ok(Some(document["state"].clone())),
        Ok(other) => anyhow::bail!("unexpected answer {other:?}"),
        Err(e) if e.to_string().contains("No shadow exists") => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn update(host: &TestHost, thing: &str, state: Value) -> Result<()> {
    let payload = json!({ "state": state }).to_string();
    let request = ShadowRequest {
        thing: thing.into(),
        name: String::new(),
        operation: ShadowOperation::Update { payload },
        rate_limited: false,
    };
    host.client().shadow(&request).await?;
    Ok(())
}

async fn delete(host: &TestHost, thing: &str) -> Result<()> {
    let request = ShadowRequest {
        thing: thing.into(),
        name: String::new(),
        operation: ShadowOperation::Delete { expected_version: None },
        rate_limited: false,
    };
    host.client().shadow(&request).await?;
    Ok(())
}

/// Waits until `side`'s value at `pointer` in `thing`'s shadow state is `expected`.
async fn wait_state(host: &TestHost, thing: &str, pointer: &str, expected: Value, what: &str) -> Result<()> {
    wait_until(TIMEOUT, what, || async {
        state(host, thing).await.ok().flatten().and_then(|s| s.pointer(pointer).cloned()) == Some(expected.clone())
    })
    .await
}

async fn wait_absent(host: &TestHost, thing: &str, what: &str) -> Result<()> {
    wait_until(TIMEOUT, what, || async { matches!(state(host, thing).await, Ok(None)) }).await
}

/// Cuts the core off the cloud (its certificate unregistered there: connections closed,
/// reconnects refused) until [`reconnect`].
fn disconnect(pair: &Pair) -> Result<()> {
    pair.cloud.turf_ok(&["device", "remove", CORE_ID])?;
    Ok(())
}

fn reconnect(pair: &Pair) -> Result<()> {
    let cert = pair.upstream.cert.clone().context("no certificate")?;
    pair.cloud.turf_ok(&["device", "register", CORE_ID, "--cert", &cert.display().to_string()])?;
    Ok(())
}

async fn wait_upstream(core: &TestHost, connected: bool) -> Result<()> {
    let what = if connected { "the upstream to connect" } else { "the upstream to drop" };
    wait_until(TIMEOUT, what, || async {
        core.client().sync_status(None).await.is_ok_and(|s| s.connected == connected)
    })
    .await
}

#[actix_rt::test]
async fn a_device_report_reaches_the_cloud_and_the_clouds_desired_state_reaches_the_device() -> Result<()> {
    let pair = pair(lamp_sync()).await?;
    let mut lamp = Device::plain(&pair.core, "Lamp").await?;
    lamp.subscribe("$aws/things/Lamp/shadow/update/delta", QoS::AtLeastOnce).await?;
    let report = json!({"state": {"reported": {"color": "red"}}}).to_string();
    lamp.client.publish("$aws/things/Lamp/shadow/update", QoS::AtLeastOnce, false, report).await?;
    wait_state(&pair.cloud, "Lamp", "/reported/color", json!("red"), "the report in the cloud").await?;

    // The cloud side, as an application using the AWS IoT Device SDK's shadow client would.
    let app = pair.cloud.add_device("CloudApp")?;
    pair.cloud.turf_ok(&["device", "associate", "CloudApp"])?;
    let args =
        ["--target", "Lamp", "--expect-reported", r#"{"color": "red"}"#, "--set-desired", r#"{"color": "green"}"#];
    let out = sdk_script(&pair.cloud, "CloudApp", &app, "cloud_shadow.py", &args)?;
    ensure!(out.contains("reported as expected") && out.contains("desired accepted"), "{out}");

    let deltas = lamp.collect_until(TIMEOUT, |p| p.topic.ends_with("/update/delta")).await?;
    let delta: Value = serde_json::from_slice(&deltas.last().context("no delta")?.payload)?;
    assert_eq!(delta["state"], json!({"color": "green"}), "the cloud's desired state reached the device");
    // The light reports the new color with the delta's client token, as the AWS samples do:
    // that report is a change of its own and goes up (it is not taken for sync's echo).
    let token = delta["clientToken"].clone();
    let report = json!({"state": {"reported": {"color": "green"}}, "clientToken": token}).to_string();
    lamp.client.publish("$aws/things/Lamp/shadow/update", QoS::AtLeastOnce, false, report).await?;
    wait_state(&pair.cloud, "Lamp", "/reported/color", json!("green"), "the light's report in the cloud").await?;

    // A named shadow in the selection syncs too; one outside it does not.
    let schedule = r#"{"state": {"desired": {"off_at": "23:00"}}}"#;
    pair.core.turf_ok(&["shadow", "update", "Lamp", "--name", "schedule", schedule])?;
    pair.core.turf_ok(&["shadow", "update", "Lamp", "--name", "private", r#"{"state": {"desired": {"x": 1}}}"#])?;
    wait_until(TIMEOUT, "the named shadow in the cloud", || async {
        let synced = named_state(&pair.cloud, "Lamp", "schedule").await.ok().flatten();
        synced.is_some_and(|s| s["desired"]["off_at"] == "23:00")
    })
    .await?;
    ensure!(named_state(&pair.cloud, "Lamp", "private").await?.is_none(), "a shadow not selected stays local");

    wait_until(TIMEOUT, "Lamp's sync record in step", || async {
        let status = pair.core.client().sync_status(Some("Lamp")).await;
        status.is_ok_and(|s| {
            let lamp = s.shadows.iter().find(|r| r.thing == "Lamp" && r.name.is_empty());
            s.connected && lamp.is_some_and(|r| !r.pending && r.cloud_version >= 2)
        })
    })
    .await?;
    let printed = pair.core.turf_ok(&["shadow", "sync", "status", "Lamp"])?;
    ensure!(printed.contains("betweenDeviceAndCloud") && printed.contains("in step"), "{printed}");
    let (_, _, scrape) = http_get(pair.core.endpoints.http, "/metrics").await?;
    ensure!(scrape.contains("turf_shadow_sync_connected 1"), "{scrape}");
    let synced = scrape.lines().find_map(|l| l.strip_prefix("turf_shadow_syncs_total{result=\"synced\"} "));
    ensure!(synced.and_then(|n| n.parse::<u64>().ok()).is_some_and(|n| n >= 2), "{synced:?}");
    pair.core.shutdown().await?;
    pair.cloud.shutdown().await
}

#[actix_rt::test]
async fn both_sides_changed_while_apart_merge_reported_local_wins_desired_cloud_wins() -> Result<()> {
    let pair = pair(lamp_sync()).await?;
    update(
        &pair.core,
        "Lamp",
        json!({"desired": {"color": "red", "level": 1}, "reported": {"color": "red", "on": true}}),
    )
    .await?;
    wait_state(&pair.cloud, "Lamp", "/reported/on", json!(true), "the first sync").await?;

    disconnect(&pair)?;
    wait_upstream(&pair.core, false).await?;
    update(&pair.core, "Lamp", json!({"desired": {"color": "white", "level": 2}, "reported": {"color": "white"}}))
        .await?;
    update(&pair.cloud, "Lamp", json!({"desired": {"color": "green"}, "reported": {"color": "green", "on": false}}))
        .await?;
    ensure!(
        state(&pair.core, "Lamp").await?.and_then(|s| s.pointer("/reported/color").cloned()) == Some(json!("white")),
        "local writes never wait for the cloud"
    );
    reconnect(&pair)?;
    wait_upstream(&pair.core, true).await?;

    let expected = json!({"color": "green", "level": 2});
    wait_state(&pair.core, "Lamp", "/desired", expected.clone(), "the merged desired state locally").await?;
    wait_state(&pair.cloud, "Lamp", "/desired", expected, "the merged desired state in the cloud").await?;
    let reported = json!({"color": "white", "on": false});
    wait_state(&pair.core, "Lamp", "/reported", reported.clone(), "the merged reported state locally").await?;
    wait_state(&pair.cloud, "Lamp", "/reported", reported, "the merged reported state in the cloud").await?;
    let status = pair.core.client().sync_status(None).await?;
    ensure!(status.counts.conflicts < 5, "a conflict is merged, never looped on: {status:?}");
    pair.core.shutdown().await?;
    pair.cloud.shutdown().await
}

#[actix_rt::test]
async fn a_cloud_delete_reaches_the_core_and_a_shadow_changed_locally_meanwhile_is_kept() -> Result<()> {
    let pair = pair(json!({"synchronize": {"shadowDocuments": [{"thingNamePattern": "Lamp*"}]}})).await?;
    update(&pair.core, "Lamp1", json!({"reported": {"on": true}})).await?;
    update(&pair.core, "Lamp2", json!({"reported": {"on": true}})).await?;
    wait_state(&pair.cloud, "Lamp1", "/reported/on", json!(true), "Lamp1 in the cloud (selected by the pattern)")
        .await?;
    wait_state(&pair.cloud, "Lamp2", "/reported/on", json!(true), "Lamp2 in the cloud").await?;
    delete(&pair.cloud, "Lamp1").await?;
    wait_absent(&pair.core, "Lamp1", "the cloud's delete to reach the core").await?;

    disconnect(&pair)?;
    wait_upstream(&pair.core, false).await?;
    delete(&pair.cloud, "Lamp2").await?;
    update(&pair.core, "Lamp2", json!({"reported": {"on": false}})).await?;
    reconnect(&pair)?;
    wait_upstream(&pair.core, true).await?;
    wait_state(&pair.cloud, "Lamp2", "/reported/on", json!(false), "Lamp2 recreated in the cloud").await?;
    ensure!(state(&pair.core, "Lamp2").await?.is_some(), "changed locally since the last sync: never deleted");
    pair.core.shutdown().await?;
    pair.cloud.shutdown().await
}

#[actix_rt::test]
async fn pending_sync_survives_a_core_restart_and_an_outage() -> Result<()> {
    let pair = pair(lamp_sync()).await?;
    update(&pair.core, "Lamp", json!({"reported": {"color": "red"}})).await?;
    wait_state(&pair.cloud, "Lamp", "/reported/color", json!("red"), "the first sync").await?;
    disconnect(&pair)?;
    wait_upstream(&pair.core, false).await?;
    update(&pair.core, "Lamp", json!({"reported": {"color": "blue"}})).await?;
    wait_until(TIMEOUT, "Lamp marked pending while apart", || async {
        let status = pair.core.client().sync_status(Some("Lamp")).await;
        status.is_ok_and(|s| s.shadows.iter().any(|r| r.thing == "Lamp" && r.pending))
    })
    .await?;

    let Pair { cloud, core, upstream } = pair;
    let options = HostOptions { upstream: Some(upstream.clone()), auth: None, ..HostOptions::default() };
    let core = core.restart_with(options).await?;
    let pair = Pair { cloud, core, upstream };
    ensure!(
        state(&pair.cloud, "Lamp").await?.and_then(|s| s.pointer("/reported/color").cloned()) == Some(json!("red"))
    );
    reconnect(&pair)?;
    wait_state(&pair.cloud, "Lamp", "/reported/color", json!("blue"), "the pending change after the restart").await?;
    // The cloud stores the update before its answer is back at the core: wait for the record.
    wait_until(TIMEOUT, "the sync record no longer pending", || async {
        let status = pair.core.client().sync_status(Some("Lamp")).await;
        status.is_ok_and(|s| !s.shadows.is_empty() && s.shadows.iter().all(|r| !r.pending))
    })
    .await?;
    pair.core.shutdown().await?;
    pair.cloud.shutdown().await
}

#[actix_rt::test]
async fn the_outbound_rate_is_respected() -> Result<()> {
    let rate = 5;
    let config = json!({"synchronize": {"shadowDocuments": [{"thingNamePattern": "Meter*"}]},
        "rateLimits": {"maxOutboundSyncUpdatesPerSecond": rate}});
    let pair = pair(config).await?;
    let meters = 10;
    let started = Instant::now();
    for n in 0..meters {
        update(&pair.core, &format!("Meter{n}"), json!({"reported": {"n": n}})).await?;
    }
    for n in 0..meters {
        wait_state(&pair.cloud, &format!("Meter{n}"), "/reported/n", json!(n), "every meter in the cloud").await?;
    }
    let took = started.elapsed();
    let requests = pair.core.client().sync_status(None).await?.counts.cloud_requests;
    // Each new shadow takes a get and an update: beyond the first second's burst of `rate`,
    // they cannot have gone faster than `rate` a second.
    let floor = Duration::from_secs_f64((requests.saturating_sub(rate)) as f64 / rate as f64);
    ensure!(requests >= 2 * meters as u64, "{requests} requests");
    ensure!(took >= floor.mul_f64(0.9), "{requests} requests in {took:?}: faster than {rate}/s");
    pair.core.shutdown().await?;
    pair.cloud.shutdown().await
}

#[actix_rt::test]
async fn synchronize_without_an_upstream_is_refused_with_the_reason() -> Result<()> {
    let host = TestHost::start().await?;
    let record = host.deploy(&merge_update(SHADOW_MANAGER, lamp_sync())).await?;
    assert_eq!(record.state, DeploymentState::Failed);
    let error = record.error.unwrap_or_default();
    ensure!(error.contains("synchronize") && error.contains("upstream"), "{error}");
    let bad = json!({"synchronize": {"direction": "sideways"}});
    let record = host.deploy(&merge_update(SHADOW_MANAGER, bad)).await?;
    ensure!(record.error.unwrap_or_default().contains("synchronize.direction"), "the path is named");
    host.shutdown().await
}

#[actix_rt::test]
async fn garbage_and_forged_answers_from_the_cloud_change_nothing() -> Result<()> {
    let pair = pair(lamp_sync()).await?;
    update(&pair.core, "Lamp", json!({"reported": {"color": "red"}})).await?;
    wait_state(&pair.cloud, "Lamp", "/reported/color", json!("red"), "the first sync").await?;
    // A hostile party on the cloud broker: answers nobody asked for, with sync's token prefix,
    // documents that do not parse, a documents event without a version, a thing not selected.
    let rogue = Device::plain(&pair.cloud, "Rogue").await?;
    let forged = json!({"clientToken": "turf-sync-99999", "state": {"reported": {"color": "black"}}, "version": 1});
    for (topic, payload) in [
        ("$aws/things/Lamp/shadow/update/accepted", forged.to_string()),
        ("$aws/things/Lamp/shadow/get/accepted", forged.to_string()),
        ("$aws/things/Lamp/shadow/update/documents", "{not json".to_owned()),
        (
            "$aws/things/Lamp/shadow/update/documents",
            json!({"current": {"state": {"reported": {"color": "black"}}}}).to_string(),
        ),
        ("$aws/things/Lamp/shadow/delete/rejected", "[]".to_owned()),
        ("$aws/things/Fan/shadow/delete/accepted", "{}".to_owned()),
    ] {
        rogue.client.publish(topic, QoS::AtLeastOnce, false, payload).await?;
    }
    // Then a real change: it still arrives, and nothing above was applied.
    update(&pair.cloud, "Lamp", json!({"desired": {"color": "blue"}})).await?;
    wait_state(&pair.core, "Lamp", "/desired/color", json!("blue"), "the real change after the garbage").await?;
    let local = state(&pair.core, "Lamp").await?.context("Lamp vanished")?;
    assert_eq!(local["reported"], json!({"color": "red"}), "no forged state applied");
    pair.core.shutdown().await?;
    pair.cloud.shutdown().await
}

#[actix_rt::test]
async fn a_direction_change_takes_effect_at_once() -> Result<()> {
    let pair = pair(lamp_sync()).await?;
    update(&pair.core, "Lamp", json!({"reported": {"color": "red"}})).await?;
    wait_state(&pair.cloud, "Lamp", "/reported/color", json!("red"), "the first sync").await?;
    let down_only = json!({"synchronize": {"direction": "cloudToDevice"}});
    configure(&pair.core, down_only).await?;
    update(&pair.core, "Lamp", json!({"reported": {"color": "blue"}})).await?;
    update(&pair.cloud, "Lamp", json!({"desired": {"color": "green"}})).await?;
    wait_state(&pair.core, "Lamp", "/desired/color", json!("green"), "the cloud's change still comes down").await?;
    let printed = pair.core.turf_ok(&["shadow", "sync", "status"])?;
    ensure!(printed.contains("cloudToDevice"), "{printed}");
    let cloud = state(&pair.cloud, "Lamp").await?.context("no cloud shadow")?;
    assert_eq!(cloud["reported"]["color"], "red", "cloudToDevice: the local change does not go up");
    let local = state(&pair.core, "Lamp").await?.context("no local shadow")?;
    assert_eq!(local["reported"]["color"], "blue", "cloudToDevice: the device's report is not undone");

    // deviceToCloud: local changes go up and what the operator set in the cloud stays there.
    configure(&pair.core, json!({"synchronize": {"direction": "deviceToCloud"}})).await?;
    wait_state(&pair.cloud, "Lamp", "/reported/color", json!("blue"), "deviceToCloud: the local report up").await?;
    update(&pair.cloud, "Lamp", json!({"desired": {"mode": "eco"}})).await?;
    update(&pair.core, "Lamp", json!({"reported": {"level": 3}})).await?;
    wait_state(&pair.cloud, "Lamp", "/reported/level", json!(3), "deviceToCloud: the next local change up").await?;
    let cloud = state(&pair.cloud, "Lamp").await?.context("no cloud shadow")?;
    assert_eq!(cloud["desired"]["mode"], "eco", "deviceToCloud: the cloud's own desired key stays");
    let local = state(&pair.core, "Lamp").await?.context("no local shadow")?;
    assert_eq!(local["desired"].get("mode"), None, "deviceToCloud: nothing comes down");
    pair.core.shutdown().await?;
    pair.cloud.shutdown().await
}
