//! `turf:host/config`: reading this or another component's configuration (no policy needed, as
//! in Greengrass `GetConfiguration`), updating its own, and subscribing to changes.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};
use thiserror::Error;

use crate::components::bindings::turf::host::config;
use crate::components::bindings::turf::host::types::Error;
use crate::components::budget::Usage;
use crate::components::instance::{ConfigSnapshot, HostState};
use crate::components::{ConfigUpdateError, UpdateConfiguration};
use crate::json_merge::merge_at;

/// Largest `valueToMerge` accepted (each update is stored and pushed to every component).
const MAX_UPDATE_BYTES: usize = 64 << 10;
/// Configuration paths one component may watch (each is compared on every configuration change).
const MAX_CONFIG_SUBSCRIPTIONS: usize = 256;

/// The value at `key_path` in `config`, if any.
fn value_at<'a>(config: Option<&'a Value>, key_path: &[String]) -> Option<&'a Value> {
    key_path.iter().try_fold(config?, |node, key| node.get(key))
}

/// The subscriptions (component, key path) whose value differs between `old` and `new`.
pub(crate) fn changed_subscriptions(
    old: &ConfigSnapshot,
    new: &ConfigSnapshot,
    subscriptions: &[(String, Vec<String>)],
) -> Vec<(String, Vec<String>)> {
    subscriptions
        .iter()
        .filter(|(component, path)| value_at(old.get(component), path) != value_at(new.get(component), path))
        .cloned()
        .collect()
}

/// Why a key path could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigPathError {
    /// A key on the path does not exist.
    #[error("Key not found: {0}")]
    KeyNotFound(String),
    /// A key on the path is empty.
    #[error("key path element {0} is empty")]
    EmptyKey(usize),
}

/// Reads `key_path` in `config` with Greengrass `GetConfiguration` semantics: an empty path is
/// the whole object, an object is returned as is, a leaf as `{"<leaf key>": value}`.
pub(crate) fn read_config(config: &Value, key_path: &[String]) -> Result<Value, ConfigPathError> {
    let mut node = config;
    for (i, key) in key_path.iter().enumerate() {
        if key.is_empty() {
            return Err(ConfigPathError::EmptyKey(i));
        }
        node = node.get(key).ok_or_else(|| ConfigPathError::KeyNotFound(key_path[..=i].join("/")))?;
    }
    match (node, key_path.last()) {
        (Value::Object(_), _) | (_, None) => Ok(node.clone()),
        (leaf, Some(key)) => {
            let mut wrapped = Map::new();
            wrapped.insert(key.clone(), leaf.clone());
            Ok(Value::Object(wrapped))
        }
    }
}

impl config::Host for HostState {
    async fn get_configuration(&mut self, component: Option<String>, key_path: Vec<String>) -> Result<String, Error> {
        let name = component.unwrap_or_else(|| self.name.clone());
        let config = self
            .configs
            .get(&name)
            .ok_or_else(|| Error::ResourceNotFound(format!("component {name} is not deployed")))?;
        let value = read_config(config, &key_path).map_err(|e| match e {
            ConfigPathError::KeyNotFound(_) => Error::ResourceNotFound(e.to_string()),
            ConfigPathError::EmptyKey(_) => Error::InvalidArguments(e.to_string()),
        })?;
        Ok(value.to_string())
    }

