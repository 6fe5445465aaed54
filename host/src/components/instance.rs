//! One live instance of a component: its wasmtime `Store`, the host state the guest's imports
//! see, and calls into its exports under a time budget.
//!
//! Owned by exactly one component actor, which never runs two calls at once (a `Store` is not
//! re-entrant). Every call has a wall-clock budget that covers host calls too (a guest sleeping
//! in WASI `poll` or waiting on a service is cut off like one spinning): the guest yields to the
//! runtime on every epoch tick, so the budget's timer can fire, and a call over budget is
//! dropped mid-flight, which kills the instance. Each call also reports how long it held the
//! component thread (the sum of its polls), which the actor charges to the component's CPU
//! share. All memories and tables of the store share one budget ([`MemoryBudget`]). After a
//! trap or an overrun the instance is dead and must be dropped.

use std::cell::Cell;
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::Value;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store, UpdateDeadline};

use super::engine::{EpochTicker, WasmEngine};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::HostServices;
use super::access::AccessControl;
use super::bindings::{TurfComponent, TurfComponentPre};
use super::budget::{Bucket, MemoryBudget, Usage};
pub use super::kill::{KillSwitch, KillWatch};
use super::log::{ComponentLog, Level};
use crate::components::limits::ComponentLimits;
use crate::pubsub::PubsubMessage;
use crate::upstream::UpstreamMessage;

/// Every component's configuration, by component name (what `config.get-configuration` reads).
pub type ConfigSnapshot = BTreeMap<String, Value>;

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
        /// The instance that asked (an instance that never became current is ignored).
        generation: u64,
    },
    /// Stop timer `id`.
    Cancel {
        /// Timer id.
        id: u32,
        /// The instance that asked.
        generation: u64,
    },
}

/// What the guest's imports can see and do.
pub struct HostState {
    pub(super) name: String,
    wasi: WasiCtx,
    table: ResourceTable,
    memory: MemoryBudget,
    pub(super) log: ComponentLog,
    pub(super) access: Arc<AccessControl>,
    pub(super) configs: Arc<ConfigSnapshot>,
    pub(super) services: HostServices,
    /// Where pubsub messages for this component are delivered (its actor).
    pub(super) inbox: Recipient<PubsubMessage>,
    /// Where upstream messages for this component are delivered (its actor).
    pub(super) upstream_inbox: Recipient<UpstreamMessage>,
    pub(super) timers: Recipient<TimerControl>,
    /// Which instance of the component this is (timers carry it).
    pub(super) generation: u64,
    pub(super) next_timer: u32,
    pub(super) active_timers: HashSet<u32>,
    /// Configuration paths (component, key path) the guest subscribed to.
    pub(super) config_subscriptions: Vec<(String, Vec<String>)>,
    /// Pubsub filters this instance subscribed to.
    pub(super) subscriptions: std::collections::BTreeSet<String>,
    /// Upstream filters this instance subscribed to.
    pub(super) iotcore_subscriptions: std::collections::BTreeSet<String>,
    /// The component's counters.
    pub(super) usage: Arc<Usage>,
    /// `update-configuration` calls allowed.
    pub(super) config_updates: Bucket,
    /// Publishes allowed (bus and upstream); past the rate a publish waits.
    pub(super) publishes: Bucket,
    /// Publishes a second.
    pub(super) publish_rate: f64,
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
    pub services: HostServices,
    /// Its actor, for pubsub delivery.
    pub inbox: Recipient<PubsubMessage>,
    /// Its actor, for upstream delivery.
    pub upstream_inbox: Recipient<UpstreamMessage>,
    /// Its actor, for timers.
    pub timers: Recipient<TimerControl>,
    /// Limits.
    pub limits: ComponentLimits,
    /// The component's counters.
    pub usage: Arc<Usage>,
    /// How the runtime kills the component's call in progress.
    pub kill: KillWatch,
    /// Which instance of the component this is.
    pub generation: u64,
}

