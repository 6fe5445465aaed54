//! Applying a validated [`Plan`], and rolling it back.
//!
//! Every new or changed component is compiled and linked before anything on the host changes,
//! so a broken artifact fails the deployment with the running state untouched. Then built-in
//! services and running components get their new configuration, removed components stop,
//! changed components launch in dependency order (each awaited until its `init` finished), and
//! recipes and artifacts are installed last. If a launch fails, [`rollback`] puts the previous
//! set back. Each step is reported through [`Progress`].

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use actix::prelude::*;

use serde_json::Value;

use super::builtin;
use super::plan::{DeployedSet, InstallStep, Plan, recipe_file_name};
use crate::bridge::routes::BridgeConfig;
use crate::bridge::{BridgeHandle, ConfigureBridge};
use crate::components::access::AccessControl;
use crate::components::instance::ConfigSnapshot;
use crate::components::{Configure, Launch, Prepare, Prepared, RuntimeHandle, Stop};
use crate::connectivity::{ConfigureIpDetector, ConnectivityHandle, IpDetectorConfig};
use crate::devices::{AuthPolicies, ConfigureAuth, DevicesHandle};
use crate::fsutil::{self, Access};
use crate::layout::RootLayout;
use crate::shadow::settings::ShadowSettings;
use crate::shadow::sync::ConfigureSync;
use crate::shadow::{ConfigureShadows, ShadowHandle};
use std::collections::HashMap;

/// The services a deployment drives; built by the supervisor from their handles.
#[derive(Clone)]
pub struct DeploymentServices {
    /// Compiles, starts, reconfigures and stops components.
    pub runtime: RuntimeHandle,
    /// Takes the bridge's routes.
    pub bridge: BridgeHandle,
    /// Takes the device groups.
    pub devices: DevicesHandle,
    /// Takes the IP detector's settings.
    pub connectivity: ConnectivityHandle,
    /// Takes the shadow manager's settings.
    pub shadows: ShadowHandle,
    /// Told when a deployment finished (its one-off work can be given back to the kernel).
    pub trimmer: crate::memory::Trimmer,
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

/// One step of an active deployment, for its progress record.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct DeploymentProgress {
    /// The component it concerns; `None` for the deployment as a whole.
    pub component: Option<String>,
    /// What happened.
    pub what: String,
}

/// Where apply reports its steps (and logs them).
#[derive(Clone)]
pub struct Progress {
    sink: Option<Recipient<DeploymentProgress>>,
}

impl Progress {
    /// Reports to `sink`.
    pub fn to(sink: Recipient<DeploymentProgress>) -> Self {
        Self { sink: Some(sink) }
    }

    /// Only logs.
    pub fn quiet() -> Self {
        Self { sink: None }
    }

    /// Records a step; returns once it is recorded, so steps never trail the outcome.
    async fn note(&self, component: Option<&str>, what: impl Into<String>) {
        let what = what.into();
        tracing::debug!(component, what, "deployment step");
        if let Some(sink) = &self.sink {
            let _ = sink.send(DeploymentProgress { component: component.map(str::to_owned), what }).await;
        }
    }
}

/// What applying did, when it got to the end.
pub struct Applied {
    /// The code of every component launched, to roll back to later.
    pub prepared: Vec<Prepared>,
    /// Components that failed to start, with why (only with `keep_going`; they keep their
    /// restart policy).
    pub failed: Vec<(String, String)>,
}

/// Why applying stopped, and how far it got.
#[derive(Default)]
pub struct ApplyFailure {
    /// What went wrong, naming the step and component.
    pub error: String,
    /// True if nothing on the host changed yet.
    pub untouched: bool,
    /// Components launched, in order.
    pub launched: Vec<String>,
    /// The component that failed to start, if that was the failure.
    pub failed_launch: Option<String>,
    /// Components stopped.
    pub stopped: Vec<String>,
}

