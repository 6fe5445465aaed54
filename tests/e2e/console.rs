//! The console's login on the loopback HTTP listener: nothing without a session, a one-time
//! token from `turf console` becomes a session cookie, the console reaches the same management
//! API (and its checks) as the CLI, and logout ends the session.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use rumqttc::QoS;
use serde_json::json;
use turf_host::components::lifecycle::State;
use turf_host::deploy::model::DeploymentState;
use turf_tests::{
    Device, TIMEOUT, TestHost, Ticker, auth_update, http_get, http_request, lamp_policy, login_link, plugin_wasm,
    pubsub_access, session_cookie, session_key, stage_component,
};

const PROBE: &str = "com.turf.test.Probe";
const BROKEN: &str = "com.turf.test.Broken";

#[actix_rt::test]
async fn a_one_time_token_becomes_a_session_that_logout_ends() -> Result<()> {
    let host = TestHost::start().await?;
    let http = host.endpoints.http;
    for path in ["/", "/api/v1/status"] {
        let (status, _, body) = http_get(http, path).await?;
        assert_eq!(status, 401, "{path} without a session: {body}");
        assert!(body.contains("turf console"), "{body}");
    }

    let url = login_link(&host)?;
    let path = url.trim_start_matches(&format!("http://{http}"));
    assert!(path.starts_with("/login?token="), "{url}");
    let (status, head, _) = http_get(http, path).await?;
    assert_eq!(status, 303, "{head}");
    let cookie = session_cookie(&head).context("no session cookie")?;
    let key = session_key(&head).context("no session key in the redirect's fragment")?;
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("httponly") && lower.contains("samesite=strict"), "{head}");
    let (again, _, _) = http_get(http, path).await?;
    assert_eq!(again, 401, "a login link works once");

    // The cookie alone (what a page another local user serves on another port of this host
    // receives from the browser) opens the page's files and nothing else.
    let cookie_only = [("Cookie", cookie.as_str())];
    let (status, _, page) = http_request(http, "GET", "/", &cookie_only).await?;
    assert!(status == 200 && page.contains("<title>Turf console</title>"), "{status}");
    for (method, path) in [("GET", "/api/v1/status"), ("POST", "/api/v1/components/com.example.Ghost/stop")] {
        let (status, _, _) = http_request(http, method, path, &cookie_only).await?;
        assert_eq!(status, 401, "{method} {path} with the cookie alone");
    }
    let wrong_key = [("Cookie", cookie.as_str()), ("x-turf-key", cookie.trim_start_matches("turf_console="))];
    let (status, _, _) = http_request(http, "GET", "/api/v1/status", &wrong_key).await?;
    assert_eq!(status, 401, "the cookie's value is not the key");
    let (status, _, _) = http_request(http, "POST", "/logout", &cookie_only).await?;
    assert_eq!(status, 401, "nor can it log the operator out");

    let with_session = [("Cookie", cookie.as_str()), ("x-turf-key", key.as_str())];
    let (status, _, body) = http_request(http, "GET", "/api/v1/status", &with_session).await?;
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(report["thing_name"], "TurfCore");
    // A session cannot mint the next login: only the socket issues tokens.
    let (status, _, _) = http_request(http, "POST", "/api/v1/console/token", &with_session).await?;
    assert_eq!(status, 404, "the console cannot issue login tokens");
    // Another site (a form on another port, a DNS-rebound name) is refused even with the session.
    let other_site = [with_session[0], with_session[1], ("Origin", "http://127.0.0.1:8000")];
    let (status, _, _) = http_request(http, "POST", "/api/v1/components/com.example.Ghost/stop", &other_site).await?;
    assert_eq!(status, 403, "a request from another origin");
    let rebound = format!("rebound.example:{}", http.port());
    let (status, _, _) = http_request(http, "GET", "/metrics", &[("Host", rebound.as_str())]).await?;
    assert_eq!(status, 421, "a Host that is not this listener");
    let (status, _, _) =
        http_request(http, "GET", "/metrics", &[("Host", &format!("localhost:{}", http.port()))]).await?;
    assert_eq!(status, 200, "localhost with the port names this listener");
    // The console goes through the same handlers and checks as the CLI.
    let (status, _, body) =
        http_request(http, "POST", "/api/v1/components/com.example.Ghost/restart", &with_session).await?;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("is not a deployed WebAssembly component"), "{body}");

    let (status, _, _) = http_request(http, "POST", "/logout", &with_session).await?;
    assert_eq!(status, 200);
    let (status, _, _) = http_request(http, "GET", "/api/v1/status", &with_session).await?;
    assert_eq!(status, 401, "the cookie is worthless after logout");
    let (reused, _, _) = http_get(http, path).await?;
    assert_eq!(reused, 401, "the login link is worthless after logout too");
    let (forged, _, _) = http_request(http, "GET", "/api/v1/status", &[("Cookie", "turf_console=guess")]).await?;
    assert_eq!(forged, 401);
    host.shutdown().await
}

