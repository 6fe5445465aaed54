//! Deep-merging JSON configuration, as Greengrass's MERGE and `UpdateConfiguration` do. A
//! leaf: the deployment pipeline and the components' `config` interface both use it.

use serde_json::{Map, Value};

/// Deep-merges `patch` into `config`: objects key by key, everything else replaces.
pub fn deep_merge(config: &mut Value, patch: &Value) {
    match (config, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                match target.get_mut(key) {
                    Some(existing) if existing.is_object() && value.is_object() => deep_merge(existing, value),
                    _ => {
                        target.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (config, patch) => *config = patch.clone(),
    }
}

/// Deep-merges `value` into `config` at `key_path`, creating (or replacing non-objects with)
/// objects along the way (Greengrass `UpdateConfiguration`).
pub fn merge_at(config: &mut Value, key_path: &[String], value: &Value) {
    let mut node = config;
    for key in key_path {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        let Value::Object(map) = node else { return };
        node = map.entry(key.clone()).or_insert_with(|| Value::Object(Map::new()));
    }
    deep_merge(node, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_merge_key_by_key_and_everything_else_replaces() {
        let mut config = json!({"a": {"b": 1, "c": [1]}, "d": "x"});
        deep_merge(&mut config, &json!({"a": {"c": [2], "e": null}, "d": {"f": 1}}));
        assert_eq!(config, json!({"a": {"b": 1, "c": [2], "e": null}, "d": {"f": 1}}));
    }

    #[test]
    fn merging_at_a_path_creates_or_replaces_what_is_in_the_way() {
        let mut config = json!({"a": 5});
        merge_at(&mut config, &["a".to_owned(), "b".to_owned()], &json!({"c": true}));
        assert_eq!(config, json!({"a": {"b": {"c": true}}}));
        let mut scalar = json!(3);
        merge_at(&mut scalar, &[], &json!({"k": 1}));
        assert_eq!(scalar, json!({"k": 1}));
    }
}
