//! Hostile components: each case runs `plugins/test-hostile` in one misbehaviour inside a real
//! `turf run` process, next to a well-behaved probe that echoes a device's messages, and checks
//! what the sandbox promises (ARCHITECTURE.md, "The component sandbox"):
//!
//! - a device's round trip through the other component stays under [`ROUND_TRIP_BOUND`] while the
//!   hostile one misbehaves;
//! - a deployment made meanwhile completes within [`DEPLOYMENT_BOUND`];
//! - `turf component list` answers within [`CLI_BOUND`];
//! - the hostile component ends up RUNNING again or BROKEN, as the restart policy says, and its
//!   counters in `turf component details` show what was refused;
//! - SIGTERM, sent while it misbehaves, ends the process within 10 s.
//!
//! Bounds are for the debug build `make test` uses, on 2 cores, with two cases at a time.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use turf_host::deploy::model::{DeploymentRequest, DeploymentState, FailurePolicy};
use turf_host::mgmt::client::Client;
use turf_tests::process::RunningTurf;
use turf_tests::{bridge_update, merge_update, plugin_wasm, pubsub_access, stage_component, wait_until};

const HOSTILE: &str = "com.turf.test.Hostile";
const BYSTANDER: &str = "com.turf.test.Bystander";
/// Longest a device's round trip through the well-behaved component may take.
const ROUND_TRIP_BOUND: Duration = Duration::from_millis(500);
/// Longest a deployment made while the hostile component misbehaves may take.
const DEPLOYMENT_BOUND: Duration = Duration::from_secs(15);
/// Longest `turf component list` may take to answer.
const CLI_BOUND: Duration = Duration::from_secs(3);
/// Longest SIGTERM may take to end the process.
const EXIT_BOUND: Duration = Duration::from_secs(10);
/// How long round trips are sampled while the hostile component misbehaves.
const SAMPLING: Duration = Duration::from_secs(3);

/// Where a case's hostile component must end up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// RUNNING, after between `min` and `max` restarts.
    Running { min: u32, max: u32 },
    /// BROKEN (three errors within the hour).
    Broken,
}

struct Case {
    behaviour: &'static str,
    /// Started by a message on `hostile/go` (otherwise it misbehaves from `init`).
    on_message: bool,
    end: End,
    /// A usage counter (`turf component details` JSON name) that must have moved.
    counter: Option<&'static str>,
    /// A line its log must contain.
    log: Option<&'static str>,
}

/// A device on the plain listener, with what it receives.
struct Device {
    client: AsyncClient,
    received: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
}

impl Device {
    async fn connect(port: u16, id: &str) -> Result<Self> {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(30));
        let (client, eventloop) = AsyncClient::new(options, 100);
        let (tx, received) = mpsc::unbounded_channel();
        tokio::spawn(pump(eventloop, tx));
        Ok(Self { client, received })
    }

    /// Publishes `payload` on `echo/in` and waits for the bystander's echo; the round trip.
    async fn round_trip(&mut self, payload: &str) -> Result<Duration> {
        let start = Instant::now();
        self.client.publish("echo/in", QoS::AtLeastOnce, false, payload).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (topic, body) = tokio::time::timeout_at(deadline, self.received.recv())
                .await
                .context("no echo within 10 s")?
                .context("device connection ended")?;
            if topic == "echoed/echo/in" && body == payload.as_bytes() {
                return Ok(start.elapsed());
            }
        }
    }
}

async fn pump(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<(String, Vec<u8>)>) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if tx.send((p.topic.clone(), p.payload.to_vec())).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

async fn deploy(client: &Client, request: &DeploymentRequest) -> Result<Duration> {
    let start = Instant::now();
    let record = client.create_deployment(request).await?;
    let record = client.wait_deployment(&record.id, DEPLOYMENT_BOUND * 2, None).await?;
    ensure!(record.state == DeploymentState::Succeeded, "deployment failed: {:?}", record.error);
    Ok(start.elapsed())
}

/// `turf component details` of the hostile component, as the API reports it.
async fn usage(client: &Client) -> Result<Value> {
    let details = client.component(HOSTILE).await?;
    serde_json::to_value(details.info.usage).context("usage")
}

async fn state(client: &Client) -> Result<(String, u32)> {
    let info = client.components().await?.into_iter().find(|c| c.name == HOSTILE).context("hostile not listed")?;
    Ok((info.state.to_string(), info.restarts))
}

