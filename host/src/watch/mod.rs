//! Hot reload and drop-in components: the `Watcher` service.
//!
//! Watches the folders given to `turf run --watch-recipes/--watch-artifacts` and the drop-in
//! folder `DIR/plugins/`, and turns finished changes into ordinary deployments (so they are
//! validated, queued, rolled back and recorded like any other):
//!
//! - A watched recipe or artifact of a deployed component changed → redeploy that component at
//!   the same version. The content hash decides: touching a file does nothing. A broken edit
//!   fails its deployment before anything changes; the running version stays, and the error is
//!   logged and kept in `turf deployment list`.
//! - `plugins/NAME-VERSION.wasm` appeared or changed (with an optional recipe
//!   `NAME-VERSION.json|yaml|yml` beside it) → deploy it; the code is swapped in place. Without
//!   a recipe it gets a default one with no access rights. Deleting the `.wasm` removes it.
//!
//! Files count only once their writer closed them or renamed them into place, or stopped
//! changing for [`SETTLE`] (see `scan`), and, for `.wasm`, start with the WebAssembly magic;
//! each is snapshotted into `DIR/dropin/` before deploying, so a writer touching it again cannot
//! change what is loaded.
//!
//! The kernel tells the watcher what changed (inotify, through the `notify` crate): a change
//! schedules one scan [`DEBOUNCE`] later, and a file seen changing but not finished schedules
//! one for when it could have settled. With nothing changing, the watcher has no timer at all.
//! If the kernel's watches cannot be set up (limits), it falls back to scanning every [`POLL`],
//! and says so. Messages in: file-system events (from `notify`'s thread). Messages out:
//! [`CreateDeployment`], [`WaitDeployment`], [`ListComponents`]. File work runs on a blocking
//! thread, never in the actor's mailbox.

pub mod events;
pub mod scan;
mod state;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use actix::prelude::*;
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};

use self::events::{Touch, classify};
pub use self::state::SETTLE;
use self::state::{Action, WatchState};
use crate::deploy::model::{ComponentInfo, DeploymentRequest, DeploymentState};
use crate::deploy::{CreateDeployment, DeploymentsHandle, ListComponents, WaitDeployment};
use crate::layout::RootLayout;

/// How long after an event the scan runs (so one copy's burst of events makes one scan).
pub const DEBOUNCE: Duration = Duration::from_millis(5);
/// How often the folders are scanned when the kernel cannot watch them.
pub const POLL: Duration = Duration::from_millis(500);

/// What `turf run` asked to watch besides the drop-in folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchConfig {
    /// Recipe folder (`--watch-recipes`).
    pub recipes: Option<PathBuf>,
    /// Artifact folder laid out `<name>/<version>/` (`--watch-artifacts`).
    pub artifacts: Option<PathBuf>,
}

/// The watcher service.
pub struct Watcher {
    /// `None` while a scan runs on its thread.
    state: Option<WatchState>,
    deployments: DeploymentsHandle,
    /// Folders to watch, and whether their subfolders count.
    dirs: Vec<(PathBuf, RecursiveMode)>,
    /// The kernel watch; events stop when it is dropped.
    fs: Option<RecommendedWatcher>,
    /// Paths finished (closed or renamed into place) since the last scan.
    finished: BTreeSet<PathBuf>,
    /// The next scan, when one is scheduled.
    scan_due: Option<(Instant, SpawnHandle)>,
    /// Events arrived while a scan was running.
    rescan: bool,
}

/// A file-system event, from `notify`'s thread.
#[derive(Message)]
#[rtype(result = "()")]
struct FsEvent(notify::Result<notify::Event>);

impl Watcher {
    /// Records what the watched folders hold now; only later changes act.
    pub fn new(layout: RootLayout, config: WatchConfig, deployments: DeploymentsHandle) -> Self {
        let mut dirs = vec![(layout.plugins_dir(), RecursiveMode::NonRecursive)];
        for dir in [&config.recipes, &config.artifacts].into_iter().flatten() {
            tracing::info!(dir = %dir.display(), "watching for changes to redeploy");
            dirs.push((dir.clone(), RecursiveMode::Recursive));
        }
        tracing::info!(dir = %layout.plugins_dir().display(), "watching the drop-in folder");
        Self {
            state: Some(WatchState::new(layout, config)),
            deployments,
            dirs,
            fs: None,
            finished: BTreeSet::new(),
            scan_due: None,
            rescan: false,
        }
    }

    fn watch(&self, ctx: &Context<Self>) -> notify::Result<RecommendedWatcher> {
        let addr = ctx.address();
        let mut watcher = notify::recommended_watcher(move |event| addr.do_send(FsEvent(event)))?;
        for (dir, mode) in &self.dirs {
            watcher.watch(dir, *mode)?;
        }
        Ok(watcher)
    }

