//! WebAssembly components: the runtime service and one actor per running component.
//!
//! The `ComponentRuntime` actor owns the wasmtime engine, the linker, the compiled-component
//! cache and the addresses of the component actors. Messages in: [`Prepare`] (compile and link a
//! `.wasm` without starting it, so a deployment can validate first), [`Launch`] (start or replace
//! a component; replies with the outcome of its first `init`), [`Configure`], [`Stop`],
//! [`Control`] (operator restart/stop), [`StopAll`]. Component actors report [`ComponentStatus`] to the peer given at start. The
//! runtime never blocks its mailbox on a guest: compiling runs on a blocking thread, guests run
//! in their own actors.
//!
//! - `access`: `accessControl` parsing and checks (pure).
//! - `lifecycle`: states and the restart policy (pure). `budget`: memory budget, CPU share and
//!   the usage counters (pure).
//! - `engine`: engine, compile helper, compile cache. `ticker`: the epoch ticker.
//! - `instance`: one store, its host state and budgeted calls.
//! - `actor`: the per-component actor. `inbox`: its bounded message queue.
//! - `host`: the WIT imports, one file per interface.
//! - `log`: component log files.
//! - `bindings`: the generated bindings.

pub mod access;
pub mod actor;
pub mod bindings;
pub mod budget;
pub mod engine;
mod error;
mod handle;
mod host;
pub mod inbox;
pub mod instance;
pub mod kill;
pub mod lifecycle;
pub mod limits;
pub mod log;
pub mod ticker;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;
use wasmtime::component::Linker;

use self::access::AccessControl;
pub use self::actor::ComponentStatus;
use self::actor::{ComponentActor, ComponentSpec, Reconfigure, RestartComponent, StopComponent, Swap};
use self::bindings::TurfComponentPre;
use self::engine::{CompileCache, Compiler, EngineError, WasmEngine};
pub use self::error::{ConfigUpdateError, RuntimeError};
pub use self::handle::{
    Configure, Control, ControlAction, HostServices, Launch, Prepare, RuntimeHandle, Stop, StopAll, UpdateConfiguration,
};
use self::instance::{ConfigSnapshot, HostState, KillSwitch};
use self::log::ComponentLog;
use crate::components::limits::{ComponentLimits, LimitOverrides};
use crate::layout::RootLayout;

/// A compiled and linked component, ready to launch.
#[derive(Clone)]
pub struct Prepared {
    /// Component name.
    pub name: String,
    /// Component version.
    pub version: String,
    pre: TurfComponentPre<HostState>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared").field("name", &self.name).field("version", &self.version).finish_non_exhaustive()
    }
}

/// Longest a component may take to stop before its call in progress is killed (Greengrass's
/// shutdown timeout, shortened: a call is bounded by its budget anyway).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest the host's shutdown waits for all components together before killing their calls.
pub const STOP_ALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a killed component has to let its actor finish.
const KILL_GRACE: Duration = Duration::from_secs(1);

/// A component actor and the switch that kills its call in progress.
struct Running {
    actor: Addr<ComponentActor>,
    kill: KillSwitch,
}

/// Stops the component: no further call starts, the call in progress has `timeout` to finish
/// and is then killed. Returns its restart count, or `None` if it never answered.
async fn stop_component(running: Running, timeout: Duration) -> Option<u32> {
    running.kill.stop();
    let mut request = Box::pin(running.actor.send(StopComponent));
    if let Ok(answer) = tokio::time::timeout(timeout, &mut request).await {
        return answer.ok();
    }
    running.kill.kill();
    match tokio::time::timeout(KILL_GRACE, &mut request).await {
        Ok(answer) => answer.ok(),
        Err(_) => {
            // Keep the request alive (a dropped one is skipped by the actor), so the actor
            // still stops once whatever holds it ends; nothing waits for it any more.
            actix_rt::spawn(async move {
                let _ = request.await;
            });
            None
        }
    }
}

/// The component runtime service.
pub struct ComponentRuntime {
    engine: WasmEngine,
    linker: Arc<Linker<HostState>>,
    cache: CompileCache,
    layout: RootLayout,
    limits: ComponentLimits,
    services: HostServices,
    running: HashMap<String, Running>,
    /// What every deployed component was last launched with, so a stopped one can be restarted.
    launched: HashMap<String, (Prepared, Arc<AccessControl>, LimitOverrides)>,
    /// The newest configurations.
    configs: Arc<ConfigSnapshot>,
    /// Restart counts of components an operator stopped, carried over when they restart.
    stopped: HashMap<String, u32>,
    /// The host is shutting down: nothing is launched any more.
    closed: bool,
}

