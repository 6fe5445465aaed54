//! `aws.greengrass.ShadowManager` `synchronize`: which shadows are kept in step with the
//! upstream broker, and in which direction.
//!
//! Greengrass's keys and defaults: `coreThing` (`classic`, default true when the section is
//! there; `namedShadows`), `shadowDocuments` (a list of `{thingName, classic, namedShadows}`),
//! `shadowDocumentsMap` (thing name → `{classic, namedShadows}`), `direction`
//! (`betweenDeviceAndCloud`, the default, `deviceToCloud` or `cloudToDevice`); and
//! `rateLimits.maxOutboundSyncUpdatesPerSecond` (default 100). Turf adds `thingNamePattern` in a
//! `shadowDocuments` entry (instead of `thingName`): a `*` glob selecting every thing whose name
//! matches, which Greengrass lacks ("all my client devices"). Errors name the JSON path. Pure
//! logic: no I/O.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::glob::Glob;

/// Greengrass's default for `maxOutboundSyncUpdatesPerSecond`.
pub const DEFAULT_OUTBOUND_RATE: u32 = 100;

/// Default of `synchronize.maxShadows`.
pub const DEFAULT_MAX_SHADOWS: u64 = 10_000;

/// The named shadow Greengrass reserves for its deployments; never synced.
pub const RESERVED_NAME: &str = "AWSManagedGreengrassV2Deployment";

/// Which way changes flow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// Both ways; conflicts merged (reported: local wins, desired: cloud wins).
    #[default]
    #[serde(rename = "betweenDeviceAndCloud")]
    Both,
    /// Local changes go up; the cloud's are not applied locally.
    #[serde(rename = "deviceToCloud")]
    DeviceToCloud,
    /// The cloud's changes come down; local ones are not sent.
    #[serde(rename = "cloudToDevice")]
    CloudToDevice,
}

impl Direction {
    /// Whether local changes are sent to the cloud.
    pub fn upward(self) -> bool {
        self != Direction::CloudToDevice
    }

    /// Whether the cloud's changes are applied locally.
    pub fn downward(self) -> bool {
        self != Direction::DeviceToCloud
    }

    /// Greengrass's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Both => "betweenDeviceAndCloud",
            Direction::DeviceToCloud => "deviceToCloud",
            Direction::CloudToDevice => "cloudToDevice",
        }
    }
}

/// The shadows of things a selector picks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shadows {
    /// The classic shadow.
    pub classic: bool,
    /// Named shadows.
    pub named: BTreeSet<String>,
}

impl Shadows {
    fn includes(&self, name: &str) -> bool {
        if name.is_empty() { self.classic } else { name != RESERVED_NAME && self.named.contains(name) }
    }
}

/// What `synchronize` says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncConfig {
    /// Shadows by exact thing name (the core thing's, `shadowDocuments`, `shadowDocumentsMap`).
    pub things: BTreeMap<String, Shadows>,
    /// Shadows of every thing whose name matches a pattern.
    pub patterns: Vec<(String, Shadows)>,
    /// Which way.
    pub direction: Direction,
    /// Cloud updates sent per second at most.
    pub outbound_rate: u32,
    /// Shadows sync keeps records of at most; past it, a shadow the cloud announces that the core
    /// does not have is not created here (`synchronize.maxShadows`, Turf's, default 10 000).
    pub max_shadows: u64,
}

impl SyncConfig {
    /// Whether nothing is synced.
    pub fn is_empty(&self) -> bool {
        self.things.is_empty() && self.patterns.is_empty()
    }

    /// Whether the shadow `name` (empty: classic) of `thing` is synced.
    pub fn selects(&self, thing: &str, name: &str) -> bool {
        self.things.get(thing).is_some_and(|s| s.includes(name))
            || self.patterns.iter().any(|(pattern, s)| s.includes(name) && Glob::new(pattern).matches(thing))
    }

