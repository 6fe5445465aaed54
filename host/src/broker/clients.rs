//! Who is connected, and the broker's most recent refusals: what the console's client-devices
//! page and `GET /v1/clients` show.
//!
//! [`Denials`] is a ring of the last [`KEEP_DENIALS`] refusals that were *logged* (see
//! [`super::refusals`]): a device retrying a forbidden publish in a loop adds one entry per log
//! interval, carrying how many refusals of that kind were not logged before it, never one entry
//! per packet. Texts are clipped, so the ring's size is bounded whatever a device sends.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Refusals kept for the console.
pub const KEEP_DENIALS: usize = 50;

/// Longest subject or reason kept, in bytes.
const MAX_TEXT: usize = 512;

/// Most sessions listed in one answer (the total is reported too).
pub const MAX_LISTED: usize = 1000;

/// A refusal the broker logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    /// When (seconds since the epoch).
    pub at: i64,
    /// The client id (`(TLS)` for a handshake refused before any CONNECT).
    pub client_id: String,
    /// `connect`, `tls`, `subscribe` or `publish`.
    pub action: String,
    /// The topic or filter concerned (empty for a connect).
    pub subject: String,
    /// Why.
    pub reason: String,
    /// Refusals of the same kind for the same client not listed since the previous entry.
    pub unlisted_before: u64,
}

/// The last [`KEEP_DENIALS`] logged refusals.
#[derive(Debug, Default)]
pub struct Denials(Mutex<VecDeque<Denial>>);

impl Denials {
    /// Keeps a refusal (the oldest goes once [`KEEP_DENIALS`] are kept).
    pub fn record(&self, client_id: &str, action: &str, subject: &str, reason: &str, unlisted_before: u64) {
        let denial = Denial {
            at: chrono::Utc::now().timestamp(),
            client_id: clip(client_id),
            action: action.to_owned(),
            subject: clip(subject),
            reason: clip(reason),
            unlisted_before,
        };
        if let Ok(mut ring) = self.0.lock() {
            if ring.len() >= KEEP_DENIALS {
                ring.pop_front();
            }
            ring.push_back(denial);
        }
    }

    /// The refusals kept, newest first.
    pub fn recent(&self) -> Vec<Denial> {
        self.0.lock().map(|ring| ring.iter().rev().cloned().collect()).unwrap_or_default()
    }
}

/// `text` cut to at most [`MAX_TEXT`] bytes at a character boundary, marked when cut.
fn clip(text: &str) -> String {
    if text.len() <= MAX_TEXT {
        return text.to_owned();
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A session the broker admitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSession {
    /// Client id (the thing name).
    pub client_id: String,
    /// Where it connects from.
    pub remote: Option<SocketAddr>,
    /// `tls` (the mutual-TLS listener) or `plain` (the loopback listener).
    pub listener: String,
    /// When it was admitted (seconds since the epoch).
    pub since: i64,
    /// Whether its connection is open now (a persistent session outlives its connection).
    pub connected: bool,
}

/// `GET /v1/clients`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientsReport {
    /// Sessions, by client id (at most [`MAX_LISTED`]).
    pub sessions: Vec<ClientSession>,
    /// How many sessions there are in all.
    pub total: usize,
    /// The most recent refusals, newest first.
    pub denials: Vec<Denial>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_and_clips_what_a_device_sent() {
        let denials = Denials::default();
        for i in 0..KEEP_DENIALS + 5 {
            denials.record(&format!("dev{i}"), "publish", &"x".repeat(10_000), "not allowed", 0);
        }
        let recent = denials.recent();
        assert_eq!(recent.len(), KEEP_DENIALS);
        assert_eq!(recent[0].client_id, format!("dev{}", KEEP_DENIALS + 4), "newest first");
        assert_eq!(recent.last().map(|d| d.client_id.as_str()), Some("dev5"));
        assert!(recent[0].subject.len() <= MAX_TEXT + "…".len());
    }

    #[test]
    fn clipping_never_splits_a_character() {
        let text = "é".repeat(MAX_TEXT);
        let clipped = clip(&text);
        assert!(clipped.ends_with('…') && clipped.len() <= MAX_TEXT + "…".len());
        assert_eq!(clip("short"), "short");
    }
}
