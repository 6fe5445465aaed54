//! Changes sync hears of: the local shadow manager's answers on the bus, the cloud's on the
//! upstream connection (answers to sync's own requests go to the job waiting for them), and the
//! upstream connection coming and going (each time it comes back, a full sync).

use actix::prelude::*;
use serde_json::Value;

use super::SUBSCRIBER;
use super::decide::Side;
use super::merge::SyncState;
use super::records::SyncRecord;
use super::{ShadowSync, Start};
use crate::pubsub::PubsubMessage;
use crate::shadow::topics::{Operation, ShadowId, parse_response};
use crate::upstream::{GetUpstreamStatus, SubscribeUpstream, UnsubscribeUpstream, UpstreamMessage, UpstreamStatus};

/// The client token of a payload, if it has one.
fn token(payload: &Value) -> Option<&str> {
    payload.get("clientToken").and_then(Value::as_str)
}

impl Handler<PubsubMessage> for ShadowSync {
    type Result = ();

    fn handle(&mut self, msg: PubsubMessage, ctx: &mut Self::Context) {
        let Some((shadow, operation, suffix)) = parse_response(&msg.topic) else { return };
        let change = matches!((operation, suffix), (Operation::Update, "documents") | (Operation::Delete, "accepted"));
        if !change || !self.config.selects(&shadow.thing, &shadow.name) {
            return;
        }
        let payload: Value = serde_json::from_slice(&msg.payload).unwrap_or(Value::Null);
        let own = match token(&payload) {
            Some(token) => self.cloud.local_echoes.consume(token),
            None => operation == Operation::Delete && self.cloud.local_deletes.consume(&shadow.to_string()),
        };
        if own {
            return; // the echo of sync's own write
        }
        self.local_change(shadow, ctx);
    }
}

impl Handler<UpstreamMessage> for ShadowSync {
    type Result = ();

    fn handle(&mut self, msg: UpstreamMessage, ctx: &mut Self::Context) {
        let Some((shadow, operation, suffix)) = parse_response(&msg.topic) else { return };
        let payload: Value = serde_json::from_slice(&msg.payload).unwrap_or(Value::Null);
        if let Some(token) = token(&payload).map(str::to_owned) {
            let answered = matches!(suffix, "accepted" | "rejected")
                && self.cloud.answer(&token, &shadow, operation, suffix == "accepted", payload.clone());
            if answered || (suffix == "documents" && self.cloud.echoes.consume(&token)) {
                return; // an answer to one of sync's requests, or the echo of its own write
            }
        }
        if !self.config.selects(&shadow.thing, &shadow.name) || !self.config.direction.downward() {
            return;
        }
        let start = match (operation, suffix) {
            (Operation::Update, "documents") => {
                // A garbled announcement is no change (the next full sync reads the shadow).
                let Some((state, version)) = SyncState::read_document(&payload["current"], true) else { return };
                let record = match self.records.get(&shadow.thing, &shadow.name) {
                    Ok(record) => record,
                    Err(error) => return tracing::error!(%error, "cannot read a shadow sync record"),
                };
                if record.is_none() && !self.may_track(&shadow) {
                    return;
                }
                // The announcement is taken as the cloud's side only if it is newer than the
                // last sync, that sync succeeded, and none runs now; otherwise (a duplicate, one
                // overtaken, a shadow never synced or whose sync failed) the cloud is read.
                let newer = |r: &SyncRecord| r.last_error.is_none() && version > r.cloud_version;
                match !self.running.contains(&shadow) && record.as_ref().is_some_and(newer) {
                    true => Start::Known(Side::Present(state, version)),
                    false => Start::Fetch,
                }
            }
            // Only a shadow sync keeps has anything to delete here; a delete announced may be
            // older than a recreate, so the cloud is read before anything local goes.
            (Operation::Delete, "accepted") => match self.records.get(&shadow.thing, &shadow.name) {
                Ok(Some(_)) => Start::Fetch,
                _ => return,
            },
            _ => return,
        };
        self.enqueue(shadow, start);
        self.pump(ctx);
    }
}

impl ShadowSync {
    /// Subscribes upstream to the shadow topics of every selected thing.
    pub(super) fn subscribe_upstream(&self, ctx: &mut Context<Self>) {
        self.upstream.unsubscribe.do_send(UnsubscribeUpstream { subscriber: SUBSCRIBER.to_owned(), filter: None });
        if self.config.is_empty() {
            return;
        }
        let filters: Vec<String> = if self.config.patterns.is_empty() {
            self.config.things.keys().map(|thing| format!("$aws/things/{thing}/shadow/#")).collect()
        } else {
            vec!["$aws/things/+/shadow/#".to_owned()]
        };
        for filter in filters {
            let request =
                SubscribeUpstream { subscriber: SUBSCRIBER.to_owned(), filter, recipient: ctx.address().recipient() };
            self.upstream.subscribe.do_send(request);
        }
    }

    pub(super) fn check_upstream(&mut self, ctx: &mut Context<Self>) {
        if self.config.is_empty() || !self.upstream.configured {
            return;
        }
        let asked = self.upstream.status.send(GetUpstreamStatus);
        ctx.spawn(asked.into_actor(self).map(|status, sync, ctx| {
            let status: UpstreamStatus = status.unwrap_or_default();
            let since = (status.state == "connected").then_some(status.since.unwrap_or(0));
            if since.is_some() && since != sync.connected_since {
                sync.connected_since = since;
                tracing::info!("upstream connected: full shadow sync");
                sync.full_sync(ctx);
                sync.pump(ctx);
            } else if since.is_none() {
                sync.connected_since = None;
            }
        }));
    }
}

impl ShadowSync {
    /// Whether a shadow the cloud announced, that no record tracks, may be synced: room for one
    /// more under `maxShadows`, counting those already admitted and not yet recorded (else it
    /// is counted and left out: a cloud cannot make the core keep any number of shadows).
    fn may_track(&mut self, shadow: &ShadowId) -> bool {
        if self.admitted.contains(shadow) {
            return true;
        }
        let tracked = self.records.count().unwrap_or(u64::MAX);
        if tracked.saturating_add(self.admitted.len() as u64) < self.config.max_shadows {
            self.admitted.insert(shadow.clone());
            return true;
        }
        self.counts.over_limit += 1;
        if self.counts.over_limit == 1 || self.counts.over_limit.is_multiple_of(1000) {
            tracing::warn!(
                max_shadows = self.config.max_shadows,
                left_out = self.counts.over_limit,
                "shadow sync keeps maxShadows shadows; a shadow the cloud announced is left out"
            );
        }
        false
    }

    /// A local shadow changed (not by sync): mark it pending, durably, and queue it. With
    /// `cloudToDevice` a local change has nowhere to go, and is left alone.
    fn local_change(&mut self, shadow: ShadowId, ctx: &mut Context<Self>) {
        if !self.config.direction.upward() {
            return;
        }
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
        if !record.pending {
            record.pending = true;
            if let Err(error) = self.records.put(&record) {
                tracing::error!(%error, shadow = %shadow, "cannot mark a shadow pending");
            }
        }
        self.enqueue(shadow, Start::Fetch);
        self.pump(ctx);
    }
}
