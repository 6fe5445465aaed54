//! The census of unreadable rows that `turf status` and `/metrics` report, cached: it reads
//! every stored JSON document, so it runs on a read-only connection (no write lock, no schema
//! change), at most once a minute for scrapes, and once for scrapes that arrive together.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::web;

use crate::store::{self, UnreadableRows};

/// How long a census of unreadable rows is reused by scrapes: it reads every stored JSON
/// document, so a scrape every few seconds must not redo it each time (`turf status` always
/// takes a fresh one).
const CENSUS_EVERY: Duration = Duration::from_secs(60);

/// A census of unreadable rows (or why it could not be taken).
pub type Census = Result<Vec<UnreadableRows>, String>;

/// The last census of unreadable rows, and when it was taken; one census at a time.
#[derive(Default)]
pub struct CensusCache {
    last: Mutex<Option<(Instant, Census)>>,
    taking: tokio::sync::Mutex<()>,
}

impl CensusCache {
    /// The last census unless it is older than [`CENSUS_EVERY`].
    fn recent(&self) -> Option<Census> {
        let cached = self.last.lock().ok()?;
        cached.as_ref().filter(|(at, _)| at.elapsed() < CENSUS_EVERY).map(|(_, census)| census.clone())
    }

    /// Unreadable rows per table; unless `fresh`, counted at most every [`CENSUS_EVERY`]. Scrapes
    /// arriving together wait for one census (read-only, no write lock) and share it.
    pub(super) async fn get(&self, database: PathBuf, fresh: bool) -> Census {
        if !fresh && let Some(census) = self.recent() {
            return census;
        }
        let _taking = self.taking.lock().await;
        if !fresh && let Some(census) = self.recent() {
            return census;
        }
        let census = web::block(move || {
            let conn = store::open_read_only(&database).map_err(|e| e.to_string())?;
            store::census(&conn).map_err(|e| format!("cannot check {} for unreadable rows: {e}", database.display()))
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        if let Ok(mut cached) = self.last.lock() {
            *cached = Some((Instant::now(), census.clone()));
        }
        census
    }
}