/// Runs the browser check `tests/console/SCRIPT` with `args`; fails with what it said unless it
/// succeeds. Screenshots go to `target/console-shots`.
async fn browser_check(script: &str, args: &[&str]) -> Result<PathBuf> {
    let shots = turf_tests::workspace().join("target/console-shots");
    let mut command = std::process::Command::new("timeout");
    // `timeout` bounds the browser session even if Chromium hangs.
    command.arg("90").arg("python3").arg(turf_tests::workspace().join("tests/console").join(script));
    command.args(args).arg(&shots);
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    anyhow::ensure!(
        output.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(shots)
}

#[actix_rt::test]
async fn the_overview_page_shows_the_host_in_a_real_browser() -> Result<()> {
    let host = TestHost::start().await?;
    let shots = browser_check("overview.py", &[&login_link(&host)?]).await?;
    assert!(shots.join("overview.png").is_file());
    host.shutdown().await
}

#[actix_rt::test]
async fn a_deployment_is_listed_and_its_component_stopped_and_restarted_from_the_console() -> Result<()> {
    let host = TestHost::start().await?;
    let config = json!({"subscribe": [], "accessControl": pubsub_access(PROBE, &["SubscribeToTopic"], &["*"])});
    let stage = host.scratch("stage");
    let request = stage_component(&stage, PROBE, "1.0.0", &plugin_wasm("test_probe"), config);
    let record = host.deploy(&request).await?;
    anyhow::ensure!(record.state == DeploymentState::Succeeded, "{:?}", record.error);
    browser_check("components.py", &[&login_link(&host)?, PROBE]).await?;
    let outcome = format!("{PROBE} 1.0.0: installed");
    browser_check("deployments.py", &[&login_link(&host)?, &record.id, "SUCCEEDED", &outcome]).await?;
    // A deployment whose new component fails to start: rolled back, and the page says so.
    let broken = json!({"initFails": true, "accessControl": pubsub_access(BROKEN, &["SubscribeToTopic"], &["*"])});
    let failing = host.deploy(&stage_component(&stage, BROKEN, "1.0.0", &plugin_wasm("test_probe"), broken)).await?;
    anyhow::ensure!(failing.state == DeploymentState::Failed, "{failing:?}");
    browser_check("deployments.py", &[&login_link(&host)?, &failing.id, "FAILED", "FAILED_ROLLBACK_COMPLETE"]).await?;
    let broken_outcome = format!("{BROKEN} 1.0.0: installed, rolled back");
    browser_check("deployments.py", &[&login_link(&host)?, &failing.id, "FAILED", &broken_outcome]).await?;
    let probe = host.client().component(PROBE).await?;
    assert_eq!(probe.info.state, State::Running, "the host saw the same");
    assert_eq!(probe.configuration["fromConsole"], 7, "the configuration change deployed from the console");
    host.shutdown().await
}

#[actix_rt::test]
async fn a_desired_state_set_on_the_shadows_page_reaches_the_device_as_a_delta() -> Result<()> {
    let host = TestHost::start().await?;
    host.deploy_shadow_routes().await?;
    let mut lamp = Device::plain(&host, "Lamp").await?;
    lamp.subscribe("$aws/things/Lamp/shadow/update/delta", QoS::AtLeastOnce).await?;
    browser_check("shadows.py", &[&login_link(&host)?, "Lamp", r#"{"color": "green"}"#]).await?;
    let deltas = lamp.collect_until(TIMEOUT, |p| p.topic.ends_with("/update/delta")).await?;
    let delta: serde_json::Value = serde_json::from_slice(&deltas.last().context("no delta")?.payload)?;
    assert_eq!(delta["state"], json!({"color": "green"}));
    host.shutdown().await
}

#[actix_rt::test]
async fn a_connected_device_its_access_and_refusals_and_a_message_published_from_the_console() -> Result<()> {
    let host = TestHost::start().await?;
    host.deploy(&auth_update(lamp_policy())).await?;
    let certs = host.add_device("Lamp")?;
    host.turf_ok(&["device", "associate", "Lamp"])?;
    let mut lamp = Device::tls(&host, "Lamp", &certs).await?;
    lamp.subscribe("lamp/commands", QoS::AtLeastOnce).await?;
    lamp.client.publish("forbidden/switch", QoS::AtLeastOnce, false, "on").await?;
    browser_check("devices.py", &[&login_link(&host)?, "Lamp", "forbidden/switch"]).await?;

    let ticker = Ticker::start(lamp.client.clone(), "lamps/Lamp/state", Duration::from_millis(200));
    let payload = r#"{"color": "blue"}"#;
    browser_check("messages.py", &[&login_link(&host)?, "lamps/#", "lamps/Lamp/state", "lamp/commands", payload])
        .await?;
    ticker.stop().await?;
    let got = lamp.collect_until(TIMEOUT, |p| p.topic == "lamp/commands").await?;
    assert_eq!(got.last().map(|p| p.payload.to_vec()), Some(payload.as_bytes().to_vec()), "the device got the message");
    host.shutdown().await
}
