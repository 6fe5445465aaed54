//! Retained messages for the embedded broker (rmqtt's `RetainStorage`): in memory, indexed by
//! topic level, and kept in `turf.db` so they survive a restart (as Greengrass's Moquette keeps
//! them).
//!
//! The last retained message per topic is kept (an empty payload clears it, MQTT-3.3.1-10). A
//! message expires only when its publisher set a Message Expiry Interval (MQTT 5). A subscribe
//! walks rmqtt's retained-topic trie (`rmqtt::retain::RetainTree`, which also keeps `$` topics
//! out of leading wildcards) instead of scanning every message. The store is bounded by
//! [`RetainLimits`]: a retained publish that would not fit is refused by the publish hook
//! ([`RetainStore::fits`]; MQTT 5 PUBACK 0x97 Quota exceeded) and counted.
//!
//! Writes go to SQLite behind the broker's back: changes are coalesced per topic (the latest
//! wins) and written in one transaction by the `turf-retained` thread, so a retained flood never
//! waits for fsync on a connection's thread and the pending set is bounded by the number of
//! topics. [`RetainStore::close`] writes what is pending and stops the thread (broker stop).
//! Lives inside the broker; nothing else touches it.

mod adapter;
mod writer;

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rmqtt::codec::types::{Publish as CodecPublish, QoS};
use rmqtt::codec::v5::PublishProperties;
use rmqtt::retain::RetainTree;
use rmqtt::topic::Topic;
use rmqtt::types::{From, Id, Publish, Retain, TopicName};
use rusqlite::Connection;

use self::writer::{Row, Writer, write_behind};

pub use self::adapter::SharedRetain;

/// Bytes charged per retained message on top of its topic, payload and properties (the trie
/// node, the copy of the publish, the index entry).
const ENTRY_OVERHEAD: usize = 256;

/// How much the retained store may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetainLimits {
    /// Bytes of all retained messages together (as charged by [`cost`]).
    pub max_bytes: usize,
    /// Retained messages (topics).
    pub max_messages: usize,
}

/// What a retained message is charged.
pub fn cost(topic: &str, payload: usize, properties: usize) -> usize {
    topic.len() + payload + properties + ENTRY_OVERHEAD
}

/// Bytes of the MQTT 5 properties a retained message keeps.
pub fn properties_size(properties: Option<&PublishProperties>) -> usize {
    properties.map_or(0, |p| {
        p.user_properties.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
            + p.content_type.as_ref().map_or(0, |c| c.len())
            + p.response_topic.as_ref().map_or(0, |t| t.len())
            + p.correlation_data.as_ref().map_or(0, Bytes::len)
    })
}

#[derive(Debug)]
struct Entry {
    retain: Retain,
    expires: Option<Instant>,
    cost: usize,
}

#[derive(Default)]
struct Index {
    tree: RetainTree<Arc<Entry>>,
    bytes: usize,
    count: usize,
}

/// The broker's retained-message store.
pub struct RetainStore {
    index: RwLock<Index>,
    limits: RetainLimits,
    writer: Option<Arc<Writer>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    refused: AtomicU64,
    max_seen: AtomicUsize,
}

/// A failure to read the retained messages back at start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// SQLite could not read the `retained` table.
    #[error("cannot read retained messages from the database: {0}")]
    Database(#[from] rusqlite::Error),
    /// The writer thread could not be started.
    #[error("cannot start the retained-message writer thread: {0}")]
    Thread(std::io::Error),
}

fn now_unix() -> i64 {
    crate::store::now_secs()
}

fn qos_number(qos: QoS) -> u8 {
    match qos {
        QoS::AtMostOnce => 0,
        QoS::AtLeastOnce => 1,
        QoS::ExactlyOnce => 2,
    }
}

/// The properties worth keeping with a retained message: not the publisher's topic alias nor
/// its subscription ids, which belong to its connection.
fn kept_properties(properties: Option<&PublishProperties>) -> Option<PublishProperties> {
    properties.map(|p| PublishProperties { topic_alias: None, subscription_ids: Vec::new(), ..p.clone() })
}

impl RetainStore {
    /// A store kept only in memory (tests).
    pub fn in_memory(limits: RetainLimits) -> Self {
        Self {
            index: RwLock::new(Index::default()),
            limits,
            writer: None,
            thread: Mutex::new(None),
            refused: AtomicU64::new(0),
            max_seen: AtomicUsize::new(0),
        }
    }

