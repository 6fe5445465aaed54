//! Echoes every message it receives on `<prefix><topic>`, payload unchanged: the component in
//! the device → bridge → pubsub → component → device benchmark (`make bench`).
//!
//! Configuration: `subscribe` (a filter) and `prefix`, read once in `init`, so a message costs
//! one host call (the publish) and nothing else.
#![allow(clippy::print_stdout)] // stdout is this component's log

use std::cell::RefCell;

use turf_sdk::{Component, config, pubsub};

thread_local! {
    static PREFIX: RefCell<String> = const { RefCell::new(String::new()) };
}

struct Echo;

impl Component for Echo {
    fn init() -> Result<(), String> {
        let text = config::get(&[]).map_err(|e| e.to_string())?;
        let config: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let filter = config["subscribe"].as_str().ok_or("configuration needs \"subscribe\"")?;
        let prefix = config["prefix"].as_str().ok_or("configuration needs \"prefix\"")?;
        PREFIX.with(|p| *p.borrow_mut() = prefix.to_owned());
        pubsub::subscribe(filter).map_err(|e| e.to_string())?;
        println!("echoing {filter} to {prefix}…");
        Ok(())
    }

    fn on_message(topic: String, payload: Vec<u8>) {
        let target = PREFIX.with(|p| format!("{}{topic}", p.borrow()));
        if let Err(e) = pubsub::publish(&target, &payload) {
            println!("echo to {target} failed: {e}");
        }
    }
}

turf_sdk::export_component!(Echo);
