//! The upstream ("IotCore") connection's settings: from `DIR/config.toml`'s `[upstream]` table,
//! overridden by `turf run --upstream*` flags; and the reconnect backoff.
//!
//! The endpoint is `mqtts://host[:port]` (TLS, port 8883 by default; on 443 the ALPN protocol
//! `x-amzn-mqtt-ca` is offered, as AWS IoT Core requires) or `mqtt://host[:port]` (plain TCP,
//! loopback hosts only, for tests). Relative file paths are relative to the root directory.
//! Pure logic: reading the files named here happens when connecting.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

/// ALPN protocol AWS IoT Core expects for MQTT with client certificates on port 443.
pub const AWS_ALPN: &str = "x-amzn-mqtt-ca";

/// A refused upstream setting.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {problem}")]
pub struct UpstreamConfigError {
    /// The setting (`upstream.endpoint`, `--upstream-cert`, ...).
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

fn error(field: &str, problem: impl Into<String>) -> UpstreamConfigError {
    UpstreamConfigError { field: field.to_owned(), problem: problem.into() }
}

/// MQTT protocol version used upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MqttVersion {
    /// MQTT 3.1.1 (Greengrass's bridge default, `mqtt3`).
    V311,
    /// MQTT 5.
    V5,
}

/// Where the upstream broker is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS (`mqtts://`) or plain TCP (`mqtt://`, loopback only).
    pub tls: bool,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

impl Endpoint {
    /// Parses `mqtts://host[:port]` or `mqtt://host[:port]` (loopback only).
    pub fn parse(text: &str) -> Result<Self, UpstreamConfigError> {
        let field = "upstream endpoint";
        let (tls, rest) = if let Some(rest) = text.strip_prefix("mqtts://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("mqtt://") {
            (false, rest)
        } else {
            return Err(error(field, format!("{text:?} must start with mqtts:// (or mqtt:// for a loopback broker)")));
        };
        let rest = rest.trim_end_matches('/');
        let default_port = if tls { 8883 } else { 1883 };
        let parsed = crate::endpoint::parse(rest, Some(default_port))
            .map_err(|e| error(field, format!("{text:?}: {}", e.problem)))?;
        let (host, port) = (parsed.host, parsed.port);
        if host.contains(['@', '?', '#']) {
            return Err(error(field, format!("{text:?}: not a host name or address")));
        }
        if !tls && !is_loopback(&host) {
            return Err(error(
                field,
                format!(
                    "{text:?}: plain mqtt:// is only for a broker on this machine; use mqtts:// with a certificate"
                ),
            ));
        }
        Ok(Self { host, port, tls })
    }

    /// The ALPN protocols to offer: AWS IoT Core's on port 443, none otherwise.
    pub fn alpn(&self) -> Vec<Vec<u8>> {
        if self.tls && self.port == 443 { vec![AWS_ALPN.as_bytes().to_vec()] } else { Vec::new() }
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Everything about the upstream connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// The broker.
    pub endpoint: Endpoint,
    /// MQTT client id (default: the core's thing name).
    pub client_id: String,
    /// Client certificate chain (PEM); required with TLS.
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub key: Option<PathBuf>,
    /// CA certificates to trust (PEM); required with TLS.
    pub ca: Option<PathBuf>,
    /// MQTT keep-alive.
    pub keepalive: Duration,
    /// Protocol version.
    pub version: MqttVersion,
    /// First reconnect delay.
    pub min_reconnect_delay: Duration,
    /// Longest reconnect delay.
    pub max_reconnect_delay: Duration,
    /// Spool limit in bytes (topic + payload of every queued message).
    pub spool_max_bytes: u64,
    /// Spool limit in messages.
    pub spool_max_messages: u64,
}

/// Greengrass's spooler default (`maxSizeInBytes`).
pub const DEFAULT_SPOOL_BYTES: u64 = 2_621_440;
/// Default spool limit in messages.
pub const DEFAULT_SPOOL_MESSAGES: u64 = 10_000;

/// The `[upstream]` table of `config.toml` and the `--upstream*` flags, before validation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSettings {
    /// `mqtts://host:port`.
    pub endpoint: Option<String>,
    /// MQTT client id.
    pub client_id: Option<String>,
    /// Client certificate file.
    pub cert: Option<PathBuf>,
    /// Private key file.
    pub key: Option<PathBuf>,
    /// CA file.
    pub ca: Option<PathBuf>,
    /// Keep-alive in seconds.
    pub keepalive_secs: Option<u64>,
    /// `"3.1.1"` / `"mqtt3"` or `"5"` / `"mqtt5"`.
    pub mqtt_version: Option<String>,
    /// First reconnect delay in milliseconds.
    pub min_reconnect_delay_ms: Option<u64>,
    /// Longest reconnect delay in milliseconds.
    pub max_reconnect_delay_ms: Option<u64>,
    /// Spool limit in bytes.
    pub spool_max_bytes: Option<u64>,
    /// Spool limit in messages.
    pub spool_max_messages: Option<u64>,
}

