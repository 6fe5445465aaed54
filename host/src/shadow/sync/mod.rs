//! Shadow sync: the `synchronize` shadows kept in step with the upstream broker (AWS IoT Core or
//! any broker serving the AWS IoT shadow MQTT API), offline first.
//!
//! The `ShadowSync` actor runs beside the shadow manager and never stands in its way: local
//! reads and writes go to the manager as before and never wait for the cloud. It learns of
//! local changes from the manager's own `update/documents` and `delete/accepted` on the bus,
//! and of cloud changes from the same topics on the upstream connection; each change queues
//! its shadow (one entry per shadow, so bursts coalesce). A queued shadow is synced by a job
//! ([`job`]): read the cloud side (`get`, unless the change itself carried it) and the local
//! side, decide ([`decide`]: merge over the last synced state, deletes), apply to each side
//! with its version (a 409 re-reads and merges again, never loops), and record the result in
//! `turf.db` ([`records`]). A local change is recorded `pending` before anything else, so it
//! survives a restart and an outage of any length; a full sync of every selected shadow runs
//! at start and each time the upstream connection comes back. Requests to the cloud carry a
//! `clientToken` (`turf-sync-N`) that correlates the answer and lets each side's echo of a
//! sync write be told apart from a real change; they are paced by a token bucket
//! (`maxOutboundSyncUpdatesPerSecond`). Nothing is ever decided without an answer from the
//! cloud, so a cloud that cannot be reached never deletes or rolls back local state.
//!
//! - `config`: `synchronize` (pure). `merge`: the three-way merge and patches (pure).
//! - `decide`: what one sync does (pure). `bucket`: the outbound rate (pure).
//! - `records`: the `shadow_sync` table. `job`: one shadow's sync against both sides.
//! - `events`: changes heard of on the bus and upstream. `status`: what it reports.

pub mod bucket;
pub mod config;
pub mod decide;
mod events;
mod job;
pub mod merge;
pub mod records;
mod status;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;

use self::bucket::TokenBucket;
use self::config::SyncConfig;
use self::decide::Side;
use self::job::{Cloud, Failure, Synced};
use self::records::{SyncRecord, SyncRecords};
pub use self::status::{ConfigureSync, GetSyncStatus, GetSyncSummary, SyncCounts, SyncStatus, SyncSummary};
use super::topics::ShadowId;
use super::{ListShadows, ShadowRequest};
use crate::pubsub::{BusHandle, Subscribe};
use crate::upstream::UpstreamHandle;

/// Who sync subscribes as, on the bus and upstream.
pub const SUBSCRIBER: &str = "aws.greengrass.ShadowManager/sync";

/// How client tokens of sync's own requests begin (for people reading logs; sync tells its own
/// writes apart by the exact token, see `job::Echoes`).
pub const TOKEN_PREFIX: &str = "turf-sync-";

/// Shadows waiting for a sync at most.
pub const MAX_QUEUED: usize = 10_000;

/// Version conflicts in a row after which a shadow waits for the next retry (a side that
/// keeps changing, or a cloud that answers 409 to everything, cannot keep sync busy).
const MAX_CONFLICTS: u32 = 3;

/// Shadows synced at once.
const MAX_RUNNING: usize = 8;

/// How often the upstream connection's state is looked at.
const POLL: Duration = Duration::from_secs(1);

/// How often shadows whose last sync failed are tried again (while connected).
const RETRY: Duration = Duration::from_secs(15);

/// The manager's own answers that say a local shadow changed.
const LOCAL_CHANGES: [&str; 4] = [
    "$aws/things/+/shadow/update/documents",
    "$aws/things/+/shadow/name/+/update/documents",
    "$aws/things/+/shadow/delete/accepted",
    "$aws/things/+/shadow/name/+/delete/accepted",
];

/// What a queued shadow's sync starts from.
#[derive(Debug, Clone)]
enum Start {
    /// Ask the cloud for its side.
    Fetch,
    /// The cloud's side, from the change it announced.
    Known(Side),
}

