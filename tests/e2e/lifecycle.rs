//! Component lifecycle and deployment safety: rollback, failure policies, and the operator
//! commands (`turf component`, `turf logs`, `turf deployment status`), through real MQTT.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Result, bail};
use rumqttc::QoS;
use serde_json::{Value, json};
use turf_host::deploy::model::{DeploymentRequest, DeploymentState, FailureDetail, FailurePolicy};
use turf_tests::{
    Device, TIMEOUT, TestHost, bridge_update, plugin_wasm, pubsub_access, stage_component, turf_bin, with_timeout,
};

const PROBE: &str = "com.turf.test.Probe";
const EXTRA: &str = "com.turf.test.Extra";

/// A probe that echoes `life/#` on `echo/…` as `<variant>|<payload>`, and also listens on
/// `extra/#` (which the bridge does not route unless a deployment adds it).
fn echo_config() -> Value {
    json!({
        "subscribe": ["life/#", "extra/#"],
        "echoPrefix": "echo/",
        "echoVariant": true,
        "accessControl": pubsub_access(PROBE, &["SubscribeToTopic", "PublishToTopic"], &["*"]),
    })
}

/// Bridge routes for the echo: devices → pubsub on `life/#`, pubsub → devices on `echo/#`.
async fn echo_routes(host: &TestHost) -> Result<()> {
    let routes = bridge_update(&[("Life", "life/#", "LocalMqtt", "Pubsub"), ("Echo", "echo/#", "Pubsub", "LocalMqtt")]);
    let record = host.deploy(&routes).await?;
    assert_eq!(record.state, DeploymentState::Succeeded, "{:?}", record.error);
    Ok(())
}

/// Publishes `payload` on `topic` and returns the echo's payload.
async fn echo(device: &mut Device, topic: &str, payload: &str) -> Result<String> {
    device.client.publish(topic, QoS::AtLeastOnce, false, payload).await?;
    let expected = format!("echo/{topic}");
    let got = device.collect_until(TIMEOUT, |p| p.topic == expected).await?;
    Ok(String::from_utf8_lossy(&got.last().unwrap().payload).into_owned())
}

fn component_state(status: &[turf_host::deploy::model::ComponentInfo], name: &str) -> Option<(String, String)> {
    status.iter().find(|c| c.name == name).map(|c| (c.version.clone(), c.state.to_string()))
}

#[actix_rt::test]
async fn a_component_trapping_in_init_rolls_back_and_the_previous_version_keeps_receiving() -> Result<()> {
    let host = TestHost::start().await?;
    echo_routes(&host).await?;
    let stage = host.scratch("stage");
    let v1 = stage_component(&stage, PROBE, "1.0.0", &plugin_wasm("test_probe"), echo_config());
    assert_eq!(host.deploy(&v1).await?.state, DeploymentState::Succeeded);
    let mut device = Device::plain(&host, "tester").await?;
    device.subscribe("echo/#", QoS::AtLeastOnce).await?;
    assert_eq!(echo(&mut device, "life/1", "1").await?, "test-probe|1");

    // One deployment: a new component (launched first), a bridge route, and version 2.0.0 of
    // the probe, whose new code traps in init.
    let mut trapping = echo_config();
    trapping["initTraps"] = json!(true);
    let mut v2 = stage_component(&stage, PROBE, "2.0.0", &plugin_wasm("test_probe_b"), trapping);
    let extra_config =
        json!({"subscribe": ["life/#"], "accessControl": pubsub_access(EXTRA, &["SubscribeToTopic"], &["*"])});
    let extra = stage_component(&stage, EXTRA, "1.0.0", &plugin_wasm("test_probe"), extra_config);
    v2.merge.extend(extra.merge);
    v2.update_config = bridge_update(&[("Extra", "extra/#", "LocalMqtt", "Pubsub")]).update_config;
    let record = host.deploy(&v2).await?;
    assert_eq!(record.state, DeploymentState::Failed);
    assert_eq!(record.detail, Some(FailureDetail::FailedRollbackComplete), "{:?}", record.error);
    let error = record.error.unwrap_or_default();
    assert!(error.contains(PROBE) && error.contains("failed to start"), "{error}");
    let steps: Vec<String> = record.progress.iter().map(|e| e.what.clone()).collect();
    assert!(
        steps.iter().any(|s| s == "rolling back") && steps.last().map(String::as_str) == Some("rolled back"),
        "{steps:?}"
    );

    // The old code still runs and answers; the extra component is gone; the route is undone.
    let status = host.client().components().await?;
    assert_eq!(component_state(&status, PROBE), Some(("1.0.0".to_owned(), "RUNNING".to_owned())));
    assert_eq!(component_state(&status, EXTRA), None);
    assert!(host.log(EXTRA).contains("FINISHED"), "{}", host.log(EXTRA));
    assert!(host.log(PROBE).contains("trapping in init (test-probe-b)"));
    device.client.publish("extra/1", QoS::AtLeastOnce, false, "must not be routed").await?;
    assert_eq!(echo(&mut device, "life/2", "2").await?, "test-probe|2");
    assert!(!host.log(PROBE).contains("message extra/1"), "the rolled-back route still forwards");

    // The store still holds 1.0.0 only, and a restart comes back with it.
    let host = host.restart().await?;
    let mut device = Device::plain(&host, "tester2").await?;
    device.subscribe("echo/#", QoS::AtLeastOnce).await?;
    host.wait_for_log(PROBE, "probe ready (test-probe)", 2).await?;
    assert_eq!(echo(&mut device, "life/3", "3").await?, "test-probe|3");
    host.shutdown().await
}