impl UpstreamSettings {
    /// `self` with every setting `over` has replaced.
    pub fn overridden_by(self, over: UpstreamSettings) -> Self {
        Self {
            endpoint: over.endpoint.or(self.endpoint),
            client_id: over.client_id.or(self.client_id),
            cert: over.cert.or(self.cert),
            key: over.key.or(self.key),
            ca: over.ca.or(self.ca),
            keepalive_secs: over.keepalive_secs.or(self.keepalive_secs),
            mqtt_version: over.mqtt_version.or(self.mqtt_version),
            min_reconnect_delay_ms: over.min_reconnect_delay_ms.or(self.min_reconnect_delay_ms),
            max_reconnect_delay_ms: over.max_reconnect_delay_ms.or(self.max_reconnect_delay_ms),
            spool_max_bytes: over.spool_max_bytes.or(self.spool_max_bytes),
            spool_max_messages: over.spool_max_messages.or(self.spool_max_messages),
        }
    }

    /// Validates the settings; `None` when no endpoint is set (no upstream). Relative paths are
    /// taken from `base`; files must exist.
    pub fn resolve(self, thing_name: &str, base: &Path) -> Result<Option<UpstreamConfig>, UpstreamConfigError> {
        let Some(endpoint_text) = self.endpoint else {
            let stray = [self.cert.is_some(), self.key.is_some(), self.ca.is_some(), self.client_id.is_some()];
            if stray.iter().any(|s| *s) {
                return Err(error("upstream.endpoint", "missing, but other upstream settings are given"));
            }
            return Ok(None);
        };
        let endpoint = Endpoint::parse(&endpoint_text)?;
        let file = |path: Option<PathBuf>, field: &str| existing_file(base, path, field);
        let cert = file(self.cert, "upstream.cert")?;
        let key = file(self.key, "upstream.key")?;
        let ca = file(self.ca, "upstream.ca")?;
        if endpoint.tls {
            if ca.is_none() {
                return Err(error(
                    "upstream.ca",
                    "required with mqtts:// (the CA that signed the broker's certificate)",
                ));
            }
            if cert.is_some() != key.is_some() {
                return Err(error("upstream.cert", "give both the certificate and its key, or neither"));
            }
        }
        let client_id = self.client_id.unwrap_or_else(|| thing_name.to_owned());
        if client_id.is_empty() || client_id.len() > 128 {
            return Err(error("upstream.client_id", "must be 1 to 128 characters"));
        }
        let version = mqtt_version(self.mqtt_version.as_deref())?;
        let (keepalive, min, max) =
            timing(self.keepalive_secs, self.min_reconnect_delay_ms, self.max_reconnect_delay_ms)?;
        let spool_max_bytes = self.spool_max_bytes.unwrap_or(DEFAULT_SPOOL_BYTES);
        let spool_max_messages = self.spool_max_messages.unwrap_or(DEFAULT_SPOOL_MESSAGES);
        if spool_max_bytes == 0 || spool_max_messages == 0 {
            return Err(error("upstream.spool_max_bytes", "spool limits must be at least 1"));
        }
        Ok(Some(UpstreamConfig {
            endpoint,
            client_id,
            cert,
            key,
            ca,
            keepalive,
            version,
            min_reconnect_delay: min,
            max_reconnect_delay: max,
            spool_max_bytes,
            spool_max_messages,
        }))
    }
}

