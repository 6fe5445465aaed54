//! The sync rule: a three-way merge of a shadow's local and cloud states over the last state
//! both sides agreed on, and the update that turns one state into another. Pure logic.
//!
//! Per key, recursively through objects: a key changed on one side only takes that change; a
//! key changed on both sides to different values takes the winner's value: **reported, local
//! wins** (the devices on this core report it), **desired, cloud wins** (the operator sets it).
//! The one-way directions merge the same way with the source side winning every conflict; their
//! base is the source's state at the last sync, so the source's changes since reach the target
//! and the target's own changes stay (`cloudToDevice` never undoes what a device reports;
//! `deviceToCloud` never clears what the operator set in the cloud).
//! Arrays are values, as in AWS IoT shadows (replaced, never merged).

use serde_json::{Map, Value};

use super::config::Direction;
use crate::shadow::document::without_nulls;

/// The state of a shadow, as sync compares it: desired and reported (no delta, no metadata).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncState {
    /// `state.desired`, if the shadow has it.
    pub desired: Option<Map<String, Value>>,
    /// `state.reported`, if the shadow has it.
    pub reported: Option<Map<String, Value>>,
}

impl SyncState {
    /// The state of a document or response payload (`{"state": {...}}`), as a stored shadow
    /// holds it: without `null`s or empty objects (outside arrays); anything else reads as an
    /// empty state.
    pub fn of_document(document: &Value) -> Self {
        let side = |key: &str| match document.get("state").and_then(|s| s.get(key)).and_then(without_nulls) {
            Some(Value::Object(map)) => Some(map),
            _ => None,
        };
        Self { desired: side("desired"), reported: side("reported") }
    }

    /// A document from the cloud and its version, if it is one: a whole-number `version`, a
    /// `state` that is an object (or, unless `state_required`, absent: an empty shadow) whose
    /// `desired` and `reported` are objects or absent. Anything else is no document: read as
    /// one, it would say the cloud deleted every key.
    pub fn read_document(document: &Value, state_required: bool) -> Option<(Self, u64)> {
        let version = document.get("version").and_then(Value::as_u64)?;
        let sides_ok = |state: &Map<String, Value>| {
            ["desired", "reported"].iter().all(|k| matches!(state.get(*k), None | Some(Value::Null | Value::Object(_))))
        };
        match document.get("state") {
            Some(Value::Object(state)) if sides_ok(state) => Some((Self::of_document(document), version)),
            None if !state_required => Some((Self::default(), version)),
            _ => None,
        }
    }

    /// `{"desired": ..., "reported": ...}` with the sides it has (what is stored as the base).
    pub fn to_json(&self) -> Value {
        let mut state = Map::new();
        if let Some(d) = &self.desired {
            state.insert("desired".to_owned(), Value::Object(d.clone()));
        }
        if let Some(r) = &self.reported {
            state.insert("reported".to_owned(), Value::Object(r.clone()));
        }
        Value::Object(state)
    }

    /// Reads what [`SyncState::to_json`] wrote.
    pub fn from_json(state: &Value) -> Self {
        Self::of_document(&serde_json::json!({ "state": state }))
    }
}

/// Which side's value a key both sides changed takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Winner {
    Local,
    Cloud,
}

/// The state after syncing `local` and `cloud` from `base`: both sides' for `betweenDeviceAndCloud`,
/// the target's for a one-way direction.
pub fn merge(base: &SyncState, local: &SyncState, cloud: &SyncState, direction: Direction) -> SyncState {
    let (desired, reported) = match direction {
        Direction::Both => (Winner::Cloud, Winner::Local),
        Direction::DeviceToCloud => (Winner::Local, Winner::Local),
        Direction::CloudToDevice => (Winner::Cloud, Winner::Cloud),
    };
    SyncState {
        desired: merge_side(base.desired.as_ref(), local.desired.as_ref(), cloud.desired.as_ref(), desired),
        reported: merge_side(base.reported.as_ref(), local.reported.as_ref(), cloud.reported.as_ref(), reported),
    }
}

fn merge_side(
    base: Option<&Map<String, Value>>,
    local: Option<&Map<String, Value>>,
    cloud: Option<&Map<String, Value>>,
    winner: Winner,
) -> Option<Map<String, Value>> {
    let as_value = |m: Option<&Map<String, Value>>| m.map(|m| Value::Object(m.clone()));
    let (b, l, c) = (as_value(base), as_value(local), as_value(cloud));
    match merge_value(b.as_ref(), l.as_ref(), c.as_ref(), winner) {
        Some(Value::Object(map)) if !map.is_empty() => Some(map),
        _ => None,
    }
}

