//! A configurable component the end-to-end tests use to probe the host API from a real guest.
//!
//! Configuration (all optional):
//! - `subscribe`: filters to subscribe to in `init`; each outcome is printed.
//! - `publish`: `[{"topic", "payload"}]` published in `init`; each outcome is printed.
//! - `echoPrefix`: every received message is republished on `<echoPrefix><topic>` (except
//!   messages already under the prefix).
//! - `echoVariant`: echoes carry `<variant>|<payload>`, where the variant is the crate that
//!   built this binary (`test-probe` or `test-probe-b`, same source), so a test can tell which
//!   code handled each message across a hot swap.
//! - `initFails`: `init` returns an error. `initTraps`: `init` traps.
//! - `timerMs`: start a timer with this period; each tick is printed.
//! - `shadow`: `[{"op": "get"|"update"|"delete"|"list", "thing", "name", "payload"}]` run in
//!   `init`; each outcome is printed.
//! - `watchConfig`: key paths (lists of keys) to subscribe to; each notification is printed.
//! - `updateConfig`: `{"keyPath": [...], "value": {...}}` merged into its own configuration in `init`.
//! - `iotcoreSubscribe`: upstream filters to subscribe to in `init`; `iotcorePublish`:
//!   `[{"topic", "payload"}]` published upstream in `init`. Outcomes and upstream messages are
//!   printed.
//!
//! A message whose payload is `trap` makes the guest trap; `spin` makes it loop forever (the
//! host must cut it off). Every line it prints is something a test looks for.
#![allow(clippy::print_stdout)] // stdout is this component's log

use std::cell::Cell;
use std::time::Duration;

use serde_json::Value;
use turf_sdk::{Component, config, pubsub, shadow, timer};

/// Which build of this source is running.
const VARIANT: &str = env!("CARGO_PKG_NAME");

thread_local! {
    static TICKS: Cell<u32> = const { Cell::new(0) };
}

fn setting(key: &str) -> Option<Value> {
    let text = config::get(&[]).ok()?;
    let value: Value = serde_json::from_str(&text).ok()?;
    value.get(key).cloned()
}

fn shadow_call(call: &Value) {
    let op = call["op"].as_str().unwrap_or_default();
    let thing = call["thing"].as_str().unwrap_or_default();
    let name = call["name"].as_str().unwrap_or_default();
    let result = match op {
        "get" => shadow::get(thing, name).map(|d| String::from_utf8_lossy(&d).into_owned()),
        "update" => shadow::update(thing, name, call["payload"].to_string().as_bytes())
            .map(|d| String::from_utf8_lossy(&d).into_owned()),
        "delete" => shadow::delete(thing, name).map(|d| String::from_utf8_lossy(&d).into_owned()),
        "list" => shadow::list_named(thing, None, None).map(|page| page.results.join(",")),
        other => Ok(format!("unknown op {other}")),
    };
    match result {
        Ok(text) => println!("shadow {op} {thing}/{name}: ok {text}"),
        Err(e) => println!("shadow {op} {thing}/{name}: failed: {e}"),
    }
}

struct Probe;

impl Component for Probe {
    fn init() -> Result<(), String> {
        if setting("initTraps").and_then(|v| v.as_bool()) == Some(true) {
            println!("trapping in init ({VARIANT})");
            std::process::abort();
        }
        if setting("initFails").and_then(|v| v.as_bool()) == Some(true) {
            return Err("configured to fail in init".to_owned());
        }
        for filter in setting("subscribe").and_then(|v| v.as_array().cloned()).unwrap_or_default() {
            let filter = filter.as_str().unwrap_or_default().to_owned();
            match pubsub::subscribe(&filter) {
                Ok(()) => println!("subscribed {filter}"),
                Err(e) => println!("subscribe {filter} failed: {e}"),
            }
        }
        for item in setting("publish").and_then(|v| v.as_array().cloned()).unwrap_or_default() {
            let topic = item.get("topic").and_then(Value::as_str).unwrap_or_default();
            let payload = item.get("payload").and_then(Value::as_str).unwrap_or_default();
            match pubsub::publish(topic, payload.as_bytes()) {
                Ok(()) => println!("published {topic}"),
                Err(e) => println!("publish {topic} failed: {e}"),
            }
        }
        for call in setting("shadow").and_then(|v| v.as_array().cloned()).unwrap_or_default() {
            shadow_call(&call);
        }
        for path in setting("watchConfig").and_then(|v| v.as_array().cloned()).unwrap_or_default() {
            let keys: Vec<String> = path
                .as_array()
                .map(|k| k.iter().filter_map(|k| k.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            match config::subscribe(&keys) {
                Ok(()) => println!("watching {}", keys.join("/")),
                Err(e) => println!("watch {} failed: {e}", keys.join("/")),
            }
        }
        if let Some(update) = setting("updateConfig") {
            let keys: Vec<String> = update["keyPath"]
                .as_array()
                .map(|k| k.iter().filter_map(|k| k.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            match config::update(&keys, &update["value"].to_string()) {
                Ok(()) => println!("updated config {}", keys.join("/")),
                Err(e) => println!("update config failed: {e}"),
            }
        }
        for filter in setting("iotcoreSubscribe").and_then(|v| v.as_array().cloned()).unwrap_or_default() {
            let filter = filter.as_str().unwrap_or_default().to_owned();
            match pubsub::subscribe_to_iotcore(&filter) {
                Ok(()) => println!("subscribed upstream {filter}"),
                Err(e) => println!("subscribe upstream {filter} failed: {e}"),
            }
        }
        for item in setting("iotcorePublish").and_then(|v| v.as_array().cloned()).unwrap_or_default() {
            let topic = item.get("topic").and_then(Value::as_str).unwrap_or_default();
            let payload = item.get("payload").and_then(Value::as_str).unwrap_or_default();
            match pubsub::publish_to_iotcore(topic, payload.as_bytes()) {
                Ok(()) => println!("published upstream {topic}"),
                Err(e) => println!("publish upstream {topic} failed: {e}"),
            }
        }
        if let Some(ms) = setting("timerMs").and_then(|v| v.as_u64()) {
            timer::set_interval(Duration::from_millis(ms)).map_err(|e| e.to_string())?;
        }
        println!("probe ready ({VARIANT})");
        Ok(())
    }

    fn on_message(topic: String, payload: Vec<u8>) {
        let text = String::from_utf8_lossy(&payload).into_owned();
        println!("message {topic}: {text}");
        match text.as_str() {
            "trap" => std::process::abort(),
            "spin" => loop {
                std::hint::spin_loop();
            },
            _ => {}
        }
        if let Some(prefix) = setting("echoPrefix").and_then(|v| v.as_str().map(str::to_owned)) {
            if topic.starts_with(&prefix) {
                return;
            }
            let target = format!("{prefix}{topic}");
            let payload = if setting("echoVariant").and_then(|v| v.as_bool()) == Some(true) {
                format!("{VARIANT}|{text}").into_bytes()
            } else {
                payload
            };
            if let Err(e) = pubsub::publish(&target, &payload) {
                println!("echo to {target} failed: {e}");
            }
        }
    }

    fn on_iotcore_message(topic: String, payload: Vec<u8>) {
        println!("iotcore message {topic}: {}", String::from_utf8_lossy(&payload));
    }

    fn on_configuration_update(component: String, key_path: Vec<String>) {
        println!("configuration update {component} {}", key_path.join("/"));
    }

    fn on_timer(id: u32) {
        let n = TICKS.with(|t| {
            t.set(t.get() + 1);
            t.get()
        });
        println!("tick {id} {n}");
    }
}

turf_sdk::export_component!(Probe);