/// The delay before reconnect attempt `attempt` (0-based): exponential from `min`, capped at
/// `max`, with "equal jitter" (half fixed, half random from `random` in [0, 1)) so a fleet that
/// lost its broker together does not come back in lockstep.
pub fn backoff(attempt: u32, min: Duration, max: Duration, random: f64) -> Duration {
    let exponential = min.saturating_mul(2u32.saturating_pow(attempt.min(31))).min(max);
    let half = exponential / 2;
    let random = if random.is_finite() { random.clamp(0.0, 1.0) } else { 0.0 };
    half + half.mul_f64(random)
}

/// `path` made absolute against `base`, if given; it must be a file.
fn existing_file(base: &Path, path: Option<PathBuf>, field: &str) -> Result<Option<PathBuf>, UpstreamConfigError> {
    let Some(path) = path else { return Ok(None) };
    let path = if path.is_absolute() { path } else { base.join(path) };
    if !path.is_file() {
        return Err(error(field, format!("{} does not exist", path.display())));
    }
    Ok(Some(path))
}

/// `mqtt_version`: 3.1.1 (default) or 5.
fn mqtt_version(text: Option<&str>) -> Result<MqttVersion, UpstreamConfigError> {
    match text.map(str::to_ascii_lowercase).as_deref() {
        None | Some("3.1.1" | "3" | "mqtt3" | "mqtt311") => Ok(MqttVersion::V311),
        Some("5" | "5.0" | "mqtt5") => Ok(MqttVersion::V5),
        Some(other) => Err(error("upstream.mqtt_version", format!("{other:?}: expected 3.1.1 or 5"))),
    }
}

