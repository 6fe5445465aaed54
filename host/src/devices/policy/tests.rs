//! Device-group policies: Greengrass's evaluation rules, variables, and hostile input.

use super::*;
use crate::devices::AuthRefusal;
use serde_json::json;

/// The tutorial's step-2 configuration, verbatim.
fn tutorial() -> Value {
    json!({"deviceGroups": {
      "formatVersion": "2021-03-05",
      "definitions": {"MyDeviceGroup": {
          "selectionRule": "thingName: MyClientDevice* OR thingName: MyOtherClientDevice*",
          "policyName": "MyClientDevicePolicy"}},
      "policies": {"MyClientDevicePolicy": {
          "AllowConnect": {"statementDescription": "Allow client devices to connect.", "operations": ["mqtt:connect"], "resources": ["*"]},
          "AllowPublish": {"statementDescription": "Allow client devices to publish to all topics.", "operations": ["mqtt:publish"], "resources": ["*"]},
          "AllowSubscribe": {"statementDescription": "Allow client devices to subscribe to all topics.", "operations": ["mqtt:subscribe"], "resources": ["*"]}}}
    }})
}

fn groups(value: Value) -> DeviceGroups {
    DeviceGroups::from_config(&value).unwrap().unwrap()
}

#[test]
fn a_client_id_with_wildcards_is_literal_in_the_thing_name_variable() {
    let g = groups(json!({"deviceGroups": {
        "definitions": {"All": {"selectionRule": "thingName: *", "policyName": "Own"}},
        "policies": {"Own": {"S": {"operations": ["mqtt:publish"], "resources": ["mqtt:topic:clients/${iot:Connection.Thing.ThingName}/*"]}}}}}));
    assert!(g.allows("*", PUBLISH, &topic_resource("clients/*/x")));
    assert!(!g.allows("*", PUBLISH, &topic_resource("clients/dev1/x")), "'*' is a name, not a wildcard");
    assert!(!g.allows("$", PUBLISH, &topic_resource("clients/x/y")));
    assert!(g.allows("a${*}b", PUBLISH, &topic_resource("clients/a${*}b/x")));
}

#[test]
fn tutorial_policy_lets_my_client_devices_do_everything_and_others_nothing() {
    let g = groups(tutorial());
    assert!(g.allows("MyClientDevice1", CONNECT, &client_id_resource("MyClientDevice1")));
    assert!(g.allows("MyClientDevice1", PUBLISH, &topic_resource("clients/MyClientDevice1/hello/world")));
    assert!(g.allows("MyClientDevice1", SUBSCRIBE, &topic_filter_resource("$aws/things/+/shadow/#")));
    let other = g.decide("OtherDevice", CONNECT, &client_id_resource("OtherDevice"));
    assert!(!other.allowed);
    assert_eq!(other.refusal(CONNECT, "x"), AuthRefusal::NoGroup);
}

#[test]
fn thing_name_variable_confines_devices_to_their_own_topics() {
    let g = groups(json!({"deviceGroups": {
        "definitions": {"All": {"selectionRule": "thingName: *", "policyName": "Own"}},
        "policies": {"Own": {
            "Connect": {"operations": ["mqtt:connect"], "resources": ["mqtt:clientId:${iot:Connection.Thing.ThingName}"]},
            "Publish": {"operations": ["mqtt:publish"], "resources": ["mqtt:topic:clients/${iot:Connection.Thing.ThingName}/*"]},
            "Subscribe": {"operations": ["mqtt:subscribe"], "resources": ["mqtt:topicfilter:clients/${iot:Connection.Thing.ThingName}/+/status"]}}}}}));
    assert!(g.allows("dev1", CONNECT, &client_id_resource("dev1")));
    assert!(!g.allows("dev1", CONNECT, &client_id_resource("dev2")));
    assert!(g.allows("dev1", PUBLISH, &topic_resource("clients/dev1/hello/world")));
    assert!(!g.allows("dev1", PUBLISH, &topic_resource("clients/dev2/hello/world")));
    assert!(!g.allows("dev1", PUBLISH, &topic_resource("clients/dev1")));
    assert!(g.allows("dev1", SUBSCRIBE, &topic_filter_resource("clients/dev1/+/status")));
    assert!(!g.allows("dev1", SUBSCRIBE, &topic_filter_resource("clients/dev1/x/status")), "filters match literally");
    assert!(!g.allows("dev1", SUBSCRIBE, &topic_filter_resource("clients/+/+/status")));
}

#[test]
fn union_over_groups_and_operation_wildcards() {
    let g = groups(json!({"deviceGroups": {
        "definitions": {
            "Sensors": {"selectionRule": "thingName: sensor*", "policyName": "ReadOnly"},
            "Admins": {"selectionRule": "thingName: *admin", "policyName": "Everything"}},
        "policies": {
            "ReadOnly": {"S": {"operations": ["mqtt:connect", "mqtt:subscribe"], "resources": ["*"]}},
            "Everything": {"S": {"operations": ["mqtt:*"], "resources": ["*"]}}}}}));
    assert!(!g.allows("sensor1", PUBLISH, &topic_resource("a")));
    assert!(g.allows("sensor-admin", PUBLISH, &topic_resource("a")));
    assert_eq!(g.decide("sensor-admin", PUBLISH, "x").groups, vec!["Admins".to_owned(), "Sensors".to_owned()]);
    assert!(!g.allows("nobody", CONNECT, &client_id_resource("nobody")));
}