    /// The things named exactly (their shadows are fetched at a full sync even when neither side
    /// has them yet).
    pub fn named_shadows(&self) -> impl Iterator<Item = (&str, &str)> {
        self.things.iter().flat_map(|(thing, s)| {
            let classic = s.classic.then_some((thing.as_str(), ""));
            classic.into_iter().chain(s.named.iter().map(move |n| (thing.as_str(), n.as_str())))
        })
    }

    /// Reads the shadow manager's whole configuration; `core_thing` is this core's thing name.
    pub fn from_config(config: &Value, core_thing: &str) -> Result<Self, String> {
        let outbound_rate = outbound_rate(config.get("rateLimits"))?;
        let sync = match config.get("synchronize") {
            None | Some(Value::Null) => {
                return Ok(Self { outbound_rate, max_shadows: DEFAULT_MAX_SHADOWS, ..Self::default() });
            }
            Some(Value::Object(map)) => map,
            Some(other) => return Err(format!("synchronize: must be an object, found {other}")),
        };
        const KEYS: &[&str] =
            &["coreThing", "shadowDocuments", "shadowDocumentsMap", "direction", "provideSyncStatus", "maxShadows"];
        if let Some(key) = sync.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(format!("synchronize.{key}: unknown setting; expected one of {}", KEYS.join(", ")));
        }
        let direction = match sync.get("direction") {
            None | Some(Value::Null) => Direction::default(),
            Some(value) => serde_json::from_value(value.clone()).map_err(|_| {
                format!(
                    "synchronize.direction: {value} is not one of betweenDeviceAndCloud, deviceToCloud, cloudToDevice"
                )
            })?,
        };
        let max_shadows = match sync.get("maxShadows") {
            None | Some(Value::Null) => DEFAULT_MAX_SHADOWS,
            Some(value) => value
                .as_u64()
                .filter(|n| (1..=1_000_000).contains(n))
                .ok_or_else(|| format!("synchronize.maxShadows: {value} is not a whole number from 1 to 1000000"))?,
        };
        let mut out = Self { direction, outbound_rate, max_shadows, ..Self::default() };
        if let Some(core) = sync.get("coreThing").filter(|v| !v.is_null()) {
            out.add_thing(core_thing, shadows(core, "synchronize.coreThing")?);
        }
        match sync.get("shadowDocuments") {
            None | Some(Value::Null) => {}
            Some(Value::Array(entries)) => {
                for (i, entry) in entries.iter().enumerate() {
                    out.add_entry(entry, &format!("synchronize.shadowDocuments[{i}]"))?;
                }
            }
            Some(other) => return Err(format!("synchronize.shadowDocuments: must be a list, found {other}")),
        }
        match sync.get("shadowDocumentsMap") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (thing, entry) in map {
                    let path = format!("synchronize.shadowDocumentsMap.{thing}");
                    check_thing(thing, &path)?;
                    out.add_thing(thing, shadows(entry, &path)?);
                }
            }
            Some(other) => return Err(format!("synchronize.shadowDocumentsMap: must be an object, found {other}")),
        }
        Ok(out)
    }

    fn add_thing(&mut self, thing: &str, shadows: Shadows) {
        let entry = self.things.entry(thing.to_owned()).or_insert(Shadows { classic: false, named: BTreeSet::new() });
        entry.classic |= shadows.classic;
        entry.named.extend(shadows.named);
    }

    fn add_entry(&mut self, entry: &Value, path: &str) -> Result<(), String> {
        let map = entry.as_object().ok_or_else(|| format!("{path}: must be an object, found {entry}"))?;
        let picked = shadows(entry, path)?;
        match (map.get("thingName"), map.get("thingNamePattern")) {
            (Some(Value::String(thing)), None) => {
                check_thing(thing, &format!("{path}.thingName"))?;
                self.add_thing(thing, picked);
            }
            (None, Some(Value::String(pattern))) => {
                check_pattern(pattern, &format!("{path}.thingNamePattern"))?;
                self.patterns.push((pattern.clone(), picked));
            }
            (Some(_), Some(_)) => return Err(format!("{path}: give thingName or thingNamePattern, not both")),
            _ => return Err(format!("{path}: needs thingName (a thing's name) or thingNamePattern (a * glob)")),
        }
        Ok(())
    }
}