/// Keepalive (5 to 1200 s, default 60) and the reconnect backoff's bounds (default 1 s to 30 s).
fn timing(
    keepalive_secs: Option<u64>,
    min_ms: Option<u64>,
    max_ms: Option<u64>,
) -> Result<(Duration, Duration, Duration), UpstreamConfigError> {
    let keepalive = Duration::from_secs(keepalive_secs.unwrap_or(60));
    if keepalive < Duration::from_secs(5) || keepalive > Duration::from_secs(1200) {
        return Err(error("upstream.keepalive_secs", "must be between 5 and 1200 (AWS IoT Core's range is 30-1200)"));
    }
    let min = Duration::from_millis(min_ms.unwrap_or(1000));
    let max = Duration::from_millis(max_ms.unwrap_or(30_000));
    if min.is_zero() || max < min {
        return Err(error(
            "upstream.max_reconnect_delay_ms",
            "the reconnect delays must satisfy 0 < min_reconnect_delay_ms <= max_reconnect_delay_ms",
        ));
    }
    Ok((keepalive, min, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_with_default_ports_and_aws_alpn_on_443() {
        let e = Endpoint::parse("mqtts://abc-ats.iot.eu-west-1.amazonaws.com").unwrap();
        assert_eq!((e.port, e.tls), (8883, true));
        assert!(e.alpn().is_empty());
        let e = Endpoint::parse("mqtts://abc-ats.iot.eu-west-1.amazonaws.com:443").unwrap();
        assert_eq!(e.alpn(), vec![b"x-amzn-mqtt-ca".to_vec()]);
        let e = Endpoint::parse("mqtt://127.0.0.1:1884").unwrap();
        assert_eq!((e.host.as_str(), e.port, e.tls), ("127.0.0.1", 1884, false));
        assert_eq!(Endpoint::parse("mqtts://[::1]:8883").unwrap().to_string(), "mqtts://[::1]:8883");
    }

    #[test]
    fn hostile_endpoints_are_refused_with_the_reason() {
        for (bad, reason) in [
            ("tcp://broker:1883", "must start with mqtts://"),
            ("mqtt://broker.example.com:1883", "only for a broker on this machine"),
            ("mqtts://:8883", "not a host"),
            ("mqtts://host:0", "port 0"),
            ("mqtts://host:99999", "bad port"),
            ("mqtts://user@host", "not a host"),
            ("mqtts://fe80::1:8883", "brackets"),
            ("mqtts://[::1", "unclosed"),
            ("", "must start with"),
        ] {
            let err = Endpoint::parse(bad).unwrap_err();
            assert!(err.problem.contains(reason), "{bad:?}: {err}");
        }
    }

    #[test]
    fn settings_resolve_with_defaults_and_flags_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["ca.pem", "cert.pem", "key.pem"] {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        let file: UpstreamSettings = toml::from_str(
            "endpoint = \"mqtts://cloud.example.com\"\nca = \"ca.pem\"\ncert = \"cert.pem\"\nkey = \"key.pem\"\nmqtt_version = \"5\"\n",
        )
        .unwrap();
        let flags = UpstreamSettings { client_id: Some("edge-1".to_owned()), ..UpstreamSettings::default() };
        let config = file.overridden_by(flags).resolve("Core", dir.path()).unwrap().unwrap();
        assert_eq!(config.client_id, "edge-1");
        assert_eq!(config.version, MqttVersion::V5);
        assert_eq!(config.ca, Some(dir.path().join("ca.pem")));
        assert_eq!(config.keepalive, Duration::from_secs(60));
        assert_eq!(
            (config.min_reconnect_delay, config.max_reconnect_delay),
            (Duration::from_secs(1), Duration::from_secs(30))
        );
        assert_eq!(UpstreamSettings::default().resolve("Core", dir.path()).unwrap(), None);
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let base = UpstreamSettings { endpoint: Some("mqtts://cloud".to_owned()), ..UpstreamSettings::default() };
        let cases = [
            (base.clone(), "upstream.ca"),
            (UpstreamSettings { ca: Some("missing.pem".into()), ..base.clone() }, "upstream.ca"),
            (
                UpstreamSettings { endpoint: None, cert: Some("c".into()), ..UpstreamSettings::default() },
                "upstream.endpoint",
            ),
            (
                UpstreamSettings {
                    endpoint: Some("mqtt://localhost".to_owned()),
                    mqtt_version: Some("4".to_owned()),
                    ..UpstreamSettings::default()
                },
                "upstream.mqtt_version",
            ),
            (
                UpstreamSettings {
                    endpoint: Some("mqtt://localhost".to_owned()),
                    keepalive_secs: Some(0),
                    ..UpstreamSettings::default()
                },
                "upstream.keepalive_secs",
            ),
            (
                UpstreamSettings {
                    endpoint: Some("mqtt://localhost".to_owned()),
                    min_reconnect_delay_ms: Some(5000),
                    max_reconnect_delay_ms: Some(1000),
                    ..UpstreamSettings::default()
                },
                "upstream.max_reconnect_delay_ms",
            ),
        ];
        for (settings, field) in cases {
            let err = settings.clone().resolve("Core", dir.path()).unwrap_err();
            assert_eq!(err.field, field, "{settings:?}: {err}");
        }
    }

    #[test]
    fn backoff_grows_to_the_cap_with_bounded_jitter() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(30));
        assert_eq!(backoff(0, min, max, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(0, min, max, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(3, min, max, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(10, min, max, 1.0), max);
        assert_eq!(backoff(u32::MAX, min, max, 0.5), Duration::from_millis(22_500));
        assert!(backoff(5, min, max, f64::NAN) <= max);
    }
}
