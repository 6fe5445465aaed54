//! What a component actor is sent and what it reports.

use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::super::access::AccessControl;
use super::super::bindings::TurfComponentPre;
use super::super::budget::{Usage, UsageReport};
use super::super::instance::{ConfigSnapshot, HostState};
use super::super::lifecycle::State;
use crate::components::limits::ComponentLimits;

/// A component's live counters and its memory budget, readable at any time.
#[derive(Debug, Clone)]
pub struct UsageHandle {
    pub(in crate::components) usage: Arc<Usage>,
    pub(in crate::components) memory_limit: usize,
}

impl UsageHandle {
    /// The counters as they are now.
    pub fn report(&self) -> UsageReport {
        self.usage.report(self.memory_limit)
    }
}

impl PartialEq for UsageHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.usage, &other.usage)
    }
}

/// A component changed state (sent to whoever tracks deployments).
#[derive(Message, Debug, Clone, PartialEq)]
#[rtype(result = "()")]
pub struct ComponentStatus {
    /// Component name.
    pub name: String,
    /// Component version.
    pub version: String,
    /// New state.
    pub state: State,
    /// The last error, kept after the component recovered.
    pub error: Option<String>,
    /// Restarts since it was deployed.
    pub restarts: u32,
    /// Since when it has been RUNNING (seconds since the epoch); `None` when not running.
    pub running_since: Option<i64>,
    /// Its counters (memory, CPU, drops).
    pub usage: UsageHandle,
}

/// New configurations and access rights (after a deployment).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconfigure {
    /// Every component's configuration.
    pub configs: Arc<ConfigSnapshot>,
    /// This component's access rights.
    pub access: Arc<AccessControl>,
}

/// Stop the component: drop its instance and end the actor. Replies when done.
#[derive(Message)]
#[rtype(result = "u32")]
pub struct StopComponent;

/// Replace the component's code and rights in place, without losing a message: the new instance
/// is initialised while deliveries wait in the mailbox, then takes over. Replies with the outcome
/// of the new `init`; on failure the old instance keeps running.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct Swap {
    /// New version.
    pub version: String,
    /// New compiled code.
    pub pre: TurfComponentPre<HostState>,
    /// New access rights.
    pub access: Arc<AccessControl>,
    /// Every component's configuration.
    pub configs: Arc<ConfigSnapshot>,
    /// New limits.
    pub limits: ComponentLimits,
}

/// Restart the component with a fresh instance (clears its errors, so it also brings back a
/// BROKEN one); the outcome of the new `init` is sent on `done`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RestartComponent {
    /// Receives the outcome of the new instance's `init`.
    pub done: oneshot::Sender<Result<(), String>>,
}

/// Restart the component after an error (the restart policy's backoff elapsed).
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Restart;

#[derive(Message)]
#[rtype(result = "()")]
/// One tick of a guest timer.
pub(super) struct FireTimer {
    pub(super) id: u32,
    pub(super) generation: u64,
}
