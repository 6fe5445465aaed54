//! What a finished sync leaves: its record (synced, forgotten, half done, failed), a conflict
//! read again, and the failing shadows tried again with a growing backoff; a queue that
//! overflowed gets a full sync once the last one is done.

use std::time::Instant;

use actix::prelude::*;

use super::job::{Failed, Failure, Synced};
use super::records::SyncRecord;
use super::{MAX_BACKOFF, MAX_CONFLICTS, MAX_QUEUED, RETRY, ShadowSync};
use crate::shadow::topics::ShadowId;

impl ShadowSync {
    /// Records what a sync left and starts the next ones.
    pub(super) fn finish(&mut self, shadow: ShadowId, result: Result<Synced, Failed>, ctx: &mut Context<Self>) {
        self.running.remove(&shadow);
        self.admitted.remove(&shadow);
        if !matches!(result, Err(Failed { failure: Failure::Conflict, .. })) {
            self.conflicts_in_a_row.remove(&shadow);
        }
        if result.is_ok() {
            self.backoff.remove(&shadow);
        }
        let result = match result {
            Err(Failed { failure, local_written: Some(written) }) => {
                self.record_half_done(&shadow, written, &failure);
                Err(failure)
            }
            Err(Failed { failure, local_written: None }) => Err(failure),
            Ok(synced) => Ok(synced),
        };
        match result {
            Ok(Synced { base: None, .. }) => {
                self.counts.synced += 1;
                if let Err(error) = self.records.delete(&shadow.thing, &shadow.name) {
                    tracing::error!(%error, shadow = %shadow, "cannot forget a shadow's sync record");
                }
                if self.changed_while_running.remove(&shadow) {
                    self.enqueue_new(shadow); // recreated here meanwhile: looked at again
                }
            }
            Ok(Synced { base: Some(base), local_version, cloud_version }) => {
                self.counts.synced += 1;
                // A local change that arrived while this ran keeps its pending mark.
                let pending = self.changed_while_running.remove(&shadow);
                let synced = SyncRecord {
                    base: Some(base),
                    local_version,
                    cloud_version,
                    synced_at: Some(crate::store::now_secs()),
                    pending,
                    last_error: None,
                    ..SyncRecord::new(&shadow.thing, &shadow.name)
                };
                if let Err(error) = self.records.put(&synced) {
                    tracing::error!(%error, shadow = %shadow, "cannot record a sync");
                }
                tracing::debug!(shadow = %shadow, local_version, cloud_version, "shadow synced");
            }
            Err(Failure::Conflict) => self.conflicted(shadow),
            Err(failure) => self.failed(shadow, &failure),
        }
        self.pump(ctx);
    }

    /// A version conflict: both sides are read again, up to [`MAX_CONFLICTS`] in a row.
    fn conflicted(&mut self, shadow: ShadowId) {
        self.counts.conflicts += 1;
        let in_a_row = self.conflicts_in_a_row.entry(shadow.clone()).or_insert(0);
        *in_a_row += 1;
        if *in_a_row < MAX_CONFLICTS {
            tracing::debug!(shadow = %shadow, "version conflict: reading both sides again");
            self.enqueue_new(shadow);
        } else {
            self.conflicts_in_a_row.remove(&shadow);
            let gave_up = format!("{MAX_CONFLICTS} version conflicts in a row; tried again later");
            self.failed(shadow, &Failure::Refused(gave_up));
        }
    }

    /// Records a sync that updated the local side and then failed in the cloud: the new local
    /// version over the cloud's state as read, pending (see [`Failed::local_written`]).
    fn record_half_done(&mut self, shadow: &ShadowId, written: Synced, failure: &Failure) {
        let record = SyncRecord {
            base: written.base,
            local_version: written.local_version,
            cloud_version: written.cloud_version,
            pending: true,
            last_error: Some(failure.to_string()),
            ..SyncRecord::new(&shadow.thing, &shadow.name)
        };
        if let Err(error) = self.records.put(&record) {
            tracing::error!(%error, shadow = %shadow, "cannot record a half-done sync");
        }
    }

    /// Records a failed sync: the shadow stays pending and is tried again after its backoff
    /// ([`RETRY`], doubling up to [`MAX_BACKOFF`]).
    fn failed(&mut self, shadow: ShadowId, failure: &Failure) {
        self.counts.failures += 1;
        self.changed_while_running.remove(&shadow);
        let wait = self.backoff.get(&shadow).map_or(RETRY, |(_, wait)| (*wait * 2).min(MAX_BACKOFF));
        self.backoff.insert(shadow.clone(), (Instant::now() + wait, wait));
        tracing::warn!(shadow = %shadow, %failure, "shadow sync failed; it stays pending");
        let mut kept = self
            .records
            .get(&shadow.thing, &shadow.name)
            .ok()
            .flatten()
            .unwrap_or_else(|| SyncRecord::new(&shadow.thing, &shadow.name));
        kept.last_error = Some(failure.to_string());
        kept.pending = kept.pending || kept.base.is_none();
        if let Err(error) = self.records.put(&kept) {
            tracing::error!(%error, shadow = %shadow, "cannot record a failed sync");
        }
    }

    pub(super) fn retry_failed(&mut self, ctx: &mut Context<Self>) {
        if self.connected_since.is_none() {
            return;
        }
        if self.overflowed && self.backlog.is_empty() && self.queue.len() < MAX_QUEUED / 2 {
            self.overflowed = false;
            tracing::info!("changes were dropped on a full sync queue: full shadow sync");
            self.full_sync(ctx);
        }
        let now = Instant::now();
        self.backoff.retain(|_, (at, _)| at.elapsed() < MAX_BACKOFF * 2);
        if let Ok(records) = self.records.list(None) {
            for r in records.into_iter().filter(|r| r.last_error.is_some() || r.pending) {
                let shadow = ShadowId { thing: r.thing, name: r.name };
                let waiting = self.backoff.get(&shadow).is_some_and(|(at, _)| *at > now);
                if !waiting && self.config.selects(&shadow.thing, &shadow.name) {
                    self.enqueue_new(shadow);
                }
            }
        }
        self.pump(ctx);
    }
}
