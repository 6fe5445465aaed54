//! The real AWS IoT Device SDK v2 for Python against Turf: discovery, then MQTT with the
//! discovered CA. `make test` installs the SDK into `target/pyenv`; this is what our users run.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Result, bail};
use turf_tests::{TestHost, tutorial_auth, workspace};

/// The Python with `awsiotsdk` installed (`make sdk-env`), or `TURF_SDK_PYTHON`.
fn sdk_python() -> PathBuf {
    let python = std::env::var_os("TURF_SDK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/pyenv/bin/python"));
    assert!(
        python.is_file(),
        "{} is missing: run `make sdk-env` (part of `make test`) to install awsiotsdk",
        python.display()
    );
    python
}

#[actix_rt::test]
async fn aws_iot_device_sdk_discovers_the_core_and_round_trips_messages() -> Result<()> {
    let host =
        TestHost::start_with(turf_tests::HostOptions { auth: Some(tutorial_auth()), ..Default::default() }).await?;
    let certs = host.add_device("MyClientDevice1")?;
    host.turf_ok(&["device", "associate", "MyClientDevice1"])?;
    host.turf_ok(&["connectivity", "set", &format!("127.0.0.1:{}", host.endpoints.mqtt.port())])?;
    let script = workspace().join("tests/sdk/discover_and_publish.py");
    let output = Command::new(sdk_python())
        .arg(&script)
        .args(["--thing", "MyClientDevice1", "--topic", "clients/MyClientDevice1/hello/world", "--count", "10"])
        .arg("--cert")
        .arg(certs.join("device.pem.crt"))
        .arg("--key")
        .arg(certs.join("private.pem.key"))
        .arg("--ca")
        .arg(certs.join("ca.pem"))
        .arg("--discovery-port")
        .arg(host.endpoints.discovery.port().to_string())
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("the SDK sample failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    }
    assert!(
        stdout.contains("GGGroupId") || stdout.contains("gg_group_id='greengrassV2-coreDevice-TurfCore'"),
        "{stdout}"
    );
    assert!(stdout.contains("Connected!"), "{stdout}");
    assert!(stdout.contains("received sequences [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"), "{stdout}");
    host.shutdown().await
}
