//! Shadow documents: update requests, merge, metadata, delta, versions and the response payloads,
//! as Greengrass's shadow manager produces them (AWS IoT device shadow JSON).
//!
//! A stored document is `{"state": {desired?, reported?}, "metadata": {desired?, reported?},
//! "version": N}`. An update merges `state.desired`/`state.reported` key by key (`null` deletes a
//! key, `"desired": null` clears a side, `"state": null` clears both, arrays and other values
//! replace whole, objects left empty disappear); metadata mirrors the state with a per-leaf
//! `{"timestamp": seconds}` (arrays per element); the delta is desired minus reported (numbers
//! compared by value). A `version` in the request must be the current one (409 otherwise; a new
//! shadow accepts only 1). Limits: depth 6 (desired/reported is level 1) and the size of the
//! merged desired + reported. Every error carries AWS's code and message. Pure logic: no I/O.

mod merge;

pub(crate) use self::merge::without_nulls;
use serde_json::{Map, Value, json};
use thiserror::Error;

use self::merge::{delta, select_metadata, state_metadata, update_side};

/// Greengrass's default `shadowDocumentSizeLimitBytes`.
pub const DEFAULT_MAX_SIZE: usize = 8192;
/// Greengrass's largest allowed `shadowDocumentSizeLimitBytes`.
pub const MAX_SIZE_LIMIT: usize = 30720;
/// Deepest allowed nesting.
pub const MAX_DEPTH: usize = 6;
/// Longest client token.
pub const MAX_CLIENT_TOKEN: usize = 64;

/// A rejected request: AWS code and message, and the client token to echo.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{code} {message}")]
pub struct ShadowError {
    /// HTTP-style code (400, 401, 404, 409, 413, 429, 500).
    pub code: u16,
    /// AWS's message.
    pub message: String,
    /// Echoed in the rejected payload when known.
    pub client_token: Option<String>,
}

/// A 400 with `message`.
pub fn invalid(message: &str) -> ShadowError {
    ShadowError { code: 400, message: message.to_owned(), client_token: None }
}

impl ShadowError {
    fn with_token(mut self, token: &Option<String>) -> Self {
        self.client_token = token.clone();
        self
    }

    /// `404 No shadow exists with name: <name | Unnamed Shadow>`.
    pub fn not_found(shadow_name: &str) -> Self {
        let name = if shadow_name.is_empty() { "Unnamed Shadow" } else { shadow_name };
        Self { code: 404, message: format!("No shadow exists with name: {name}"), client_token: None }
    }

    /// `409 Version conflict`.
    pub fn conflict() -> Self {
        Self { code: 409, message: "Version conflict".to_owned(), client_token: None }
    }

    /// `429 Too Many Requests`: over `rateLimits`.
    pub fn throttled() -> Self {
        Self { code: 429, message: "Too Many Requests".to_owned(), client_token: None }
    }

    /// `500 Internal service failure`.
    pub fn internal() -> Self {
        Self { code: 500, message: "Internal service failure".to_owned(), client_token: None }
    }

    /// The `.../rejected` payload.
    pub fn payload(&self, now: i64) -> Value {
        let mut out = json!({"code": self.code, "message": self.message, "timestamp": now});
        insert_token(&mut out, &self.client_token);
        out
    }
}

fn insert_token(value: &mut Value, token: &Option<String>) {
    if let (Some(token), Some(map)) = (token, value.as_object_mut()) {
        map.insert("clientToken".to_owned(), Value::String(token.clone()));
    }
}

/// One side of an update.
#[derive(Debug, Clone, PartialEq)]
enum Patch {
    /// Not mentioned: unchanged.
    Absent,
    /// `null` or `{}`: cleared.
    Clear,
    /// Merged key by key.
    Merge(Map<String, Value>),
}

/// A parsed update request.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateRequest {
    /// `state` as sent (without `delta`), echoed in `update/accepted`.
    state: Value,
    desired: Patch,
    reported: Patch,
    /// `clientToken`.
    pub client_token: Option<String>,
    /// `version`.
    pub version: Option<u64>,
}

