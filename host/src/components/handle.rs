//! What the component runtime offers (the messages it takes and its handle) and what its
//! components need from the rest of the host ([`HostServices`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use super::access::AccessControl;
use super::actor::ComponentStatus;
use super::error::{ConfigUpdateError, RuntimeError};
use super::instance::ConfigSnapshot;
use super::limits::LimitOverrides;
use super::{ComponentRuntime, Prepared};
use crate::pubsub::BusHandle;
use crate::shadow::ShadowHandle;
use crate::upstream::UpstreamHandle;

/// Compile and link `wasm` for component `name` at `version`.
#[derive(Message)]
#[rtype(result = "Result<Prepared, RuntimeError>")]
pub struct Prepare {
    /// Component name.
    pub name: String,
    /// Component version.
    pub version: String,
    /// The `.wasm` artifact.
    pub wasm: PathBuf,
}

/// Start (or replace) a prepared component; replies once its first `init` finished.
#[derive(Message)]
#[rtype(result = "Result<(), RuntimeError>")]
pub struct Launch {
    /// What to run.
    pub prepared: Prepared,
    /// Its access rights.
    pub access: Arc<AccessControl>,
    /// Every component's configuration.
    pub configs: Arc<ConfigSnapshot>,
    /// Its recipe's `SystemResourceLimits`.
    pub limits: LimitOverrides,
}

/// New configurations for running components (each notifies its guest of subscribed changes).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Configure {
    /// Every component's configuration.
    pub configs: Arc<ConfigSnapshot>,
    /// Access rights per running component.
    pub access: HashMap<String, Arc<AccessControl>>,
}

/// A component merges `value` into its own configuration at `key_path` (IPC
/// UpdateConfiguration). Sent by the `config` interface to whoever keeps configurations (the
/// deployment service), which replies with a refusal's reason.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), ConfigUpdateError>")]
pub struct UpdateConfiguration {
    /// The component.
    pub component: String,
    /// Where to merge.
    pub key_path: Vec<String>,
    /// A JSON object to deep-merge.
    pub value: serde_json::Value,
}

/// Stop one component; replies when it stopped.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop {
    /// Component name.
    pub name: String,
}

/// What an operator asks of one component (`turf component restart|stop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ControlAction {
    /// Start a fresh instance (clears errors; brings back BROKEN and stopped components).
    Restart,
    /// Stop it until it is restarted or redeployed.
    Stop,
}

/// Restart or stop one deployed component; replies once done (for a restart: once its `init`
/// finished).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), RuntimeError>")]
pub struct Control {
    /// Component name.
    pub name: String,
    /// What to do.
    pub action: ControlAction,
}

/// Stop every component and launch none after; replies with those that had to be abandoned.
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub struct StopAll;

/// What the rest of the host offers components: the services their imports talk to, and where
/// the runtime reports. The same for every component; built once by the supervisor.
#[derive(Clone)]
pub struct HostServices {
    /// The local pubsub bus.
    pub bus: BusHandle,
    /// The shadow manager.
    pub shadows: ShadowHandle,
    /// The upstream broker.
    pub upstream: UpstreamHandle,
    /// Whoever keeps configurations (the deployment service): a component's own updates.
    pub config_store: Recipient<UpdateConfiguration>,
    /// Whoever tracks component states (the deployment service).
    pub status: Recipient<ComponentStatus>,
}

/// What the component runtime offers, built once by the supervisor.
#[derive(Clone)]
pub struct RuntimeHandle {
    /// Compile and link.
    pub prepare: Recipient<Prepare>,
    /// Start or replace.
    pub launch: Recipient<Launch>,
    /// New configurations.
    pub configure: Recipient<Configure>,
    /// Stop one (a deployment removed it).
    pub stop: Recipient<Stop>,
    /// An operator's restart or stop.
    pub control: Recipient<Control>,
    /// Stop everything (shutdown).
    pub stop_all: Recipient<StopAll>,
}

impl RuntimeHandle {
    /// The handle of a running component runtime.
    pub fn of(runtime: &Addr<ComponentRuntime>) -> Self {
        Self {
            prepare: runtime.clone().recipient(),
            launch: runtime.clone().recipient(),
            configure: runtime.clone().recipient(),
            stop: runtime.clone().recipient(),
            control: runtime.clone().recipient(),
            stop_all: runtime.clone().recipient(),
        }
    }
}
