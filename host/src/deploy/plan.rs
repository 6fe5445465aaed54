//! Planning a deployment: from the running set and a request to the exact steps to apply.
//!
//! Everything is validated here before anything changes: recipes (from `--recipe-dir` and the
//! installed store), root components and their dependencies (npm ranges, cycles, built-ins),
//! configuration updates (running → RESET → defaults → MERGE), access control, and where each
//! `.wasm` artifact is. The result says which components to install, launch (in dependency
//! order), reconfigure or stop. Reads recipe and artifact files; changes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Component as PathComponent, Path, PathBuf};
use std::sync::Arc;

use semver::Version;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::builtin;
use super::config_update;
use super::model::{ComponentOutcome, DeploymentRequest};
use super::recipe::{self, DependencyType, Platform, Recipe, RecipeError};
use super::variables::{Scope, Variables};
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
#[derive(Debug, Clone)]
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

/// Recipes available to a deployment: the request's and the installed ones.
struct Catalog {
    recipes: BTreeMap<String, BTreeMap<Version, Recipe>>,
}

impl Catalog {
    fn load(cx: &PlanContext<'_>, recipe_dir: Option<&Path>) -> Result<Self, PlanError> {
        let mut recipes: BTreeMap<String, BTreeMap<Version, Recipe>> = BTreeMap::new();
        let installed_dir = cx.layout.recipes_dir();
        if installed_dir.is_dir() {
            let installed = recipe::recipe_files(&installed_dir).map_err(|e| PlanError::RecipeDir {
                path: installed_dir.display().to_string(),
                reason: e.to_string(),
            })?;
            for path in installed {
                match recipe::load(&path, cx.platform) {
                    Ok(r) => {
                        recipes.entry(r.name.clone()).or_default().insert(r.version.clone(), r);
                    }
                    Err(error) => tracing::warn!(%error, "ignoring unusable installed recipe"),
                }
            }
        }
        if let Some(dir) = recipe_dir {
            let files = recipe::recipe_files(dir)
                .map_err(|e| PlanError::RecipeDir { path: dir.display().to_string(), reason: e.to_string() })?;
            let mut seen: BTreeMap<(String, Version), String> = BTreeMap::new();
            for path in files {
                let r = recipe::load(&path, cx.platform)?;
                let key = (r.name.clone(), r.version.clone());
                if let Some(first) = seen.insert(key, path.display().to_string()) {
                    return Err(PlanError::DuplicateRecipe {
                        name: r.name,
                        version: r.version.to_string(),
                        first,
                        second: path.display().to_string(),
                    });
                }
                recipes.entry(r.name.clone()).or_default().insert(r.version.clone(), r);
            }
        }
        Ok(Self { recipes })
    }

    fn get(&self, name: &str, version: &Version) -> Option<&Recipe> {
        self.recipes.get(name)?.get(version)
    }

    fn versions(&self, name: &str) -> String {
        let list: Vec<String> =
            self.recipes.get(name).map(|v| v.keys().map(Version::to_string).collect()).unwrap_or_default();
        if list.is_empty() { "none".to_owned() } else { list.join(", ") }
    }

    fn best(&self, name: &str, range: &super::semver_range::VersionRange) -> Option<&Recipe> {
        self.recipes.get(name)?.iter().rev().find(|(v, _)| range.matches(v)).map(|(_, r)| r)
    }
}

