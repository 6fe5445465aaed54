//! Deployment configuration updates: Greengrass's `{"MERGE": {...}, "RESET": ["/ptr"]}`.
//!
//! Applied as the nucleus does (`KernelConfigResolver`): start from the running configuration,
//! remove every RESET pointer (`""` resets everything), merge the recipe's defaults *under* what
//! is left (only missing keys get a default), then deep-merge MERGE on top. Objects merge key by
//! key; anything else, lists included, replaces whole. One addition: when the recipe changed,
//! values still equal to its old defaults first follow the new ones ([`follow_defaults`]), so an
//! edited recipe takes effect without a RESET. Pure logic: no I/O.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

/// One component's configuration update in a deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigUpdate {
    /// Deep-merged on top.
    #[serde(rename = "MERGE", default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<Value>,
    /// JSON pointers removed first.
    #[serde(rename = "RESET", default, skip_serializing_if = "Vec::is_empty")]
    pub reset: Vec<String>,
}

/// A malformed update.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UpdateError {
    /// MERGE is not an object.
    #[error("MERGE must be a JSON object, found {0}")]
    MergeNotObject(String),
    /// A RESET entry is not a JSON pointer.
    #[error("RESET entry {0:?} is not a JSON pointer (it must be \"\" or start with '/')")]
    BadPointer(String),
}

impl ConfigUpdate {
    /// Checks the update's shape.
    pub fn validate(&self) -> Result<(), UpdateError> {
        if let Some(merge) = &self.merge
            && !merge.is_object()
        {
            return Err(UpdateError::MergeNotObject(merge.to_string()));
        }
        if let Some(bad) = self.reset.iter().find(|p| !p.is_empty() && !p.starts_with('/')) {
            return Err(UpdateError::BadPointer(bad.clone()));
        }
        Ok(())
    }
}

/// Parses a `--update-config` document: `{"<component>": {"MERGE": {...}, "RESET": [...]}}`.
/// `MERGE`/`RESET` are matched case-insensitively; anything else is an error naming the path.
pub fn parse_updates(text: &str) -> Result<std::collections::BTreeMap<String, ConfigUpdate>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("--update-config is not valid JSON: {e}"))?;
    let Value::Object(components) = value else {
        return Err("--update-config must be a JSON object keyed by component name".to_owned());
    };
    let mut out = std::collections::BTreeMap::new();
    for (component, update) in components {
        let Value::Object(fields) = update else {
            return Err(format!("--update-config {component}: must be an object with MERGE and/or RESET"));
        };
        let mut parsed = ConfigUpdate::default();
        for (key, value) in fields {
            if key.eq_ignore_ascii_case("MERGE") {
                parsed.merge = Some(value);
            } else if key.eq_ignore_ascii_case("RESET") {
                parsed.reset = serde_json::from_value(value)
                    .map_err(|_| format!("--update-config {component}.RESET: must be a list of JSON pointers"))?;
            } else {
                return Err(format!("--update-config {component}.{key}: unknown key; expected MERGE or RESET"));
            }
        }
        parsed.validate().map_err(|e| format!("--update-config {component}: {e}"))?;
        out.insert(component, parsed);
    }
    Ok(out)
}

