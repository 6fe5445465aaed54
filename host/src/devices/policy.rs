//! Client device authorization: `aws.greengrass.clientdevices.Auth` `deviceGroups`.
//!
//! The configuration is Greengrass's: groups (`definitions`) select things with a selection rule
//! and name a policy; a policy's statements allow `operations` on `resources`. A thing gets the
//! union of the policies of every group that selects it; nothing selected or nothing allowed means
//! deny. Requests are Greengrass's strings: `mqtt:connect` on `mqtt:clientId:<id>`, `mqtt:publish`
//! on `mqtt:topic:<topic>`, `mqtt:subscribe` on `mqtt:topicfilter:<filter as sent>`. Resources
//! match as `*` globs (MQTT wildcards are literal), after `${iot:Connection.Thing.ThingName}` is
//! replaced by the thing's name. Errors name the JSON path. Pure logic: no I/O.

use super::refusal::AuthRefusal;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use super::selection::{RuleError, SelectionRule};
use crate::glob::Glob;

/// The only `formatVersion`.
pub const FORMAT_VERSION: &str = "2021-03-05";
/// The one policy variable Greengrass supports.
pub const THING_NAME_VARIABLE: &str = "${iot:Connection.Thing.ThingName}";
/// Operation: connect.
pub const CONNECT: &str = "mqtt:connect";
/// Operation: publish.
pub const PUBLISH: &str = "mqtt:publish";
/// Operation: subscribe.
pub const SUBSCRIBE: &str = "mqtt:subscribe";

const OPERATIONS: &[&str] = &[CONNECT, PUBLISH, SUBSCRIBE, "mqtt:*", "*"];
const RESOURCE_TYPES: &[&str] = &["mqtt:clientId:", "mqtt:topic:", "mqtt:topicfilter:"];

/// Why a `deviceGroups` configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyError {
    /// A value is malformed.
    #[error("aws.greengrass.clientdevices.Auth configuration: {path}: {problem}")]
    Invalid {
        /// JSON path of the value.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// A selection rule does not parse.
    #[error("aws.greengrass.clientdevices.Auth configuration: {path}: {source}")]
    Rule {
        /// JSON path of the rule.
        path: String,
        /// The parse error.
        #[source]
        source: RuleError,
    },
}

