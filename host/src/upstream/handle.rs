//! What the upstream service offers: the messages it takes, what it reports, and its handle.

use actix::prelude::*;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{Upstream, UpstreamError};
use crate::flow::Credit;
use crate::properties::MessageProperties;

/// Publish a message upstream at QoS 1 (spooled until acknowledged).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), UpstreamError>")]
pub struct PublishUpstream {
    /// Upstream topic.
    pub topic: String,
    /// Payload.
    pub payload: Bytes,
    /// Retain flag.
    pub retain: bool,
    /// MQTT 5 properties (sent when the upstream link speaks MQTT 5; spooled with it).
    pub properties: Option<std::sync::Arc<MessageProperties>>,
    /// Host queue space of the device message this one relays (returned once spooled).
    pub credit: Credit,
}

/// Publish now at QoS 1, without the spool, if the connection is up (else
/// [`UpstreamError::NotConnected`]): a request whose answer is awaited (shadow sync's) must never
/// go out later, after its asker gave up. One lost with the connection is not sent again.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), UpstreamError>")]
pub struct RequestUpstream {
    /// Upstream topic.
    pub topic: String,
    /// Payload.
    pub payload: Bytes,
}

/// A message from the upstream broker for a subscriber.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct UpstreamMessage {
    /// Topic.
    pub topic: String,
    /// Payload.
    pub payload: Bytes,
    /// Its MQTT 5 properties (MQTT 5 upstream links only).
    pub properties: Option<std::sync::Arc<MessageProperties>>,
    /// Host queue space this message holds until every copy is done with; the connection
    /// stops reading from the upstream broker while its pool is empty.
    pub credit: Credit,
}

/// Subscribe `subscriber` to `filter` on the upstream broker.
#[derive(Message, Clone)]
#[rtype(result = "Result<(), UpstreamError>")]
pub struct SubscribeUpstream {
    /// Who subscribes (a component name, or the bridge).
    pub subscriber: String,
    /// MQTT topic filter.
    pub filter: String,
    /// Where its messages go.
    pub recipient: Recipient<UpstreamMessage>,
}

/// Drop `subscriber`'s subscription to `filter`, or all of them with `None`; replies whether
/// there was one.
#[derive(Message, Debug, Clone)]
#[rtype(result = "bool")]
pub struct UnsubscribeUpstream {
    /// Who.
    pub subscriber: String,
    /// Which filter; `None` for all.
    pub filter: Option<String>,
}

/// Close the connection for good (host shutdown); the spool stays on disk.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopUpstream;

/// The connection's state for `turf status`.
#[derive(Message)]
#[rtype(result = "UpstreamStatus")]
pub struct GetUpstreamStatus;

/// Where the upstream connection stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamStatus {
    /// `mqtts://host:port`, or `None` when no upstream is configured.
    pub endpoint: Option<String>,
    /// `disabled`, `connecting`, `connected` or `disconnected`.
    pub state: String,
    /// Since when (seconds since the epoch).
    pub since: Option<i64>,
    /// Messages waiting in the spool.
    pub spooled: u64,
    /// Their size in bytes.
    pub spooled_bytes: u64,
    /// Messages dropped because the spool was full (since the host started).
    pub dropped: u64,
    /// Messages the broker acknowledged (since the host started).
    pub delivered: u64,
    /// Upstream topic filters subscribed.
    pub subscriptions: usize,
    /// The last connection error.
    pub last_error: Option<String>,
}

/// What the upstream service offers, built once by the supervisor.
#[derive(Clone)]
pub struct UpstreamHandle {
    /// Publish upstream (spooled until acknowledged).
    pub publish: Recipient<PublishUpstream>,
    /// Publish now, unspooled, if connected.
    pub request: Recipient<RequestUpstream>,
    /// Subscribe on the upstream broker.
    pub subscribe: Recipient<SubscribeUpstream>,
    /// Unsubscribe from the upstream broker.
    pub unsubscribe: Recipient<UnsubscribeUpstream>,
    /// The connection's state.
    pub status: Recipient<GetUpstreamStatus>,
    /// Stop the connection (shutdown).
    pub stop: Recipient<StopUpstream>,
    /// Whether an upstream broker is configured at all.
    pub configured: bool,
}

impl UpstreamHandle {
    /// The handle of a running upstream service; `configured` says whether it has a broker.
    pub fn of(upstream: &Addr<Upstream>, configured: bool) -> Self {
        Self {
            publish: upstream.clone().recipient(),
            request: upstream.clone().recipient(),
            subscribe: upstream.clone().recipient(),
            unsubscribe: upstream.clone().recipient(),
            status: upstream.clone().recipient(),
            stop: upstream.clone().recipient(),
            configured,
        }
    }
}
