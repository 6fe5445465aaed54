//! Component recipes (`RecipeFormatVersion: 2020-01-25`), JSON or YAML, keys case-insensitive.
//!
//! Parsed in two layers: the file becomes a JSON value, then [`Recipe::from_value`] validates it
//! into the domain type, naming the file and field path of anything wrong
//! (`Manifests[0].Lifecycle.Run`). The manifest for this platform is chosen as Greengrass does
//! (first match wins; `*` matches anything, `/regex/` is a regular expression). A Turf component
//! is a manifest whose `Lifecycle.Run` names a `.wasm` artifact. Pure logic plus reading the file.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};
use thiserror::Error;

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

fn parse_dependencies(cx: &Ctx<'_>, top: &Fields<'_>) -> Result<BTreeMap<String, Dependency>, RecipeError> {
    let mut out = BTreeMap::new();
    let Some(value) = top.get("ComponentDependencies").filter(|v| !v.is_null()) else {
        return Ok(out);
    };
    let deps = cx.object(value, "ComponentDependencies")?;
    for (name, spec) in deps.map {
        let path = format!("ComponentDependencies.{name}");
        let fields = cx.object(spec, &path)?;
        if let Some(key) = fields.unknown(&["VersionRequirement", "DependencyType"]) {
            return Err(cx.err(fields.at(key), "unknown field; expected VersionRequirement or DependencyType"));
        }
        let text = cx.string(&fields, "VersionRequirement", false)?.unwrap_or_else(|| "*".to_owned());
        let requirement =
            VersionRange::parse(&text).map_err(|e| cx.err(fields.at("VersionRequirement"), e.to_string()))?;
        let kind = match cx.string(&fields, "DependencyType", false)?.as_deref() {
            None => DependencyType::Hard,
            Some(t) if t.eq_ignore_ascii_case("HARD") => DependencyType::Hard,
            Some(t) if t.eq_ignore_ascii_case("SOFT") => DependencyType::Soft,
            Some(other) => {
                return Err(cx.err(fields.at("DependencyType"), format!("{other:?} is not HARD or SOFT")));
            }
        };
        out.insert(name.clone(), Dependency { requirement, kind });
    }
    Ok(out)
}

fn parse_configuration(cx: &Ctx<'_>, top: &Fields<'_>) -> Result<Value, RecipeError> {
    let Some(value) = top.get("ComponentConfiguration").filter(|v| !v.is_null()) else {
        return Ok(Value::Object(Map::new()));
    };
    let fields = cx.object(value, "ComponentConfiguration")?;
    if let Some(key) = fields.unknown(&["DefaultConfiguration"]) {
        return Err(cx.err(fields.at(key), "unknown field; expected DefaultConfiguration"));
    }
    match fields.get("DefaultConfiguration") {
        None | Some(Value::Null) => Ok(Value::Object(Map::new())),
        Some(config @ Value::Object(_)) => Ok(config.clone()),
        Some(other) => {
            Err(cx.err(fields.at("DefaultConfiguration"), format!("must be an object, found {}", kind(other))))
        }
    }
}

