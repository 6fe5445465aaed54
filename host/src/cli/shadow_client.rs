//! `turf client shadow`: a smart light, like the tutorial's `basic_discovery_shadow.py`.
//!
//! Discovers and connects like `turf client publish`, subscribes to its shadow's update and get
//! responses and to `update/delta`, asks for the current document, and answers every delta for
//! the property by reporting the new value with the delta's client token, so whoever asked for the
//! change sees its token come back on `update/accepted`. Prints each step with the sample's
//! wording. Unlike the sample, an `update/accepted` without `reported` (the requester's own update
//! carrying the same token) is not taken as the answer to the light's report. Stops after `--max-updates` accepted reports, after `--duration`, or on Ctrl-C.

use std::collections::HashSet;
use std::time::Duration;

use clap::Args;
use rumqttc::{Event, Packet, QoS};
use serde_json::{Value, json};

use super::CliError;
use super::client::{ConnectArgs, Session, connect_device, failed};
use crate::shadow::topics::ShadowId;

/// The value reported when the shadow has none.
const SHADOW_VALUE_DEFAULT: &str = "off";

/// `turf client shadow`.
#[derive(Debug, Args)]
pub struct ShadowArgs {
    /// Where and who.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The shadow property this light follows.
    #[arg(long, default_value = "color")]
    pub property: String,
    /// Stop after this many accepted reports (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub max_updates: u32,
    /// Stop after this many seconds (0: run until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    pub duration: u64,
}

/// A random UUID (version 4) from the OS.
fn uuid4() -> String {
    uuid::Uuid::new_v4().to_string()
}

struct Light {
    shadow: ShadowId,
    property: String,
    value: Option<Value>,
    tokens: HashSet<String>,
    accepted_reports: u32,
}

/// Displays a JSON value as the Python sample would (`'red'` for strings).
fn shown(value: &Value) -> String {
    value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string())
}

impl Light {
    fn topic(&self, suffix: &str) -> String {
        format!("{}/{suffix}", self.shadow.prefix())
    }

    /// The sample's `change_shadow_value`: report `value`, reusing the delta's token if any.
    #[allow(clippy::print_stdout)] // command output
    async fn change(&mut self, session: &Session, value: Value, token: Option<String>) -> Result<(), CliError> {
        if self.value.as_ref() == Some(&value) {
            println!("Local value is already '{}'.", shown(&value));
            return Ok(());
        }
        println!("Changed local shadow value to '{}'.", shown(&value));
        self.value = Some(value.clone());
        println!("Updating reported shadow value to '{}'...", shown(&value));
        let token = token.unwrap_or_else(uuid4);
        let request = json!({"state": {"reported": {self.property.clone(): value}}, "clientToken": token});
        self.tokens.insert(token);
        session
            .client
            .publish(self.topic("update"), QoS::AtLeastOnce, false, request.to_string())
            .await
            .map_err(|e| failed(format!("Failed to publish update request: {e}")))?;
        println!("Update request published.");
        Ok(())
    }

    /// The desired value changed (or was deleted): take it on and report it.
    #[allow(clippy::print_stdout)] // command output
    async fn on_delta(&mut self, session: &Session, message: &Value, token: Option<String>) -> Result<(), CliError> {
        let property = self.property.clone();
        println!("Received shadow delta event.");
        match message["state"].get(&property) {
            Some(Value::Null) => {
                println!("  Delta reports that '{property}' was deleted. Resetting defaults...");
                self.change(session, json!(SHADOW_VALUE_DEFAULT), None).await
            }
            Some(value) => {
                println!("  Delta reports that desired value is '{}'. Changing local value...", shown(value));
                if let Some(token) = &token {
                    println!("  ClientToken is: {token}");
                }
                self.change(session, value.clone(), token).await
            }
            None => {
                println!("  Delta did not report a change in '{property}'");
                Ok(())
            }
        }
    }

    /// The answer to the first get: start from the delta, the reported value, or the default.
    #[allow(clippy::print_stdout)] // command output
    async fn on_initial_state(&mut self, session: &Session, message: &Value) -> Result<(), CliError> {
        let property = self.property.clone();
        println!("Finished getting initial shadow state.");
        if self.value.is_some() {
            println!("  Ignoring initial query because a delta event has already been received.");
        } else if let Some(value) = message["state"]["delta"].get(&property) {
            println!("  Shadow contains delta value '{}'.", shown(value));
            self.change(session, value.clone(), None).await?;
        } else if let Some(value) = message["state"]["reported"].get(&property) {
            println!("  Shadow contains reported value '{}'.", shown(value));
            self.value = Some(value.clone());
        } else {
            println!("  Shadow document lacks '{property}' property. Setting defaults...");
            self.change(session, json!(SHADOW_VALUE_DEFAULT), None).await?;
        }
        Ok(())
    }

