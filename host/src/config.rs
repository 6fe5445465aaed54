//! Host configuration and the layout of the root directory.
//!
//! Owns [`HostConfig`] (what `turf run` was asked to do) and [`RootLayout`] (where every piece of
//! state lives under `--root`). Talks to nobody; other modules ask it for paths so that the
//! layout is written down once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default device listener: mutual TLS on all interfaces, as Greengrass's broker.
pub const DEFAULT_MQTT_LISTEN: &str = "0.0.0.0:8883";
/// Default Greengrass discovery endpoint (HTTPS, mutual TLS).
pub const DEFAULT_DISCOVERY_LISTEN: &str = "0.0.0.0:8443";
/// Default root directory, relative to the working directory.
pub const DEFAULT_ROOT: &str = "./turf-root";
/// Default thing name of this core device.
pub const DEFAULT_THING_NAME: &str = "TurfCore";

/// Limits applied to every WebAssembly component instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentLimits {
    /// Largest linear memory a component may grow to, in bytes.
    pub memory_bytes: usize,
    /// Longest a single call into a component (init, a message, a timer) may run.
    pub call_budget: Duration,
    /// Longest `init` may run.
    pub init_budget: Duration,
}

impl Default for ComponentLimits {
    fn default() -> Self {
        Self { memory_bytes: 64 << 20, call_budget: Duration::from_secs(1), init_budget: Duration::from_secs(5) }
    }
}

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

/// Where each piece of state lives under the root directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootLayout {
    root: PathBuf,
}

impl RootLayout {
    /// The layout under `root`.
    pub fn new(root: impl AsRef<Path>) -> Self {
        Self { root: root.as_ref().to_path_buf() }
    }

    /// The root directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Core CA and server certificate (`ca/`).
    pub fn ca_dir(&self) -> PathBuf {
        self.root.join("ca")
    }

    /// SQLite database (`turf.db`).
    pub fn database(&self) -> PathBuf {
        self.root.join("turf.db")
    }

    /// The host's configuration file (`config.toml`).
    pub fn config_file(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// Management API socket (`turf.sock`).
    pub fn socket(&self) -> PathBuf {
        self.root.join("turf.sock")
    }

    /// Host and component logs (`logs/`).
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// The log file of one component (`logs/<name>.log`).
    pub fn component_log(&self, component: &str) -> PathBuf {
        self.logs_dir().join(format!("{component}.log"))
    }

    /// Installed recipes (`packages/recipes/`).
    pub fn recipes_dir(&self) -> PathBuf {
        self.root.join("packages").join("recipes")
    }

    /// Installed artifacts of one component version (`packages/artifacts/<name>/<version>/`).
    pub fn artifacts_dir(&self, component: &str, version: &str) -> PathBuf {
        self.root.join("packages").join("artifacts").join(component).join(version)
    }

    /// Work directory of one component (`work/<name>/`).
    pub fn work_dir(&self, component: &str) -> PathBuf {
        self.root.join("work").join(component)
    }

    /// Drop-in folder for `.wasm` components (`plugins/`).
    pub fn plugins_dir(&self) -> PathBuf {
        self.root.join("plugins")
    }

    /// Snapshots of drop-in components being deployed (`dropin/`).
    pub fn dropin_dir(&self) -> PathBuf {
        self.root.join("dropin")
    }

    /// Host-private cache of compiled components (`cache/compiled/`).
    pub fn compiled_cache_dir(&self) -> PathBuf {
        self.root.join("cache").join("compiled")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_places_state_under_the_root() {
        let layout = RootLayout::new("/r");
        assert_eq!(layout.database(), PathBuf::from("/r/turf.db"));
        assert_eq!(layout.socket(), PathBuf::from("/r/turf.sock"));
        assert_eq!(layout.component_log("a.b"), PathBuf::from("/r/logs/a.b.log"));
        assert_eq!(layout.artifacts_dir("a.b", "1.0.0"), PathBuf::from("/r/packages/artifacts/a.b/1.0.0"));
    }

    #[test]
    fn default_listen_address_parses() {
        assert_eq!(DEFAULT_MQTT_LISTEN.parse::<SocketAddr>().ok(), Some(HostConfig::new("x").mqtt_listen));
    }
}
