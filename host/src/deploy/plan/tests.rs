//! The planning pipeline end to end: recipes and artifacts on disk, a request, the plan.

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
    f.component(
        "app",
        "1.0.0",
        json!({"lib": {"VersionRequirement": "^1.0.0"}, "aws.greengrass.Nucleus": {"VersionRequirement": "^2.6.0"}}),
        b"a",
    );
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
            merge: Some(json!({"mqttTopicMapping": {"R": {"topic": "a", "source": "Nowhere", "target": "Pubsub"}}})),
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