/// Applies `plan`. Compiles and links every new component first, so bad code fails with the
/// host untouched; then configures built-ins and running components, stops removed ones,
/// launches in dependency order and installs last, so a rolled-back deployment leaves the
/// store as it was. With `keep_going` a component that fails to start is recorded and the rest
/// continue (`DO_NOTHING`, and restoring after a restart).
pub async fn apply(
    plan: &Plan,
    layout: &RootLayout,
    peers: &DeploymentServices,
    progress: &Progress,
    keep_going: bool,
) -> Result<Applied, ApplyFailure> {
    let mut failure = ApplyFailure {
        error: String::new(),
        untouched: true,
        launched: Vec::new(),
        failed_launch: None,
        stopped: Vec::new(),
    };
    let prepared = match compile(plan, peers, progress).await {
        Ok(prepared) => prepared,
        Err(error) => return Err(ApplyFailure { error, ..failure }),
    };
    failure.untouched = false;
    let configs = match configure(plan, peers, progress).await {
        Ok(configs) => configs,
        Err(error) => return Err(ApplyFailure { error, ..failure }),
    };
    for name in &plan.stops {
        if let Err(error) = peers.runtime.stop.send(Stop { name: name.clone() }).await.map_err(mailbox) {
            return Err(ApplyFailure { error, ..failure });
        }
        failure.stopped.push(name.clone());
        progress.note(Some(name), "FINISHED").await;
    }
    let failed = launch(plan, &prepared, &configs, peers, progress, keep_going, &mut failure).await?;
    for step in &plan.installs {
        let (layout, install_step) = (layout.clone(), step.clone());
        let installed = tokio::task::spawn_blocking(move || install(&layout, &install_step))
            .await
            .map_err(|e| format!("installer thread failed: {e}"))
            .and_then(|r| r);
        if let Err(error) = installed {
            return Err(ApplyFailure { error, ..failure });
        }
        progress.note(Some(&step.name), "installed").await;
    }
    Ok(Applied { prepared, failed })
}

/// Compiles and links every component to launch; nothing has changed if this fails.
async fn compile(plan: &Plan, peers: &DeploymentServices, progress: &Progress) -> Result<Vec<Prepared>, String> {
    let mut prepared = Vec::new();
    for step in &plan.launches {
        let request =
            Prepare { name: step.name.clone(), version: step.version.to_string(), wasm: step.source_wasm.clone() };
        let code = peers.runtime.prepare.send(request).await.map_err(mailbox)?.map_err(|e| e.to_string())?;
        prepared.push(code);
        progress.note(Some(&step.name), "compiled").await;
    }
    Ok(prepared)
}

/// Configures the built-ins whose configuration changed, then hands every running component
/// the new configurations; returns them for the launches.
async fn configure(
    plan: &Plan,
    peers: &DeploymentServices,
    progress: &Progress,
) -> Result<Arc<ConfigSnapshot>, String> {
    for (name, config) in &plan.builtins {
        configure_builtin(name, config, peers).await?;
        progress.note(Some(name), "configured").await;
    }
    let configs = snapshot_of(&plan.target);
    let access = plan.access.clone().into_iter().collect();
    peers.runtime.configure.send(Configure { configs: Arc::clone(&configs), access }).await.map_err(mailbox)?;
    for name in plan.reconfigure.keys() {
        progress.note(Some(name), "reconfigured").await;
    }
    Ok(configs)
}

/// Launches the compiled components in dependency order. A failure ends the deployment, unless
/// `keep_going`, when it is returned among the failed.
async fn launch(
    plan: &Plan,
    prepared: &[Prepared],
    configs: &Arc<ConfigSnapshot>,
    peers: &DeploymentServices,
    progress: &Progress,
    keep_going: bool,
    failure: &mut ApplyFailure,
) -> Result<Vec<(String, String)>, ApplyFailure> {
    let mut failed = Vec::new();
    for code in prepared {
        let access = plan.access.get(&code.name).cloned().unwrap_or_default();
        let limits = limits_of(&plan.target, &code.name);
        let launch = Launch { prepared: code.clone(), access, configs: Arc::clone(configs), limits };
        progress.note(Some(&code.name), "STARTING").await;
        match peers.runtime.launch.send(launch).await.map_err(mailbox).and_then(|r| r.map_err(|e| e.to_string())) {
            Ok(()) => {
                failure.launched.push(code.name.clone());
                progress.note(Some(&code.name), "RUNNING").await;
            }
            Err(error) => {
                progress.note(Some(&code.name), format!("failed: {error}")).await;
                if !keep_going {
                    failure.failed_launch = Some(code.name.clone());
                    return Err(ApplyFailure { error, ..std::mem::take(failure) });
                }
                failed.push((code.name.clone(), error));
            }
        }
    }
    Ok(failed)
}

