//! One live instance of a component: its wasmtime `Store`, the host state the guest's imports
//! see, and calls into its exports under a time budget.
//!
//! Owned by exactly one component actor, which never runs two calls at once (a `Store` is not
//! re-entrant). Every call is armed with an epoch deadline first: the guest yields to the runtime
//! on every tick and traps once its budget is spent. Memory is capped by `StoreLimits`. After a
//! trap the instance is dead and must be dropped.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde_json::Value;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};

use super::engine::{EpochTicker, WasmEngine};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::access::AccessControl;
use super::bindings::{TurfComponent, TurfComponentPre};
use super::engine::TICK;
use super::log::{ComponentLog, Level};
use crate::config::ComponentLimits;
use crate::deploy::UpdateConfiguration;
use crate::pubsub::{Publish, PubsubMessage, Subscribe, Unsubscribe};
use crate::shadow::ShadowRequest;
use crate::upstream::{PublishUpstream, SubscribeUpstream, UnsubscribeUpstream, UpstreamMessage};

/// Every component's configuration, by component name (what `config.get-configuration` reads).
pub type ConfigSnapshot = BTreeMap<String, Value>;

/// Services a component's imports talk to; the same for every component.
#[derive(Clone)]
pub struct ServicePeers {
    /// Bus: subscribe.
    pub subscribe: Recipient<Subscribe>,
    /// Bus: unsubscribe.
    pub unsubscribe: Recipient<Unsubscribe>,
    /// Bus: publish.
    pub publish: Recipient<Publish>,
    /// Shadow manager.
    pub shadows: Recipient<ShadowRequest>,
    /// Deployments: a component updates its own configuration.
    pub update_config: Recipient<UpdateConfiguration>,
    /// Upstream: publish.
    pub upstream_publish: Recipient<PublishUpstream>,
    /// Upstream: subscribe.
    pub upstream_subscribe: Recipient<SubscribeUpstream>,
    /// Upstream: unsubscribe.
    pub upstream_unsubscribe: Recipient<UnsubscribeUpstream>,
}

/// Start or stop a timer (sent by the `timer` import to the component's own actor).
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
#[rtype(result = "()")]
pub enum TimerControl {
    /// Call `on-timer(id)` every `period`.
    Start {
        /// Timer id.
        id: u32,
        /// Period.
        period: Duration,
    },
    /// Stop timer `id`.
    Cancel {
        /// Timer id.
        id: u32,
    },
}

/// What the guest's imports can see and do.
pub struct HostState {
    pub(super) name: String,
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    pub(super) log: ComponentLog,
    pub(super) access: Arc<AccessControl>,
    pub(super) configs: Arc<ConfigSnapshot>,
    pub(super) peers: ServicePeers,
    /// Where pubsub messages for this component are delivered (its actor).
    pub(super) inbox: Recipient<PubsubMessage>,
    /// Where upstream messages for this component are delivered (its actor).
    pub(super) upstream_inbox: Recipient<UpstreamMessage>,
    pub(super) timers: Recipient<TimerControl>,
    pub(super) next_timer: u32,
    pub(super) active_timers: HashSet<u32>,
    /// Configuration paths (component, key path) the guest subscribed to.
    pub(super) config_subscriptions: Vec<(String, Vec<String>)>,
    /// Pubsub filters this instance subscribed to.
    pub(super) subscriptions: std::collections::BTreeSet<String>,
    /// Upstream filters this instance subscribed to.
    pub(super) iotcore_subscriptions: std::collections::BTreeSet<String>,
    ticks_used: u64,
    tick_budget: u64,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Everything needed to build a [`HostState`].
pub struct HostSetup {
    /// Component name.
    pub name: String,
    /// Its log.
    pub log: ComponentLog,
    /// Its access rights.
    pub access: Arc<AccessControl>,
    /// All configurations.
    pub configs: Arc<ConfigSnapshot>,
    /// Service recipients.
    pub peers: ServicePeers,
    /// Its actor, for pubsub delivery.
    pub inbox: Recipient<PubsubMessage>,
    /// Its actor, for upstream delivery.
    pub upstream_inbox: Recipient<UpstreamMessage>,
    /// Its actor, for timers.
    pub timers: Recipient<TimerControl>,
    /// Limits.
    pub limits: ComponentLimits,
}

impl HostState {
    fn new(setup: HostSetup) -> Self {
        let wasi = WasiCtx::builder()
            .stdout(setup.log.guest_stream("stdout", Level::Info))
            .stderr(setup.log.guest_stream("stderr", Level::Warn))
            .env("COMPONENT_NAME", &setup.name)
            .env("AWS_IOT_THING_NAME", "")
            .build();
        let limits = StoreLimitsBuilder::new()
            .memory_size(setup.limits.memory_bytes)
            .instances(16)
            .tables(32)
            .memories(8)
            .trap_on_grow_failure(false)
            .build();
        Self {
            name: setup.name,
            wasi,
            table: ResourceTable::new(),
            limits,
            log: setup.log,
            access: setup.access,
            configs: setup.configs,
            peers: setup.peers,
            inbox: setup.inbox,
            upstream_inbox: setup.upstream_inbox,
            timers: setup.timers,
            next_timer: 1,
            active_timers: HashSet::new(),
            config_subscriptions: Vec::new(),
            subscriptions: std::collections::BTreeSet::new(),
            iotcore_subscriptions: std::collections::BTreeSet::new(),
            ticks_used: 0,
            tick_budget: 0,
        }
    }
}

/// Builds the linker every component is linked with: WASI p2 plus the Turf interfaces.
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    TurfComponent::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state)?;
    Ok(linker)
}