fn side(state: &Map<String, Value>, key: &str) -> Result<Patch, String> {
    match state.get(key) {
        None => Ok(Patch::Absent),
        Some(Value::Null) => Ok(Patch::Clear),
        Some(Value::Object(map)) if map.is_empty() => Ok(Patch::Clear),
        Some(Value::Object(map)) => Ok(Patch::Merge(map.clone())),
        Some(other) => Err(format!("state.{key}: {} found, object expected", kind(other))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Parses an update request payload.
pub fn parse_update(payload: &[u8]) -> Result<UpdateRequest, ShadowError> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Err(invalid("Missing update payload"));
    }
    let json_error = |details: String| invalid(&format!("Invalid JSON: {details}"));
    let value: Value = serde_json::from_slice(payload).map_err(|e| json_error(e.to_string()))?;
    let Value::Object(mut request) = value else {
        return Err(json_error(format!("{} found, object expected", kind(&value))));
    };
    let client_token = match request.get("clientToken") {
        None => None,
        Some(Value::String(token)) if token.chars().count() <= MAX_CLIENT_TOKEN => Some(token.clone()),
        Some(Value::String(_)) => {
            return Err(json_error(format!("clientToken: may only be {MAX_CLIENT_TOKEN} characters long")));
        }
        Some(other) => return Err(json_error(format!("clientToken: {} found, string expected", kind(other)))),
    };
    let version = match request.get("version") {
        None => None,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) => Some(v),
            None => return Err(json_error("version: must have a minimum value of 0".to_owned())),
        },
        Some(other) => return Err(json_error(format!("version: {} found, number expected", kind(other)))),
    };
    let state = match request.remove("state") {
        None => return Err(json_error("state: is missing but it is required".to_owned())),
        Some(state) => state,
    };
    let (state, desired, reported) = match state {
        Value::Null => (Value::Null, Patch::Clear, Patch::Clear),
        Value::Object(mut map) => {
            map.remove("delta");
            let desired = side(&map, "desired").map_err(&json_error)?;
            let reported = side(&map, "reported").map_err(&json_error)?;
            if desired == Patch::Absent && reported == Patch::Absent && !map.is_empty() {
                return Err(json_error("state: must contain desired or reported".to_owned()));
            }
            (Value::Object(map), desired, reported)
        }
        other => return Err(json_error(format!("state: {} found, object expected", kind(&other)))),
    };
    let request = UpdateRequest { state, desired, reported, client_token, version };
    for patch in [&request.desired, &request.reported] {
        if let Patch::Merge(map) = patch {
            check_depth(map.values(), 2).map_err(|e| e.with_token(&request.client_token))?;
        }
    }
    Ok(request)
}

fn check_depth<'a>(values: impl Iterator<Item = &'a Value>, level: usize) -> Result<(), ShadowError> {
    for value in values {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Object(map) if !map.is_empty() => Box::new(map.values()),
            Value::Array(items) if !items.is_empty() => Box::new(items.iter()),
            _ => continue,
        };
        if level > MAX_DEPTH {
            return Err(invalid("JSON contains too many levels of nesting; maximum is 6"));
        }
        check_depth(children, level + 1)?;
    }
    Ok(())
}

/// A stored shadow.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    desired: Option<Map<String, Value>>,
    reported: Option<Map<String, Value>>,
    desired_metadata: Option<Value>,
    reported_metadata: Option<Value>,
    /// Version, from 1.
    pub version: u64,
}

fn state_and_metadata(doc: &Document) -> (Value, Value) {
    let mut state = Map::new();
    let mut metadata = Map::new();
    if let Some(d) = &doc.desired {
        state.insert("desired".to_owned(), Value::Object(d.clone()));
        metadata.insert("desired".to_owned(), doc.desired_metadata.clone().unwrap_or_else(|| json!({})));
    }
    if let Some(r) = &doc.reported {
        state.insert("reported".to_owned(), Value::Object(r.clone()));
        metadata.insert("reported".to_owned(), doc.reported_metadata.clone().unwrap_or_else(|| json!({})));
    }
    (Value::Object(state), Value::Object(metadata))
}

impl Document {
    /// The stored form: `{"state", "metadata", "version"}`.
    pub fn to_json(&self) -> Value {
        let (state, metadata) = state_and_metadata(self);
        json!({"state": state, "metadata": metadata, "version": self.version})
    }

