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
    /// `installed`, `updated`, `reconfigured`, `removed` or `unchanged`.
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
    /// When it finished.
    pub finished_at: Option<i64>,
    /// What was asked.
    pub request: DeploymentRequest,
    /// Why it failed.
    pub error: Option<String>,
    /// Per-component outcome (once finished).
    pub components: Vec<ComponentOutcome>,
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
    /// Last error, if it errored.
    pub error: Option<String>,
}
