//! What the deployment service offers: the messages it takes and its handle.

use actix::prelude::*;

use super::model::{ComponentDetails, ComponentInfo, DeploymentRecord, DeploymentRequest};
use super::{DeploymentError, Deployments};

/// Submit a deployment; replies with its queued record.
#[derive(Message)]
#[rtype(result = "Result<DeploymentRecord, DeploymentError>")]
pub struct CreateDeployment(pub DeploymentRequest);

/// Look up a deployment (`Ok(None)`: no such id; `Err`: its record cannot be read).
#[derive(Message)]
#[rtype(result = "Result<Option<DeploymentRecord>, DeploymentError>")]
pub struct GetDeployment {
    /// Deployment id.
    pub id: String,
}

/// Wait until a deployment finished, or (with `after`) until it has more than `after` progress
/// events; replies with its record (`None`: unknown id).
#[derive(Message)]
#[rtype(result = "Option<DeploymentRecord>")]
pub struct WaitDeployment {
    /// Deployment id.
    pub id: String,
    /// Progress events the caller has already seen.
    pub after: Option<usize>,
}

/// The newest deployments, newest first (or why they cannot be read).
#[derive(Message)]
#[rtype(result = "Result<Vec<DeploymentRecord>, DeploymentError>")]
pub struct ListDeployments;

/// Every component with its state.
#[derive(Message)]
#[rtype(result = "Vec<ComponentInfo>")]
pub struct ListComponents;

/// Everything about one component (`None`: no such component).
#[derive(Message)]
#[rtype(result = "Option<ComponentDetails>")]
pub struct GetComponent {
    /// Component name.
    pub name: String,
}

/// Bring back the last successful deployment (sent once at start); replies when done.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Restore;

/// Accept no more deployments (shutdown); replies with the one in progress, if any, which is
/// abandoned where it stands (the runtime refuses its launches once components are stopped, and
/// the next start marks it FAILED).
#[derive(Message)]
#[rtype(result = "Option<String>")]
pub struct CloseDeployments;

/// How many deployments are in each state, over the whole history.
#[derive(Message)]
#[rtype(result = "Result<std::collections::BTreeMap<String, u64>, DeploymentError>")]
pub struct CountDeployments;

/// What the deployment service offers, built once by the supervisor.
#[derive(Clone)]
pub struct DeploymentsHandle {
    /// Submit a deployment.
    pub create: Recipient<CreateDeployment>,
    /// Look one up.
    pub get: Recipient<GetDeployment>,
    /// Wait for one to finish or move on.
    pub wait: Recipient<WaitDeployment>,
    /// The history.
    pub list: Recipient<ListDeployments>,
    /// The history's totals by state.
    pub counts: Recipient<CountDeployments>,
    /// Every component with its state.
    pub components: Recipient<ListComponents>,
    /// One component.
    pub component: Recipient<GetComponent>,
    /// Bring back the last deployment (start).
    pub restore: Recipient<Restore>,
    /// Take no more (shutdown).
    pub close: Recipient<CloseDeployments>,
}

impl DeploymentsHandle {
    /// The handle of the deployment service at `addr`.
    pub fn of(addr: &Addr<Deployments>) -> Self {
        Self {
            create: addr.clone().recipient(),
            get: addr.clone().recipient(),
            wait: addr.clone().recipient(),
            list: addr.clone().recipient(),
            counts: addr.clone().recipient(),
            components: addr.clone().recipient(),
            component: addr.clone().recipient(),
            restore: addr.clone().recipient(),
            close: addr.clone().recipient(),
        }
    }
}