/// `{classic, namedShadows}` of one selector (`classic` defaults to true, as Greengrass).
fn shadows(value: &Value, path: &str) -> Result<Shadows, String> {
    let map: &Map<String, Value> =
        value.as_object().ok_or_else(|| format!("{path}: must be an object, found {value}"))?;
    const KEYS: &[&str] = &["classic", "namedShadows", "thingName", "thingNamePattern"];
    if let Some(key) = map.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(format!("{path}.{key}: unknown setting; expected classic or namedShadows"));
    }
    let classic = match map.get("classic") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") => {
            s.eq_ignore_ascii_case("true")
        }
        Some(other) => return Err(format!("{path}.classic: must be true or false, found {other}")),
    };
    let mut named = BTreeSet::new();
    match map.get("namedShadows") {
        None | Some(Value::Null) => {}
        Some(Value::Array(names)) => {
            for (i, name) in names.iter().enumerate() {
                let name =
                    name.as_str().ok_or_else(|| format!("{path}.namedShadows[{i}]: must be a string, found {name}"))?;
                if name.is_empty() || name.len() > 64 || !name.chars().all(shadow_char) {
                    return Err(format!(
                        "{path}.namedShadows[{i}]: {name:?} is not a shadow name ([a-zA-Z0-9:_-], 1 to 64)"
                    ));
                }
                if name == RESERVED_NAME {
                    return Err(format!(
                        "{path}.namedShadows[{i}]: {RESERVED_NAME} is reserved by Greengrass and never synced"
                    ));
                }
                named.insert(name.to_owned());
            }
        }
        Some(other) => return Err(format!("{path}.namedShadows: must be a list, found {other}")),
    }
    Ok(Shadows { classic, named })
}

fn shadow_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-')
}

fn check_thing(thing: &str, path: &str) -> Result<(), String> {
    if thing.is_empty() || thing.len() > 128 || !thing.chars().all(shadow_char) {
        return Err(format!("{path}: {thing:?} is not a thing name ([a-zA-Z0-9:_-], 1 to 128)"));
    }
    Ok(())
}

fn check_pattern(pattern: &str, path: &str) -> Result<(), String> {
    if pattern.is_empty() || pattern.len() > 128 || !pattern.chars().all(|c| c == '*' || shadow_char(c)) {
        return Err(format!("{path}: {pattern:?} is not a thing name pattern ([a-zA-Z0-9:_-] and *, 1 to 128)"));
    }
    Ok(())
}