/// A live, initialised-or-not instance.
pub struct Instance {
    store: Store<HostState>,
    bindings: TurfComponent,
    ticker: EpochTicker,
}

/// A call failed in a way that kills the instance (trap, budget exceeded, host bug).
#[derive(Debug, Clone)]
pub struct Trapped(pub String);

fn ticks(budget: Duration) -> u64 {
    (budget.as_millis() / TICK.as_millis()).max(1) as u64
}

impl Instance {
    /// Instantiates `pre` in a fresh store.
    pub async fn new(
        engine: &WasmEngine,
        pre: &TurfComponentPre<HostState>,
        setup: HostSetup,
    ) -> Result<Self, Trapped> {
        let _busy = engine.ticker.busy();
        let mut store = Store::new(&engine.engine, HostState::new(setup));
        store.limiter(|state| &mut state.limits);
        store.epoch_deadline_callback(|mut cx| {
            let state = cx.data_mut();
            state.ticks_used += 1;
            if state.ticks_used > state.tick_budget {
                let spent = Duration::from_millis(state.ticks_used * TICK.as_millis() as u64);
                return Err(wasmtime::format_err!("call ran longer than its budget ({spent:?})"));
            }
            Ok(UpdateDeadline::Yield(1))
        });
        arm(&mut store, Duration::from_secs(5));
        let bindings = pre.instantiate_async(&mut store).await.map_err(describe)?;
        Ok(Self { store, bindings, ticker: engine.ticker.clone() })
    }

    /// Mutable access to the host state between calls.
    pub fn state(&mut self) -> &mut HostState {
        self.store.data_mut()
    }

    /// Calls `init`. `Ok(Err(_))` is the guest's own failure report.
    pub async fn init(&mut self, budget: Duration) -> Result<Result<(), String>, Trapped> {
        let _busy = self.arm(budget);
        self.bindings.call_init(&mut self.store).await.map_err(describe)
    }

    /// Calls `on-message`.
    pub async fn on_message(&mut self, budget: Duration, topic: &str, payload: &[u8]) -> Result<(), Trapped> {
        let _busy = self.arm(budget);
        self.bindings.call_on_message(&mut self.store, topic, payload).await.map_err(describe)
    }

    /// Calls `on-iotcore-message`.
    pub async fn on_iotcore_message(&mut self, budget: Duration, topic: &str, payload: &[u8]) -> Result<(), Trapped> {
        let _busy = self.arm(budget);
        self.bindings.call_on_iotcore_message(&mut self.store, topic, payload).await.map_err(describe)
    }

    /// Calls `on-configuration-update`.
    pub async fn on_configuration_update(
        &mut self,
        budget: Duration,
        component: &str,
        key_path: &[String],
    ) -> Result<(), Trapped> {
        let _busy = self.arm(budget);
        self.bindings.call_on_configuration_update(&mut self.store, component, key_path).await.map_err(describe)
    }

    /// Calls `on-timer`.
    pub async fn on_timer(&mut self, budget: Duration, id: u32) -> Result<(), Trapped> {
        let _busy = self.arm(budget);
        self.bindings.call_on_timer(&mut self.store, id).await.map_err(describe)
    }

    /// Gives the next call `budget` and keeps the epoch ticking until the guard is dropped.
    fn arm(&mut self, budget: Duration) -> super::engine::Busy {
        arm(&mut self.store, budget);
        self.ticker.busy()
    }
}

fn arm(store: &mut Store<HostState>, budget: Duration) {
    let state = store.data_mut();
    state.ticks_used = 0;
    state.tick_budget = ticks(budget);
    store.set_epoch_deadline(1);
}

fn describe(error: wasmtime::Error) -> Trapped {
    Trapped(format!("{error:?}"))
}
