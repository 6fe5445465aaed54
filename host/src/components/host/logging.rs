//! `turf:host/logging`: timestamped lines in the component's log file.

use crate::components::bindings::turf::host::logging::{self, Level};
use crate::components::instance::HostState;
use crate::components::log::Level as LogLevel;

impl logging::Host for HostState {
    async fn log(&mut self, level: Level, message: String) {
        let level = match level {
            Level::Trace => LogLevel::Trace,
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        self.log.guest_line(level, "log", &message);
    }
}