/// Host resources (streams, pollables, …) one instance may hold at once.
const MAX_HOST_RESOURCES: usize = 4096;
/// Component-model handles one instance may hold at once.
const MAX_COMPONENT_HANDLES: usize = 4096;

/// `update-configuration` calls a second, and their burst.
const CONFIG_UPDATES_PER_SEC: f64 = 1.0;
const CONFIG_UPDATE_BURST: f64 = 10.0;

impl HostState {
    pub(super) fn new(setup: HostSetup) -> Self {
        let wasi = WasiCtx::builder()
            .stdout(setup.log.guest_stream("stdout", Level::Info))
            .stderr(setup.log.guest_stream("stderr", Level::Warn))
            .env("COMPONENT_NAME", &setup.name)
            .env("AWS_IOT_THING_NAME", "")
            // Components talk through the host's interfaces only: no sockets (each would be a
            // file descriptor of the host's, taken before any address check), no DNS.
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_HOST_RESOURCES);
        let now = Instant::now();
        let publish_rate = setup.limits.publish_rate.max(1) as f64;
        Self {
            name: setup.name,
            wasi,
            table,
            memory: MemoryBudget::new(setup.limits.memory_bytes, Arc::clone(&setup.usage)),
            log: setup.log,
            access: setup.access,
            configs: setup.configs,
            services: setup.services,
            inbox: setup.inbox,
            upstream_inbox: setup.upstream_inbox,
            timers: setup.timers,
            generation: setup.generation,
            next_timer: 1,
            active_timers: HashSet::new(),
            config_subscriptions: Vec::new(),
            subscriptions: std::collections::BTreeSet::new(),
            iotcore_subscriptions: std::collections::BTreeSet::new(),
            usage: setup.usage,
            config_updates: Bucket::new(CONFIG_UPDATES_PER_SEC, CONFIG_UPDATE_BURST, now),
            publishes: Bucket::new(publish_rate, publish_rate, now),
            publish_rate,
        }
    }

    /// Waits until the component may publish again (its publish rate).
    pub(super) async fn pace_publish(&mut self) {
        while !self.publishes.take(1.0, Instant::now()) {
            tokio::time::sleep(Duration::from_secs_f64(1.0 / self.publish_rate)).await;
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

/// Calls export `$call` of `$instance` under [`budgeted`]: the epoch ticking, its wall-clock
/// budget, its time on the thread metered, and kills since its handler started ending it.
macro_rules! budgeted_call {
    ($instance:ident, $budget:expr, $call:ident($($arg:expr),*)) => {{
        let _busy = $instance.arm();
        let killed = $instance.kill.killed_since($instance.seen.get());
        let call = $instance.bindings.$call(&mut $instance.store $(, $arg)*);
        budgeted($budget, &$instance.held, &$instance.usage, killed, call).await
    }};
}

/// A live, initialised-or-not instance.
pub struct Instance {
    store: Store<HostState>,
    bindings: TurfComponent,
    ticker: EpochTicker,
    /// Time the current call held the thread so far.
    held: Cell<Duration>,
    kill: KillWatch,
    /// Kills up to this count do not concern the next call (see [`Instance::killable_from`]).
    seen: Cell<u64>,
    /// The component's counters (also in the host state; kept here for the calls' meter).
    usage: Arc<Usage>,
}

/// A call failed in a way that kills the instance (trap, budget exceeded, host bug).
#[derive(Debug, Clone)]
pub struct Trapped(pub String);

impl Instance {
    /// Instantiates `pre` in a fresh store (within `budget`, like a call).
    pub async fn new(
        engine: &WasmEngine,
        pre: &TurfComponentPre<HostState>,
        setup: HostSetup,
        budget: Duration,
    ) -> Result<Self, Trapped> {
        let _busy = engine.ticker.busy();
        let kill = setup.kill.clone();
        let mut store = Store::new(&engine.engine, HostState::new(setup));
        store.limiter(|state| &mut state.memory);
        store.set_max_component_handles(MAX_COMPONENT_HANDLES);
        // Every tick the guest yields, so the call's wall-clock budget can fire and other
        // components and services run between its slices. `yield_now` wakes the task only after
        // the runtime polled its timers and sockets (a plain wake-up would let a spinning guest
        // run 61 slices before they are looked at).
        store.epoch_deadline_callback(|_| Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))));
        store.set_epoch_deadline(1);
        let held = Cell::new(Duration::ZERO);
        let usage = Arc::clone(&store.data().usage);
        let seen = kill.kills();
        let bindings =
            budgeted(budget, &held, &usage, kill.killed_since(seen), pre.instantiate_async(&mut store)).await?;
        Ok(Self { store, bindings, ticker: engine.ticker.clone(), held, kill, seen: Cell::new(seen), usage })
    }

    /// Mutable access to the host state between calls.
    pub fn state(&mut self) -> &mut HostState {
        self.store.data_mut()
    }

    /// The next calls end at any kill after the `seen`-th (the count when their handler started).
    pub fn killable_from(&self, seen: u64) {
        self.seen.set(seen);
    }

    /// How long the calls since the last `take_held` held the component thread.
    pub fn take_held(&self) -> Duration {
        self.held.replace(Duration::ZERO)
    }

    /// Calls `init`. `Ok(Err(_))` is the guest's own failure report.
    pub async fn init(&mut self, budget: Duration) -> Result<Result<(), String>, Trapped> {
        budgeted_call!(self, budget, call_init())
    }

    /// Calls `on-message`.
    pub async fn on_message(&mut self, budget: Duration, topic: &str, payload: &[u8]) -> Result<(), Trapped> {
        budgeted_call!(self, budget, call_on_message(topic, payload))
    }

    /// Calls `on-iotcore-message`.
    pub async fn on_iotcore_message(&mut self, budget: Duration, topic: &str, payload: &[u8]) -> Result<(), Trapped> {
        budgeted_call!(self, budget, call_on_iotcore_message(topic, payload))
    }

    /// Calls `on-configuration-update`.
    pub async fn on_configuration_update(
        &mut self,
        budget: Duration,
        component: &str,
        key_path: &[String],
    ) -> Result<(), Trapped> {
        budgeted_call!(self, budget, call_on_configuration_update(component, key_path))
    }

    /// Calls `on-timer`.
    pub async fn on_timer(&mut self, budget: Duration, id: u32) -> Result<(), Trapped> {
        budgeted_call!(self, budget, call_on_timer(id))
    }

    /// Makes the guest yield on the next tick and keeps the epoch ticking until the guard is
    /// dropped.
    fn arm(&mut self) -> super::engine::Busy {
        self.store.set_epoch_deadline(1);
        self.ticker.busy()
    }
}

