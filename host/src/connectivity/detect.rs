//! `aws.greengrass.clientdevices.IPDetector` configuration and address selection, and the
//! manual endpoint list of "Manage core device endpoints".
//!
//! The IP detector reports where the broker actually listens: bound to one address, that
//! address alone (whatever the flags say: no other address reaches it); bound to every address
//! (`0.0.0.0` or `[::]`), every address of the host's up interfaces that its flags allow
//! (loopback, link-local and IPv6 are off by default; IPv4 only for `0.0.0.0`). Each is reported
//! with `defaultPort`, or else the broker's port. Greengrass
//! configuration values often arrive as strings (`"true"`, `"8883"`); both forms are accepted.
//! Pure logic: the caller lists the addresses.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

/// One way to reach the core's broker, as discovery reports it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConnectivityInfo {
    /// Identifier (Greengrass uses the address).
    pub id: String,
    /// Host name or IP address.
    pub host_address: String,
    /// Broker port.
    pub port: u16,
    /// Free-form metadata.
    pub metadata: String,
}

impl ConnectivityInfo {
    /// An entry for `host:port`, identified by the host.
    pub fn new(host: &str, port: u16) -> Self {
        Self { id: host.to_owned(), host_address: host.to_owned(), port, metadata: String::new() }
    }
}

/// A refused IP detector configuration or endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{path}: {problem}")]
pub struct DetectorError {
    /// Where the bad value is.
    pub path: String,
    /// What is wrong.
    pub problem: String,
}

/// The IP detector's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpDetectorConfig {
    /// Port reported with every address; `None` means the broker's actual port.
    pub default_port: Option<u16>,
    /// Report 127.0.0.0/8.
    pub ipv4_loopback: bool,
    /// Report 169.254.0.0/16.
    pub ipv4_link_local: bool,
    /// Report other IPv4 addresses.
    pub ipv4: bool,
    /// Report IPv6 at all.
    pub ipv6: bool,
    /// Report ::1 (with `ipv6`).
    pub ipv6_loopback: bool,
    /// Report fe80::/10 (with `ipv6`).
    pub ipv6_link_local: bool,
}

impl Default for IpDetectorConfig {
    fn default() -> Self {
        Self {
            default_port: None,
            ipv4_loopback: false,
            ipv4_link_local: false,
            ipv4: true,
            ipv6: false,
            ipv6_loopback: false,
            ipv6_link_local: false,
        }
    }
}

fn flag(config: &Value, key: &str, default: bool) -> Result<bool, DetectorError> {
    let err = |problem: String| DetectorError { path: key.to_owned(), problem };
    match config.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(other) => Err(err(format!("{other} is not true or false"))),
    }
}

const KEYS: &[&str] = &[
    "defaultPort",
    "includeIPv4LoopbackAddrs",
    "includeIPv4LinkLocalAddrs",
    "includeIPv4Addrs",
    "includeIPv6Addrs",
    "includeIPv6LoopbackAddrs",
    "includeIPv6LinkLocalAddrs",
];

impl IpDetectorConfig {
    /// Reads the IP detector's component configuration.
    pub fn from_config(config: &Value) -> Result<Self, DetectorError> {
        if let Value::Object(map) = config {
            if let Some(key) = map.keys().find(|k| !KEYS.contains(&k.as_str())) {
                return Err(DetectorError {
                    path: key.clone(),
                    problem: format!("unknown setting; expected one of {}", KEYS.join(", ")),
                });
            }
        } else if !config.is_null() {
            return Err(DetectorError { path: "(top level)".to_owned(), problem: "must be a JSON object".to_owned() });
        }
        let default_port = match config.get("defaultPort") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(n.as_u64().and_then(|p| u16::try_from(p).ok()).filter(|p| *p > 0)),
            Some(Value::String(s)) => Some(s.trim().parse::<u16>().ok().filter(|p| *p > 0)),
            Some(_) => Some(None),
        };
        let default_port = match default_port {
            Some(None) => {
                return Err(DetectorError {
                    path: "defaultPort".to_owned(),
                    problem: "must be a port number from 1 to 65535".to_owned(),
                });
            }
            Some(Some(port)) => Some(port),
            None => None,
        };
        Ok(Self {
            default_port,
            ipv4_loopback: flag(config, "includeIPv4LoopbackAddrs", false)?,
            ipv4_link_local: flag(config, "includeIPv4LinkLocalAddrs", false)?,
            ipv4: flag(config, "includeIPv4Addrs", true)?,
            ipv6: flag(config, "includeIPv6Addrs", false)?,
            ipv6_loopback: flag(config, "includeIPv6LoopbackAddrs", false)?,
            ipv6_link_local: flag(config, "includeIPv6LinkLocalAddrs", false)?,
        })
    }

    fn allows(&self, ip: &IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) if v4.is_loopback() => self.ipv4_loopback,
            IpAddr::V4(v4) if v4.is_link_local() => self.ipv4_link_local,
            IpAddr::V4(_) => self.ipv4,
            IpAddr::V6(v6) if v6.is_loopback() => self.ipv6 && self.ipv6_loopback,
            IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => self.ipv6 && self.ipv6_link_local,
            IpAddr::V6(_) => self.ipv6,
        }
    }

    /// The connectivity entries for a broker bound to `broker` on a host with the interface
    /// `addresses` (deduplicated, in order), with the configured port or else the broker's.
    pub fn select(&self, addresses: &[IpAddr], broker: SocketAddr) -> Vec<ConnectivityInfo> {
        let port = self.default_port.unwrap_or(broker.port());
        if !broker.ip().is_unspecified() {
            return vec![ConnectivityInfo::new(&broker.ip().to_string(), port)];
        }
        let reachable = |ip: &&IpAddr| broker.is_ipv6() || ip.is_ipv4();
        let mut out: Vec<ConnectivityInfo> = Vec::new();
        for ip in addresses.iter().filter(reachable).filter(|ip| self.allows(ip)) {
            let entry = ConnectivityInfo::new(&ip.to_string(), port);
            if !out.contains(&entry) {
                out.push(entry);
            }
        }
        out
    }
}

