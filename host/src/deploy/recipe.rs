//! Component recipes (`RecipeFormatVersion: 2020-01-25`), JSON or YAML, keys case-insensitive.
//!
//! Parsed in two layers: the file becomes a JSON value, then [`Recipe::from_value`] validates it
//! into the domain type, naming the file and field path of anything wrong
//! (`Manifests[0].Lifecycle.Run`). The manifest for this platform is chosen as Greengrass does
//! (first match wins; `*` matches anything, `/regex/` is a regular expression). A Turf component
//! is a manifest whose `Lifecycle.Run` names a `.wasm` artifact. Pure logic plus reading the file.

mod sections;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};
use thiserror::Error;

use self::sections::{choose_manifest, parse_configuration, parse_dependencies};
use super::semver_range::VersionRange;
use crate::components::limits::LimitOverrides;

/// The only recipe format version.
pub const FORMAT_VERSION: &str = "2020-01-25";

/// A recipe that could not be read or validated.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{file}: {field}: {problem}")]
pub struct RecipeError {
    /// The recipe file (or `<inline>`).
    pub file: String,
    /// Field path inside the recipe.
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

/// How a dependency restarts its dependant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DependencyType {
    /// The dependant restarts when the dependency changes state (default).
    Hard,
    /// No restart.
    Soft,
}

/// One entry of `ComponentDependencies`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The npm-style version range, as written and parsed.
    pub requirement: VersionRange,
    /// HARD or SOFT.
    pub kind: DependencyType,
}

/// The platform this host presents to `Manifests[].Platform`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// Key → value (`os`, `architecture`, `runtime`).
    pub attributes: BTreeMap<String, String>,
}

impl Platform {
    /// The platform Turf runs on.
    pub fn current() -> Self {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "aarch64",
            "arm" => "arm",
            "x86" => "x86",
            other => other,
        };
        let attributes = [("os", std::env::consts::OS), ("architecture", architecture), ("runtime", "turf")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Self { attributes }
    }
}

/// A validated recipe with the manifest chosen for this platform.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    /// `ComponentName`.
    pub name: String,
    /// `ComponentVersion`.
    pub version: semver::Version,
    /// `ComponentDescription`.
    pub description: Option<String>,
    /// `ComponentPublisher`.
    pub publisher: Option<String>,
    /// `ComponentDependencies`.
    pub dependencies: BTreeMap<String, Dependency>,
    /// `ComponentConfiguration.DefaultConfiguration` (an object).
    pub default_configuration: Value,
    /// `Lifecycle.Run` of the chosen manifest, before variable interpolation.
    pub run: String,
    /// Index of the chosen manifest.
    pub manifest_index: usize,
    /// `SystemResourceLimits`: what this component may use (Turf reads Greengrass's `memory`
    /// and `cpus` and its own keys from the recipe; see [`parse_limits`]).
    pub limits: LimitOverrides,
    /// The recipe as written, for storing and `turf component details`.
    pub document: Value,
}

impl fmt::Display for Recipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.version)
    }
}

/// Case-insensitive view of a JSON object.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Fields<'a> {
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
    }

    fn at(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_owned() } else { format!("{}.{key}", self.path) }
    }

    fn unknown(&self, allowed: &[&str]) -> Option<&'a str> {
        self.map.keys().find(|k| !allowed.iter().any(|a| a.eq_ignore_ascii_case(k))).map(String::as_str)
    }
}

struct Ctx<'a> {
    file: &'a str,
}

impl Ctx<'_> {
    fn err(&self, field: impl Into<String>, problem: impl Into<String>) -> RecipeError {
        RecipeError { file: self.file.to_owned(), field: field.into(), problem: problem.into() }
    }

    fn object<'v>(&self, value: &'v Value, path: &str) -> Result<Fields<'v>, RecipeError> {
        match value {
            Value::Object(map) => Ok(Fields { map, path: path.to_owned() }),
            other => Err(self.err(path, format!("must be an object, found {}", kind(other)))),
        }
    }

    fn string(&self, fields: &Fields<'_>, key: &str, required: bool) -> Result<Option<String>, RecipeError> {
        match fields.get(key) {
            None | Some(Value::Null) if !required => Ok(None),
            None | Some(Value::Null) => Err(self.err(fields.at(key), "is required")),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.err(fields.at(key), format!("must be a string, found {}", kind(other)))),
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Reads and validates the recipe file at `path` (`.json`, `.yaml` or `.yml`).
pub fn load(path: &Path, platform: &Platform) -> Result<Recipe, RecipeError> {
    let file = path.display().to_string();
    let err = |problem: String| RecipeError { file: file.clone(), field: "(file)".to_owned(), problem };
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
    parse(&text, path, platform)
}

/// Parses and validates recipe text as if read from `path` (its extension picks JSON or YAML).
pub fn parse(text: &str, path: &Path, platform: &Platform) -> Result<Recipe, RecipeError> {
    let file = path.display().to_string();
    let value = parse_text(text, path).map_err(|problem| RecipeError {
        file: file.clone(),
        field: "(file)".to_owned(),
        problem,
    })?;
    Recipe::from_value(&value, &file, platform)
}

/// True for file names Greengrass reads as recipes.
pub fn is_recipe_file(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("json" | "yaml" | "yml"))
}