impl ComponentRuntime {
    /// Creates the engine, linker and cache.
    pub fn new(
        layout: RootLayout,
        limits: ComponentLimits,
        compiler: Compiler,
        services: HostServices,
    ) -> Result<Self, EngineError> {
        let engine = engine::new_engine()?;
        let linker = instance::linker(&engine.engine).map_err(|e| EngineError::Engine(format!("{e:#}")))?;
        let cache = CompileCache::new(&layout.compiled_cache_dir(), compiler)?;
        Ok(Self {
            engine,
            linker: Arc::new(linker),
            cache,
            layout,
            limits,
            services,
            running: HashMap::new(),
            launched: HashMap::new(),
            configs: Arc::default(),
            stopped: HashMap::new(),
            closed: false,
        })
    }

    fn prepare(&self, msg: Prepare) -> impl Future<Output = Result<Prepared, RuntimeError>> + 'static {
        let engine = self.engine.engine.clone();
        let linker = Arc::clone(&self.linker);
        let cache = self.cache.clone();
        async move {
            let Prepare { name, version, wasm } = msg;
            let compile_engine = engine.clone();
            let component = tokio::task::spawn_blocking(move || cache.load(&compile_engine, &wasm))
                .await
                .map_err(|e| RuntimeError::Compile(format!("compiler thread failed: {e}")))?
                .map_err(|e| RuntimeError::Compile(e.to_string()))?;
            let link = |reason: String| RuntimeError::Link { name: name.clone(), version: version.clone(), reason };
            let instance_pre = linker.instantiate_pre(&component).map_err(|e| link(format!("{e:#}")))?;
            let pre = TurfComponentPre::new(instance_pre).map_err(|e| link(format!("{e:#}")))?;
            Ok(Prepared { name, version, pre })
        }
    }

    /// The running actor of `name`, if it is alive.
    fn actor(&self, name: &str) -> Option<&Running> {
        self.running.get(name).filter(|r| r.actor.connected())
    }

    /// Starts a new actor for `msg`, or swaps the code of the running one in place. The outcome
    /// arrives within the component's start deadline: past it, its call in progress is killed.
    fn launch(&mut self, msg: Launch, restarts: u32) -> Result<oneshot::Receiver<Result<(), String>>, RuntimeError> {
        let name = msg.prepared.name.clone();
        if self.closed {
            return Err(RuntimeError::ShuttingDown(name));
        }
        self.launched.insert(name.clone(), (msg.prepared.clone(), Arc::clone(&msg.access), msg.limits.clone()));
        self.configs = Arc::clone(&msg.configs);
        let limits = self.limits.with(&msg.limits);
        // The call in progress and one delivery (CPU-share waits and timer ticks are skipped
        // while a swap is coming), then instantiation and `init`.
        let deadline = limits.call_budget * 2 + limits.init_budget + KILL_GRACE;
        if let Some(running) = self.actor(&name) {
            let swap = Swap {
                version: msg.prepared.version,
                pre: msg.prepared.pre,
                access: msg.access,
                configs: msg.configs,
                limits,
            };
            return Ok(swap_within(running, swap, deadline));
        }
        let log = ComponentLog::open(&name, &self.layout.component_log(&name))
            .map_err(|e| RuntimeError::Log { name: name.clone(), reason: e.to_string() })?;
        let kill = KillSwitch::default();
        let spec = ComponentSpec {
            name: name.clone(),
            version: msg.prepared.version,
            pre: msg.prepared.pre,
            access: msg.access,
            configs: msg.configs,
            limits,
            log,
            restarts,
            usage: Arc::default(),
            kill: kill.watch(),
        };
        spec.log.limit(spec.limits.log_bytes_per_sec, Arc::clone(&spec.usage));
        let (first_tx, first_rx) = oneshot::channel();
        let actor = ComponentActor::new(spec, self.engine.clone(), self.services.clone(), first_tx).start();
        let (tx, rx) = oneshot::channel();
        let killer = kill.clone();
        actix_rt::spawn(async move {
            let outcome = match tokio::time::timeout(deadline, first_rx).await {
                Ok(answer) => {
                    answer.unwrap_or_else(|_| Err("the component stopped before it finished starting".into()))
                }
                Err(_) => {
                    killer.kill();
                    Err(format!("did not start within {deadline:?}; it was killed"))
                }
            };
            let _ = tx.send(outcome);
        });
        self.running.insert(name, Running { actor, kill });
        Ok(rx)
    }

    /// Restarts or stops a deployed component on an operator's request.
    fn control(&mut self, msg: Control) -> ResponseActFuture<Self, Result<(), RuntimeError>> {
        let Some((prepared, access, limits)) = self.launched.get(&msg.name).cloned() else {
            return Box::pin(fut::ready(Err(RuntimeError::NotDeployed(msg.name))));
        };
        let alive = self.actor(&msg.name).is_some();
        match (msg.action, alive) {
            (ControlAction::Stop, true) => {
                let Some(running) = self.running.remove(&msg.name) else {
                    return Box::pin(fut::ready(Ok(())));
                };
                let name = msg.name;
                Box::pin(stop_component(running, STOP_TIMEOUT).into_actor(self).map(move |stopped, act, _| {
                    act.stopped.insert(name, stopped.unwrap_or_default());
                    Ok(())
                }))
            }
            (ControlAction::Stop, false) => Box::pin(fut::ready(Ok(()))),
            (ControlAction::Restart, true) => {
                let (done, outcome) = oneshot::channel();
                if let Some(running) = self.actor(&msg.name) {
                    running.actor.do_send(RestartComponent { done });
                }
                Box::pin(started(msg.name, Ok(outcome)).into_actor(self))
            }
            (ControlAction::Restart, false) => {
                let launch = Launch { prepared, access, configs: Arc::clone(&self.configs), limits };
                let restarts = self.stopped.remove(&msg.name).map_or(0, |n| n + 1);
                let launched = self.launch(launch, restarts);
                Box::pin(started(msg.name, launched).into_actor(self))
            }
        }
    }

    fn configure(&mut self, msg: Configure) {
        self.configs = Arc::clone(&msg.configs);
        for (name, running) in &self.running {
            let access = msg.access.get(name).cloned().unwrap_or_default();
            running.actor.do_send(Reconfigure { configs: Arc::clone(&msg.configs), access });
        }
    }
}