/// A component selected for the target set.
#[derive(Debug, Clone)]
enum Selected {
    Builtin(&'static builtin::Builtin),
    Wasm(Box<Recipe>),
}

impl Selected {
    fn version(&self) -> Version {
        match self {
            Selected::Builtin(b) => b.semver(),
            Selected::Wasm(r) => r.version.clone(),
        }
    }
}

/// Plans `request` against the `current` set.
pub fn plan(cx: &PlanContext<'_>, current: &DeployedSet, request: &DeploymentRequest) -> Result<Plan, PlanError> {
    for (name, update) in &request.update_config {
        update.validate().map_err(|e| PlanError::Config { component: name.clone(), problem: e.to_string() })?;
    }
    let catalog = Catalog::load(cx, request.recipe_dir.as_deref())?;
    let roots = select_roots(&catalog, current, request)?;
    let (selected, root_names) = close_dependencies(&catalog, roots)?;
    check_cycles(&selected)?;
    for name in request.update_config.keys() {
        if !selected.contains_key(name) && builtin::find(name).is_none() {
            return Err(PlanError::UnknownConfigTarget(name.clone()));
        }
    }
    build_plan(cx, current, request, selected, &root_names)
}

fn select_roots(
    catalog: &Catalog,
    current: &DeployedSet,
    request: &DeploymentRequest,
) -> Result<BTreeMap<String, Selected>, PlanError> {
    let mut roots: BTreeMap<String, Selected> = BTreeMap::new();
    for name in &request.remove {
        if !current.get(name).is_some_and(|d| d.root) {
            return Err(PlanError::NotDeployed(name.clone()));
        }
    }
    for (name, deployed) in current.iter().filter(|(n, d)| d.root && !request.remove.contains(n)) {
        let selected = match (&deployed.recipe, builtin::find(name)) {
            (Some(recipe), _) => Selected::Wasm(Box::new(recipe.clone())),
            (None, Some(b)) => Selected::Builtin(b),
            (None, None) => continue,
        };
        roots.insert(name.clone(), selected);
    }
    for (name, version_text) in &request.merge {
        let bad = |problem: String| PlanError::BadMerge { name: name.clone(), version: version_text.clone(), problem };
        recipe::validate_component_name(name).map_err(bad)?;
        let version = Version::parse(version_text).map_err(|e| bad(format!("not a semantic version: {e}")))?;
        let selected = if let Some(b) = builtin::find(name) {
            let requested =
                super::semver_range::VersionRange::parse(&format!("^{version}")).map_err(|e| bad(e.to_string()))?;
            if !requested.matches(&b.semver()) {
                return Err(bad(format!(
                    "{name} is built into Turf at version {}, which is not compatible with {version}",
                    b.version
                )));
            }
            Selected::Builtin(b)
        } else {
            let recipe = catalog.get(name, &version).ok_or_else(|| PlanError::NoRecipe {
                name: name.clone(),
                version: version.to_string(),
                installed: catalog.versions(name),
            })?;
            Selected::Wasm(Box::new(recipe.clone()))
        };
        roots.insert(name.clone(), selected);
    }
    Ok(roots)
}

fn close_dependencies(
    catalog: &Catalog,
    roots: BTreeMap<String, Selected>,
) -> Result<(BTreeMap<String, Selected>, BTreeSet<String>), PlanError> {
    let root_names: BTreeSet<String> = roots.keys().cloned().collect();
    let mut selected = roots;
    let mut work: Vec<(String, String)> = selected.keys().map(|n| (n.clone(), n.clone())).collect();
    while let Some((name, chain)) = work.pop() {
        let Some(Selected::Wasm(recipe)) = selected.get(&name).cloned() else {
            continue;
        };
        for (dep, spec) in &recipe.dependencies {
            let chain = format!("{chain} {} -> {dep}", recipe.version);
            let dep_err = |problem: String| PlanError::Dependency { chain: chain.clone(), problem };
            if let Some(existing) = selected.get(dep) {
                let have = existing.version();
                if !spec.requirement.matches(&have) {
                    return Err(dep_err(format!("requires {dep} {}, but {dep} {have} is deployed", spec.requirement)));
                }
                continue;
            }
            let chosen = if let Some(b) = builtin::find(dep) {
                if !spec.requirement.matches(&b.semver()) {
                    return Err(dep_err(format!(
                        "requires {dep} {}, but Turf provides {dep} {}",
                        spec.requirement, b.version
                    )));
                }
                Selected::Builtin(b)
            } else {
                let recipe = catalog.best(dep, &spec.requirement).ok_or_else(|| {
                    dep_err(format!(
                        "requires {dep} {}, and no recipe satisfies it (available: {})",
                        spec.requirement,
                        catalog.versions(dep)
                    ))
                })?;
                Selected::Wasm(Box::new(recipe.clone()))
            };
            selected.insert(dep.clone(), chosen);
            work.push((dep.clone(), chain));
        }
    }
    Ok((selected, root_names))
}

fn check_cycles(selected: &BTreeMap<String, Selected>) -> Result<(), PlanError> {
    fn visit<'a>(
        name: &'a str,
        selected: &'a BTreeMap<String, Selected>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Result<(), PlanError> {
        if done.contains(name) {
            return Ok(());
        }
        if let Some(pos) = stack.iter().position(|n| *n == name) {
            let mut cycle: Vec<&str> = stack[pos..].to_vec();
            cycle.push(name);
            return Err(PlanError::Dependency { chain: cycle.join(" -> "), problem: "dependency cycle".to_owned() });
        }
        stack.push(name);
        if let Some(Selected::Wasm(recipe)) = selected.get(name) {
            for dep in recipe.dependencies.keys() {
                if let Some((dep_key, _)) = selected.get_key_value(dep.as_str()) {
                    visit(dep_key, selected, stack, done)?;
                }
            }
        }
        stack.pop();
        done.insert(name);
        Ok(())
    }
    let mut done = BTreeSet::new();
    for name in selected.keys() {
        visit(name, selected, &mut Vec::new(), &mut done)?;
    }
    Ok(())
}

