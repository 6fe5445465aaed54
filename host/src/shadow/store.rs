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
#[error("shadow store: cannot {action}: {source}")]
pub struct StoreFailure {
    action: &'static str,
    #[source]
    source: rusqlite::Error,
}

fn sql(action: &'static str) -> impl Fn(rusqlite::Error) -> StoreFailure {
    move |source| StoreFailure { action, source }
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

    /// The document of `id`, if it exists.
    pub fn get(&self, id: &ShadowId) -> Result<Option<Document>, StoreFailure> {
        let text: Option<String> = self
            .conn
            .query_row("SELECT document FROM shadows WHERE thing = ?1 AND name = ?2", params![id.thing, id.name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql("read a shadow"))?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()).and_then(|v| Document::from_json(&v)))
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
