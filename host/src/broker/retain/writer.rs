//! The `turf-retained` thread: writes retained-message changes to `turf.db` behind the broker,
//! coalesced per topic, one transaction per batch, retried after a failure.

use std::collections::HashMap;
use std::sync::Condvar;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rusqlite::{Connection, params};

/// One retained message as it is written to `turf.db`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Row {
    pub(super) payload: Bytes,
    pub(super) qos: u8,
    pub(super) publisher: String,
    pub(super) properties: Option<String>,
    pub(super) expires_at: Option<i64>,
}

/// Changes waiting for the writer thread: topic → its new row, or `None` to delete it.
#[derive(Default)]
pub(super) struct Pending {
    pub(super) changes: HashMap<String, Option<Row>>,
    pub(super) closing: bool,
}

/// What the store and its writer thread share.
pub(super) struct Writer {
    pub(super) pending: Mutex<Pending>,
    pub(super) wake: Condvar,
    pub(super) failures: AtomicU64,
}

/// The writer thread: waits for changes, writes each batch in one transaction; on a failure the
/// batch is put back under any newer changes and retried after a pause.
pub(super) fn write_behind(writer: &Writer, mut conn: Connection) {
    loop {
        let (batch, closing) = {
            let Ok(mut pending) = writer.pending.lock() else { return };
            while pending.changes.is_empty() && !pending.closing {
                pending = match writer.wake.wait(pending) {
                    Ok(p) => p,
                    Err(_) => return,
                };
            }
            (std::mem::take(&mut pending.changes), pending.closing)
        };
        if !batch.is_empty()
            && let Err(error) = write_batch(&mut conn, &batch)
        {
            writer.failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%error, changes = batch.len(), "cannot write retained messages to the database; retrying");
            if let Ok(mut pending) = writer.pending.lock() {
                for (topic, row) in batch {
                    pending.changes.entry(topic).or_insert(row);
                }
            }
            if closing {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        if closing {
            return;
        }
    }
}

fn write_batch(conn: &mut Connection, batch: &HashMap<String, Option<Row>>) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut upsert = tx.prepare(
            "INSERT INTO retained (topic, payload, qos, publisher, properties, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(topic) DO UPDATE SET payload = excluded.payload, qos = excluded.qos,
                 publisher = excluded.publisher, properties = excluded.properties, expires_at = excluded.expires_at",
        )?;
        let mut delete = tx.prepare("DELETE FROM retained WHERE topic = ?1")?;
        for (topic, row) in batch {
            match row {
                Some(r) => {
                    upsert.execute(params![topic, &r.payload[..], r.qos, r.publisher, r.properties, r.expires_at])?;
                }
                None => {
                    delete.execute([topic])?;
                }
            }
        }
    }
    tx.commit()
}
