//! One actor per running component: owns its instance (and so its wasmtime `Store`).
//!
//! Messages in: [`PubsubMessage`] and [`UpstreamMessage`] (deliveries), [`TimerControl`] (from
//! its own `timer` import), [`Reconfigure`], [`Swap`], [`RestartComponent`], [`StopComponent`].
//! Messages out: [`ComponentStatus`] on every state change, [`UnsubscribeAll`] and
//! [`UnsubscribeUpstream`] when an instance dies. Every handler that touches the instance is atomic,
//! so messages reach the guest one at a time and in arrival order. A trap, a budget overrun or a
//! failed `init` drops the instance; the restart policy in `lifecycle` brings up a fresh one or
//! marks the component BROKEN. A dead instance is never called again.
//!
//! Fairness: each call's time on the thread is charged to the component's CPU share
//! (`budget::CpuShare`); while the share is spent, the next call waits (deliveries wait in the
//! inbox, bounded, and each timer has at most one tick pending: further ticks are merged and
//! counted).

mod handlers;
mod messages;
mod swap;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use actix::prelude::*;
use tokio::sync::oneshot;
use tracing::Instrument;

use super::HostServices;
use super::access::AccessControl;
use super::bindings::TurfComponentPre;
use super::budget::{CpuShare, Usage};
use super::engine::WasmEngine;
use super::host::changed_subscriptions;
use super::inbox::ComponentInbox;
use super::instance::{ConfigSnapshot, HostSetup, HostState, Instance, KillWatch, TimerControl, Trapped};
use super::lifecycle::{AfterError, ErrorHistory, State};
use super::log::{ComponentLog, Level};
use crate::components::limits::ComponentLimits;
use crate::pubsub::{PubsubMessage, UnsubscribeAll};
use crate::upstream::{UnsubscribeUpstream, UpstreamMessage};

pub use self::messages::{ComponentStatus, Reconfigure, RestartComponent, StopComponent, Swap, UsageHandle};
use self::messages::{FireTimer, Restart};

/// What a component actor is built from.
pub struct ComponentSpec {
    /// Component name.
    pub name: String,
    /// Component version.
    pub version: String,
    /// Compiled and linked code.
    pub pre: TurfComponentPre<HostState>,
    /// Access rights.
    pub access: Arc<AccessControl>,
    /// Every component's configuration.
    pub configs: Arc<ConfigSnapshot>,
    /// Limits.
    pub limits: ComponentLimits,
    /// Its log.
    pub log: ComponentLog,
    /// Restarts so far (non-zero when an operator restarts a stopped component).
    pub restarts: u32,
    /// Its counters, kept across restarts and swaps.
    pub usage: Arc<Usage>,
    /// How the runtime kills its call in progress (a stop or a start past its deadline).
    pub kill: KillWatch,
}

/// A running component.
pub struct ComponentActor {
    spec: ComponentSpec,
    engine: WasmEngine,
    services: HostServices,
    instance: Option<Instance>,
    state: State,
    errors: ErrorHistory,
    restarts: u32,
    last_error: Option<String>,
    running_since: Option<SystemTime>,
    /// The current instance's generation (see `next_generation`).
    generation: u64,
    next_generation: u64,
    timers: HashMap<u32, SpawnHandle>,
    /// Timers with a tick waiting in the mailbox.
    pending_ticks: HashSet<u32>,
    cpu: CpuShare,
    first_start: Option<oneshot::Sender<Result<(), String>>>,
    inbox: Option<Addr<ComponentInbox>>,
}

impl ComponentActor {
    /// An actor that instantiates `spec` when started and reports the first outcome on `first_start`.
    pub fn new(
        spec: ComponentSpec,
        engine: WasmEngine,
        services: HostServices,
        first_start: oneshot::Sender<Result<(), String>>,
    ) -> Self {
        let restarts = spec.restarts;
        let cpu = CpuShare::new(spec.limits.cpus, Instant::now());
        Self {
            spec,
            engine,
            services,
            instance: None,
            state: State::Installed,
            errors: ErrorHistory::default(),
            restarts,
            last_error: None,
            running_since: None,
            generation: 0,
            next_generation: 0,
            timers: HashMap::new(),
            pending_ticks: HashSet::new(),
            cpu,
            first_start: Some(first_start),
            inbox: None,
        }
    }

