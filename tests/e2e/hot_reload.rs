//! Hot reload and drop-in components, observed end to end through MQTT: a device publishes a
//! numbered stream the component echoes back, and no number may go missing, repeat or arrive
//! out of order while the component's code or recipe is swapped.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use rumqttc::QoS;
use serde_json::{Value, json};
use turf_host::deploy::model::DeploymentState;
use turf_host::watch::WatchConfig;
use turf_tests::{
    Device, HostOptions, TIMEOUT, TestHost, Ticker, assert_none_lost, bridge_update, echoes, plugin_wasm,
    pubsub_access, stage_component, wait_until,
};

const PROBE: &str = "com.turf.test.Probe";
const DROP: &str = "com.turf.test.Drop";
const TICK: Duration = Duration::from_millis(20);

fn echo_config(component: &str, prefix: &str) -> Value {
    json!({
        "subscribe": ["hot/#"],
        "echoPrefix": prefix,
        "echoVariant": true,
        "accessControl": pubsub_access(component, &["SubscribeToTopic", "PublishToTopic"], &["*"]),
    })
}

async fn routes(host: &TestHost) -> Result<()> {
    let routes = bridge_update(&[("Hot", "hot/#", "LocalMqtt", "Pubsub"), ("Echo", "echo/#", "Pubsub", "LocalMqtt")]);
    let record = host.deploy(&routes).await?;
    assert_eq!(record.state, DeploymentState::Succeeded, "{:?}", record.error);
    Ok(())
}

/// A device listening to every echo, a ticker publishing `hot/n`, and the device it publishes
/// through (keep it alive as long as the ticker: its event loop sends the ticks).
async fn stream(host: &TestHost) -> Result<(Device, Ticker, Device)> {
    let mut listener = Device::plain(host, "listener").await?;
    listener.subscribe("echo/#", QoS::AtLeastOnce).await?;
    let sender = Device::plain(host, "sender").await?;
    let ticker = Ticker::start(sender.client.clone(), "hot/n", TICK);
    Ok((listener, ticker, sender))
}

/// Collects echoes until `done` holds for one, then two more.
async fn collect(listener: &mut Device, done: impl Fn(&rumqttc::Publish) -> bool) -> Result<Vec<rumqttc::Publish>> {
    let mut got = listener.collect_until(Duration::from_secs(60), done).await?;
    got.extend(listener.collect_until(TIMEOUT, |_| true).await?);
    got.extend(listener.collect_until(TIMEOUT, |_| true).await?);
    Ok(got)
}

/// Stops the ticker and collects the echoes of everything it sent.
async fn drain(listener: &mut Device, ticker: Ticker, mut got: Vec<rumqttc::Publish>) -> Result<Vec<(u32, String)>> {
    let last = ticker.stop().await?;
    let wanted = last.to_string();
    if !echoes(&got)?.iter().any(|(n, _)| *n == last) {
        got.extend(listener.collect_until(TIMEOUT, |p| payload(p).rsplit('|').next() == Some(wanted.as_str())).await?);
    }
    let all = echoes(&got)?;
    assert_none_lost(&all, last);
    Ok(all)
}

fn payload(p: &rumqttc::Publish) -> String {
    String::from_utf8_lossy(&p.payload).into_owned()
}

#[actix_rt::test]
async fn editing_a_watched_recipe_redeploys_it_without_losing_a_message() -> Result<()> {
    let dev = tempfile::tempdir()?;
    let request =
        stage_component(dev.path(), PROBE, "1.0.0", &plugin_wasm("test_probe"), echo_config(PROBE, "echo/one/"));
    let watch = WatchConfig { recipes: request.recipe_dir.clone(), artifacts: request.artifact_dir.clone() };
    let host = TestHost::start_with(HostOptions { watch, ..HostOptions::default() }).await?;
    routes(&host).await?;
    assert_eq!(host.deploy(&request).await?.state, DeploymentState::Succeeded);
    let (mut listener, ticker, _sender) = stream(&host).await?;
    listener.collect_until(TIMEOUT, |p| p.topic.starts_with("echo/one/")).await?;

    // Edit the recipe's default configuration in place: the echo moves to another prefix.
    let recipe_path = dev.path().join(format!("recipes/{PROBE}-1.0.0.json"));
    let text = std::fs::read_to_string(&recipe_path)?;
    std::fs::write(&recipe_path, text.replace("echo/one/", "echo/two/"))?;
    let got = collect(&mut listener, |p| p.topic.starts_with("echo/two/")).await?;
    let all = drain(&mut listener, ticker, got.clone()).await?;
    let topics: Vec<&str> = got.iter().map(|p| p.topic.as_str()).collect();
    let switch = topics.iter().position(|t| t.starts_with("echo/two/")).unwrap();
    assert!(topics[switch..].iter().all(|t| t.starts_with("echo/two/")), "prefix flipped back: {topics:?}");
    assert!(switch > 0, "the old recipe never answered: {topics:?}");
    assert_none_lost(&all, all.last().map_or(0, |(n, _)| *n));
    let history = host.client().deployments().await?;
    assert_eq!(history[0].state, DeploymentState::Succeeded);
    assert_eq!(history[0].request.merge.get(PROBE).map(String::as_str), Some("1.0.0"), "same version");

    // Touching the file without changing it does nothing.
    let before = history.len();
    std::fs::write(&recipe_path, std::fs::read(&recipe_path)?)?;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(host.client().deployments().await?.len(), before, "an unchanged file was redeployed");

    // A broken edit fails its deployment; the running version keeps answering.
    std::fs::write(&recipe_path, "{ not json")?;
    wait_until(TIMEOUT, "the broken edit to be reported", || async {
        host.client().deployments().await.is_ok_and(|h| h.len() > before && h[0].state == DeploymentState::Failed)
    })
    .await?;
    let failed = &host.client().deployments().await?[0];
    assert!(failed.error.as_deref().unwrap_or_default().contains("invalid JSON"), "{:?}", failed.error);
    let sender = Device::plain(&host, "late").await?;
    sender.client.publish("hot/n", QoS::AtLeastOnce, false, "999999").await?;
    let got = listener.collect_until(TIMEOUT, |p| payload(p).ends_with("|999999")).await?;
    assert_eq!(got.last().unwrap().topic, "echo/two/hot/n");
    host.shutdown().await
}