    /// Loads the retained messages kept in `conn` (dropping expired ones) and starts the thread
    /// that writes changes back to it.
    pub fn open(conn: Connection, limits: RetainLimits) -> Result<Self, LoadError> {
        let mut store = Self::in_memory(limits);
        let now = now_unix();
        conn.execute("DELETE FROM retained WHERE expires_at IS NOT NULL AND expires_at <= ?1", [now])?;
        let mut unreadable = 0usize;
        {
            let mut statement =
                conn.prepare("SELECT topic, payload, qos, publisher, properties, expires_at FROM retained")?;
            let rows = statement.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    Row {
                        payload: Bytes::from(r.get::<_, Vec<u8>>(1)?),
                        qos: r.get(2)?,
                        publisher: r.get(3)?,
                        properties: r.get(4)?,
                        expires_at: r.get(5)?,
                    },
                ))
            })?;
            let started = Instant::now();
            for row in rows {
                let (topic, row) = row?;
                match Self::restore(&topic, &row) {
                    Some(retain) => {
                        let expires = row
                            .expires_at
                            .map(|at| started + Duration::from_secs(u64::try_from(at - now).unwrap_or(0)));
                        store.insert(&topic, retain, expires, None);
                    }
                    None => {
                        unreadable += 1;
                        tracing::error!(
                            topic,
                            "a retained message in the database cannot be read; it is kept there and not served"
                        );
                    }
                }
            }
        }
        if unreadable > 0 {
            store.refused.fetch_add(unreadable as u64, Ordering::Relaxed);
        }
        let writer = Arc::new(Writer { pending: Mutex::default(), wake: Condvar::new(), failures: AtomicU64::new(0) });
        let thread = {
            let writer = Arc::clone(&writer);
            std::thread::Builder::new()
                .name("turf-retained".into())
                .spawn(move || write_behind(&writer, conn))
                .map_err(LoadError::Thread)?
        };
        store.writer = Some(writer);
        store.thread = Mutex::new(Some(thread));
        tracing::debug!(messages = store.count(), "retained messages loaded");
        Ok(store)
    }

    fn restore(topic: &str, row: &Row) -> Option<Retain> {
        let qos = QoS::try_from(row.qos).ok()?;
        let properties = match &row.properties {
            None => None,
            Some(json) => Some(serde_json::from_str::<PublishProperties>(json).ok()?),
        };
        let publish = CodecPublish {
            dup: false,
            retain: true,
            qos,
            topic: topic.into(),
            packet_id: None,
            payload: row.payload.clone(),
            properties,
        };
        let id = Id::new(0, 0, None, None, row.publisher.as_str().into(), None);
        Some(Retain { msg_id: None, from: From::from_custom(id), publish: Publish::from(publish) })
    }

    /// Whether a retained message on `topic` with this payload and these properties would fit
    /// beside the others (replacing the one on the same topic), after dropping expired ones if
    /// needed. An empty payload always fits: it clears.
    pub fn fits(&self, topic: &str, payload: usize, properties: Option<&PublishProperties>) -> bool {
        if payload == 0 {
            return true;
        }
        let wanted = cost(topic, payload, properties_size(properties));
        self.room_for(topic, wanted) || {
            self.purge_expired(Instant::now());
            self.room_for(topic, wanted)
        }
    }

    fn room_for(&self, topic: &str, wanted: usize) -> bool {
        let Ok(index) = self.index.read() else { return false };
        let Ok(parsed) = Topic::from_str(topic) else { return false };
        let replaced = index.tree.matches(&parsed).first().map(|(_, e)| e.cost);
        let count = index.count + usize::from(replaced.is_none());
        let bytes = index.bytes - replaced.unwrap_or(0) + wanted;
        count <= self.limits.max_messages && bytes <= self.limits.max_bytes
    }

    /// Counts a retained publish refused for want of room.
    pub fn refuse(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Retained messages refused (no room) or unreadable in the database since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Retained messages and their bytes now.
    pub fn usage(&self) -> (usize, usize) {
        self.index.read().map(|i| (i.count, i.bytes)).unwrap_or_default()
    }

    fn count(&self) -> usize {
        self.usage().0
    }

    /// Writes failed since start (each retried with the next change).
    pub fn write_failures(&self) -> u64 {
        self.writer.as_ref().map_or(0, |w| w.failures.load(Ordering::Relaxed))
    }

    /// Puts `retain` on `topic` in memory and queues `row` for the database, under one lock so
    /// the database never ends up behind memory; false when it does not fit (nothing changes).
    fn insert(&self, topic: &str, retain: Retain, expires: Option<Instant>, row: Option<Row>) -> bool {
        let Ok(parsed) = Topic::from_str(topic) else { return false };
        let entry_cost = cost(topic, retain.publish.payload.len(), properties_size(retain.publish.properties.as_ref()));
        let Ok(mut index) = self.index.write() else { return false };
        let replaced = index.tree.remove(&parsed);
        let (count, bytes) = match &replaced {
            Some(old) => (index.count, index.bytes - old.cost),
            None => (index.count + 1, index.bytes),
        };
        if count > self.limits.max_messages || bytes + entry_cost > self.limits.max_bytes {
            if let Some(old) = replaced {
                index.tree.insert(&parsed, old);
            }
            return false;
        }
        index.tree.insert(&parsed, Arc::new(Entry { retain, expires, cost: entry_cost }));
        index.count = count;
        index.bytes = bytes + entry_cost;
        self.max_seen.fetch_max(count, Ordering::Relaxed);
        if let Some(row) = row {
            self.persist(topic, Some(row));
        }
        true
    }

    /// Clears `topic` in memory and in the database (also a row that was not loaded).
    fn remove(&self, topic: &str) {
        let Ok(parsed) = Topic::from_str(topic) else { return };
        let Ok(mut index) = self.index.write() else { return };
        if let Some(old) = index.tree.remove(&parsed) {
            index.count -= 1;
            index.bytes -= old.cost;
        }
        self.persist(topic, None);
    }

    /// Drops expired messages from memory (the database drops them at the next start).
    fn purge_expired(&self, now: Instant) {
        let Ok(mut index) = self.index.write() else { return };
        let mut freed = (0usize, 0usize);
        index.tree.retain(usize::MAX, |entry| {
            let keep = entry.expires.is_none_or(|t| t > now);
            if !keep {
                freed = (freed.0 + 1, freed.1 + entry.cost);
            }
            keep
        });
        index.count -= freed.0;
        index.bytes -= freed.1;
    }

    fn set_now(&self, topic: &str, mut retain: Retain, expiry: Option<Duration>, now: Instant) {
        if retain.publish.payload.is_empty() {
            self.remove(topic);
            return;
        }
        let expiry = expiry.filter(|d| !d.is_zero());
        retain.publish.flow = None;
        retain.publish.properties = kept_properties(retain.publish.properties.as_ref());
        let row = Row {
            payload: retain.publish.payload.clone(),
            qos: qos_number(retain.publish.qos),
            publisher: retain.from.id.client_id.to_string(),
            properties: retain.publish.properties.as_ref().and_then(|p| serde_json::to_string(p).ok()),
            expires_at: expiry.map(|d| now_unix().saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))),
        };
        let mut stored = self.insert(topic, retain.clone(), expiry.map(|d| now + d), Some(row.clone()));
        if !stored {
            self.purge_expired(now);
            stored = self.insert(topic, retain, expiry.map(|d| now + d), Some(row));
        }
        if !stored {
            // The publish hook refuses what does not fit; this is a race with another publish.
            self.refuse();
        }
    }

    fn get_now(&self, filter: &str, now: Instant) -> Vec<(TopicName, Retain)> {
        let Ok(parsed) = Topic::from_str(filter) else { return Vec::new() };
        let Ok(index) = self.index.read() else { return Vec::new() };
        let mut found: Vec<(TopicName, Retain)> = index
            .tree
            .matches(&parsed)
            .into_iter()
            .filter(|(_, entry)| entry.expires.is_none_or(|t| t > now))
            .map(|(topic, entry)| (TopicName::from(topic.to_string()), with_remaining_expiry(&entry, now)))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }

    fn persist(&self, topic: &str, row: Option<Row>) {
        let Some(writer) = &self.writer else { return };
        if let Ok(mut pending) = writer.pending.lock() {
            pending.changes.insert(topic.to_owned(), row);
            writer.wake.notify_one();
        }
    }

    /// Writes every pending change and stops the writer thread; later changes stay in memory.
    pub fn close(&self) {
        if let Some(writer) = &self.writer
            && let Ok(mut pending) = writer.pending.lock()
        {
            pending.closing = true;
            writer.wake.notify_one();
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for RetainStore {
    fn drop(&mut self) {
        self.close();
    }
}

/// The retained message of `entry` as it is delivered at `now`: rmqtt restarts a retained
/// message's expiry clock at each delivery, so its Message Expiry Interval is set to what is
/// left of it (MQTT-3.3.2-6), also after a restart.
fn with_remaining_expiry(entry: &Entry, now: Instant) -> Retain {
    let mut retain = entry.retain.clone();
    if let (Some(expires), Some(properties)) = (entry.expires, retain.publish.properties.as_mut()) {
        let left = expires.saturating_duration_since(now).as_secs().max(1);
        properties.message_expiry_interval = std::num::NonZeroU32::new(u32::try_from(left).unwrap_or(u32::MAX));
    }
    retain
}

#[cfg(test)]
mod tests;