    /// Reads the stored form back.
    pub fn from_json(value: &Value) -> Option<Self> {
        let side = |key: &str| value["state"].get(key).and_then(Value::as_object).cloned();
        let meta = |key: &str| value["metadata"].get(key).cloned();
        Some(Self {
            desired: side("desired"),
            reported: side("reported"),
            desired_metadata: meta("desired"),
            reported_metadata: meta("reported"),
            version: value.get("version")?.as_u64()?,
        })
    }

    /// Desired minus reported, with its metadata; `None` when nothing differs.
    pub fn delta(&self) -> Option<(Value, Value)> {
        let desired = self.desired.as_ref()?;
        let delta = delta(desired, self.reported.as_ref())?;
        let metadata = self.desired_metadata.as_ref().map(|m| select_metadata(&delta, m)).unwrap_or_else(|| json!({}));
        Some((Value::Object(delta), metadata))
    }

    /// Bytes of the compact desired + reported JSON (what the size limit counts).
    pub fn size(&self) -> usize {
        let len = |side: &Option<Map<String, Value>>| {
            side.as_ref().map(|m| Value::Object(m.clone()).to_string().len()).unwrap_or(0)
        };
        len(&self.desired) + len(&self.reported)
    }

    /// The `get/accepted` payload (also the IPC GetThingShadow answer).
    pub fn get_payload(&self, now: i64, client_token: &Option<String>) -> Value {
        let (mut state, metadata) = state_and_metadata(self);
        if let (Some((delta, _)), Some(map)) = (self.delta(), state.as_object_mut()) {
            map.insert("delta".to_owned(), delta);
        }
        let mut out = json!({"state": state, "metadata": metadata, "version": self.version, "timestamp": now});
        insert_token(&mut out, client_token);
        out
    }
}

/// What an accepted update produced.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateOutcome {
    /// The new stored document.
    pub document: Document,
    /// `update/accepted` payload (also the IPC UpdateThingShadow answer).
    pub accepted: Value,
    /// `update/delta` payload, when desired and reported differ.
    pub delta: Option<Value>,
    /// `update/documents` payload.
    pub documents: Value,
}

/// Applies `request` to the `current` shadow (none if it does not exist) at time `now`.
pub fn apply_update(
    current: Option<&Document>,
    request: &UpdateRequest,
    now: i64,
    max_size: usize,
) -> Result<UpdateOutcome, ShadowError> {
    let token = &request.client_token;
    match (current, request.version) {
        (None, Some(v)) if v != 1 => return Err(invalid("Invalid version").with_token(token)),
        (Some(doc), Some(v)) if v != doc.version => return Err(ShadowError::conflict().with_token(token)),
        _ => {}
    }
    let mut next = current.cloned().unwrap_or(Document {
        desired: None,
        reported: None,
        desired_metadata: None,
        reported_metadata: None,
        version: 0,
    });
    next.version += 1;
    update_side(&mut next.desired, &mut next.desired_metadata, &request.desired, now);
    update_side(&mut next.reported, &mut next.reported_metadata, &request.reported, now);
    if next.size() > max_size {
        return Err(ShadowError {
            code: 413,
            message: "The payload exceeds the maximum size allowed".to_owned(),
            client_token: token.clone(),
        });
    }
    let patch_metadata = match &request.state {
        Value::Null => json!({"timestamp": now}),
        state => state_metadata(state, now),
    };
    let mut accepted =
        json!({"version": next.version, "timestamp": now, "state": request.state, "metadata": patch_metadata});
    insert_token(&mut accepted, token);
    let delta = next.delta().map(|(state, metadata)| {
        let mut delta = json!({"version": next.version, "timestamp": now, "state": state, "metadata": metadata});
        insert_token(&mut delta, token);
        delta
    });
    let mut documents =
        json!({"previous": current.map(Document::to_json), "current": next.to_json(), "timestamp": now});
    insert_token(&mut documents, token);
    Ok(UpdateOutcome { document: next, accepted, delta, documents })
}

/// The `delete/accepted` payload for a shadow at `version`.
pub fn delete_payload(version: u64, now: i64, client_token: &Option<String>) -> Value {
    let mut out = json!({"version": version, "timestamp": now});
    insert_token(&mut out, client_token);
    out
}

#[cfg(test)]
mod tests;
