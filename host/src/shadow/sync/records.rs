//! Sync records: the `shadow_sync` table of `turf.db`, one row per synced shadow.
//!
//! A row holds the state both sides last agreed on (the base of the next merge), each side's
//! version at that moment, and whether the shadow changed locally since (`pending`). Written
//! before anything is acknowledged to the sync loop, so pending work survives a restart and an
//! outage of any length.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::merge::SyncState;
use crate::store::{self, StoreError};

/// One shadow's sync record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRecord {
    /// Thing name.
    pub thing: String,
    /// Shadow name; empty for the classic shadow.
    pub name: String,
    /// The state both sides last agreed on; `None` before the first sync.
    #[serde(skip)]
    pub base: Option<SyncState>,
    /// The local shadow's version at that sync (0: none).
    pub local_version: u64,
    /// The cloud shadow's version at that sync (0: none).
    pub cloud_version: u64,
    /// When (seconds since the epoch).
    pub synced_at: Option<i64>,
    /// Changed locally since, not yet in the cloud.
    pub pending: bool,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
}

impl SyncRecord {
    /// A record for a shadow never synced.
    pub fn new(thing: &str, name: &str) -> Self {
        Self {
            thing: thing.to_owned(),
            name: name.to_owned(),
            base: None,
            local_version: 0,
            cloud_version: 0,
            synced_at: None,
            pending: false,
            last_error: None,
        }
    }
}

/// A failed read or write of the sync records.
#[derive(Debug, thiserror::Error)]
#[error("shadow sync records: cannot {action}: {source}")]
pub struct RecordsError {
    action: &'static str,
    #[source]
    source: rusqlite::Error,
}

fn sql(action: &'static str) -> impl Fn(rusqlite::Error) -> RecordsError {
    move |source| RecordsError { action, source }
}

/// The `shadow_sync` table over its own connection.
pub struct SyncRecords {
    conn: Connection,
}

const COLUMNS: &str = "thing, name, base, local_version, cloud_version, synced_at, pending, last_error";

fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<SyncRecord> {
    let base: Option<String> = row.get(2)?;
    Ok(SyncRecord {
        thing: row.get(0)?,
        name: row.get(1)?,
        // An unreadable base is a record never synced: the next sync merges without one, which
        // keeps both sides' keys rather than deleting any.
        base: base.and_then(|text| serde_json::from_str(&text).ok()).map(|v| SyncState::from_json(&v)),
        local_version: row.get::<_, i64>(3)?.max(0) as u64,
        cloud_version: row.get::<_, i64>(4)?.max(0) as u64,
        synced_at: row.get(5)?,
        pending: row.get(6)?,
        last_error: row.get(7)?,
    })
}

impl SyncRecords {
    /// Opens the records in the database at `db`.
    pub fn open(db: &Path) -> Result<Self, StoreError> {
        Ok(Self { conn: store::open(db)? })
    }

    /// The record of one shadow.
    pub fn get(&self, thing: &str, name: &str) -> Result<Option<SyncRecord>, RecordsError> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM shadow_sync WHERE thing = ?1 AND name = ?2"),
                params![thing, name],
                read,
            )
            .optional()
            .map_err(sql("read a sync record"))
    }

    /// Writes a record (durably, before the caller goes on).
    pub fn put(&self, record: &SyncRecord) -> Result<(), RecordsError> {
        let base = record.base.as_ref().map(|b| b.to_json().to_string());
        let version = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.conn
            .execute(
                &format!("INSERT OR REPLACE INTO shadow_sync ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
                params![
                    record.thing,
                    record.name,
                    base,
                    version(record.local_version),
                    version(record.cloud_version),
                    record.synced_at,
                    record.pending,
                    record.last_error
                ],
            )
            .map(|_| ())
            .map_err(sql("write a sync record"))
    }

    /// Forgets a shadow (deleted on both sides).
    pub fn delete(&self, thing: &str, name: &str) -> Result<(), RecordsError> {
        self.conn
            .execute("DELETE FROM shadow_sync WHERE thing = ?1 AND name = ?2", params![thing, name])
            .map(|_| ())
            .map_err(sql("delete a sync record"))
    }

    /// How many shadows have a record.
    pub fn count(&self) -> Result<u64, RecordsError> {
        self.conn
            .query_row("SELECT count(*) FROM shadow_sync", [], |r| r.get::<_, i64>(0))
            .map(|n| n.max(0) as u64)
            .map_err(sql("count sync records"))
    }

    /// How many shadows are pending, and how many failed their last sync.
    pub fn troubled(&self) -> Result<(u64, u64), RecordsError> {
        self.conn
            .query_row(
                "SELECT COALESCE(SUM(pending), 0), COALESCE(SUM(last_error IS NOT NULL), 0) FROM shadow_sync",
                [],
                |r| Ok((r.get::<_, i64>(0)?.max(0) as u64, r.get::<_, i64>(1)?.max(0) as u64)),
            )
            .map_err(sql("count pending syncs"))
    }

    /// Every record, or one thing's, by thing and name.
    pub fn list(&self, thing: Option<&str>) -> Result<Vec<SyncRecord>, RecordsError> {
        let mut statement = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM shadow_sync WHERE ?1 IS NULL OR thing = ?1 ORDER BY thing, name"))
            .map_err(sql("list sync records"))?;
        let rows = statement.query_map(params![thing], read).map_err(sql("list sync records"))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql("list sync records"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_round_trip_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("turf.db");
        let records = SyncRecords::open(&db).unwrap();
        let mut record = SyncRecord::new("Lamp", "");
        record.base = Some(SyncState::from_json(&json!({"desired": {"color": "red"}})));
        record.local_version = 3;
        record.cloud_version = 7;
        record.pending = true;
        records.put(&record).unwrap();
        records.put(&SyncRecord::new("Lamp", "named")).unwrap();
        records.put(&SyncRecord::new("Fan", "")).unwrap();
        drop(records);

        let records = SyncRecords::open(&db).unwrap();
        assert_eq!(records.get("Lamp", "").unwrap(), Some(record));
        assert_eq!(records.list(Some("Lamp")).unwrap().len(), 2);
        assert_eq!(records.list(None).unwrap().len(), 3);
        assert_eq!(records.troubled().unwrap(), (1, 0));
        records.delete("Lamp", "named").unwrap();
        assert_eq!(records.get("Lamp", "named").unwrap(), None);
    }

    #[test]
    fn an_unreadable_base_reads_as_never_synced() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("turf.db");
        let records = SyncRecords::open(&db).unwrap();
        records.put(&SyncRecord::new("Lamp", "")).unwrap();
        let conn = store::open(&db).unwrap();
        conn.execute("UPDATE shadow_sync SET base = '{torn'", []).unwrap();
        assert_eq!(records.get("Lamp", "").unwrap().and_then(|r| r.base), None);
    }
}
