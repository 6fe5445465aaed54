//! What sync reports: its messages for the management API and the metrics, and their answers.

use actix::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ShadowSync;
use super::records::SyncRecord;

/// New `synchronize` and `rateLimits` (the shadow manager's whole configuration).
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct ConfigureSync(pub Value);

/// Where sync stands, for `turf shadow sync status`.
#[derive(Message)]
#[rtype(result = "Result<SyncStatus, String>")]
pub struct GetSyncStatus {
    /// One thing's shadows, or all.
    pub thing: Option<String>,
}

/// Sync's figures for `turf status` and `/metrics`.
#[derive(Message)]
#[rtype(result = "SyncSummary")]
pub struct GetSyncSummary;

/// Sync's figures, without the per-shadow records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncSummary {
    /// Whether any shadow is selected.
    pub enabled: bool,
    /// Whether the upstream connection is up.
    pub connected: bool,
    /// Shadows waiting for a sync.
    pub queued: usize,
    /// Shadows changed locally and not yet in the cloud.
    pub pending: u64,
    /// Shadows whose last sync failed.
    pub failed: u64,
    /// Since the host started.
    pub counts: SyncCounts,
}

/// What sync did since the host started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncCounts {
    /// Shadows synced.
    pub synced: u64,
    /// Version conflicts met (each re-read and merged).
    pub conflicts: u64,
    /// Syncs that failed (kept pending, tried again).
    pub failures: u64,
    /// Requests sent to the cloud.
    pub cloud_requests: u64,
    /// Changes not queued because the queue was full (the next full sync picks them up).
    #[serde(default)]
    pub dropped: u64,
    /// Shadows the cloud announced, left out because `maxShadows` are synced already.
    #[serde(default)]
    pub over_limit: u64,
}

/// `GET /v1/shadows/sync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStatus {
    /// Whether any shadow is selected.
    pub enabled: bool,
    /// `betweenDeviceAndCloud`, `deviceToCloud` or `cloudToDevice`.
    pub direction: String,
    /// Whether the upstream connection is up.
    pub connected: bool,
    /// Shadows waiting for a sync.
    pub queued: usize,
    /// Shadows being synced.
    pub running: usize,
    /// Cloud updates per second at most.
    pub outbound_rate: u32,
    /// Since the host started.
    pub counts: SyncCounts,
    /// The records (at most 1000).
    pub shadows: Vec<SyncRecord>,
}

impl ShadowSync {
    fn status(&self, thing: Option<&str>) -> Result<SyncStatus, String> {
        let mut shadows = self.records.list(thing).map_err(|e| e.to_string())?;
        shadows.truncate(1000);
        Ok(SyncStatus {
            enabled: !self.config.is_empty(),
            direction: self.config.direction.name().to_owned(),
            connected: self.connected_since.is_some(),
            queued: self.queue.len() + self.backlog.len(),
            running: self.running.len(),
            outbound_rate: self.config.outbound_rate,
            counts: SyncCounts { cloud_requests: self.cloud.sent(), ..self.counts.clone() },
            shadows,
        })
    }

    fn summary(&self) -> SyncSummary {
        let (pending, failed) = self.records.troubled().unwrap_or_else(|error| {
            tracing::warn!(%error, "cannot count pending shadow syncs");
            (0, 0)
        });
        SyncSummary {
            enabled: !self.config.is_empty(),
            connected: self.connected_since.is_some(),
            queued: self.queue.len() + self.backlog.len(),
            pending,
            failed,
            counts: SyncCounts { cloud_requests: self.cloud.sent(), ..self.counts.clone() },
        }
    }
}

impl Handler<GetSyncStatus> for ShadowSync {
    type Result = Result<SyncStatus, String>;

    fn handle(&mut self, msg: GetSyncStatus, _ctx: &mut Self::Context) -> Self::Result {
        self.status(msg.thing.as_deref())
    }
}

impl Handler<GetSyncSummary> for ShadowSync {
    type Result = MessageResult<GetSyncSummary>;

    fn handle(&mut self, _msg: GetSyncSummary, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.summary())
    }
}
