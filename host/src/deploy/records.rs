//! Persistence of deployments and of the deployed set (tables `deployments` and `components`).
//!
//! Owns those two tables. The deployed set is written in one transaction after a deployment
//! succeeds, so a restart comes back with the last successful deployment. Deployments that were
//! queued or running when the host stopped are marked failed on the next start.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::model::{DeploymentRecord, DeploymentState};
use super::plan::{Deployed, DeployedSet, recipe_file_name};
use super::recipe::{self, Platform};
use crate::layout::RootLayout;
use crate::store::{self, StoreError};

/// A failed database operation, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    /// Opening the database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A query failed.
    #[error("deployment records: cannot {action}: {source}")]
    Sql {
        /// What was being done.
        action: &'static str,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored record does not parse (reported, never read as "no such deployment").
    #[error("deployment records: the record of {id} is unreadable: {reason}")]
    Corrupt {
        /// The deployment id (or the row's position when even that is unknown).
        id: String,
        /// What serde said.
        reason: String,
    },
}

fn sql(action: &'static str) -> impl Fn(rusqlite::Error) -> RecordsError {
    move |source| RecordsError::Sql { action, source }
}

/// Deployment history and the deployed set, over their own connection.
pub struct Records {
    conn: Connection,
}

impl Records {
    /// Opens the records in the database at `db`.
    pub fn open(db: &Path) -> Result<Self, RecordsError> {
        Ok(Self { conn: store::open(db)? })
    }