fn merge_value(base: Option<&Value>, local: Option<&Value>, cloud: Option<&Value>, winner: Winner) -> Option<Value> {
    if local == cloud || cloud == base {
        return local.cloned();
    }
    if local == base {
        return cloud.cloned();
    }
    if let (Some(Value::Object(l)), Some(Value::Object(c))) = (local, cloud) {
        let empty = Map::new();
        let b = match base {
            Some(Value::Object(b)) => b,
            _ => &empty,
        };
        let mut merged = Map::new();
        for key in l.keys().chain(c.keys()) {
            if merged.contains_key(key) {
                continue;
            }
            if let Some(value) = merge_value(b.get(key), l.get(key), c.get(key), winner) {
                merged.insert(key.clone(), value);
            }
        }
        // An object left empty is no object, as in a stored shadow: states compare equal.
        return (!merged.is_empty()).then_some(Value::Object(merged));
    }
    match winner {
        Winner::Local => local.cloned(),
        Winner::Cloud => cloud.cloned(),
    }
}

/// The `state` of an update request that turns `from` into `to`; `None` when they are equal.
/// Keys `to` lacks are sent as `null` (deleted), a side `to` lacks as `null` (cleared).
pub fn patch(from: &SyncState, to: &SyncState) -> Option<Value> {
    let mut state = Map::new();
    for (key, f, t) in [("desired", &from.desired, &to.desired), ("reported", &from.reported, &to.reported)] {
        match (f, t) {
            (f, t) if f == t => {}
            (_, None) => {
                state.insert(key.to_owned(), Value::Null);
            }
            (None, Some(t)) => {
                state.insert(key.to_owned(), Value::Object(t.clone()));
            }
            (Some(f), Some(t)) => {
                if let Some(diff) = diff(f, t) {
                    state.insert(key.to_owned(), Value::Object(diff));
                }
            }
        }
    }
    (!state.is_empty()).then_some(Value::Object(state))
}

