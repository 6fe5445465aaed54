//! The console's test client: publish a message on the local bus, to devices on LocalMqtt or
//! upstream, and watch one of them live (`GET /v1/messages/stream`, server-sent events).
//!
//! A publish goes through the same service messages a component's or the bridge's does (the
//! bus's [`Publish`], the broker's [`PublishToDevices`], the upstream's [`PublishUpstream`]);
//! the operator's messages are published as [`OPERATOR`]. A watch is one `Watcher` actor
//! subscribed like any other subscriber (a bus subscription, a broker tap, an upstream
//! subscription); it turns each message into an event at once (so it holds no host queue
//! credit) and hands it to the HTTP response through a bounded channel. A browser that reads
//! too slowly loses events, counted and reported in the next one; the host never waits for it.
//! How many watches may run, how many events wait for one browser and how large a test
//! message may be are [`ConsoleLimits`] (`[console]` in `config.toml`). A watch whose browser
//! went away stops within [`KEEP_ALIVE`] and drops its subscriptions.
//!
//! - `limits`: `[console]` in `config.toml`. `watch`: the watch actor and its event stream.

mod limits;
mod watch;

use actix::prelude::*;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use self::limits::{ConsoleLimits, ConsoleSettings};
pub use self::watch::{KEEP_ALIVE, SeenMessage, StillAllowed, Streams, watch};
use crate::broker::{BrokerHandle, PublishToDevices};
use crate::flow::Credit;
use crate::pubsub::{BusHandle, Publish};
use crate::topic;
use crate::upstream::{PublishUpstream, UpstreamHandle};

/// Who the operator's messages are published as.
pub const OPERATOR: &str = "turf-console";

/// Where a test message goes, or what a watch listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// The local publish/subscribe bus (components).
    Pubsub,
    /// Client devices on the broker (LocalMqtt).
    LocalMqtt,
    /// The upstream broker (IotCore).
    IotCore,
}

/// `POST /v1/messages`: publish one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestPublish {
    /// Where to.
    pub target: Target,
    /// Topic name (no wildcards).
    pub topic: String,
    /// Payload (text).
    pub payload: String,
    /// QoS for LocalMqtt (0 or 1; the bus has none, upstream is always 1).
    #[serde(default)]
    pub qos: u8,
}

/// Why a test publish or watch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessagesError {
    /// The topic or filter is not valid MQTT.
    #[error("{what} {text:?}: {reason}")]
    Topic {
        /// `topic` or `filter`.
        what: &'static str,
        /// What was given.
        text: String,
        /// Why it is not valid.
        reason: topic::TopicError,
    },
    /// The payload is too large.
    #[error("payload of {size} bytes is larger than the test client's limit of {limit} ([console] max_publish_bytes)")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A QoS the target does not take.
    #[error("qos {0}: use 0 or 1")]
    Qos(u8),
    /// No upstream broker is configured.
    #[error("no upstream (IotCore) broker is configured on this host")]
    NoUpstream,
    /// Too many watches already.
    #[error("{0} live message watches are open already ([console] max_watches); close one first")]
    TooManyStreams(usize),
    /// The service refused or is gone.
    #[error("{0}")]
    Service(String),
}

/// Checks and publishes `request` through the services' own messages.
pub async fn publish(
    services: &WatchServices,
    limits: ConsoleLimits,
    request: TestPublish,
) -> Result<(), MessagesError> {
    let WatchServices { bus, broker, upstream } = services;
    topic::validate_topic(&request.topic).map_err(|reason| MessagesError::Topic {
        what: "topic",
        text: request.topic.clone(),
        reason,
    })?;
    if request.payload.len() > limits.max_publish_bytes {
        return Err(MessagesError::TooLarge { size: request.payload.len(), limit: limits.max_publish_bytes });
    }
    if request.qos > 1 {
        return Err(MessagesError::Qos(request.qos));
    }
    let gone = |e: MailboxError| MessagesError::Service(format!("host service unavailable: {e}"));
    let payload = Bytes::from(request.payload);
    tracing::info!(target = ?request.target, topic = request.topic, bytes = payload.len(), "operator publish");
    match request.target {
        Target::Pubsub => bus
            .publish
            .send(Publish {
                publisher: OPERATOR.to_owned(),
                topic: request.topic,
                payload,
                credit: Credit::none(),
                span: tracing::Span::current(),
            })
            .await
            .map_err(gone)?
            .map_err(|e| MessagesError::Service(e.to_string())),
        Target::LocalMqtt => broker
            .to_devices
            .send(PublishToDevices {
                topic: request.topic,
                payload,
                qos: request.qos,
                retain: false,
                properties: None,
                credit: Credit::none(),
            })
            .await
            .map_err(gone),
        Target::IotCore => {
            if !upstream.configured {
                return Err(MessagesError::NoUpstream);
            }
            let message = PublishUpstream {
                topic: request.topic,
                payload,
                retain: false,
                properties: None,
                credit: Credit::none(),
            };
            upstream.publish.send(message).await.map_err(gone)?.map_err(|e| MessagesError::Service(e.to_string()))
        }
    }
}

/// The services a watch subscribes through.
#[derive(Clone)]
pub struct WatchServices {
    /// The bus.
    pub bus: BusHandle,
    /// The broker's taps.
    pub broker: BrokerHandle,
    /// The upstream connection.
    pub upstream: UpstreamHandle,
}
