//! Deployments: validation before change, and persistence across restarts.

use anyhow::Result;
use serde_json::json;
use turf_host::deploy::model::DeploymentState;
use turf_tests::{TestHost, bridge_update, plugin_wasm, pubsub_access, stage_component};

const PROBE: &str = "com.turf.test.Probe";

#[actix_rt::test]
async fn invalid_recipe_is_rejected_with_file_and_field_and_nothing_changes() -> Result<()> {
    let host = TestHost::start().await?;
    host.deploy_probe(PROBE, json!({})).await?;

    let broken_dir = host.scratch("broken");
    let mut bad = stage_component(&broken_dir, "com.turf.test.Broken", "1.0.0", &plugin_wasm("test_probe"), json!({}));
    let recipe_path = broken_dir.join("recipes/com.turf.test.Broken-1.0.0.json");
    let mut recipe: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&recipe_path)?)?;
    recipe["Manifests"][0]["Lifecycle"]["Run"] = json!("python3 -u {artifacts:path}/broken.py");
    std::fs::write(&recipe_path, recipe.to_string())?;
    bad.update_config = bridge_update(&[("R", "x/#", "LocalMqtt", "Pubsub")]).update_config;
    let record = host.deploy(&bad).await?;
    assert_eq!(record.state, DeploymentState::Failed);
    let error = record.error.unwrap();
    assert!(
        error.contains("com.turf.test.Broken-1.0.0.json") && error.contains("Manifests[0].Lifecycle.Run"),
        "{error}"
    );

    let status = host.client().status().await?;
    assert!(status.components.iter().all(|c| c.name != "com.turf.test.Broken"));
    assert_eq!(status.components.iter().find(|c| c.name == PROBE).unwrap().state.to_string(), "RUNNING");
    assert_eq!(host.log(PROBE).matches("probe ready").count(), 1, "running component was touched");
    host.shutdown().await
}

#[actix_rt::test]
async fn bad_bridge_config_is_rejected_with_its_path() -> Result<()> {
    let host = TestHost::start().await?;
    let record = host.deploy(&bridge_update(&[("Typo", "a/#", "LocalMQTT", "Pubsbu")])).await?;
    assert_eq!(record.state, DeploymentState::Failed);
    let error = record.error.unwrap();
    assert!(error.contains("mqttTopicMapping.Typo.target") && error.contains("Pubsbu"), "{error}");
    host.shutdown().await
}

#[actix_rt::test]
async fn a_component_that_cannot_be_compiled_fails_the_deployment() -> Result<()> {
    let host = TestHost::start().await?;
    let stage = host.scratch("stage");
    let junk = stage.join("junk.wasm");
    std::fs::write(&junk, b"\0asm not really")?;
    let record = host.deploy(&stage_component(&stage, "com.turf.test.Junk", "1.0.0", &junk, json!({}))).await?;
    assert_eq!(record.state, DeploymentState::Failed);
    assert!(record.error.unwrap().contains("not a valid WebAssembly component"));
    host.shutdown().await
}

#[actix_rt::test]
async fn last_deployment_comes_back_after_a_restart() -> Result<()> {
    let host = TestHost::start().await?;
    host.deploy(&bridge_update(&[("R", "persist/#", "LocalMqtt", "Pubsub")])).await?;
    let config =
        json!({"subscribe": ["persist/#"], "accessControl": pubsub_access(PROBE, &["SubscribeToTopic"], &["*"])});
    let record = host
        .deploy(&stage_component(&host.scratch("stage"), PROBE, "1.0.0", &plugin_wasm("test_probe"), config))
        .await?;
    assert_eq!(record.state, DeploymentState::Succeeded, "{:?}", record.error);
    host.wait_for_log(PROBE, "probe ready", 1).await?;
    let host = host.restart().await?;
    host.wait_for_log(PROBE, "probe ready", 2).await?;
    let device = turf_tests::Device::plain(&host, "after").await?;
    device.client.publish("persist/x", rumqttc::QoS::AtLeastOnce, false, "still routed").await?;
    host.wait_for_log(PROBE, "message persist/x: still routed", 1).await?;
    let history = host.client().deployments().await?;
    assert_eq!(history.len(), 3, "the auth deployment, the bridge route and the component");
    host.shutdown().await
}
