//! Step 4 of planning: the steps that take the running set to the target — installs, launches
//! in dependency order (a HARD dependant restarts with its dependency), reconfigurations,
//! built-in configurations and stops — with each component's outcome.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Component as PathComponent, Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::super::builtin::Builtin;
use super::super::config_update;
use super::super::model::{ComponentOutcome, DeploymentRequest};
use super::super::recipe::{DependencyType, Recipe};
use super::super::variables::Variables;
use super::configure::{self, interpolate_config, variables_of};
use super::resolve::dependency_order;
use super::select::Selected;
use super::{Deployed, DeployedSet, InstallStep, LaunchStep, Plan, PlanContext, PlanError, recipe_file_name};
use crate::components::access::AccessControl;

/// The plan being built, with the launches not yet ordered.
#[derive(Default)]
struct Builder {
    plan: Plan,
    launch_by_name: HashMap<String, LaunchStep>,
    /// Where each WebAssembly component's `.wasm` is now and will be installed.
    locations: HashMap<String, (PathBuf, PathBuf)>,
}

/// Builds the plan for the `selected` components (`roots` were asked for by name).
pub(super) fn build_plan(
    cx: &PlanContext<'_>,
    current: &DeployedSet,
    request: &DeploymentRequest,
    selected: &BTreeMap<String, Selected>,
    roots: &BTreeSet<String>,
) -> Result<Plan, PlanError> {
    let configs = configure::configurations(current, request, selected);
    let interpolate = configure::interpolation_enabled(&configs);
    let scopes = configure::scopes(cx, &configs);
    let mut builder = Builder::default();
    for (name, (choice, config)) in configs {
        let before = current.get(&name);
        let (config, action) = match &choice {
            Selected::Builtin(b) => builder.builtin(&name, b, before, config)?,
            Selected::Wasm(recipe) => {
                let variables = variables_of(cx, recipe, &scopes);
                let config = if interpolate { interpolate_config(&config, &variables) } else { config };
                builder.wasm(cx, request, recipe, before, config, &variables)?
            }
        };
        builder.record(name, choice, config, action, roots);
    }
    builder.removed(current);
    builder.restart_hard_dependants(selected, current);
    let Builder { mut plan, mut launch_by_name, .. } = builder;
    for name in dependency_order(selected) {
        if let Some(step) = launch_by_name.remove(&name) {
            plan.launches.push(step);
        }
    }
    Ok(plan)
}

impl Builder {
    /// A built-in: validated, and reconfigured when its configuration changed.
    fn builtin(
        &mut self,
        name: &str,
        builtin: &Builtin,
        before: Option<&Deployed>,
        config: Value,
    ) -> Result<(Value, &'static str), PlanError> {
        builtin.validate(&config).map_err(|problem| PlanError::Config { component: name.to_owned(), problem })?;
        let changed = config_update::changed_keys(before.map(|b| &b.config), &config);
        if changed.is_empty() {
            return Ok((config, "unchanged"));
        }
        self.plan.builtins.insert(name.to_owned(), config.clone());
        Ok((config, "reconfigured"))
    }

    /// A WebAssembly component: its access rights, where its code is, and whether it is
    /// installed, relaunched (new recipe or code), reconfigured or left alone.
    fn wasm(
        &mut self,
        cx: &PlanContext<'_>,
        request: &DeploymentRequest,
        recipe: &Recipe,
        before: Option<&Deployed>,
        config: Value,
        variables: &Variables,
    ) -> Result<(Value, &'static str), PlanError> {
        let name = &recipe.name;
        let version = &recipe.version;
        let changed = config_update::changed_keys(before.map(|b| &b.config), &config);
        let access = AccessControl::from_config(&config)
            .map_err(|e| PlanError::Config { component: name.clone(), problem: e.to_string() })?;
        self.plan.access.insert(name.clone(), Arc::new(access));
        let (source, installed, source_dir) = wasm_location(request, recipe, variables)?;
        self.locations.insert(name.clone(), (source.clone(), installed.clone()));
        let previous_recipe = before.and_then(|b| b.recipe.as_ref());
        let new_code = file_digest(&source) != file_digest(&installed);
        let relaunch =
            previous_recipe.is_none_or(|p| p.version != *version || p.document != recipe.document) || new_code;
        // Installed code that matches (same digest) is not copied again.
        let install_needed =
            relaunch || previous_recipe.is_none_or(|p| p.document != recipe.document) || !installed.is_file();
        if install_needed || !cx.layout.recipes_dir().join(recipe_file_name(name, version)).exists() {
            self.plan.installs.push(InstallStep {
                name: name.clone(),
                version: version.clone(),
                recipe: recipe.document.clone(),
                artifacts_from: source_dir,
                artifacts_to: cx.layout.artifacts_dir(name, &version.to_string()),
            });
        }
        let action = if relaunch {
            let step = LaunchStep {
                name: name.clone(),
                version: version.clone(),
                source_wasm: source,
                installed_wasm: installed,
            };
            self.launch_by_name.insert(name.clone(), step);
            if before.is_none() { "installed" } else { "updated" }
        } else if !changed.is_empty() {
            self.plan.reconfigure.insert(name.clone(), changed);
            "reconfigured"
        } else {
            "unchanged"
        };
        Ok((config, action))
    }

