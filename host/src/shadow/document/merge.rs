//! How an update changes a document: merging a side (a null deletes a key), the metadata
//! timestamps that follow it, and the delta between desired and reported.

use serde_json::{Map, Value, json};

use super::Patch;

pub(super) fn update_side(
    side: &mut Option<Map<String, Value>>,
    metadata: &mut Option<Value>,
    patch: &Patch,
    now: i64,
) {
    let patch_map = match patch {
        Patch::Absent => return,
        Patch::Clear => {
            *side = None;
            *metadata = None;
            return;
        }
        Patch::Merge(map) => map,
    };
    let mut merged = side.take().unwrap_or_default();
    merge(&mut merged, patch_map);
    if merged.is_empty() {
        *metadata = None;
        return;
    }
    let patch_value = Value::Object(patch_map.clone());
    *metadata = Some(sync_metadata(&Value::Object(merged.clone()), metadata.as_ref(), Some(&patch_value), now));
    *side = Some(merged);
}

/// Copy of `value` without nulls; objects left empty become `None`.
pub(crate) fn without_nulls(value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Object(map) => {
            let kept: Map<String, Value> =
                map.iter().filter_map(|(k, v)| without_nulls(v).map(|v| (k.clone(), v))).collect();
            if kept.is_empty() { None } else { Some(Value::Object(kept)) }
        }
        other => Some(other.clone()),
    }
}

pub(super) fn merge(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(object) if object.is_empty() => {
                target.remove(key);
            }
            Value::Object(object) => match target.get_mut(key) {
                Some(Value::Object(existing)) => {
                    merge(existing, object);
                    if existing.is_empty() {
                        target.remove(key);
                    }
                }
                _ => match without_nulls(value) {
                    Some(clean) => {
                        target.insert(key.clone(), clean);
                    }
                    None => {
                        target.remove(key);
                    }
                },
            },
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}

/// Metadata of a request's `state` (every leaf and null gets `now`; arrays per element).
pub(super) fn state_metadata(value: &Value, now: i64) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), state_metadata(v, now))).collect()),
        Value::Array(items) => Value::Array(items.iter().map(|v| state_metadata(v, now)).collect()),
        _ => json!({"timestamp": now}),
    }
}

/// Metadata for `state`: paths the patch touched get `now`, others keep their old timestamps.
pub(super) fn sync_metadata(state: &Value, old: Option<&Value>, patch: Option<&Value>, now: i64) -> Value {
    match state {
        Value::Object(map) => {
            let patched_object = patch.filter(|p| p.is_object());
            if patch.is_some() && patched_object.is_none() {
                return state_metadata(state, now);
            }
            Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let old_child = old.and_then(|o| o.get(k));
                        let patch_child = patched_object.and_then(|p| p.get(k));
                        (k.clone(), sync_metadata(v, old_child, patch_child, now))
                    })
                    .collect(),
            )
        }
        Value::Array(items) => match (patch, old) {
            (None, Some(Value::Array(previous))) if previous.len() == items.len() => Value::Array(previous.clone()),
            _ => state_metadata(state, now),
        },
        _ => match (patch, old) {
            (None, Some(previous @ Value::Object(_))) if previous.get("timestamp").is_some() => previous.clone(),
            _ => json!({"timestamp": now}),
        },
    }
}

pub(super) fn numbers_equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

pub(super) fn delta(desired: &Map<String, Value>, reported: Option<&Map<String, Value>>) -> Option<Map<String, Value>> {
    let mut out = Map::new();
    for (key, wanted) in desired {
        match (wanted, reported.and_then(|r| r.get(key))) {
            (_, None) => {
                out.insert(key.clone(), wanted.clone());
            }
            (Value::Object(w), Some(Value::Object(have))) => {
                if let Some(sub) = delta(w, Some(have)) {
                    out.insert(key.clone(), Value::Object(sub));
                }
            }
            (w @ Value::Number(_), Some(have @ Value::Number(_))) if numbers_equal(w, have) => {}
            (w, Some(have)) if w == have => {}
            (w, Some(_)) => {
                out.insert(key.clone(), w.clone());
            }
        }
    }
    if out.is_empty() { None } else { Some(out) }
}

/// The part of `metadata` that covers the keys of `delta`.
pub(super) fn select_metadata(delta: &Map<String, Value>, metadata: &Value) -> Value {
    Value::Object(
        delta
            .iter()
            .filter_map(|(k, v)| {
                let meta = metadata.get(k)?;
                Some((
                    k.clone(),
                    match (v, meta) {
                        (Value::Object(sub), Value::Object(_)) if meta.get("timestamp").is_none() => {
                            select_metadata(sub, meta)
                        }
                        _ => meta.clone(),
                    },
                ))
            })
            .collect(),
    )
}
