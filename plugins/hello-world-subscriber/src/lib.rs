//! The tutorial's `hello_world_subscriber.py` as a Turf WebAssembly component: subscribes to
//! Hello World messages that client devices send through the bridge and prints each one.
#![allow(clippy::print_stdout)] // stdout is this component's log, as in the tutorial

use turf_sdk::{Component, pubsub};

/// Topic filter the tutorial's component subscribes to.
const CLIENT_DEVICE_HELLO_WORLD_TOPIC: &str = "clients/+/hello/world";

struct HelloWorldSubscriber;

impl Component for HelloWorldSubscriber {
    fn init() -> Result<(), String> {
        pubsub::subscribe(CLIENT_DEVICE_HELLO_WORLD_TOPIC)
            .map_err(|e| format!("Exception occurred when using IPC: {e}"))?;
        println!("Successfully subscribed to topic: {CLIENT_DEVICE_HELLO_WORLD_TOPIC}");
        Ok(())
    }

    fn on_message(_topic: String, payload: Vec<u8>) {
        println!("Received new message: {}", String::from_utf8_lossy(&payload));
    }
}

turf_sdk::export_component!(HelloWorldSubscriber);
