//! Component lifecycle states and the restart policy, as in Greengrass.
//!
//! States are Greengrass's (NEW … BROKEN). A component that errors (its `init` fails, or any
//! call traps or runs over its budget) is restarted after a growing delay; the third error
//! within an hour makes it BROKEN, and it stays stopped until a deployment replaces it.
//! Pure logic: no actors, no clocks of its own (callers pass `now`).

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Errors within this window count towards BROKEN (Greengrass `errorResetTime`).
pub const ERROR_WINDOW: Duration = Duration::from_secs(3600);
/// Errors within [`ERROR_WINDOW`] that make a component BROKEN.
pub const ERRORS_TO_BROKEN: usize = 3;
/// Delay before the first restart; doubles for each further error in the window.
pub const FIRST_RESTART_DELAY: Duration = Duration::from_millis(250);

/// Lifecycle state of a component (Greengrass names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    /// Known, not yet installed.
    New,
    /// Artifacts in place, compiled.
    Installed,
    /// Being instantiated; `init` is running.
    Starting,
    /// `init` succeeded; receiving messages and timers.
    Running,
    /// Being stopped.
    Stopping,
    /// Stopped on request.
    Finished,
    /// Failed; a restart is scheduled.
    Errored,
    /// Failed too often; stays stopped until redeployed.
    Broken,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            State::New => "NEW",
            State::Installed => "INSTALLED",
            State::Starting => "STARTING",
            State::Running => "RUNNING",
            State::Stopping => "STOPPING",
            State::Finished => "FINISHED",
            State::Errored => "ERRORED",
            State::Broken => "BROKEN",
        };
        f.write_str(text)
    }
}

/// What to do after an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterError {
    /// Restart after this delay.
    Restart(Duration),
    /// Give up: the component is BROKEN.
    Broken,
}

/// Recent errors of one component.
#[derive(Debug, Clone, Default)]
pub struct ErrorHistory {
    errors: VecDeque<Instant>,
}

impl ErrorHistory {
    /// Records an error at `now` and decides what happens next.
    pub fn record(&mut self, now: Instant) -> AfterError {
        while self.errors.front().is_some_and(|t| now.duration_since(*t) >= ERROR_WINDOW) {
            self.errors.pop_front();
        }
        self.errors.push_back(now);
        let count = self.errors.len();
        if count >= ERRORS_TO_BROKEN {
            AfterError::Broken
        } else {
            AfterError::Restart(FIRST_RESTART_DELAY * 2u32.pow(u32::try_from(count - 1).unwrap_or(0)))
        }
    }

    /// Errors currently counted.
    pub fn count(&self) -> usize {
        self.errors.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn third_error_within_an_hour_breaks_the_component() {
        let mut h = ErrorHistory::default();
        let t0 = Instant::now();
        assert_eq!(h.record(t0), AfterError::Restart(FIRST_RESTART_DELAY));
        assert_eq!(h.record(t0 + Duration::from_secs(1)), AfterError::Restart(FIRST_RESTART_DELAY * 2));
        assert_eq!(h.record(t0 + Duration::from_secs(2)), AfterError::Broken);
    }

    #[test]
    fn errors_older_than_an_hour_are_forgotten() {
        let mut h = ErrorHistory::default();
        let t0 = Instant::now();
        h.record(t0);
        h.record(t0 + Duration::from_secs(10));
        let later = t0 + ERROR_WINDOW + Duration::from_secs(11);
        assert_eq!(h.record(later), AfterError::Restart(FIRST_RESTART_DELAY));
        assert_eq!(h.count(), 1);
    }

    #[test]
    fn states_print_with_greengrass_names() {
        assert_eq!(State::Broken.to_string(), "BROKEN");
        assert_eq!(serde_json::to_string(&State::Running).unwrap(), "\"RUNNING\"");
    }
}