    async fn update_configuration(&mut self, key_path: Vec<String>, value_to_merge: String) -> Result<(), Error> {
        if value_to_merge.len() > MAX_UPDATE_BYTES {
            Usage::add(&self.usage.refused_config_updates, 1);
            return Err(Error::InvalidArguments(format!(
                "valueToMerge is {} bytes; at most {MAX_UPDATE_BYTES} are accepted",
                value_to_merge.len()
            )));
        }
        if !self.config_updates.take(1.0, Instant::now()) {
            Usage::add(&self.usage.refused_config_updates, 1);
            return Err(Error::ServiceError(
                "too many configuration updates: at most 1 a second (bursts of 10); try again later".to_owned(),
            ));
        }
        let value: Value = serde_json::from_str(&value_to_merge)
            .map_err(|e| Error::InvalidArguments(format!("valueToMerge is not valid JSON: {e}")))?;
        if !value.is_object() {
            return Err(Error::InvalidArguments("valueToMerge must be a JSON object".to_owned()));
        }
        let touches_access = match key_path.first() {
            Some(first) => first == "accessControl",
            None => value.get("accessControl").is_some(),
        };
        if touches_access {
            return Err(Error::InvalidArguments(
                "Config update is not allowed for following fields [accessControl]".to_owned(),
            ));
        }
        if let Some(i) = key_path.iter().position(String::is_empty) {
            return Err(Error::InvalidArguments(format!("key path element {i} is empty")));
        }
        let request =
            UpdateConfiguration { component: self.name.clone(), key_path: key_path.clone(), value: value.clone() };
        let update_config = self.services.config_store.clone();
        update_config
            .send(request)
            .await
            .map_err(|e| Error::ServiceError(format!("configuration store unavailable: {e}")))?
            .map_err(|refusal| match refusal {
                ConfigUpdateError::NotDeployed(_) => Error::InvalidArguments(refusal.to_string()),
                ConfigUpdateError::Save { .. } => Error::ServiceError(refusal.to_string()),
            })?;
        let mut configs = (*self.configs).clone();
        merge_at(configs.entry(self.name.clone()).or_insert_with(|| Value::Object(Map::new())), &key_path, &value);
        self.configs = Arc::new(configs);
        Ok(())
    }

    async fn subscribe_to_configuration_update(
        &mut self,
        component: Option<String>,
        key_path: Vec<String>,
    ) -> Result<(), Error> {
        let subscription = (component.unwrap_or_else(|| self.name.clone()), key_path);
        if self.config_subscriptions.contains(&subscription) {
            return Ok(());
        }
        let size = subscription.0.len() + subscription.1.iter().map(String::len).sum::<usize>();
        if self.config_subscriptions.len() >= MAX_CONFIG_SUBSCRIPTIONS || size > MAX_UPDATE_BYTES {
            Usage::add(&self.usage.refused_config_updates, 1);
            return Err(Error::InvalidArguments(format!(
                "a component may watch at most {MAX_CONFIG_SUBSCRIPTIONS} configuration paths of at most {MAX_UPDATE_BYTES} bytes each"
            )));
        }
        self.config_subscriptions.push(subscription);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(keys: &[&str]) -> Vec<String> {
        keys.iter().map(|k| (*k).to_owned()).collect()
    }

    #[test]
    fn leaves_come_wrapped_in_their_key_and_objects_as_is() {
        let config = json!({"smartLightDeviceNames": ["MyClientDevice1"], "a": {"b": 1}});
        assert_eq!(
            read_config(&config, &path(&["smartLightDeviceNames"])).unwrap(),
            json!({"smartLightDeviceNames": ["MyClientDevice1"]})
        );
        assert_eq!(read_config(&config, &path(&["a"])).unwrap(), json!({"b": 1}));
        assert_eq!(read_config(&config, &path(&["a", "b"])).unwrap(), json!({"b": 1}));
        assert_eq!(read_config(&config, &[]).unwrap(), config);
    }

    #[test]
    fn only_subscriptions_whose_value_changed_fire() {
        let old: ConfigSnapshot = [("c".to_owned(), json!({"names": ["a"], "other": 1}))].into_iter().collect();
        let new: ConfigSnapshot = [("c".to_owned(), json!({"names": ["a", "b"], "other": 1}))].into_iter().collect();
        let subs = vec![
            ("c".to_owned(), path(&["names"])),
            ("c".to_owned(), path(&["other"])),
            ("c".to_owned(), path(&[])),
            ("gone".to_owned(), path(&["x"])),
        ];
        assert_eq!(
            changed_subscriptions(&old, &new, &subs),
            vec![("c".to_owned(), path(&["names"])), ("c".to_owned(), path(&[]))]
        );
    }

    #[test]
    fn missing_and_empty_keys_are_reported() {
        let config = json!({"a": {"b": 1}});
        assert_eq!(read_config(&config, &path(&["a", "x"])), Err(ConfigPathError::KeyNotFound("a/x".to_owned())));
        assert_eq!(
            read_config(&config, &path(&["a", "b", "c"])),
            Err(ConfigPathError::KeyNotFound("a/b/c".to_owned()))
        );
        assert_eq!(read_config(&config, &path(&["", "b"])), Err(ConfigPathError::EmptyKey(0)));
    }
}
