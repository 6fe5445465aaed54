//! Admission of new connections per listener (Turf patch).
//!
//! rmqtt-net's `Builder` carries `max_connections`, `max_handshaking_limit` and
//! `handshake_timeout`, but rmqtt used the first two only to size its CONNECT-processing pool
//! (`executor.rs`: workers and queue, reached after TLS and the version probe), so accepted
//! sockets and TLS handshakes were not bounded, and the version probe after the TLS handshake
//! had no deadline at all: a socket that connects and stays silent held a file descriptor and
//! a task for ever. [`Admission::admit`] is called for
//! every accepted socket before anything is read from it; a socket over either limit is closed
//! at once and counted. The returned [`Admitted`] guard holds the connection's place until the
//! connection ends, and its handshake place until [`Admitted::established`].

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::types::{DashMap, ListenerId};

/// Counters of connections refused before their CONNECT was read.
#[derive(Debug, Default)]
pub struct AdmissionStats {
    /// Sockets closed because their listener had `max_connections` open connections.
    pub over_max_connections: AtomicU64,
    /// Sockets closed because their listener had `max_handshaking_limit` handshakes under way.
    pub over_max_handshakes: AtomicU64,
    /// Connections closed because TLS and the first MQTT packet took longer than
    /// `handshake_timeout`.
    pub handshake_timeouts: AtomicU64,
}

#[derive(Debug, Default)]
struct Places {
    open: AtomicUsize,
    handshaking: AtomicUsize,
}

/// Open connections and handshakes per listener, and refusal counters.
#[derive(Debug, Default)]
pub struct Admission {
    listeners: DashMap<ListenerId, Arc<Places>>,
    /// Refusal counters.
    pub stats: AdmissionStats,
}

/// Why a socket was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAdmitted {
    /// The listener has its maximum of open connections.
    Connections,
    /// The listener has its maximum of handshakes under way.
    Handshakes,
}

fn take(counter: &AtomicUsize, max: usize) -> bool {
    counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).is_ok()
}

impl Admission {
    /// Takes a connection place and a handshake place on listener `lid`, or counts the refusal.
    /// A limit of 0 means no limit.
    pub fn admit(
        &self,
        lid: ListenerId,
        max_connections: usize,
        max_handshakes: usize,
    ) -> Result<Admitted, NotAdmitted> {
        let places = Arc::clone(self.listeners.entry(lid).or_default().value());
        let unlimited = |max: usize| if max == 0 { usize::MAX } else { max };
        if !take(&places.open, unlimited(max_connections)) {
            self.stats.over_max_connections.fetch_add(1, Ordering::Relaxed);
            return Err(NotAdmitted::Connections);
        }
        if !take(&places.handshaking, unlimited(max_handshakes)) {
            places.open.fetch_sub(1, Ordering::AcqRel);
            self.stats.over_max_handshakes.fetch_add(1, Ordering::Relaxed);
            return Err(NotAdmitted::Handshakes);
        }
        Ok(Admitted { places, handshaking: true })
    }

    /// Counts a connection closed for taking longer than the handshake timeout.
    pub fn count_handshake_timeout(&self) {
        self.stats.handshake_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// Open connections (handshaking or not) on listener `lid`.
    pub fn open(&self, lid: ListenerId) -> usize {
        self.listeners.get(&lid).map_or(0, |p| p.open.load(Ordering::Acquire))
    }
}

/// One admitted connection's places; released when dropped.
#[derive(Debug)]
pub struct Admitted {
    places: Arc<Places>,
    handshaking: bool,
}

impl Admitted {
    /// The handshake is over (succeeded or not): its handshake place is free for another.
    pub fn established(&mut self) {
        if std::mem::take(&mut self.handshaking) {
            self.places.handshaking.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.established();
        self.places.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_and_handshakes_are_bounded_per_listener() {
        let admission = Admission::default();
        let mut a = admission.admit(1, 3, 2).unwrap();
        let _b = admission.admit(1, 3, 2).unwrap();
        assert_eq!(admission.admit(1, 3, 2).unwrap_err(), NotAdmitted::Handshakes);
        assert_eq!(admission.open(1), 2, "a refused handshake gives its connection place back");
        a.established();
        let _c = admission.admit(1, 3, 2).unwrap();
        assert_eq!(admission.admit(1, 3, 2).unwrap_err(), NotAdmitted::Connections);
        let _other = admission.admit(2, 3, 2).expect("listeners are counted apart");
        drop(a);
        assert_eq!(admission.open(1), 2);
        let _d = admission.admit(1, 3, 2).unwrap_err();
        assert_eq!(admission.stats.over_max_connections.load(Ordering::Relaxed), 1);
        assert_eq!(admission.stats.over_max_handshakes.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn zero_means_no_limit() {
        let admission = Admission::default();
        let held: Vec<_> = (0..100).map(|_| admission.admit(1, 0, 0).unwrap()).collect();
        assert_eq!(admission.open(1), 100);
        drop(held);
        assert_eq!(admission.open(1), 0);
    }
}
