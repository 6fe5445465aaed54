//! Scenarios only Turf has: a device → bridge → pubsub → WebAssembly component → device round
//! trip (5), shadow updates over MQTT (6), and the host's own footprint: idle memory with the
//! tutorial deployed, time to ready, and hot-reload time (7).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use rumqttc::QoS;
use serde_json::{Value, json};

use crate::api::Api;
use crate::brokers::{TurfProcess, deploy};
use crate::client::{Client, Creds, Via, collect, connect, stamped};
use crate::load::paced;
use crate::procfs::rss_kb;

/// Where the built artifacts are.
pub struct Artifacts {
    /// The workspace root.
    pub workspace: PathBuf,
}

impl Artifacts {
    fn plugin(&self, file: &str) -> Result<PathBuf> {
        let path = self.workspace.join("target/wasm32-wasip2/plugin").join(file);
        if !path.is_file() {
            bail!("{} is missing: `make bench` builds it", path.display());
        }
        Ok(path)
    }
}

/// Lays out a component for deployment under `dir` and returns the deployment request.
fn stage(dir: &Path, name: &str, wasm: &Path, config: Value) -> Result<Value> {
    let file = wasm.file_name().and_then(|f| f.to_str()).context("wasm file name")?;
    let recipes = dir.join("recipes");
    let artifacts = dir.join("artifacts").join(name).join("1.0.0");
    std::fs::create_dir_all(&recipes)?;
    std::fs::create_dir_all(&artifacts)?;
    let recipe = json!({
        "RecipeFormatVersion": "2020-01-25", "ComponentName": name, "ComponentVersion": "1.0.0",
        "ComponentConfiguration": {"DefaultConfiguration": config},
        "Manifests": [{"Lifecycle": {"Run": format!("{{artifacts:path}}/{file}")}}]
    });
    std::fs::write(recipes.join(format!("{name}-1.0.0.json")), recipe.to_string())?;
    std::fs::copy(wasm, artifacts.join(file))?;
    Ok(json!({"recipe_dir": recipes, "artifact_dir": dir.join("artifacts"), "merge": {name: "1.0.0"}}))
}

fn routes(routes: &[(&str, &str, &str, &str)]) -> Value {
    let mapping: serde_json::Map<String, Value> =
        routes.iter().map(|(n, t, s, d)| ((*n).to_owned(), json!({"topic": t, "source": s, "target": d}))).collect();
    json!({"update_config": {"aws.greengrass.clientdevices.mqtt.Bridge": {"MERGE": {"mqttTopicMapping": mapping}}}})
}

fn pubsub_access(name: &str) -> Value {
    json!({"aws.greengrass.ipc.pubsub": {format!("{name}:pubsub:1"): {
        "policyDescription": "bench", "operations": ["*"], "resources": ["*"]}}})
}

/// Scenario 5 results.
pub struct EndToEnd {
    /// p50, p99, max in ms at 1k msg/s.
    pub p50: f64,
    /// p99.
    pub p99: f64,
    /// max.
    pub max: f64,
    /// Highest echo rate achieved with every message echoed (msg/s).
    pub lossless_rate: f64,
}