/// Orders WebAssembly components so that dependencies come first.
fn dependency_order(selected: &BTreeMap<String, Selected>) -> Vec<String> {
    fn visit(name: &str, selected: &BTreeMap<String, Selected>, done: &mut Vec<String>) {
        if done.iter().any(|d| d == name) {
            return;
        }
        done.push(String::new()); // placeholder guards against cycles (already rejected)
        let placeholder = done.len() - 1;
        if let Some(Selected::Wasm(recipe)) = selected.get(name) {
            for dep in recipe.dependencies.keys() {
                visit(dep, selected, done);
            }
        }
        done.remove(placeholder);
        done.push(name.to_owned());
    }
    let mut done = Vec::new();
    for name in selected.keys() {
        visit(name, selected, &mut done);
    }
    done.retain(|n| matches!(selected.get(n), Some(Selected::Wasm(_))));
    done
}

fn file_digest(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok().map(|bytes| Sha256::digest(bytes).to_vec())
}

/// The variables of one component: its own folders and configuration.
fn scope_of(cx: &PlanContext<'_>, name: &str, version: &Version, config: &Value, wasm: bool) -> Scope {
    if !wasm {
        return Scope { configuration: config.clone(), ..Scope::default() };
    }
    let version = version.to_string();
    Scope {
        artifacts_path: cx.layout.artifacts_dir(name, &version),
        decompressed_path: cx.layout.root().join("packages/artifacts-unarchived").join(name).join(&version),
        work_path: cx.layout.work_dir(name),
        configuration: config.clone(),
    }
}

/// What `recipe`'s variables resolve to: its own scope, and its direct dependencies'.
fn variables_of(cx: &PlanContext<'_>, recipe: &Recipe, scopes: &BTreeMap<String, Scope>) -> Variables {
    Variables {
        thing_name: cx.thing_name.to_owned(),
        root_path: cx.layout.root().to_path_buf(),
        own: scopes[&recipe.name].clone(),
        dependencies: recipe
            .dependencies
            .keys()
            .filter_map(|dep| scopes.get(dep).map(|scope| (dep.clone(), scope.clone())))
            .collect(),
    }
}

/// Interpolates recipe variables in every string of `config` (opt-in with the nucleus's
/// `interpolateComponentConfiguration`). As in Greengrass, another component's
/// `:configuration:` is not available here; its folders are.
fn interpolate_config(config: &Value, variables: &Variables) -> Value {
    let mut own_only = variables.clone();
    for scope in own_only.dependencies.values_mut() {
        scope.configuration = Value::Null;
    }
    fn walk(value: &Value, variables: &Variables) -> Value {
        match value {
            Value::String(text) => Value::String(variables.interpolate(text)),
            Value::Array(items) => Value::Array(items.iter().map(|v| walk(v, variables)).collect()),
            Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), walk(v, variables))).collect()),
            other => other.clone(),
        }
    }
    walk(config, &own_only)
}