fn parse_text(text: &str, path: &Path) -> Result<Value, String> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}")),
        _ => serde_yaml_ng::from_str(text).map_err(|e| format!("invalid YAML: {e}")),
    }
}

/// Finds every recipe file under `dir` (recursively), sorted by path.
pub fn recipe_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if is_recipe_file(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

const TOP_LEVEL: &[&str] = &[
    "RecipeFormatVersion",
    "ComponentName",
    "ComponentVersion",
    "ComponentDescription",
    "ComponentPublisher",
    "ComponentType",
    "ComponentSource",
    "ComponentConfiguration",
    "ComponentDependencies",
    "Manifests",
    "Lifecycle",
    "SystemResourceLimits",
];

impl Recipe {
    /// Validates a parsed recipe document; `file` names it in errors.
    pub fn from_value(value: &Value, file: &str, platform: &Platform) -> Result<Self, RecipeError> {
        let cx = Ctx { file };
        let top = cx.object(value, "")?;
        if let Some(key) = top.unknown(TOP_LEVEL) {
            return Err(cx.err(key, format!("unknown recipe field; expected one of {}", TOP_LEVEL.join(", "))));
        }
        let format = cx.string(&top, "RecipeFormatVersion", true)?.unwrap_or_default();
        if format != FORMAT_VERSION {
            return Err(cx.err("RecipeFormatVersion", format!("{format:?} is not supported; use \"{FORMAT_VERSION}\"")));
        }
        let name = cx.string(&top, "ComponentName", true)?.unwrap_or_default();
        validate_component_name(&name).map_err(|p| cx.err("ComponentName", p))?;
        let version_text = cx.string(&top, "ComponentVersion", true)?.unwrap_or_default();
        let version = semver::Version::parse(&version_text)
            .map_err(|e| cx.err("ComponentVersion", format!("{version_text:?} is not a semantic version: {e}")))?;
        if let Some(kind) = cx.string(&top, "ComponentType", false)?
            && kind != "aws.greengrass.generic"
        {
            return Err(cx.err(
                "ComponentType",
                format!("{kind:?} is not supported; Turf runs aws.greengrass.generic components"),
            ));
        }
        let dependencies = parse_dependencies(&cx, &top)?;
        let default_configuration = parse_configuration(&cx, &top)?;
        let (manifest_index, run) = choose_manifest(&cx, &top, platform)?;
        let limits = parse_limits(&cx, &top)?;
        Ok(Self {
            name,
            version,
            description: cx.string(&top, "ComponentDescription", false)?,
            publisher: cx.string(&top, "ComponentPublisher", false)?,
            dependencies,
            default_configuration,
            run,
            manifest_index,
            limits,
            document: value.clone(),
        })
    }
}

/// Keys of `SystemResourceLimits`, with what each accepts.
const LIMIT_KEYS: &[&str] = &["memory", "cpus", "callTimeoutMs", "initTimeoutMs", "queueMessages", "publishRate"];

/// `SystemResourceLimits`: `memory` (KiB), `cpus` (share of the component thread),
/// `callTimeoutMs`, `initTimeoutMs`, `queueMessages`, `publishRate`; ranges in
/// [`crate::components::limits::limit_ranges`].
fn parse_limits(cx: &Ctx<'_>, top: &Fields<'_>) -> Result<LimitOverrides, RecipeError> {
    use crate::components::limits::limit_ranges::*;
    let Some(value) = top.get("SystemResourceLimits").filter(|v| !v.is_null()) else {
        return Ok(LimitOverrides::default());
    };
    let fields = cx.object(value, "SystemResourceLimits")?;
    if let Some(key) = fields.unknown(LIMIT_KEYS) {
        return Err(cx.err(fields.at(key), format!("unknown limit; expected one of {}", LIMIT_KEYS.join(", "))));
    }
    let number = |key: &str, range: (f64, f64)| -> Result<Option<f64>, RecipeError> {
        match fields.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => check(n.as_f64(), range).map_err(|e| cx.err(fields.at(key), e)),
            Some(other) => Err(cx.err(fields.at(key), format!("must be a number, found {}", kind(other)))),
        }
    };
    let millis = |v: f64| Duration::from_millis(v as u64);
    Ok(LimitOverrides {
        memory_bytes: number("memory", MEMORY_KIB)?.map(kib_to_bytes),
        cpus: number("cpus", CPUS)?,
        call_budget: number("callTimeoutMs", CALL_TIMEOUT_MS)?.map(millis),
        init_budget: number("initTimeoutMs", INIT_TIMEOUT_MS)?.map(millis),
        queue_messages: number("queueMessages", QUEUE_MESSAGES)?.map(|v| v as usize),
        publish_rate: number("publishRate", PUBLISH_RATE)?.map(|v| v as u32),
    })
}

/// Greengrass's component name rule: `[a-zA-Z0-9-_.]+`, at most 128 characters.
pub fn validate_component_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 128 {
        return Err(format!("{name:?} must be 1 to 128 characters long"));
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        return Err(format!("{name:?} contains {bad:?}; only letters, digits, '-', '_' and '.' are allowed"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
