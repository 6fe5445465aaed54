//! The console test client's limits: `[console]` in `config.toml`, each refused out of its range
//! with the setting's name.

use serde::Deserialize;

/// The test client's limits (`[console]` in `config.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsoleLimits {
    /// Live watches at once (`max_watches`, default 8).
    pub max_watches: usize,
    /// Events waiting for one slow browser before new ones are dropped (`watch_queue`,
    /// default 256).
    pub watch_queue: usize,
    /// Largest payload the test client publishes, in bytes (`max_publish_bytes`, default
    /// 128 KiB, at most 512 KiB: the request carrying it, JSON-escaped, stays under the
    /// API's 4 MiB body limit).
    pub max_publish_bytes: usize,
    /// Open connections to the HTTP listener at once (`max_connections`, default 64); past
    /// it new ones wait for the OS backlog, so scrapers and browsers cannot use up the host's
    /// file descriptors.
    pub max_connections: usize,
}

impl Default for ConsoleLimits {
    fn default() -> Self {
        Self { max_watches: 8, watch_queue: 256, max_publish_bytes: 128 * 1024, max_connections: 64 }
    }
}

/// `[console]` in `config.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSettings {
    /// See [`ConsoleLimits::max_watches`].
    pub max_watches: Option<usize>,
    /// See [`ConsoleLimits::watch_queue`].
    pub watch_queue: Option<usize>,
    /// See [`ConsoleLimits::max_publish_bytes`].
    pub max_publish_bytes: Option<usize>,
    /// See [`ConsoleLimits::max_connections`].
    pub max_connections: Option<usize>,
}

/// `value` (or `default`) if within `range`; otherwise an error naming the setting and range.
fn within(
    name: &str,
    value: Option<usize>,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
) -> Result<usize, String> {
    let value = value.unwrap_or(default);
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(format!("[console] {name} = {value}: must be from {} to {}", range.start(), range.end()))
    }
}

impl TryFrom<ConsoleSettings> for ConsoleLimits {
    type Error = String;

    /// The limits, each within its range.
    fn try_from(settings: ConsoleSettings) -> Result<Self, String> {
        let defaults = Self::default();
        Ok(Self {
            max_watches: within("max_watches", settings.max_watches, defaults.max_watches, 1..=64)?,
            watch_queue: within("watch_queue", settings.watch_queue, defaults.watch_queue, 16..=65_536)?,
            max_publish_bytes: within(
                "max_publish_bytes",
                settings.max_publish_bytes,
                defaults.max_publish_bytes,
                1..=(512 << 10),
            )?,
            max_connections: within("max_connections", settings.max_connections, defaults.max_connections, 16..=4096)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_settings_out_of_range_name_the_setting() {
        assert_eq!(ConsoleLimits::try_from(ConsoleSettings::default()), Ok(ConsoleLimits::default()));
        let zero = ConsoleSettings { max_watches: Some(0), ..ConsoleSettings::default() };
        assert_eq!(ConsoleLimits::try_from(zero), Err("[console] max_watches = 0: must be from 1 to 64".to_owned()));
        let huge = ConsoleSettings { max_publish_bytes: Some(usize::MAX), ..ConsoleSettings::default() };
        assert!(ConsoleLimits::try_from(huge).is_err_and(|e| e.contains("max_publish_bytes")));
        let over_body = ConsoleSettings { max_publish_bytes: Some(1 << 20), ..ConsoleSettings::default() };
        assert!(ConsoleLimits::try_from(over_body).is_err_and(|e| e.contains("must be from 1 to 524288")));
        let few = ConsoleSettings { max_connections: Some(2), ..ConsoleSettings::default() };
        assert!(ConsoleLimits::try_from(few).is_err_and(|e| e.contains("max_connections = 2")));
        let set = ConsoleSettings { watch_queue: Some(1024), ..ConsoleSettings::default() };
        assert_eq!(ConsoleLimits::try_from(set).map(|l| l.watch_queue), Ok(1024));
    }
}