fn wasm_location(
    request: &DeploymentRequest,
    recipe: &Recipe,
    variables: &Variables,
) -> Result<(PathBuf, PathBuf, Option<PathBuf>), PlanError> {
    let version = recipe.version.to_string();
    let installed_dir = variables.own.artifacts_path.clone();
    let run = variables.interpolate(&recipe.run);
    let err = |problem: String| PlanError::Artifact { component: recipe.name.clone(), problem };
    let relative = Path::new(&run).strip_prefix(&installed_dir).map_err(|_| {
        err(format!(
            "Manifests[{}].Lifecycle.Run is {:?}; it must name a file under {{artifacts:path}}",
            recipe.manifest_index, recipe.run
        ))
    })?;
    if relative.components().any(|c| !matches!(c, PathComponent::Normal(_))) {
        return Err(err(format!("Lifecycle.Run {:?} leaves the artifact folder", recipe.run)));
    }
    let source_dir =
        request.artifact_dir.as_ref().map(|dir| dir.join(&recipe.name).join(&version)).filter(|dir| dir.is_dir());
    let source = source_dir.as_ref().map(|d| d.join(relative)).unwrap_or_else(|| installed_dir.join(relative));
    if !source.is_file() {
        let hint = match &request.artifact_dir {
            Some(dir) => format!("put it at {}", dir.join(&recipe.name).join(&version).join(relative).display()),
            None => "pass --artifact-dir with <name>/<version>/ folders".to_owned(),
        };
        return Err(err(format!("{} does not exist; {hint}", source.display())));
    }
    Ok((source, installed_dir.join(relative), source_dir))
}

/// True when the nucleus configuration opts in to variables in component configuration.
fn interpolation_enabled(configs: &BTreeMap<String, (Selected, Value)>) -> bool {
    configs
        .get(builtin::NUCLEUS)
        .and_then(|(_, c)| c.get("interpolateComponentConfiguration"))
        .is_some_and(|v| v.as_bool() == Some(true) || v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("true")))
}

