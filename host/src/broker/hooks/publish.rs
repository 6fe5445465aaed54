//! `MessagePublishCheckAcl`: whether a device's publish is allowed, and copying an allowed one
//! to the host services whose taps match it.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use rmqtt::codec::types::MQTT_LEVEL_5;
use rmqtt::codec::v5::PublishAckReason;
use rmqtt::hook::{Handler, HookResult, Parameter, ReturnType};
use rmqtt::types::{Publish, PublishAclResult, PublishResult};

use super::{DeviceMessage, HookState, Tap, carried, qos_number};
use crate::broker::stats::Refused;
use crate::broker::traffic::Action;
use crate::devices::identity::ListenerKind;
use crate::devices::policy::{self, topic_resource};
use crate::topic;

/// Why a retained publish is refused when the retained store has no room for it.
const RETAINED_FULL: &str = "the retained-message store is full ([broker] retained_bytes / retained_messages)";

/// `MessagePublishCheckAcl`: the topic must be within the depth limit (else MQTT 5 PUBACK 0x90
/// Topic Name invalid), a retained message must fit the retained store (else 0x97 Quota
/// exceeded), and the publish must be allowed by `mqtt:publish` on `mqtt:topic:<topic>` (else
/// 0x87 Not authorized); a refused publish is dropped, an allowed one is copied to every
/// matching tap.
pub struct PublishCheck(pub Arc<HookState>);

impl HookState {
    /// Why `client_id` may not publish `publish`, if it may not.
    fn publish_refusal(
        &self,
        listener: ListenerKind,
        client_id: &str,
        publish: &Publish,
    ) -> Option<(PublishAckReason, String)> {
        let topic: &str = &publish.topic;
        if let Some(reason) = self.shape.too_deep(topic) {
            return Some((PublishAckReason::TopicNameInvalid, reason));
        }
        let decision = self.auth().authorize(listener, client_id, policy::PUBLISH, &topic_resource(topic));
        self.counters.traffic.decided(Action::Publish, decision.is_ok());
        if let Err(reason) = decision {
            return Some((PublishAckReason::NotAuthorized, reason.to_string()));
        }
        if publish.retain && !self.retained.fits(topic, publish.payload.len(), publish.properties.as_ref()) {
            self.retained.refuse();
            return Some((PublishAckReason::QuotaExceeded, RETAINED_FULL.to_owned()));
        }
        None
    }

    /// Copies an allowed publish to every matching tap, once the host's pool has room for it.
    async fn tap(&self, client_id: &str, publish: &Publish) {
        let topic: &str = &publish.topic;
        let taps = self.taps();
        let matching: Vec<&Tap> = taps.iter().filter(|tap| topic::matches(&tap.filter, topic)).collect();
        if matching.is_empty() {
            return;
        }
        let pool = &self.tap_pool;
        let cost = pool.cost(topic, &publish.payload);
        let credit = match pool.try_acquire(cost) {
            Some(credit) => credit,
            None => {
                self.counters.host_wait();
                pool.acquire(cost).await
            }
        };
        let properties = publish.properties.as_ref().and_then(carried).map(Arc::new);
        // A message's path is a child of its sender's session (looked up only when debug
        // spans are on: the lookup takes the sessions lock).
        let span = if tracing::enabled!(tracing::Level::DEBUG) {
            let session = self.session_span(client_id);
            tracing::debug_span!(parent: &session, "message", from = %client_id, topic = %topic)
        } else {
            tracing::Span::none()
        };
        span.in_scope(|| tracing::debug!(taps = matching.len(), "device message handed to the host"));
        for tap in matching {
            tap.recipient.do_send(DeviceMessage {
                topic: topic.to_owned(),
                payload: publish.payload.clone(),
                qos: qos_number(publish.qos),
                retain: publish.retain,
                client_id: client_id.to_owned(),
                properties: properties.clone(),
                credit: credit.clone(),
                span: span.clone(),
            });
        }
    }
}

#[async_trait]
impl Handler for PublishCheck {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        let Parameter::MessagePublishCheckAcl(session, publish) = param else { return (true, acc) };
        self.0.trimmer.busy();
        let client_id: &str = &session.id.client_id;
        self.0.counters.traffic.received(qos_number(publish.qos), publish.topic.len() + publish.payload.len());
        let listener = self.0.listener(session.id.lid);
        let Some((code, reason)) = self.0.publish_refusal(listener, client_id, publish) else {
            self.0.tap(client_id, publish).await;
            return (false, Some(HookResult::PublishAclResult(PublishAclResult::allow())));
        };
        if let Some(suppressed) = self.0.refusals.admit(client_id, "publish", Instant::now()) {
            let session = self.0.session_span(client_id);
            let topic: &str = &publish.topic;
            session.in_scope(|| tracing::warn!(client_id, topic, reason, suppressed, "publish refused"));
            self.0.denials.record(client_id, "publish", topic, &reason, suppressed);
        }
        self.0.counters.refused(Refused::Publish);
        // MQTT 3.1.1 has no way to refuse a publish but closing the connection
        // (MQTT-3.3.5-2): a limit refusal does that. A policy denial is acknowledged and
        // dropped instead, as Greengrass's broker does.
        let v311 = session.connect_info().await.is_ok_and(|c| c.proto_ver() != MQTT_LEVEL_5);
        let disconnect = v311 && code != PublishAckReason::NotAuthorized;
        let rejected = PublishResult::reason_code(code, Some(reason.into()), disconnect);
        (false, Some(HookResult::PublishAclResult(PublishAclResult(rejected))))
    }
}
