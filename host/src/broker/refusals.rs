//! How often a refusal is logged: once per client and kind per [`LOG_EVERY`], with a count.
//!
//! A device that retries a forbidden publish in a loop must not turn the log into its echo
//! (nor make the broker's threads write a line per packet). The first refusal of a kind
//! (connect, TLS, publish, subscribe) for a client is logged at once; the next ones within
//! [`LOG_EVERY`] are only counted, and the next line that is written says how many were not.
//! The table is bounded: past [`MAX_CLIENTS`] entries, stale ones are pruned, and if it is
//! still full new clients' refusals are counted in one shared entry. Pure logic: the caller
//! passes the time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use super::stats::LOG_EVERY;

/// Entries kept before stale ones are pruned.
pub const MAX_CLIENTS: usize = 4096;

/// Client name of the shared entry used when the table is full.
const OVERFLOW: &str = "(many clients)";

#[derive(Debug, Clone, Copy)]
struct Entry {
    logged_at: Instant,
    suppressed: u64,
}

/// Which refusals to log.
#[derive(Debug, Default)]
pub struct RefusalLog {
    /// By kind, then client: a refusal already in the table is found without allocating.
    entries: Mutex<HashMap<&'static str, HashMap<String, Entry>>>,
}

impl RefusalLog {
    /// Whether to log a refusal of `kind` for `client` now: `Some(n)` with the number of its
    /// refusals not logged since the last line, `None` to count it silently.
    pub fn admit(&self, client: &str, kind: &'static str, now: Instant) -> Option<u64> {
        let Ok(mut entries) = self.entries.lock() else { return Some(0) };
        let mut client = client;
        let known = entries.get(kind).is_some_and(|clients| clients.contains_key(client));
        if !known && entries.values().map(HashMap::len).sum::<usize>() >= MAX_CLIENTS {
            for clients in entries.values_mut() {
                clients.retain(|_, e| now.saturating_duration_since(e.logged_at) < LOG_EVERY);
            }
            if entries.values().map(HashMap::len).sum::<usize>() >= MAX_CLIENTS {
                client = OVERFLOW;
            }
        }
        let clients = entries.entry(kind).or_default();
        match clients.get_mut(client) {
            Some(entry) if now.saturating_duration_since(entry.logged_at) < LOG_EVERY => {
                entry.suppressed += 1;
                None
            }
            Some(entry) => {
                let suppressed = std::mem::take(&mut entry.suppressed);
                entry.logged_at = now;
                Some(suppressed)
            }
            None => {
                clients.insert(client.to_owned(), Entry { logged_at: now, suppressed: 0 });
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_refusal_loop_is_logged_once_per_interval_with_its_count() {
        let log = RefusalLog::default();
        let start = Instant::now();
        assert_eq!(log.admit("dev1", "publish", start), Some(0));
        for i in 1..=99 {
            assert_eq!(log.admit("dev1", "publish", start + Duration::from_millis(i * 10)), None);
        }
        // Another kind, another client: their own first line.
        assert_eq!(log.admit("dev1", "subscribe", start), Some(0));
        assert_eq!(log.admit("dev2", "publish", start), Some(0));
        assert_eq!(log.admit("dev1", "publish", start + LOG_EVERY), Some(99));
        assert_eq!(log.admit("dev1", "publish", start + LOG_EVERY + Duration::from_secs(1)), None);
    }

    #[test]
    fn made_up_client_ids_cannot_grow_the_table_without_bound() {
        let log = RefusalLog::default();
        let start = Instant::now();
        let mut lines = 0;
        for i in 0..3 * MAX_CLIENTS {
            lines += usize::from(log.admit(&format!("c{i}"), "connect", start).is_some());
        }
        let held: usize = log.entries.lock().unwrap().values().map(HashMap::len).sum();
        assert!(held <= MAX_CLIENTS + 1);
        // Every new client of the first table-full got its line, then one shared line.
        assert_eq!(lines, MAX_CLIENTS + 1);
        // Once the interval has passed, stale entries make room again.
        assert_eq!(log.admit("late", "connect", start + LOG_EVERY), Some(0));
    }
}
