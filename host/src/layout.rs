//! Where each piece of state lives under the root directory (`--root`).
//!
//! A leaf: every module that needs a path asks [`RootLayout`], so the layout is written down
//! once. Talks to nobody.

use std::path::{Path, PathBuf};

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
}