    fn set_state(&mut self, state: State, error: Option<String>) {
        match state {
            State::Running => {
                self.running_since.get_or_insert_with(SystemTime::now);
            }
            _ => self.running_since = None,
        }
        self.state = state;
        let level = if error.is_some() { Level::Error } else { Level::Info };
        if error.is_some() {
            self.last_error.clone_from(&error);
        }
        let note = match &error {
            Some(e) => format!("{state}: {e}"),
            None => state.to_string(),
        };
        self.spec.log.line(level, "lifecycle", &note);
        self.services.status.do_send(ComponentStatus {
            name: self.spec.name.clone(),
            version: self.spec.version.clone(),
            state,
            error: error.or_else(|| self.last_error.clone()),
            restarts: self.restarts,
            running_since: self.running_since.map(crate::store::secs_since_epoch),
            usage: UsageHandle { usage: Arc::clone(&self.spec.usage), memory_limit: self.spec.limits.memory_bytes },
        });
    }

    fn setup(&mut self, ctx: &Context<Self>, generation: u64) -> HostSetup {
        let limits = self.spec.limits.clone();
        self.setup_with(ctx, Arc::clone(&self.spec.access), Arc::clone(&self.spec.configs), limits, generation)
    }

    /// A number no instance of this component had.
    fn next_generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }

    fn bounds(&self) -> super::inbox::Bounds {
        super::inbox::Bounds {
            messages: self.spec.limits.queue_messages,
            bytes: self.spec.limits.queue_bytes,
            usage: Arc::clone(&self.spec.usage),
        }
    }

    /// The component's inbox, started with the actor.
    fn inbox(&mut self, ctx: &Context<Self>) -> Addr<ComponentInbox> {
        let bounds = self.bounds();
        let name = self.spec.name.clone();
        self.inbox
            .get_or_insert_with(|| {
                ComponentInbox::new(name, bounds, ctx.address().recipient(), ctx.address().recipient()).start()
            })
            .clone()
    }

    fn setup_with(
        &mut self,
        ctx: &Context<Self>,
        access: Arc<AccessControl>,
        configs: Arc<ConfigSnapshot>,
        limits: ComponentLimits,
        generation: u64,
    ) -> HostSetup {
        let inbox = self.inbox(ctx);
        HostSetup {
            name: self.spec.name.clone(),
            log: self.spec.log.clone(),
            access,
            configs,
            services: self.services.clone(),
            inbox: inbox.clone().recipient(),
            upstream_inbox: inbox.recipient(),
            timers: ctx.address().recipient(),
            limits,
            usage: Arc::clone(&self.spec.usage),
            kill: self.spec.kill.clone(),
            generation,
        }
    }

    /// Instantiates and initialises a fresh instance (atomically with respect to deliveries).
    fn start_instance(&mut self, ctx: &mut Context<Self>) {
        self.generation = self.next_generation();
        self.set_state(State::Starting, None);
        let engine = self.engine.clone();
        let pre = self.spec.pre.clone();
        let setup = self.setup(ctx, self.generation);
        let budget = self.spec.limits.init_budget;
        let started = async move {
            // One budget for instantiation and `init` together.
            let deadline = Instant::now() + budget;
            let mut instance = Instance::new(&engine, &pre, setup, budget).await?;
            match instance.init(deadline.saturating_duration_since(Instant::now())).await? {
                Ok(()) => Ok(instance),
                Err(reason) => Err(Trapped(format!("init returned an error: {reason}"))),
            }
        };
        ctx.wait(started.into_actor(self).map(|result, act, ctx| match result {
            Ok(instance) => {
                // Starting is not charged to the CPU share.
                instance.take_held();
                act.instance = Some(instance);
                act.set_state(State::Running, None);
                if let Some(tx) = act.first_start.take() {
                    let _ = tx.send(Ok(()));
                }
            }
            Err(Trapped(reason)) => {
                if let Some(tx) = act.first_start.take() {
                    let _ = tx.send(Err(reason.clone()));
                }
                act.failed(reason, ctx);
            }
        }));
    }

    /// Drops every bus and upstream subscription of the component.
    fn unsubscribe_everything(&self) {
        self.services.bus.unsubscribe_all.do_send(UnsubscribeAll { subscriber: self.spec.name.clone() });
        self.services
            .upstream
            .unsubscribe
            .do_send(UnsubscribeUpstream { subscriber: self.spec.name.clone(), filter: None });
    }

    /// Drops the instance with its subscriptions and timers.
    fn drop_instance(&mut self, ctx: &mut Context<Self>) {
        self.instance = None;
        self.unsubscribe_everything();
        for (_, handle) in self.timers.drain() {
            ctx.cancel_future(handle);
        }
        self.pending_ticks.clear();
    }

    /// The instance died: drop its subscriptions and timers, then restart or give up.
    fn failed(&mut self, reason: String, ctx: &mut Context<Self>) {
        self.drop_instance(ctx);
        tracing::error!(component = self.spec.name, reason, "component errored");
        match self.errors.record(Instant::now()) {
            AfterError::Restart(delay) => {
                self.set_state(State::Errored, Some(reason));
                ctx.run_later(delay, |_, ctx| ctx.notify(Restart));
            }
            AfterError::Broken => {
                self.set_state(State::Broken, Some(reason));
                tracing::error!(
                    component = self.spec.name,
                    "component is BROKEN after repeated errors; redeploy it to try again"
                );
            }
        }
    }

    /// Runs `call` on the instance, if there is one, then puts it back or handles its death.
    /// A component over its CPU share first waits until it is back within it (unless a swap is
    /// on its way); the time the call held the thread is charged afterwards. A stop or a kill
    /// that comes while it waits means the call never starts.
    fn with_instance<F, Fut>(&mut self, what: &'static str, parent: &tracing::Span, call: F) -> AtomicResponse<Self, ()>
    where
        F: FnOnce(Instance) -> Fut + 'static,
        Fut: Future<Output = (Instance, Result<(), Trapped>)> + 'static,
    {
        let kill = self.spec.kill.clone();
        if kill.stopping() {
            return AtomicResponse::new(Box::pin(fut::ready(())));
        }
        let Some(instance) = self.instance.take() else {
            return AtomicResponse::new(Box::pin(fut::ready(())));
        };
        let seen = kill.kills();
        let wait = self.cpu.wait(Instant::now()).filter(|_| !kill.swap_coming());
        let usage = Arc::clone(&self.spec.usage);
        // A child of the message's path, so one message can be followed into the guest.
        let span = tracing::debug_span!(parent: parent, "component", name = %self.spec.name, export = %what);
        let finished = span.clone();
        let run = async move {
            if let Some(wait) = wait {
                let start = Instant::now();
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = kill.killed_since(seen) => {}
                }
                Usage::add(&usage.throttled_calls, 1);
                Usage::add(&usage.throttled_ms, start.elapsed().as_millis() as u64);
            }
            if kill.stopping() || kill.kills() != seen {
                return (instance, Ok(()));
            }
            instance.killable_from(seen);
            call(instance).await
        }
        .instrument(span);
        AtomicResponse::new(Box::pin(run.into_actor(self).map(move |(instance, result), act, ctx| {
            let held = instance.take_held();
            finished
                .in_scope(|| tracing::debug!(held_us = held.as_micros() as u64, ok = result.is_ok(), "call finished"));
            act.cpu.charge(held, Instant::now());
            match result {
                Ok(()) => act.instance = Some(instance),
                Err(Trapped(reason)) => act.failed(format!("{what}: {reason}"), ctx),
            }
        })))
    }

    /// Counts a delivery that reaches no instance (dead, restarting or stopping).
    fn undelivered(&self) -> bool {
        let lost = self.instance.is_none() || self.spec.kill.stopping();
        if lost {
            Usage::add(&self.spec.usage.dropped_messages, 1);
        }
        lost
    }

    fn timer_control(&mut self, msg: TimerControl, ctx: &mut Context<Self>) {
        match msg {
            TimerControl::Start { generation, .. } | TimerControl::Cancel { generation, .. }
                if generation != self.generation =>
            {
                // From an instance that never became current, or is gone.
            }
            TimerControl::Start { id, period, generation } => {
                let handle = ctx.run_interval(period, move |act, ctx| {
                    if act.spec.kill.swap_coming() {
                        Usage::add(&act.spec.usage.coalesced_ticks, 1);
                    } else if act.pending_ticks.insert(id) {
                        ctx.notify(FireTimer { id, generation });
                    } else {
                        Usage::add(&act.spec.usage.coalesced_ticks, 1);
                    }
                });
                if let Some(old) = self.timers.insert(id, handle) {
                    ctx.cancel_future(old);
                }
            }
            TimerControl::Cancel { id, .. } => {
                self.pending_ticks.remove(&id);
                if let Some(handle) = self.timers.remove(&id) {
                    ctx.cancel_future(handle);
                }
            }
        }
    }
}
