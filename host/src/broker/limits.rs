//! The broker's limits: the `[broker]` table of `config.toml`, validated (pure).
//!
//! Every queue between a publisher and a subscriber is bounded in bytes (see ARCHITECTURE.md,
//! "Flow control"), and every device is bounded in what it may hold: connections, handshakes,
//! packet size, subscriptions, topic depth, session lifetime, in-flight window and publish rate.
//! The defaults fit a Raspberry-Pi-class board: one stuck subscriber costs at most
//! [`DEFAULT_SESSION_QUEUE_BYTES`], all subscribers together at most
//! [`DEFAULT_TOTAL_QUEUE_BYTES`], [`DEFAULT_MAX_CONNECTIONS`] idle connections about 17 MB.
//! The README's "Configuration" section lists each key. Talks to nobody; the broker reads the
//! result at start.

use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

/// Queued and in-flight messages one session may hold (about 2,000 small messages, or eight of
/// the largest, 128 KiB, ones).
pub const DEFAULT_SESSION_QUEUE_BYTES: u32 = 1 << 20;
/// Queued and in-flight messages all sessions together may hold.
pub const DEFAULT_TOTAL_QUEUE_BYTES: u32 = 32 << 20;
/// How long a connected subscriber may hold messages without acknowledging any while
/// publishers wait on it, before it is disconnected.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Packets one connection may have read while one of its publishes waits for queue space.
pub const DEFAULT_INBOUND_QUEUE_BYTES: u32 = 64 << 10;
/// Device messages on their way through the host (bridge, bus, shadow manager, upstream
/// spool, back to devices) at any moment.
pub const DEFAULT_HOST_QUEUE_BYTES: u32 = 1 << 20;

/// Messages one session may hold, queued and in flight (rmqtt's own default count).
pub const DEFAULT_SESSION_QUEUE_MESSAGES: u32 = 1000;
/// Open connections per listener (each idle mutual-TLS connection costs about 16.5 kB).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 1024;
/// TLS handshakes and CONNECTs under way at once per listener (a handshake costs CPU: beyond
/// this, new sockets are closed at once instead of queueing behind the others).
pub const DEFAULT_MAX_HANDSHAKES: u32 = 64;
/// Most `max_handshakes` may allow: rmqtt also runs that many CONNECT workers per listener,
/// created up front, so it cannot be "unlimited" (0 would leave no worker at all).
pub const MAX_HANDSHAKES: u64 = 10_000;
/// What rmqtt is told for `max_connections = 0` (it sizes a CONNECT queue with it).
pub const NO_CONNECTION_LIMIT: usize = 1_000_000;
/// Most handshakes `max_handshakes` may allow.
/// Time from accepting a socket to its first MQTT packet (TLS included).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest MQTT packet accepted (AWS IoT Core's and Greengrass's Moquette limit, 128 KiB).
pub const DEFAULT_MAX_PACKET_BYTES: u32 = 128 * 1024;
/// Subscriptions one client may hold (AWS IoT Core's per-connection limit).
pub const DEFAULT_MAX_SUBSCRIPTIONS: u32 = 50;
/// Levels of a topic name or filter (`a/b/c` has three). AWS IoT Core allows 8; deeper local
/// topics are common enough that the default leaves room.
pub const DEFAULT_MAX_TOPIC_LEVELS: u16 = 16;
/// Longest a persistent session is kept after its client went away (AWS IoT Core's default).
pub const DEFAULT_MAX_SESSION_EXPIRY: Duration = Duration::from_secs(3600);
/// Unacknowledged QoS 1/2 messages per session, each way (MQTT 5 Receive Maximum). rmqtt's
/// default (16) also caps a client's *incoming* unfinished QoS 2 publishes and drops the
/// connection beyond it, which MQTT 3.1.1 clients (no Receive Maximum) hit with ordinary bursts.
pub const DEFAULT_MAX_INFLIGHT: u16 = 1024;
/// PUBLISH packets one connection may send per second, with a burst of as many; beyond it the
/// connection is not read until the rate allows (the client slows down, nothing is dropped).
pub const DEFAULT_PUBLISH_RATE: u32 = 1000;
/// Topic aliases an MQTT 5 client may set up (CONNACK Topic Alias Maximum).
pub const DEFAULT_MAX_TOPIC_ALIASES: u16 = 32;
/// Longest keep alive a client may ask for: MQTT 5 clients asking more are told this one in
/// CONNACK (Server Keep Alive); MQTT 3.1.1 clients asking more are refused (3.1.1 cannot tell
/// them). The default honours every request.
pub const DEFAULT_MAX_KEEPALIVE_SECS: u16 = u16::MAX;
/// Bytes of all retained messages (topic, payload, properties and bookkeeping).
pub const DEFAULT_RETAINED_BYTES: u32 = 64 << 20;
/// Retained messages (topics).
pub const DEFAULT_RETAINED_MESSAGES: u32 = 100_000;

