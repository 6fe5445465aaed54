//! The SQLite database `turf.db`: opening, pragmas and schema migrations.
//!
//! Owns the schema. Every service that keeps state opens its own [`rusqlite::Connection`] with
//! [`open`] and touches only its own tables (device registry: `things`, `certificates`,
//! `trusted_cas`; deployments: `deployments`, `components`; connectivity: `settings`; shadows:
//! `shadows`; upstream: `spool`; broker: `retained`). WAL mode lets those connections work
//! side by side, and also lets `turf device add` write while the host is stopped. Never holds a connection
//! across services.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A failure to open or migrate the database.
#[derive(Debug, Error)]
pub enum StoreError {
    /// SQLite refused to open or migrate the file.
    #[error("cannot open database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The file was written by a newer Turf.
    #[error("database {path} has schema version {found}, newer than this turf understands ({known}); upgrade turf")]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Schema version found in the file.
        found: i64,
        /// Newest schema version this build knows.
        known: i64,
    },
}

/// Schema migrations, applied in order; `PRAGMA user_version` counts how many ran.
const MIGRATIONS: &[&str] = &[
    // 1: device registry and deployments.
    "CREATE TABLE things (
         name        TEXT PRIMARY KEY,
         created_at  INTEGER NOT NULL
     );
     CREATE TABLE certificates (
         id          TEXT PRIMARY KEY,          -- SHA-256 of the DER, hex
         thing       TEXT NOT NULL REFERENCES things(name) ON DELETE CASCADE,
         serial      TEXT NOT NULL,             -- hex, no leading zeros
         subject     TEXT NOT NULL,             -- RFC 4514 as x509-parser prints it
         pem         TEXT NOT NULL,
         created_at  INTEGER NOT NULL
     );
     CREATE INDEX certificates_by_thing ON certificates(thing);
     CREATE TABLE deployments (
         id          TEXT PRIMARY KEY,
         seq         INTEGER NOT NULL UNIQUE,
         created_at  INTEGER NOT NULL,
         finished_at INTEGER,
         state       TEXT NOT NULL,
         request     TEXT NOT NULL,             -- JSON
         outcome     TEXT                       -- JSON
     );
     CREATE TABLE components (
         name        TEXT PRIMARY KEY,
         version     TEXT NOT NULL,
         root        INTEGER NOT NULL,
         config      TEXT NOT NULL              -- JSON, the effective configuration
     );",
    // 2: association with this core, CAs trusted for device certificates, small settings.
    "ALTER TABLE things ADD COLUMN associated INTEGER NOT NULL DEFAULT 0;
     CREATE TABLE trusted_cas (
         id          TEXT PRIMARY KEY,          -- SHA-256 of the DER, hex
         subject     TEXT NOT NULL,
         pem         TEXT NOT NULL,
         created_at  INTEGER NOT NULL
     );
     CREATE TABLE settings (
         key         TEXT PRIMARY KEY,
         value       TEXT NOT NULL              -- JSON
     );",
    // 3: device shadows.
    "CREATE TABLE shadows (
         thing       TEXT NOT NULL,
         name        TEXT NOT NULL,             -- '' for the classic shadow
         document    TEXT NOT NULL,             -- JSON: state, metadata, version
         version     INTEGER NOT NULL,
         updated_at  INTEGER NOT NULL,
         PRIMARY KEY (thing, name)
     );",
    // 4: messages waiting for the upstream broker, oldest first.
    "CREATE TABLE spool (
         seq         INTEGER PRIMARY KEY AUTOINCREMENT,
         topic       TEXT NOT NULL,
         payload     BLOB NOT NULL,
         retain      INTEGER NOT NULL,
         queued_at   INTEGER NOT NULL
     );",
    // 5: the broker's retained messages, one per topic.
    "CREATE TABLE retained (
         topic       TEXT PRIMARY KEY,
         payload     BLOB NOT NULL,
         qos         INTEGER NOT NULL,
         publisher   TEXT NOT NULL,             -- client id
         properties  TEXT,                      -- MQTT 5 publish properties, JSON
         expires_at  INTEGER                    -- unix seconds; NULL: never
     );",
    // 6: MQTT 5 properties of spooled upstream messages (JSON; NULL: none).
    "ALTER TABLE spool ADD COLUMN properties TEXT;",
    // 7: shadow sync with the upstream: the state both sides last agreed on, per shadow.
    "CREATE TABLE shadow_sync (
         thing         TEXT NOT NULL,
         name          TEXT NOT NULL,           -- '' for the classic shadow
         base          TEXT,                    -- JSON {desired, reported} last synced; NULL: never
         local_version INTEGER NOT NULL,        -- the local shadow's version at that sync
         cloud_version INTEGER NOT NULL,        -- the cloud shadow's version at that sync
         synced_at     INTEGER,
         pending       INTEGER NOT NULL,        -- 1: changed locally since, not yet in the cloud
         last_error    TEXT,
         PRIMARY KEY (thing, name)
     );",
];

/// Opens (creating if needed) the database at `path` and brings its schema up to date.
pub fn open(path: &Path) -> Result<Connection, StoreError> {
    let err = |source| StoreError::Open { path: path.to_path_buf(), source };
    let mut conn = Connection::open(path).map_err(err)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
    conn.pragma_update(None, "synchronous", "FULL").map_err(err)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(err)?;
    // 512 KiB of page cache per connection (SQLite's default is 2 MiB): the tables are small and
    // each service keeps its own connection, so the default mostly holds memory idle.
    conn.pragma_update(None, "cache_size", -512).map_err(err)?;
    migrate(&mut conn, path)?;
    Ok(conn)
}

