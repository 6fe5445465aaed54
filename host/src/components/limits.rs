//! What one component may use: [`ComponentLimits`] (the host's defaults, `config.toml`
//! `[components]`, see [`ComponentSettings`]) and [`LimitOverrides`] (a recipe's
//! `SystemResourceLimits`), with the ranges both accept written once in [`limit_ranges`].
//! Pure: parsing and checking only.

use std::time::Duration;

/// Limits applied to every WebAssembly component instance. The defaults come from `turf run`;
/// a recipe's `SystemResourceLimits` overrides them per component (see
/// `deploy::recipe::LimitOverrides`).
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentLimits {
    /// All linear memories and tables of one instance together, in bytes. The default lets 20
    /// components fit a 256 MB device with room for the host.
    pub memory_bytes: usize,
    /// Longest one call (a message, a timer, a configuration update) may take, wall clock,
    /// host calls included.
    pub call_budget: Duration,
    /// Longest `init` may take, wall clock, host calls included.
    pub init_budget: Duration,
    /// Share of the component thread a component may use over a sliding second (Greengrass
    /// `cpus`); past it, its calls wait.
    pub cpus: f64,
    /// Messages its inbox holds before the oldest is dropped.
    pub queue_messages: usize,
    /// Bytes (topics and payloads) its inbox holds before the oldest is dropped.
    pub queue_bytes: usize,
    /// Messages a second it may publish (bus and upstream together); past it a publish waits.
    pub publish_rate: u32,
    /// Bytes a second it may write to its log (stdout, stderr, `logging`), with a burst of 16
    /// seconds' worth; the rest is dropped and counted.
    pub log_bytes_per_sec: usize,
}

impl Default for ComponentLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 8 << 20,
            call_budget: Duration::from_secs(1),
            init_budget: Duration::from_secs(10),
            cpus: 0.5,
            queue_messages: 1000,
            queue_bytes: 1 << 20,
            publish_rate: 50_000,
            log_bytes_per_sec: 64 << 10,
        }
    }
}

/// The accepted range of each component limit, written once for `config.toml`'s
/// `[components]` and a recipe's `SystemResourceLimits`: (smallest, largest).
pub mod limit_ranges {
    /// `memory`, KiB (64 KiB to 4 GiB).
    pub const MEMORY_KIB: (f64, f64) = (64.0, 4.0 * 1024.0 * 1024.0);
    /// `cpus`, a share of the component thread.
    pub const CPUS: (f64, f64) = (0.01, 1.0);
    /// `callTimeoutMs` (10 ms to 60 s).
    pub const CALL_TIMEOUT_MS: (f64, f64) = (10.0, 60_000.0);
    /// `initTimeoutMs` (10 ms to 300 s).
    pub const INIT_TIMEOUT_MS: (f64, f64) = (10.0, 300_000.0);
    /// `queueMessages`.
    pub const QUEUE_MESSAGES: (f64, f64) = (1.0, 100_000.0);
    /// `publishRate`, a second.
    pub const PUBLISH_RATE: (f64, f64) = (1.0, 100_000.0);
    /// `queue_bytes` (`config.toml` only): 1 KiB to 1 GiB.
    pub const QUEUE_BYTES: (f64, f64) = (1024.0, 1024.0 * 1024.0 * 1024.0);
    /// `log_bytes_per_sec` (`config.toml` only): 1 KiB to 1 GiB a second.
    pub const LOG_BYTES_PER_SEC: (f64, f64) = (1024.0, 1024.0 * 1024.0 * 1024.0);

    /// KiB in bytes, at most what this machine can address (a 32-bit device).
    pub fn kib_to_bytes(kib: f64) -> usize {
        usize::try_from((kib as u64).saturating_mul(1024)).unwrap_or(usize::MAX)
    }

    /// `value` if it is within `range`; otherwise why not.
    pub fn check(value: Option<f64>, range: (f64, f64)) -> Result<Option<f64>, String> {
        match value {
            Some(v) if !(range.0..=range.1).contains(&v) => {
                Err(format!("{v} is out of range ({} to {})", range.0, range.1))
            }
            other => Ok(other),
        }
    }
}

/// The `[components]` table of `config.toml`: the host's defaults for every component, which a
/// recipe's `SystemResourceLimits` overrides. Same ranges as the recipe's keys.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentSettings {
    /// All memories and tables of an instance, KiB.
    pub memory_kib: Option<f64>,
    /// Share of the component thread over a sliding second.
    pub cpus: Option<f64>,
    /// Budget of one call, ms.
    pub call_timeout_ms: Option<f64>,
    /// Budget of instantiation + `init`, ms.
    pub init_timeout_ms: Option<f64>,
    /// Messages an inbox holds.
    pub queue_messages: Option<f64>,
    /// Bytes an inbox holds.
    pub queue_bytes: Option<f64>,
    /// Publishes a second.
    pub publish_rate: Option<f64>,
    /// Log bytes a second.
    pub log_bytes_per_sec: Option<f64>,
}

