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
//! `clientToken` (`turf-sync-<instance>-N`) that correlates the answer (taken only on that
//! request's own answer topics) and lets each side's echo of a sync write be told apart from a
//! real change; they are paced by a token bucket (`maxOutboundSyncUpdatesPerSecond`). Nothing
//! is ever decided without an answer from the cloud, so a cloud that cannot be reached never
//! deletes or rolls back local state; a cloud announcement older than what sync last saw
//! (a duplicate, one overtaken while a sync ran) is read again rather than believed.
//!
//! - `config`: `synchronize` (pure). `merge`: the three-way merge and patches (pure).
//! - `decide`: what one sync does (pure). `bucket`: the outbound rate (pure).
//! - `records`: the `shadow_sync` table. `job`: one shadow's sync against both sides.
//! - `echoes`: sync's own writes told apart from real changes.
//! - `events`: changes heard of on the bus and upstream. `outcome`: records, retries, backoff.
//! - `status`: what it reports.

pub mod bucket;
pub mod config;
pub mod decide;
mod echoes;
mod events;
mod job;
pub mod merge;
mod outcome;
pub mod records;
mod status;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;

use self::bucket::TokenBucket;
use self::config::SyncConfig;
use self::decide::Side;
use self::job::Cloud;
use self::records::SyncRecords;
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

/// How often shadows whose last sync failed are looked at (while connected); a shadow that
/// keeps failing waits twice as long each time, up to [`MAX_BACKOFF`].
const RETRY: Duration = Duration::from_secs(15);

/// Longest wait before a failing shadow is tried again.
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);

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
    /// Failing shadows: when each is tried again, and its next wait.
    backoff: HashMap<ShadowId, (Instant, Duration)>,
    /// Shadows the cloud announced, admitted under `maxShadows`, not yet recorded.
    admitted: HashSet<ShadowId>,
    /// Shadows a full sync has still to queue, in reverse name order.
    backlog: Vec<ShadowId>,
    /// A change was dropped on a full queue: a full sync once the backlog is done.
    overflowed: bool,
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
            instance: Cloud::new_instance(),
            echoes: Arc::default(),
            local_echoes: Arc::default(),
            local_deletes: Arc::default(),
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
            backoff: HashMap::new(),
            admitted: HashSet::new(),
            backlog: Vec::new(),
            overflowed: false,
            counts: SyncCounts::default(),
        }
    }

    /// Queues `shadow`; past [`MAX_QUEUED`] shadows a new one is dropped and counted: a hostile
    /// cloud announcing endless shadows cannot grow the host, and a full sync once the queue has
    /// room again picks up what was dropped. A read (`Fetch`) replaces what a shadow was queued
    /// with; an announced cloud side replaces only an older announcement.
    fn enqueue(&mut self, shadow: ShadowId, start: Start) {
        let Some(queued) = self.queue.get(&shadow) else {
            if self.queue.len() >= MAX_QUEUED {
                self.counts.dropped += 1;
                self.overflowed = true;
                self.admitted.remove(&shadow);
                return;
            }
            self.queue.insert(shadow, start);
            return;
        };
        let newer = match (queued, &start) {
            (_, Start::Fetch) => true,
            (Start::Known(Side::Present(_, old)), Start::Known(Side::Present(_, new))) => new > old,
            _ => false,
        };
        if newer {
            self.queue.insert(shadow, start);
        }
    }

    /// Queues `shadow` to be read on both sides, unless it is queued already.
    fn enqueue_new(&mut self, shadow: ShadowId) {
        if !self.queue.contains_key(&shadow) {
            self.enqueue(shadow, Start::Fetch);
        }
    }

    /// Syncs every shadow that may need it: every record, every shadow named in the
    /// configuration, every selected local shadow. They wait in the backlog, in name order, and
    /// enter the queue as it has room, so any number of shadows is synced once each, and the
    /// queue keeps room for changes as they happen.
    fn full_sync(&mut self, ctx: &mut Context<Self>) {
        if self.config.is_empty() {
            return;
        }
        let mut shadows = Vec::new();
        match self.records.list(None) {
            Ok(records) => shadows.extend(
                records
                    .into_iter()
                    .filter(|r| self.config.selects(&r.thing, &r.name))
                    .map(|r| ShadowId { thing: r.thing, name: r.name }),
            ),
            Err(error) => tracing::error!(%error, "cannot read the shadow sync records"),
        }
        shadows.extend(self.config.named_shadows().filter_map(|(thing, name)| ShadowId::new(thing, name).ok()));
        self.backlog.clear();
        self.add_to_backlog(shadows);
        let listing = self.list_local.send(ListShadows);
        ctx.spawn(listing.into_actor(self).map(|listed, sync, ctx| match listed {
            Ok(Ok(shadows)) => {
                let selected: Vec<ShadowId> = shadows
                    .into_iter()
                    .filter(|(t, n, _)| sync.config.selects(t, n))
                    .filter_map(|(t, n, _)| ShadowId::new(&t, &n).ok())
                    .collect();
                sync.add_to_backlog(selected);
                sync.pump(ctx);
            }
            Ok(Err(error)) => tracing::error!(%error, "cannot list local shadows for a full sync"),
            Err(error) => tracing::error!(%error, "the shadow manager is gone"),
        }));
        tracing::info!(backlog = self.backlog.len(), "shadow full sync");
    }

    /// Adds `shadows` to the full sync's backlog (kept in reverse name order, without repeats).
    fn add_to_backlog(&mut self, shadows: Vec<ShadowId>) {
        self.backlog.extend(shadows);
        self.backlog.sort_unstable_by(|a, b| b.cmp(a));
        self.backlog.dedup();
    }

    /// Moves shadows from the backlog into the queue while it is less than half full.
    fn refill(&mut self) {
        while self.queue.len() < MAX_QUEUED / 2 {
            let Some(shadow) = self.backlog.pop() else { return };
            self.enqueue_new(shadow);
        }
    }

    /// Starts queued syncs while connected, up to [`MAX_RUNNING`], one per shadow at a time.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.connected_since.is_none() {
            return;
        }
        self.refill();
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
            // Shadows no longer selected are not synced again, not even once more.
            let config = &self.config;
            self.queue.retain(|s, _| config.selects(&s.thing, &s.name));
            self.backlog.retain(|s| config.selects(&s.thing, &s.name));
            self.admitted.retain(|s| config.selects(&s.thing, &s.name));
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
