//! Bringing back the last successful deployment when the host starts.

use actix::prelude::*;

use super::Deployments;
use super::apply::{self, Progress};
use super::config_update::ConfigUpdate;
use super::model::DeploymentRequest;
use super::plan::{self, DeployedSet};

impl Deployments {
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

    /// Brings back the last successful deployment at start (components that fail to start are
    /// logged and left to their restart policy).
    pub(super) fn restore(&mut self) -> ResponseActFuture<Self, ()> {
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
        // Listed (INSTALLED, then STARTING…) while they come back; deployments submitted
        // meanwhile wait in the queue until the restore is over.
        self.current = plan.target.clone();
        self.restoring = true;
        let work = async move {
            let result = apply::apply(&plan, &layout, &peers, &Progress::quiet(), true).await;
            (result, plan)
        };
        Box::pin(work.into_actor(self).map(|(result, plan), act, ctx| {
            match result {
                Ok(applied) => {
                    for (name, error) in &applied.failed {
                        tracing::error!(component = name, error, "component of the last deployment failed to start");
                    }
                    tracing::info!(components = plan.target.len(), "last deployment restored");
                    act.code = applied.prepared.into_iter().map(|p| (p.name.clone(), p)).collect();
                }
                Err(failure) => tracing::error!(error = failure.error, "restoring the last deployment failed"),
            }
            act.current = plan.target;
            act.restoring = false;
            act.run_next(ctx);
        }))
    }
}
