//! The recipe's sections that take more than a field lookup: dependencies, the default
//! configuration, and the manifest chosen for this platform.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::super::semver_range::VersionRange;
use super::{Ctx, Dependency, DependencyType, Fields, Platform, RecipeError, kind};

/// `ComponentDependencies`: each with its version range and HARD/SOFT kind.
pub(super) fn parse_dependencies(cx: &Ctx<'_>, top: &Fields<'_>) -> Result<BTreeMap<String, Dependency>, RecipeError> {
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

pub(super) fn parse_configuration(cx: &Ctx<'_>, top: &Fields<'_>) -> Result<Value, RecipeError> {
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

pub(super) fn choose_manifest(
    cx: &Ctx<'_>,
    top: &Fields<'_>,
    platform: &Platform,
) -> Result<(usize, String), RecipeError> {
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
        let run = run_of(cx, &lifecycle)?;
        return Ok((i, run));
    }
    let have: Vec<String> = platform.attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Err(cx.err("Manifests", format!("no manifest matches this platform ({})", have.join(", "))))
}

/// `Lifecycle.Run` (a string, or `{Script: …}`): it must name a `.wasm` artifact.
fn run_of(cx: &Ctx<'_>, lifecycle: &Fields<'_>) -> Result<String, RecipeError> {
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
    Ok(run)
}