/// Runs `turf component list` on `root` off the test's thread.
async fn component_list(root: &Path) -> Result<std::process::Output> {
    let root = root.to_path_buf();
    let list = move || {
        std::process::Command::new(turf_tests::turf_bin()).arg("--root").arg(root).args(["component", "list"]).output()
    };
    Ok(tokio::task::spawn_blocking(list).await??)
}

/// Runs `turf component list` and returns how long it took.
async fn cli_list(root: &Path) -> Result<Duration> {
    let start = Instant::now();
    let output = component_list(root).await?;
    ensure!(output.status.success(), "turf component list failed: {}", String::from_utf8_lossy(&output.stderr));
    ensure!(String::from_utf8_lossy(&output.stdout).contains(HOSTILE), "the list names the hostile component");
    Ok(start.elapsed())
}

async fn run_case(case: Case) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    let (turf, _, _) = RunningTurf::start(&root)?;
    let client = Client::new(&root.join("turf.sock"));
    let routes = [
        ("DevicesToBus", "echo/#", "LocalMqtt", "Pubsub"),
        ("Triggers", "hostile/#", "LocalMqtt", "Pubsub"),
        ("EchoesToDevices", "echoed/#", "Pubsub", "LocalMqtt"),
    ];
    deploy(&client, &bridge_update(&routes)).await?;
    let stage = dir.path().join("stage");
    let bystander = json!({
        "subscribe": ["echo/in"], "echoPrefix": "echoed/",
        "accessControl": pubsub_access(BYSTANDER, &["SubscribeToTopic", "PublishToTopic"], &["echo/in", "echoed/echo/in"]),
    });
    deploy(&client, &stage_component(&stage.join("b"), BYSTANDER, "1.0.0", &plugin_wasm("test_probe"), bystander))
        .await?;
    let mut device = Device::connect(turf.plain, "sandbox-device").await?;
    device.client.subscribe("echoed/#", QoS::AtLeastOnce).await?;
    // The first echo proves the path before anything hostile runs.
    device.round_trip("warm-up").await?;

    let hostile = json!({
        "behaviour": case.behaviour, "trigger": "hostile/go",
        "accessControl": pubsub_access(HOSTILE, &["SubscribeToTopic", "PublishToTopic"], &["hostile/go", "flood/out"]),
    });
    let mut request = stage_component(&stage.join("h"), HOSTILE, "1.0.0", &plugin_wasm("test_hostile"), hostile);
    request.failure_handling_policy = FailurePolicy::DoNothing;
    let record = client.create_deployment(&request).await?;
    let record = client.wait_deployment(&record.id, DEPLOYMENT_BOUND * 2, None).await?;
    if case.behaviour != "trap-init" {
        ensure!(record.state == DeploymentState::Succeeded, "deploying the hostile component: {:?}", record.error);
    }
    let trigger_client = device.client.clone();
    let trigger = || trigger_client.publish("hostile/go", QoS::AtLeastOnce, false, "go");
    if case.on_message {
        trigger().await?;
    }

    // Devices and the other component keep their latency while it misbehaves.
    let start = Instant::now();
    let mut worst = Duration::ZERO;
    let mut n = 0;
    while start.elapsed() < SAMPLING {
        n += 1;
        worst = worst.max(device.round_trip(&format!("ping {n}")).await?);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("{}: worst round trip {worst:?} over {n} pings", case.behaviour);
    ensure!(worst < ROUND_TRIP_BOUND, "{}: a round trip took {worst:?}", case.behaviour);

    // The operator's view answers.
    let took = cli_list(&root).await?;
    ensure!(took < CLI_BOUND, "{}: turf component list took {took:?}", case.behaviour);

    // It ends up where the restart policy says.
    let what = format!("{} to end up {:?}", case.behaviour, case.end);
    wait_until(Duration::from_secs(30), &what, || async {
        match (state(&client).await, case.end) {
            (Ok((state, restarts)), End::Running { min, max }) => state == "RUNNING" && (min..=max).contains(&restarts),
            (Ok((state, _)), End::Broken) => state == "BROKEN",
            (Err(_), _) => false,
        }
    })
    .await?;
    let usage = usage(&client).await?;
    let details = turf.turf(&["component", "details", HOSTILE]);
    println!("{}: turf component details\n{}", case.behaviour, String::from_utf8_lossy(&details.stdout));
    if let Some(counter) = case.counter {
        ensure!(usage[counter].as_u64().unwrap_or(0) > 0, "{}: {counter} did not move: {usage}", case.behaviour);
    }
    let logs = std::fs::read_dir(root.join("logs"))?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(HOSTILE))
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum::<u64>();
    ensure!(logs < 8 << 20, "{}: its log files hold {logs} bytes", case.behaviour);
    if let Some(needle) = case.log {
        let log = std::fs::read_to_string(root.join("logs").join(format!("{HOSTILE}.log")))?;
        ensure!(log.contains(needle), "{}: {needle:?} is not in its log:\n{log}", case.behaviour);
    }

    // A deployment made while it misbehaves again completes.
    if case.on_message {
        trigger().await?;
    }
    let took = deploy(&client, &merge_update(BYSTANDER, json!({"note": "redeployed"}))).await?;
    ensure!(took < DEPLOYMENT_BOUND, "{}: a deployment took {took:?}", case.behaviour);

    // SIGTERM while it misbehaves ends the process in time.
    if case.on_message {
        trigger().await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let start = Instant::now();
    let status = tokio::task::spawn_blocking(move || turf.terminate()).await??;
    let took = start.elapsed();
    ensure!(took < EXIT_BOUND, "{}: SIGTERM took {took:?} to end the process ({status})", case.behaviour);
    let log = std::fs::read_to_string(root.join("logs/turf.log")).unwrap_or_default();
    if !log.contains("turf_host::supervisor: stopped") {
        bail!("{}: the host did not finish its shutdown:\n{log}", case.behaviour);
    }
    Ok(())
}