#[actix_rt::test]
async fn do_nothing_keeps_the_failed_component_and_broken_never_blocks_a_deployment() -> Result<()> {
    let host = TestHost::start().await?;
    echo_routes(&host).await?;
    let stage = host.scratch("stage");
    let mut failing = echo_config();
    failing["initFails"] = json!(true);
    let mut request = stage_component(&stage, PROBE, "1.0.0", &plugin_wasm("test_probe"), failing);
    request.failure_handling_policy = FailurePolicy::DoNothing;
    let record = host.deploy(&request).await?;
    assert_eq!(record.state, DeploymentState::Failed);
    assert_eq!(record.detail, Some(FailureDetail::FailedRollbackNotRequested));
    // It stays deployed, keeps its restart policy, and ends BROKEN.
    host.wait_for_log(PROBE, "BROKEN", 1).await?;
    let status = host.client().components().await?;
    assert_eq!(component_state(&status, PROBE), Some(("1.0.0".to_owned(), "BROKEN".to_owned())));

    // A BROKEN component does not hold up an unrelated deployment.
    let started = std::time::Instant::now();
    let record = host.deploy(&bridge_update(&[("More", "more/#", "LocalMqtt", "Pubsub")])).await?;
    assert_eq!(record.state, DeploymentState::Succeeded, "{:?}", record.error);
    assert!(started.elapsed() < Duration::from_secs(10));

    // Redeploying it with a working configuration brings it back.
    let fixed = DeploymentRequest {
        update_config: [(PROBE.to_owned(), serde_json::from_value(json!({"RESET": ["/initFails"]}))?)]
            .into_iter()
            .collect(),
        ..stage_component(&stage, PROBE, "1.0.1", &plugin_wasm("test_probe"), echo_config())
    };
    let record = host.deploy(&fixed).await?;
    assert_eq!(record.state, DeploymentState::Succeeded, "{:?}", record.error);
    let mut device = Device::plain(&host, "tester").await?;
    device.subscribe("echo/#", QoS::AtLeastOnce).await?;
    assert_eq!(echo(&mut device, "life/1", "1").await?, "test-probe|1");
    host.shutdown().await
}

