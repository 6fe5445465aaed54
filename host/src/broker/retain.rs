//! Retained messages for the embedded broker (rmqtt's `RetainStorage`).
//!
//! rmqtt only stores retained messages through a plugin; this in-memory store is ours. It keeps
//! the last retained message per topic (an empty payload clears it, MQTT-3.3.1-10), honours
//! message expiry, and answers filter look-ups with [`crate::topic::matches`], so `$` topics are
//! excluded from leading wildcards exactly as for live messages. Lives inside the broker; nothing
//! else touches it. Retained messages do not survive a restart (as with Greengrass's Moquette).

use std::collections::BTreeMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rmqtt::retain::RetainStorage;
use rmqtt::types::{Retain, TopicFilter, TopicName};

use crate::topic;

/// Most retained messages kept at once; beyond it new topics are refused (logged).
pub const MAX_RETAINED: usize = 100_000;

struct Entry {
    retain: Retain,
    expires: Option<Instant>,
}

/// The broker's retained-message store.
#[derive(Default)]
pub struct RetainStore {
    messages: RwLock<BTreeMap<String, Entry>>,
    max_seen: RwLock<usize>,
}

impl RetainStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn set_now(&self, topic: &str, retain: Retain, expiry: Option<Duration>, now: Instant) {
        let Ok(mut messages) = self.messages.write() else {
            return;
        };
        if retain.publish.payload.is_empty() {
            messages.remove(topic);
            return;
        }
        if messages.len() >= MAX_RETAINED && !messages.contains_key(topic) {
            messages.retain(|_, e| e.expires.is_none_or(|t| t > now));
            if messages.len() >= MAX_RETAINED {
                tracing::warn!(topic, limit = MAX_RETAINED, "retained message refused: store is full");
                return;
            }
        }
        let expires = expiry.filter(|d| !d.is_zero()).map(|d| now + d);
        messages.insert(topic.to_owned(), Entry { retain, expires });
        if let Ok(mut max) = self.max_seen.write() {
            *max = (*max).max(messages.len());
        }
    }

    fn get_now(&self, filter: &str, now: Instant) -> Vec<(TopicName, Retain)> {
        let Ok(messages) = self.messages.read() else {
            return Vec::new();
        };
        messages
            .iter()
            .filter(|(topic, entry)| entry.expires.is_none_or(|t| t > now) && topic::matches(filter, topic))
            .map(|(topic, entry)| (TopicName::from(topic.as_str()), entry.retain.clone()))
            .collect()
    }
}

#[async_trait]
impl RetainStorage for RetainStore {
    fn enable(&self) -> bool {
        true
    }

    async fn set(&self, topic: &TopicName, retain: Retain, expiry_interval: Option<Duration>) -> rmqtt::Result<()> {
        self.set_now(topic, retain, expiry_interval, Instant::now());
        Ok(())
    }

    async fn get(&self, topic_filter: &TopicFilter) -> rmqtt::Result<Vec<(TopicName, Retain)>> {
        Ok(self.get_now(topic_filter, Instant::now()))
    }

    async fn count(&self) -> isize {
        self.messages.read().map(|m| m.len() as isize).unwrap_or(0)
    }

    async fn max(&self) -> isize {
        self.max_seen.read().map(|m| *m as isize).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmqtt::codec::types::{Publish as CodecPublish, QoS};
    use rmqtt::types::{From, Id, Publish};

    fn retain(topic: &str, payload: &str) -> Retain {
        let publish = CodecPublish {
            dup: false,
            retain: true,
            qos: QoS::AtLeastOnce,
            topic: topic.into(),
            packet_id: None,
            payload: bytes::Bytes::copy_from_slice(payload.as_bytes()),
            properties: None,
        };
        let id = Id::new(1, 0, None, None, "t".into(), None);
        Retain { msg_id: None, from: From::from_system(id), publish: Publish::from(publish) }
    }

    #[test]
    fn last_retained_message_per_topic_is_returned_for_matching_filters() {
        let store = RetainStore::new();
        let now = Instant::now();
        store.set_now("a/b", retain("a/b", "1"), None, now);
        store.set_now("a/b", retain("a/b", "2"), None, now);
        store.set_now("a/c", retain("a/c", "3"), None, now);
        store.set_now("$aws/x", retain("$aws/x", "4"), None, now);
        let got = store.get_now("a/+", now);
        let payloads: Vec<_> = got.iter().map(|(_, r)| r.publish.payload.clone()).collect();
        assert_eq!(payloads, vec![bytes::Bytes::from("2"), bytes::Bytes::from("3")]);
        assert_eq!(store.get_now("#", now).len(), 2, "'#' does not match $ topics");
        assert_eq!(store.get_now("$aws/#", now).len(), 1);
    }

    #[test]
    fn empty_payload_clears_and_expiry_hides() {
        let store = RetainStore::new();
        let now = Instant::now();
        store.set_now("a", retain("a", "1"), None, now);
        store.set_now("a", retain("a", ""), None, now);
        assert!(store.get_now("a", now).is_empty());
        store.set_now("b", retain("b", "1"), Some(Duration::from_secs(10)), now);
        assert_eq!(store.get_now("b", now).len(), 1);
        assert!(store.get_now("b", now + Duration::from_secs(11)).is_empty());
    }
}