/// Puts back `previous` after `failure` stopped `plan` half way: the built-ins' and running
/// components' configurations, the code of components that were relaunched, components that
/// were stopped; components new in `plan` are stopped. A component whose in-place swap failed
/// never stopped running its previous code, so it is left alone. Returns the steps that could
/// not be undone.
pub async fn rollback(
    plan: &Plan,
    failure: &ApplyFailure,
    previous: &DeployedSet,
    previous_code: &HashMap<String, Prepared>,
    peers: &DeploymentServices,
    progress: &Progress,
) -> Vec<String> {
    let mut problems = Vec::new();
    progress.note(None, "rolling back").await;
    for name in plan.builtins.keys() {
        let config = previous.get(name).map_or_else(|| Value::Object(serde_json::Map::new()), |d| d.config.clone());
        if let Err(error) = configure_builtin(name, &config, peers).await {
            problems.push(format!("{name}: {error}"));
        }
    }
    let configs = snapshot_of(previous);
    let previous_access = access_of(previous);
    let configure = Configure { configs: Arc::clone(&configs), access: previous_access.clone() };
    if let Err(error) = peers.runtime.configure.send(configure).await {
        problems.push(mailbox(error));
    }
    let mut relaunch: Vec<&String> = Vec::new();
    let new_and_failed = failure.failed_launch.iter().filter(|name| !previous.contains_key(*name));
    for name in failure.launched.iter().chain(new_and_failed) {
        if previous.contains_key(name) {
            relaunch.push(name);
        } else if let Err(error) = peers.runtime.stop.send(Stop { name: name.clone() }).await {
            problems.push(format!("{name}: {}", mailbox(error)));
        } else {
            progress.note(Some(name), "removed").await;
        }
    }
    relaunch.extend(failure.stopped.iter());
    for name in relaunch {
        let Some(code) = previous_code.get(name) else {
            problems.push(format!("{name}: its previous code is not loaded"));
            continue;
        };
        let access = previous_access.get(name).cloned().unwrap_or_default();
        let limits = limits_of(previous, name);
        let launch = Launch { prepared: code.clone(), access, configs: Arc::clone(&configs), limits };
        match peers.runtime.launch.send(launch).await.map_err(mailbox).and_then(|r| r.map_err(|e| e.to_string())) {
            Ok(()) => progress.note(Some(name), format!("RUNNING {} again", code.version)).await,
            Err(error) => problems.push(format!("{name}: {error}")),
        }
    }
    progress.note(None, if problems.is_empty() { "rolled back" } else { "rollback incomplete" }).await;
    problems
}

/// The `SystemResourceLimits` of `name`'s recipe in `set`.
fn limits_of(set: &DeployedSet, name: &str) -> crate::components::limits::LimitOverrides {
    set.get(name).and_then(|d| d.recipe.as_ref()).map(|r| r.limits.clone()).unwrap_or_default()
}

/// Hands a built-in component's validated configuration to the service behind it.
async fn configure_builtin(name: &str, config: &Value, peers: &DeploymentServices) -> Result<(), String> {
    match name {
        builtin::BRIDGE => {
            let routes = BridgeConfig::from_json(config).map_err(|e| e.to_string())?;
            peers.bridge.configure.send(ConfigureBridge(routes)).await.map_err(mailbox)
        }
        builtin::AUTH => {
            let policies = AuthPolicies::from_config(config).map_err(|e| e.to_string())?;
            peers.devices.configure.send(ConfigureAuth(policies)).await.map_err(mailbox)
        }
        builtin::SHADOW_MANAGER => {
            let settings = ShadowSettings::from_config(config)?;
            peers.shadows.configure_sync.send(ConfigureSync(config.clone())).await.map_err(mailbox)??;
            peers.shadows.configure.send(ConfigureShadows(settings)).await.map_err(mailbox)
        }
        builtin::IP_DETECTOR => {
            let detector = IpDetectorConfig::from_config(config).map_err(|e| e.to_string())?;
            peers.connectivity.configure.send(ConfigureIpDetector(detector)).await.map_err(mailbox)
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