#[actix_rt::test]
async fn a_component_sleeping_in_a_host_call_is_cut_off_at_its_budget() -> Result<()> {
    let end = End::Running { min: 1, max: 1 };
    run_case(Case { behaviour: "sleep", on_message: true, end, counter: Some("budget_overruns"), log: None }).await
}

#[actix_rt::test]
async fn a_spinning_component_is_cut_off_at_its_budget() -> Result<()> {
    let end = End::Running { min: 1, max: 1 };
    run_case(Case { behaviour: "spin", on_message: true, end, counter: Some("budget_overruns"), log: None }).await
}

#[actix_rt::test]
async fn a_component_growing_its_memory_stops_at_its_memory_budget() -> Result<()> {
    let end = End::Running { min: 1, max: 1 };
    run_case(Case { behaviour: "memory", on_message: true, end, counter: Some("memory_refusals"), log: None }).await
}

#[actix_rt::test]
async fn a_component_publishing_in_a_tight_loop_is_paced_and_cut_off() -> Result<()> {
    let end = End::Running { min: 1, max: 1 };
    run_case(Case { behaviour: "publish-flood", on_message: true, end, counter: Some("budget_overruns"), log: None })
        .await
}

#[actix_rt::test]
async fn sixty_four_busy_timers_are_throttled_to_the_components_cpu_share() -> Result<()> {
    // 900 ms of work in a 1 s budget: on a loaded machine a tick may run over and be cut off.
    let end = End::Running { min: 0, max: 2 };
    run_case(Case { behaviour: "timers", on_message: false, end, counter: Some("throttled_calls"), log: None }).await
}

#[actix_rt::test]
async fn a_component_subscribing_to_everything_without_rights_is_refused_and_keeps_running() -> Result<()> {
    let end = End::Running { min: 0, max: 0 };
    let log = Some("subscribe # failed: unauthorized");
    run_case(Case { behaviour: "subscribe-all", on_message: false, end, counter: None, log }).await
}

#[actix_rt::test]
async fn a_component_printing_100_mb_is_rate_limited_in_its_log() -> Result<()> {
    // A million host calls may or may not fit its 1 s budget; either way it keeps running.
    let end = End::Running { min: 0, max: 1 };
    let log = Some("bytes of output dropped: over the log rate");
    run_case(Case { behaviour: "print", on_message: true, end, counter: Some("dropped_log_bytes"), log }).await
}

#[actix_rt::test]
async fn a_component_trapping_in_init_becomes_broken() -> Result<()> {
    let log = Some("trapping in init");
    run_case(Case { behaviour: "trap-init", on_message: false, end: End::Broken, counter: None, log }).await
}