    #[allow(clippy::print_stdout)] // command output
    async fn on_message(&mut self, session: &Session, topic: &str, payload: &[u8]) -> Result<(), CliError> {
        let message: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
        let token = message.get("clientToken").and_then(Value::as_str).map(str::to_owned);
        let ours = |tokens: &mut HashSet<String>| token.as_ref().is_some_and(|t| tokens.remove(t));
        let property = self.property.clone();
        if topic == self.topic("update/delta") {
            self.on_delta(session, &message, token).await?;
        } else if topic == self.topic("get/accepted") && ours(&mut self.tokens) {
            self.on_initial_state(session, &message).await?;
        } else if topic == self.topic("get/rejected") && ours(&mut self.tokens) {
            if message["code"] == 404 {
                println!("Thing has no shadow document. Creating with defaults...");
                self.change(session, json!(SHADOW_VALUE_DEFAULT), None).await?;
            } else {
                return Err(failed(format!(
                    "Get request was rejected. code:{} message:'{}'",
                    message["code"],
                    shown(&message["message"])
                )));
            }
        } else if topic == self.topic("update/accepted")
            && message["state"].get("reported").is_some()
            && ours(&mut self.tokens)
        {
            // A delta's token is the requester's; its own update/accepted (desired only) carries
            // that token too, so only an accepted report counts as the answer to ours.
            match message["state"]["reported"].get(&property) {
                Some(value) => println!("Finished updating reported shadow value to '{}'.", shown(value)),
                None => println!("Could not find shadow property with name: '{property}'."),
            }
            self.accepted_reports += 1;
        } else if topic == self.topic("update/rejected") && ours(&mut self.tokens) {
            return Err(failed(format!(
                "Update request was rejected. code:{} message:'{}'",
                message["code"],
                shown(&message["message"])
            )));
        }
        Ok(())
    }
}

/// Runs the smart light until it is told to stop.
#[allow(clippy::print_stdout)] // command output
pub async fn run(args: ShadowArgs) -> Result<(), CliError> {
    let shadow = ShadowId::new(&args.connect.thing, "")
        .map_err(|e| CliError::Usage(format!("--thing {:?}: {}", args.connect.thing, e.message)))?;
    let mut session = connect_device(&args.connect).await?;
    let mut light =
        Light { shadow, property: args.property.clone(), value: None, tokens: HashSet::new(), accepted_reports: 0 };
    let timeout = Duration::from_secs(args.connect.timeout);
    let groups = [
        ("Subscribing to Update responses...", ["update/accepted", "update/rejected"].as_slice()),
        ("Subscribing to Get responses...", ["get/accepted", "get/rejected"].as_slice()),
        ("Subscribing to Delta events...", ["update/delta"].as_slice()),
    ];
    for (note, suffixes) in groups {
        println!("{note}");
        for suffix in suffixes {
            session.client.subscribe(light.topic(suffix), QoS::AtLeastOnce).await.map_err(|e| failed(e.to_string()))?;
            wait_for_suback(&mut session, timeout).await?;
        }
    }
    println!("Requesting current shadow state...");
    let token = uuid4();
    light.tokens.insert(token.clone());
    session
        .client
        .publish(light.topic("get"), QoS::AtLeastOnce, false, json!({"clientToken": token}).to_string())
        .await
        .map_err(|e| failed(e.to_string()))?;
    let deadline = (args.duration > 0).then(|| tokio::time::Instant::now() + Duration::from_secs(args.duration));
    let result = loop {
        if args.max_updates > 0 && light.accepted_reports >= args.max_updates {
            break Ok(());
        }
        let event = tokio::select! {
            event = session.events.recv() => event,
            _ = sleep_until(deadline) => break Ok(()),
            _ = tokio::signal::ctrl_c() => break Ok(()),
        };
        match event {
            Some(Ok(Event::Incoming(Packet::Publish(p)))) => {
                if let Err(e) = light.on_message(&session, &p.topic, &p.payload).await {
                    break Err(e);
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => break Err(failed(format!("connection interrupted with error {e}"))),
            None => break Err(failed("connection closed")),
        }
    };
    println!("Disconnecting...");
    session.close().await;
    println!("Disconnected.");
    result
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn wait_for_suback(session: &mut Session, timeout: Duration) -> Result<(), CliError> {
    loop {
        match tokio::time::timeout(timeout, session.events.recv()).await.ok().flatten() {
            Some(Ok(Event::Incoming(Packet::SubAck(ack)))) => {
                if ack.return_codes.iter().any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure)) {
                    return Err(failed("subscription refused by the core's device policy"));
                }
                return Ok(());
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(failed(format!("connection lost: {e}"))),
            None => return Err(failed(format!("no SUBACK within {} s", timeout.as_secs()))),
        }
    }
}