/// `rateLimits.maxOutboundSyncUpdatesPerSecond` (checked by the shadow settings too).
fn outbound_rate(limits: Option<&Value>) -> Result<u32, String> {
    let value = limits.and_then(|l| l.get("maxOutboundSyncUpdatesPerSecond"));
    let parsed = match value {
        None | Some(Value::Null) => return Ok(DEFAULT_OUTBOUND_RATE),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    parsed.and_then(|n| u32::try_from(n).ok()).filter(|n| *n > 0).ok_or_else(|| {
        "rateLimits.maxOutboundSyncUpdatesPerSecond: must be a whole number of updates per second, at least 1"
            .to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn greengrass_keys_and_defaults() {
        let config = json!({"synchronize": {
            "coreThing": {"classic": true, "namedShadows": ["CoreA"]},
            "shadowDocuments": [{"thingName": "MyDevice1", "classic": false, "namedShadows": ["A", "B"]}],
            "shadowDocumentsMap": {"MyDevice2": {"namedShadows": []}}}});
        let sync = SyncConfig::from_config(&config, "Core").unwrap();
        assert_eq!(sync.direction, Direction::Both);
        assert_eq!((sync.outbound_rate, sync.max_shadows), (100, DEFAULT_MAX_SHADOWS));
        assert!(sync.selects("Core", "") && sync.selects("Core", "CoreA") && !sync.selects("Core", "Other"));
        assert!(!sync.selects("MyDevice1", "") && sync.selects("MyDevice1", "B"));
        assert!(sync.selects("MyDevice2", ""), "classic defaults to true");
        assert!(!sync.selects("Stranger", ""));
        let named: Vec<_> = sync.named_shadows().collect();
        assert!(named.contains(&("MyDevice1", "A")) && named.contains(&("Core", "")), "{named:?}");
    }

    #[test]
    fn a_pattern_selects_all_my_client_devices() {
        let config = json!({"synchronize": {"direction": "cloudToDevice",
            "shadowDocuments": [{"thingNamePattern": "MyClientDevice*"}]},
            "rateLimits": {"maxOutboundSyncUpdatesPerSecond": "5"}});
        let sync = SyncConfig::from_config(&config, "Core").unwrap();
        assert!(sync.selects("MyClientDevice1", "") && sync.selects("MyClientDevice", ""));
        assert!(!sync.selects("OtherDevice", "") && !sync.selects("MyClientDevice1", "named"));
        assert_eq!((sync.direction, sync.outbound_rate), (Direction::CloudToDevice, 5));
        assert!(!sync.direction.upward() && sync.direction.downward());
    }

    #[test]
    fn no_section_syncs_nothing_and_the_reserved_shadow_never() {
        assert!(SyncConfig::from_config(&json!({}), "Core").unwrap().is_empty());
        assert!(SyncConfig::from_config(&json!({"synchronize": {}}), "Core").unwrap().is_empty());
        let sync =
            SyncConfig::from_config(&json!({"synchronize": {"shadowDocuments": [{"thingNamePattern": "*"}]}}), "Core")
                .unwrap();
        assert!(!sync.selects("Core", RESERVED_NAME));
    }

    #[test]
    fn bad_sections_name_their_path() {
        for (bad, path) in [
            (json!({"synchronize": []}), "synchronize"),
            (json!({"synchronize": {"direction": "sideways"}}), "synchronize.direction"),
            (json!({"synchronize": {"coreThings": {}}}), "synchronize.coreThings"),
            (json!({"synchronize": {"shadowDocuments": [{"classic": true}]}}), "synchronize.shadowDocuments[0]"),
            (
                json!({"synchronize": {"shadowDocuments": [{"thingName": "a b"}]}}),
                "synchronize.shadowDocuments[0].thingName",
            ),
            (
                json!({"synchronize": {"shadowDocuments": [{"thingName": "a", "thingNamePattern": "a*"}]}}),
                "synchronize.shadowDocuments[0]",
            ),
            (json!({"synchronize": {"shadowDocuments": [{"thingNamePattern": "a/#"}]}}), "thingNamePattern"),
            (
                json!({"synchronize": {"coreThing": {"namedShadows": [RESERVED_NAME]}}}),
                "synchronize.coreThing.namedShadows[0]",
            ),
            (json!({"synchronize": {"coreThing": {"namedShadows": "A"}}}), "synchronize.coreThing.namedShadows"),
            (json!({"synchronize": {"coreThing": {"classic": "yes"}}}), "synchronize.coreThing.classic"),
            (
                json!({"synchronize": {"shadowDocumentsMap": {"bad name": {}}}}),
                "synchronize.shadowDocumentsMap.bad name",
            ),
            (json!({"rateLimits": {"maxOutboundSyncUpdatesPerSecond": 0}}), "maxOutboundSyncUpdatesPerSecond"),
            (json!({"synchronize": {"maxShadows": 0}}), "synchronize.maxShadows"),
            (json!({"synchronize": {"maxShadows": "many"}}), "synchronize.maxShadows"),
        ] {
            let err = SyncConfig::from_config(&bad, "Core").unwrap_err();
            assert!(err.contains(path), "{bad}: {err}");
        }
    }
}
