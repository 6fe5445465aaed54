//! Entry points of the fuzz targets (`fuzz/`, run with `cargo fuzz` on nightly) and of the
//! corpus replay test (`tests/fuzz_corpora.rs`, stable, part of `make test`).
//!
//! Each function feeds arbitrary bytes to one parser that sees outside input, then checks what
//! must hold for whatever it accepted: a crash, a hang or a broken invariant is a finding. Both
//! the fuzzer and the replay test call these, so a corpus entry means the same thing to both.
//! Pure: no I/O, no state.

use std::path::Path;

use serde_json::Value;

use crate::deploy::config_update;
use crate::deploy::recipe::{self, Platform};
use crate::devices::AuthPolicies;
use crate::devices::identity::{DeviceDirectory, ListenerKind, validate_thing_name};
use crate::devices::policy::{self, client_id_resource, topic_filter_resource, topic_resource};
use crate::devices::selection::SelectionRule;
use crate::shadow::document::{Document, apply_update, parse_update};
use crate::shadow::topics::parse_request;
use crate::topic;

/// Splits `data` at the first NUL byte: two inputs from one (the second may be empty).
fn halves(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[]),
    }
}

/// A recipe, as JSON or YAML (the first byte picks), validated for this platform.
pub fn recipe(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let file = if data.first().is_some_and(|b| b % 2 == 0) { "recipe.json" } else { "recipe.yaml" };
    if let Err(error) = recipe::parse(text, Path::new(file), &Platform::current()) {
        assert!(!error.to_string().is_empty(), "an error says what is wrong");
    }
}

/// A shadow update payload applied to no shadow and then to the result, and a request topic.
pub fn shadow(data: &[u8]) {
    let (payload, topic_bytes) = halves(data);
    if let Ok(topic) = std::str::from_utf8(topic_bytes) {
        let _ = parse_request(topic);
    }
    let Ok(request) = parse_update(payload) else { return };
    let Ok(first) = apply_update(None, &request, 1_700_000_000, 8 * 1024) else { return };
    let document: &Document = &first.document;
    assert_eq!(
        Document::from_json(&document.to_json()).as_ref(),
        Some(document),
        "a stored shadow reads back as written"
    );
    if let Ok(second) = apply_update(Some(document), &request, 1_700_000_001, 8 * 1024) {
        assert!(second.document.version > document.version, "every accepted update bumps the version");
    }
}

/// An Auth configuration (`deviceGroups`, `localTools`) and a selection rule, each asked about
/// a thing and the three operations.
pub fn policy(data: &[u8]) {
    let (config_bytes, rest) = halves(data);
    let (rule_bytes, thing_bytes) = halves(rest);
    let thing = String::from_utf8_lossy(thing_bytes);
    if let Ok(rule) = std::str::from_utf8(rule_bytes)
        && let Ok(parsed) = SelectionRule::parse(rule)
    {
        let _ = parsed.matches(&thing);
    }
    let Ok(config) = serde_json::from_slice::<Value>(config_bytes) else { return };
    let Ok(policies) = AuthPolicies::from_config(&config) else { return };
    let snapshot = crate::devices::AuthSnapshot {
        directory: DeviceDirectory::default(),
        groups: policies.groups,
        local_tools: policies.local_tools,
    };
    for listener in [ListenerKind::Tls, ListenerKind::Plain] {
        let _ = snapshot.admit(listener, &thing, None);
        let _ = snapshot.authorize(listener, &thing, policy::CONNECT, &client_id_resource(&thing));
        let _ = snapshot.authorize(listener, &thing, policy::PUBLISH, &topic_resource(&thing));
        let _ = snapshot.authorize(listener, &thing, policy::SUBSCRIBE, &topic_filter_resource(&thing));
    }
}

/// A `--update-config` document, each update resolved against a running configuration, and
/// the keys it changed.
pub fn update_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(updates) = config_update::parse_updates(text) else { return };
    let running = serde_json::json!({"a": {"b": [1, 2]}, "c": "d"});
    for update in updates.values() {
        if update.validate().is_err() {
            continue;
        }
        let resolved = config_update::resolve(Some(&running), &running, Some(update));
        let _ = config_update::changed_keys(Some(&running), &resolved);
        if update.reset.is_empty() && update.merge.is_none() {
            assert_eq!(resolved, running, "an empty update changes nothing");
        }
    }
}

/// A thing name as it arrives in a discovery path or an MQTT client id.
pub fn thing_name(data: &[u8]) {
    let name = String::from_utf8_lossy(data);
    let valid = validate_thing_name(&name).is_ok();
    let tls = DeviceDirectory::default().authenticate(ListenerKind::Tls, &name, None);
    assert!(tls.is_err(), "no certificate, no device");
    if valid {
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-')));
        assert!(!name.is_empty() && name.len() <= 128);
    }
    let _ = crate::discovery::response::thing_arn(&name);
}

/// An MQTT topic filter and a topic name: validation and matching agree.
pub fn topic_filter(data: &[u8]) {
    let (filter_bytes, topic_bytes) = halves(data);
    let filter = String::from_utf8_lossy(filter_bytes);
    let name = String::from_utf8_lossy(topic_bytes);
    let filter_ok = topic::validate_filter(&filter).is_ok();
    let name_ok = topic::validate_topic(&name).is_ok();
    if name_ok {
        assert!(topic::validate_filter(&name).is_ok(), "a topic name is a valid filter");
        assert!(topic::matches(&name, &name), "a topic name matches itself");
        if !name.starts_with('$') {
            assert!(topic::matches("#", &name), "'#' matches every topic not starting with $");
        }
    }
    if filter_ok && name_ok {
        let _ = topic::matches(&filter, &name);
        let _ = topic::filter_covers(&filter, &name);
    }
}
