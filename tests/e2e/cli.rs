//! The `turf` binary end to end: the tutorial's step 4 exactly as a user types it.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use turf_tests::process::RunningTurf;
use turf_tests::{TIMEOUT, foreign_certs, plugin_wasm, turf_bin, wait_until, workspace};

const HELLO: &str = "com.example.clientdevices.MyHelloWorldSubscriber";

fn ok(output: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "command failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

#[actix_rt::test]
async fn tutorial_steps_2_to_4_with_the_turf_cli() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    let (turf, port, discovery_port) = RunningTurf::start(&root)?;
    let tutorial = workspace().join("recipes/tutorial");

    // Step 2: the client device, its association, the auth policy, and the core's endpoint.
    let certs = dir.path().join("certs");
    ok(&turf.turf(&["device", "add", "MyClientDevice1", "--out", certs.to_str().unwrap()]));
    ok(&turf.turf(&["device", "associate", "MyClientDevice1"]));
    assert!(ok(&turf.turf(&["device", "list"])).contains("MyClientDevice1                  associated"));
    let auth = tutorial.join("step2-client-device-auth.json");
    let deployed = ok(&turf.turf(&["deployment", "create", "--update-config", &format!("@{}", auth.display())]));
    assert!(deployed.contains(": SUCCEEDED"), "{deployed}");
    ok(&turf.turf(&["connectivity", "set", &format!("127.0.0.1:{port}")]));

    // Step 4: the bridge route and the hello-world subscriber.
    let artifacts = dir.path().join("artifacts").join(HELLO).join("1.0.0");
    std::fs::create_dir_all(&artifacts)?;
    std::fs::copy(plugin_wasm("hello_world_subscriber"), artifacts.join("hello_world_subscriber.wasm"))?;
    let recipes = workspace().join("recipes/components");
    let bridge = tutorial.join("step4-bridge.json");
    let deployed = ok(&turf.turf(&[
        "deployment",
        "create",
        "--recipeDir",
        recipes.to_str().unwrap(),
        "--artifactDir",
        dir.path().join("artifacts").to_str().unwrap(),
        "--merge",
        &format!("{HELLO}=1.0.0"),
        "--update-config",
        &format!("@{}", bridge.display()),
    ]));
    assert!(deployed.contains("Local deployment submitted! Deployment Id: "), "{deployed}");
    assert!(deployed.contains(": SUCCEEDED"), "{deployed}");

    // Step 3: the device discovers the core and sends its messages.
    let hello_log = root.join("logs").join(format!("{HELLO}.log"));
    let published = ok(&turf.turf(&[
        "client",
        "publish",
        "--thing",
        "MyClientDevice1",
        "--certs",
        certs.to_str().unwrap(),
        "--core",
        &format!("localhost:{discovery_port}"),
        "--interval-ms",
        "0",
    ]));
    assert!(
        published.contains("Performing greengrass discovery...") && published.contains("Connected!"),
        "{published}"
    );
    assert!(published.contains(&format!("at host 127.0.0.1 port {port}")), "{published}");
    assert_eq!(
        published.matches("Publish received on topic clients/MyClientDevice1/hello/world").count(),
        10,
        "{published}"
    );
    let read_log = || std::fs::read_to_string(&hello_log).unwrap_or_default();
    wait_until(TIMEOUT, "10 hello messages in the component log", || async {
        read_log().matches("Received new message: ").count() >= 10
    })
    .await
    .with_context(read_log)?;
    let lines: Vec<String> =
        read_log().lines().filter(|l| l.contains("Received new message: ")).map(str::to_owned).collect();
    for (i, line) in lines.iter().enumerate() {
        let expected = format!("stdout. Received new message: {{\"message\": \"Hello World!\", \"sequence\": {i}}}");
        assert!(line.ends_with(&expected), "line {i} out of order: {line}");
    }

    let refused = turf.turf(&[
        "client",
        "publish",
        "--thing",
        "OtherDevice",
        "--certs",
        certs.to_str().unwrap(),
        "--broker",
        &format!("127.0.0.1:{port}"),
        "--count",
        "1",
        "--timeout",
        "5",
    ]);
    assert!(!refused.status.success(), "a certificate used with another thing's client id must be refused");
    let host_log = || std::fs::read_to_string(root.join("logs/turf.log")).unwrap_or_default();
    wait_until(TIMEOUT, "the refusal in the host log", || async {
        host_log().contains("connection refused") && host_log().contains("OtherDevice")
    })
    .await
    .with_context(host_log)?;
    assert!(
        host_log().contains("not to \\\"OtherDevice\\\"") || host_log().contains("not to \"OtherDevice\""),
        "{}",
        host_log()
    );

    let rogue = foreign_certs(dir.path(), "MyClientDevice1", &certs);
    let broker = format!("localhost:{port}");
    let rogue_attempt = turf.turf(&[
        "client",
        "publish",
        "--thing",
        "MyClientDevice1",
        "--certs",
        rogue.to_str().unwrap(),
        "--broker",
        &broker,
        "--count",
        "1",
        "--timeout",
        "5",
    ]);
    assert!(!rogue_attempt.status.success(), "a certificate from another CA must be refused");
    wait_until(TIMEOUT, "the TLS refusal in the host log", || async { host_log().contains("TLS accept error") })
        .await
        .with_context(host_log)?;

    let status = ok(&turf.turf(&["status"]));
    assert!(status.contains(HELLO) && status.contains("RUNNING"), "{status}");
    let next_year = (chrono::Utc::now() + chrono::Duration::days(365)).format("%Y-%m-%d").to_string();
    let cert_line = status.lines().find(|l| l.contains("broker certificate:")).unwrap_or_default();
    assert!(cert_line.contains(&format!("expires {next_year}")) && cert_line.contains("renewed from"), "{status}");

    let exit = turf.terminate()?;
    assert!(exit.success(), "turf run exited with {exit}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "listener still open after exit");
    Ok(())
}

#[test]
fn device_add_works_while_the_host_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let out = dir.path().join("certs");
    let output = Command::new(turf_bin())
        .args(["--root", root.to_str().unwrap(), "device", "add", "Offline-1", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(out.join("private.pem.key")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let bad = Command::new(turf_bin())
        .args(["--root", root.to_str().unwrap(), "device", "add", "no/slashes", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("only letters, digits"));
}

#[test]
fn a_root_whose_ca_key_is_missing_refuses_to_start_instead_of_making_a_new_ca() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    let root_arg = root.to_str().unwrap();
    let out = dir.path().join("certs");
    ok(&Command::new(turf_bin())
        .args(["--root", root_arg, "device", "add", "Dev-1", "--out", out.to_str().unwrap()])
        .output()?);
    let ca = std::fs::read_to_string(root.join("ca/ca.pem"))?;
    std::fs::remove_file(root.join("ca/ca.key"))?;

    let mut run = Command::new(turf_bin())
        .args(["--root", root_arg, "run", "--mqtt-listen", "127.0.0.1:0", "--discovery-listen", "127.0.0.1:0"])
        .args(["--http-listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = std::time::Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = run.try_wait()? {
            break status;
        }
        if std::time::Instant::now() > deadline {
            run.kill()?;
            anyhow::bail!("turf run started without ca/ca.key");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut run.stderr.take().context("stderr")?, &mut stderr)?;
    assert!(!status.success());
    assert!(stderr.contains("ca.pem exists but") && stderr.contains("ca.key does not"), "{stderr}");
    assert_eq!(std::fs::read_to_string(root.join("ca/ca.pem"))?, ca, "the CA devices trust is untouched");
    assert!(!root.join("ca/ca.key").exists(), "no new key was made");
    Ok(())
}

#[test]
fn commands_that_need_a_host_say_how_to_start_one() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(turf_bin())
        .args(["--root", dir.path().to_str().unwrap(), "status"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("turf run --root"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn shadow_updates_acknowledged_before_kill_9_survive() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    let (turf, _, _) = RunningTurf::start(&root)?;
    for i in 1..=20 {
        let request = format!(r#"{{"state":{{"reported":{{"count":{i}}}}},"clientToken":"n{i}"}}"#);
        let accepted = ok(&turf.turf(&["shadow", "update", "Counter", &request]));
        assert!(accepted.contains(&format!("\"version\": {i}")), "{accepted}");
    }
    ok(&turf.turf(&["shadow", "update", "Counter", "--name", "extra", r#"{"state":{"desired":{"on":true}}}"#]));
    turf.kill_9()?;

    let (turf, _, _) = RunningTurf::start(&root)?;
    let document: serde_json::Value = serde_json::from_str(&ok(&turf.turf(&["shadow", "get", "Counter"])))?;
    assert_eq!(document["version"], 20);
    assert_eq!(document["state"]["reported"]["count"], 20);
    let named: serde_json::Value = serde_json::from_str(&ok(&turf.turf(&["shadow", "list", "Counter"])))?;
    assert_eq!(named["results"], serde_json::json!(["extra"]));
    let exit = turf.terminate()?;
    assert!(exit.success());
    Ok(())
}

#[actix_rt::test]
async fn hot_reload_flags_live_progress_and_the_host_log_from_the_cli() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    let missing = Command::new(turf_bin())
        .args(["--root", root.to_str().unwrap(), "run", "--watch-recipes", "/nonexistent/recipes"])
        .output()?;
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--watch-recipes /nonexistent/recipes: not a directory"));

    // A project laid out as recipes/ and artifacts/: --watch-artifacts defaults to the latter.
    let project = dir.path().join("project");
    let recipes = project.join("recipes");
    let artifacts = project.join("artifacts").join(HELLO).join("1.0.0");
    std::fs::create_dir_all(&recipes)?;
    std::fs::create_dir_all(&artifacts)?;
    std::fs::copy(
        workspace().join(format!("recipes/components/{HELLO}-1.0.0.json")),
        recipes.join(format!("{HELLO}-1.0.0.json")),
    )?;
    std::fs::copy(plugin_wasm("hello_world_subscriber"), artifacts.join("hello_world_subscriber.wasm"))?;
    let (turf, _, _) = RunningTurf::start_with(&root, &["--watch-recipes", recipes.to_str().unwrap()])?;

    // Without a terminal, progress comes as plain lines, one per step.
    let deployed = ok(&turf.turf(&[
        "deployment",
        "create",
        "--recipe-dir",
        recipes.to_str().unwrap(),
        "--artifact-dir",
        project.join("artifacts").to_str().unwrap(),
        "--merge",
        &format!("{HELLO}=1.0.0"),
        "--failure-handling-policy",
        "DO_NOTHING",
    ]));
    for step in ["compiled", "STARTING", "RUNNING", "installed", "policy DO_NOTHING", ": SUCCEEDED"] {
        assert!(deployed.contains(step), "{step:?} missing from:\n{deployed}");
    }
    assert!(!deployed.contains('\u{1b}'), "terminal control codes in plain output:\n{deployed}");
    let bad_policy = turf.turf(&["deployment", "create", "--failure-handling-policy", "SOMETIMES"]);
    assert!(String::from_utf8_lossy(&bad_policy.stderr).contains("ROLLBACK"));

    // Touch the artifact with new bytes: the watcher redeploys the same version.
    let wasm = artifacts.join("hello_world_subscriber.wasm");
    let mut bytes = std::fs::read(&wasm)?;
    // A custom section (id 0, name "turf-test") makes different bytes with the same behaviour.
    bytes.extend_from_slice(&[0, 10, 9]);
    bytes.extend_from_slice(b"turf-test");
    std::fs::write(&wasm, &bytes)?;
    wait_until(Duration::from_secs(30), "the artifact change to be redeployed", || async {
        let list = String::from_utf8_lossy(&turf.turf(&["deployment", "list"]).stdout).into_owned();
        list.lines().filter(|l| l.contains("SUCCEEDED")).count() >= 2
    })
    .await?;

    // A junk file in the drop-in folder is refused, and the host log says why.
    std::fs::write(root.join("plugins").join("notes.wasm"), b"junk")?;
    wait_until(TIMEOUT, "the drop-in warning", || async {
        String::from_utf8_lossy(&turf.turf(&["logs", "turf", "--since", "5m"]).stdout).contains("notes.wasm")
    })
    .await?;
    let host_log = ok(&turf.turf(&["logs", "turf"]));
    assert!(host_log.contains("turf ready") && host_log.contains("hot reload of"), "{host_log}");
    turf.terminate()?;
    Ok(())
}

#[actix_rt::test]
async fn upstream_settings_come_from_config_toml_and_flags() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root)?;
    let run = |extra: &[&str]| {
        Command::new(turf_bin()).args(["--root", root.to_str().unwrap(), "run"]).args(extra).output().unwrap()
    };
    std::fs::write(root.join("config.toml"), "[upstream]\nendpont = \"mqtts://cloud\"\n")?;
    let typo = run(&[]);
    assert!(!typo.status.success());
    let stderr = String::from_utf8_lossy(&typo.stderr);
    assert!(stderr.contains("config.toml") && stderr.contains("endpont"), "{stderr}");
    std::fs::remove_file(root.join("config.toml"))?;
    let plain = run(&["--upstream", "mqtt://broker.example.com:1883"]);
    assert!(String::from_utf8_lossy(&plain.stderr).contains("only for a broker on this machine"));

    let cloud = turf_tests::Mosquitto::start(&dir.path().join("cloud")).await?;
    let certs = dir.path().join("cloud/core");
    std::fs::write(
        root.join("config.toml"),
        format!(
            "[upstream]\nendpoint = \"mqtts://localhost:{}\"\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\nkeepalive_secs = 30\n",
            cloud.port,
            certs.join("ca.pem").display(),
            certs.join("device.pem.crt").display(),
            certs.join("private.pem.key").display()
        ),
    )?;
    let (turf, _, _) = RunningTurf::start_with(&root, &["--upstream-client-id", "edge-core-1"])?;
    wait_until(TIMEOUT, "the upstream to connect", || async {
        String::from_utf8_lossy(&turf.turf(&["status"]).stdout).contains("connected for")
    })
    .await?;
    let status = ok(&turf.turf(&["status"]));
    assert!(
        status.contains(&format!("upstream (IotCore):         mqtts://localhost:{} connected", cloud.port)),
        "{status}"
    );
    assert!(status.contains("spool: 0 message(s)"), "{status}");
    assert!(cloud.log().contains("edge-core-1"), "the client id flag was not used:\n{}", cloud.log());
    turf.terminate()?;
    Ok(())
}

/// `turf run` raises its soft open-files limit to the hard limit (a service started at 1024
/// could not hold `max_connections` on two listeners).
#[test]
fn turf_run_raises_its_open_files_limit_to_the_hard_limit() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    let (turf, _, _) = RunningTurf::start_with_soft_nofile(&root, 256)?;
    let (soft, hard) = turf.open_files_limits()?;
    assert_eq!(soft, hard, "soft open-files limit {soft}, hard {hard}");
    assert!(turf.terminate()?.success());
    Ok(())
}

/// `turf run 2> file` writes plain text: no colour escape codes when stderr is not a terminal.
#[test]
fn the_host_log_on_stderr_has_no_colour_codes_when_redirected() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    let stderr_path = dir.path().join("stderr.txt");
    let mut child = Command::new(turf_bin())
        .args(["--root", root.to_str().unwrap(), "run", "--mqtt-listen", "127.0.0.1:0"])
        .args(["--discovery-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path)?)
        .spawn()?;
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !std::fs::read_to_string(&stderr_path)?.contains("turf ready") {
        assert!(std::time::Instant::now() < deadline, "turf run never logged that it is ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status()?.success());
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        assert!(std::time::Instant::now() < deadline + TIMEOUT, "turf run did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let text = std::fs::read_to_string(&stderr_path)?;
    assert!(text.contains("turf ready") && text.contains("stopped"), "{text}");
    assert!(!text.contains('\u{1b}'), "escape codes in a redirected log:\n{text:?}");
    Ok(())
}
