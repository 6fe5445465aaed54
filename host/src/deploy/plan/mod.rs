//! Planning a deployment: from the running set and a request to the exact steps to apply.
//!
//! A pure pipeline; it reads recipe and artifact files and changes nothing. Everything is
//! validated before anything changes:
//!
//! 1. `select`: the root components — the running roots minus `--remove`, plus `--merge`,
//!    each from the request's recipes, the installed store, or the built-ins.
//! 2. `resolve`: their dependencies (npm ranges, built-ins), closed over; cycles refused;
//!    the order to start them in.
//! 3. `configure`: every component's configuration (running → RESET → defaults → MERGE) and
//!    the recipe variables it may use.
//! 4. `steps`: what to install, launch (dependencies first), reconfigure or stop, with each
//!    component's access rights and where its `.wasm` is.

mod configure;
mod resolve;
mod select;
mod steps;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use semver::Version;
use serde_json::Value;
use thiserror::Error;

use self::select::Catalog;
use super::builtin;
use super::model::{ComponentOutcome, DeploymentRequest};
use super::recipe::{Platform, Recipe, RecipeError};
use crate::components::access::AccessControl;
use crate::layout::RootLayout;

/// Why a deployment cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlanError {
    /// A recipe is invalid.
    #[error("invalid recipe: {0}")]
    Recipe(#[from] RecipeError),
    /// The recipe folder could not be read.
    #[error("cannot read recipe folder {path}: {reason}")]
    RecipeDir {
        /// The folder.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// Two recipe files declare the same component version.
    #[error("{name}={version} is declared by both {first} and {second}")]
    DuplicateRecipe {
        /// Component name.
        name: String,
        /// Version.
        version: String,
        /// One file.
        first: String,
        /// The other.
        second: String,
    },
    /// `--merge` names a version that is not a semantic version.
    #[error("--merge {name}={version}: {problem}")]
    BadMerge {
        /// Component name.
        name: String,
        /// Version as given.
        version: String,
        /// What is wrong.
        problem: String,
    },
    /// No recipe for a requested component version.
    #[error("no recipe for {name}={version}: not in --recipe-dir and not installed (installed versions: {installed})")]
    NoRecipe {
        /// Component name.
        name: String,
        /// Version.
        version: String,
        /// Installed versions of it, if any.
        installed: String,
    },
    /// `--remove` names something that is not a root component.
    #[error("--remove {0}: no such root component is deployed")]
    NotDeployed(String),
    /// `--update-config` names a component that is not part of the deployment.
    #[error("--update-config names {0}, which is neither deployed, in this deployment, nor built in")]
    UnknownConfigTarget(String),
    /// A configuration is invalid.
    #[error("configuration of {component}: {problem}")]
    Config {
        /// Component name.
        component: String,
        /// What is wrong.
        problem: String,
    },
    /// A dependency cannot be satisfied.
    #[error("dependency {chain}: {problem}")]
    Dependency {
        /// The path of components that leads to the problem (`A 1.0.0 -> B`).
        chain: String,
        /// What is wrong.
        problem: String,
    },
    /// The component's `.wasm` artifact is missing or outside its artifact folder.
    #[error("artifact of {component}: {problem}")]
    Artifact {
        /// Component name.
        component: String,
        /// What is wrong.
        problem: String,
    },
}

/// A component in a deployed set.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployed {
    /// Version.
    pub version: Version,
    /// Root component (asked for by name) rather than a dependency or implicit built-in.
    pub root: bool,
    /// Effective configuration.
    pub config: Value,
    /// Recipe; `None` for built-ins.
    pub recipe: Option<Recipe>,
}

/// The components running (or to run), by name.
pub type DeployedSet = BTreeMap<String, Deployed>;

/// Start (or restart) a WebAssembly component.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchStep {
    /// Component name.
    pub name: String,
    /// Version.
    pub version: Version,
    /// Where the `.wasm` to compile is now.
    pub source_wasm: PathBuf,
    /// Where it will be once installed.
    pub installed_wasm: PathBuf,
}

/// Put a recipe and its artifacts into the store.
#[derive(Debug, Clone, PartialEq)]
pub struct InstallStep {
    /// Component name.
    pub name: String,
    /// Version.
    pub version: Version,
    /// Recipe document to write.
    pub recipe: Value,
    /// Artifact folder to copy from (`<artifact-dir>/<name>/<version>`), if any.
    pub artifacts_from: Option<PathBuf>,
    /// Installed artifact folder.
    pub artifacts_to: PathBuf,
}

/// What applying a deployment does, in order.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The set after the deployment.
    pub target: DeployedSet,
    /// Recipes and artifacts to install.
    pub installs: Vec<InstallStep>,
    /// Components to (re)start, dependencies first.
    pub launches: Vec<LaunchStep>,
    /// Running components whose configuration changed: changed top-level keys.
    pub reconfigure: BTreeMap<String, Vec<String>>,
    /// Components to stop.
    pub stops: Vec<String>,
    /// New configurations of built-in components whose configuration changed.
    pub builtins: BTreeMap<String, Value>,
    /// Access rights of every WebAssembly component in the target.
    pub access: HashMap<String, Arc<AccessControl>>,
    /// Per-component outcome.
    pub outcomes: Vec<ComponentOutcome>,
}

/// Where planning looks.
pub struct PlanContext<'a> {
    /// The root directory.
    pub layout: &'a RootLayout,
    /// This platform.
    pub platform: &'a Platform,
    /// The core device's thing name.
    pub thing_name: &'a str,
}

/// Plans `request` against the `current` set.
pub fn plan(cx: &PlanContext<'_>, current: &DeployedSet, request: &DeploymentRequest) -> Result<Plan, PlanError> {
    for (name, update) in &request.update_config {
        update.validate().map_err(|e| PlanError::Config { component: name.clone(), problem: e.to_string() })?;
    }
    let catalog = Catalog::load(cx, request.recipe_dir.as_deref())?;
    let roots = select::select_roots(&catalog, current, request)?;
    let (selected, root_names) = resolve::close_dependencies(&catalog, roots)?;
    resolve::check_cycles(&selected)?;
    for name in request.update_config.keys() {
        if !selected.contains_key(name) && builtin::find(name).is_none() {
            return Err(PlanError::UnknownConfigTarget(name.clone()));
        }
    }
    steps::build_plan(cx, current, request, &selected, &root_names)
}

/// File name of an installed recipe.
pub fn recipe_file_name(name: &str, version: &Version) -> String {
    format!("{name}-{version}.json")
}
