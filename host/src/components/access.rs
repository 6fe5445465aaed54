//! A component's `accessControl`: which IPC operations it may perform on which resources.
//!
//! Parsed from the component's configuration exactly as Greengrass lays it out
//! (`accessControl.<service>.<policyId>.{policyDescription, operations, resources}`) and checked
//! as Greengrass's `AuthorizationHandler` does: an operation matches when equal or `*`, a
//! resource when it matches a `*` glob (`+`/`#` literal, except for the IoT Core proxy service,
//! where they are MQTT wildcards). Allow-only; no policy means deny.
//! Pure logic: no actors, no I/O.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

use crate::glob::Glob;

/// IPC service id of local publish/subscribe.
pub const PUBSUB_SERVICE: &str = "aws.greengrass.ipc.pubsub";
/// Operation: publish to a local topic.
pub const PUBLISH_TO_TOPIC: &str = "aws.greengrass#PublishToTopic";
/// Operation: subscribe to a local topic filter.
pub const SUBSCRIBE_TO_TOPIC: &str = "aws.greengrass#SubscribeToTopic";
/// IPC service id of the upstream broker ("IoT Core MQTT proxy").
pub const MQTT_PROXY_SERVICE: &str = "aws.greengrass.ipc.mqttproxy";
/// Operation: publish to the upstream broker.
pub const PUBLISH_TO_IOT_CORE: &str = "aws.greengrass#PublishToIoTCore";
/// Operation: subscribe at the upstream broker.
pub const SUBSCRIBE_TO_IOT_CORE: &str = "aws.greengrass#SubscribeToIoTCore";
/// IPC service id of the shadow manager.
pub const SHADOW_SERVICE: &str = "aws.greengrass.ShadowManager";
/// Operation: read a shadow.
pub const GET_THING_SHADOW: &str = "aws.greengrass#GetThingShadow";
/// Operation: update a shadow.
pub const UPDATE_THING_SHADOW: &str = "aws.greengrass#UpdateThingShadow";
/// Operation: delete a shadow.
pub const DELETE_THING_SHADOW: &str = "aws.greengrass#DeleteThingShadow";
/// Operation: list a thing's named shadows.
pub const LIST_NAMED_SHADOWS: &str = "aws.greengrass#ListNamedShadowsForThing";

/// Why an `accessControl` block was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{path}: {problem}")]
pub struct AccessControlError {
    /// JSON path of the offending value (`accessControl.<service>.<policy>...`).
    pub path: String,
    /// What is wrong.
    pub problem: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WirePolicy {
    #[serde(default)]
    policy_description: Option<String>,
    #[serde(default)]
    operations: Vec<String>,
    #[serde(default)]
    resources: Vec<String>,
}

#[derive(Debug, Clone)]
struct Policy {
    id: String,
    operations: Vec<String>,
    resources: Vec<Glob>,
    /// The resources as written, for MQTT-style matching.
    filters: Vec<String>,
}

/// The compiled `accessControl` of one component.
#[derive(Debug, Clone, Default)]
pub struct AccessControl {
    services: BTreeMap<String, Vec<Policy>>,
}

/// A denied request, with Greengrass's wording.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("Principal {principal} is not authorized to perform {service}:{operation} on resource {resource}")]
pub struct Denied {
    /// The component that asked.
    pub principal: String,
    /// IPC service id.
    pub service: String,
    /// Operation name.
    pub operation: String,
    /// Resource asked for.
    pub resource: String,
}

impl AccessControl {
    /// Reads `accessControl` from a component's whole configuration (absent means no rights).
    pub fn from_config(config: &Value) -> Result<Self, AccessControlError> {
        let Some(block) = config.get("accessControl") else {
            return Ok(Self::default());
        };
        let err = |path: String, problem: String| AccessControlError { path, problem };
        let Value::Object(services) = block else {
            return Err(err("accessControl".to_owned(), "must be an object of IPC service ids".to_owned()));
        };
        let mut out = BTreeMap::new();
        for (service, policies) in services {
            let path = format!("accessControl.{service}");
            let Value::Object(policies) = policies else {
                return Err(err(path, "must be an object of policy ids".to_owned()));
            };
            let mut compiled = Vec::new();
            for (id, policy) in policies {
                let path = format!("{path}.{id}");
                let wire: WirePolicy = serde_json::from_value(policy.clone()).map_err(|e| {
                    err(path.clone(), format!("{e} (a policy has policyDescription, operations, resources)"))
                })?;
                let _ = wire.policy_description;
                if wire.operations.is_empty() {
                    return Err(err(format!("{path}.operations"), "must list at least one operation".to_owned()));
                }
                if wire.resources.is_empty() {
                    return Err(err(format!("{path}.resources"), "must list at least one resource".to_owned()));
                }
                compiled.push(Policy {
                    id: id.clone(),
                    operations: wire.operations,
                    resources: wire.resources.iter().map(|r| Glob::new(r)).collect(),
                    filters: wire.resources,
                });
            }
            out.insert(service.clone(), compiled);
        }
        Ok(Self { services: out })
    }

