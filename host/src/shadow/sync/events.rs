//! Changes sync hears of: the local shadow manager's answers on the bus, the cloud's on the
//! upstream connection (answers to sync's own requests go to the job waiting for them), and the
//! upstream connection coming and going (each time it comes back, a full sync).

use actix::prelude::*;
use serde_json::Value;

use super::SUBSCRIBER;
use super::decide::Side;
use super::merge::SyncState;
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
        if token(&payload).is_some_and(|t| self.cloud.local_echoes.consume(t)) {
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
                && self.cloud.answer(&token, suffix == "accepted", payload.clone());
            if answered || (suffix == "documents" && self.cloud.echoes.consume(&token)) {
                return; // an answer to one of sync's requests, or the echo of its own write
            }
        }
        if !self.config.selects(&shadow.thing, &shadow.name) || !self.config.direction.downward() {
            return;
        }
        let known = match (operation, suffix) {
            (Operation::Update, "documents") => {
                let current = &payload["current"];
                match current.get("version").and_then(Value::as_u64) {
                    Some(version) => Side::Present(SyncState::of_document(current), version),
                    None => return,
                }
            }
            (Operation::Delete, "accepted") => Side::Absent,
            _ => return,
        };
        if matches!(known, Side::Present(..)) && !self.may_track(&shadow) {
            return;
        }
        self.enqueue(shadow, Start::Known(known));
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
    /// Whether a shadow the cloud announced may be synced: one sync already tracks, or room for
    /// one more under `maxShadows` (else it is counted and left out: a cloud cannot make the
    /// core keep any number of shadows).
    fn may_track(&mut self, shadow: &ShadowId) -> bool {
        if self.records.get(&shadow.thing, &shadow.name).ok().flatten().is_some() {
            return true;
        }
        let tracked = self.records.count().unwrap_or(u64::MAX);
        if tracked < self.config.max_shadows {
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
}
