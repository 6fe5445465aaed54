//! Local deployments: recipes, configuration merges, and which components run.
//!
//! The `Deployments` actor owns the deployed set and the deployment history. Messages in:
//! [`CreateDeployment`], [`GetDeployment`], [`WaitDeployment`], [`ListDeployments`],
//! [`ListComponents`], [`Restore`], and [`ComponentStatus`] from the component runtime. Messages
//! out (through [`DeploymentServices`]): compile/launch/configure/stop to the runtime, routes to the
//! bridge. Deployments run one at a time in submission order; each is planned and validated in
//! full before anything changes. Its mailbox never waits on a component: applying runs as a
//! spawned future, so components can still be served while they start.
//!
//! - `recipe`, `semver_range`, `variables`, `config_update`: pure parsing and merge rules.
//! - `builtin`: the components Turf itself provides.
//! - `plan`: validating a request into steps. `apply`: carrying them out.
//! - `records`: SQLite persistence. `model`: API types.

pub mod apply;
pub mod builtin;
pub mod config_update;
pub mod dropin;
mod error;
mod handle;
mod handlers;
pub mod model;
pub mod plan;
pub mod recipe;
pub mod records;
mod restore;
pub mod semver_range;
pub mod variables;
mod views;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use actix::prelude::*;
use tokio::sync::oneshot;

pub use self::apply::DeploymentServices;
use self::apply::{Applied, DeploymentProgress, Progress};
pub use self::error::DeploymentError;
pub use self::handle::{
    CloseDeployments, CountDeployments, CreateDeployment, DeploymentsHandle, GetComponent, GetDeployment,
    ListComponents, ListDeployments, Restore, WaitDeployment,
};
use self::model::{
    ComponentDetails, ComponentInfo, DeploymentRecord, DeploymentRequest, DeploymentState, FailureDetail,
    FailurePolicy, ProgressEvent,
};
use self::plan::{DeployedSet, Plan, PlanContext};
use self::recipe::Platform;
use self::records::{Records, RecordsError};
pub use crate::components::UpdateConfiguration;
use crate::components::{ComponentStatus, ConfigUpdateError, Configure, Prepared};
use crate::layout::RootLayout;
use crate::store;

/// How many deployments `turf deployment list` shows.
const HISTORY: usize = 50;

/// A caller waiting for a deployment to finish or move on.
struct Waiter {
    after: Option<usize>,
    reply: oneshot::Sender<DeploymentRecord>,
}

impl Waiter {
    fn satisfied_by(&self, record: &DeploymentRecord) -> bool {
        record.state.is_final() || self.after.is_some_and(|seen| record.progress.len() > seen)
    }
}

/// The deployment being applied.
struct Active {
    record: DeploymentRecord,
    started: Instant,
}

/// How applying a deployment ended.
struct Finished {
    /// `None` if planning refused it.
    plan: Option<Plan>,
    result: Result<Applied, String>,
    /// Steps that could not be undone, if it was rolled back.
    rollback: Option<Vec<String>>,
}

/// The deployment service.
pub struct Deployments {
    layout: RootLayout,
    platform: Platform,
    thing_name: String,
    records: Records,
    current: DeployedSet,
    /// The compiled code of every running WebAssembly component in `current`, to roll back to.
    code: HashMap<String, Prepared>,
    queue: VecDeque<DeploymentRecord>,
    active: Option<Active>,
    waiters: HashMap<String, Vec<Waiter>>,
    statuses: BTreeMap<String, ComponentStatus>,
    /// Configuration updates made by components while a deployment was being applied; they are
    /// re-applied to its result.
    updates_during_apply: Vec<UpdateConfiguration>,
    peers: DeploymentServices,
    /// Shutting down: nothing new is accepted or started.
    closed: bool,
    /// The last deployment is being restored: new ones wait until it is back.
    restoring: bool,
}

impl Deployments {
    /// Opens the deployment records under `layout`.
    pub fn new(layout: RootLayout, thing_name: String, peers: DeploymentServices) -> Result<Self, RecordsError> {
        let records = Records::open(&layout.database())?;
        let failed = records.fail_unfinished()?;
        if failed > 0 {
            tracing::warn!(failed, "deployments left unfinished by the previous run were marked FAILED");
        }
        Ok(Self {
            layout,
            platform: Platform::current(),
            thing_name,
            records,
            current: DeployedSet::new(),
            code: HashMap::new(),
            queue: VecDeque::new(),
            active: None,
            waiters: HashMap::new(),
            statuses: BTreeMap::new(),
            updates_during_apply: Vec::new(),
            peers,
            closed: false,
            restoring: false,
        })
    }

