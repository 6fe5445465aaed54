//! Recipe variables: `{artifacts:path}`, `{configuration:/ptr}`, `{iot:thingName}` and friends.
//!
//! Interpolated in lifecycle scripts as Greengrass does: `{namespace:key}` and
//! `{component:namespace:key}` (the latter only for direct dependencies); a variable that cannot
//! be resolved is left verbatim. Configuration values become strings; objects and lists become
//! their JSON text. Pure logic: no I/O.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::LazyLock;

use regex::{Captures, Regex};
use serde_json::Value;

/// What one component's variables resolve to.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// `{artifacts:path}`.
    pub artifacts_path: PathBuf,
    /// `{artifacts:decompressedPath}`.
    pub decompressed_path: PathBuf,
    /// `{work:path}`.
    pub work_path: PathBuf,
    /// The component's configuration, for `{configuration:/ptr}`.
    pub configuration: Value,
}

/// Everything interpolation can see.
#[derive(Debug, Clone, Default)]
pub struct Variables {
    /// `{iot:thingName}`: the core device's thing name.
    pub thing_name: String,
    /// `{kernel:rootPath}`.
    pub root_path: PathBuf,
    /// The component being interpolated.
    pub own: Scope,
    /// Its direct dependencies, for `{<dep>:artifacts:path}` etc.
    pub dependencies: BTreeMap<String, Scope>,
}

static THREE_PART: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"\{([.\w-]+):([.\w-]+):([^:}]*)\}").ok());
static TWO_PART: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"\{([.\w-]+):([^:}]*)\}").ok());

fn scope_value(scope: &Scope, namespace: &str, key: &str) -> Option<String> {
    match (namespace, key) {
        ("artifacts", "path") => Some(scope.artifacts_path.display().to_string()),
        ("artifacts", "decompressedPath") => Some(scope.decompressed_path.display().to_string()),
        ("work", "path") => Some(scope.work_path.display().to_string()),
        ("configuration", pointer) => scope.configuration.pointer(pointer).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
        _ => None,
    }
}

impl Variables {
    /// Replaces every resolvable variable in `text`.
    pub fn interpolate(&self, text: &str) -> String {
        let with_deps = match THREE_PART.as_ref() {
            Some(re) => re
                .replace_all(text, |c: &Captures<'_>| {
                    self.dependencies
                        .get(&c[1])
                        .and_then(|scope| scope_value(scope, &c[2], &c[3]))
                        .unwrap_or_else(|| c[0].to_owned())
                })
                .into_owned(),
            None => text.to_owned(),
        };
        match TWO_PART.as_ref() {
            Some(re) => re
                .replace_all(&with_deps, |c: &Captures<'_>| {
                    let resolved = match (&c[1], &c[2]) {
                        ("iot", "thingName") => Some(self.thing_name.clone()),
                        ("kernel", "rootPath") => Some(self.root_path.display().to_string()),
                        (namespace, key) => scope_value(&self.own, namespace, key),
                    };
                    resolved.unwrap_or_else(|| c[0].to_owned())
                })
                .into_owned(),
            None => with_deps,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars() -> Variables {
        let own = Scope {
            artifacts_path: PathBuf::from("/r/packages/artifacts/c/1.0.0"),
            decompressed_path: PathBuf::from("/r/packages/artifacts-unarchived/c/1.0.0"),
            work_path: PathBuf::from("/r/work/c"),
            configuration: json!({"Message": "world", "n": 3, "o": {"a": [1]}}),
        };
        let dep = Scope { artifacts_path: PathBuf::from("/r/packages/artifacts/d/2.0.0"), ..Scope::default() };
        Variables {
            thing_name: "Core".to_owned(),
            root_path: PathBuf::from("/r"),
            own,
            dependencies: [("com.example.Dep".to_owned(), dep)].into_iter().collect(),
        }
    }

    #[test]
    fn known_variables_resolve() {
        let v = vars();
        assert_eq!(v.interpolate("{artifacts:path}/hello.wasm"), "/r/packages/artifacts/c/1.0.0/hello.wasm");
        assert_eq!(v.interpolate("{work:path} {kernel:rootPath} {iot:thingName}"), "/r/work/c /r Core");
        assert_eq!(
            v.interpolate("{configuration:/Message} {configuration:/n} {configuration:/o}"),
            r#"world 3 {"a":[1]}"#
        );
        assert_eq!(v.interpolate("{com.example.Dep:artifacts:path}/x"), "/r/packages/artifacts/d/2.0.0/x");
    }

    #[test]
    fn unknown_variables_stay_verbatim() {
        let v = vars();
        for text in ["{configuration:/missing}", "{nope:x}", "{other.Comp:artifacts:path}", "{", "{}", "{a:b:c:d}"] {
            assert_eq!(v.interpolate(text), text);
        }
    }
}