fn invalid(path: impl Into<String>, problem: impl Into<String>) -> PolicyError {
    PolicyError::Invalid { path: path.into(), problem: problem.into() }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireGroups {
    #[serde(default)]
    format_version: Option<String>,
    #[serde(default)]
    definitions: BTreeMap<String, Value>,
    #[serde(default)]
    policies: BTreeMap<String, BTreeMap<String, Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireDefinition {
    selection_rule: String,
    policy_name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireStatement {
    #[serde(default)]
    statement_description: Option<String>,
    #[serde(default)]
    effect: Option<String>,
    operations: Vec<String>,
    resources: Vec<String>,
}

#[derive(Debug, Clone)]
struct Resource {
    text: String,
    uses_thing_name: bool,
    glob: Glob,
}

/// One compiled policy statement: `operations` allowed on `resources`.
#[derive(Debug, Clone)]
pub struct Statement {
    name: String,
    operations: Vec<String>,
    resources: Vec<Resource>,
}

impl Statement {
    /// Whether this statement allows `operation` on `resource` for `thing`.
    fn allows(&self, thing: &str, operation: &str, resource: &str) -> bool {
        self.operations.iter().any(|op| op == "*" || op == "mqtt:*" || op == operation)
            && self.resources.iter().any(|r| resource_matches(r, thing, resource))
    }
}

/// Compiles one policy (statement name → statement) found at JSON path `path`.
pub fn parse_policy(path: &str, statements: BTreeMap<String, Value>) -> Result<Vec<Statement>, PolicyError> {
    let mut compiled = Vec::new();
    for (name, statement) in statements {
        let path = format!("{path}.{name}");
        let wire: WireStatement = serde_json::from_value(statement).map_err(|e| {
            invalid(&path, format!("{e} (a statement has operations, resources and optionally statementDescription)"))
        })?;
        let _ = wire.statement_description;
        if let Some(effect) = wire.effect.filter(|e| !e.eq_ignore_ascii_case("ALLOW")) {
            return Err(invalid(format!("{path}.effect"), format!("{effect:?}: only ALLOW exists")));
        }
        if wire.operations.is_empty() {
            return Err(invalid(format!("{path}.operations"), "must list at least one operation"));
        }
        if let Some(bad) = wire.operations.iter().find(|o| !OPERATIONS.contains(&o.as_str())) {
            return Err(invalid(
                format!("{path}.operations"),
                format!("{bad:?} is not one of {}", OPERATIONS.join(", ")),
            ));
        }
        if wire.resources.is_empty() {
            return Err(invalid(format!("{path}.resources"), "must list at least one resource"));
        }
        let resources = wire
            .resources
            .iter()
            .map(|r| parse_resource(&format!("{path}.resources"), r))
            .collect::<Result<Vec<_>, _>>()?;
        compiled.push(Statement { name, operations: wire.operations, resources });
    }
    Ok(compiled)
}

/// Whether any of `statements` allows `thing` to perform `operation` on `resource`.
pub fn policy_allows(statements: &[Statement], thing: &str, operation: &str, resource: &str) -> bool {
    statements.iter().any(|s| s.allows(thing, operation, resource))
}

#[derive(Debug, Clone)]
struct Group {
    name: String,
    rule: SelectionRule,
    rule_text: String,
    policy: String,
}

/// Validated device groups and policies.
#[derive(Debug, Clone, Default)]
pub struct DeviceGroups {
    groups: Vec<Group>,
    policies: BTreeMap<String, Vec<Statement>>,
}

/// A group that selects a thing, and what its policy allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupAccess {
    /// Group name (`deviceGroups.definitions.<name>`).
    pub group: String,
    /// Its selection rule as configured.
    pub selection_rule: String,
    /// The policy it names.
    pub policy: String,
    /// The policy's statements, for this thing.
    pub statements: Vec<AllowedStatement>,
}

/// One statement of a policy, its resources resolved for a thing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowedStatement {
    /// Statement name.
    pub name: String,
    /// Operations allowed.
    pub operations: Vec<String>,
    /// On these resources (globs).
    pub resources: Vec<String>,
}

/// An authorization decision with what led to it (for logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Allowed or not.
    pub allowed: bool,
    /// Groups that selected the thing.
    pub groups: Vec<String>,
}

impl Decision {
    /// Why a denied request was denied.
    pub fn refusal(&self, operation: &str, resource: &str) -> AuthRefusal {
        if self.groups.is_empty() {
            return AuthRefusal::NoGroup;
        }
        AuthRefusal::NotAllowed {
            groups: self.groups.join(", "),
            operation: operation.to_owned(),
            resource: resource.to_owned(),
        }
    }
}

fn parse_resource(path: &str, text: &str) -> Result<Resource, PolicyError> {
    if text != "*" && !RESOURCE_TYPES.iter().any(|t| text.starts_with(t)) {
        return Err(invalid(
            path,
            format!("{text:?} is not a resource; use mqtt:clientId:..., mqtt:topic:..., mqtt:topicfilter:... or *"),
        ));
    }
    let mut rest = text.replace(THING_NAME_VARIABLE, "");
    for escape in ["${*}", "${?}", "${$}"] {
        rest = rest.replace(escape, "");
    }
    if let Some(start) = rest.find("${") {
        let variable: String = rest[start..].chars().take_while(|c| *c != '}').chain(['}']).collect();
        return Err(invalid(
            path,
            format!("Policy contains unknown variables: {variable} (only {THING_NAME_VARIABLE} is supported)"),
        ));
    }
    Ok(Resource { text: text.to_owned(), uses_thing_name: text.contains(THING_NAME_VARIABLE), glob: Glob::new(text) })
}

impl DeviceGroups {
    /// Reads `deviceGroups` from the Auth component's whole configuration. `Ok(None)` when the
    /// configuration has no `deviceGroups`.
    pub fn from_config(config: &Value) -> Result<Option<Self>, PolicyError> {
        match config.get("deviceGroups") {
            None | Some(Value::Null) => Ok(None),
            Some(groups) => Self::parse(groups).map(Some),
        }
    }

