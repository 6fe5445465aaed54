//! Recipe parsing: Greengrass's shapes, limits, platforms, and errors that name the field.

use super::*;
use serde_json::json;

fn limits_of(limits: Value) -> Result<LimitOverrides, RecipeError> {
    let mut recipe = json!({
        "RecipeFormatVersion": "2020-01-25", "ComponentName": "com.example.L", "ComponentVersion": "1.0.0",
        "Manifests": [{"Lifecycle": {"Run": "{artifacts:path}/l.wasm"}}],
    });
    recipe["SystemResourceLimits"] = limits;
    Recipe::from_value(&recipe, "l.json", &Platform::current()).map(|r| r.limits)
}

#[test]
fn system_resource_limits_are_read_in_greengrass_units() {
    let limits = limits_of(json!({"memory": 16384, "cpus": 0.25, "callTimeoutMs": 250, "initTimeoutMs": 2000,
        "queueMessages": 10, "publishRate": 50}))
    .unwrap();
    assert_eq!(limits.memory_bytes, Some(16 << 20), "memory is in KiB");
    assert_eq!(limits.cpus, Some(0.25));
    assert_eq!(limits.call_budget, Some(Duration::from_millis(250)));
    assert_eq!(limits.init_budget, Some(Duration::from_secs(2)));
    assert_eq!((limits.queue_messages, limits.publish_rate), (Some(10), Some(50)));
    assert_eq!(limits_of(Value::Null).unwrap(), LimitOverrides::default());
}

#[test]
fn hostile_limits_are_refused_with_the_field_named() {
    for (limits, field, problem) in [
        (json!({"memory": 1e12}), "SystemResourceLimits.memory", "out of range"),
        (json!({"memory": -1}), "SystemResourceLimits.memory", "out of range"),
        (json!({"cpus": 2}), "SystemResourceLimits.cpus", "out of range"),
        (json!({"callTimeoutMs": "1000"}), "SystemResourceLimits.callTimeoutMs", "must be a number"),
        (json!({"callTimeoutMs": 0}), "SystemResourceLimits.callTimeoutMs", "out of range"),
        (json!({"swap": 1}), "SystemResourceLimits.swap", "unknown limit"),
        (json!([1]), "SystemResourceLimits", "must be an object"),
    ] {
        let error = limits_of(limits).unwrap_err();
        assert_eq!(error.field, field);
        assert!(error.problem.contains(problem), "{}", error.problem);
    }
}

fn hello() -> Value {
    json!({
      "RecipeFormatVersion": "2020-01-25",
      "ComponentName": "com.example.clientdevices.MyHelloWorldSubscriber",
      "ComponentVersion": "1.0.0",
      "ComponentDescription": "A component that subscribes to Hello World messages from client devices.",
      "ComponentPublisher": "Amazon",
      "ComponentConfiguration": {"DefaultConfiguration": {"accessControl": {"aws.greengrass.ipc.pubsub": {
          "com.example.clientdevices.MyHelloWorldSubscriber:pubsub:1": {
            "policyDescription": "Allows access to subscribe to all topics.",
            "operations": ["aws.greengrass#SubscribeToTopic"], "resources": ["*"]}}}}},
      "Manifests": [
        {"Platform": {"os": "windows"}, "Lifecycle": {"Run": "{artifacts:path}/other.wasm"}},
        {"Platform": {"os": "linux"}, "Lifecycle": {"Run": "{artifacts:path}/hello_world_subscriber.wasm"}}
      ]
    })
}

fn linux() -> Platform {
    Platform {
        attributes: [("os", "linux"), ("architecture", "amd64"), ("runtime", "turf")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    }
}

#[test]
fn tutorial_shaped_recipe_parses_and_picks_the_linux_manifest() {
    let recipe = Recipe::from_value(&hello(), "r.json", &linux()).unwrap();
    assert_eq!(recipe.name, "com.example.clientdevices.MyHelloWorldSubscriber");
    assert_eq!(recipe.version, semver::Version::new(1, 0, 0));
    assert_eq!(recipe.manifest_index, 1);
    assert_eq!(recipe.run, "{artifacts:path}/hello_world_subscriber.wasm");
    assert!(recipe.default_configuration["accessControl"].is_object());
}

#[test]
fn keys_are_case_insensitive() {
    let text = serde_json::to_string(&hello())
        .unwrap()
        .replace("ComponentName", "componentname")
        .replace("Manifests", "MANIFESTS");
    let value: Value = serde_json::from_str(&text).unwrap();
    assert!(Recipe::from_value(&value, "r.json", &linux()).is_ok());
}

#[test]
fn yaml_recipes_with_dependencies_parse() {
    let yaml = "RecipeFormatVersion: '2020-01-25'\nComponentName: com.example.Y\nComponentVersion: '1.2.3'\n\
                ComponentDependencies:\n  aws.greengrass.Nucleus:\n    VersionRequirement: '^2.6.0'\n    DependencyType: SOFT\n\
                Manifests:\n  - Platform: { os: '/lin.x/' }\n    Lifecycle:\n      Run: '{artifacts:path}/y.wasm'\n";
    let value = parse_text(yaml, Path::new("y.yaml")).unwrap();
    let recipe = Recipe::from_value(&value, "y.yaml", &linux()).unwrap();
    let dep = &recipe.dependencies["aws.greengrass.Nucleus"];
    assert_eq!(dep.kind, DependencyType::Soft);
    assert!(dep.requirement.matches(&semver::Version::new(2, 14, 0)));
}

#[test]
fn errors_name_the_file_and_field() {
    let mut python = hello();
    python["Manifests"][1]["Lifecycle"]["Run"] = json!("python3 -u {artifacts:path}/hello_world_subscriber.py");
    let cases = [
        (json!([]), ""),
        (json!({"RecipeFormatVersion": "2020-01-25"}), "ComponentName"),
        (json!({"RecipeFormatVersion": "1999"}), "RecipeFormatVersion"),
        (python, "Manifests[1].Lifecycle.Run"),
    ];
    for (value, field) in cases {
        let err = Recipe::from_value(&value, "x.json", &linux()).unwrap_err();
        assert_eq!(err.field, field, "{err}");
        assert!(err.to_string().starts_with("x.json: "));
    }
    let mut bad_version = hello();
    bad_version["ComponentVersion"] = json!("1.0");
    assert_eq!(Recipe::from_value(&bad_version, "x", &linux()).unwrap_err().field, "ComponentVersion");
    let mut bad_name = hello();
    bad_name["ComponentName"] = json!("a b");
    assert_eq!(Recipe::from_value(&bad_name, "x", &linux()).unwrap_err().field, "ComponentName");
    let mut unknown = hello();
    unknown["ComponentNmae"] = json!("x");
    assert_eq!(Recipe::from_value(&unknown, "x", &linux()).unwrap_err().field, "ComponentNmae");
    let mut windows_only = hello();
    windows_only["Manifests"] = json!([{"Platform": {"os": "windows"}, "Lifecycle": {"Run": "a.wasm"}}]);
    assert_eq!(Recipe::from_value(&windows_only, "x", &linux()).unwrap_err().field, "Manifests");
    let mut bad_dep = hello();
    bad_dep["ComponentDependencies"] = json!({"a": {"VersionRequirement": "^^1"}});
    assert_eq!(
        Recipe::from_value(&bad_dep, "x", &linux()).unwrap_err().field,
        "ComponentDependencies.a.VersionRequirement"
    );
}