/// The shadow sync service.
pub struct ShadowSync {
    core_thing: String,
    config: SyncConfig,
    records: SyncRecords,
    local: Recipient<ShadowRequest>,
    list_local: Recipient<ListShadows>,
    bus: BusHandle,
    upstream: UpstreamHandle,
    cloud: Cloud,
    connected_since: Option<i64>,
    queue: BTreeMap<ShadowId, Start>,
    running: HashSet<ShadowId>,
    /// Running shadows that changed locally meanwhile.
    changed_while_running: HashSet<ShadowId>,
    /// Version conflicts met by each shadow's last syncs.
    conflicts_in_a_row: HashMap<ShadowId, u32>,
    counts: SyncCounts,
}

impl ShadowSync {
    /// A sync service over `records`, talking to the local manager and the upstream link.
    pub fn new(
        core_thing: String,
        records: SyncRecords,
        local: Recipient<ShadowRequest>,
        list_local: Recipient<ListShadows>,
        bus: BusHandle,
        upstream: UpstreamHandle,
    ) -> Self {
        let cloud = Cloud {
            publish: upstream.request.clone(),
            waiting: Arc::default(),
            bucket: Arc::new(Mutex::new(TokenBucket::new(config::DEFAULT_OUTBOUND_RATE, Instant::now()))),
            sent: Arc::default(),
            next_token: Arc::default(),
            echoes: Arc::default(),
            local_echoes: Arc::default(),
        };
        Self {
            core_thing,
            config: SyncConfig::default(),
            records,
            local,
            list_local,
            bus,
            upstream,
            cloud,
            connected_since: None,
            queue: BTreeMap::new(),
            running: HashSet::new(),
            changed_while_running: HashSet::new(),
            conflicts_in_a_row: HashMap::new(),
            counts: SyncCounts::default(),
        }
    }

    /// Queues `shadow` (replacing what it was queued with); past [`MAX_QUEUED`] shadows a new
    /// one is dropped and counted: a hostile cloud announcing endless shadows cannot grow the
    /// host, and a full sync picks up what was dropped.
    fn enqueue(&mut self, shadow: ShadowId, start: Start) {
        if self.queue.len() >= MAX_QUEUED && !self.queue.contains_key(&shadow) {
            self.counts.dropped += 1;
            return;
        }
        self.queue.insert(shadow, start);
    }

    /// Queues `shadow` to be read on both sides, unless it is queued already.
    fn enqueue_new(&mut self, shadow: ShadowId) {
        if !self.queue.contains_key(&shadow) {
            self.enqueue(shadow, Start::Fetch);
        }
    }

    /// Queues every shadow that may need a sync: every record, every shadow named in the
    /// configuration, every selected local shadow.
    fn full_sync(&mut self, ctx: &mut Context<Self>) {
        if self.config.is_empty() {
            return;
        }
        match self.records.list(None) {
            Ok(records) => {
                let selected: Vec<ShadowId> = records
                    .into_iter()
                    .filter(|r| self.config.selects(&r.thing, &r.name))
                    .map(|r| ShadowId { thing: r.thing, name: r.name })
                    .collect();
                for shadow in selected {
                    self.enqueue_new(shadow);
                }
            }
            Err(error) => tracing::error!(%error, "cannot read the shadow sync records"),
        }
        let named: Vec<ShadowId> =
            self.config.named_shadows().filter_map(|(thing, name)| ShadowId::new(thing, name).ok()).collect();
        for shadow in named {
            self.enqueue_new(shadow);
        }
        let listing = self.list_local.send(ListShadows);
        ctx.spawn(listing.into_actor(self).map(|listed, sync, _ctx| match listed {
            Ok(Ok(shadows)) => {
                let selected: Vec<ShadowId> = shadows
                    .into_iter()
                    .filter(|(t, n, _)| sync.config.selects(t, n))
                    .filter_map(|(t, n, _)| ShadowId::new(&t, &n).ok())
                    .collect();
                for shadow in selected {
                    sync.enqueue_new(shadow);
                }
            }
            Ok(Err(error)) => tracing::error!(%error, "cannot list local shadows for a full sync"),
            Err(error) => tracing::error!(%error, "the shadow manager is gone"),
        }));
        tracing::info!(queued = self.queue.len(), "shadow full sync");
    }