    /// Stores a new deployment record.
    pub fn insert(&self, record: &DeploymentRecord) -> Result<(), RecordsError> {
        let seq: i64 = self
            .conn
            .query_row("SELECT coalesce(max(seq), 0) + 1 FROM deployments", [], |r| r.get(0))
            .map_err(sql("number a deployment"))?;
        self.conn
            .execute(
                "INSERT INTO deployments(id, seq, created_at, finished_at, state, request, outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    record.id,
                    seq,
                    record.created_at,
                    record.finished_at,
                    record.state.to_string(),
                    serde_json::to_string(&record.request).unwrap_or_default(),
                    serde_json::to_string(record).unwrap_or_default(),
                ],
            )
            .map_err(sql("insert a deployment"))?;
        Ok(())
    }

    /// Updates a deployment's state and outcome.
    pub fn update(&self, record: &DeploymentRecord) -> Result<(), RecordsError> {
        self.conn
            .execute(
                "UPDATE deployments SET state = ?2, finished_at = ?3, outcome = ?4 WHERE id = ?1",
                params![
                    record.id,
                    record.state.to_string(),
                    record.finished_at,
                    serde_json::to_string(record).unwrap_or_default()
                ],
            )
            .map_err(sql("update a deployment"))?;
        Ok(())
    }

    /// One deployment.
    pub fn get(&self, id: &str) -> Result<Option<DeploymentRecord>, RecordsError> {
        let text: Option<String> = self
            .conn
            .query_row("SELECT outcome FROM deployments WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .map_err(sql("read a deployment"))?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| RecordsError::Corrupt { id: id.to_owned(), reason: e.to_string() })
        })
        .transpose()
    }

    /// The newest `limit` deployments, newest first.
    pub fn list(&self, limit: usize) -> Result<Vec<DeploymentRecord>, RecordsError> {
        let mut stmt = self
            .conn
            .prepare("SELECT outcome FROM deployments ORDER BY seq DESC LIMIT ?1")
            .map_err(sql("list deployments"))?;
        let rows = stmt
            .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| r.get::<_, String>(0))
            .map_err(sql("list deployments"))?;
        let mut out = Vec::new();
        for (n, row) in rows.enumerate() {
            match serde_json::from_str(&row.map_err(sql("list deployments"))?) {
                Ok(record) => out.push(record),
                // One unreadable row must not hide the rest of the history (nor stop the host
                // starting, which lists it): it is left out, loudly.
                Err(error) => {
                    tracing::error!(row = n + 1, %error, "an unreadable deployment record is left out of the history")
                }
            }
        }
        Ok(out)
    }

    /// How many deployments are in each state (`SUCCEEDED`, `FAILED`, ...), over the whole
    /// history.
    pub fn count_by_state(&self) -> Result<BTreeMap<String, u64>, RecordsError> {
        let mut stmt = self
            .conn
            .prepare("SELECT state, count(*) FROM deployments GROUP BY state")
            .map_err(sql("count deployments"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(sql("count deployments"))?;
        rows.map(|row| row.map(|(state, n)| (state, u64::try_from(n).unwrap_or(0))))
            .collect::<Result<_, _>>()
            .map_err(sql("count deployments"))
    }

    /// Marks deployments left unfinished by a previous run as failed.
    pub fn fail_unfinished(&self) -> Result<usize, RecordsError> {
        let unfinished: Vec<DeploymentRecord> =
            self.list(usize::MAX)?.into_iter().filter(|r| !r.state.is_final()).collect();
        for mut record in unfinished.iter().cloned() {
            record.state = DeploymentState::Failed;
            record.finished_at = Some(store::now_secs());
            record.error = Some("the host stopped before this deployment finished".to_owned());
            self.update(&record)?;
        }
        Ok(unfinished.len())
    }

    /// Replaces the stored deployed set.
    pub fn save_set(&mut self, set: &DeployedSet) -> Result<(), RecordsError> {
        let tx = self.conn.transaction().map_err(sql("begin saving components"))?;
        tx.execute("DELETE FROM components", []).map_err(sql("clear components"))?;
        for (name, deployed) in set {
            tx.execute(
                "INSERT INTO components(name, version, root, config) VALUES (?1, ?2, ?3, ?4)",
                params![name, deployed.version.to_string(), deployed.root, deployed.config.to_string()],
            )
            .map_err(sql("save a component"))?;
        }
        tx.commit().map_err(sql("commit components"))
    }

    /// The stored deployed set, with recipes read from the installed store. A component whose
    /// recipe is gone or whose row is unreadable is left out with an error logged (a damaged row
    /// is also counted by `turf status`); the others come back.
    pub fn load_set(&self, layout: &RootLayout, platform: &Platform) -> Result<DeployedSet, RecordsError> {
        let mut stmt =
            self.conn.prepare("SELECT name, version, root, config FROM components").map_err(sql("read components"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, bool>(2)?, r.get::<_, String>(3)?))
            })
            .map_err(sql("read components"))?;
        let mut set = DeployedSet::new();
        for row in rows {
            let (name, version, root, config) = row.map_err(sql("read components"))?;
            let version = match semver::Version::parse(&version) {
                Ok(version) => version,
                Err(error) => {
                    tracing::error!(component = name, %error, "stored version unreadable; component not restored");
                    continue;
                }
            };
            let config: Value = match serde_json::from_str(&config) {
                Ok(config) => config,
                Err(error) => {
                    tracing::error!(component = name, %error, "stored configuration unreadable; component not restored");
                    continue;
                }
            };
            let recipe = if super::builtin::find(&name).is_some() {
                None
            } else {
                let path = layout.recipes_dir().join(recipe_file_name(&name, &version));
                match recipe::load(&path, platform) {
                    Ok(r) => Some(r),
                    Err(error) => {
                        tracing::warn!(component = name, %error, "installed recipe unusable; component not restored");
                        continue;
                    }
                }
            };
            set.insert(name, Deployed { version, root, config, recipe });
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_record_is_an_error_on_its_own_and_left_out_of_the_history() {
        let dir = tempfile::tempdir().unwrap();
        let records = Records::open(&dir.path().join("t.db")).unwrap();
        let good = DeploymentRecord {
            id: "good".to_owned(),
            state: crate::deploy::model::DeploymentState::Succeeded,
            created_at: 0,
            started_at: None,
            finished_at: None,
            took_ms: None,
            request: crate::deploy::model::DeploymentRequest::default(),
            error: None,
            detail: None,
            components: Vec::new(),
            progress: Vec::new(),
        };
        records.insert(&good).unwrap();
        records
            .conn
            .execute(
                "INSERT INTO deployments(id, seq, created_at, state, request, outcome) VALUES ('torn', 2, 0, 'SUCCEEDED', '{}', '{\"id\": 3')",
                [],
            )
            .unwrap();
        match records.get("torn") {
            Err(RecordsError::Corrupt { id, .. }) => assert_eq!(id, "torn"),
            other => panic!("{other:?}"),
        }
        assert!(records.get("missing").unwrap().is_none(), "an unknown id is not an error");
        let history = records.list(10).unwrap();
        assert_eq!(history.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["good"], "the rest is still listed");
    }
}