#[actix_rt::test]
async fn a_component_trapping_in_a_loop_becomes_broken() -> Result<()> {
    run_case(Case { behaviour: "trap-loop", on_message: false, end: End::Broken, counter: None, log: None }).await
}

/// Stages the hostile component with `config` and its recipe's `SystemResourceLimits`.
fn stage_hostile(dir: &Path, config: Value, limits: Value) -> Result<DeploymentRequest> {
    let request = stage_component(dir, HOSTILE, "1.0.0", &plugin_wasm("test_hostile"), config);
    let recipe_file = dir.join("recipes").join(format!("{HOSTILE}-1.0.0.json"));
    let mut recipe: Value = serde_json::from_str(&std::fs::read_to_string(&recipe_file)?)?;
    recipe["SystemResourceLimits"] = limits;
    std::fs::write(&recipe_file, serde_json::to_string_pretty(&recipe)?)?;
    Ok(request)
}

fn hostile_config(behaviour: &str) -> Value {
    json!({
        "behaviour": behaviour, "trigger": "hostile/go",
        "accessControl": pubsub_access(HOSTILE, &["SubscribeToTopic"], &["hostile/go"]),
    })
}

#[actix_rt::test]
async fn recipe_limits_bound_the_inbox_and_a_deployment_kills_a_component_stuck_past_its_stop_timeout() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    let (turf, _, _) = RunningTurf::start(&root)?;
    let client = Client::new(&root.join("turf.sock"));
    deploy(&client, &bridge_update(&[("Triggers", "hostile/#", "LocalMqtt", "Pubsub")])).await?;
    // A minute per call: only the deployment's stop timeout can end the sleep below.
    let limits = json!({"memory": 4096, "queueMessages": 5, "callTimeoutMs": 60000});
    deploy(&client, &stage_hostile(&dir.path().join("stage"), hostile_config("sleep"), limits)?).await?;
    let before = usage(&client).await?;
    assert_eq!(before["memory_limit_bytes"], 4 << 20, "memory is in KiB, as Greengrass's: {before}");

    let device = Device::connect(turf.plain, "sandbox-burst").await?;
    for _ in 0..50 {
        device.client.publish("hostile/go", QoS::AtLeastOnce, false, "go").await?;
    }
    wait_until(Duration::from_secs(20), "the inbox to drop the oldest messages", || async {
        usage(&client).await.is_ok_and(|u| u["dropped_messages"].as_u64().unwrap_or(0) >= 40)
    })
    .await?;
    let status = turf.turf(&["status"]);
    let status = String::from_utf8_lossy(&status.stdout);
    ensure!(status.contains("message(s) dropped (inbox full)"), "turf status shows the drops:\n{status}");
    let details = turf.turf(&["component", "details", HOSTILE]);
    let details = String::from_utf8_lossy(&details.stdout);
    ensure!(
        details.contains("dropped:   4") && details.contains("/4.0 MiB"),
        "details show drops and budget:\n{details}"
    );

    let mut removal = DeploymentRequest { remove: vec![HOSTILE.to_owned()], ..DeploymentRequest::default() };
    removal.failure_handling_policy = FailurePolicy::Rollback;
    let took = deploy(&client, &removal).await?;
    ensure!(took < Duration::from_secs(10), "removing the stuck component took {took:?}");
    let log = std::fs::read_to_string(root.join("logs").join(format!("{HOSTILE}.log")))?;
    ensure!(log.contains("killed"), "its log says it was killed:\n{log}");
    let took = {
        let start = Instant::now();
        tokio::task::spawn_blocking(move || turf.terminate()).await??;
        start.elapsed()
    };
    ensure!(took < EXIT_BOUND, "SIGTERM took {took:?}");
    Ok(())
}

