//! The epoch ticker: a thread that advances the wasmtime engine's epoch every [`TICK`] while at
//! least one component call is in progress, so a running guest yields every tick (see
//! `instance`), and sleeps on a condition variable otherwise: an idle host has no clock running
//! for components. Talks to nobody; `engine` starts it, `instance` holds a [`Busy`] guard per call.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How often the epoch advances while a call is in progress.
pub const TICK: Duration = Duration::from_millis(2);

/// A thread that calls `tick` every [`TICK`] while at least one [`Busy`] guard is alive, and
/// sleeps on a condition variable otherwise: an idle host has no clock running for components.
#[derive(Clone)]
pub struct EpochTicker(Arc<TickerHandle>);

struct TickerState {
    inner: Mutex<TickerInner>,
    wake: Condvar,
}

#[derive(Default)]
struct TickerInner {
    calls: usize,
    stopped: bool,
}

impl TickerState {
    fn lock(&self) -> MutexGuard<'_, TickerInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The last handle stops the thread.
struct TickerHandle(Arc<TickerState>);

impl Drop for TickerHandle {
    fn drop(&mut self) {
        self.0.lock().stopped = true;
        self.0.wake.notify_all();
    }
}

/// Keeps the ticker running while alive (one per call in progress).
pub struct Busy(Arc<TickerState>);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        inner.calls = inner.calls.saturating_sub(1);
    }
}

impl EpochTicker {
    /// Starts the thread; `tick` returns false once there is nothing left to tick.
    pub fn start(tick: impl Fn() -> bool + Send + 'static) -> std::io::Result<Self> {
        let state = Arc::new(TickerState { inner: Mutex::new(TickerInner::default()), wake: Condvar::new() });
        let thread_state = Arc::clone(&state);
        std::thread::Builder::new().name("turf-epoch".to_owned()).spawn(move || {
            loop {
                {
                    let mut inner = thread_state.lock();
                    while inner.calls == 0 && !inner.stopped {
                        inner = thread_state.wake.wait(inner).unwrap_or_else(PoisonError::into_inner);
                    }
                    if inner.stopped {
                        return;
                    }
                }
                std::thread::sleep(TICK);
                if !tick() {
                    return;
                }
            }
        })?;
        Ok(Self(Arc::new(TickerHandle(state))))
    }

    /// Runs the ticker until the returned guard is dropped.
    pub fn busy(&self) -> Busy {
        let state = Arc::clone(&self.0.0);
        let first = {
            let mut inner = state.lock();
            inner.calls += 1;
            inner.calls == 1
        };
        if first {
            state.wake.notify_all();
        }
        Busy(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn counting() -> (EpochTicker, Arc<AtomicU32>) {
        let ticks = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&ticks);
        let ticker = EpochTicker::start(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            true
        })
        .unwrap();
        (ticker, ticks)
    }

    fn wait_for(what: &str, condition: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !condition() {
            assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn the_ticker_runs_only_while_a_call_is_in_progress() {
        let (ticker, ticks) = counting();
        std::thread::sleep(TICK * 5);
        assert_eq!(ticks.load(Ordering::SeqCst), 0, "no call: no tick");
        let busy = ticker.busy();
        wait_for("ticks during a call", || ticks.load(Ordering::SeqCst) >= 3);
        drop(busy);
        // The tick under way may still land; then the count must stop moving.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut last = ticks.load(Ordering::SeqCst);
        loop {
            std::thread::sleep(TICK * 5);
            let now = ticks.load(Ordering::SeqCst);
            if now == last {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the ticker kept ticking after the call ended");
            last = now;
        }
    }

    #[test]
    fn overlapping_calls_keep_it_running_until_the_last_ends() {
        let (ticker, ticks) = counting();
        let first = ticker.busy();
        let second = ticker.busy();
        drop(first);
        let now = ticks.load(Ordering::SeqCst);
        wait_for("ticks while the second call runs", || ticks.load(Ordering::SeqCst) > now + 1);
        drop(second);
    }
}
