//! What the component runtime answers when it refuses or fails a request, and what a
//! component's configuration update may be refused with.

use thiserror::Error;

/// A failure to prepare or launch a component.
#[derive(Debug, Clone, Error)]
pub enum RuntimeError {
    /// Compiling the artifact failed.
    #[error("{0}")]
    Compile(String),
    /// The component imports something this host does not provide, or exports the wrong world.
    #[error("component {name} {version} cannot be linked: {reason}")]
    Link {
        /// Component name.
        name: String,
        /// Component version.
        version: String,
        /// What wasmtime said.
        reason: String,
    },
    /// The component's log file could not be opened.
    #[error("cannot open the log of {name}: {reason}")]
    Log {
        /// Component name.
        name: String,
        /// The I/O error.
        reason: String,
    },
    /// Its first `init` failed.
    #[error("component {name} failed to start: {reason}")]
    Start {
        /// Component name.
        name: String,
        /// Why.
        reason: String,
    },
    /// An operator named a component that is not deployed as WebAssembly.
    #[error("{0} is not a deployed WebAssembly component")]
    NotDeployed(String),
    /// The host is stopping its components.
    #[error("component {0} cannot start: the host is shutting down")]
    ShuttingDown(String),
}

/// Why the keeper of configurations (the deployment service) refused a component's
/// configuration update.
#[derive(Debug, Error)]
pub enum ConfigUpdateError {
    /// The component is not (or no longer) deployed.
    #[error("component {0} is not deployed")]
    NotDeployed(String),
    /// The updated configuration could not be stored.
    #[error("the updated configuration of {component} cannot be saved: {source}")]
    Save {
        /// The component.
        component: String,
        /// What the store said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}
