//! Local deployments: recipes, configuration merges, and which components run.
//!
//! The `Deployments` actor owns the deployed set and the deployment history. Messages in:
//! [`CreateDeployment`], [`GetDeployment`], [`WaitDeployment`], [`ListDeployments`],
//! [`ListComponents`], [`Restore`], and [`ComponentStatus`] from the component runtime. Messages
//! out (through [`DeploymentPeers`]): compile/launch/configure/stop to the runtime, routes to the
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
pub mod model;
pub mod plan;
pub mod recipe;
pub mod records;
pub mod semver_range;
pub mod variables;

use std::collections::{BTreeMap, HashMap, VecDeque};

use actix::prelude::*;
use tokio::sync::oneshot;

pub use self::apply::DeploymentPeers;
use self::config_update::ConfigUpdate;
use self::model::{ComponentInfo, DeploymentRecord, DeploymentRequest, DeploymentState};
use self::plan::{DeployedSet, Plan, PlanContext};
use self::recipe::Platform;
use self::records::{Records, RecordsError};
use crate::components::lifecycle::State;
use crate::components::{ComponentStatus, Configure};
use crate::config::RootLayout;
use crate::store;

/// How many deployments `turf deployment list` shows.
const HISTORY: usize = 50;

/// Submit a deployment; replies with its queued record.
#[derive(Message)]
#[rtype(result = "Result<DeploymentRecord, String>")]
pub struct CreateDeployment(pub DeploymentRequest);

/// Look up a deployment.
#[derive(Message)]
#[rtype(result = "Option<DeploymentRecord>")]
pub struct GetDeployment {
    /// Deployment id.
    pub id: String,
}

/// Wait until a deployment finished; replies with its final record (`None`: unknown id).
#[derive(Message)]
#[rtype(result = "Option<DeploymentRecord>")]
pub struct WaitDeployment {
    /// Deployment id.
    pub id: String,
}

/// The newest deployments, newest first.
#[derive(Message)]
#[rtype(result = "Vec<DeploymentRecord>")]
pub struct ListDeployments;

/// Every component with its state.
#[derive(Message)]
#[rtype(result = "Vec<ComponentInfo>")]
pub struct ListComponents;

/// A component merges `value` into its own configuration at `key_path` (IPC UpdateConfiguration).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), String>")]
pub struct UpdateConfiguration {
    /// The component.
    pub component: String,
    /// Where to merge.
    pub key_path: Vec<String>,
    /// A JSON object to deep-merge.
    pub value: serde_json::Value,
}

/// Bring back the last successful deployment (sent once at start); replies when done.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Restore;

/// The deployment service.
pub struct Deployments {
    layout: RootLayout,
    platform: Platform,
    thing_name: String,
    records: Records,
    current: DeployedSet,
    queue: VecDeque<DeploymentRecord>,
    active: Option<DeploymentRecord>,
    waiters: HashMap<String, Vec<oneshot::Sender<DeploymentRecord>>>,
    statuses: BTreeMap<String, ComponentStatus>,
    /// Configuration updates made by components while a deployment was being applied; they are
    /// re-applied to its result.
    updates_during_apply: Vec<UpdateConfiguration>,
    peers: DeploymentPeers,
}

