//! Shadow persistence: the `shadows` table of `turf.db`.
//!
//! Owns that table. Every write is one transaction on a connection with `synchronous=FULL` in WAL
//! mode, so when [`ShadowStore::put`] returns the document survives a crash or `kill -9`; the
//! shadow manager acknowledges an update only after that.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::document::Document;
use super::topics::ShadowId;
use crate::store::{self, StoreError};

/// A failed storage operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreFailure {
    /// SQLite failed.
    #[error("shadow store: cannot {action}: {source}")]
    Sql {
        /// What was being done.
        action: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored document does not parse: it is reported, never read as absent (which would let
    /// the next update restart the shadow at version 1 over it).
    #[error("shadow store: the stored document of {shadow} (version {version}) is unreadable: {reason}")]
    Corrupt {
        /// The shadow.
        shadow: String,
        /// The version column of its row.
        version: u64,
        /// What is wrong with it.
        reason: String,
    },
}

fn sql(action: &'static str) -> impl Fn(rusqlite::Error) -> StoreFailure {
    move |source| StoreFailure::Sql { action, source }
}

/// The shadows table over its own connection.
pub struct ShadowStore {
    conn: Connection,
}

impl ShadowStore {
    /// Opens the store in the database at `db`.
    pub fn open(db: &Path) -> Result<Self, StoreError> {
        Ok(Self { conn: store::open(db)? })
    }

    /// Every shadow's thing, name and version (what a full sync looks at).
    pub fn list_all(&self) -> Result<Vec<(String, String, u64)>, StoreFailure> {
        let mut statement = self
            .conn
            .prepare("SELECT thing, name, version FROM shadows ORDER BY thing, name")
            .map_err(sql("list shadows"))?;
        let rows = statement
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?.max(0) as u64)))
            .map_err(sql("list shadows"))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql("list shadows"))
    }

    /// The document of `id`, if it exists; [`StoreFailure::Corrupt`] if its row does not hold one.
    pub fn get(&self, id: &ShadowId) -> Result<Option<Document>, StoreFailure> {
        let row: Option<(String, i64)> = self
            .conn
            .query_row(
                "SELECT document, version FROM shadows WHERE thing = ?1 AND name = ?2",
                params![id.thing, id.name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(sql("read a shadow"))?;
        let Some((text, version)) = row else { return Ok(None) };
        let corrupt = |reason: String| StoreFailure::Corrupt {
            shadow: id.to_string(),
            version: u64::try_from(version).unwrap_or_default(),
            reason,
        };
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| corrupt(format!("not JSON: {e}")))?;
        Document::from_json(&value).map(Some).ok_or_else(|| corrupt("not a shadow document".to_owned()))
    }

    /// Stores `document` durably.
    pub fn put(&self, id: &ShadowId, document: &Document) -> Result<(), StoreFailure> {
        self.conn
            .execute(
                "INSERT INTO shadows(thing, name, document, version, updated_at) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT(thing, name) DO UPDATE SET document = excluded.document, version = excluded.version, \
                 updated_at = excluded.updated_at",
                params![
                    id.thing,
                    id.name,
                    document.to_json().to_string(),
                    i64::try_from(document.version).unwrap_or(i64::MAX),
                    store::now_secs()
                ],
            )
            .map_err(sql("write a shadow"))?;
        Ok(())
    }

    /// Deletes `id`; true if it existed.
    pub fn delete(&self, id: &ShadowId) -> Result<bool, StoreFailure> {
        let n = self
            .conn
            .execute("DELETE FROM shadows WHERE thing = ?1 AND name = ?2", params![id.thing, id.name])
            .map_err(sql("delete a shadow"))?;
        Ok(n > 0)
    }

    /// Named shadows of `thing`, sorted, from `offset`, at most `limit`.
    pub fn list_named(&self, thing: &str, offset: usize, limit: usize) -> Result<Vec<String>, StoreFailure> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM shadows WHERE thing = ?1 AND name != '' ORDER BY name LIMIT ?2 OFFSET ?3")
            .map_err(sql("list shadows"))?;
        let rows = stmt
            .query_map(
                params![thing, i64::try_from(limit).unwrap_or(i64::MAX), i64::try_from(offset).unwrap_or(i64::MAX)],
                |r| r.get::<_, String>(0),
            )
            .map_err(sql("list shadows"))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql("list shadows"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shadow::document::{DEFAULT_MAX_SIZE, apply_update, parse_update};

    #[test]
    fn an_unreadable_stored_document_is_an_error_not_an_absent_shadow() {
        let dir = tempfile::tempdir().unwrap();
        let store = ShadowStore::open(&dir.path().join("t.db")).unwrap();
        let id = ShadowId::new("t", "").unwrap();
        for (document, reason) in [("{not json", "not JSON"), ("[1, 2]", "not a shadow document")] {
            store
                .conn
                .execute(
                    "INSERT OR REPLACE INTO shadows(thing, name, document, version, updated_at) VALUES ('t', '', ?1, 7, 0)",
                    params![document],
                )
                .unwrap();
            match store.get(&id) {
                Err(StoreFailure::Corrupt { version: 7, reason: got, .. }) => assert!(got.contains(reason), "{got}"),
                other => panic!("{document}: {other:?}"),
            }
        }
        assert!(store.delete(&id).unwrap(), "an unreadable shadow can still be deleted");
        assert_eq!(store.get(&id).unwrap(), None);
    }

    #[test]
    fn documents_survive_reopening_and_names_list_in_pages() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let store = ShadowStore::open(&db).unwrap();
        let request = parse_update(br#"{"state": {"reported": {"color": "red"}}}"#).unwrap();
        let doc = apply_update(None, &request, 1, DEFAULT_MAX_SIZE).unwrap().document;
        for name in ["", "b", "a", "c"] {
            store.put(&ShadowId::new("t", name).unwrap(), &doc).unwrap();
        }
        drop(store);
        let store = ShadowStore::open(&db).unwrap();
        assert_eq!(store.get(&ShadowId::new("t", "").unwrap()).unwrap(), Some(doc));
        assert_eq!(store.list_named("t", 0, 2).unwrap(), vec!["a", "b"]);
        assert_eq!(store.list_named("t", 2, 2).unwrap(), vec!["c"]);
        assert!(store.delete(&ShadowId::new("t", "a").unwrap()).unwrap());
        assert!(!store.delete(&ShadowId::new("t", "a").unwrap()).unwrap());
        assert_eq!(store.get(&ShadowId::new("t", "a").unwrap()).unwrap(), None);
    }
}
