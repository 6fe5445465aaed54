//! The real AWS IoT Device SDK v2 for Python against Turf: discovery, MQTT with the discovered
//! CA, and the shadow client. `make test` installs the SDK into `target/pyenv`; this is what our
//! users run.

use std::path::Path;

use anyhow::Result;
use turf_tests::{TestHost, sdk_script, tutorial_host};

/// Runs a script from `tests/sdk` as MyClientDevice1; returns its stdout, failing on a non-zero exit.
fn run_script(host: &TestHost, certs: &Path, script: &str, extra: &[&str]) -> Result<String> {
    sdk_script(host, "MyClientDevice1", certs, script, extra)
}

#[actix_rt::test]
async fn aws_iot_device_sdk_discovers_the_core_and_round_trips_messages() -> Result<()> {
    let (host, certs) = tutorial_host().await?;
    let args = ["--topic", "clients/MyClientDevice1/hello/world", "--count", "10"];
    let stdout = run_script(&host, &certs, "discover_and_publish.py", &args)?;
    assert!(stdout.contains("gg_group_id='greengrassV2-coreDevice-TurfCore'"), "{stdout}");
    assert!(stdout.contains("Connected!"), "{stdout}");
    assert!(stdout.contains("received sequences [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"), "{stdout}");
    host.shutdown().await
}

#[actix_rt::test]
async fn aws_iot_device_sdk_shadow_client_sees_the_documents_it_expects() -> Result<()> {
    let (host, certs) = tutorial_host().await?;
    host.deploy_shadow_routes().await?;
    let stdout = run_script(&host, &certs, "shadow.py", &[])?;
    assert!(stdout.contains("shadow flow ok"), "{stdout}");
    host.shutdown().await
}