/// Opens the database at `path` to read only (no schema change, no write lock): for counting
/// what is in it while the services that own its tables run.
pub fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    let err = |source| StoreError::Open { path: path.to_path_buf(), source };
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(err)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let err = |source| StoreError::Open { path: path.to_path_buf(), source };
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(err)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(err)?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::TooNew { path: path.to_path_buf(), found: version, known });
    }
    for migration in MIGRATIONS.iter().skip(usize::try_from(version).unwrap_or(0)) {
        tx.execute_batch(migration).map_err(err)?;
    }
    tx.pragma_update(None, "user_version", known).map_err(err)?;
    tx.commit().map_err(err)
}

/// Rows whose stored JSON does not parse as what its table holds: `(table, key, condition)`.
/// Every service reports such a row as an error when it meets it; the census finds them all.
const JSON_CHECKS: &[(&str, &str, &str)] = &[
    (
        "deployments",
        "id",
        "CASE WHEN json_valid(request) THEN json_type(request) <> 'object' ELSE 1 END \
         OR (outcome IS NOT NULL AND NOT json_valid(outcome))",
    ),
    ("components", "name", "NOT json_valid(config)"),
    ("settings", "key", "NOT json_valid(value)"),
    (
        "shadows",
        "thing || '/' || name",
        "CASE WHEN json_valid(document) THEN json_type(document) <> 'object' ELSE 1 END",
    ),
    ("retained", "topic", "properties IS NOT NULL AND NOT json_valid(properties)"),
    ("shadow_sync", "thing || '/' || name", "base IS NOT NULL AND NOT json_valid(base)"),
    ("spool", "seq", "properties IS NOT NULL AND NOT json_valid(properties)"),
];

/// How many examples of unreadable rows the census names per table.
const EXAMPLES: usize = 3;

/// Unreadable rows of one table, for `turf status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadableRows {
    /// The table.
    pub table: String,
    /// How many of its rows are unreadable.
    pub rows: u64,
    /// The keys of the first few.
    pub examples: Vec<String>,
}

/// Counts, per table, the rows whose stored JSON does not parse (tables without any are left
/// out). Read-only; safe beside the services' own connections.
pub fn census(conn: &Connection) -> Result<Vec<UnreadableRows>, rusqlite::Error> {
    let mut out = Vec::new();
    for (table, key, bad) in JSON_CHECKS {
        let mut keys = conn.prepare(&format!("SELECT CAST({key} AS TEXT) FROM {table} WHERE {bad}"))?;
        let mut rows = 0_u64;
        let mut examples = Vec::new();
        let mut found = keys.query([])?;
        while let Some(row) = found.next()? {
            rows += 1;
            if examples.len() < EXAMPLES {
                examples.push(row.get::<_, String>(0)?);
            }
        }
        if rows > 0 {
            out.push(UnreadableRows { table: (*table).to_owned(), rows, examples });
        }
    }
    Ok(out)
}

/// Seconds since the Unix epoch, the timestamp format of every table.
pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `time` as seconds since the epoch.
pub fn secs_since_epoch(time: std::time::SystemTime) -> i64 {
    chrono::DateTime::<chrono::Utc>::from(time).timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_twice_keeps_the_schema_and_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = open(&path).unwrap();
        conn.execute("INSERT INTO things(name, created_at) VALUES ('a', 1)", []).unwrap();
        drop(conn);
        let conn = open(&path).unwrap();
        let n: i64 = conn.query_row("SELECT count(*) FROM things", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn the_census_finds_every_unreadable_row_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("t.db")).unwrap();
        assert_eq!(census(&conn).unwrap(), Vec::new(), "an empty database is clean");
        let shadow = "INSERT INTO shadows(thing, name, document, version, updated_at) VALUES (?1, '', ?2, 1, 0)";
        for (thing, document) in [("ok", "{\"state\":{}}"), ("cut", "{\"state\":"), ("list", "[1]"), ("text", "hi")] {
            conn.execute(shadow, [thing, document]).unwrap();
        }
        conn.execute("INSERT INTO settings(key, value) VALUES ('a', '{}'), ('b', '{')", []).unwrap();
        let retained =
            "INSERT INTO retained(topic, payload, qos, publisher, properties) VALUES (?1, x'00', 1, 'c', ?2)";
        conn.execute(retained, ["t/1", "{}"]).unwrap();
        conn.execute(retained, rusqlite::params!["t/2", None::<String>]).unwrap();
        conn.execute(retained, ["t/3", "{\"a\""]).unwrap();
        let found = census(&conn).unwrap();
        let summary: Vec<(&str, u64, Vec<&str>)> =
            found.iter().map(|u| (u.table.as_str(), u.rows, u.examples.iter().map(String::as_str).collect())).collect();
        assert_eq!(
            summary,
            vec![
                ("settings", 1, vec!["b"]),
                ("shadows", 3, vec!["cut/", "list/", "text/"]),
                ("retained", 1, vec!["t/3"]),
            ]
        );
    }

    #[test]
    fn a_newer_schema_is_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = open(&path).unwrap_err();
        assert!(err.to_string().contains("schema version 99"), "{err}");
    }
}
