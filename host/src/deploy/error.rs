//! What the deployment service answers when it refuses or fails a request.

use thiserror::Error;

use super::records::RecordsError;

/// Why the deployment service refused or failed a request.
#[derive(Debug, Error)]
pub enum DeploymentError {
    /// The host is stopping and takes no more deployments.
    #[error("the host is shutting down; deployments are not accepted")]
    ShuttingDown,
    /// The deployment history could not be read or written.
    #[error(transparent)]
    Records(#[from] RecordsError),
}