    /// Puts a component into the target set with its outcome.
    fn record(&mut self, name: String, choice: Selected, config: Value, action: &str, roots: &BTreeSet<String>) {
        let version = choice.version();
        self.plan.outcomes.push(ComponentOutcome {
            name: name.clone(),
            version: version.to_string(),
            action: action.to_owned(),
        });
        let recipe = match choice {
            Selected::Wasm(r) => Some(*r),
            Selected::Builtin(_) => None,
        };
        let root = roots.contains(&name);
        self.plan.target.insert(name, Deployed { version, root, config, recipe });
    }

    /// Running components that are not in the target are stopped (built-ins just leave the set).
    fn removed(&mut self, current: &DeployedSet) {
        for (name, deployed) in current {
            if self.plan.target.contains_key(name) {
                continue;
            }
            if deployed.recipe.is_some() {
                self.plan.stops.push(name.clone());
            }
            self.plan.outcomes.push(ComponentOutcome {
                name: name.clone(),
                version: deployed.version.to_string(),
                action: "removed".to_owned(),
            });
        }
    }

    /// A component restarts when a HARD dependency of it restarts (Greengrass: the dependant
    /// follows its dependency's state); SOFT dependants are left running.
    fn restart_hard_dependants(&mut self, selected: &BTreeMap<String, Selected>, current: &DeployedSet) {
        for name in dependency_order(selected) {
            if self.launch_by_name.contains_key(&name) || !current.contains_key(&name) {
                continue;
            }
            let (Some(Selected::Wasm(recipe)), Some((source, installed))) =
                (selected.get(&name), self.locations.get(&name))
            else {
                continue;
            };
            let Some(changed_dep) = recipe
                .dependencies
                .iter()
                .find(|(dep, spec)| spec.kind == DependencyType::Hard && self.launch_by_name.contains_key(*dep))
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
            self.launch_by_name.insert(name.clone(), step);
            if let Some(outcome) = self.plan.outcomes.iter_mut().find(|o| o.name == name) {
                outcome.action = format!("restarted (HARD dependency {changed_dep} changed)");
            }
        }
    }
}

/// Where a component's `.wasm` is now (the request's artifact folder, or already installed)
/// and where it will be installed; refused if `Lifecycle.Run` leaves `{artifacts:path}`.
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

fn file_digest(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok().map(|bytes| Sha256::digest(bytes).to_vec())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::deploy::builtin::{self, BRIDGE};
    use crate::deploy::recipe::Platform;
    use crate::layout::RootLayout;

    fn routes(topic: &str) -> Value {
        json!({"mqttTopicMapping": {"R": {"topic": topic, "source": "LocalMqtt", "target": "Pubsub"}}})
    }

    #[test]
    fn a_builtin_is_reconfigured_only_when_changed_and_what_left_the_set_stops() {
        let dir = tempfile::tempdir().unwrap();
        let layout = RootLayout::new(dir.path());
        let platform = Platform::current();
        let cx = PlanContext { layout: &layout, platform: &platform, thing_name: "Core" };
        let gone = Recipe::from_value(
            &json!({"RecipeFormatVersion": "2020-01-25", "ComponentName": "com.example.Gone", "ComponentVersion": "1.0.0",
                    "Manifests": [{"Lifecycle": {"Run": "{artifacts:path}/g.wasm"}}]}),
            "test",
            &platform,
        )
        .unwrap();
        let bridge_version = builtin::find(BRIDGE).unwrap().semver();
        let current: DeployedSet = [
            (BRIDGE.to_owned(), Deployed { version: bridge_version, root: false, config: routes("a/#"), recipe: None }),
            (
                "com.example.Gone".to_owned(),
                Deployed { version: gone.version.clone(), root: true, config: json!({}), recipe: Some(gone) },
            ),
        ]
        .into_iter()
        .collect();
        let selected: BTreeMap<String, Selected> =
            [(BRIDGE.to_owned(), Selected::Builtin(builtin::find(BRIDGE).unwrap()))].into_iter().collect();

        let same = build_plan(&cx, &current, &DeploymentRequest::default(), &selected, &BTreeSet::new()).unwrap();
        assert!(same.builtins.is_empty(), "an unchanged built-in is not reconfigured");
        assert_eq!(same.stops, vec!["com.example.Gone".to_owned()]);
        let actions: Vec<(&str, &str)> = same.outcomes.iter().map(|o| (o.name.as_str(), o.action.as_str())).collect();
        assert_eq!(actions, vec![(BRIDGE, "unchanged"), ("com.example.Gone", "removed")]);

        let update =
            crate::deploy::config_update::ConfigUpdate { reset: vec![String::new()], merge: Some(routes("b/#")) };
        let request = DeploymentRequest {
            update_config: [(BRIDGE.to_owned(), update)].into_iter().collect(),
            ..DeploymentRequest::default()
        };
        let changed = build_plan(&cx, &current, &request, &selected, &BTreeSet::new()).unwrap();
        assert_eq!(changed.builtins[BRIDGE], routes("b/#"));
        assert!(changed.launches.is_empty() && changed.installs.is_empty());
    }
}