    fn context(&self) -> PlanContext<'_> {
        PlanContext { layout: &self.layout, platform: &self.platform, thing_name: &self.thing_name }
    }

    fn submit(
        &mut self,
        request: DeploymentRequest,
        ctx: &mut Context<Self>,
    ) -> Result<DeploymentRecord, DeploymentError> {
        if self.closed {
            return Err(DeploymentError::ShuttingDown);
        }
        let record = DeploymentRecord {
            id: uuid::Uuid::new_v4().to_string(),
            state: DeploymentState::Queued,
            created_at: store::now_secs(),
            started_at: None,
            finished_at: None,
            took_ms: None,
            request,
            error: None,
            detail: None,
            components: Vec::new(),
            progress: Vec::new(),
        };
        self.records.insert(&record)?;
        tracing::info!(deployment = record.id, "deployment queued");
        self.queue.push_back(record.clone());
        self.run_next(ctx);
        Ok(record)
    }

    fn run_next(&mut self, ctx: &mut Context<Self>) {
        if self.active.is_some() || self.closed || self.restoring {
            return;
        }
        let Some(mut record) = self.queue.pop_front() else {
            return;
        };
        record.state = DeploymentState::InProgress;
        record.started_at = Some(store::now_secs());
        self.save(&record);
        tracing::info!(deployment = record.id, "deployment started");
        let planned = plan::plan(&self.context(), &self.current, &record.request);
        let policy = record.request.failure_handling_policy;
        self.active = Some(Active { record, started: Instant::now() });
        let plan = match planned {
            Ok(plan) => plan,
            Err(error) => {
                let outcome = Finished { plan: None, result: Err(error.to_string()), rollback: None };
                return self.finish(outcome, ctx);
            }
        };
        let (layout, peers) = (self.layout.clone(), self.peers.clone());
        let (previous, previous_code) = (self.current.clone(), self.code.clone());
        let progress = Progress::to(ctx.address().recipient());
        let work = async move {
            let keep_going = policy == FailurePolicy::DoNothing;
            let result = apply::apply(&plan, &layout, &peers, &progress, keep_going).await;
            let rollback = match &result {
                Err(failure) if policy == FailurePolicy::Rollback && !failure.untouched => {
                    Some(apply::rollback(&plan, failure, &previous, &previous_code, &peers, &progress).await)
                }
                _ => None,
            };
            Finished { plan: Some(plan), result: result.map_err(|f| f.error), rollback }
        };
        // Every line the deployment causes (components starting, configuration pushed) carries
        // its id.
        let span = self
            .active
            .as_ref()
            .map_or_else(tracing::Span::none, |a| tracing::info_span!("deployment", id = %a.record.id));
        let work = tracing::Instrument::instrument(work, span);
        ctx.spawn(work.into_actor(self).map(|finished, act, ctx| act.finish(finished, ctx)));
    }

    fn finish(&mut self, finished: Finished, ctx: &mut Context<Self>) {
        let Some(Active { mut record, started }) = self.active.take() else {
            return;
        };
        record.finished_at = Some(store::now_secs());
        record.took_ms = Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
        let Finished { plan, result, rollback } = finished;
        record.components = plan.as_ref().map(|p| p.outcomes.clone()).unwrap_or_default();
        match (result, plan) {
            (Ok(applied), Some(plan)) => {
                if applied.failed.is_empty() {
                    record.state = DeploymentState::Succeeded;
                    tracing::info!(deployment = record.id, "deployment succeeded");
                } else {
                    let errors: Vec<String> = applied.failed.iter().map(|(_, e)| e.clone()).collect();
                    record.state = DeploymentState::Failed;
                    record.detail = Some(FailureDetail::FailedRollbackNotRequested);
                    record.error = Some(errors.join("; "));
                    tracing::warn!(
                        deployment = record.id,
                        error = record.error,
                        "deployment failed; policy DO_NOTHING keeps it"
                    );
                }
                self.adopt(plan, applied.prepared);
            }
            (Err(error), plan) => {
                record.state = DeploymentState::Failed;
                let detail = match (&plan, rollback) {
                    (None, _) => FailureDetail::FailedNoStateChange,
                    (Some(_), None) if record.request.failure_handling_policy == FailurePolicy::Rollback => {
                        FailureDetail::FailedNoStateChange
                    }
                    (Some(_), None) => FailureDetail::FailedRollbackNotRequested,
                    (Some(_), Some(problems)) if problems.is_empty() => {
                        // Nothing the plan did stayed: say so per component.
                        for outcome in record.components.iter_mut().filter(|o| o.action != "unchanged") {
                            outcome.action = format!("{}, rolled back", outcome.action);
                        }
                        FailureDetail::FailedRollbackComplete
                    }
                    (Some(_), Some(problems)) => {
                        record.error = Some(format!("{error}; rolling back failed too: {}", problems.join("; ")));
                        FailureDetail::FailedUnableToRollback
                    }
                };
                record.error.get_or_insert(error);
                record.detail = Some(detail);
                tracing::warn!(deployment = record.id, error = record.error, %detail, "deployment failed");
            }
            (Ok(_), None) => record.state = DeploymentState::Failed,
        }
        self.save(&record);
        self.wake(&record);
        self.peers.trimmer.hint(crate::memory::Burst::OneOff);
        self.run_next(ctx);
    }

    /// Makes `plan`'s target the deployed set and saves it.
    fn adopt(&mut self, plan: Plan, prepared: Vec<Prepared>) {
        self.current = plan.target;
        for code in prepared {
            self.code.insert(code.name.clone(), code);
        }
        let current = &self.current;
        self.code.retain(|name, _| current.contains_key(name));
        let updates = std::mem::take(&mut self.updates_during_apply);
        for update in &updates {
            if let Some(deployed) = self.current.get_mut(&update.component) {
                config_update::merge_at(&mut deployed.config, &update.key_path, &update.value);
            }
        }
        // `apply` configured the runtime with the plan's target; an update that came in meanwhile
        // pushed the set as it was then, so the merged result goes out again.
        if !updates.is_empty() {
            self.push_configurations();
        }
        if let Err(error) = self.records.save_set(&self.current) {
            tracing::error!(%error, "deployment applied but not saved; it will not survive a restart");
        }
    }

    /// Answers the waiters that `record` satisfies.
    fn wake(&mut self, record: &DeploymentRecord) {
        let Some(waiters) = self.waiters.remove(&record.id) else {
            return;
        };
        let mut still = Vec::new();
        for waiter in waiters {
            if waiter.satisfied_by(record) {
                let _ = waiter.reply.send(record.clone());
            } else if !waiter.reply.is_closed() {
                still.push(waiter);
            }
        }
        if !still.is_empty() {
            self.waiters.insert(record.id.clone(), still);
        }
    }

    fn progress(&mut self, msg: DeploymentProgress) {
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let at_ms = u64::try_from(active.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        active.record.progress.push(ProgressEvent { at_ms, component: msg.component, what: msg.what });
        let record = active.record.clone();
        self.wake(&record);
    }

    /// Sends every running component the current configurations.
    fn push_configurations(&self) {
        self.peers
            .runtime
            .configure
            .do_send(Configure { configs: apply::snapshot_of(&self.current), access: apply::access_of(&self.current) });
    }

    fn update_configuration(&mut self, update: UpdateConfiguration) -> Result<(), ConfigUpdateError> {
        if self.active.is_some() {
            // A component starting in this deployment is not in `current` yet; the update is
            // applied to the deployment's result when it finishes.
            self.updates_during_apply.push(update.clone());
        }
        let Some(deployed) = self.current.get_mut(&update.component) else {
            return if self.active.is_some() { Ok(()) } else { Err(ConfigUpdateError::NotDeployed(update.component)) };
        };
        config_update::merge_at(&mut deployed.config, &update.key_path, &update.value);
        self.records
            .save_set(&self.current)
            .map_err(|e| ConfigUpdateError::Save { component: update.component.clone(), source: Box::new(e) })?;
        tracing::info!(component = update.component, key_path = ?update.key_path, "configuration updated by its component");
        self.push_configurations();
        Ok(())
    }

    fn save(&self, record: &DeploymentRecord) {
        if let Err(error) = self.records.update(record) {
            tracing::error!(deployment = record.id, %error, "cannot save deployment record");
        }
    }

    fn get(&self, id: &str) -> Result<Option<DeploymentRecord>, DeploymentError> {
        if let Some(active) = self.active.as_ref().filter(|a| a.record.id == id) {
            return Ok(Some(active.record.clone()));
        }
        if let Some(queued) = self.queue.iter().find(|q| q.id == id) {
            return Ok(Some(queued.clone()));
        }
        Ok(self.records.get(id)?)
    }

    fn wait(&mut self, msg: WaitDeployment) -> ResponseFuture<Option<DeploymentRecord>> {
        let (reply, answer) = oneshot::channel();
        let waiter = Waiter { after: msg.after, reply };
        match self.get(&msg.id).unwrap_or_else(|error| {
            tracing::error!(deployment = msg.id, %error, "cannot read the deployment to wait for");
            None
        }) {
            None => return Box::pin(async { None }),
            Some(record) if waiter.satisfied_by(&record) => {
                return Box::pin(async move { Some(record) });
            }
            Some(_) => self.waiters.entry(msg.id).or_default().push(waiter),
        }
        Box::pin(async move { answer.await.ok() })
    }
}