/// Swaps `swap`'s code into the running component; the outcome arrives within `deadline`, past
/// which the call in progress is killed.
fn swap_within(running: &Running, swap: Swap, deadline: Duration) -> oneshot::Receiver<Result<(), String>> {
    let (tx, rx) = oneshot::channel();
    running.kill.swap_coming();
    let (request, kill) = (running.actor.send(swap), running.kill.clone());
    actix_rt::spawn(async move {
        let mut request = Box::pin(request);
        let outcome = match tokio::time::timeout(deadline, &mut request).await {
            Ok(answer) => answer.unwrap_or_else(|e| Err(format!("component actor gone: {e}"))),
            Err(_) => {
                kill.kill();
                let _ = tx.send(Err(format!("did not start within {deadline:?}; its call in progress was killed")));
                // The swap still runs when the actor gets to it (a dropped request would be
                // skipped); the deployment has already failed and rolls back behind it.
                let _ = request.await;
                return;
            }
        };
        let _ = tx.send(outcome);
    });
    rx
}

/// How a launch (or restart) of `name` ended: once its `init` finished, or why it did not start.
async fn started(
    name: String,
    launched: Result<oneshot::Receiver<Result<(), String>>, RuntimeError>,
) -> Result<(), RuntimeError> {
    let stopped = || "the component stopped before it finished starting".to_owned();
    let outcome = launched?.await.unwrap_or_else(|_| Err(stopped()));
    outcome.map_err(|reason| RuntimeError::Start { name, reason })
}

impl Actor for ComponentRuntime {
    type Context = Context<Self>;
}

impl Handler<Prepare> for ComponentRuntime {
    type Result = ResponseFuture<Result<Prepared, RuntimeError>>;

    fn handle(&mut self, msg: Prepare, _ctx: &mut Self::Context) -> Self::Result {
        Box::pin(self.prepare(msg))
    }
}

impl Handler<Launch> for ComponentRuntime {
    type Result = ResponseFuture<Result<(), RuntimeError>>;

    fn handle(&mut self, msg: Launch, _ctx: &mut Self::Context) -> Self::Result {
        let name = msg.prepared.name.clone();
        self.stopped.remove(&name);
        let launched = self.launch(msg, 0);
        Box::pin(started(name, launched))
    }
}

impl Handler<Configure> for ComponentRuntime {
    type Result = ();

    fn handle(&mut self, msg: Configure, _ctx: &mut Self::Context) {
        self.configure(msg);
    }
}

impl Handler<Stop> for ComponentRuntime {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Stop, _ctx: &mut Self::Context) -> Self::Result {
        let running = self.running.remove(&msg.name);
        self.launched.remove(&msg.name);
        self.stopped.remove(&msg.name);
        Box::pin(async move {
            if let Some(running) = running
                && stop_component(running, STOP_TIMEOUT).await.is_none()
            {
                tracing::warn!(component = msg.name, "component did not stop in time; abandoned");
            }
        })
    }
}

impl Handler<Control> for ComponentRuntime {
    type Result = ResponseActFuture<Self, Result<(), RuntimeError>>;

    fn handle(&mut self, msg: Control, _ctx: &mut Self::Context) -> Self::Result {
        self.control(msg)
    }
}

impl Handler<StopAll> for ComponentRuntime {
    type Result = ResponseFuture<Vec<String>>;

    /// Stops every component together; replies with those that did not stop in time.
    fn handle(&mut self, _msg: StopAll, _ctx: &mut Self::Context) -> Self::Result {
        self.closed = true;
        let stops: Vec<_> =
            self.running
                .drain()
                .map(|(name, running)| async move {
                    stop_component(running, STOP_ALL_TIMEOUT).await.is_none().then_some(name)
                })
                .collect();
        Box::pin(async move { futures::future::join_all(stops).await.into_iter().flatten().collect() })
    }
}
