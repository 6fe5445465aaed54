//! `turf:host/config`: reading this or another component's configuration (no policy needed, as
//! in Greengrass `GetConfiguration`).

use serde_json::{Map, Value};
use thiserror::Error;

use crate::components::bindings::turf::host::config;
use crate::components::bindings::turf::host::types::Error;
use crate::components::instance::HostState;

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