/// Scenario 5: a device publishes, the bridge hands it to the echo component over pubsub, the
/// echo comes back to the device (QoS 1, mTLS).
pub async fn end_to_end(turf: &TurfProcess, device: &Creds, artifacts: &Artifacts, scratch: &Path) -> Result<EndToEnd> {
    let api = turf.api();
    deploy(&api, &routes(&[("E2E", "bench/e2e/#", "LocalMqtt", "Pubsub"), ("Echo", "echo/#", "Pubsub", "LocalMqtt")]))?;
    let name = "com.turf.bench.Echo";
    let config = json!({"subscribe": "bench/e2e/#", "prefix": "echo/", "accessControl": pubsub_access(name)});
    deploy(&api, &stage(scratch, name, &artifacts.plugin("bench_echo.wasm")?, config)?)?;
    let target = &turf.target;
    let mut client = connect(target, Via::Tls(device)).await?;
    client.subscribe("echo/bench/e2e/#", QoS::AtLeastOnce).await?;
    let measure = |rate: u32, secs: u64, run: usize| {
        let client = client.client.clone();
        let topic = format!("bench/e2e/{run}");
        async move {
            let base = Instant::now();
            let total = u64::from(rate) * secs;
            let sender = tokio::spawn(paced(client, topic, QoS::AtLeastOnce, rate, total, base));
            (sender, base, total)
        }
    };
    // Warm up (first messages pay for lazy set-up), then 1k msg/s for 5 s.
    let (warm, warm_base, warm_total) = measure(1000, 1, 0).await;
    warm.await??;
    collect(&mut client.arrivals, warm_base, warm_total, Duration::from_secs(3)).await?;
    let (sender, base, total) = measure(1000, 5, 1).await;
    let received = collect(&mut client.arrivals, base, total, Duration::from_secs(3)).await?;
    sender.await??;
    let (got, hist) = (received.count, received.latency);
    if got < total {
        tracing_free_note(&format!("scenario 5: {got} of {total} echoes at 1k msg/s"));
    }
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let (p50, p99, max) = (ms(0.5), ms(0.99), hist.max() as f64 / 1000.0);
    let mut lossless_rate: f64 = 0.0;
    for (i, rate) in [2_000u32, 4_000, 8_000, 16_000, 32_000].into_iter().enumerate() {
        let (sender, base, total) = measure(rate, 2, i + 2).await;
        let got = collect(&mut client.arrivals, base, total, Duration::from_secs(3)).await?.count;
        let sent = sender.await??;
        if got < sent {
            break;
        }
        // The publisher slows down when the broker pushes back, so count what came back.
        lossless_rate = lossless_rate.max(got as f64 / base.elapsed().as_secs_f64().max(1e-6));
    }
    Ok(EndToEnd { p50, p99, max, lossless_rate })
}

fn tracing_free_note(text: &str) {
    eprintln!("  note: {text}");
}

/// Scenario 6 results.
pub struct Shadows {
    /// Round trip update → update/accepted, sequential: p50 ms.
    pub p50: f64,
    /// p99 ms.
    pub p99: f64,
    /// Accepted (durable) updates per second with 32 in flight.
    pub per_second: f64,
}

/// Scenario 6: shadow updates over MQTT through the tutorial's shadow routes.
pub async fn shadows(turf: &TurfProcess, device: &Creds, workspace: &Path) -> Result<Shadows> {
    let step5 = std::fs::read_to_string(workspace.join("recipes/tutorial/step5-bridge.json"))?;
    let mut update: Value = serde_json::from_str(&step5)?;
    // This measures the shadow path, not `rateLimits` (20 requests/s per thing by default), so
    // the limits are lifted for the run.
    let unlimited = json!({"maxLocalRequestsPerSecondPerThing": 1_000_000, "maxTotalLocalRequestsRate": 1_000_000});
    update["aws.greengrass.ShadowManager"] = json!({"MERGE": {"rateLimits": unlimited}});
    deploy(&turf.api(), &json!({"update_config": update}))?;
    let thing = &device.thing;
    let mut client = connect(&turf.target, Via::Tls(device)).await?;
    client.subscribe(&format!("$aws/things/{thing}/shadow/update/accepted"), QoS::AtLeastOnce).await?;
    let topic = format!("$aws/things/{thing}/shadow/update");
    let update = |n: u64| json!({"state": {"reported": {"n": n}}, "clientToken": n.to_string()}).to_string();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for n in 0..300u64 {
        let sent = Instant::now();
        client.client.publish(topic.as_str(), QoS::AtLeastOnce, false, update(n)).await?;
        let arrival = tokio::time::timeout(Duration::from_secs(5), client.arrivals.recv())
            .await
            .context("no update/accepted within 5 s")?
            .context("connection closed")?;
        if n >= 20 {
            let _ = hist.record((arrival.at.duration_since(sent).as_micros() as u64).max(1));
        }
    }
    // Pipelined: keep 32 updates outstanding for 3 s.
    let started = Instant::now();
    let (mut sent, mut accepted) = (1000u64, 0u64);
    for _ in 0..32 {
        client.client.publish(topic.as_str(), QoS::AtLeastOnce, false, update(sent)).await?;
        sent += 1;
    }
    while started.elapsed() < Duration::from_secs(3) {
        match tokio::time::timeout(Duration::from_secs(5), client.arrivals.recv()).await {
            Ok(Some(_)) => {
                accepted += 1;
                client.client.publish(topic.as_str(), QoS::AtLeastOnce, false, update(sent)).await?;
                sent += 1;
            }
            _ => bail!("shadow updates stalled"),
        }
    }
    let per_second = accepted as f64 / started.elapsed().as_secs_f64();
    collect(&mut client.arrivals, started, 32, Duration::from_secs(3)).await?;
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    Ok(Shadows { p50: ms(0.5), p99: ms(0.99), per_second })
}