#[actix_rt::test]
async fn a_component_slow_to_start_never_keeps_the_management_api_from_answering() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    let (turf, _, _) = RunningTurf::start(&root)?;
    let client = Client::new(&root.join("turf.sock"));
    let limits = json!({"initTimeoutMs": 12000});
    deploy(&client, &stage_hostile(&dir.path().join("stage"), hostile_config("subscribe-all"), limits)?).await?;
    // From the next start on, its init sleeps until its budget kills it.
    deploy(&client, &merge_update(HOSTILE, json!({"behaviour": "sleep-init"}))).await?;
    tokio::task::spawn_blocking(move || turf.terminate()).await??;

    let starting = {
        let root = root.clone();
        tokio::task::spawn_blocking(move || RunningTurf::start(&root))
    };
    // The management API answers while the restore still waits for the component's init
    // (`turf run` has not said it is ready yet), and lists the component as not yet running.
    let deadline = Instant::now() + Duration::from_secs(20);
    let listed = loop {
        ensure!(Instant::now() < deadline, "turf component list never answered during the start");
        ensure!(!starting.is_finished(), "turf run was ready before its management API answered");
        let output = component_list(&root).await?;
        if output.status.success() {
            break String::from_utf8_lossy(&output.stdout).into_owned();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    ensure!(!starting.is_finished(), "the answer came only after the start finished");
    let line = listed.lines().find(|l| l.contains(HOSTILE)).context("the restoring component is listed")?;
    ensure!(line.contains("INSTALLED") || line.contains("STARTING"), "{line}");
    let (turf, _, _) = starting.await??;
    let log = std::fs::read_to_string(root.join("logs").join(format!("{HOSTILE}.log")))?;
    ensure!(log.contains("longer than its budget"), "init was cut off at its recipe's budget:\n{log}");
    tokio::task::spawn_blocking(move || turf.terminate()).await??;
    Ok(())
}

#[actix_rt::test]
async fn the_hosts_defaults_for_components_come_from_config_toml() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root)?;
    std::fs::write(root.join("config.toml"), "[components]\ncpus = 2\n")?;
    let refused = std::process::Command::new(turf_tests::turf_bin())
        .args(["--root", root.to_str().unwrap(), "run", "--mqtt-listen", "127.0.0.1:0"])
        .args(["--discovery-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .output()?;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    ensure!(!refused.status.success(), "an out-of-range default must refuse the start");
    ensure!(stderr.contains("config.toml: [components] cpus: 2 is out of range (0.01 to 1)"), "{stderr}");

    std::fs::write(root.join("config.toml"), "[components]\nmemory_kib = 4096\n")?;
    let (turf, _, _) = RunningTurf::start(&root)?;
    let client = Client::new(&root.join("turf.sock"));
    deploy(&client, &stage_hostile(&dir.path().join("stage"), hostile_config("subscribe-all"), Value::Null)?).await?;
    let usage = usage(&client).await?;
    ensure!(usage["memory_limit_bytes"] == 4 << 20, "the host's default applies: {usage}");
    tokio::task::spawn_blocking(move || turf.terminate()).await??;
    Ok(())
}

#[actix_rt::test]
async fn twenty_components_each_holding_all_the_memory_they_may_fit_a_256_mb_device() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    let (turf, _, _) = RunningTurf::start(&root)?;
    let client = Client::new(&root.join("turf.sock"));
    for i in 0..20 {
        let name = format!("com.turf.test.Hog{i:02}");
        let config = json!({"behaviour": "memory-hold"});
        let stage = dir.path().join(format!("stage-{i}"));
        deploy(&client, &stage_component(&stage, &name, "1.0.0", &plugin_wasm("test_hostile"), config)).await?;
    }
    let components = client.components().await?;
    let hogs: Vec<_> = components.iter().filter(|c| c.name.starts_with("com.turf.test.Hog")).collect();
    ensure!(hogs.len() == 20 && hogs.iter().all(|c| c.state.to_string() == "RUNNING"), "{hogs:?}");
    for hog in &hogs {
        let usage = hog.usage.as_ref().context("usage")?;
        let log = std::fs::read_to_string(root.join("logs").join(format!("{}.log", hog.name)))?;
        ensure!(log.contains("holding "), "{} did not fill its budget:\n{log}", hog.name);
        ensure!(
            usage.memory_bytes > 7 << 20 && usage.memory_bytes <= usage.memory_limit_bytes,
            "{}: {usage:?}",
            hog.name
        );
    }
    let rss = turf.rss_kb()?;
    println!("20 components at their memory budget: turf RSS {rss} kB");
    ensure!(rss < 256 * 1024, "the host holds {rss} kB with 20 full components");
    tokio::task::spawn_blocking(move || turf.terminate()).await??;
    Ok(())
}
