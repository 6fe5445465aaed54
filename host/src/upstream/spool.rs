//! The upstream spool: messages bound for the upstream broker, on disk, oldest first.
//!
//! Every message is written here before it is sent and deleted only when the upstream broker
//! acknowledged it (PUBACK), so neither a lost connection nor a host restart loses it. The
//! spool is bounded by bytes (topic + payload) and by count; when a new message does not fit,
//! the oldest are dropped and counted. Owns the `spool` table over its own connection, with
//! `synchronous=NORMAL`: a committed message survives the process dying; only a power loss in
//! the last moments can cost the newest ones.

use std::path::Path;

use rusqlite::{Connection, params};

use crate::properties::MessageProperties;
use crate::store::{self, StoreError};

/// A failed spool operation.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// Opening the database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A query failed.
    #[error("upstream spool: cannot {action}: {source}")]
    Sql {
        /// What was being done.
        action: &'static str,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// One message is bigger than the whole spool.
    #[error("a {size}-byte message does not fit in the upstream spool ({max} bytes); dropped")]
    TooBig {
        /// Its size.
        size: u64,
        /// The spool's limit.
        max: u64,
    },
}

fn sql(action: &'static str) -> impl Fn(rusqlite::Error) -> SpoolError {
    move |source| SpoolError::Sql { action, source }
}

/// A spooled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spooled {
    /// Its place in the spool.
    pub seq: i64,
    /// Upstream topic.
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
    /// Retain flag to publish with.
    pub retain: bool,
    /// MQTT 5 properties to publish with.
    pub properties: Option<MessageProperties>,
}

/// What [`Spool::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pushed {
    /// The new message's place.
    pub seq: i64,
    /// Older messages dropped to make room.
    pub dropped: u64,
}

/// The spool, with its size kept in memory.
pub struct Spool {
    conn: Connection,
    count: u64,
    bytes: u64,
    max_count: u64,
    max_bytes: u64,
}

fn size_of(topic: &str, payload: &[u8]) -> u64 {
    u64::try_from(topic.len() + payload.len()).unwrap_or(u64::MAX)
}