fn platform_matches(cx: &Ctx<'_>, platform: &Platform, spec: &Fields<'_>) -> Result<bool, RecipeError> {
    for (key, wanted) in spec.map {
        let path = spec.at(key);
        let Value::String(wanted) = wanted else {
            return Err(cx.err(path, format!("must be a string, found {}", kind(wanted))));
        };
        let have = platform.attributes.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str());
        let ok = if wanted == "*" {
            true
        } else if let Some(pattern) = wanted.strip_prefix('/').and_then(|w| w.strip_suffix('/')) {
            let re = regex::Regex::new(&format!("^(?:{pattern})$"))
                .map_err(|e| cx.err(&path, format!("invalid regular expression: {e}")))?;
            have.is_some_and(|h| re.is_match(h))
        } else {
            have.is_some_and(|h| h.eq_ignore_ascii_case(wanted))
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn choose_manifest(cx: &Ctx<'_>, top: &Fields<'_>, platform: &Platform) -> Result<(usize, String), RecipeError> {
    let manifests = match top.get("Manifests") {
        Some(Value::Array(list)) if !list.is_empty() => list,
        Some(Value::Array(_)) | None | Some(Value::Null) => {
            return Err(
                cx.err("Manifests", "must list at least one manifest with Lifecycle.Run naming a .wasm artifact")
            );
        }
        Some(other) => {
            return Err(cx.err("Manifests", format!("must be a list, found {}", kind(other))));
        }
    };
    for (i, manifest) in manifests.iter().enumerate() {
        let path = format!("Manifests[{i}]");
        let fields = cx.object(manifest, &path)?;
        if let Some(key) = fields.unknown(&["Name", "Platform", "Lifecycle", "Selections", "Artifacts"]) {
            return Err(cx.err(
                fields.at(key),
                "unknown manifest field; expected Name, Platform, Lifecycle, Selections, Artifacts",
            ));
        }
        let matches = match fields.get("Platform") {
            None | Some(Value::Null) => true,
            Some(spec) => platform_matches(cx, platform, &cx.object(spec, &fields.at("Platform"))?)?,
        };
        if !matches {
            continue;
        }
        let lifecycle = match fields.get("Lifecycle").or_else(|| top.get("Lifecycle")) {
            Some(l) => cx.object(l, &fields.at("Lifecycle"))?,
            None => {
                return Err(cx.err(fields.at("Lifecycle"), "is required: Run must name the component's .wasm artifact"));
            }
        };
        let run = match lifecycle.get("Run") {
            Some(Value::String(run)) => run.trim().to_owned(),
            Some(Value::Object(step)) => match step.iter().find(|(k, _)| k.eq_ignore_ascii_case("Script")) {
                Some((_, Value::String(script))) => script.trim().to_owned(),
                _ => return Err(cx.err(lifecycle.at("Run.Script"), "is required")),
            },
            Some(other) => return Err(cx.err(lifecycle.at("Run"), format!("must be a string, found {}", kind(other)))),
            None => {
                return Err(cx.err(
                    lifecycle.at("Run"),
                    "is required: name the component's .wasm artifact, e.g. {artifacts:path}/component.wasm",
                ));
            }
        };
        if !run.ends_with(".wasm") || run.contains(char::is_whitespace) {
            return Err(cx.err(
                lifecycle.at("Run"),
                format!("{run:?} is not a WebAssembly artifact; Turf runs components as .wasm files, e.g. {{artifacts:path}}/component.wasm"),
            ));
        }
        return Ok((i, run));
    }
    let have: Vec<String> = platform.attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Err(cx.err("Manifests", format!("no manifest matches this platform ({})", have.join(", "))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits_of(limits: Value) -> Result<LimitOverrides, RecipeError> {
        let mut recipe = json!({
            "RecipeFormatVersion": "2020-01-25", "ComponentName": "com.example.L", "ComponentVersion": "1.0.0",
            "Manifests": [{"Lifecycle": {"Run": "{artifacts:path}/l.wasm"}}],
        });
        recipe["SystemResourceLimits"] = limits;
        Recipe::from_value(&recipe, "l.json", &Platform::current()).map(|r| r.limits)
    }

    #[test]
    fn system_resource_limits_are_read_in_greengrass_units() {
        let limits = limits_of(json!({"memory": 16384, "cpus": 0.25, "callTimeoutMs": 250, "initTimeoutMs": 2000,
            "queueMessages": 10, "publishRate": 50}))
        .unwrap();
        assert_eq!(limits.memory_bytes, Some(16 << 20), "memory is in KiB");
        assert_eq!(limits.cpus, Some(0.25));
        assert_eq!(limits.call_budget, Some(Duration::from_millis(250)));
        assert_eq!(limits.init_budget, Some(Duration::from_secs(2)));
        assert_eq!((limits.queue_messages, limits.publish_rate), (Some(10), Some(50)));
        assert_eq!(limits_of(Value::Null).unwrap(), LimitOverrides::default());
    }

    #[test]
    fn hostile_limits_are_refused_with_the_field_named() {
        for (limits, field, problem) in [
            (json!({"memory": 1e12}), "SystemResourceLimits.memory", "out of range"),
            (json!({"memory": -1}), "SystemResourceLimits.memory", "out of range"),
            (json!({"cpus": 2}), "SystemResourceLimits.cpus", "out of range"),
            (json!({"callTimeoutMs": "1000"}), "SystemResourceLimits.callTimeoutMs", "must be a number"),
            (json!({"callTimeoutMs": 0}), "SystemResourceLimits.callTimeoutMs", "out of range"),
            (json!({"swap": 1}), "SystemResourceLimits.swap", "unknown limit"),
            (json!([1]), "SystemResourceLimits", "must be an object"),
        ] {
            let error = limits_of(limits).unwrap_err();
            assert_eq!(error.field, field);
            assert!(error.problem.contains(problem), "{}", error.problem);
        }
    }

    fn hello() -> Value {
        json!({
          "RecipeFormatVersion": "2020-01-25",
          "ComponentName": "com.example.clientdevices.MyHelloWorldSubscriber",
          "ComponentVersion": "1.0.0",
          "ComponentDescription": "A component that subscribes to Hello World messages from client devices.",
          "ComponentPublisher": "Amazon",
          "ComponentConfiguration": {"DefaultConfiguration": {"accessControl": {"aws.greengrass.ipc.pubsub": {
              "com.example.clientdevices.MyHelloWorldSubscriber:pubsub:1": {
                "policyDescription": "Allows access to subscribe to all topics.",
                "operations": ["aws.greengrass#SubscribeToTopic"], "resources": ["*"]}}}}},
          "Manifests": [
            {"Platform": {"os": "windows"}, "Lifecycle": {"Run": "{artifacts:path}/other.wasm"}},
            {"Platform": {"os": "linux"}, "Lifecycle": {"Run": "{artifacts:path}/hello_world_subscriber.wasm"}}
          ]
        })
    }

    fn linux() -> Platform {
        Platform {
            attributes: [("os", "linux"), ("architecture", "amd64"), ("runtime", "turf")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    #[test]
    fn tutorial_shaped_recipe_parses_and_picks_the_linux_manifest() {
        let recipe = Recipe::from_value(&hello(), "r.json", &linux()).unwrap();
        assert_eq!(recipe.name, "com.example.clientdevices.MyHelloWorldSubscriber");
        assert_eq!(recipe.version, semver::Version::new(1, 0, 0));
        assert_eq!(recipe.manifest_index, 1);
        assert_eq!(recipe.run, "{artifacts:path}/hello_world_subscriber.wasm");
        assert!(recipe.default_configuration["accessControl"].is_object());
    }

    #[test]
    fn keys_are_case_insensitive() {
        let text = serde_json::to_string(&hello())
            .unwrap()
            .replace("ComponentName", "componentname")
            .replace("Manifests", "MANIFESTS");
        let value: Value = serde_json::from_str(&text).unwrap();
        assert!(Recipe::from_value(&value, "r.json", &linux()).is_ok());
    }

    #[test]
    fn yaml_recipes_with_dependencies_parse() {
        let yaml = "RecipeFormatVersion: '2020-01-25'\nComponentName: com.example.Y\nComponentVersion: '1.2.3'\n\
                    ComponentDependencies:\n  aws.greengrass.Nucleus:\n    VersionRequirement: '^2.6.0'\n    DependencyType: SOFT\n\
                    Manifests:\n  - Platform: { os: '/lin.x/' }\n    Lifecycle:\n      Run: '{artifacts:path}/y.wasm'\n";
        let value = parse_text(yaml, Path::new("y.yaml")).unwrap();
        let recipe = Recipe::from_value(&value, "y.yaml", &linux()).unwrap();
        let dep = &recipe.dependencies["aws.greengrass.Nucleus"];
        assert_eq!(dep.kind, DependencyType::Soft);
        assert!(dep.requirement.matches(&semver::Version::new(2, 14, 0)));
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let mut python = hello();
        python["Manifests"][1]["Lifecycle"]["Run"] = json!("python3 -u {artifacts:path}/hello_world_subscriber.py");
        let cases = [
            (json!([]), ""),
            (json!({"RecipeFormatVersion": "2020-01-25"}), "ComponentName"),
            (json!({"RecipeFormatVersion": "1999"}), "RecipeFormatVersion"),
            (python, "Manifests[1].Lifecycle.Run"),
        ];
        for (value, field) in cases {
            let err = Recipe::from_value(&value, "x.json", &linux()).unwrap_err();
            assert_eq!(err.field, field, "{err}");
            assert!(err.to_string().starts_with("x.json: "));
        }
        let mut bad_version = hello();
        bad_version["ComponentVersion"] = json!("1.0");
        assert_eq!(Recipe::from_value(&bad_version, "x", &linux()).unwrap_err().field, "ComponentVersion");
        let mut bad_name = hello();
        bad_name["ComponentName"] = json!("a b");
        assert_eq!(Recipe::from_value(&bad_name, "x", &linux()).unwrap_err().field, "ComponentName");
        let mut unknown = hello();
        unknown["ComponentNmae"] = json!("x");
        assert_eq!(Recipe::from_value(&unknown, "x", &linux()).unwrap_err().field, "ComponentNmae");
        let mut windows_only = hello();
        windows_only["Manifests"] = json!([{"Platform": {"os": "windows"}, "Lifecycle": {"Run": "a.wasm"}}]);
        assert_eq!(Recipe::from_value(&windows_only, "x", &linux()).unwrap_err().field, "Manifests");
        let mut bad_dep = hello();
        bad_dep["ComponentDependencies"] = json!({"a": {"VersionRequirement": "^^1"}});
        assert_eq!(
            Recipe::from_value(&bad_dep, "x", &linux()).unwrap_err().field,
            "ComponentDependencies.a.VersionRequirement"
        );
    }
}