impl Deployments {
    /// Opens the deployment records under `layout`.
    pub fn new(layout: RootLayout, thing_name: String, peers: DeploymentPeers) -> Result<Self, RecordsError> {
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
            queue: VecDeque::new(),
            active: None,
            waiters: HashMap::new(),
            statuses: BTreeMap::new(),
            updates_during_apply: Vec::new(),
            peers,
        })
    }

    fn context(&self) -> PlanContext<'_> {
        PlanContext { layout: &self.layout, platform: &self.platform, thing_name: &self.thing_name }
    }

    fn submit(&mut self, request: DeploymentRequest, ctx: &mut Context<Self>) -> Result<DeploymentRecord, String> {
        let record = DeploymentRecord {
            id: uuid::Uuid::new_v4().to_string(),
            state: DeploymentState::Queued,
            created_at: store::now_secs(),
            finished_at: None,
            request,
            error: None,
            components: Vec::new(),
        };
        self.records.insert(&record).map_err(|e| e.to_string())?;
        tracing::info!(deployment = record.id, "deployment queued");
        self.queue.push_back(record.clone());
        self.run_next(ctx);
        Ok(record)
    }

    fn run_next(&mut self, ctx: &mut Context<Self>) {
        if self.active.is_some() {
            return;
        }
        let Some(mut record) = self.queue.pop_front() else {
            return;
        };
        record.state = DeploymentState::InProgress;
        self.save(&record);
        tracing::info!(deployment = record.id, "deployment started");
        let planned = plan::plan(&self.context(), &self.current, &record.request);
        self.active = Some(record);
        match planned {
            Err(error) => self.finish(Err(error.to_string()), None, ctx),
            Ok(plan) => {
                let (layout, peers) = (self.layout.clone(), self.peers.clone());
                let work = async move {
                    let result = apply::apply(&plan, &layout, &peers).await;
                    (result, plan)
                };
                ctx.spawn(work.into_actor(self).map(|(result, plan), act, ctx| act.finish(result, Some(plan), ctx)));
            }
        }
    }

    fn finish(&mut self, result: Result<(), String>, plan: Option<Plan>, ctx: &mut Context<Self>) {
        let Some(mut record) = self.active.take() else {
            return;
        };
        record.finished_at = Some(store::now_secs());
        match (result, plan) {
            (Ok(()), Some(plan)) => {
                record.state = DeploymentState::Succeeded;
                record.components = plan.outcomes;
                self.current = plan.target;
                for update in std::mem::take(&mut self.updates_during_apply) {
                    if let Some(deployed) = self.current.get_mut(&update.component) {
                        config_update::merge_at(&mut deployed.config, &update.key_path, &update.value);
                    }
                }
                if !self.current.is_empty() {
                    self.push_configurations();
                }
                if let Err(error) = self.records.save_set(&self.current) {
                    tracing::error!(%error, "deployment applied but not saved; it will not survive a restart");
                }
                tracing::info!(deployment = record.id, "deployment succeeded");
            }
            (Err(error), plan) => {
                record.state = DeploymentState::Failed;
                record.components = plan.map(|p| p.outcomes).unwrap_or_default();
                tracing::warn!(deployment = record.id, error, "deployment failed");
                record.error = Some(error);
            }
            (Ok(()), None) => record.state = DeploymentState::Failed,
        }
        self.save(&record);
        for waiter in self.waiters.remove(&record.id).unwrap_or_default() {
            let _ = waiter.send(record.clone());
        }
        self.run_next(ctx);
    }

    /// Sends every running component the current configurations.
    fn push_configurations(&self) {
        self.peers
            .configure
            .do_send(Configure { configs: apply::snapshot_of(&self.current), access: apply::access_of(&self.current) });
    }

    fn update_configuration(&mut self, update: UpdateConfiguration) -> Result<(), String> {
        if self.active.is_some() {
            // A component starting in this deployment is not in `current` yet; the update is
            // applied to the deployment's result when it finishes.
            self.updates_during_apply.push(update.clone());
        }
        let Some(deployed) = self.current.get_mut(&update.component) else {
            return if self.active.is_some() {
                Ok(())
            } else {
                Err(format!("component {} is not deployed", update.component))
            };
        };
        config_update::merge_at(&mut deployed.config, &update.key_path, &update.value);
        self.records.save_set(&self.current).map_err(|e| e.to_string())?;
        tracing::info!(component = update.component, key_path = ?update.key_path, "configuration updated by its component");
        self.push_configurations();
        Ok(())
    }

    fn save(&self, record: &DeploymentRecord) {
        if let Err(error) = self.records.update(record) {
            tracing::error!(deployment = record.id, %error, "cannot save deployment record");
        }
    }

    fn get(&self, id: &str) -> Option<DeploymentRecord> {
        if let Some(active) = self.active.as_ref().filter(|a| a.id == id) {
            return Some(active.clone());
        }
        if let Some(queued) = self.queue.iter().find(|q| q.id == id) {
            return Some(queued.clone());
        }
        self.records.get(id).ok().flatten()
    }

    fn wait(&mut self, id: String) -> ResponseFuture<Option<DeploymentRecord>> {
        match self.get(&id) {
            None => Box::pin(async { None }),
            Some(record) if record.state.is_final() => Box::pin(async move { Some(record) }),
            Some(_) => {
                let (tx, rx) = oneshot::channel();
                self.waiters.entry(id).or_default().push(tx);
                Box::pin(async move { rx.await.ok() })
            }
        }
    }

    fn components(&self) -> Vec<ComponentInfo> {
        let mut out: Vec<ComponentInfo> = builtin::BUILTINS
            .iter()
            .map(|b| ComponentInfo {
                name: b.name.to_owned(),
                version: b.version.to_owned(),
                state: State::Running,
                builtin: true,
                root: self.current.get(b.name).is_some_and(|d| d.root),
                restarts: 0,
                error: None,
            })
            .collect();
        for (name, deployed) in self.current.iter().filter(|(_, d)| d.recipe.is_some()) {
            let status = self.statuses.get(name).filter(|s| s.version == deployed.version.to_string());
            out.push(ComponentInfo {
                name: name.clone(),
                version: deployed.version.to_string(),
                state: status.map(|s| s.state).unwrap_or(State::Installed),
                builtin: false,
                root: deployed.root,
                restarts: status.map(|s| s.restarts).unwrap_or(0),
                error: status.and_then(|s| s.error.clone()),
            });
        }
        out
    }

    /// The request that rebuilds the stored set: its roots, with the stored configuration merged.
    fn restore_request(stored: &DeployedSet) -> DeploymentRequest {
        DeploymentRequest {
            merge: stored.iter().filter(|(_, d)| d.root).map(|(n, d)| (n.clone(), d.version.to_string())).collect(),
            update_config: stored
                .iter()
                .map(|(n, d)| (n.clone(), ConfigUpdate { merge: Some(d.config.clone()), reset: vec![String::new()] }))
                .collect(),
            ..DeploymentRequest::default()
        }
    }

    fn restore(&mut self) -> ResponseActFuture<Self, ()> {
        let nothing = || -> ResponseActFuture<Self, ()> { Box::pin(fut::ready(())) };
        let stored = match self.records.load_set(&self.layout, &self.platform) {
            Ok(stored) if !stored.is_empty() => stored,
            Ok(_) => return nothing(),
            Err(error) => {
                tracing::error!(%error, "cannot read the last deployment; starting with no components");
                return nothing();
            }
        };
        let request = Self::restore_request(&stored);
        let plan = match plan::plan(&self.context(), &DeployedSet::new(), &request) {
            Ok(plan) => plan,
            Err(error) => {
                tracing::error!(%error, "cannot restore the last deployment; starting with no components");
                return nothing();
            }
        };
        let (layout, peers) = (self.layout.clone(), self.peers.clone());
        let work = async move {
            let result = apply::apply(&plan, &layout, &peers).await;
            (result, plan)
        };
        Box::pin(work.into_actor(self).map(|(result, plan), act, _| {
            match result {
                Ok(()) => {
                    tracing::info!(components = plan.target.len(), "last deployment restored")
                }
                Err(error) => tracing::error!(error, "restoring the last deployment failed"),
            }
            act.current = plan.target;
        }))
    }
}