    /// Whether `operation` on `resource` of `service` is allowed; `Err` says who was denied what.
    /// Resources are `*` globs; for `aws.greengrass.ipc.mqttproxy` they are also MQTT filters
    /// (Greengrass's `MQTT_STYLE`): `+` and `#` in a policy cover what they would match.
    pub fn check(&self, principal: &str, service: &str, operation: &str, resource: &str) -> Result<(), Denied> {
        let mqtt_style = service == MQTT_PROXY_SERVICE;
        let allowed = self.services.get(service).is_some_and(|policies| {
            policies.iter().any(|p| {
                p.operations.iter().any(|op| op == "*" || op == operation)
                    && (p.resources.iter().any(|r| r.matches(resource))
                        || (mqtt_style && p.filters.iter().any(|f| crate::topic::filter_covers(f, resource))))
            })
        });
        if allowed {
            Ok(())
        } else {
            Err(Denied {
                principal: principal.to_owned(),
                service: service.to_owned(),
                operation: operation.to_owned(),
                resource: resource.to_owned(),
            })
        }
    }

    /// True when the component has no policy at all.
    pub fn is_empty(&self) -> bool {
        self.services.values().all(Vec::is_empty)
    }

    /// Policy ids per service, for `turf component details`.
    pub fn policy_ids(&self) -> BTreeMap<String, Vec<String>> {
        self.services.iter().map(|(s, p)| (s.clone(), p.iter().map(|p| p.id.clone()).collect())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ME: &str = "com.example.clientdevices.MyHelloWorldSubscriber";

    fn hello() -> AccessControl {
        AccessControl::from_config(&json!({"accessControl": {"aws.greengrass.ipc.pubsub": {
            "com.example.clientdevices.MyHelloWorldSubscriber:pubsub:1": {
                "policyDescription": "Allows access to subscribe to all topics.",
                "operations": ["aws.greengrass#SubscribeToTopic"],
                "resources": ["*"]}}}}))
        .unwrap()
    }

    #[test]
    fn tutorial_policy_allows_subscribe_but_not_publish() {
        let acl = hello();
        assert!(acl.check(ME, PUBSUB_SERVICE, SUBSCRIBE_TO_TOPIC, "clients/+/hello/world").is_ok());
        let denied = acl.check(ME, PUBSUB_SERVICE, PUBLISH_TO_TOPIC, "a").unwrap_err();
        assert_eq!(
            denied.to_string(),
            format!(
                "Principal {ME} is not authorized to perform aws.greengrass.ipc.pubsub:aws.greengrass#PublishToTopic on resource a"
            )
        );
    }

    #[test]
    fn resources_are_globs_and_mqtt_wildcards_are_literal() {
        let acl = AccessControl::from_config(&json!({"accessControl": {"aws.greengrass.ipc.pubsub": {"p": {
            "operations": ["aws.greengrass#SubscribeToTopic"],
            "resources": ["$aws/things/+/shadow/update/accepted", "factory/*/status"]}}}}))
        .unwrap();
        let sub = |r| acl.check(ME, PUBSUB_SERVICE, SUBSCRIBE_TO_TOPIC, r).is_ok();
        assert!(sub("$aws/things/+/shadow/update/accepted"));
        assert!(!sub("$aws/things/MyClientDevice1/shadow/update/accepted"));
        assert!(!sub("$aws/things/#"));
        assert!(sub("factory/a/b/status"));
        assert!(!sub("factory/status"));
    }

    #[test]
    fn mqttproxy_resources_are_mqtt_filters() {
        let acl = AccessControl::from_config(&json!({"accessControl": {"aws.greengrass.ipc.mqttproxy": {"p": {
            "operations": ["aws.greengrass#PublishToIoTCore", "aws.greengrass#SubscribeToIoTCore"],
            "resources": ["factory/+/telemetry", "commands/#"]}}}}))
        .unwrap();
        let publish = |r| acl.check(ME, MQTT_PROXY_SERVICE, PUBLISH_TO_IOT_CORE, r).is_ok();
        let subscribe = |r| acl.check(ME, MQTT_PROXY_SERVICE, SUBSCRIBE_TO_IOT_CORE, r).is_ok();
        assert!(publish("factory/line1/telemetry"));
        assert!(!publish("factory/line1/other"));
        assert!(subscribe("commands/#") && subscribe("commands/a/+"));
        assert!(!subscribe("#") && !subscribe("factory/#"));
        // The same resources on the local bus stay literal.
        let local = AccessControl::from_config(&json!({"accessControl": {"aws.greengrass.ipc.pubsub": {"p": {
            "operations": ["*"], "resources": ["factory/+/telemetry"]}}}}))
        .unwrap();
        assert!(local.check(ME, PUBSUB_SERVICE, PUBLISH_TO_TOPIC, "factory/line1/telemetry").is_err());
    }

    #[test]
    fn no_access_control_denies_everything() {
        let acl = AccessControl::from_config(&json!({"other": 1})).unwrap();
        assert!(acl.is_empty());
        assert!(acl.check(ME, PUBSUB_SERVICE, SUBSCRIBE_TO_TOPIC, "a").is_err());
        let other_service = AccessControl::from_config(&json!({"accessControl": {"aws.greengrass.ShadowManager": {
            "p": {"operations": ["*"], "resources": ["*"]}}}}))
        .unwrap();
        assert!(other_service.check(ME, PUBSUB_SERVICE, SUBSCRIBE_TO_TOPIC, "a").is_err());
    }

    #[test]
    fn star_operation_allows_every_operation_of_the_service() {
        let acl = AccessControl::from_config(&json!({"accessControl": {"aws.greengrass.ipc.pubsub": {
            "p": {"operations": ["*"], "resources": ["a/*"]}}}}))
        .unwrap();
        assert!(acl.check(ME, PUBSUB_SERVICE, PUBLISH_TO_TOPIC, "a/b").is_ok());
        assert!(acl.check(ME, PUBSUB_SERVICE, SUBSCRIBE_TO_TOPIC, "a/").is_ok());
        assert!(acl.check(ME, PUBSUB_SERVICE, SUBSCRIBE_TO_TOPIC, "b").is_err());
    }

    #[test]
    fn malformed_blocks_name_their_path() {
        let cases = [
            (json!({"accessControl": []}), "accessControl"),
            (json!({"accessControl": {"svc": "x"}}), "accessControl.svc"),
            (json!({"accessControl": {"svc": {"p": {"operations": "op", "resources": ["*"]}}}}), "accessControl.svc.p"),
            (
                json!({"accessControl": {"svc": {"p": {"operations": ["op"], "resources": []}}}}),
                "accessControl.svc.p.resources",
            ),
            (json!({"accessControl": {"svc": {"p": {"resources": ["*"]}}}}), "accessControl.svc.p.operations"),
            (
                json!({"accessControl": {"svc": {"p": {"operations": ["a"], "resources": ["*"], "effect": "DENY"}}}}),
                "accessControl.svc.p",
            ),
        ];
        for (config, path) in cases {
            assert_eq!(AccessControl::from_config(&config).unwrap_err().path, path, "{config}");
        }
    }
}
