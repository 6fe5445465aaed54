//! What one component may use, and the counters that show how much it did: the memory budget
//! (every linear memory and table of an instance against one figure), the CPU share (a token
//! bucket over the component thread's time), and [`Usage`], the live counters `turf component
//! details` and `turf status` read.
//!
//! Pure logic: no actors, no clocks of its own (callers pass `now`), so every bound is
//! unit-tested here with hostile numbers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Bytes one table element costs the host (wasmtime stores a pointer per element).
pub const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();
/// Instances one component may create (a component is several core instances).
pub const MAX_INSTANCES: usize = 16;
/// Tables one component may create.
pub const MAX_TABLES: usize = 32;
/// Linear memories one component may create.
pub const MAX_MEMORIES: usize = 8;

/// One budget in bytes for all memories and tables of a store, as a wasmtime `ResourceLimiter`.
/// Memories and tables never shrink, so what was granted stays used until the store is dropped;
/// the component's `memory_bytes` counter is the sum over its live stores (two during a swap).
#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    used: usize,
    /// The last grant, returned if wasmtime then fails to allocate it.
    last: usize,
    usage: Arc<Usage>,
}

impl MemoryBudget {
    /// A budget of `limit` bytes; grants and refusals are counted in `usage`.
    pub fn new(limit: usize, usage: Arc<Usage>) -> Self {
        Self { limit, used: 0, last: 0, usage }
    }