/// Runs `turf logs … --follow`, publishes once it has printed the existing log, and waits (at
/// most [`TIMEOUT`] for each) for `needle` in its output.
async fn follow_until(
    host: &TestHost,
    component: &str,
    needle: &str,
    device: &Device,
    topic: &str,
    payload: &str,
) -> Result<()> {
    let existing = host.log(component).lines().count();
    let mut child = Command::new(turf_bin())
        .arg("--root")
        .arg(&host.root)
        .args(["logs", component, "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().unwrap();
    let needle = needle.to_owned();
    let (printed_tx, printed) = tokio::sync::oneshot::channel();
    let found = tokio::task::spawn_blocking(move || {
        let mut printed_tx = Some(printed_tx);
        BufReader::new(stdout).lines().map_while(Result::ok).enumerate().any(|(index, line)| {
            if index + 1 >= existing
                && let Some(tx) = printed_tx.take()
            {
                let _ = tx.send(());
            }
            line.contains(&needle)
        })
    });
    // The existing log comes first; the new line must arrive while following.
    let outcome = async {
        with_timeout(TIMEOUT, "turf logs --follow to print the existing log", printed).await??;
        device.client.publish(topic, QoS::AtLeastOnce, false, payload).await?;
        anyhow::Ok(with_timeout(TIMEOUT, "the new line", found).await??)
    }
    .await;
    child.kill()?;
    child.wait()?;
    match outcome {
        Ok(true) => Ok(()),
        Ok(false) => bail!("turf logs --follow never printed the new line"),
        Err(error) => Err(error.context("turf logs --follow never printed the new line")),
    }
}

#[actix_rt::test]
async fn operators_list_inspect_stop_restart_components_and_read_their_logs() -> Result<()> {
    let host = TestHost::start().await?;
    echo_routes(&host).await?;
    let request = stage_component(&host.scratch("stage"), PROBE, "1.0.0", &plugin_wasm("test_probe"), echo_config());
    let record = host.deploy(&request).await?;
    let mut device = Device::plain(&host, "operator").await?;
    device.subscribe("echo/#", QoS::AtLeastOnce).await?;
    assert_eq!(echo(&mut device, "life/1", "1").await?, "test-probe|1");

    let list = host.turf_ok(&["component", "list"])?;
    let row = list.lines().find(|l| l.starts_with(PROBE)).unwrap_or_default().to_owned();
    assert!(row.contains("1.0.0") && row.contains("RUNNING") && row.ends_with(" 0"), "{list}");
    assert!(list.contains("aws.greengrass.Nucleus (built-in)"), "{list}");

    let details = host.turf_ok(&["component", "details", PROBE])?;
    for expected in [
        "state:     RUNNING",
        "last error: none",
        "\"echoPrefix\": \"echo/\"",
        "\"ComponentVersion\": \"1.0.0\"",
        ".log (turf logs",
    ] {
        assert!(details.contains(expected), "{expected:?} missing from:\n{details}");
    }
    let missing = host.turf(&["component", "details", "com.example.Nope"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no component named com.example.Nope"));

    // Stopped: it no longer answers, and says so.
    host.turf_ok(&["component", "stop", PROBE])?;
    assert!(host.turf_ok(&["component", "list"])?.lines().any(|l| l.starts_with(PROBE) && l.contains("FINISHED")));
    device.client.publish("life/2", QoS::AtLeastOnce, false, "2").await?;
    assert!(device.collect_until(Duration::from_millis(800), |p| p.topic == "echo/life/2").await.is_err());

    // Restarted: a fresh instance answers again, and the restart is counted.
    let out = host.turf_ok(&["component", "restart", PROBE])?;
    assert!(out.contains("restarted"), "{out}");
    assert_eq!(echo(&mut device, "life/3", "3").await?, "test-probe|3");
    let row = host.turf_ok(&["component", "list"])?;
    assert!(row.lines().any(|l| l.starts_with(PROBE) && l.contains("RUNNING") && l.ends_with(" 1")), "{row}");
    let builtin = host.turf(&["component", "restart", "aws.greengrass.ShadowManager"]);
    assert!(String::from_utf8_lossy(&builtin.stderr).contains("not a deployed WebAssembly component"));

    // Logs: the whole file, a time window, following, and a clear error for unknown names.
    let logs = host.turf_ok(&["logs", PROBE])?;
    assert!(logs.contains("message life/1: 1") && logs.contains("FINISHED"), "{logs}");
    assert!(host.turf_ok(&["logs", PROBE, "--since", "1h"])?.contains("probe ready"));
    follow_until(&host, PROBE, "message life/4: followed", &device, "life/4", "followed").await?;
    let unknown = host.turf(&["logs", "com.example.Nope"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("logs there: "), "{unknown:?}");
    assert!(!host.turf(&["logs", PROBE, "--since", "yesterday"]).status.success());

    // Deployment history with per-step timings.
    let status = host.turf_ok(&["deployment", "status", &record.id])?;
    for expected in ["SUCCEEDED", "took", "steps:", "compiled", "STARTING", "RUNNING", "installed"] {
        assert!(status.contains(expected), "{expected:?} missing from:\n{status}");
    }
    let list = host.turf_ok(&["deployment", "list"])?;
    assert!(list.lines().next().unwrap_or_default().contains("TOOK") && list.contains(&record.id), "{list}");
    host.shutdown().await
}
