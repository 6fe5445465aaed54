//! The console's login on the loopback HTTP listener: nothing without a session, a one-time
//! token from `turf console` becomes a session cookie, the console reaches the same management
//! API (and its checks) as the CLI, and logout ends the session.

use anyhow::{Context, Result};
use turf_tests::{TestHost, http_get, http_request};

/// The `turf_console=...` cookie a login reply sets.
fn session_cookie(head: &str) -> Option<String> {
    head.lines()
        .filter_map(|l| l.strip_prefix("set-cookie: ").or_else(|| l.strip_prefix("Set-Cookie: ")))
        .find(|c| c.starts_with("turf_console="))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
}

#[actix_rt::test]
async fn a_one_time_token_becomes_a_session_that_logout_ends() -> Result<()> {
    let host = TestHost::start().await?;
    let http = host.endpoints.http;
    for path in ["/", "/api/v1/status"] {
        let (status, _, body) = http_get(http, path).await?;
        assert_eq!(status, 401, "{path} without a session: {body}");
        assert!(body.contains("turf console"), "{body}");
    }

    let printed = host.turf_ok(&["console"])?;
    let url = printed.split_whitespace().find(|w| w.starts_with("http://")).context("no login link")?;
    let path = url.trim_start_matches(&format!("http://{http}"));
    assert!(path.starts_with("/login?token="), "{url}");
    let (status, head, _) = http_get(http, path).await?;
    assert_eq!(status, 303, "{head}");
    let cookie = session_cookie(&head).context("no session cookie")?;
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("httponly") && lower.contains("samesite=strict"), "{head}");
    let (again, _, _) = http_get(http, path).await?;
    assert_eq!(again, 401, "a login link works once");

    let with_session = [("Cookie", cookie.as_str())];
    let (status, _, body) = http_request(http, "GET", "/api/v1/status", &with_session).await?;
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(report["thing_name"], "TurfCore");
    let (status, _, page) = http_request(http, "GET", "/", &with_session).await?;
    assert!(status == 200 && page.contains("<title>Turf console</title>"), "{status}");
    // The console goes through the same handlers and checks as the CLI.
    let (status, _, body) =
        http_request(http, "POST", "/api/v1/components/com.example.Ghost/restart", &with_session).await?;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("is not a deployed WebAssembly component"), "{body}");

    let (status, _, _) = http_request(http, "POST", "/logout", &with_session).await?;
    assert_eq!(status, 200);
    let (status, _, _) = http_request(http, "GET", "/api/v1/status", &with_session).await?;
    assert_eq!(status, 401, "the cookie is worthless after logout");
    let (forged, _, _) = http_request(http, "GET", "/api/v1/status", &[("Cookie", "turf_console=guess")]).await?;
    assert_eq!(forged, 401);
    host.shutdown().await
}

#[actix_rt::test]
async fn the_overview_page_shows_the_host_in_a_real_browser() -> Result<()> {
    let host = TestHost::start().await?;
    let printed = host.turf_ok(&["console"])?;
    let url = printed.split_whitespace().find(|w| w.starts_with("http://")).context("no login link")?.to_owned();
    let shots = turf_tests::workspace().join("target/console-shots");
    let script = turf_tests::workspace().join("tests/console/overview.py");
    // `timeout` bounds the browser session even if Chromium hangs.
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("timeout").arg("90").arg("python3").arg(&script).arg(&url).arg(&shots).output()
    })
    .await??;
    let shots = turf_tests::workspace().join("target/console-shots");
    anyhow::ensure!(
        output.status.success(),
        "the browser check failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(shots.join("overview.png").is_file());
    host.shutdown().await
}
