//! The deployment actor's message handlers: each hands its message to the actor's own method.

use actix::prelude::*;

use super::*;

impl Actor for Deployments {
    type Context = Context<Self>;
}

impl Handler<CreateDeployment> for Deployments {
    type Result = Result<DeploymentRecord, DeploymentError>;

    fn handle(&mut self, msg: CreateDeployment, ctx: &mut Self::Context) -> Self::Result {
        self.submit(msg.0, ctx)
    }
}

impl Handler<GetDeployment> for Deployments {
    type Result = Result<Option<DeploymentRecord>, DeploymentError>;

    fn handle(&mut self, msg: GetDeployment, _ctx: &mut Self::Context) -> Self::Result {
        self.get(&msg.id)
    }
}

impl Handler<WaitDeployment> for Deployments {
    type Result = ResponseFuture<Option<DeploymentRecord>>;

    fn handle(&mut self, msg: WaitDeployment, _ctx: &mut Self::Context) -> Self::Result {
        self.wait(msg)
    }
}

impl Handler<ListDeployments> for Deployments {
    type Result = Result<Vec<DeploymentRecord>, DeploymentError>;

    /// A failed read is an error the operator sees, not an empty history.
    fn handle(&mut self, _msg: ListDeployments, _ctx: &mut Self::Context) -> Self::Result {
        Ok(self.records.list(HISTORY)?)
    }
}

impl Handler<CountDeployments> for Deployments {
    type Result = Result<std::collections::BTreeMap<String, u64>, DeploymentError>;

    fn handle(&mut self, _msg: CountDeployments, _ctx: &mut Self::Context) -> Self::Result {
        Ok(self.records.count_by_state()?)
    }
}

impl Handler<ListComponents> for Deployments {
    type Result = Vec<ComponentInfo>;

    fn handle(&mut self, _msg: ListComponents, _ctx: &mut Self::Context) -> Self::Result {
        self.components()
    }
}

impl Handler<DeploymentProgress> for Deployments {
    type Result = ();

    fn handle(&mut self, msg: DeploymentProgress, _ctx: &mut Self::Context) {
        self.progress(msg);
    }
}

impl Handler<ComponentStatus> for Deployments {
    type Result = ();

    fn handle(&mut self, msg: ComponentStatus, _ctx: &mut Self::Context) {
        self.statuses.insert(msg.name.clone(), msg);
    }
}

impl Handler<GetComponent> for Deployments {
    type Result = Option<ComponentDetails>;

    fn handle(&mut self, msg: GetComponent, _ctx: &mut Self::Context) -> Self::Result {
        self.details(&msg.name)
    }
}

impl Handler<UpdateConfiguration> for Deployments {
    type Result = Result<(), ConfigUpdateError>;

    fn handle(&mut self, msg: UpdateConfiguration, _ctx: &mut Self::Context) -> Self::Result {
        self.update_configuration(msg)
    }
}

impl Handler<CloseDeployments> for Deployments {
    type Result = Option<String>;

    fn handle(&mut self, _msg: CloseDeployments, _ctx: &mut Self::Context) -> Self::Result {
        self.closed = true;
        self.active.as_ref().map(|a| a.record.id.clone())
    }
}

impl Handler<Restore> for Deployments {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _msg: Restore, _ctx: &mut Self::Context) -> Self::Result {
        self.restore()
    }
}
