//! Service errors through the management API: each refusal answers with the status its error
//! maps to and the service's own text (which the CLI prints), and rows the host cannot read are
//! errors the operator sees — counted by `turf status`, never read as absent.

use anyhow::{Result, bail};
use turf_host::components::ControlAction;
use turf_host::devices::DeviceRequest;
use turf_host::mgmt::client::ClientError;
use turf_tests::TestHost;

/// The status and text of a refused request (fails if it was not refused).
fn refusal<T: std::fmt::Debug>(result: Result<T, ClientError>) -> Result<(u16, String)> {
    match result {
        Err(ClientError::Refused { status, error }) => Ok((status, error)),
        other => bail!("expected a refusal, got {other:?}"),
    }
}

#[actix_rt::test]
async fn each_refusal_answers_with_its_own_status_and_text() -> Result<()> {
    let host = TestHost::start().await?;
    let client = host.client();

    let (status, text) = refusal(client.device(&DeviceRequest::Remove { thing: "Ghost".into() }).await)?;
    assert_eq!((status, text.as_str()), (404, "no thing named \"Ghost\" is registered"));
    let (status, text) = refusal(client.device(&DeviceRequest::Add { thing: "bad name!".into() }).await)?;
    assert_eq!(status, 400, "{text}");
    let garbage = DeviceRequest::Register { thing: "Lamp".into(), cert_pem: "not a certificate".into() };
    let (status, text) = refusal(client.device(&garbage).await)?;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("not a valid X.509 PEM certificate"), "{text}");

    let (status, text) = refusal(client.control("com.example.Ghost", ControlAction::Restart).await)?;
    assert_eq!((status, text.as_str()), (404, "com.example.Ghost is not a deployed WebAssembly component"));
    let (status, _) = refusal(client.deployment("no-such-id").await)?;
    assert_eq!(status, 404);

    // The CLI prints the same text and fails.
    let out = host.turf(&["device", "remove", "Ghost"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no thing named \"Ghost\" is registered"));
    host.shutdown().await
}

#[actix_rt::test]
async fn unreadable_rows_are_counted_by_turf_status_until_replaced() -> Result<()> {
    let host = TestHost::start().await?;
    let status = host.turf_ok(&["status"])?;
    assert!(!status.contains("unreadable"), "a fresh host has no unreadable rows:\n{status}");
    let mut host = host
        .restart_after(|root| {
            let conn = turf_host::store::open(&root.join("turf.db"))?;
            conn.execute_batch(
                "INSERT INTO settings(key, value) VALUES ('connectivity.manual', '[{\"hostAddress\": ');
             INSERT INTO shadows(thing, name, document, version, updated_at) VALUES ('Lamp', '', 'garbage', 4, 0);",
            )?;
            Ok(())
        })
        .await?;

    let report = host.client().status().await?;
    let tables: Vec<(&str, u64)> = report.unreadable.iter().map(|u| (u.table.as_str(), u.rows)).collect();
    assert_eq!(tables, vec![("settings", 1), ("shadows", 1)]);
    let status = host.turf_ok(&["status"])?;
    assert!(status.contains("unreadable stored rows:     1 in shadows (Lamp/)"), "{status}");

    // The corrupt endpoint list is not guessed at: detection runs and says why.
    let shown = host.turf_ok(&["connectivity", "show"])?;
    assert!(shown.contains("ip-detector") && shown.contains("warning: the stored manual endpoint list"), "{shown}");
    // The corrupt shadow is an error, not an absent shadow an update would restart at version 1.
    let read = host.turf(&["shadow", "get", "Lamp"]);
    assert!(!read.status.success());
    let said = String::from_utf8_lossy(&read.stderr);
    assert!(said.contains("500"), "{said}");

    // Replacing them clears the count.
    host.turf_ok(&["connectivity", "clear"])?;
    host.turf_ok(&["shadow", "delete", "Lamp"])?;
    let report = host.client().status().await?;
    assert_eq!(report.unreadable, Vec::new());
    assert!(!host.turf_ok(&["connectivity", "show"])?.contains("warning"));
    host = host.restart().await?;
    assert_eq!(host.client().status().await?.unreadable, Vec::new());
    host.shutdown().await
}