fn build_plan(
    cx: &PlanContext<'_>,
    current: &DeployedSet,
    request: &DeploymentRequest,
    selected: BTreeMap<String, Selected>,
    roots: &BTreeSet<String>,
) -> Result<Plan, PlanError> {
    let mut plan = Plan {
        target: DeployedSet::new(),
        installs: Vec::new(),
        launches: Vec::new(),
        reconfigure: BTreeMap::new(),
        stops: Vec::new(),
        builtins: BTreeMap::new(),
        access: HashMap::new(),
        outcomes: Vec::new(),
    };
    // Built-ins with configuration are carried even when nobody names them.
    let mut names: BTreeSet<String> = selected.keys().cloned().collect();
    names.extend(current.iter().filter(|(n, _)| builtin::find(n).is_some()).map(|(n, _)| n.clone()));
    names.extend(request.update_config.keys().filter(|n| builtin::find(n).is_some()).cloned());

    // First every configuration, so variables can see dependencies' configurations.
    let mut configs: BTreeMap<String, (Selected, Value)> = BTreeMap::new();
    for name in &names {
        let choice = match selected.get(name) {
            Some(s) => s.clone(),
            None => match builtin::find(name) {
                Some(b) => Selected::Builtin(b),
                None => continue,
            },
        };
        let defaults = match &choice {
            Selected::Wasm(r) => r.default_configuration.clone(),
            Selected::Builtin(_) => Value::Object(Map::new()),
        };
        let running = current.get(name).map(|b| {
            let mut config = b.config.clone();
            if let Some(previous) = &b.recipe {
                config_update::follow_defaults(&mut config, &previous.default_configuration, &defaults);
            }
            config
        });
        let config = config_update::resolve(running.as_ref(), &defaults, request.update_config.get(name));
        configs.insert(name.clone(), (choice, config));
    }
    let interpolate = interpolation_enabled(&configs);
    let scopes: BTreeMap<String, Scope> = configs
        .iter()
        .map(|(name, (choice, config))| {
            let wasm = matches!(choice, Selected::Wasm(_));
            (name.clone(), scope_of(cx, name, &choice.version(), config, wasm))
        })
        .collect();

    let mut launch_by_name: HashMap<String, LaunchStep> = HashMap::new();
    let mut locations: HashMap<String, (PathBuf, PathBuf)> = HashMap::new();
    for (name, (choice, config)) in configs {
        let before = current.get(&name);
        let version = choice.version();
        let (config, action) = match &choice {
            Selected::Builtin(b) => {
                b.validate(&config).map_err(|problem| PlanError::Config { component: name.clone(), problem })?;
                let changed = config_update::changed_keys(before.map(|b| &b.config), &config);
                if !changed.is_empty() {
                    plan.builtins.insert(name.clone(), config.clone());
                }
                (config, if changed.is_empty() { "unchanged" } else { "reconfigured" })
            }
            Selected::Wasm(recipe) => {
                let variables = variables_of(cx, recipe, &scopes);
                let config = if interpolate { interpolate_config(&config, &variables) } else { config };
                let changed = config_update::changed_keys(before.map(|b| &b.config), &config);
                let access = AccessControl::from_config(&config)
                    .map_err(|e| PlanError::Config { component: name.clone(), problem: e.to_string() })?;
                plan.access.insert(name.clone(), Arc::new(access));
                let (source, installed, source_dir) = wasm_location(request, recipe, &variables)?;
                locations.insert(name.clone(), (source.clone(), installed.clone()));
                let previous_recipe = before.and_then(|b| b.recipe.as_ref());
                let new_code = file_digest(&source) != file_digest(&installed);
                let relaunch = previous_recipe
                    .is_none_or(|p| p.version != recipe.version || p.document != recipe.document)
                    || new_code;
                // Installed code that matches (same digest) is not copied again.
                let install_needed =
                    relaunch || previous_recipe.is_none_or(|p| p.document != recipe.document) || !installed.is_file();
                if install_needed || !cx.layout.recipes_dir().join(recipe_file_name(&name, &version)).exists() {
                    plan.installs.push(InstallStep {
                        name: name.clone(),
                        version: version.clone(),
                        recipe: recipe.document.clone(),
                        artifacts_from: source_dir,
                        artifacts_to: cx.layout.artifacts_dir(&name, &version.to_string()),
                    });
                }
                let action = if relaunch {
                    launch_by_name.insert(
                        name.clone(),
                        LaunchStep {
                            name: name.clone(),
                            version: version.clone(),
                            source_wasm: source,
                            installed_wasm: installed,
                        },
                    );
                    if before.is_none() { "installed" } else { "updated" }
                } else if !changed.is_empty() {
                    plan.reconfigure.insert(name.clone(), changed);
                    "reconfigured"
                } else {
                    "unchanged"
                };
                (config, action)
            }
        };
        plan.outcomes.push(ComponentOutcome {
            name: name.clone(),
            version: version.to_string(),
            action: action.to_owned(),
        });
        let recipe = match choice {
            Selected::Wasm(r) => Some(*r),
            Selected::Builtin(_) => None,
        };
        let root = roots.contains(&name);
        plan.target.insert(name, Deployed { version, root, config, recipe });
    }
    for (name, deployed) in current {
        if !plan.target.contains_key(name) {
            if deployed.recipe.is_some() {
                plan.stops.push(name.clone());
            }
            plan.outcomes.push(ComponentOutcome {
                name: name.clone(),
                version: deployed.version.to_string(),
                action: "removed".to_owned(),
            });
        }
    }
    restart_hard_dependants(&mut plan, &selected, &mut launch_by_name, &locations, current);
    for name in dependency_order(&selected) {
        if let Some(step) = launch_by_name.remove(&name) {
            plan.launches.push(step);
        }
    }
    Ok(plan)
}

/// A component restarts when a HARD dependency of it restarts (Greengrass: the dependant
/// follows its dependency's state); SOFT dependants are left running.
fn restart_hard_dependants(
    plan: &mut Plan,
    selected: &BTreeMap<String, Selected>,
    launch_by_name: &mut HashMap<String, LaunchStep>,
    locations: &HashMap<String, (PathBuf, PathBuf)>,
    current: &DeployedSet,
) {
    for name in dependency_order(selected) {
        if launch_by_name.contains_key(&name) || !current.contains_key(&name) {
            continue;
        }
        let (Some(Selected::Wasm(recipe)), Some((source, installed))) = (selected.get(&name), locations.get(&name))
        else {
            continue;
        };
        let Some(changed_dep) = recipe
            .dependencies
            .iter()
            .find(|(dep, spec)| spec.kind == DependencyType::Hard && launch_by_name.contains_key(*dep))
            .map(|(dep, _)| dep.clone())
        else {
            continue;
        };
        let step = LaunchStep {
            name: name.clone(),
            version: recipe.version.clone(),
            source_wasm: source.clone(),
            installed_wasm: installed.clone(),
        };
        launch_by_name.insert(name.clone(), step);
        if let Some(outcome) = plan.outcomes.iter_mut().find(|o| o.name == name) {
            outcome.action = format!("restarted (HARD dependency {changed_dep} changed)");
        }
    }
}

