//! The local-tools policy: what clients on the plain loopback listener may do when no device
//! group selects them (`aws.greengrass.clientdevices.Auth` `localTools`, a Turf extension
//! beside `deviceGroups`).
//!
//! People's tools (mosquitto_sub, MQTT Explorer, scripts) pick client ids freely, so they are
//! not things and no device group selects them. They get this policy instead:
//!
//! ```json
//! "localTools": {
//!   "policy": {"Everything": {"operations": ["mqtt:*"], "resources": ["*"]}},
//!   "allowThingClientIds": false
//! }
//! ```
//!
//! `policy` has the shape of a `deviceGroups` policy; without it, tools may connect, subscribe
//! to anything and publish anything but shadow writes (`$aws/things/+/shadow/.../update` and
//! `/delete`). A client id that is a registered thing is refused on that listener unless
//! `allowThingClientIds` is true, so a tool never takes over a device's session. Pure logic.

use super::refusal::AuthRefusal;
use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::Value;

use super::policy::{self, PolicyError, Statement, parse_policy, policy_allows};
use crate::glob::Glob;

/// Topics the default policy does not let local tools publish to: shadow writes (compiled once;
/// they are checked on every publish of a local tool).
static SHADOW_WRITES: LazyLock<[Glob; 4]> = LazyLock::new(|| {
    [
        "mqtt:topic:$aws/things/*/shadow/update",
        "mqtt:topic:$aws/things/*/shadow/delete",
        "mqtt:topic:$aws/things/*/shadow/name/*/update",
        "mqtt:topic:$aws/things/*/shadow/name/*/delete",
    ]
    .map(Glob::new)
});

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Wire {
    #[serde(default)]
    policy: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    allow_thing_client_ids: bool,
}

/// The validated `localTools` section.
#[derive(Debug, Clone, Default)]
pub struct LocalTools {
    policy: Option<Vec<Statement>>,
    allow_thing_client_ids: bool,
}

impl LocalTools {
    /// Reads `localTools` from the Auth component's whole configuration (the default when
    /// absent). Errors name the JSON path.
    pub fn from_config(config: &Value) -> Result<Self, PolicyError> {
        let Some(section) = config.get("localTools").filter(|v| !v.is_null()) else { return Ok(Self::default()) };
        let wire: Wire = serde_json::from_value(section.clone()).map_err(|e| PolicyError::Invalid {
            path: "localTools".to_owned(),
            problem: format!("{e} (expected policy and allowThingClientIds)"),
        })?;
        let policy = wire.policy.map(|statements| parse_policy("localTools.policy", statements)).transpose()?;
        Ok(Self { policy, allow_thing_client_ids: wire.allow_thing_client_ids })
    }

    /// Whether a tool may use the client id of a registered thing.
    pub fn allows_thing_client_ids(&self) -> bool {
        self.allow_thing_client_ids
    }

    /// Whether a local tool with `client_id` may perform `operation` on `resource`; `Err` says
    /// why not.
    pub fn authorize(&self, client_id: &str, operation: &str, resource: &str) -> Result<(), AuthRefusal> {
        let allowed = match &self.policy {
            Some(statements) => policy_allows(statements, client_id, operation, resource),
            None => operation != policy::PUBLISH || !SHADOW_WRITES.iter().any(|p| p.matches(resource)),
        };
        if allowed {
            return Ok(());
        }
        Err(match &self.policy {
            Some(_) => AuthRefusal::LocalToolsPolicy { operation: operation.to_owned(), resource: resource.to_owned() },
            None => AuthRefusal::LocalToolsShadowWrite(resource.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::policy::{
        CONNECT, PUBLISH, SUBSCRIBE, client_id_resource, topic_filter_resource, topic_resource,
    };
    use serde_json::json;

    #[test]
    fn by_default_tools_do_everything_but_write_shadows() {
        let tools = LocalTools::from_config(&json!({})).unwrap();
        assert!(tools.authorize("mqttx_3f2a", CONNECT, &client_id_resource("mqttx_3f2a")).is_ok());
        assert!(tools.authorize("x", SUBSCRIBE, &topic_filter_resource("#")).is_ok());
        assert!(tools.authorize("x", SUBSCRIBE, &topic_filter_resource("$aws/things/+/shadow/#")).is_ok());
        assert!(tools.authorize("x", PUBLISH, &topic_resource("clients/dev1/hello")).is_ok());
        assert!(tools.authorize("x", PUBLISH, &topic_resource("$aws/things/lamp/shadow/get")).is_ok(), "a read");
        for write in [
            "$aws/things/lamp/shadow/update",
            "$aws/things/lamp/shadow/delete",
            "$aws/things/lamp/shadow/name/color/update",
            "$aws/things/lamp/shadow/name/color/delete",
        ] {
            let error = tools.authorize("x", PUBLISH, &topic_resource(write)).unwrap_err();
            assert!(error.to_string().contains("may not write shadows"), "{error}");
        }
        assert!(!tools.allows_thing_client_ids());
    }

    #[test]
    fn a_policy_replaces_the_default() {
        let config = json!({"localTools": {
            "policy": {"ReadOnly": {"operations": ["mqtt:connect", "mqtt:subscribe"], "resources": ["*"]}},
            "allowThingClientIds": true}});
        let tools = LocalTools::from_config(&config).unwrap();
        assert!(tools.authorize("t", SUBSCRIBE, &topic_filter_resource("a/#")).is_ok());
        let error = tools.authorize("t", PUBLISH, &topic_resource("a/b")).unwrap_err();
        assert!(error.to_string().contains("localTools policy does not allow"), "{error}");
        assert!(tools.allows_thing_client_ids());
    }

    #[test]
    fn bad_sections_name_the_path() {
        let unknown = LocalTools::from_config(&json!({"localTools": {"polcy": {}}})).unwrap_err();
        assert!(unknown.to_string().contains("localTools"), "{unknown}");
        let bad_op = json!({"localTools": {"policy": {"S": {"operations": ["mqtt:fly"], "resources": ["*"]}}}});
        let error = LocalTools::from_config(&bad_op).unwrap_err();
        assert!(error.to_string().contains("localTools.policy.S.operations"), "{error}");
        let not_object = LocalTools::from_config(&json!({"localTools": 5})).unwrap_err();
        assert!(not_object.to_string().contains("localTools"), "{not_object}");
    }
}