const MIN_QUEUE_BYTES: u64 = 4 << 10;
const MAX_QUEUE_BYTES: u64 = 1 << 31;

/// Validated queue limits of the broker and the host's own message path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerLimits {
    /// Bytes of queued and in-flight messages per session.
    pub session_queue_bytes: u32,
    /// Bytes of queued and in-flight messages of all sessions.
    pub total_queue_bytes: u32,
    /// A subscriber without progress this long, with publishers waiting on it, is disconnected.
    pub stall_timeout: Duration,
    /// Bytes of packets a connection may have read behind a waiting publish.
    pub inbound_queue_bytes: u32,
    /// Bytes of device messages in transit through the host's services.
    pub host_queue_bytes: u32,
    /// Threads that run device connections (TLS, decoding, routing); 0 runs them on the host's
    /// main thread with everything else.
    pub threads: u16,
    /// Messages queued and in flight per session (0: bytes only).
    pub session_queue_messages: u32,
    /// Open connections per listener (0: no limit).
    pub max_connections: u32,
    /// Handshakes under way at once per listener (at least 1).
    pub max_handshakes: u32,
    /// From accept to the first MQTT packet.
    pub handshake_timeout: Duration,
    /// Largest packet, either way.
    pub max_packet_bytes: u32,
    /// Subscriptions per client (0: no limit).
    pub max_subscriptions: u32,
    /// Levels of a topic name or filter (0: no limit).
    pub max_topic_levels: u16,
    /// Longest a session is kept after its client went away.
    pub max_session_expiry: Duration,
    /// Unacknowledged QoS 1/2 messages per session, each way.
    pub max_inflight: u16,
    /// PUBLISH packets per second per connection (0: no limit).
    pub publish_rate: u32,
    /// Topic aliases per MQTT 5 connection (0: none).
    pub max_topic_aliases: u16,
    /// Longest keep alive, seconds.
    pub max_keepalive_secs: u16,
    /// Bytes of all retained messages.
    pub retained_bytes: u32,
    /// Retained messages.
    pub retained_messages: u32,
}

/// Threads for device connections: all cores but the one the host's other services (bridge,
/// bus, components, deployments) run on, at least one, at most [`MAX_THREADS`]. Measured on two
/// cores with local clients (docs/BENCHMARKS.md): two broker threads handshake 1.6× faster
/// but route 1→1 messages 1.5× slower and with 2.7× the latency of one.
pub fn default_threads() -> u16 {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    u16::try_from(cores.saturating_sub(1)).unwrap_or(MAX_THREADS).clamp(1, MAX_THREADS)
}

/// Most threads `[broker] threads` may ask for.
pub const MAX_THREADS: u16 = 64;

impl Default for BrokerLimits {
    fn default() -> Self {
        Self {
            session_queue_bytes: DEFAULT_SESSION_QUEUE_BYTES,
            total_queue_bytes: DEFAULT_TOTAL_QUEUE_BYTES,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            inbound_queue_bytes: DEFAULT_INBOUND_QUEUE_BYTES,
            host_queue_bytes: DEFAULT_HOST_QUEUE_BYTES,
            threads: default_threads(),
            session_queue_messages: DEFAULT_SESSION_QUEUE_MESSAGES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_packet_bytes: DEFAULT_MAX_PACKET_BYTES,
            max_subscriptions: DEFAULT_MAX_SUBSCRIPTIONS,
            max_topic_levels: DEFAULT_MAX_TOPIC_LEVELS,
            max_session_expiry: DEFAULT_MAX_SESSION_EXPIRY,
            max_inflight: DEFAULT_MAX_INFLIGHT,
            publish_rate: DEFAULT_PUBLISH_RATE,
            max_topic_aliases: DEFAULT_MAX_TOPIC_ALIASES,
            max_keepalive_secs: DEFAULT_MAX_KEEPALIVE_SECS,
            retained_bytes: DEFAULT_RETAINED_BYTES,
            retained_messages: DEFAULT_RETAINED_MESSAGES,
        }
    }
}