#[test]
fn bad_configurations_name_their_path() {
    let cases = [
        (json!({"deviceGroups": {"formatVersion": "2020-01-01"}}), "deviceGroups.formatVersion"),
        (
            json!({"deviceGroups": {"definitions": {"G": {"selectionRule": "thingName: a", "policyName": "Missing"}}}}),
            "deviceGroups.definitions.G.policyName",
        ),
        (
            json!({"deviceGroups": {"definitions": {"G": {"selectionRule": "thingname: a", "policyName": "P"}}, "policies": {"P": {}}}}),
            "deviceGroups.definitions.G.selectionRule",
        ),
        (
            json!({"deviceGroups": {"policies": {"P": {"S": {"operations": ["mqtt:pub"], "resources": ["*"]}}}}}),
            "deviceGroups.policies.P.S.operations",
        ),
        (
            json!({"deviceGroups": {"policies": {"P": {"S": {"operations": ["*"], "resources": ["mqtt:topic:${iot:ClientId}"]}}}}}),
            "deviceGroups.policies.P.S.resources",
        ),
        (
            json!({"deviceGroups": {"policies": {"P": {"S": {"operations": ["*"], "resources": ["topic:a"]}}}}}),
            "deviceGroups.policies.P.S.resources",
        ),
        (
            json!({"deviceGroups": {"policies": {"P": {"S": {"operations": ["*"], "resources": ["*"], "effect": "DENY"}}}}}),
            "deviceGroups.policies.P.S.effect",
        ),
        (
            json!({"deviceGroups": {"policies": {"P": {"S": {"operations": [], "resources": ["*"]}}}}}),
            "deviceGroups.policies.P.S.operations",
        ),
        (json!({"deviceGroups": {"policies": {"P": {"S": {"operations": ["*"]}}}}}), "deviceGroups.policies.P.S"),
        (json!({"deviceGroups": {"definitons": {}}}), "deviceGroups"),
    ];
    for (config, path) in cases {
        let err = DeviceGroups::from_config(&config).unwrap_err();
        let got = match &err {
            PolicyError::Invalid { path, .. } | PolicyError::Rule { path, .. } => path.clone(),
        };
        assert_eq!(got, path, "{config} -> {err}");
    }
    let unknown = DeviceGroups::from_config(&json!({"deviceGroups": {"policies": {"P": {"S": {"operations": ["*"], "resources": ["mqtt:topic:${iot:ClientId}/x"]}}}}})).unwrap_err();
    assert!(unknown.to_string().contains("Policy contains unknown variables: ${iot:ClientId}"), "{unknown}");
}

#[test]
fn hostile_names_and_resources_are_handled() {
    let g = groups(tutorial());
    let long = format!("MyClientDevice{}", "x".repeat(10_000));
    assert!(g.allows(&long, CONNECT, &client_id_resource(&long)));
    assert!(!g.allows("", CONNECT, &client_id_resource("")));
    let escaped = groups(json!({"deviceGroups": {
        "definitions": {"G": {"selectionRule": "thingName: a\\:b", "policyName": "P"}},
        "policies": {"P": {"S": {"operations": ["*"], "resources": ["mqtt:topic:literal${*}star"]}}}}}));
    assert!(escaped.allows("a:b", PUBLISH, &topic_resource("literal*star")));
    assert!(!escaped.allows("a:b", PUBLISH, &topic_resource("literalXstar")));
    assert!(DeviceGroups::from_config(&json!({})).unwrap().is_none());
}

#[test]
fn explain_names_the_selecting_groups_and_resolves_the_thing_variable() {
    let g = groups(json!({"deviceGroups": {
        "definitions": {
            "Lights": {"selectionRule": "thingName: Light*", "policyName": "Own"},
            "Everyone": {"selectionRule": "thingName: *", "policyName": "Connect"}},
        "policies": {
            "Own": {"Mine": {"operations": ["mqtt:publish"], "resources": ["mqtt:topic:clients/${iot:Connection.Thing.ThingName}/*"]}},
            "Connect": {"Any": {"operations": ["mqtt:connect"], "resources": ["*"]}}}}}));
    let access = g.explain("Light1");
    let names: Vec<&str> = access.iter().map(|a| a.group.as_str()).collect();
    assert_eq!(names, ["Everyone", "Lights"]);
    let lights = &access[1];
    assert_eq!((lights.selection_rule.as_str(), lights.policy.as_str()), ("thingName: Light*", "Own"));
    assert_eq!(lights.statements[0].name, "Mine");
    assert_eq!(lights.statements[0].resources, ["mqtt:topic:clients/Light1/*"]);
    assert_eq!(g.explain("Fan").len(), 1, "only the groups whose rule selects the thing");
}