/// Deploys the tutorial (steps 2, 4 and 5) on `turf`.
pub fn deploy_tutorial(api: &Api, workspace: &Path) -> Result<()> {
    let tutorial = workspace.join("recipes/tutorial");
    let doc = |f: &str| -> Result<Value> { Ok(serde_json::from_str(&std::fs::read_to_string(tutorial.join(f))?)?) };
    deploy(api, &json!({"update_config": doc("step2-client-device-auth.json")?}))?;
    let common = |merge: Value, update: Value| {
        json!({"recipe_dir": workspace.join("recipes/components"), "artifact_dir": workspace.join("target/artifacts"),
               "merge": merge, "update_config": update})
    };
    deploy(
        api,
        &common(json!({"com.example.clientdevices.MyHelloWorldSubscriber": "1.0.0"}), doc("step4-bridge.json")?),
    )?;
    let mut step5 = doc("step5-bridge.json")?;
    if let Value::Object(map) = &mut step5 {
        map.insert(
            "com.example.clientdevices.MySmartLightManager".to_owned(),
            json!({"MERGE": {"smartLightDeviceNames": ["MyClientDevice1"]}}),
        );
    }
    deploy(api, &common(json!({"com.example.clientdevices.MySmartLightManager": "1.0.0"}), step5))
}