/// A `[broker]` setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("broker.{field}: {reason}")]
pub struct LimitError {
    /// The setting.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// The `[broker]` table of `config.toml`, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerSettings {
    /// Bytes per session.
    pub session_queue_bytes: Option<u64>,
    /// Bytes of all sessions.
    pub total_queue_bytes: Option<u64>,
    /// Stall timeout in milliseconds.
    pub subscriber_stall_timeout_ms: Option<u64>,
    /// Bytes read behind a waiting publish, per connection.
    pub inbound_queue_bytes: Option<u64>,
    /// Bytes of device messages in transit through the host.
    pub host_queue_bytes: Option<u64>,
    /// Threads for device connections.
    pub threads: Option<u64>,
    /// Messages per session.
    pub session_queue_messages: Option<u64>,
    /// Connections per listener.
    pub max_connections: Option<u64>,
    /// Concurrent handshakes per listener.
    pub max_handshakes: Option<u64>,
    /// Handshake timeout in milliseconds.
    pub handshake_timeout_ms: Option<u64>,
    /// Largest packet in bytes.
    pub max_packet_bytes: Option<u64>,
    /// Subscriptions per client.
    pub max_subscriptions: Option<u64>,
    /// Topic levels.
    pub max_topic_levels: Option<u64>,
    /// Longest session expiry in seconds.
    pub max_session_expiry_secs: Option<u64>,
    /// In-flight window.
    pub max_inflight: Option<u64>,
    /// Publishes per second per connection.
    pub publish_rate: Option<u64>,
    /// Topic aliases per connection.
    pub max_topic_aliases: Option<u64>,
    /// Longest keep alive in seconds.
    pub max_keepalive_secs: Option<u64>,
    /// Bytes of retained messages.
    pub retained_bytes: Option<u64>,
    /// Retained messages.
    pub retained_messages: Option<u64>,
}

/// `value` (or `default` when absent) if it lies in `range`, as `T`.
fn ranged<T: TryFrom<u64> + Copy>(
    field: &'static str,
    value: Option<u64>,
    default: T,
    range: std::ops::RangeInclusive<u64>,
    unit: &str,
) -> Result<T, LimitError> {
    let Some(value) = value else { return Ok(default) };
    if !range.contains(&value) {
        let (low, high) = range.into_inner();
        return Err(LimitError { field, reason: format!("{value} is out of range ({low} to {high}{unit})") });
    }
    T::try_from(value).map_err(|_| LimitError { field, reason: format!("{value} is too large") })
}