/// Parses a manual endpoint, `HOST:PORT` or `HOST` (then `default_port`; without one the port
/// is required). IPv6 hosts in brackets. See [`crate::endpoint`].
pub fn parse_endpoint(text: &str, default_port: Option<u16>) -> Result<ConnectivityInfo, DetectorError> {
    let parsed =
        crate::endpoint::parse(text, default_port).map_err(|e| DetectorError { path: e.text, problem: e.problem })?;
    Ok(ConnectivityInfo::new(&parsed.host, parsed.port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn defaults_report_plain_ipv4_with_the_broker_port() {
        let all = ips(&["127.0.0.1", "192.168.1.5", "169.254.3.3", "fe80::1", "2001:db8::1", "::1", "192.168.1.5"]);
        let got = IpDetectorConfig::default().select(&all, "0.0.0.0:18883".parse().unwrap());
        assert_eq!(got, vec![ConnectivityInfo::new("192.168.1.5", 18883)]);
    }

    #[test]
    fn a_broker_bound_to_one_address_is_reported_at_that_address_only() {
        let all = ips(&["127.0.0.1", "192.168.1.5", "2001:db8::1"]);
        let everything = IpDetectorConfig { ipv6: true, ..IpDetectorConfig::default() };
        for config in [IpDetectorConfig::default(), everything.clone()] {
            assert_eq!(
                config.select(&all, "127.0.0.1:41883".parse().unwrap()),
                vec![ConnectivityInfo::new("127.0.0.1", 41883)]
            );
            assert_eq!(config.select(&all, "[::1]:8883".parse().unwrap()), vec![ConnectivityInfo::new("::1", 8883)]);
        }
        // Bound to every IPv4 address: no IPv6 address reaches it, even when IPv6 is included.
        let v4 = everything.select(&all, "0.0.0.0:8883".parse().unwrap());
        assert_eq!(v4, vec![ConnectivityInfo::new("192.168.1.5", 8883)]);
        let dual = everything.select(&all, "[::]:8883".parse().unwrap());
        assert_eq!(dual, vec![ConnectivityInfo::new("192.168.1.5", 8883), ConnectivityInfo::new("2001:db8::1", 8883)]);
        // defaultPort still says where devices reach it (a forwarded port).
        let forwarded = IpDetectorConfig { default_port: Some(443), ..IpDetectorConfig::default() };
        assert_eq!(
            forwarded.select(&all, "127.0.0.1:41883".parse().unwrap()),
            vec![ConnectivityInfo::new("127.0.0.1", 443)]
        );
    }

    #[test]
    fn flags_widen_the_selection_and_string_values_are_accepted() {
        let config = IpDetectorConfig::from_config(&json!({
            "defaultPort": "8883", "includeIPv4LoopbackAddrs": "true", "includeIPv6Addrs": true,
            "includeIPv6LinkLocalAddrs": true}))
        .unwrap();
        let got = config.select(&ips(&["127.0.0.1", "fe80::1", "::1", "2001:db8::1"]), "[::]:1".parse().unwrap());
        let hosts: Vec<_> = got.iter().map(|c| (c.host_address.as_str(), c.port)).collect();
        assert_eq!(hosts, vec![("127.0.0.1", 8883), ("fe80::1", 8883), ("2001:db8::1", 8883)]);
    }

    #[test]
    fn bad_settings_are_refused_by_name() {
        for (config, path) in [
            (json!({"defaultPort": 0}), "defaultPort"),
            (json!({"defaultPort": "eighty"}), "defaultPort"),
            (json!({"defaultPort": 70000}), "defaultPort"),
            (json!({"includeIPv4Addrs": "yes"}), "includeIPv4Addrs"),
            (json!({"includeIpv4Addrs": true}), "includeIpv4Addrs"),
            (json!([1]), "(top level)"),
        ] {
            assert_eq!(IpDetectorConfig::from_config(&config).unwrap_err().path, path, "{config}");
        }
    }

    #[test]
    fn manual_endpoints_parse_hosts_ports_and_brackets() {
        assert_eq!(parse_endpoint("core.local:8883", Some(1)).unwrap(), ConnectivityInfo::new("core.local", 8883));
        assert_eq!(parse_endpoint("10.0.0.2", Some(8883)).unwrap(), ConnectivityInfo::new("10.0.0.2", 8883));
        assert_eq!(parse_endpoint("[fe80::1]:1883", Some(1)).unwrap(), ConnectivityInfo::new("fe80::1", 1883));
        assert_eq!(parse_endpoint("[fe80::1]:1883", None).unwrap(), ConnectivityInfo::new("fe80::1", 1883));
        for no_port in ["core.local", "[fe80::1]"] {
            assert!(parse_endpoint(no_port, None).unwrap_err().problem.contains("expected HOST:PORT"), "{no_port}");
        }
        for bad in ["", ":8883", "h:0", "h:x", "fe80::1", "[fe80::1", "a b:1", "h:99999"] {
            assert!(parse_endpoint(bad, Some(8883)).is_err(), "{bad}");
        }
    }
}