impl Actor for Deployments {
    type Context = Context<Self>;
}

impl Handler<CreateDeployment> for Deployments {
    type Result = Result<DeploymentRecord, String>;

    fn handle(&mut self, msg: CreateDeployment, ctx: &mut Self::Context) -> Self::Result {
        self.submit(msg.0, ctx)
    }
}

impl Handler<GetDeployment> for Deployments {
    type Result = Option<DeploymentRecord>;

    fn handle(&mut self, msg: GetDeployment, _ctx: &mut Self::Context) -> Self::Result {
        self.get(&msg.id)
    }
}

impl Handler<WaitDeployment> for Deployments {
    type Result = ResponseFuture<Option<DeploymentRecord>>;

    fn handle(&mut self, msg: WaitDeployment, _ctx: &mut Self::Context) -> Self::Result {
        self.wait(msg.id)
    }
}

impl Handler<ListDeployments> for Deployments {
    type Result = Vec<DeploymentRecord>;

    fn handle(&mut self, _msg: ListDeployments, _ctx: &mut Self::Context) -> Self::Result {
        self.records.list(HISTORY).unwrap_or_default()
    }
}

impl Handler<ListComponents> for Deployments {
    type Result = Vec<ComponentInfo>;

    fn handle(&mut self, _msg: ListComponents, _ctx: &mut Self::Context) -> Self::Result {
        self.components()
    }
}

impl Handler<ComponentStatus> for Deployments {
    type Result = ();

    fn handle(&mut self, msg: ComponentStatus, _ctx: &mut Self::Context) {
        self.statuses.insert(msg.name.clone(), msg);
    }
}

impl Handler<UpdateConfiguration> for Deployments {
    type Result = Result<(), String>;

    fn handle(&mut self, msg: UpdateConfiguration, _ctx: &mut Self::Context) -> Self::Result {
        self.update_configuration(msg)
    }
}

impl Handler<Restore> for Deployments {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _msg: Restore, _ctx: &mut Self::Context) -> Self::Result {
        self.restore()
    }
}
