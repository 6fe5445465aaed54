//! What `turf run` was asked to do: [`HostConfig`], built from the command line and
//! `config.toml` ([`ConfigFile`]), handed to the supervisor. The top of the configuration: it
//! names every service's settings type, and no service imports it.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use thiserror::Error;

use crate::broker::limits::BrokerSettings;
use crate::components::limits::{ComponentLimits, ComponentSettings};
use crate::layout::RootLayout;
use crate::mgmt::messages::{ConsoleLimits, ConsoleSettings};
use crate::upstream::config::UpstreamSettings;

/// Default device listener: mutual TLS on all interfaces, as Greengrass's broker.
pub const DEFAULT_MQTT_LISTEN: &str = "0.0.0.0:8883";
/// Default Greengrass discovery endpoint (HTTPS, mutual TLS).
pub const DEFAULT_DISCOVERY_LISTEN: &str = "0.0.0.0:8443";
/// Default local HTTP listener (`/metrics`): loopback, the port of Greengrass's debug console.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:1441";
/// Default root directory, relative to the working directory.
pub const DEFAULT_ROOT: &str = "./turf-root";
/// Default thing name of this core device.
pub const DEFAULT_THING_NAME: &str = "TurfCore";

/// Everything `turf run` needs to start a host.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Root directory holding all state (see [`RootLayout`]).
    pub root: PathBuf,
    /// Address of the mutual-TLS device listener.
    pub mqtt_listen: SocketAddr,
    /// Optional plain-TCP listener; must be a loopback address.
    pub plain_listen: Option<SocketAddr>,
    /// Greengrass discovery endpoint.
    pub discovery_listen: SocketAddr,
    /// The local HTTP listener (`/metrics`, the console); loopback only unless `http_tls`.
    pub http_listen: SocketAddr,
    /// Serve the HTTP listener over TLS with the broker's certificate.
    pub http_tls: bool,
    /// The console test client's limits.
    pub console: ConsoleLimits,
    /// Thing name of this core device.
    pub thing_name: String,
    /// Limits for WebAssembly components.
    pub component_limits: ComponentLimits,
    /// Folders to hot-reload from (`--watch-recipes`, `--watch-artifacts`).
    pub watch: crate::watch::WatchConfig,
    /// The upstream ("IotCore") broker, if any (`config.toml`, `--upstream*`).
    pub upstream: Option<crate::upstream::config::UpstreamConfig>,
    /// Queue limits of the broker and the host's message path (`[broker]` in `config.toml`).
    pub broker: crate::broker::BrokerLimits,
    /// Where WebAssembly components are compiled (`turf run`: a helper process).
    pub compiler: crate::components::engine::Compiler,
}

impl HostConfig {
    /// A configuration with defaults for everything but the root directory.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            mqtt_listen: SocketAddr::from(([0, 0, 0, 0], 8883)),
            plain_listen: None,
            discovery_listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 1441)),
            http_tls: false,
            console: ConsoleLimits::default(),
            thing_name: DEFAULT_THING_NAME.to_owned(),
            component_limits: ComponentLimits::default(),
            watch: crate::watch::WatchConfig::default(),
            upstream: None,
            broker: crate::broker::BrokerLimits::default(),
            compiler: crate::components::engine::Compiler::default(),
        }
    }

    /// The directory layout under this configuration's root.
    pub fn layout(&self) -> RootLayout {
        RootLayout::new(&self.root)
    }
}

/// `config.toml` could not be read as such.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{file}: {problem}")]
pub struct ConfigFileError {
    /// The file.
    pub file: String,
    /// What is wrong (TOML's message, with the line).
    pub problem: String,
}

/// `config.toml`: the host's configuration file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `[upstream]`.
    #[serde(default)]
    pub upstream: Option<UpstreamSettings>,
    /// `[broker]`: queue limits.
    #[serde(default)]
    pub broker: Option<BrokerSettings>,
    /// `[components]`: the host's defaults for every component's limits.
    #[serde(default)]
    pub components: Option<ComponentSettings>,
    /// `[console]`: the console test client's limits.
    #[serde(default)]
    pub console: Option<ConsoleSettings>,
}

impl ConfigFile {
    /// Parses `config.toml` text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigFileError> {
        toml::from_str(text).map_err(|e| ConfigFileError {
            file: file.to_owned(),
            problem: e.to_string().trim_end().replace('\n', " "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_toml_names_a_misspelt_setting_and_refuses_what_is_not_toml() {
        let err = ConfigFile::parse("[upstream]\nendpont = \"x\"\n", "config.toml").unwrap_err();
        assert!(err.problem.contains("endpont") && err.to_string().starts_with("config.toml: "), "{err}");
        assert!(ConfigFile::parse("not toml at all = = =", "config.toml").is_err());
    }

    #[test]
    fn default_listen_address_parses() {
        assert_eq!(DEFAULT_MQTT_LISTEN.parse::<SocketAddr>().ok(), Some(HostConfig::new("x").mqtt_listen));
    }
}
