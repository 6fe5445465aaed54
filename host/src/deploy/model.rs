//! Deployment requests, records and component listings: the types the management API and the
//! CLI exchange with the deployment service. Plain serde data; no behaviour.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::config_update::ConfigUpdate;
use crate::components::lifecycle::State;

/// A local deployment, as `turf deployment create` asks for it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeploymentRequest {
    /// Folder of recipes (`--recipe-dir`, walked recursively).
    #[serde(default)]
    pub recipe_dir: Option<PathBuf>,
    /// Folder of artifacts laid out `<name>/<version>/...` (`--artifact-dir`).
    #[serde(default)]
    pub artifact_dir: Option<PathBuf>,
    /// Root components to add or update: name → version.
    #[serde(default)]
    pub merge: BTreeMap<String, String>,
    /// Root components to remove.
    #[serde(default)]
    pub remove: Vec<String>,
    /// Configuration updates per component.
    #[serde(default)]
    pub update_config: BTreeMap<String, ConfigUpdate>,
    /// What to do when a component fails to start.
    #[serde(default)]
    pub failure_handling_policy: FailurePolicy,
}

/// What a deployment does when a component fails to start (Greengrass
/// `--failure-handling-policy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailurePolicy {
    /// Put back the previous components and configurations (Turf's default).
    #[default]
    Rollback,
    /// Leave everything as far as it got; the failed component keeps its restart policy.
    DoNothing,
}

impl fmt::Display for FailurePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailurePolicy::Rollback => "ROLLBACK",
            FailurePolicy::DoNothing => "DO_NOTHING",
        })
    }
}

/// Greengrass's detailed status of a failed deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailureDetail {
    /// Refused before anything changed (invalid request, recipe, artifact, or code).
    FailedNoStateChange,
    /// A component failed; the previous components and configurations were put back.
    FailedRollbackComplete,
    /// A component failed and rolling back failed too.
    FailedUnableToRollback,
    /// A component failed; the policy was DO_NOTHING, so the new set stays.
    FailedRollbackNotRequested,
}

impl fmt::Display for FailureDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureDetail::FailedNoStateChange => "FAILED_NO_STATE_CHANGE",
            FailureDetail::FailedRollbackComplete => "FAILED_ROLLBACK_COMPLETE",
            FailureDetail::FailedUnableToRollback => "FAILED_UNABLE_TO_ROLLBACK",
            FailureDetail::FailedRollbackNotRequested => "FAILED_ROLLBACK_NOT_REQUESTED",
        })
    }
}

/// One step of a deployment, as it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressEvent {
    /// Milliseconds since the deployment started.
    pub at_ms: u64,
    /// The component it concerns; `None` for the deployment as a whole.
    pub component: Option<String>,
    /// What happened: a lifecycle state (`STARTING`, `RUNNING`, ...) or a step (`compiled`, ...).
    pub what: String,
}

/// Where a deployment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeploymentState {
    /// Waiting for an earlier deployment.
    Queued,
    /// Being applied.
    InProgress,
    /// Applied.
    Succeeded,
    /// Refused or failed; see the error.
    Failed,
}

impl DeploymentState {
    /// True once the deployment will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, DeploymentState::Succeeded | DeploymentState::Failed)
    }
}

impl fmt::Display for DeploymentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeploymentState::Queued => "QUEUED",
            DeploymentState::InProgress => "IN_PROGRESS",
            DeploymentState::Succeeded => "SUCCEEDED",
            DeploymentState::Failed => "FAILED",
        })
    }
}

/// What a deployment did to one component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentOutcome {
    /// Component name.
    pub name: String,
    /// Version after the deployment.
    pub version: String,
    /// `installed`, `updated`, `reconfigured`, `removed` or `unchanged`; followed by
    /// `, rolled back` when the deployment failed and everything was put back.
    pub action: String,
}

/// A deployment and its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    /// Deployment id (a UUID).
    pub id: String,
    /// Current state.
    pub state: DeploymentState,
    /// When it was submitted (seconds since the epoch).
    pub created_at: i64,
    /// When it started being applied.
    #[serde(default)]
    pub started_at: Option<i64>,
    /// When it finished.
    pub finished_at: Option<i64>,
    /// How long applying it took, in milliseconds.
    #[serde(default)]
    pub took_ms: Option<u64>,
    /// What was asked.
    pub request: DeploymentRequest,
    /// Why it failed.
    pub error: Option<String>,
    /// How it failed, in Greengrass's terms.
    #[serde(default)]
    pub detail: Option<FailureDetail>,
    /// Per-component outcome (once finished).
    pub components: Vec<ComponentOutcome>,
    /// Every step, in order.
    #[serde(default)]
    pub progress: Vec<ProgressEvent>,
}

/// One component as `turf status` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentInfo {
    /// Component name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Lifecycle state.
    pub state: State,
    /// Built into Turf (as opposed to a WebAssembly component).
    pub builtin: bool,
    /// A root component of the deployment (as opposed to a dependency or an implicit built-in).
    pub root: bool,
    /// Restarts since deployment.
    pub restarts: u32,
    /// Last error, if it ever errored.
    pub error: Option<String>,
    /// Since when it has been RUNNING (seconds since the epoch).
    #[serde(default)]
    pub running_since: Option<i64>,
    /// What it uses and what was refused or dropped (WebAssembly components that ran).
    #[serde(default)]
    pub usage: Option<crate::components::budget::UsageReport>,
}

/// Everything `turf component details` shows about one component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentDetails {
    /// The listing entry.
    pub info: ComponentInfo,
    /// Its effective configuration.
    pub configuration: serde_json::Value,
    /// Its recipe as installed (`None` for built-ins).
    pub recipe: Option<serde_json::Value>,
    /// Where its recipe came from, when that matters (a drop-in `.wasm` without a recipe).
    pub origin: Option<String>,
    /// Its log file.
    pub log_file: Option<PathBuf>,
}