/// Runs `call` for at most `budget` of wall-clock time, adding the time each of its polls held
/// the thread to `held`. Over budget the call is dropped where it stands (in wasm or in a host
/// call), which leaves the store unusable: the caller drops the instance.
async fn budgeted<T>(
    budget: Duration,
    held: &Cell<Duration>,
    usage: &Usage,
    killed: impl Future<Output = ()>,
    call: impl Future<Output = wasmtime::Result<T>>,
) -> Result<T, Trapped> {
    let mut call = std::pin::pin!(call);
    let metered = std::future::poll_fn(|cx| {
        let start = Instant::now();
        let poll = call.as_mut().poll(cx);
        let spent = start.elapsed();
        held.set(held.get() + spent);
        Usage::add(&usage.cpu_us, spent.as_micros() as u64);
        poll
    });
    tokio::select! {
        outcome = tokio::time::timeout(budget, metered) => match outcome {
            Ok(result) => result.map_err(describe),
            Err(_) => {
                Usage::add(&usage.budget_overruns, 1);
                Err(Trapped(format!("call ran longer than its budget ({budget:?}, host calls included)")))
            }
        },
        () = killed => Err(Trapped("killed: it did not stop or start in time".to_owned())),
    }
}

fn describe(error: wasmtime::Error) -> Trapped {
    Trapped(format!("{error:?}"))
}