    fn parse(value: &Value) -> Result<Self, PolicyError> {
        let wire: WireGroups = serde_json::from_value(value.clone())
            .map_err(|e| invalid("deviceGroups", format!("{e} (expected formatVersion, definitions and policies)")))?;
        if let Some(version) = wire.format_version.filter(|v| v != FORMAT_VERSION) {
            return Err(invalid(
                "deviceGroups.formatVersion",
                format!("{version:?} is not supported; use \"{FORMAT_VERSION}\""),
            ));
        }
        let mut policies = BTreeMap::new();
        for (policy, statements) in wire.policies {
            let compiled = parse_policy(&format!("deviceGroups.policies.{policy}"), statements)?;
            policies.insert(policy, compiled);
        }
        let mut groups = Vec::new();
        for (name, definition) in wire.definitions {
            let path = format!("deviceGroups.definitions.{name}");
            let wire: WireDefinition = serde_json::from_value(definition)
                .map_err(|e| invalid(&path, format!("{e} (a group has selectionRule and policyName)")))?;
            let rule = SelectionRule::parse(&wire.selection_rule)
                .map_err(|source| PolicyError::Rule { path: format!("{path}.selectionRule"), source })?;
            if !policies.contains_key(&wire.policy_name) {
                let known: Vec<&str> = policies.keys().map(String::as_str).collect();
                return Err(invalid(
                    format!("{path}.policyName"),
                    format!(
                        "{:?} is not defined in deviceGroups.policies (defined: {})",
                        wire.policy_name,
                        known.join(", ")
                    ),
                ));
            }
            groups.push(Group { name, rule, rule_text: wire.selection_rule, policy: wire.policy_name });
        }
        Ok(Self { groups, policies })
    }

    /// Decides whether `thing` may perform `operation` on `resource`, naming the groups that
    /// selected it (for the reason of a denial).
    pub fn decide(&self, thing: &str, operation: &str, resource: &str) -> Decision {
        let allowed = self.allows(thing, operation, resource);
        Decision { allowed, groups: self.selecting(thing).map(|g| g.name.clone()).collect() }
    }

    /// Whether `thing` may perform `operation` on `resource` (what `decide` says, without
    /// collecting group names: this runs for every publish and subscribe).
    pub fn allows(&self, thing: &str, operation: &str, resource: &str) -> bool {
        self.selecting(thing).any(|group| {
            self.policies
                .get(&group.policy)
                .is_some_and(|statements| policy_allows(statements, thing, operation, resource))
        })
    }

    /// The groups that select `thing` and what their policies allow it, with
    /// `${iot:Connection.Thing.ThingName}` replaced by its name (the console's client devices).
    pub fn explain(&self, thing: &str) -> Vec<GroupAccess> {
        self.selecting(thing)
            .map(|group| GroupAccess {
                group: group.name.clone(),
                selection_rule: group.rule_text.clone(),
                policy: group.policy.clone(),
                statements: self.policies.get(&group.policy).map_or_else(Vec::new, |statements| {
                    statements
                        .iter()
                        .map(|s| AllowedStatement {
                            name: s.name.clone(),
                            operations: s.operations.clone(),
                            resources: s.resources.iter().map(|r| r.text.replace(THING_NAME_VARIABLE, thing)).collect(),
                        })
                        .collect()
                }),
            })
            .collect()
    }

    /// Whether some group's selection rule matches `thing`.
    pub fn selects(&self, thing: &str) -> bool {
        self.selecting(thing).next().is_some()
    }

    /// The groups whose selection rule matches `thing`.
    fn selecting<'a>(&'a self, thing: &'a str) -> impl Iterator<Item = &'a Group> {
        self.groups.iter().filter(move |g| g.rule.matches(thing))
    }
}

fn resource_matches(pattern: &Resource, thing: &str, resource: &str) -> bool {
    if pattern.uses_thing_name {
        Glob::new(&pattern.text.replace(THING_NAME_VARIABLE, &crate::glob::escape(thing))).matches(resource)
    } else {
        pattern.glob.matches(resource)
    }
}

/// The resource string for a connect by `client_id`.
pub fn client_id_resource(client_id: &str) -> String {
    format!("mqtt:clientId:{client_id}")
}

/// The resource string for a publish to `topic`.
pub fn topic_resource(topic: &str) -> String {
    format!("mqtt:topic:{topic}")
}

/// The resource string for a subscription to `filter`.
pub fn topic_filter_resource(filter: &str) -> String {
    format!("mqtt:topicfilter:{filter}")
}

#[cfg(test)]
mod tests;