    fn grow(&mut self, bytes: usize) -> bool {
        match self.used.checked_add(bytes).filter(|total| *total <= self.limit) {
            Some(total) => {
                self.used = total;
                self.last = bytes;
                let now = self.usage.memory_bytes.fetch_add(bytes as u64, Ordering::Relaxed) + bytes as u64;
                self.usage.memory_peak_bytes.fetch_max(now, Ordering::Relaxed);
                true
            }
            None => {
                self.usage.memory_refusals.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Gives back the last grant (wasmtime could not allocate it after all).
    fn undo_last(&mut self) {
        let last = std::mem::take(&mut self.last);
        self.used -= last;
        self.usage.memory_bytes.fetch_sub(last as u64, Ordering::Relaxed);
    }
}

impl Drop for MemoryBudget {
    fn drop(&mut self) {
        self.usage.memory_bytes.fetch_sub(self.used as u64, Ordering::Relaxed);
    }
}

impl wasmtime::ResourceLimiter for MemoryBudget {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        Ok(self.grow(desired.saturating_sub(current)))
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        Ok(self.grow(desired.saturating_sub(current).saturating_mul(TABLE_ELEMENT_BYTES)))
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.undo_last();
        Ok(())
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.undo_last();
        Ok(())
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

/// Longest stretch of unused share a component may save up (its burst).
pub const CPU_WINDOW: Duration = Duration::from_secs(1);

/// A component's share of the component thread: a token bucket that fills at `share` seconds
/// per second up to `share` × [`CPU_WINDOW`], and that each call drains by the time it held the
/// thread. While the bucket is in debt the component's next call waits until it is not.
#[derive(Debug, Clone)]
pub struct CpuShare {
    share: f64,
    /// Seconds of thread time available (negative: owed).
    balance: f64,
    at: Instant,
}

impl CpuShare {
    /// A full bucket for `share` (clamped to 0.01..=1).
    pub fn new(share: f64, now: Instant) -> Self {
        let share = if share.is_finite() { share.clamp(0.01, 1.0) } else { 1.0 };
        Self { share, balance: share * CPU_WINDOW.as_secs_f64(), at: now }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now.max(self.at);
        self.balance = (self.balance + elapsed * self.share).min(self.share * CPU_WINDOW.as_secs_f64());
    }

    /// Charges a call that held the thread for `used`.
    pub fn charge(&mut self, used: Duration, now: Instant) {
        self.refill(now);
        self.balance -= used.as_secs_f64();
    }

    /// How long the next call must wait for the component to be back within its share.
    pub fn wait(&mut self, now: Instant) -> Option<Duration> {
        self.refill(now);
        (self.balance < 0.0).then(|| Duration::from_secs_f64(-self.balance / self.share))
    }
}

/// Live counters of one component, shared by its actor, its inbox and its instance's limits.
#[derive(Debug, Default)]
pub struct Usage {
    /// Bytes of memories and tables its live instances hold.
    pub memory_bytes: AtomicU64,
    /// The most it ever held.
    pub memory_peak_bytes: AtomicU64,
    /// Growths refused because the memory budget was spent.
    pub memory_refusals: AtomicU64,
    /// Calls cut off because they ran over their wall-clock budget.
    pub budget_overruns: AtomicU64,
    /// Calls that waited because the component was over its CPU share.
    pub throttled_calls: AtomicU64,
    /// Milliseconds calls waited for the CPU share.
    pub throttled_ms: AtomicU64,
    /// Microseconds the component held the component thread.
    pub cpu_us: AtomicU64,
    /// Timer ticks merged into one already pending.
    pub coalesced_ticks: AtomicU64,
    /// Messages dropped from its inbox (the oldest, when it was full).
    pub dropped_messages: AtomicU64,
    /// Log bytes dropped over its log rate.
    pub dropped_log_bytes: AtomicU64,
    /// `update-configuration` calls refused for size or rate, and configuration watches refused
    /// beyond their bound.
    pub refused_config_updates: AtomicU64,
}

/// A snapshot of [`Usage`], as the management API reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageReport {
    /// Bytes of memories and tables the current instance holds.
    pub memory_bytes: u64,
    /// The most it ever held.
    pub memory_peak_bytes: u64,
    /// Its memory budget.
    pub memory_limit_bytes: u64,
    /// Growths refused because the memory budget was spent.
    pub memory_refusals: u64,
    /// Calls cut off because they ran over their wall-clock budget.
    pub budget_overruns: u64,
    /// Calls that waited because the component was over its CPU share.
    pub throttled_calls: u64,
    /// Milliseconds calls waited for the CPU share.
    pub throttled_ms: u64,
    /// Milliseconds the component held the component thread.
    pub cpu_ms: u64,
    /// Timer ticks merged into one already pending.
    pub coalesced_ticks: u64,
    /// Messages dropped from its inbox (the oldest, when it was full).
    pub dropped_messages: u64,
    /// Log bytes dropped over its log rate.
    pub dropped_log_bytes: u64,
    /// `update-configuration` calls refused for size or rate.
    pub refused_config_updates: u64,
}

impl Usage {
    /// Reads every counter; `memory_limit` is the component's budget.
    pub fn report(&self, memory_limit: usize) -> UsageReport {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        UsageReport {
            memory_bytes: get(&self.memory_bytes),
            memory_peak_bytes: get(&self.memory_peak_bytes),
            memory_limit_bytes: memory_limit as u64,
            memory_refusals: get(&self.memory_refusals),
            budget_overruns: get(&self.budget_overruns),
            throttled_calls: get(&self.throttled_calls),
            throttled_ms: get(&self.throttled_ms),
            cpu_ms: get(&self.cpu_us) / 1000,
            coalesced_ticks: get(&self.coalesced_ticks),
            dropped_messages: get(&self.dropped_messages),
            dropped_log_bytes: get(&self.dropped_log_bytes),
            refused_config_updates: get(&self.refused_config_updates),
        }
    }

    /// Adds `by` to `counter`.
    pub fn add(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }
}

/// A token bucket over events: `rate` a second, bursts of `burst` (for `update-configuration`
/// calls and log bytes).
#[derive(Debug, Clone)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        Self { rate, burst, tokens: burst, at: now }
    }

    /// Takes `n` tokens if there are that many.
    pub fn take(&mut self, n: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now.max(self.at);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests;
