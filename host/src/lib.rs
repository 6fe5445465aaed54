//! Turf: a Linux box as an IoT core device for local client devices, compatible with the AWS IoT
//! Greengrass client-device tutorial, in one process.
//!
//! # Layout
//! - [`supervisor`]: starts and wires every service (the only module that knows their types).
//! - [`broker`]: the device MQTT broker (rmqtt embedded): mutual TLS, identity, taps.
//! - [`devices`]: client device auth: core CA, device registry, device groups and policies.
//! - [`discovery`]: the Greengrass discovery endpoint (HTTPS, mutual TLS).
//! - [`connectivity`]: the IP detector and manual endpoints discovery reports.
//! - [`pubsub`]: the local publish/subscribe bus (Greengrass IPC pub/sub).
//! - [`shadow`]: the shadow manager: local device shadows in SQLite.
//! - [`bridge`]: `mqttTopicMapping` routes between LocalMqtt, Pubsub and IotCore.
//! - [`upstream`]: the IotCore connection to an upstream broker, with its disk spool.
//! - [`components`]: WebAssembly components: engine, one actor per component, WIT host side.
//! - [`deploy`]: recipes, configuration merges, deployments and their history.
//! - [`watch`]: hot reload of watched recipes and artifacts, and the drop-in folder.
//! - [`mgmt`]: the management API on `DIR/turf.sock` and its client.
//! - [`cli`]: the `turf` command line, one file per command.
//! - [`logging`]: the host log (`logs/turf.log` and stderr). [`rotate`]: size-rotated log files.
//! - [`config`]: host configuration and the root-directory layout.
//! - [`store`]: the SQLite database and its schema.
//! - [`topic`], [`glob`]: MQTT topic matching and Greengrass resource globs (pure).
//! - [`flow`]: flow credit that bounds device messages inside the host (pure).
//! - [`memory`]: giving freed heap and once-run code back to the kernel after a burst.
//! - [`fsutil`]: atomic and private file writes.
//! - [`properties`]: the MQTT 5 properties a message carries through the host (pure).
//! - [`fuzz`]: entry points of the fuzz targets and of the corpus replay test (pure).

pub mod bridge;
pub mod broker;
pub mod cli;
pub mod components;
pub mod config;
pub mod connectivity;
pub mod deploy;
pub mod devices;
pub mod discovery;
pub mod endpoint;
#[cfg(test)]
mod fakes;
pub mod flow;
pub mod fsutil;
pub mod fuzz;
pub mod glob;
pub mod json_merge;
pub mod layout;
pub mod logging;
pub mod memory;
pub mod mgmt;
pub mod pem;
pub mod procstat;
pub mod properties;
pub mod pubsub;
pub mod rotate;
pub mod shadow;
pub mod store;
pub mod supervisor;
pub mod topic;
pub mod upstream;
pub mod watch;

use std::future::Future;

pub use config::HostConfig;
pub use supervisor::{Endpoints, StartError};

/// Runs a host until `shutdown` completes, then stops it cleanly. `ready` is called once every
/// service is up, with the addresses actually bound. Must be called inside an actix system.
pub async fn run(
    config: HostConfig,
    ready: impl FnOnce(&Endpoints),
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let host = supervisor::start(config).await?;
    ready(host.endpoints());
    shutdown.await;
    host.shutdown().await;
    Ok(())
}