/// Waits until every deployed component is RUNNING; returns how long that took.
pub fn wait_running(api: &Api, limit: Duration) -> Result<Duration> {
    let started = Instant::now();
    loop {
        let components: Vec<Value> = api.get("/components")?;
        if components.iter().all(|c| c["state"] == "RUNNING") {
            return Ok(started.elapsed());
        }
        if started.elapsed() > limit {
            bail!("components not RUNNING after {limit:?}: {components:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Scenario 7 results for one start.
pub struct Footprint {
    /// Idle RSS with the tutorial deployed, MB.
    pub idle_rss_mb: f64,
    /// Exec → "turf is ready" (listeners accepting), ms.
    pub ready_ms: f64,
    /// Exec → every component RUNNING, ms.
    pub running_ms: f64,
}

/// Scenario 7a: restarts Turf on a root with the tutorial deployed and measures it.
pub fn footprint(bin: &Path, root: &Path) -> Result<Footprint> {
    let started = Instant::now();
    let turf = TurfProcess::start(bin, root)?;
    let ready_ms = turf.ready_after.as_secs_f64() * 1000.0;
    wait_running(&turf.api(), Duration::from_secs(30))?;
    let running_ms = started.elapsed().as_secs_f64() * 1000.0;
    // Idle means after start-up's one-off work: Turf gives that memory back 2 s after it is ready.
    std::thread::sleep(Duration::from_secs(5));
    let idle_rss_mb = rss_kb(turf.target.pid)? as f64 / 1024.0;
    turf.stop()?;
    Ok(Footprint { idle_rss_mb, ready_ms, running_ms })
}

/// Scenario 7b: a new `.wasm` is moved into `plugins/`; time until a message is answered by it.
/// A copy of the component `wasm` that differs from every other copy: a custom section named
/// `turf-bench-salt` holding `salt` is appended, so the host has never compiled it (its compile
/// cache is keyed by content) while the code is the same.
pub fn salted(wasm: &[u8], salt: u64) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"turf-bench-salt";
    let mut body = Vec::new();
    leb(name.len(), &mut body);
    body.extend_from_slice(name);
    body.extend_from_slice(&salt.to_le_bytes());
    let mut out = wasm.to_vec();
    out.push(0); // custom section
    leb(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

/// Hot reload: moves `test_probe` into the plugins folder, waits until it answers, then moves
/// in `test_probe_b` and measures until the first answer from it. With `salt`, the second
/// component is a copy never seen before (see [`salted`]), so the time includes compiling it;
/// without, it is the same file as last time and comes from the compile cache.
pub async fn hot_reload(turf: &TurfProcess, device: &Creds, artifacts: &Artifacts, salt: Option<u64>) -> Result<f64> {
    let api = turf.api();
    deploy(
        &api,
        &routes(&[("Hot", "bench/hot/#", "LocalMqtt", "Pubsub"), ("HotEcho", "hotecho/#", "Pubsub", "LocalMqtt")]),
    )?;
    let name = "com.turf.bench.Hot";
    let plugins = turf.root.join("plugins");
    let recipe = json!({
        "RecipeFormatVersion": "2020-01-25", "ComponentName": name, "ComponentVersion": "1.0.0",
        "ComponentConfiguration": {"DefaultConfiguration": {"subscribe": ["bench/hot/#"], "echoPrefix": "hotecho/",
            "echoVariant": true, "accessControl": pubsub_access(name)}},
        "Manifests": [{"Lifecycle": {"Run": "{artifacts:path}/probe.wasm"}}]
    });
    std::fs::write(plugins.join(format!("{name}-1.0.0.json")), recipe.to_string())?;
    let place = |wasm: &[u8]| -> Result<()> {
        let staging = plugins.join(".incoming.tmp");
        std::fs::write(&staging, wasm)?;
        std::fs::rename(&staging, plugins.join(format!("{name}-1.0.0.wasm")))?;
        Ok(())
    };
    let second = std::fs::read(artifacts.plugin("test_probe_b.wasm")?)?;
    let second = match salt {
        Some(salt) => salted(&second, salt),
        None => second,
    };
    place(&std::fs::read(artifacts.plugin("test_probe.wasm")?)?)?;
    let mut client = connect(&turf.target, Via::Tls(device)).await?;
    client.subscribe("hotecho/#", QoS::AtLeastOnce).await?;
    // Wait until the first version answers.
    let answers = |client: &Client| client.client.clone();
    let sender = answers(&client);
    let pump = tokio::spawn(async move {
        for n in 0..60_000u32 {
            if sender.publish("bench/hot/x", QoS::AtLeastOnce, false, stamped(u64::from(n))).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    wait_for_variant(&mut client, "test-probe|", deadline).await?;
    let swapped = Instant::now();
    place(&second)?;
    wait_for_variant(&mut client, "test-probe-b|", swapped + Duration::from_secs(30)).await?;
    let took = swapped.elapsed().as_secs_f64() * 1000.0;
    pump.abort();
    Ok(took)
}

async fn wait_for_variant(client: &mut Client, prefix: &str, deadline: Instant) -> Result<()> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, client.arrivals.recv()).await {
            Ok(Some(a)) if a.payload.starts_with(prefix.as_bytes()) => return Ok(()),
            Ok(Some(_)) => {}
            _ => bail!("no answer from {prefix}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::salted;

    #[test]
    fn a_salted_copy_is_the_component_plus_one_custom_section() {
        let wasm = b"\0asm\x0d\0\x01\0".to_vec();
        let copy = salted(&wasm, 7);
        assert_eq!(&copy[..wasm.len()], &wasm[..]);
        let section = &copy[wasm.len()..];
        assert_eq!(section[0], 0, "custom section id");
        assert_eq!(usize::from(section[1]), section.len() - 2, "section size");
        assert_eq!(usize::from(section[2]), b"turf-bench-salt".len());
        assert_eq!(&section[3..18], b"turf-bench-salt");
        assert_eq!(&section[18..], &7u64.to_le_bytes());
        assert_ne!(salted(&wasm, 8), copy);
    }
}