/// What to merge into `from` to get `to`; `None` when they are equal.
fn diff(from: &Map<String, Value>, to: &Map<String, Value>) -> Option<Map<String, Value>> {
    let mut out = Map::new();
    for (key, t) in to {
        match (from.get(key), t) {
            (Some(f), t) if f == t => {}
            (Some(Value::Object(f)), Value::Object(t)) if !t.is_empty() => {
                if let Some(inner) = diff(f, t) {
                    out.insert(key.clone(), Value::Object(inner));
                }
            }
            _ => {
                out.insert(key.clone(), t.clone());
            }
        }
    }
    for key in from.keys().filter(|k| !to.contains_key(*k)) {
        out.insert(key.clone(), Value::Null);
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state(value: Value) -> SyncState {
        SyncState::from_json(&value)
    }

    #[test]
    fn one_sided_changes_are_taken_from_their_side() {
        let base = state(json!({"desired": {"color": "red"}, "reported": {"color": "red"}}));
        let local = state(json!({"desired": {"color": "red"}, "reported": {"color": "blue"}}));
        let cloud = state(json!({"desired": {"color": "green"}, "reported": {"color": "red"}}));
        let merged = merge(&base, &local, &cloud, Direction::Both);
        assert_eq!(merged, state(json!({"desired": {"color": "green"}, "reported": {"color": "blue"}})));
    }

    #[test]
    fn conflicts_reported_local_wins_desired_cloud_wins_key_by_key() {
        let base = state(json!({"desired": {"color": "red", "level": 1}, "reported": {"color": "red", "on": true}}));
        let local =
            state(json!({"desired": {"color": "white", "level": 2}, "reported": {"color": "white", "on": true}}));
        let cloud =
            state(json!({"desired": {"color": "green", "level": 1}, "reported": {"color": "green", "on": false}}));
        let merged = merge(&base, &local, &cloud, Direction::Both);
        assert_eq!(
            merged,
            state(json!({"desired": {"color": "green", "level": 2}, "reported": {"color": "white", "on": false}}))
        );
    }

    #[test]
    fn nested_objects_merge_and_deletions_count_as_changes() {
        let base = state(json!({"reported": {"lamp": {"color": "red", "level": 1}, "old": 1}}));
        let local = state(json!({"reported": {"lamp": {"color": "red", "level": 3}, "old": 1}}));
        let cloud = state(json!({"reported": {"lamp": {"color": "blue", "level": 1}}}));
        let merged = merge(&base, &local, &cloud, Direction::Both);
        assert_eq!(
            merged,
            state(json!({"reported": {"lamp": {"color": "blue", "level": 3}}})),
            "old deleted in the cloud"
        );
    }

    #[test]
    fn an_object_emptied_by_the_merge_is_gone_as_in_a_stored_shadow() {
        let base = state(json!({"desired": {"lamp": {"x": 1, "y": 1}}}));
        let local = state(json!({"desired": {"lamp": {"x": 1}}}));
        let cloud = state(json!({"desired": {"lamp": {"y": 1}}}));
        assert_eq!(merge(&base, &local, &cloud, Direction::Both), SyncState::default());
    }

    #[test]
    fn without_a_base_both_sides_count_as_changed() {
        let local = state(json!({"desired": {"a": 1}, "reported": {"r": "local"}}));
        let cloud = state(json!({"desired": {"a": 2, "b": 1}, "reported": {"r": "cloud"}}));
        let merged = merge(&SyncState::default(), &local, &cloud, Direction::Both);
        assert_eq!(merged, state(json!({"desired": {"a": 2, "b": 1}, "reported": {"r": "local"}})));
    }

    #[test]
    fn one_way_directions_carry_the_source_changes_and_keep_the_target_own() {
        // deviceToCloud: the base is the local state last synced.
        let base = state(json!({"desired": {"mode": "eco"}, "reported": {"a": 1}}));
        let local = state(json!({"desired": {"mode": "eco"}, "reported": {"a": 2}}));
        let cloud = state(json!({"desired": {"mode": "eco", "b": 2}, "reported": {"a": 9}}));
        assert_eq!(
            merge(&base, &local, &cloud, Direction::DeviceToCloud),
            state(json!({"desired": {"mode": "eco", "b": 2}, "reported": {"a": 2}})),
            "the local change wins, the operator's own desired key stays"
        );
        // cloudToDevice: the base is the cloud state last synced; a device's report is never undone.
        let base = state(json!({"desired": {"color": "red"}}));
        let cloud = state(json!({"desired": {"color": "green"}}));
        let local = state(json!({"desired": {"color": "red"}, "reported": {"color": "red"}}));
        assert_eq!(
            merge(&base, &local, &cloud, Direction::CloudToDevice),
            state(json!({"desired": {"color": "green"}, "reported": {"color": "red"}}))
        );
        let conflicting = state(json!({"desired": {"color": "white"}}));
        assert_eq!(merge(&base, &conflicting, &cloud, Direction::CloudToDevice), cloud, "the source wins a conflict");
    }

    #[test]
    fn a_patch_turns_one_state_into_the_other() {
        let from = state(json!({"desired": {"a": 1, "gone": true, "n": {"x": 1, "y": 2}}, "reported": {"r": 1}}));
        let to = state(json!({"desired": {"a": 2, "n": {"x": 1, "y": 3}, "new": [1, 2]}}));
        let patch = patch(&from, &to).unwrap();
        assert_eq!(patch, json!({"desired": {"a": 2, "gone": null, "n": {"y": 3}, "new": [1, 2]}, "reported": null}));
        assert_eq!(super::patch(&to, &to), None);
        let created = super::patch(&SyncState::default(), &to).unwrap();
        assert_eq!(created, json!({"desired": to.desired.clone().unwrap()}));
    }

    #[test]
    fn cloud_documents_are_read_only_when_whole() {
        let whole = json!({"state": {"desired": {"a": 1, "gone": null, "e": {}}, "reported": null}, "version": 4});
        let (read, version) = SyncState::read_document(&whole, true).unwrap();
        assert_eq!((read.to_json(), version), (json!({"desired": {"a": 1}}), 4), "nulls and empties as stored");
        for broken in [
            json!({"state": {"desired": {"a": 1}}}),
            json!({"state": {"desired": {"a": 1}}, "version": "4"}),
            json!({"state": [], "version": 4}),
            json!({"state": {"desired": "x"}, "version": 4}),
            json!({"version": 4}),
        ] {
            assert_eq!(SyncState::read_document(&broken, true), None, "{broken}");
        }
        assert_eq!(SyncState::read_document(&json!({"version": 4}), false), Some((SyncState::default(), 4)));
    }

    #[test]
    fn states_read_documents_and_ignore_delta() {
        let doc = json!({"state": {"desired": {"a": 1}, "delta": {"a": 1}}, "version": 3});
        let read = SyncState::of_document(&doc);
        assert_eq!(read.to_json(), json!({"desired": {"a": 1}}));
        assert_eq!(SyncState::of_document(&json!("garbage")), SyncState::default());
    }
}