fn bytes(field: &'static str, value: Option<u64>, default: u32) -> Result<u32, LimitError> {
    let Some(value) = value else { return Ok(default) };
    if !(MIN_QUEUE_BYTES..=MAX_QUEUE_BYTES).contains(&value) {
        return Err(LimitError {
            field,
            reason: format!("{value} is out of range ({MIN_QUEUE_BYTES} to {MAX_QUEUE_BYTES} bytes)"),
        });
    }
    u32::try_from(value).map_err(|_| LimitError { field, reason: format!("{value} is too large") })
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl TryFrom<BrokerSettings> for BrokerLimits {
    type Error = LimitError;

    /// Each setting given replaces its default, or is refused naming its field and range.
    fn try_from(settings: BrokerSettings) -> Result<Self, LimitError> {
        let mut limits = Self::default();
        limits.set_queues(&settings)?;
        limits.set_admission(&settings)?;
        limits.set_client_shape(&settings)?;
        Ok(limits)
    }
}

impl BrokerLimits {
    /// The byte budgets of the message path, the stall timeout and the broker's threads.
    fn set_queues(&mut self, s: &BrokerSettings) -> Result<(), LimitError> {
        self.session_queue_bytes = bytes("session_queue_bytes", s.session_queue_bytes, self.session_queue_bytes)?;
        self.total_queue_bytes = bytes("total_queue_bytes", s.total_queue_bytes, self.total_queue_bytes)?;
        if self.total_queue_bytes < self.session_queue_bytes {
            let (total, session) = (self.total_queue_bytes, self.session_queue_bytes);
            let reason = format!("{total} is smaller than session_queue_bytes ({session})");
            return Err(LimitError { field: "total_queue_bytes", reason });
        }
        let stall = ranged(
            "subscriber_stall_timeout_ms",
            s.subscriber_stall_timeout_ms,
            millis(self.stall_timeout),
            100..=3_600_000,
            " ms",
        )?;
        self.stall_timeout = Duration::from_millis(stall);
        self.inbound_queue_bytes = bytes("inbound_queue_bytes", s.inbound_queue_bytes, self.inbound_queue_bytes)?;
        self.host_queue_bytes = bytes("host_queue_bytes", s.host_queue_bytes, self.host_queue_bytes)?;
        self.session_queue_messages = ranged(
            "session_queue_messages",
            s.session_queue_messages,
            self.session_queue_messages,
            0..=1_000_000,
            " messages; 0 bounds by bytes only",
        )?;
        self.retained_bytes = bytes("retained_bytes", s.retained_bytes, self.retained_bytes)?;
        self.retained_messages =
            ranged("retained_messages", s.retained_messages, self.retained_messages, 0..=10_000_000, "")?;
        self.threads = ranged(
            "threads",
            s.threads,
            self.threads,
            0..=u64::from(MAX_THREADS),
            "; 0 shares the host's main thread",
        )?;
        Ok(())
    }

    /// Who gets in, and how fast: connections, handshakes, keepalive, session expiry.
    fn set_admission(&mut self, s: &BrokerSettings) -> Result<(), LimitError> {
        self.max_connections =
            ranged("max_connections", s.max_connections, self.max_connections, 0..=1_000_000, "; 0 is no limit")?;
        self.max_handshakes = ranged("max_handshakes", s.max_handshakes, self.max_handshakes, 1..=MAX_HANDSHAKES, "")?;
        let handshake = ranged(
            "handshake_timeout_ms",
            s.handshake_timeout_ms,
            millis(self.handshake_timeout),
            100..=600_000,
            " ms",
        )?;
        self.handshake_timeout = Duration::from_millis(handshake);
        self.max_keepalive_secs =
            ranged("max_keepalive_secs", s.max_keepalive_secs, self.max_keepalive_secs, 1..=65_535, " seconds")?;
        let expiry = ranged(
            "max_session_expiry_secs",
            s.max_session_expiry_secs,
            self.max_session_expiry.as_secs(),
            1..=u64::from(u32::MAX),
            " seconds",
        )?;
        self.max_session_expiry = Duration::from_secs(expiry);
        Ok(())
    }

    /// What one client's traffic may look like: packets, subscriptions, topics, in-flight
    /// messages, publish rate, topic aliases.
    fn set_client_shape(&mut self, s: &BrokerSettings) -> Result<(), LimitError> {
        self.max_packet_bytes =
            ranged("max_packet_bytes", s.max_packet_bytes, self.max_packet_bytes, 1024..=(256 << 20), " bytes")?;
        self.max_subscriptions =
            ranged("max_subscriptions", s.max_subscriptions, self.max_subscriptions, 0..=1_000_000, "; 0 is no limit")?;
        self.max_topic_levels =
            ranged("max_topic_levels", s.max_topic_levels, self.max_topic_levels, 0..=1024, "; 0 is no limit")?;
        self.max_inflight = ranged("max_inflight", s.max_inflight, self.max_inflight, 1..=65_535, "")?;
        self.publish_rate =
            ranged("publish_rate", s.publish_rate, self.publish_rate, 0..=10_000_000, " per second; 0 is no limit")?;
        self.max_topic_aliases =
            ranged("max_topic_aliases", s.max_topic_aliases, self.max_topic_aliases, 0..=65_535, "")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
