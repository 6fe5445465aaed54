//! The broker's queue limits: the `[broker]` table of `config.toml`, validated (pure).
//!
//! Every queue between a publisher and a subscriber is bounded in bytes (see ARCHITECTURE.md,
//! "Flow control"). The defaults fit a small board: one stuck subscriber costs at most
//! [`DEFAULT_SESSION_QUEUE_BYTES`], all subscribers together at most
//! [`DEFAULT_TOTAL_QUEUE_BYTES`]. Talks to nobody; the broker reads the result at start.

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

impl TryFrom<BrokerSettings> for BrokerLimits {
    type Error = LimitError;

    fn try_from(settings: BrokerSettings) -> Result<Self, LimitError> {
        let defaults = Self::default();
        let session_queue_bytes =
            bytes("session_queue_bytes", settings.session_queue_bytes, defaults.session_queue_bytes)?;
        let total_queue_bytes = bytes("total_queue_bytes", settings.total_queue_bytes, defaults.total_queue_bytes)?;
        if total_queue_bytes < session_queue_bytes {
            return Err(LimitError {
                field: "total_queue_bytes",
                reason: format!("{total_queue_bytes} is smaller than session_queue_bytes ({session_queue_bytes})"),
            });
        }
        let stall_timeout = match settings.subscriber_stall_timeout_ms {
            None => defaults.stall_timeout,
            Some(ms) if (100..=3_600_000).contains(&ms) => Duration::from_millis(ms),
            Some(ms) => {
                return Err(LimitError {
                    field: "subscriber_stall_timeout_ms",
                    reason: format!("{ms} is out of range (100 ms to one hour)"),
                });
            }
        };
        Ok(Self {
            session_queue_bytes,
            total_queue_bytes,
            stall_timeout,
            inbound_queue_bytes: bytes(
                "inbound_queue_bytes",
                settings.inbound_queue_bytes,
                defaults.inbound_queue_bytes,
            )?,
            host_queue_bytes: bytes("host_queue_bytes", settings.host_queue_bytes, defaults.host_queue_bytes)?,
            threads: match settings.threads {
                None => defaults.threads,
                Some(n) if n <= u64::from(MAX_THREADS) => n as u16,
                Some(n) => {
                    return Err(LimitError {
                        field: "threads",
                        reason: format!("{n} is out of range (0 to {MAX_THREADS}; 0 shares the host's main thread)"),
                    });
                }
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_settings_take_the_defaults() {
        assert_eq!(BrokerLimits::try_from(BrokerSettings::default()), Ok(BrokerLimits::default()));
    }

    #[test]
    fn settings_override_the_defaults() {
        let settings = BrokerSettings {
            session_queue_bytes: Some(65_536),
            total_queue_bytes: Some(1 << 20),
            subscriber_stall_timeout_ms: Some(500),
            inbound_queue_bytes: Some(8192),
            host_queue_bytes: Some(16_384),
            threads: Some(3),
        };
        let limits = BrokerLimits::try_from(settings).unwrap();
        assert_eq!(limits.session_queue_bytes, 65_536);
        assert_eq!(limits.total_queue_bytes, 1 << 20);
        assert_eq!(limits.stall_timeout, Duration::from_millis(500));
        assert_eq!(limits.inbound_queue_bytes, 8192);
        assert_eq!(limits.host_queue_bytes, 16_384);
        assert_eq!(limits.threads, 3);
    }

    #[test]
    fn out_of_range_settings_name_the_field() {
        let zero = BrokerSettings { session_queue_bytes: Some(0), ..BrokerSettings::default() };
        assert_eq!(BrokerLimits::try_from(zero).unwrap_err().field, "session_queue_bytes");
        let huge = BrokerSettings { host_queue_bytes: Some(u64::MAX), ..BrokerSettings::default() };
        assert_eq!(BrokerLimits::try_from(huge).unwrap_err().field, "host_queue_bytes");
        let inverted = BrokerSettings {
            session_queue_bytes: Some(1 << 20),
            total_queue_bytes: Some(1 << 16),
            ..Default::default()
        };
        let error = BrokerLimits::try_from(inverted).unwrap_err();
        assert_eq!(error.to_string(), "broker.total_queue_bytes: 65536 is smaller than session_queue_bytes (1048576)");
        let instant = BrokerSettings { subscriber_stall_timeout_ms: Some(0), ..BrokerSettings::default() };
        assert_eq!(BrokerLimits::try_from(instant).unwrap_err().field, "subscriber_stall_timeout_ms");
        let many = BrokerSettings { threads: Some(65), ..BrokerSettings::default() };
        assert_eq!(BrokerLimits::try_from(many).unwrap_err().field, "threads");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error = toml::from_str::<BrokerSettings>("session_queue_byte = 5").unwrap_err();
        assert!(error.to_string().contains("session_queue_byte"), "{error}");
    }
}