impl TryFrom<ComponentSettings> for ComponentLimits {
    type Error = String;

    /// Checks every value; an error names the field.
    fn try_from(settings: ComponentSettings) -> Result<Self, String> {
        use limit_ranges::*;
        let field = |name: &str, value, range| check(value, range).map_err(|e| format!("[components] {name}: {e}"));
        let overrides = LimitOverrides {
            memory_bytes: field("memory_kib", settings.memory_kib, MEMORY_KIB)?.map(limit_ranges::kib_to_bytes),
            cpus: field("cpus", settings.cpus, CPUS)?,
            call_budget: field("call_timeout_ms", settings.call_timeout_ms, CALL_TIMEOUT_MS)?
                .map(|ms| Duration::from_millis(ms as u64)),
            init_budget: field("init_timeout_ms", settings.init_timeout_ms, INIT_TIMEOUT_MS)?
                .map(|ms| Duration::from_millis(ms as u64)),
            queue_messages: field("queue_messages", settings.queue_messages, QUEUE_MESSAGES)?.map(|n| n as usize),
            publish_rate: field("publish_rate", settings.publish_rate, PUBLISH_RATE)?.map(|n| n as u32),
        };
        let defaults = Self::default();
        Ok(Self {
            queue_bytes: field("queue_bytes", settings.queue_bytes, QUEUE_BYTES)?
                .map_or(defaults.queue_bytes, |n| n as usize),
            log_bytes_per_sec: field("log_bytes_per_sec", settings.log_bytes_per_sec, LOG_BYTES_PER_SEC)?
                .map_or(defaults.log_bytes_per_sec, |n| n as usize),
            ..defaults.with(&overrides)
        })
    }
}

/// A recipe's `SystemResourceLimits`: what it changes of the host's [`ComponentLimits`] for
/// one component. `memory` (KiB) and `cpus` are Greengrass's keys; the rest are Turf's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LimitOverrides {
    /// `memory`, in bytes (the recipe says KiB, as Greengrass).
    pub memory_bytes: Option<usize>,
    /// `cpus`.
    pub cpus: Option<f64>,
    /// `callTimeoutMs`.
    pub call_budget: Option<Duration>,
    /// `initTimeoutMs`.
    pub init_budget: Option<Duration>,
    /// `queueMessages`.
    pub queue_messages: Option<usize>,
    /// `publishRate`.
    pub publish_rate: Option<u32>,
}

impl ComponentLimits {
    /// These limits with `overrides` applied.
    pub fn with(&self, overrides: &LimitOverrides) -> Self {
        Self {
            memory_bytes: overrides.memory_bytes.unwrap_or(self.memory_bytes),
            cpus: overrides.cpus.unwrap_or(self.cpus),
            call_budget: overrides.call_budget.unwrap_or(self.call_budget),
            init_budget: overrides.init_budget.unwrap_or(self.init_budget),
            queue_messages: overrides.queue_messages.unwrap_or(self.queue_messages),
            publish_rate: overrides.publish_rate.unwrap_or(self.publish_rate),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_components_table_sets_the_hosts_defaults_and_refuses_what_is_out_of_range() {
        let limits = ComponentLimits::try_from(ComponentSettings {
            memory_kib: Some(16384.0),
            cpus: Some(0.25),
            call_timeout_ms: Some(2000.0),
            queue_bytes: Some(65536.0),
            ..ComponentSettings::default()
        })
        .unwrap();
        assert_eq!(limits.memory_bytes, 16 << 20);
        assert_eq!(limits.cpus, 0.25);
        assert_eq!(limits.call_budget, Duration::from_secs(2));
        assert_eq!(limits.queue_bytes, 65536);
        assert_eq!(limits.init_budget, ComponentLimits::default().init_budget, "unset keys keep the defaults");
        for (settings, field) in [
            (ComponentSettings { cpus: Some(0.0), ..ComponentSettings::default() }, "[components] cpus"),
            (
                ComponentSettings { memory_kib: Some(f64::NAN), ..ComponentSettings::default() },
                "[components] memory_kib",
            ),
            (
                ComponentSettings { call_timeout_ms: Some(1e18), ..ComponentSettings::default() },
                "[components] call_timeout_ms",
            ),
            (
                ComponentSettings { log_bytes_per_sec: Some(-1.0), ..ComponentSettings::default() },
                "[components] log_bytes_per_sec",
            ),
        ] {
            let error = ComponentLimits::try_from(settings).unwrap_err();
            assert!(error.starts_with(field) && error.contains("out of range"), "{error}");
        }
    }
}
