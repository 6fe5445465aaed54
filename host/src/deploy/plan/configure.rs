//! Step 3 of planning: every component's configuration and the recipe variables it may use.

use std::collections::{BTreeMap, BTreeSet};

use semver::Version;
use serde_json::{Map, Value};

use super::super::builtin;
use super::super::config_update;
use super::super::model::DeploymentRequest;
use super::super::recipe::Recipe;
use super::super::variables::{Scope, Variables};
use super::select::Selected;
use super::{DeployedSet, PlanContext};

/// Every component of the target with its configuration: running → RESET → defaults → MERGE.
/// Built-ins with configuration are carried even when nobody names them.
pub(super) fn configurations(
    current: &DeployedSet,
    request: &DeploymentRequest,
    selected: &BTreeMap<String, Selected>,
) -> BTreeMap<String, (Selected, Value)> {
    let mut names: BTreeSet<String> = selected.keys().cloned().collect();
    names.extend(current.iter().filter(|(n, _)| builtin::find(n).is_some()).map(|(n, _)| n.clone()));
    names.extend(request.update_config.keys().filter(|n| builtin::find(n).is_some()).cloned());
    let mut configs = BTreeMap::new();
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
    configs
}

/// Every component's variable scope, so a recipe can see its dependencies' folders.
pub(super) fn scopes(cx: &PlanContext<'_>, configs: &BTreeMap<String, (Selected, Value)>) -> BTreeMap<String, Scope> {
    configs
        .iter()
        .map(|(name, (choice, config))| {
            let wasm = matches!(choice, Selected::Wasm(_));
            (name.clone(), scope_of(cx, name, &choice.version(), config, wasm))
        })
        .collect()
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
pub(super) fn variables_of(cx: &PlanContext<'_>, recipe: &Recipe, scopes: &BTreeMap<String, Scope>) -> Variables {
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
pub(super) fn interpolate_config(config: &Value, variables: &Variables) -> Value {
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

/// True when the nucleus configuration opts in to variables in component configuration.
pub(super) fn interpolation_enabled(configs: &BTreeMap<String, (Selected, Value)>) -> bool {
    configs
        .get(builtin::NUCLEUS)
        .and_then(|(_, c)| c.get("interpolateComponentConfiguration"))
        .is_some_and(|v| v.as_bool() == Some(true) || v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("true")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::deploy::config_update::ConfigUpdate;
    use crate::deploy::plan::Deployed;

    #[test]
    fn a_running_builtin_keeps_its_configuration_and_an_update_merges_into_it() {
        let bridge = "aws.greengrass.clientdevices.mqtt.Bridge";
        let running = json!({"mqttTopicMapping": {"A": {"topic": "a", "source": "LocalMqtt", "target": "Pubsub"}}});
        let current: DeployedSet = [(
            bridge.to_owned(),
            Deployed { version: Version::new(2, 3, 0), root: false, config: running.clone(), recipe: None },
        )]
        .into_iter()
        .collect();
        let unchanged = configurations(&current, &DeploymentRequest::default(), &BTreeMap::new());
        assert_eq!(unchanged[bridge].1, running, "carried although nobody names it");

        let merge = json!({"mqttTopicMapping": {"B": {"topic": "b", "source": "Pubsub", "target": "LocalMqtt"}}});
        let update = ConfigUpdate { reset: Vec::new(), merge: Some(merge) };
        let request = DeploymentRequest {
            update_config: [(bridge.to_owned(), update)].into_iter().collect(),
            ..DeploymentRequest::default()
        };
        let merged = configurations(&current, &request, &BTreeMap::new());
        let routes = merged[bridge].1["mqttTopicMapping"].as_object().unwrap();
        assert_eq!(routes.keys().collect::<Vec<_>>(), vec!["A", "B"]);
    }

    #[test]
    fn interpolation_is_opt_in_through_the_nucleus_and_accepts_true_as_text() {
        let nucleus = |value: Value| -> BTreeMap<String, (Selected, Value)> {
            let builtin = builtin::find(builtin::NUCLEUS).unwrap();
            [(builtin::NUCLEUS.to_owned(), (Selected::Builtin(builtin), value))].into_iter().collect()
        };
        assert!(!interpolation_enabled(&BTreeMap::new()));
        assert!(!interpolation_enabled(&nucleus(json!({}))));
        assert!(interpolation_enabled(&nucleus(json!({"interpolateComponentConfiguration": true}))));
        assert!(interpolation_enabled(&nucleus(json!({"interpolateComponentConfiguration": "TRUE"}))));
        assert!(!interpolation_enabled(&nucleus(json!({"interpolateComponentConfiguration": "yes"}))));
    }
}