/// Writes `bytes` to `path` in two halves with a pause between, as a slow copy would.
async fn slow_write(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    let half = bytes.len() / 2;
    file.write_all(&bytes[..half])?;
    file.flush()?;
    tokio::time::sleep(Duration::from_millis(150)).await;
    file.write_all(&bytes[half..])?;
    Ok(())
}

async fn wait_for_state(host: &TestHost, name: &str, state: Option<&str>) -> Result<()> {
    let what = format!("{name} to be {state:?}");
    wait_until(Duration::from_secs(60), &what, || async {
        let components = host.client().components().await.unwrap_or_default();
        components.iter().find(|c| c.name == name).map(|c| c.state.to_string()).as_deref() == state
    })
    .await
}

#[actix_rt::test]
async fn a_dropped_in_wasm_is_deployed_hot_swapped_and_removed_without_losing_a_message() -> Result<()> {
    let host = TestHost::start().await?;
    routes(&host).await?;
    let plugins = host.root.join("plugins");
    let recipe = json!({
        "RecipeFormatVersion": "2020-01-25", "ComponentName": DROP, "ComponentVersion": "1.0.0",
        "ComponentConfiguration": {"DefaultConfiguration": echo_config(DROP, "echo/")},
        "Manifests": [{"Lifecycle": {"Run": "{artifacts:path}/probe.wasm"}}]
    });
    std::fs::write(plugins.join(format!("{DROP}-1.0.0.json")), recipe.to_string())?;
    let wasm_path = plugins.join(format!("{DROP}-1.0.0.wasm"));
    slow_write(&wasm_path, &std::fs::read(plugin_wasm("test_probe"))?).await?;
    wait_for_state(&host, DROP, Some("RUNNING")).await?;
    let history = host.client().deployments().await?;
    assert!(history.iter().all(|d| d.state == DeploymentState::Succeeded), "a half-written file was deployed");

    let (mut listener, ticker, _sender) = stream(&host).await?;
    listener.collect_until(TIMEOUT, |p| payload(p).starts_with("test-probe|")).await?;
    // Replace the code in place: the other build of the probe takes over.
    slow_write(&wasm_path, &std::fs::read(plugin_wasm("test_probe_b"))?).await?;
    let got = collect(&mut listener, |p| payload(p).starts_with("test-probe-b|")).await?;
    let all = drain(&mut listener, ticker, got).await?;
    let switch = all.iter().position(|(_, v)| v == "test-probe-b").unwrap();
    assert!(switch > 0, "the old code never answered");
    assert!(all[switch..].iter().all(|(_, v)| v == "test-probe-b"), "old code answered after the swap: {all:?}");
    let info = host.client().component(DROP).await?;
    assert_eq!(info.info.restarts, 0, "a swap is not a restart");
    assert!(info.origin.is_none(), "it came with its own recipe");

    // Delete it: the component goes away and stops answering.
    std::fs::remove_file(&wasm_path)?;
    wait_for_state(&host, DROP, None).await?;
    let sender = Device::plain(&host, "late").await?;
    sender.client.publish("hot/n", QoS::AtLeastOnce, false, "1").await?;
    assert!(listener.collect_until(Duration::from_millis(800), |_| true).await.is_err(), "a removed drop-in answered");
    host.shutdown().await
}

#[actix_rt::test]
async fn a_wasm_dropped_in_without_recipe_runs_with_no_access_rights() -> Result<()> {
    let host = TestHost::start().await?;
    let plugins = host.root.join("plugins");
    std::fs::write(plugins.join("com.turf.test.Bare-0.1.0.wasm"), std::fs::read(plugin_wasm("test_probe"))?)?;
    wait_for_state(&host, "com.turf.test.Bare", Some("RUNNING")).await?;
    let details = host.turf_ok(&["component", "details", "com.turf.test.Bare"])?;
    assert!(details.contains("default recipe with no access rights"), "{details}");

    // Junk with the right name is refused before anything changes, and never retried as is.
    let before = host.client().deployments().await?.len();
    std::fs::write(plugins.join("com.turf.test.Junk-1.0.0.wasm"), b"not wasm at all")?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let components = host.client().components().await?;
    assert!(components.iter().all(|c| c.name != "com.turf.test.Junk"));
    assert_eq!(host.client().deployments().await?.len(), before, "junk was deployed");

    // It survives a restart, and a deletion while the host is down removes it on start.
    let host = host.restart().await?;
    wait_for_state(&host, "com.turf.test.Bare", Some("RUNNING")).await?;
    let host_root = host.root.clone();
    let host = {
        let (dir, root) = (std::sync::Arc::clone(&host.dir), host.root.clone());
        host.shutdown().await?;
        std::fs::remove_file(host_root.join("plugins/com.turf.test.Bare-0.1.0.wasm"))?;
        TestHost::start_with(HostOptions { root: Some((dir, root)), auth: None, ..HostOptions::default() }).await?
    };
    wait_for_state(&host, "com.turf.test.Bare", None).await?;
    host.shutdown().await
}
