//! Greengrass discovery and connectivity, over real mutual TLS.

use std::sync::Arc;

use anyhow::Result;
use turf_host::discovery::client::{DiscoverClientError, discover};
use turf_tests::{Device, TIMEOUT, TestHost, device_tls, merge_update, wait_until};

const IP_DETECTOR: &str = "aws.greengrass.clientdevices.IPDetector";

/// Discovery with `thing`'s name, presenting the certificates in `certs`.
async fn ask(
    host: &TestHost,
    thing: &str,
    certs: &std::path::Path,
) -> Result<turf_host::discovery::response::DiscoverResponse, DiscoverClientError> {
    discover("localhost", host.endpoints.discovery.port(), thing, device_tls(certs)).await
}

#[actix_rt::test]
async fn associated_device_discovers_the_core_with_the_sdk_json() -> Result<()> {
    let host = TestHost::start().await?;
    let certs = host.add_device("MyClientDevice1")?;
    host.turf_ok(&["device", "associate", "MyClientDevice1"])?;
    host.turf_ok(&["connectivity", "set", &format!("127.0.0.1:{}", host.endpoints.mqtt.port()), "core.local:8883"])?;
    let answer = ask(&host, "MyClientDevice1", &certs).await?;
    let json = serde_json::to_value(&answer)?;
    let group = &json["GGGroups"][0];
    assert_eq!(group["GGGroupId"], "greengrassV2-coreDevice-TurfCore");
    let ca = std::fs::read_to_string(certs.join("ca.pem"))?;
    assert_eq!(group["CAs"][0].as_str().unwrap().trim(), ca.trim());
    let endpoints = &group["Cores"][0]["Connectivity"];
    assert_eq!(endpoints[0]["HostAddress"], "127.0.0.1");
    assert_eq!(endpoints[0]["PortNumber"], host.endpoints.mqtt.port());
    assert_eq!(endpoints[1]["HostAddress"], "core.local");
    host.shutdown().await
}

#[actix_rt::test]
async fn discovery_refuses_strangers_with_json_errors() -> Result<()> {
    let host = TestHost::start().await?;
    let mine = host.add_device("MyClientDevice1")?;
    host.add_device("Unassociated")?;
    host.turf_ok(&["device", "associate", "MyClientDevice1"])?;
    let refused = |r: Result<_, DiscoverClientError>| match r {
        Err(DiscoverClientError::Refused { status, message }) => (status, message),
        other => panic!("expected a refusal, got {other:?}"),
    };
    let (status, message) = refused(ask(&host, "Unassociated", &host.scratch("certs-Unassociated")).await);
    assert_eq!(status, 403);
    assert!(message.contains("not associated"), "{message}");
    let (status, someone_elses) = refused(ask(&host, "Unassociated", &mine).await);
    assert_eq!(status, 403, "{someone_elses}");
    // An unregistered name gets the same answer as someone else's thing: discovery does not
    // tell a device which thing names exist.
    let (status, unknown) = refused(ask(&host, "Nobody", &mine).await);
    assert_eq!(status, 403, "{unknown}");
    assert_eq!(unknown.replace("Nobody", "Unassociated"), someone_elses);
    host.shutdown().await
}

#[actix_rt::test]
async fn connectivity_changes_reissue_the_broker_certificate() -> Result<()> {
    let host = TestHost::start().await?;
    let certs = host.add_device("MyClientDevice1")?;
    let handshake = |name: &'static str| {
        let tls = Arc::new(device_tls(&certs));
        let addr = host.endpoints.mqtt;
        async move {
            let connector = tokio_rustls::TlsConnector::from(tls);
            let Ok(tcp) = tokio::net::TcpStream::connect(addr).await else { return false };
            let Ok(server_name) = rustls::pki_types::ServerName::try_from(name) else { return false };
            connector.connect(server_name, tcp).await.is_ok()
        }
    };
    assert!(handshake("localhost").await);
    assert!(!handshake("core.example").await, "the certificate does not name core.example yet");
    host.turf_ok(&["connectivity", "set", "core.example:8883"])?;
    wait_until(TIMEOUT, "a certificate naming core.example", || handshake("core.example")).await?;
    assert!(Device::tls(&host, "MyClientDevice1", &certs).await.is_ok(), "devices still connect after the reload");
    let shown = host.turf_ok(&["connectivity", "show"])?;
    assert!(shown.contains("manual") && shown.contains("core.example:8883"), "{shown}");
    host.turf_ok(&["connectivity", "clear"])?;
    assert!(host.turf_ok(&["connectivity", "show"])?.contains("ip-detector"));
    host.shutdown().await
}

/// The test host's broker listens on 127.0.0.1 only: discovery must hand out that address and
/// no other (a device given one of the host's other addresses would be refused), and
/// `defaultPort` still overrides the port.
#[actix_rt::test]
async fn the_ip_detector_reports_where_the_broker_listens() -> Result<()> {
    let host = TestHost::start().await?;
    let port = host.endpoints.mqtt.port();
    let shown = host.turf_ok(&["connectivity", "show"])?;
    let entries: Vec<&str> = shown.lines().filter(|l| l.starts_with("  ")).collect();
    assert!(shown.contains("ip-detector"), "{shown}");
    assert_eq!(entries.len(), 1, "only the listening address is reported:\n{shown}");
    assert!(entries[0].contains(&format!("127.0.0.1:{port}")), "{shown}");
    let certs = host.add_device("MyClientDevice1")?;
    host.turf_ok(&["device", "associate", "MyClientDevice1"])?;
    let answer = serde_json::to_value(ask(&host, "MyClientDevice1", &certs).await?)?;
    let endpoints = &answer["GGGroups"][0]["Cores"][0]["Connectivity"];
    assert_eq!(endpoints.as_array().map(Vec::len), Some(1), "{endpoints}");
    assert_eq!((&endpoints[0]["HostAddress"], &endpoints[0]["PortNumber"]), (&"127.0.0.1".into(), &port.into()));
    let record = host.deploy(&merge_update(IP_DETECTOR, serde_json::json!({"defaultPort": "18883"}))).await?;
    assert_eq!(record.state, turf_host::deploy::model::DeploymentState::Succeeded, "{:?}", record.error);
    wait_until(TIMEOUT, "the loopback address in the connectivity", || async {
        host.turf_ok(&["connectivity", "show"]).map(|s| s.contains("127.0.0.1:18883")).unwrap_or(false)
    })
    .await?;
    let record = host.deploy(&merge_update(IP_DETECTOR, serde_json::json!({"defaultPort": "http"}))).await?;
    assert!(record.error.unwrap_or_default().contains("defaultPort"));
    host.shutdown().await
}
