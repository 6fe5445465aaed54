//! Host side of the WIT interfaces, one file per interface. Each import checks the component's
//! `accessControl` before it has any effect; guest-visible failures are WIT `error` values.

mod config;
mod logging;
mod pubsub;
mod shadow;
#[cfg(test)]
mod tests;
mod timer;

pub(crate) use self::config::changed_subscriptions;
use super::bindings::turf::host::types;
use super::bindings::turf::host::types::Error;
use super::instance::HostState;
use super::log::Level;

impl types::Host for HostState {}

impl HostState {
    /// Checks `operation` of IPC `service` on `resource` against the component's `accessControl`;
    /// a denial is written to the component's log and the host log, and returned.
    pub(super) fn authorize(&self, service: &str, operation: &str, resource: &str) -> Result<(), Error> {
        self.access.check(&self.name, service, operation, resource).map_err(|denied| {
            self.log.line(Level::Warn, "access", &denied.to_string());
            tracing::warn!(component = self.name, service, operation, resource, "request denied by accessControl");
            Error::Unauthorized(denied.to_string())
        })
    }
}