/// Computes the configuration to run with: running → RESET → defaults → MERGE.
pub fn resolve(running: Option<&Value>, defaults: &Value, update: Option<&ConfigUpdate>) -> Value {
    let mut config = match running {
        Some(Value::Object(map)) => Value::Object(map.clone()),
        _ => Value::Object(Map::new()),
    };
    if let Some(update) = update {
        for pointer in &update.reset {
            reset(&mut config, pointer);
        }
    }
    merge_defaults(&mut config, defaults);
    if let Some(merge) = update.and_then(|u| u.merge.as_ref()) {
        deep_merge(&mut config, merge);
    }
    config
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Removes the node at `pointer` (RFC 6901); `""` clears everything. Missing paths are ignored.
pub fn reset(config: &mut Value, pointer: &str) {
    if pointer.is_empty() {
        *config = Value::Object(Map::new());
        return;
    }
    let tokens: Vec<String> = pointer.split('/').skip(1).map(unescape).collect();
    let Some((last, parents)) = tokens.split_last() else {
        return;
    };
    let mut node = config;
    for token in parents {
        match node.get_mut(token.as_str()) {
            Some(child) => node = child,
            None => return,
        }
    }
    if let Value::Object(map) = node {
        map.remove(last.as_str());
    }
}

/// Lets values that still hold the previous recipe's default follow the new recipe's default:
/// where `config` equals `old` the value becomes `new`'s (or goes, if `new` has none there).
/// Values a deployment or component changed stay. Runs before [`resolve`] when a component's
/// recipe changes, so an edited `DefaultConfiguration` takes effect without a RESET.
pub fn follow_defaults(config: &mut Value, old: &Value, new: &Value) {
    let (Value::Object(target), Value::Object(old)) = (config, old) else {
        return;
    };
    for (key, old_value) in old {
        let new_value = new.get(key);
        let Some(current) = target.get_mut(key) else {
            continue;
        };
        if current == old_value {
            match new_value {
                Some(v) => *current = v.clone(),
                None => {
                    target.remove(key);
                }
            }
        } else if let (Value::Object(_), Value::Object(_)) = (&*current, old_value) {
            let empty = Value::Object(Map::new());
            follow_defaults(current, old_value, new_value.unwrap_or(&empty));
        }
    }
}

/// Adds every key of `defaults` missing from `config`, recursing into objects present in both.
pub fn merge_defaults(config: &mut Value, defaults: &Value) {
    let (Value::Object(target), Value::Object(defaults)) = (config, defaults) else {
        return;
    };
    for (key, default) in defaults {
        match target.get_mut(key) {
            None => {
                target.insert(key.clone(), default.clone());
            }
            Some(existing @ Value::Object(_)) if default.is_object() => merge_defaults(existing, default),
            Some(_) => {}
        }
    }
}

pub use crate::json_merge::{deep_merge, merge_at};

/// Top-level keys whose values differ between `before` and `after`.
pub fn changed_keys(before: Option<&Value>, after: &Value) -> Vec<String> {
    let empty = Map::new();
    let before = before.and_then(Value::as_object).unwrap_or(&empty);
    let after_map = after.as_object().unwrap_or(&empty);
    let mut keys: Vec<String> = after_map
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .chain(before.keys().filter(|k| !after_map.contains_key(*k)).cloned())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn update(merge: Value, reset: &[&str]) -> ConfigUpdate {
        ConfigUpdate { merge: Some(merge), reset: reset.iter().map(|s| (*s).to_owned()).collect() }
    }

    #[test]
    fn tutorial_smart_light_merge_replaces_the_default_list() {
        let defaults = json!({"smartLightDeviceNames": [], "accessControl": {"x": 1}});
        let u = update(json!({"smartLightDeviceNames": ["MyClientDevice1"]}), &[]);
        let config = resolve(None, &defaults, Some(&u));
        assert_eq!(config, json!({"smartLightDeviceNames": ["MyClientDevice1"], "accessControl": {"x": 1}}));
        let u2 = update(json!({"smartLightDeviceNames": ["MyClientDevice2"]}), &[]);
        let config2 = resolve(Some(&config), &defaults, Some(&u2));
        assert_eq!(config2["smartLightDeviceNames"], json!(["MyClientDevice2"]), "lists replace whole");
    }

    #[test]
    fn tutorial_bridge_merges_accumulate_routes() {
        let step3 = update(
            json!({"mqttTopicMapping": {"HelloWorldIotCoreMapping": {"topic": "clients/+/hello/world", "source": "LocalMqtt", "target": "IotCore"}}}),
            &[],
        );
        let step4 = update(
            json!({"mqttTopicMapping": {"HelloWorldPubsubMapping": {"topic": "clients/+/hello/world", "source": "LocalMqtt", "target": "Pubsub"}}}),
            &[],
        );
        let c3 = resolve(None, &json!({}), Some(&step3));
        let c4 = resolve(Some(&c3), &json!({}), Some(&step4));
        assert_eq!(c4["mqttTopicMapping"].as_object().unwrap().len(), 2);
    }

    #[test]
    fn running_values_survive_and_reset_restores_defaults() {
        let defaults = json!({"a": 1, "nested": {"b": 2, "c": 3}});
        let running = json!({"a": 10, "nested": {"b": 20}, "extra": true});
        assert_eq!(
            resolve(Some(&running), &defaults, None),
            json!({"a": 10, "nested": {"b": 20, "c": 3}, "extra": true})
        );
        let u = ConfigUpdate { merge: None, reset: vec!["/a".to_owned(), "/nested/b".to_owned(), "/extra".to_owned()] };
        assert_eq!(resolve(Some(&running), &defaults, Some(&u)), json!({"a": 1, "nested": {"b": 2, "c": 3}}));
        let all = ConfigUpdate { merge: Some(json!({"z": 0})), reset: vec![String::new()] };
        assert_eq!(resolve(Some(&running), &defaults, Some(&all)), json!({"a": 1, "nested": {"b": 2, "c": 3}, "z": 0}));
    }

    #[test]
    fn merge_stores_nulls_and_empties_and_changes_types() {
        let running = json!({"a": {"b": 1}, "l": [1, 2]});
        let u = update(json!({"a": 5, "l": [], "n": null, "o": {}}), &[]);
        assert_eq!(resolve(Some(&running), &json!({}), Some(&u)), json!({"a": 5, "l": [], "n": null, "o": {}}));
    }

    #[test]
    fn pointers_unescape_and_ignore_missing_paths() {
        let mut config = json!({"a/b": 1, "m~n": 2, "x": {"y": 3}});
        reset(&mut config, "/a~1b");
        reset(&mut config, "/m~0n");
        reset(&mut config, "/x/missing/deeper");
        reset(&mut config, "/nothing");
        assert_eq!(config, json!({"x": {"y": 3}}));
    }

    #[test]
    fn malformed_updates_are_refused() {
        assert!(matches!(update(json!([1]), &[]).validate(), Err(UpdateError::MergeNotObject(_))));
        assert!(matches!(update(json!({}), &["a"]).validate(), Err(UpdateError::BadPointer(_))));
        assert_eq!(update(json!({}), &["", "/a"]).validate(), Ok(()));
    }

    #[test]
    fn update_documents_parse_like_greengrass_cli() {
        let text = r#"{"com.example.clientdevices.MySmartLightManager": {"MERGE": {"smartLightDeviceNames": ["MyClientDevice1"]}},
                       "b": {"reset": ["/x"], "Merge": {}}}"#;
        let updates = parse_updates(text).unwrap();
        assert_eq!(
            updates["com.example.clientdevices.MySmartLightManager"].merge,
            Some(json!({"smartLightDeviceNames": ["MyClientDevice1"]}))
        );
        assert_eq!(updates["b"].reset, vec!["/x".to_owned()]);
        for bad in [
            "[]",
            "{\"a\": 1}",
            "{\"a\": {\"MERGEE\": {}}}",
            "{\"a\": {\"RESET\": \"/x\"}}",
            "{\"a\": {\"MERGE\": [1]}}",
            "{",
        ] {
            assert!(parse_updates(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn untouched_defaults_follow_an_edited_recipe_and_overrides_stay() {
        let old = json!({"interval": 15, "colors": ["red"], "nested": {"a": 1, "b": 2}, "gone": true});
        let new = json!({"interval": 5, "colors": ["red", "blue"], "nested": {"a": 10, "b": 2}, "added": "x"});
        let mut running =
            json!({"interval": 30, "colors": ["red"], "nested": {"a": 1, "b": 3}, "gone": true, "own": 1});
        follow_defaults(&mut running, &old, &new);
        assert_eq!(running, json!({"interval": 30, "colors": ["red", "blue"], "nested": {"a": 10, "b": 3}, "own": 1}));
        let resolved = resolve(Some(&running), &new, None);
        assert_eq!(resolved["added"], json!("x"));
        // A type change in the old default, or a non-object config, is left alone.
        let mut scalar = json!(5);
        follow_defaults(&mut scalar, &old, &new);
        assert_eq!(scalar, json!(5));
    }

    #[test]
    fn merge_at_creates_the_path_and_merges_there() {
        let mut config = json!({"a": {"keep": 1}, "leaf": 5});
        merge_at(&mut config, &["a".to_owned(), "b".to_owned()], &json!({"c": 2}));
        merge_at(&mut config, &["leaf".to_owned()], &json!({"now": "object"}));
        merge_at(&mut config, &[], &json!({"top": true}));
        assert_eq!(config, json!({"a": {"keep": 1, "b": {"c": 2}}, "leaf": {"now": "object"}, "top": true}));
    }

    #[test]
    fn changed_keys_lists_added_removed_and_modified() {
        let before = json!({"a": 1, "b": 2, "c": 3});
        let after = json!({"a": 1, "b": 5, "d": 4});
        assert_eq!(changed_keys(Some(&before), &after), vec!["b", "c", "d"]);
        assert_eq!(changed_keys(None, &json!({"a": 1})), vec!["a"]);
    }
}
