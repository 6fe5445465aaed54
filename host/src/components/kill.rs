//! How the runtime ends a component's call in progress: a [`KillSwitch`] the runtime holds and
//! the [`KillWatch`] the component's actor and instance watch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::watch;

/// The runtime's hold on one component's calls. [`KillSwitch::kill`] ends the call in progress
/// (a later call runs normally); [`KillSwitch::stop`] also keeps any further call from starting.
#[derive(Debug, Clone)]
pub struct KillSwitch {
    kills: watch::Sender<u64>,
    stopping: Arc<AtomicBool>,
    swaps: Arc<AtomicUsize>,
}

impl Default for KillSwitch {
    fn default() -> Self {
        Self { kills: watch::Sender::new(0), stopping: Arc::default(), swaps: Arc::default() }
    }
}

impl KillSwitch {
    /// Ends the call in progress, if any.
    pub fn kill(&self) {
        self.kills.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// No call starts from now on.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// A swap is on its way: until it starts, calls skip their CPU-share wait and timer ticks
    /// are skipped, so it is not held up behind them.
    pub fn swap_coming(&self) {
        self.swaps.fetch_add(1, Ordering::SeqCst);
    }

    /// What the component's actor and instance watch.
    pub fn watch(&self) -> KillWatch {
        KillWatch {
            kills: self.kills.subscribe(),
            stopping: Arc::clone(&self.stopping),
            swaps: Arc::clone(&self.swaps),
        }
    }
}

/// The component's side of a [`KillSwitch`].
#[derive(Debug, Clone)]
pub struct KillWatch {
    kills: watch::Receiver<u64>,
    stopping: Arc<AtomicBool>,
    swaps: Arc<AtomicUsize>,
}

impl KillWatch {
    /// True while a swap is on its way to the actor.
    pub fn swap_coming(&self) -> bool {
        self.swaps.load(Ordering::SeqCst) > 0
    }

    /// The swap announced by [`KillSwitch::swap_coming`] has started.
    pub fn swap_started(&self) {
        let _ = self.swaps.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    /// True once the component is being stopped: no call may start.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// How many kills there have been; a call that starts later compares against it.
    pub fn kills(&self) -> u64 {
        *self.kills.borrow()
    }

    /// Resolves once there has been a kill after `seen` (at once if there already was; never,
    /// once the switch is gone).
    pub async fn killed_since(&self, seen: u64) {
        let mut kills = self.kills.clone();
        if kills.wait_for(|n| *n != seen).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