impl Spool {
    /// Opens the spool in the database at `db` with the given limits.
    pub fn open(db: &Path, max_count: u64, max_bytes: u64) -> Result<Self, SpoolError> {
        let conn = store::open(db)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(sql("set synchronous"))?;
        let (count, bytes): (i64, i64) = conn
            .query_row("SELECT count(*), coalesce(sum(length(topic) + length(payload)), 0) FROM spool", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(sql("measure the spool"))?;
        Ok(Self {
            conn,
            count: u64::try_from(count).unwrap_or(0),
            bytes: u64::try_from(bytes).unwrap_or(0),
            max_count: max_count.max(1),
            max_bytes: max_bytes.max(1),
        })
    }

    /// Messages waiting.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes waiting (topics and payloads).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends a message, dropping the oldest ones if it would not fit otherwise.
    pub fn push(
        &mut self,
        topic: &str,
        payload: &[u8],
        retain: bool,
        properties: Option<&MessageProperties>,
    ) -> Result<Pushed, SpoolError> {
        let properties = properties.and_then(|p| serde_json::to_string(p).ok());
        let size = size_of(topic, payload);
        if size > self.max_bytes {
            return Err(SpoolError::TooBig { size, max: self.max_bytes });
        }
        let tx = self.conn.transaction().map_err(sql("begin"))?;
        let mut dropped = 0;
        let (mut count, mut bytes) = (self.count, self.bytes);
        while count > 0 && (count + 1 > self.max_count || bytes + size > self.max_bytes) {
            let (seq, oldest): (i64, i64) = tx
                .query_row("SELECT seq, length(topic) + length(payload) FROM spool ORDER BY seq LIMIT 1", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .map_err(sql("find the oldest message"))?;
            tx.execute("DELETE FROM spool WHERE seq = ?1", [seq]).map_err(sql("drop the oldest message"))?;
            count -= 1;
            bytes = bytes.saturating_sub(u64::try_from(oldest).unwrap_or(0));
            dropped += 1;
        }
        tx.execute(
            "INSERT INTO spool(topic, payload, retain, queued_at, properties) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![topic, payload, retain, store::now_secs(), properties],
        )
        .map_err(sql("queue a message"))?;
        let seq = tx.last_insert_rowid();
        tx.commit().map_err(sql("commit"))?;
        self.count = count + 1;
        self.bytes = bytes + size;
        Ok(Pushed { seq, dropped })
    }

    /// Up to `limit` messages after `after`, oldest first. A message whose stored properties
    /// do not parse is sent without them (and said so): one damaged row must not hold back the
    /// rest of the spool. `turf status` counts such rows.
    pub fn after(&self, after: i64, limit: usize) -> Result<Vec<Spooled>, SpoolError> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, topic, payload, retain, properties FROM spool WHERE seq > ?1 ORDER BY seq LIMIT ?2")
            .map_err(sql("read the spool"))?;
        let rows = stmt
            .query_map(params![after, i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                let seq: i64 = r.get(0)?;
                let properties = match r.get::<_, Option<String>>(4)? {
                    None => None,
                    Some(json) => match serde_json::from_str(&json) {
                        Ok(properties) => Some(properties),
                        Err(error) => {
                            tracing::error!(seq, %error, "a spooled message's MQTT 5 properties are unreadable; it is sent without them");
                            None
                        }
                    },
                };
                Ok(Spooled { seq, topic: r.get(1)?, payload: r.get(2)?, retain: r.get(3)?, properties })
            })
            .map_err(sql("read the spool"))?;
        rows.collect::<Result<_, _>>().map_err(sql("read the spool"))
    }

    /// Removes an acknowledged message (a no-op if it was dropped meanwhile).
    pub fn remove(&mut self, seq: i64) -> Result<(), SpoolError> {
        let size: Option<i64> = self
            .conn
            .query_row("DELETE FROM spool WHERE seq = ?1 RETURNING length(topic) + length(payload)", [seq], |r| {
                r.get(0)
            })
            .map(Some)
            .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })
            .map_err(sql("remove an acknowledged message"))?;
        if let Some(size) = size {
            self.count = self.count.saturating_sub(1);
            self.bytes = self.bytes.saturating_sub(u64::try_from(size).unwrap_or(0));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spool(dir: &tempfile::TempDir, count: u64, bytes: u64) -> Spool {
        Spool::open(&dir.path().join("turf.db"), count, bytes).unwrap()
    }

    #[test]
    fn messages_come_out_in_order_and_leave_only_when_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spool(&dir, 100, 10_000);
        let a = s.push("t/a", b"1", false, None).unwrap();
        let b = s.push("t/b", b"22", true, None).unwrap();
        assert_eq!((s.len(), s.bytes()), (2, 3 + 1 + 3 + 2));
        let all = s.after(0, 10).unwrap();
        assert_eq!(all.iter().map(|m| m.topic.as_str()).collect::<Vec<_>>(), vec!["t/a", "t/b"]);
        assert!(all[1].retain);
        assert_eq!(s.after(a.seq, 10).unwrap().len(), 1);
        s.remove(a.seq).unwrap();
        s.remove(a.seq).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s.after(0, 10).unwrap()[0].seq, b.seq);
    }

    #[test]
    fn a_message_with_damaged_properties_is_sent_without_them_and_holds_nothing_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spool(&dir, 100, 10_000);
        let damaged = s.push("t/a", b"1", false, None).unwrap();
        s.push("t/b", b"2", false, None).unwrap();
        let conn = crate::store::open(&dir.path().join("turf.db")).unwrap();
        conn.execute("UPDATE spool SET properties = '{torn' WHERE seq = ?1", [damaged.seq]).unwrap();
        let all = s.after(0, 10).unwrap();
        assert_eq!(all.iter().map(|m| m.topic.as_str()).collect::<Vec<_>>(), vec!["t/a", "t/b"]);
        assert_eq!(all[0].properties, None);
    }

    #[test]
    fn the_oldest_are_dropped_and_counted_when_full() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spool(&dir, 3, 1_000);
        for n in 0..3 {
            assert_eq!(s.push("t", format!("{n}").as_bytes(), false, None).unwrap().dropped, 0);
        }
        assert_eq!(s.push("t", b"3", false, None).unwrap().dropped, 1);
        let left: Vec<Vec<u8>> = s.after(0, 10).unwrap().into_iter().map(|m| m.payload).collect();
        assert_eq!(left, vec![b"1".to_vec(), b"2".to_vec(), b"3".to_vec()]);
        // By bytes: a large message pushes out as many as needed.
        let mut by_bytes = spool(&tempfile::tempdir().unwrap(), 100, 10);
        by_bytes.push("t", b"aa", false, None).unwrap();
        by_bytes.push("t", b"bb", false, None).unwrap();
        assert_eq!(by_bytes.push("t", b"cccccc", false, None).unwrap().dropped, 1, "3 + 7 fits in 10 after one drop");
        assert_eq!(by_bytes.bytes(), 10);
        assert_eq!(by_bytes.push("t", b"ddddddd", false, None).unwrap().dropped, 2);
        assert_eq!(by_bytes.bytes(), 8);
        assert!(matches!(by_bytes.push("t", &[0; 64], false, None), Err(SpoolError::TooBig { .. })));
        assert_eq!(by_bytes.len(), 1, "a message that can never fit drops nothing else");
    }

    #[test]
    fn the_spool_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = spool(&dir, 10, 1_000);
            s.push("t/1", b"x", false, None).unwrap();
            let properties = MessageProperties {
                response_topic: Some("replies/x".into()),
                user_properties: vec![("k".into(), "v".into())],
                ..MessageProperties::default()
            };
            s.push("t/2", &[0, 255, 7], false, Some(&properties)).unwrap();
        }
        let s = spool(&dir, 10, 1_000);
        assert_eq!((s.len(), s.bytes()), (2, 4 + 3 + 3));
        let spooled = s.after(0, 10).unwrap();
        assert_eq!(spooled[1].payload, vec![0, 255, 7]);
        assert_eq!(spooled[0].properties, None);
        let properties = spooled[1].properties.clone().unwrap();
        assert_eq!(properties.response_topic.as_deref(), Some("replies/x"), "MQTT 5 properties are spooled too");
        assert_eq!(properties.user_properties, vec![("k".to_owned(), "v".to_owned())]);
    }
}