    fn on_event(&mut self, event: notify::Result<notify::Event>, ctx: &mut Context<Self>) {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(%error, "file watching reported an error; scanning everything");
                return self.request_scan(ctx, DEBOUNCE);
            }
        };
        match classify(&event) {
            Touch::Nothing => return,
            Touch::Finished(paths) => self.finished.extend(paths),
            Touch::Changing(paths) => {
                for path in &paths {
                    self.finished.remove(path);
                }
            }
            Touch::Rescan => {}
        }
        self.request_scan(ctx, DEBOUNCE);
    }

    /// Makes sure a scan runs within `delay` (an earlier one scheduled already counts).
    fn request_scan(&mut self, ctx: &mut Context<Self>, delay: Duration) {
        let at = Instant::now() + delay;
        if self.scan_due.as_ref().is_some_and(|(due, _)| *due <= at) {
            return;
        }
        if let Some((_, handle)) = self.scan_due.take() {
            ctx.cancel_future(handle);
        }
        let handle = ctx.run_later(delay, |act, ctx| {
            act.scan_due = None;
            act.scan(ctx);
        });
        self.scan_due = Some((at, handle));
    }

    fn scan(&mut self, ctx: &mut Context<Self>) {
        // A scan still running (`state` is on its thread) is not overlapped: it runs again after.
        let Some(mut state) = self.state.take() else {
            self.rescan = true;
            return;
        };
        let finished = std::mem::take(&mut self.finished);
        let scan = tokio::task::spawn_blocking(move || {
            let actions = state.tick(Instant::now(), &finished);
            let next = state.next_settle();
            (state, actions, next)
        });
        ctx.spawn(scan.into_actor(self).map(|joined, act, ctx| match joined {
            Ok((state, actions, next)) => {
                act.state = Some(state);
                if !actions.is_empty() {
                    ctx.spawn(submit(act.deployments.clone(), actions).into_actor(act));
                }
                if std::mem::take(&mut act.rescan) {
                    act.request_scan(ctx, Duration::ZERO);
                }
                if let Some(next) = next {
                    act.request_scan(ctx, next.saturating_duration_since(Instant::now()));
                }
            }
            Err(error) => tracing::error!(%error, "the watcher's scan failed; hot reload stops"),
        }));
    }
}

/// Turns actions into deployments, in order, and logs how each ended.
async fn submit(deployments: DeploymentsHandle, actions: Vec<Action>) {
    // Without the list, "not deployed" would be a guess: do nothing this round and say why.
    let deployed = match deployments.components.send(ListComponents).await {
        Ok(deployed) => deployed,
        Err(error) => {
            tracing::error!(%error, actions = actions.len(), "cannot ask which components are deployed; these changes are not applied");
            return;
        }
    };
    for action in actions {
        let Some((what, request)) = deployment_for(action, &deployed) else { continue };
        let record = match deployments.create.send(CreateDeployment(request)).await {
            Ok(Ok(record)) => record,
            Ok(Err(error)) => {
                tracing::error!(what, %error, "cannot submit the deployment");
                continue;
            }
            Err(error) => {
                tracing::error!(what, %error, "deployment service unavailable");
                return;
            }
        };
        tracing::info!(what, deployment = record.id, "deploying");
        let wait = deployments.wait.clone();
        actix_rt::spawn(async move {
            match wait.send(WaitDeployment { id: record.id.clone(), after: None }).await {
                Ok(Some(done)) if done.state == DeploymentState::Succeeded => {
                    tracing::info!(what, deployment = done.id, took_ms = done.took_ms, "done");
                }
                Ok(Some(done)) => tracing::warn!(
                    what,
                    deployment = done.id,
                    error = done.error.as_deref().unwrap_or("unknown"),
                    "failed; what ran before keeps running"
                ),
                _ => {}
            }
        });
    }
}

/// The deployment an action asks for, and how the log names it; `None` when there is nothing
/// to do (a hot reload of something not deployed at that version, a drop-in already removed).
fn deployment_for(action: Action, deployed: &[ComponentInfo]) -> Option<(String, DeploymentRequest)> {
    match action {
        Action::Redeploy { name, version, cause, from } => {
            let Some(info) = deployed.iter().find(|c| c.name == name && c.version == version.to_string() && !c.builtin)
            else {
                tracing::debug!(component = name, %version, cause, "not deployed at this version; nothing to reload");
                return None;
            };
            let mut request = DeploymentRequest {
                recipe_dir: from.recipes,
                artifact_dir: from.artifacts,
                ..DeploymentRequest::default()
            };
            if info.root {
                request.merge.insert(name.clone(), version.to_string());
            }
            Some((format!("hot reload of {name} {version} ({cause})"), request))
        }
        Action::Dropin { name, request, cause } => Some((format!("drop-in {name} ({cause})"), request)),
        Action::RemoveDropin { name } => {
            if !deployed.iter().any(|c| c.name == name && c.root) {
                return None;
            }
            let request = DeploymentRequest { remove: vec![name.clone()], ..DeploymentRequest::default() };
            Some((format!("removal of drop-in {name} (its .wasm was deleted)"), request))
        }
    }
}

/// Stop watching (shutdown): no drop-in or hot reload starts a deployment after this.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopWatcher;

impl Handler<StopWatcher> for Watcher {
    type Result = ();

    fn handle(&mut self, _msg: StopWatcher, ctx: &mut Self::Context) {
        self.fs = None;
        ctx.stop();
    }
}

impl Actor for Watcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        match self.watch(ctx) {
            Ok(watcher) => self.fs = Some(watcher),
            Err(error) => {
                tracing::warn!(%error, poll_ms = POLL.as_millis() as u64, "cannot watch the folders; scanning them periodically instead");
                ctx.run_interval(POLL, |act, ctx| act.request_scan(ctx, Duration::ZERO));
            }
        }
        // Drop-ins added, changed or removed while the host was down.
        self.request_scan(ctx, Duration::ZERO);
    }
}

impl Handler<FsEvent> for Watcher {
    type Result = ();

    fn handle(&mut self, msg: FsEvent, ctx: &mut Self::Context) {
        self.on_event(msg.0, ctx);
    }
}
