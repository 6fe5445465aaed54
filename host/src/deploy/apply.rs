//! Applying a validated [`Plan`]: compile first, then install, reconfigure, stop and launch.
//!
//! Every new or changed component is compiled and linked before anything on the host changes,
//! so a broken artifact fails the deployment with the running state untouched. Then recipes
//! and artifacts are installed, built-in services and running components get their new
//! configuration, removed components stop, and changed components launch in dependency order,
//! each awaited until its `init` finished.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use actix::prelude::*;

use serde_json::Value;

use super::builtin;
use super::plan::{DeployedSet, InstallStep, Plan, recipe_file_name};
use crate::bridge::ConfigureBridge;
use crate::bridge::routes::BridgeConfig;
use crate::components::access::AccessControl;
use crate::components::instance::ConfigSnapshot;
use crate::components::{Configure, Launch, Prepare, Prepared, Stop};
use crate::config::RootLayout;
use crate::connectivity::{ConfigureIpDetector, IpDetectorConfig};
use crate::devices::ConfigureAuth;
use crate::devices::policy::DeviceGroups;
use crate::fsutil::{self, Access};
use crate::shadow::ConfigureShadows;
use crate::shadow::settings::ShadowSettings;
use std::collections::HashMap;

/// The services a deployment drives; wired by the supervisor.
#[derive(Clone)]
pub struct DeploymentPeers {
    /// Runtime: compile and link.
    pub prepare: Recipient<Prepare>,
    /// Runtime: start a component.
    pub launch: Recipient<Launch>,
    /// Runtime: new configurations for running components.
    pub configure: Recipient<Configure>,
    /// Runtime: stop a component.
    pub stop: Recipient<Stop>,
    /// Bridge: new routes.
    pub bridge: Recipient<ConfigureBridge>,
    /// Device auth: new device groups.
    pub auth: Recipient<ConfigureAuth>,
    /// Connectivity: new IP detector settings.
    pub ip_detector: Recipient<ConfigureIpDetector>,
    /// Shadow manager: new settings.
    pub shadows: Recipient<ConfigureShadows>,
}

fn mailbox(error: MailboxError) -> String {
    format!("a host service is not running: {error}")
}

/// The configuration snapshot components read.
pub fn snapshot_of(set: &DeployedSet) -> Arc<ConfigSnapshot> {
    Arc::new(set.iter().map(|(name, d)| (name.clone(), d.config.clone())).collect::<BTreeMap<_, _>>())
}

/// Access rights of every WebAssembly component in `set` (already validated when deployed).
pub fn access_of(set: &DeployedSet) -> HashMap<String, Arc<AccessControl>> {
    set.iter()
        .filter(|(_, d)| d.recipe.is_some())
        .filter_map(|(name, d)| AccessControl::from_config(&d.config).ok().map(|a| (name.clone(), Arc::new(a))))
        .collect()
}

/// Applies `plan`; the error text says which step failed and why.
pub async fn apply(plan: &Plan, layout: &RootLayout, peers: &DeploymentPeers) -> Result<(), String> {
    let mut prepared: Vec<Prepared> = Vec::new();
    for step in &plan.launches {
        let request =
            Prepare { name: step.name.clone(), version: step.version.to_string(), wasm: step.source_wasm.clone() };
        prepared.push(peers.prepare.send(request).await.map_err(mailbox)?.map_err(|e| e.to_string())?);
    }
    for step in &plan.installs {
        let (layout, step) = (layout.clone(), step.clone());
        tokio::task::spawn_blocking(move || install(&layout, &step))
            .await
            .map_err(|e| format!("installer thread failed: {e}"))??;
    }
    for (name, config) in &plan.builtins {
        configure_builtin(name, config, peers).await?;
    }
    let configs = snapshot_of(&plan.target);
    peers
        .configure
        .send(Configure { configs: Arc::clone(&configs), access: plan.access.clone().into_iter().collect() })
        .await
        .map_err(mailbox)?;
    for name in &plan.stops {
        peers.stop.send(Stop { name: name.clone() }).await.map_err(mailbox)?;
    }
    for prepared in prepared {
        let access = plan.access.get(&prepared.name).cloned().unwrap_or_default();
        let launch = Launch { prepared, access, configs: Arc::clone(&configs) };
        peers.launch.send(launch).await.map_err(mailbox)?.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Hands a built-in component's validated configuration to the service behind it.
async fn configure_builtin(name: &str, config: &Value, peers: &DeploymentPeers) -> Result<(), String> {
    match name {
        builtin::BRIDGE => {
            let routes = BridgeConfig::from_json(config).map_err(|e| e.to_string())?;
            peers.bridge.send(ConfigureBridge(routes)).await.map_err(mailbox)
        }
        builtin::AUTH => {
            let groups = DeviceGroups::from_config(config).map_err(|e| e.to_string())?;
            peers.auth.send(ConfigureAuth(groups.map(Arc::new))).await.map_err(mailbox)
        }
        builtin::SHADOW_MANAGER => {
            let settings = ShadowSettings::from_config(config)?;
            peers.shadows.send(ConfigureShadows(settings)).await.map_err(mailbox)
        }
        builtin::IP_DETECTOR => {
            let detector = IpDetectorConfig::from_config(config).map_err(|e| e.to_string())?;
            peers.ip_detector.send(ConfigureIpDetector(detector)).await.map_err(mailbox)
        }
        _ => Ok(()),
    }
}

/// Copies a component's artifacts and writes its recipe into the store.
fn install(layout: &RootLayout, step: &InstallStep) -> Result<(), String> {
    if let Some(from) = &step.artifacts_from
        && from != &step.artifacts_to
    {
        replace_dir(from, &step.artifacts_to).map_err(|e| {
            format!("cannot install artifacts {} -> {}: {e}", from.display(), step.artifacts_to.display())
        })?;
    }
    let path = layout.recipes_dir().join(recipe_file_name(&step.name, &step.version));
    let text = serde_json::to_string_pretty(&step.recipe).map_err(|e| e.to_string())?;
    fsutil::write_atomic(&path, text.as_bytes(), Access::Public)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Replaces `to` with a copy of `from`: copy beside it, then swap, so a reader never sees a
/// half-copied folder.
fn replace_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    let parent = to.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let staging = parent.join(format!(".staging-{}", uuid::Uuid::new_v4()));
    copy_tree(from, &staging)?;
    let old = parent.join(format!(".old-{}", uuid::Uuid::new_v4()));
    if to.exists() {
        std::fs::rename(to, &old)?;
    }
    std::fs::rename(&staging, to)?;
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacing_an_artifact_folder_swaps_the_whole_tree() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("src");
        std::fs::create_dir_all(from.join("sub")).unwrap();
        std::fs::write(from.join("a.wasm"), b"new").unwrap();
        std::fs::write(from.join("sub/b"), b"b").unwrap();
        let to = dir.path().join("store/c/1.0.0");
        std::fs::create_dir_all(&to).unwrap();
        std::fs::write(to.join("stale"), b"old").unwrap();
        replace_dir(&from, &to).unwrap();
        assert_eq!(std::fs::read(to.join("a.wasm")).unwrap(), b"new");
        assert_eq!(std::fs::read(to.join("sub/b")).unwrap(), b"b");
        assert!(!to.join("stale").exists());
        let leftovers: Vec<_> = std::fs::read_dir(to.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1);
    }
}
