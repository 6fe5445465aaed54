//! A component that misbehaves on purpose, for the hostile-component tests (`tests/e2e/sandbox.rs`).
//!
//! Configuration:
//! - `behaviour`: what to do wrong (below).
//! - `trigger`: a pubsub topic it subscribes to in `init`; behaviours marked *on message* start
//!   when a message arrives there, so a test chooses the moment.
//!
//! Behaviours:
//! - `sleep` (on message): sleeps in a host call (WASI `monotonic-clock` + `poll`) for an hour.
//! - `spin` (on message): loops forever without calling the host.
//! - `memory` (on message): allocates and touches 1 MiB at a time until allocation fails.
//! - `publish-flood` (on message): publishes on `flood/out` in a loop, without end.
//! - `timers` (init): starts 64 timers of 10 ms; each tick does 900 ms of work.
//! - `subscribe-all` (init): subscribes to `#` (a test gives it no right to).
//! - `print` (on message): prints 100 MB to stdout.
//! - `trap-init` (init): traps in `init`.
//! - `sleep-init` (init): sleeps in a host call in `init` for an hour.
//! - `memory-hold` (init): takes memory 256 KiB at a time until the host refuses more (with
//!   `try_reserve`, so the refusal is not a trap), touches it and keeps it.
//! - `trap-loop` (init): starts a 10 ms timer whose first tick traps, so every restart traps again.
//!
//! Every line it prints is something a test looks for.
#![allow(clippy::print_stdout)] // stdout is this component's log

use std::time::{Duration, Instant};

use serde_json::Value;
use turf_sdk::{Component, config, pubsub, timer};

fn setting(key: &str) -> Option<String> {
    let text = config::get(&[]).ok()?;
    let value: Value = serde_json::from_str(&text).ok()?;
    value.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn behaviour() -> String {
    setting("behaviour").unwrap_or_default()
}

/// Keeps the CPU busy for `how_long` without calling the host.
fn work(how_long: Duration) {
    let start = Instant::now();
    let mut x: u64 = 1;
    while start.elapsed() < how_long {
        for _ in 0..10_000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

struct Hostile;

impl Component for Hostile {
    fn init() -> Result<(), String> {
        let behaviour = behaviour();
        match behaviour.as_str() {
            "trap-init" => {
                println!("trapping in init");
                std::process::abort();
            }
            "timers" => {
                for _ in 0..64 {
                    timer::set_interval(Duration::from_millis(10)).map_err(|e| e.to_string())?;
                }
            }
            "memory-hold" => {
                let mut held: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut chunk: Vec<u8> = Vec::new();
                    if chunk.try_reserve_exact(256 << 10).is_err() {
                        break;
                    }
                    chunk.resize(256 << 10, 1);
                    held.push(chunk);
                }
                println!("holding {} KiB", held.len() * 256);
                std::mem::forget(held);
            }
            "sleep-init" => {
                println!("sleeping in init");
                std::thread::sleep(Duration::from_secs(3600));
            }
            "trap-loop" => {
                timer::set_interval(Duration::from_millis(10)).map_err(|e| e.to_string())?;
            }
            "subscribe-all" => match pubsub::subscribe("#") {
                Ok(()) => println!("subscribed to everything"),
                Err(e) => println!("subscribe # failed: {e}"),
            },
            _ => {}
        }
        if let Some(trigger) = setting("trigger") {
            pubsub::subscribe(&trigger).map_err(|e| format!("subscribe {trigger}: {e}"))?;
        }
        println!("hostile ready: {behaviour}");
        Ok(())
    }

    fn on_message(topic: String, _payload: Vec<u8>) {
        let behaviour = behaviour();
        println!("triggered by {topic}: {behaviour}");
        match behaviour.as_str() {
            "sleep" => std::thread::sleep(Duration::from_secs(3600)),
            "spin" => loop {
                std::hint::spin_loop();
            },
            "memory" => {
                let mut held: Vec<Vec<u8>> = Vec::new();
                loop {
                    held.push(vec![1u8; 1 << 20]);
                    if held.len().is_multiple_of(4) {
                        println!("holding {} MiB", held.len());
                    }
                }
            }
            "publish-flood" => {
                let mut n: u64 = 0;
                loop {
                    n += 1;
                    if pubsub::publish("flood/out", &n.to_le_bytes()).is_err() {
                        println!("publish {n} refused");
                    }
                }
            }
            "print" => {
                let line = "x".repeat(99);
                for _ in 0..1_000_000 {
                    println!("{line}");
                }
                println!("printed 100 MB");
            }
            _ => {}
        }
    }

    fn on_timer(id: u32) {
        match behaviour().as_str() {
            "trap-loop" => {
                println!("trapping on tick {id}");
                std::process::abort();
            }
            "timers" => work(Duration::from_millis(900)),
            _ => {}
        }
    }
}

turf_sdk::export_component!(Hostile);
