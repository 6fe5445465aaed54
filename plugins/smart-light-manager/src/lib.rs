//! The tutorial's `smart_light_manager.py` as a Turf WebAssembly component.
//!
//! Manages the color of smart lights that are client devices: reads `smartLightDeviceNames`, gets
//! each device's shadow for its reported color, periodically picks a random color and updates the
//! shadow's `desired` state with a fresh client token, and listens on
//! `$aws/things/+/shadow/update/accepted` for the lights' reported confirmations carrying one of
//! its tokens. It re-reads the device list when a deployment changes it. The interval is 15 s as
//! in the tutorial; `setColorIntervalSeconds` in the configuration overrides it (tests use this).
#![allow(clippy::print_stdout)] // stdout is this component's log, as in the tutorial

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};
use turf_sdk::{Component, Error, config, pubsub, shadow, timer};

const SHADOW_COLOR_PROPERTY: &str = "color";
const CONFIGURATION_CLIENT_DEVICE_NAMES: &str = "smartLightDeviceNames";
const CONFIGURATION_INTERVAL: &str = "setColorIntervalSeconds";
const COLORS: [&str; 6] = ["red", "orange", "yellow", "green", "blue", "purple"];
const SHADOW_UPDATE_TOPIC: &str = "$aws/things/+/shadow/update/accepted";
const SET_COLOR_INTERVAL: Duration = Duration::from_secs(15);

#[derive(Debug, Default)]
struct SmartLightDevice {
    reported_color: Option<String>,
    desired_color: Option<String>,
}

#[derive(Debug, Default)]
struct SmartLightDeviceManager {
    devices: BTreeMap<String, SmartLightDevice>,
    client_tokens: BTreeSet<String>,
}

thread_local! {
    static MANAGER: RefCell<SmartLightDeviceManager> = RefCell::new(SmartLightDeviceManager::default());
}

fn shown(color: &Option<String>) -> &str {
    color.as_deref().unwrap_or("None")
}

/// Random bytes from the host (WASI random).
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    if getrandom::fill(&mut bytes).is_err() {
        bytes.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
    }
    bytes
}

/// A random UUID (version 4), like Python's `uuid4()`.
fn uuid4() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

fn choose_random_color() -> &'static str {
    let [byte] = random_bytes::<1>();
    COLORS[usize::from(byte) % COLORS.len()]
}