/// File name of an installed recipe.
pub fn recipe_file_name(name: &str, version: &Version) -> String {
    format!("{name}-{version}.json")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::config_update::ConfigUpdate;
    use serde_json::json;

    struct Fixture {
        dir: tempfile::TempDir,
        layout: RootLayout,
        platform: Platform,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let layout = RootLayout::new(dir.path().join("root"));
            Self { dir, layout, platform: Platform::current() }
        }

        fn cx(&self) -> PlanContext<'_> {
            PlanContext { layout: &self.layout, platform: &self.platform, thing_name: "Core" }
        }

        fn recipes(&self) -> PathBuf {
            self.dir.path().join("recipes")
        }

        fn artifacts(&self) -> PathBuf {
            self.dir.path().join("artifacts")
        }

        fn component(&self, name: &str, version: &str, deps: Value, wasm: &[u8]) {
            let recipe = json!({
                "RecipeFormatVersion": "2020-01-25", "ComponentName": name, "ComponentVersion": version,
                "ComponentDependencies": deps,
                "ComponentConfiguration": {"DefaultConfiguration": {"n": 1}},
                "Manifests": [{"Lifecycle": {"Run": "{artifacts:path}/c.wasm"}}]
            });
            std::fs::create_dir_all(self.recipes()).unwrap();
            std::fs::write(self.recipes().join(format!("{name}-{version}.json")), recipe.to_string()).unwrap();
            let dir = self.artifacts().join(name).join(version);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("c.wasm"), wasm).unwrap();
        }

        fn request(&self, merge: &[(&str, &str)]) -> DeploymentRequest {
            DeploymentRequest {
                recipe_dir: Some(self.recipes()),
                artifact_dir: Some(self.artifacts()),
                merge: merge.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
                ..DeploymentRequest::default()
            }
        }
    }

    #[test]
    fn dependencies_launch_first_and_builtins_satisfy_ranges() {
        let f = Fixture::new();
        f.component("app", "1.0.0", json!({"lib": {"VersionRequirement": "^1.0.0"}, "aws.greengrass.Nucleus": {"VersionRequirement": "^2.6.0"}}), b"a");
        f.component("lib", "1.2.0", json!({}), b"l");
        f.component("lib", "2.0.0", json!({}), b"l2");
        let plan = plan(&f.cx(), &DeployedSet::new(), &f.request(&[("app", "1.0.0")])).unwrap();
        let order: Vec<_> = plan.launches.iter().map(|l| (l.name.as_str(), l.version.to_string())).collect();
        assert_eq!(order, vec![("lib", "1.2.0".to_owned()), ("app", "1.0.0".to_owned())]);
        assert!(plan.target["app"].root);
        assert!(!plan.target["lib"].root);
        assert_eq!(plan.target["app"].config, json!({"n": 1}));
    }

    #[test]
    fn unsatisfiable_and_cyclic_dependencies_name_the_chain() {
        let f = Fixture::new();
        f.component("app", "1.0.0", json!({"lib": {"VersionRequirement": ">=3.0.0"}}), b"a");
        f.component("lib", "1.2.0", json!({}), b"l");
        let err = plan(&f.cx(), &DeployedSet::new(), &f.request(&[("app", "1.0.0")])).unwrap_err();
        assert!(err.to_string().contains("app 1.0.0 -> lib") && err.to_string().contains(">=3.0.0"), "{err}");

        let g = Fixture::new();
        g.component("a", "1.0.0", json!({"b": {"VersionRequirement": "*"}}), b"a");
        g.component("b", "1.0.0", json!({"a": {"VersionRequirement": "*"}}), b"b");
        let err = plan(&g.cx(), &DeployedSet::new(), &g.request(&[("a", "1.0.0")])).unwrap_err();
        assert!(err.to_string().contains("cycle"), "{err}");

        let h = Fixture::new();
        h.component("app", "1.0.0", json!({"aws.greengrass.Nucleus": {"VersionRequirement": "^3.0.0"}}), b"a");
        let err = plan(&h.cx(), &DeployedSet::new(), &h.request(&[("app", "1.0.0")])).unwrap_err();
        assert!(err.to_string().contains("Turf provides aws.greengrass.Nucleus 2.14.0"), "{err}");
    }

    #[test]
    fn missing_recipes_artifacts_and_config_targets_are_reported() {
        let f = Fixture::new();
        f.component("app", "1.0.0", json!({}), b"a");
        let err = plan(&f.cx(), &DeployedSet::new(), &f.request(&[("app", "2.0.0")])).unwrap_err();
        assert!(matches!(err, PlanError::NoRecipe { ref installed, .. } if installed == "1.0.0"), "{err}");

        std::fs::remove_file(f.artifacts().join("app/1.0.0/c.wasm")).unwrap();
        let err = plan(&f.cx(), &DeployedSet::new(), &f.request(&[("app", "1.0.0")])).unwrap_err();
        assert!(matches!(err, PlanError::Artifact { .. }), "{err}");

        let mut request = f.request(&[]);
        request.update_config.insert("com.example.Nope".to_owned(), ConfigUpdate::default());
        assert_eq!(
            plan(&f.cx(), &DeployedSet::new(), &request).unwrap_err(),
            PlanError::UnknownConfigTarget("com.example.Nope".to_owned())
        );
    }

    #[test]
    fn builtin_bridge_config_is_merged_and_validated_without_merge() {
        let f = Fixture::new();
        let mut request = DeploymentRequest::default();
        request.update_config.insert(
            builtin::BRIDGE.to_owned(),
            ConfigUpdate {
                merge: Some(
                    json!({"mqttTopicMapping": {"R": {"topic": "a/+", "source": "LocalMqtt", "target": "Pubsub"}}}),
                ),
                reset: vec![],
            },
        );
        let plan = plan(&f.cx(), &DeployedSet::new(), &request).unwrap();
        assert!(plan.builtins.contains_key(builtin::BRIDGE));
        assert!(!plan.target[builtin::BRIDGE].root);

        let mut bad = DeploymentRequest::default();
        bad.update_config.insert(
            builtin::BRIDGE.to_owned(),
            ConfigUpdate {
                merge: Some(
                    json!({"mqttTopicMapping": {"R": {"topic": "a", "source": "Nowhere", "target": "Pubsub"}}}),
                ),
                reset: vec![],
            },
        );
        let err = super::plan(&f.cx(), &DeployedSet::new(), &bad).unwrap_err();
        assert!(err.to_string().contains("mqttTopicMapping.R.source"), "{err}");
    }

    #[test]
    fn same_version_redeploy_relaunches_only_when_the_code_changed() {
        let f = Fixture::new();
        f.component("app", "1.0.0", json!({}), b"v1");
        let first = plan(&f.cx(), &DeployedSet::new(), &f.request(&[("app", "1.0.0")])).unwrap();
        // Simulate the install.
        let installed = &first.launches[0].installed_wasm;
        std::fs::create_dir_all(installed.parent().unwrap()).unwrap();
        std::fs::copy(&first.launches[0].source_wasm, installed).unwrap();
        let current = first.target.clone();
        let again = plan(&f.cx(), &current, &f.request(&[("app", "1.0.0")])).unwrap();
        assert!(again.launches.is_empty(), "identical code is not relaunched");
        f.component("app", "1.0.0", json!({}), b"v2");
        let changed = plan(&f.cx(), &current, &f.request(&[("app", "1.0.0")])).unwrap();
        assert_eq!(changed.launches.len(), 1, "new code with the same version is relaunched");
    }

    #[test]
    fn removing_a_root_stops_it_and_unknown_removals_are_refused() {
        let f = Fixture::new();
        f.component("app", "1.0.0", json!({}), b"v1");
        let first = plan(&f.cx(), &DeployedSet::new(), &f.request(&[("app", "1.0.0")])).unwrap();
        let mut request = DeploymentRequest { remove: vec!["app".to_owned()], ..DeploymentRequest::default() };
        let removed = plan(&f.cx(), &first.target, &request).unwrap();
        assert_eq!(removed.stops, vec!["app".to_owned()]);
        request.remove = vec!["ghost".to_owned()];
        assert_eq!(plan(&f.cx(), &first.target, &request).unwrap_err(), PlanError::NotDeployed("ghost".to_owned()));
    }

    fn install_all(plan: &Plan) {
        for step in &plan.launches {
            std::fs::create_dir_all(step.installed_wasm.parent().unwrap()).unwrap();
            std::fs::copy(&step.source_wasm, &step.installed_wasm).unwrap();
        }
    }

    #[test]
    fn a_relaunched_hard_dependency_restarts_its_dependants_but_not_soft_ones() {
        let f = Fixture::new();
        f.component("lib", "1.0.0", json!({}), b"l1");
        f.component("hard", "1.0.0", json!({"lib": {"VersionRequirement": "^1.0.0"}}), b"h");
        f.component("soft", "1.0.0", json!({"lib": {"VersionRequirement": "^1.0.0", "DependencyType": "SOFT"}}), b"s");
        let first = plan(&f.cx(), &DeployedSet::new(), &f.request(&[("hard", "1.0.0"), ("soft", "1.0.0")])).unwrap();
        install_all(&first);
        f.component("lib", "1.0.0", json!({}), b"l2");
        let again = plan(&f.cx(), &first.target, &f.request(&[])).unwrap();
        let order: Vec<&str> = again.launches.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(order, vec!["lib", "hard"]);
        let hard = again.outcomes.iter().find(|o| o.name == "hard").unwrap();
        assert!(hard.action.contains("HARD dependency lib"), "{}", hard.action);
    }

    #[test]
    fn variables_see_direct_dependencies_and_configuration_interpolation_is_opt_in() {
        let f = Fixture::new();
        f.component("lib", "1.0.0", json!({}), b"l");
        let recipe = json!({
            "RecipeFormatVersion": "2020-01-25", "ComponentName": "app", "ComponentVersion": "1.0.0",
            "ComponentDependencies": {"lib": {"VersionRequirement": "1.0.0"}},
            "ComponentConfiguration": {"DefaultConfiguration": {
                "file": "b", "where": "{work:path}", "thing": "{iot:thingName}",
                "libPath": "{lib:artifacts:path}", "libConf": "{lib:configuration:/n}"}},
            "Manifests": [{"Lifecycle": {"Run": "{artifacts:path}/{configuration:/file}.wasm"}}]
        });
        std::fs::write(f.recipes().join("app-1.0.0.json"), recipe.to_string()).unwrap();
        let dir = f.artifacts().join("app/1.0.0");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("b.wasm"), b"b").unwrap();
        let plain = plan(&f.cx(), &DeployedSet::new(), &f.request(&[("app", "1.0.0")])).unwrap();
        assert!(plain.launches.iter().any(|l| l.source_wasm.ends_with("app/1.0.0/b.wasm")));
        assert_eq!(plain.target["app"].config["thing"], json!("{iot:thingName}"), "not interpolated by default");

        let mut request = f.request(&[("app", "1.0.0")]);
        request.update_config.insert(
            builtin::NUCLEUS.to_owned(),
            ConfigUpdate { merge: Some(json!({"interpolateComponentConfiguration": true})), reset: vec![] },
        );
        let on = plan(&f.cx(), &DeployedSet::new(), &request).unwrap();
        let config = &on.target["app"].config;
        assert_eq!(config["thing"], json!("Core"));
        assert!(config["where"].as_str().unwrap().ends_with("work/app"));
        assert!(config["libPath"].as_str().unwrap().ends_with("packages/artifacts/lib/1.0.0"));
        assert_eq!(config["libConf"], json!("{lib:configuration:/n}"), "another component's configuration stays out");
    }

    #[test]
    fn an_edited_default_reaches_a_running_component_unless_overridden() {
        let f = Fixture::new();
        f.component("app", "1.0.0", json!({}), b"a");
        let first = plan(&f.cx(), &DeployedSet::new(), &f.request(&[("app", "1.0.0")])).unwrap();
        install_all(&first);
        let recipe_path = f.recipes().join("app-1.0.0.json");
        let edited = std::fs::read_to_string(&recipe_path).unwrap().replace(r#"{"n":1}"#, r#"{"n":2}"#);
        std::fs::write(&recipe_path, edited).unwrap();
        let again = plan(&f.cx(), &first.target, &f.request(&[("app", "1.0.0")])).unwrap();
        assert_eq!(again.target["app"].config, json!({"n": 2}));

        let mut overridden = first.target.clone();
        overridden.get_mut("app").unwrap().config = json!({"n": 7});
        let kept = plan(&f.cx(), &overridden, &f.request(&[("app", "1.0.0")])).unwrap();
        assert_eq!(kept.target["app"].config, json!({"n": 7}));
    }
}