    /// Starts queued syncs while connected, up to [`MAX_RUNNING`], one per shadow at a time.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.connected_since.is_none() {
            return;
        }
        while self.running.len() < MAX_RUNNING {
            let Some(shadow) = self.queue.keys().find(|s| !self.running.contains(*s)).cloned() else { return };
            let Some(start) = self.queue.remove(&shadow) else { return };
            let record = match self.records.get(&shadow.thing, &shadow.name) {
                Ok(record) => record,
                Err(error) => {
                    tracing::error!(%error, "cannot read a shadow sync record");
                    continue;
                }
            };
            self.running.insert(shadow.clone());
            let known = match start {
                Start::Fetch => None,
                Start::Known(side) => Some(side),
            };
            let work =
                job::sync(self.cloud.clone(), self.local.clone(), shadow.clone(), record, known, self.config.direction);
            ctx.spawn(work.into_actor(self).map(move |result, sync, ctx| sync.finish(shadow, result, ctx)));
        }
    }

    fn finish(&mut self, shadow: ShadowId, result: Result<Synced, Failure>, ctx: &mut Context<Self>) {
        self.running.remove(&shadow);
        if !matches!(result, Err(Failure::Conflict)) {
            self.conflicts_in_a_row.remove(&shadow);
        }
        match result {
            Ok(Synced { base: None, .. }) => {
                self.counts.synced += 1;
                if let Err(error) = self.records.delete(&shadow.thing, &shadow.name) {
                    tracing::error!(%error, shadow = %shadow, "cannot forget a shadow's sync record");
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
            Err(Failure::Conflict) => {
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
            Err(failure) => self.failed(shadow, &failure),
        }
        self.pump(ctx);
    }

    /// Records a failed sync: the shadow stays pending and is tried again every [`RETRY`].
    fn failed(&mut self, shadow: ShadowId, failure: &Failure) {
        self.counts.failures += 1;
        self.changed_while_running.remove(&shadow);
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

    /// A local shadow changed (not by sync): mark it pending, durably, and queue it.
    fn local_change(&mut self, shadow: ShadowId, ctx: &mut Context<Self>) {
        let mut record = match self.records.get(&shadow.thing, &shadow.name) {
            Ok(record) => record.unwrap_or_else(|| SyncRecord::new(&shadow.thing, &shadow.name)),
            Err(error) => {
                tracing::error!(%error, "cannot read a shadow sync record");
                SyncRecord::new(&shadow.thing, &shadow.name)
            }
        };
        if self.running.contains(&shadow) {
            self.changed_while_running.insert(shadow.clone());
        }
        if self.config.direction.upward() && !record.pending {
            record.pending = true;
            if let Err(error) = self.records.put(&record) {
                tracing::error!(%error, shadow = %shadow, "cannot mark a shadow pending");
            }
        }
        self.enqueue(shadow, Start::Fetch);
        self.pump(ctx);
    }

    fn retry_failed(&mut self, ctx: &mut Context<Self>) {
        if self.connected_since.is_none() {
            return;
        }
        if let Ok(records) = self.records.list(None) {
            for r in records.into_iter().filter(|r| r.last_error.is_some() || r.pending) {
                if self.config.selects(&r.thing, &r.name) {
                    self.enqueue_new(ShadowId { thing: r.thing, name: r.name });
                }
            }
        }
        self.pump(ctx);
    }
}

impl Actor for ShadowSync {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        for filter in LOCAL_CHANGES {
            self.bus.subscribe.do_send(Subscribe {
                subscriber: SUBSCRIBER.to_owned(),
                filter: filter.to_owned(),
                mode: None,
                recipient: ctx.address().recipient(),
            });
        }
        ctx.run_interval(POLL, Self::check_upstream);
        ctx.run_interval(RETRY, Self::retry_failed);
    }
}

impl Handler<ConfigureSync> for ShadowSync {
    type Result = Result<(), String>;

    fn handle(&mut self, msg: ConfigureSync, ctx: &mut Self::Context) -> Self::Result {
        let config = SyncConfig::from_config(&msg.0, &self.core_thing)?;
        if !config.is_empty() && !self.upstream.configured {
            return Err("synchronize: shadows are synced over the upstream (IotCore) connection, and none is \
                        configured; give turf run --upstream (or [upstream] in config.toml), or remove synchronize"
                .to_owned());
        }
        let changed = config != self.config;
        if let Ok(mut bucket) = self.cloud.bucket.lock() {
            *bucket = TokenBucket::new(config.outbound_rate, Instant::now());
        }
        self.config = config;
        if changed {
            self.subscribe_upstream(ctx);
            // A new selection or direction: everything selected is looked at again.
            self.connected_since = None;
            self.check_upstream(ctx);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
