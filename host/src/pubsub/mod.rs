//! The local publish/subscribe bus (Greengrass IPC pub/sub), separate from LocalMqtt.
//!
//! The `PubsubBus` actor owns the subscription table. Messages in: [`Subscribe`],
//! [`Unsubscribe`], [`UnsubscribeAll`], [`Publish`]. Messages out: [`PubsubMessage`] to each
//! subscriber's recipient. Components, the bridge and (later) the shadow manager all meet here
//! under their component names. It never checks access control (the caller's host functions do)
//! and never blocks: delivery is a mailbox send. A message relayed from a device carries its
//! [`Credit`] into every copy, so the host's pool bounds what waits in subscribers' mailboxes.
//!
//! - `subscriptions`: the pure subscription table and receive modes.

pub mod subscriptions;

use actix::prelude::*;
use bytes::Bytes;
use thiserror::Error;

use self::subscriptions::{ReceiveMode, Subscriptions};
use crate::flow::Credit;
use crate::topic::{self, TopicError};

/// A refused pubsub request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PubsubError {
    /// The topic or filter is not valid MQTT.
    #[error("invalid topic: {0}")]
    Topic(#[from] TopicError),
}

/// A message delivered to a subscriber.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct PubsubMessage {
    /// Topic it was published on.
    pub topic: String,
    /// Payload.
    pub payload: Bytes,
    /// Name of the publisher (component or service).
    pub publisher: String,
    /// Host queue space held for the device message this one relays.
    pub credit: Credit,
    /// The path it belongs to; a subscriber's handling is a child of it.
    pub span: tracing::Span,
}

/// Subscribe `subscriber` to `filter`.
#[derive(Message)]
#[rtype(result = "Result<(), PubsubError>")]
pub struct Subscribe {
    /// Name of the subscriber (component or service).
    pub subscriber: String,
    /// MQTT topic filter (`+`, `#` allowed).
    pub filter: String,
    /// Receive mode; `None` takes Greengrass's default for the filter.
    pub mode: Option<ReceiveMode>,
    /// Where messages go.
    pub recipient: Recipient<PubsubMessage>,
}

/// Remove one subscription; replies whether it existed.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Unsubscribe {
    /// Name of the subscriber.
    pub subscriber: String,
    /// The filter it subscribed with.
    pub filter: String,
}

/// Remove every subscription of a subscriber (it stopped or restarted).
#[derive(Message)]
#[rtype(result = "()")]
pub struct UnsubscribeAll {
    /// Name of the subscriber.
    pub subscriber: String,
}

/// Publish a message on the bus.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), PubsubError>")]
pub struct Publish {
    /// Name of the publisher.
    pub publisher: String,
    /// Topic name (no wildcards).
    pub topic: String,
    /// Payload.
    pub payload: Bytes,
    /// Host queue space held for the device message this one relays ([`Credit::none`] otherwise).
    pub credit: Credit,
    /// The path it belongs to (the device message it relays, or the call that published it).
    pub span: tracing::Span,
}

/// The pubsub bus service.
#[derive(Default)]
pub struct PubsubBus {
    subscriptions: Subscriptions<Recipient<PubsubMessage>>,
}

impl PubsubBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    fn subscribe(&mut self, msg: Subscribe) -> Result<(), PubsubError> {
        topic::validate_filter(&msg.filter)?;
        let mode = msg.mode.unwrap_or_else(|| ReceiveMode::default_for(&msg.filter));
        tracing::debug!(subscriber = msg.subscriber, filter = msg.filter, ?mode, "pubsub subscribe");
        self.subscriptions.subscribe(&msg.subscriber, &msg.filter, mode, msg.recipient);
        Ok(())
    }

    fn publish(&mut self, msg: Publish) -> Result<(), PubsubError> {
        topic::validate_topic(&msg.topic)?;
        let targets = self.subscriptions.targets(&msg.publisher, &msg.topic);
        if targets.iter().any(|t| !t.connected()) {
            self.subscriptions.retain_targets(Recipient::connected);
        }
        let _path = msg.span.enter();
        tracing::debug!(publisher = msg.publisher, subscribers = targets.len(), "published on the bus");
        let message = PubsubMessage {
            topic: msg.topic,
            payload: msg.payload,
            publisher: msg.publisher,
            credit: msg.credit,
            span: msg.span.clone(),
        };
        for target in targets {
            target.do_send(message.clone());
        }
        Ok(())
    }
}

/// What the bus offers, built once by the supervisor and cloned by every service that uses it.
#[derive(Clone)]
pub struct BusHandle {
    /// Subscribe a recipient to a filter.
    pub subscribe: Recipient<Subscribe>,
    /// Remove one subscription.
    pub unsubscribe: Recipient<Unsubscribe>,
    /// Remove every subscription of a subscriber.
    pub unsubscribe_all: Recipient<UnsubscribeAll>,
    /// Publish a message.
    pub publish: Recipient<Publish>,
}

impl BusHandle {
    /// The handle of a running bus.
    pub fn of(bus: &Addr<PubsubBus>) -> Self {
        Self {
            subscribe: bus.clone().recipient(),
            unsubscribe: bus.clone().recipient(),
            unsubscribe_all: bus.clone().recipient(),
            publish: bus.clone().recipient(),
        }
    }
}

impl Actor for PubsubBus {
    type Context = Context<Self>;
}

impl Supervised for PubsubBus {}

impl Handler<Subscribe> for PubsubBus {
    type Result = Result<(), PubsubError>;

    fn handle(&mut self, msg: Subscribe, _ctx: &mut Self::Context) -> Self::Result {
        self.subscribe(msg)
    }
}

impl Handler<Unsubscribe> for PubsubBus {
    type Result = bool;

    fn handle(&mut self, msg: Unsubscribe, _ctx: &mut Self::Context) -> bool {
        self.subscriptions.unsubscribe(&msg.subscriber, &msg.filter)
    }
}

impl Handler<UnsubscribeAll> for PubsubBus {
    type Result = ();

    fn handle(&mut self, msg: UnsubscribeAll, _ctx: &mut Self::Context) {
        self.subscriptions.remove_subscriber(&msg.subscriber);
    }
}

impl Handler<Publish> for PubsubBus {
    type Result = Result<(), PubsubError>;

    fn handle(&mut self, msg: Publish, _ctx: &mut Self::Context) -> Self::Result {
        self.publish(msg)
    }
}
