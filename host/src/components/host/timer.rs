//! `turf:host/timer`: intervals driven by the component's actor, never by a sleeping guest.

use std::time::Duration;

use crate::components::bindings::turf::host::timer;
use crate::components::bindings::turf::host::types::Error;
use crate::components::instance::{HostState, TimerControl};

/// Shortest period a timer may have.
const MIN_PERIOD: Duration = Duration::from_millis(10);
/// Most timers one component may have running.
const MAX_TIMERS: usize = 64;

impl timer::Host for HostState {
    async fn set_interval(&mut self, period_ms: u64) -> Result<u32, Error> {
        let period = Duration::from_millis(period_ms);
        if period < MIN_PERIOD {
            return Err(Error::InvalidArguments(format!(
                "timer period {period_ms} ms is shorter than the minimum of {} ms",
                MIN_PERIOD.as_millis()
            )));
        }
        if self.active_timers.len() >= MAX_TIMERS {
            return Err(Error::InvalidArguments(format!("a component may run at most {MAX_TIMERS} timers")));
        }
        let id = self.next_timer;
        self.next_timer = self.next_timer.wrapping_add(1).max(1);
        self.active_timers.insert(id);
        self.timers.do_send(TimerControl::Start { id, period, generation: self.generation });
        Ok(id)
    }

    async fn cancel(&mut self, id: u32) -> Result<(), Error> {
        if !self.active_timers.remove(&id) {
            return Err(Error::ResourceNotFound(format!("no timer with id {id}")));
        }
        self.timers.do_send(TimerControl::Cancel { id, generation: self.generation });
        Ok(())
    }
}
