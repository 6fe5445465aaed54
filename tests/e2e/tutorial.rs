//! The tutorial's step 5 end to end: shadow manager, bridge routes, the smart light manager
//! component and `turf client shadow` as the smart light.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::json;
use turf_host::deploy::config_update::parse_updates;
use turf_host::deploy::model::{DeploymentRequest, DeploymentState};
use turf_tests::{TIMEOUT, TestHost, plugin_wasm, turf_bin, tutorial_host, workspace};

const MANAGER: &str = "com.example.clientdevices.MySmartLightManager";

/// Runs `turf client shadow` as MyClientDevice1 until it reported `updates` times.
fn spawn_light(host: &TestHost, certs: &std::path::Path, updates: u32) -> Result<std::process::Child> {
    Ok(Command::new(turf_bin())
        .args(["client", "shadow", "--thing", "MyClientDevice1", "--certs", certs.to_str().unwrap()])
        .args(["--core", &format!("localhost:{}", host.endpoints.discovery.port())])
        .args(["--max-updates", &updates.to_string(), "--duration", "60", "--timeout", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?)
}

fn wait_for_exit(mut child: std::process::Child, limit: Duration) -> Result<(std::process::ExitStatus, String)> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            let output = child.wait_with_output()?;
            let text =
                format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
            return Ok((output.status, text));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill()?;
    let output = child.wait_with_output()?;
    bail!("the light did not finish within {limit:?}:\n{}", String::from_utf8_lossy(&output.stdout))
}

#[actix_rt::test]
async fn tutorial_step_5_smart_light_manager_drives_the_light() -> Result<()> {
    let (host, certs) = tutorial_host().await?;
    let tutorial = workspace().join("recipes/tutorial");
    let bridge = std::fs::read_to_string(tutorial.join("step5-bridge.json"))?;
    let record = host
        .deploy(&DeploymentRequest { update_config: parse_updates(&bridge).unwrap(), ..Default::default() })
        .await?;
    assert_eq!(record.state, DeploymentState::Succeeded, "{:?}", record.error);

    let artifacts = host.scratch("artifacts");
    std::fs::create_dir_all(artifacts.join(MANAGER).join("1.0.0"))?;
    std::fs::copy(plugin_wasm("smart_light_manager"), artifacts.join(MANAGER).join("1.0.0/smart_light_manager.wasm"))?;
    let mut names = parse_updates(&std::fs::read_to_string(tutorial.join("step5-smart-light-manager.json"))?).unwrap();
    if let Some(merge) = names.get_mut(MANAGER).and_then(|u| u.merge.as_mut()) {
        merge["setColorIntervalSeconds"] = json!(0.5);
    }
    let request = DeploymentRequest {
        recipe_dir: Some(workspace().join("recipes/components")),
        artifact_dir: Some(artifacts),
        merge: [(MANAGER.to_owned(), "1.0.0".to_owned())].into_iter().collect(),
        update_config: names,
        ..Default::default()
    };
    let record = host.deploy(&request).await?;
    assert_eq!(record.state, DeploymentState::Succeeded, "{:?}", record.error);
    host.wait_for_log(MANAGER, "Successfully subscribed to shadow update accepted topic", 1).await?;
    host.wait_for_log(MANAGER, "Requested color change for MyClientDevice1 to ", 1).await?;

    let light = spawn_light(&host, &certs, 3)?;
    host.wait_for_log(MANAGER, "Received shadow update confirmation from client device: MyClientDevice1", 1).await?;
    let (status, output) = wait_for_exit(light, TIMEOUT)?;
    assert!(status.success(), "{output}");
    assert!(output.contains("Delta reports that desired value is '"), "{output}");
    assert!(output.contains("Finished updating reported shadow value to '"), "{output}");

    let second = parse_updates(
        &json!({MANAGER: {"MERGE": {"smartLightDeviceNames": ["MyClientDevice1", "MyClientDevice2"]}}}).to_string(),
    )
    .unwrap();
    let record = host.deploy(&DeploymentRequest { update_config: second, ..Default::default() }).await?;
    assert_eq!(record.state, DeploymentState::Succeeded, "{:?}", record.error);
    host.wait_for_log(MANAGER, "Received configuration update for list of client devices", 1).await?;
    host.wait_for_log(MANAGER, "Adding MyClientDevice2 to smart light device manager", 1).await?;
    host.wait_for_log(MANAGER, "Requested color change for MyClientDevice2 to ", 1).await?;
    assert_eq!(host.log(MANAGER).matches("lifecycle. STARTING").count(), 1, "managed without a restart");
    if std::env::var_os("TURF_SHOW_LOGS").is_some() {
        println!("{}", host.log(MANAGER));
    }
    host.shutdown().await
}