fn get_device_reported_color(name: &str) -> Result<Option<String>, Error> {
    match shadow::get(name, "") {
        Ok(payload) => {
            let document: Value = serde_json::from_slice(&payload).unwrap_or(Value::Null);
            Ok(document["state"]["reported"][SHADOW_COLOR_PROPERTY].as_str().map(str::to_owned))
        }
        Err(Error::ResourceNotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

impl SmartLightDeviceManager {
    fn update_smart_light_device_list(&mut self) -> Result<(), String> {
        let response = config::get(&[CONFIGURATION_CLIENT_DEVICE_NAMES]).map_err(|e| e.to_string())?;
        let value: Value = serde_json::from_str(&response).map_err(|e| e.to_string())?;
        let updated: BTreeSet<String> = value[CONFIGURATION_CLIENT_DEVICE_NAMES]
            .as_array()
            .map(|names| names.iter().filter_map(|n| n.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let removed: Vec<String> = self.devices.keys().filter(|n| !updated.contains(*n)).cloned().collect();
        for name in removed {
            println!("Removing {name} from smart light device manager");
            self.devices.remove(&name);
        }
        let added: Vec<String> = updated.into_iter().filter(|n| !self.devices.contains_key(n)).collect();
        for name in added {
            println!("Adding {name} to smart light device manager");
            let reported_color = get_device_reported_color(&name).map_err(|e| e.to_string())?;
            println!("Current color for {name} is {}", shown(&reported_color));
            self.devices.insert(name, SmartLightDevice { reported_color, desired_color: None });
        }
        Ok(())
    }

    fn request_device_color_change(&mut self, name: &str, color: &str) -> Result<(), Error> {
        let client_token = uuid4();
        self.client_tokens.insert(client_token.clone());
        let payload = json!({"state": {"desired": {SHADOW_COLOR_PROPERTY: color}}, "clientToken": client_token});
        shadow::update(name, "", payload.to_string().as_bytes())?;
        if let Some(device) = self.devices.get_mut(name) {
            device.desired_color = Some(color.to_owned());
        }
        Ok(())
    }

    /// One round of the tutorial's main loop: a random color for every device.
    fn set_colors(&mut self) {
        let names: Vec<String> = self.devices.keys().cloned().collect();
        for name in names {
            let desired_color = choose_random_color();
            println!("Chose random color ({desired_color}) for {name}");
            let Some(device) = self.devices.get(&name) else { continue };
            if device.desired_color.as_deref() == Some(desired_color) {
                println!("Desired color for {name} is already {desired_color}");
            } else if device.reported_color.as_deref() == Some(desired_color) {
                println!("Reported color for {name} is already {desired_color}");
            } else {
                match self.request_device_color_change(&name, desired_color) {
                    Ok(()) => println!("Requested color change for {name} to {desired_color}"),
                    Err(e) => eprintln!("Exception occurred while updating the shadow of {name}: {e}"),
                }
            }
        }
    }

    fn on_shadow_update_accepted_event(&mut self, topic: &str, payload: &[u8]) {
        let Ok(accepted) = serde_json::from_slice::<Value>(payload) else {
            eprintln!("Unreadable shadow update on {topic}");
            return;
        };
        let Some(reported) = accepted["state"].get("reported") else { return };
        let Some(client_token) = accepted.get("clientToken").and_then(Value::as_str) else { return };
        if !self.client_tokens.remove(client_token) {
            return;
        }
        match reported.get(SHADOW_COLOR_PROPERTY) {
            Some(color) => {
                let client_device_name = topic.split('/').nth(2).unwrap_or_default();
                if let Some(device) = self.devices.get_mut(client_device_name) {
                    device.reported_color = color.as_str().map(str::to_owned);
                    println!("Received shadow update confirmation from client device: {client_device_name}");
                }
            }
            None => println!("Shadow update doesn't specify color"),
        }
    }
}

fn interval() -> Duration {
    let configured = config::get(&[CONFIGURATION_INTERVAL])
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|v| v[CONFIGURATION_INTERVAL].as_f64().or_else(|| v[CONFIGURATION_INTERVAL].as_str()?.parse().ok()));
    match configured {
        Some(seconds) if seconds > 0.0 => Duration::from_secs_f64(seconds),
        _ => SET_COLOR_INTERVAL,
    }
}

struct SmartLightManager;

impl Component for SmartLightManager {
    fn init() -> Result<(), String> {
        MANAGER.with(|m| m.borrow_mut().update_smart_light_device_list())?;
        pubsub::subscribe(SHADOW_UPDATE_TOPIC).map_err(|e| e.to_string())?;
        println!("Successfully subscribed to shadow update accepted topic");
        config::subscribe(&[CONFIGURATION_CLIENT_DEVICE_NAMES]).map_err(|e| e.to_string())?;
        println!("Successfully subscribed to configuration updates for smart light device names");
        timer::set_interval(interval()).map_err(|e| e.to_string())?;
        MANAGER.with(|m| m.borrow_mut().set_colors());
        Ok(())
    }

    fn on_message(topic: String, payload: Vec<u8>) {
        MANAGER.with(|m| m.borrow_mut().on_shadow_update_accepted_event(&topic, &payload));
    }

    fn on_configuration_update(_component: String, key_path: Vec<String>) {
        if key_path.iter().any(|k| k == CONFIGURATION_CLIENT_DEVICE_NAMES) {
            println!("Received configuration update for list of client devices");
            if let Err(e) = MANAGER.with(|m| m.borrow_mut().update_smart_light_device_list()) {
                eprintln!("Exception occurred while updating the device list: {e}");
            }
        }
    }

    fn on_timer(_id: u32) {
        MANAGER.with(|m| m.borrow_mut().set_colors());
    }
}

turf_sdk::export_component!(SmartLightManager);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_tokens_look_like_uuid4() {
        let token = uuid4();
        assert_eq!(token.len(), 36);
        assert_eq!(&token[14..15], "4");
        assert_ne!(uuid4(), token);
    }
}
