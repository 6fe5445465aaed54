//! Host side of the WIT interfaces, one file per interface. Each import checks the component's
//! `accessControl` before it has any effect; guest-visible failures are WIT `error` values.

mod config;
mod logging;
mod pubsub;
mod timer;

use super::bindings::turf::host::types;

impl types::Host for super::instance::HostState {}
