//! The device side of discovery, as the AWS IoT Device SDK's `DiscoveryClient` does it:
//! `GET /greengrass/discover/thing/{thing}` over mutual TLS with the device certificate, offering
//! ALPN `x-amzn-http-ca`, trusting the given CA. Only 200 is a success; any other status is an
//! error carrying the status and the server's message. Must run inside an actix system.

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use super::response::DiscoverResponse;

/// A failed discovery.
#[derive(Debug, Error)]
pub enum DiscoverClientError {
    /// The request could not be made.
    #[error("discovery request to {url} failed: {reason}")]
    Request {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The server answered with an error.
    #[error("discovery refused ({status}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
}

/// Asks the core at `host:port` for `thing`'s discovery information.
pub async fn discover(
    host: &str,
    port: u16,
    thing: &str,
    mut tls: rustls::ClientConfig,
) -> Result<DiscoverResponse, DiscoverClientError> {
    tls.alpn_protocols = vec![b"x-amzn-http-ca".to_vec()];
    let url = format!("https://{host}:{port}/greengrass/discover/thing/{thing}");
    let request_error = |reason: String| DiscoverClientError::Request { url: url.clone(), reason };
    let client = awc::Client::builder()
        .connector(awc::Connector::new().rustls_0_23(Arc::new(tls)).timeout(Duration::from_secs(10)))
        .timeout(Duration::from_secs(20))
        .finish();
    let mut response = client.get(&url).send().await.map_err(|e| request_error(e.to_string()))?;
    let body = response.body().limit(1 << 20).await.map_err(|e| request_error(e.to_string()))?;
    let status = response.status().as_u16();
    if status != 200 {
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        return Err(DiscoverClientError::Refused { status, message });
    }
    serde_json::from_slice(&body).map_err(|e| request_error(format!("unreadable response: {e}")))
}
