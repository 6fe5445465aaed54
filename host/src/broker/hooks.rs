//! rmqtt hook handlers: who may connect, what they may subscribe and publish, and taps that copy
//! allowed device publishes to host services.
//!
//! Runs inside rmqtt's connection tasks, reading [`HookState`], which only the broker actor
//! writes (from [`crate::devices::AuthChanged`] and tap registrations). Every decision comes from
//! the immutable [`AuthSnapshot`] without awaiting other services. Denials are logged with the
//! client id, the resource and the reason. Taps run after a publish is allowed, so host services
//! never see a refused publish, and host publishes (`forwards`) never come back through a tap.
//! A tapped publish first takes credit from the host's bounded pool (see [`crate::flow`]); while
//! the pool is empty the publish waits (its connection keeps serving acknowledgements, see the
//! patched session loop), so devices are slowed to the host's pace instead of queueing without
//! bound. Dropped messages are counted by reason, never logged one by one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use actix::prelude::*;
use async_trait::async_trait;
use bytes::Bytes;
use rmqtt::codec::types::{MQTT_LEVEL_5, QoS};
use rmqtt::codec::v5::{PublishAckReason, PublishProperties, SubscribeAckReason};
use rmqtt::hook::{Handler, HookResult, Parameter, ReturnType};
use rmqtt::types::{AuthResult, LastWill, ListenerId, PublishAclResult, PublishResult, Reason, SubscribeAclResult};

use super::refusals::RefusalLog;
use super::retain::RetainStore;
use super::stats::{BrokerCounters, DropReason, Refused};

use crate::devices::AuthSnapshot;
use crate::devices::identity::{ListenerKind, PeerCert};
use crate::devices::policy::{self, topic_filter_resource, topic_resource};
use crate::flow::{Credit, CreditPool};
use crate::properties::MessageProperties;
use crate::topic;

/// A message a device published, copied to a host service whose tap filter matched.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct DeviceMessage {
    /// Topic the device published to.
    pub topic: String,
    /// Payload as published.
    pub payload: Bytes,
    /// QoS the device used (0, 1 or 2).
    pub qos: u8,
    /// Whether the device set the retain flag.
    pub retain: bool,
    /// Client id (thing name) of the publisher.
    pub client_id: String,
    /// Its MQTT 5 properties worth carrying on (none from MQTT 3.1.1 devices).
    pub properties: Option<Arc<MessageProperties>>,
    /// Host queue space this message holds until every copy of it is done with.
    pub credit: Credit,
    /// Its path through the host (`message{from, topic}`), entered at each hop.
    pub span: tracing::Span,
}

/// One tap: device publishes matching `filter` go to `recipient`.
#[derive(Clone)]
pub struct Tap {
    /// Service that registered the tap (taps are replaced per owner).
    pub owner: String,
    /// MQTT topic filter.
    pub filter: String,
    /// Where matching messages go.
    pub recipient: Recipient<DeviceMessage>,
}

/// How a live session authenticated, to re-check it when devices or policies change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCredentials {
    /// Where it connected from.
    pub remote: Option<SocketAddr>,
    /// Which listener.
    pub listener: ListenerKind,
    /// Its certificate, on TLS.
    pub cert: Option<PeerCert>,
}

/// What the hooks read; written only by the broker actor.
pub struct HookState {
    /// Who may connect and do what.
    pub auth: RwLock<Arc<AuthSnapshot>>,
    /// Current taps.
    pub taps: RwLock<Arc<Vec<Tap>>>,
    /// Credentials of admitted sessions, by client id.
    pub sessions: Mutex<HashMap<String, SessionCredentials>>,
    /// Listener id of the plain-TCP listener, if any.
    pub plain_listener: Option<ListenerId>,
    /// Host queue space for tapped messages.
    pub tap_pool: CreditPool,
    /// Drop counters.
    pub counters: Arc<BrokerCounters>,
    /// Told about every publish, so memory is trimmed only once messages stop.
    pub trimmer: crate::memory::Trimmer,
    /// Which refusals are logged (once per client and kind per interval).
    pub refusals: RefusalLog,
    /// Subscriptions and topic depth each client is held to.
    pub shape: ShapeLimits,
    /// The retained-message store, to refuse a retained publish it has no room for.
    pub retained: Arc<RetainStore>,
}

/// Limits on what one client's subscriptions and topics may look like (0: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShapeLimits {
    /// Subscriptions per client.
    pub max_subscriptions: u32,
    /// Levels of a topic name or filter.
    pub max_topic_levels: u16,
}

impl ShapeLimits {
    /// Why `topic` (a name or a filter; a shared subscription's `$share/GROUP/` prefix does not
    /// count) is too deep, if it is.
    pub fn too_deep(&self, topic: &str) -> Option<String> {
        let bare = shared_filter(topic);
        let levels = bare.split('/').count();
        (self.max_topic_levels > 0 && levels > usize::from(self.max_topic_levels))
            .then(|| format!("{levels} topic levels, more than the limit of {}", self.max_topic_levels))
    }

    /// Why one more subscription is refused to a client holding `held`, if it is.
    pub fn over_quota(&self, held: usize) -> Option<String> {
        let max = self.max_subscriptions as usize;
        (self.max_subscriptions > 0 && held >= max)
            .then(|| format!("the client already holds {held} subscriptions, the limit is {max}"))
    }
}

/// The filter of a shared subscription `$share/GROUP/F` (`F`), or `filter` itself.
fn shared_filter(filter: &str) -> &str {
    filter.strip_prefix("$share/").and_then(|rest| rest.split_once('/')).map_or(filter, |(_group, bare)| bare)
}

impl HookState {
    /// State that admits nobody and taps nothing.
    pub fn new(
        plain_listener: Option<ListenerId>,
        tap_pool: CreditPool,
        counters: Arc<BrokerCounters>,
        trimmer: crate::memory::Trimmer,
        shape: ShapeLimits,
        retained: Arc<RetainStore>,
    ) -> Self {
        Self {
            auth: RwLock::new(Arc::new(AuthSnapshot::default())),
            taps: RwLock::new(Arc::new(Vec::new())),
            sessions: Mutex::new(HashMap::new()),
            plain_listener,
            tap_pool,
            counters,
            trimmer,
            refusals: RefusalLog::default(),
            shape,
            retained,
        }
    }

    /// The current snapshot.
    pub fn auth(&self) -> Arc<AuthSnapshot> {
        self.auth.read().map(|a| Arc::clone(&a)).unwrap_or_default()
    }

    /// The check a TLS client's certificate (DER) passes before its CONNECT is read: it must
    /// not imitate a registered certificate. Refusals are logged like refused CONNECTs.
    pub fn vouch(&self, der: &[u8]) -> Result<(), String> {
        self.auth().vouch(der).inspect_err(|reason| {
            self.counters.refused(Refused::Certificate);
            if let Some(suppressed) = self.refusals.admit("(TLS)", "tls", Instant::now()) {
                tracing::warn!(reason, suppressed, "TLS client refused");
            }
        })
    }

    fn taps(&self) -> Arc<Vec<Tap>> {
        self.taps.read().map(|t| Arc::clone(&t)).unwrap_or_default()
    }

    fn listener(&self, lid: ListenerId) -> ListenerKind {
        if Some(lid) == self.plain_listener { ListenerKind::Plain } else { ListenerKind::Tls }
    }

    /// Credentials recorded for `client_id`.
    pub fn credentials(&self, client_id: &str) -> Option<SessionCredentials> {
        self.sessions.lock().ok().and_then(|s| s.get(client_id).cloned())
    }
}

fn qos_number(qos: QoS) -> u8 {
    match qos {
        QoS::AtMostOnce => 0,
        QoS::AtLeastOnce => 1,
        QoS::ExactlyOnce => 2,
    }
}

/// `ClientAuthenticate`: the client id must be the thing the certificate is registered to, its
/// groups must allow `mqtt:connect`, and a Last Will must be one it may publish (`mqtt:publish`
/// on the will topic, retained or not): otherwise CONNACK Not authorized (3.1.1: 0x05, 5: 0x87).
pub struct Authenticate(pub Arc<HookState>);

#[async_trait]
impl Handler for Authenticate {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        let Parameter::ClientAuthenticate(info) = param else { return (true, acc) };
        let listener = self.0.listener(info.id().lid);
        let cert =
            info.cert().and_then(|c| c.serial.clone().map(|serial| PeerCert { serial, subject: c.subject.clone() }));
        let client_id: &str = info.client_id();
        let remote = info.ipaddress();
        let auth = self.0.auth();
        let admitted = auth.admit(listener, client_id, cert.as_ref()).and_then(|identity| {
            match info.last_will().map(|will| will_topic(&will).to_owned()) {
                Some(topic) => auth
                    .authorize(listener, client_id, policy::PUBLISH, &topic_resource(&topic))
                    .map_err(|reason| format!("its Last Will on {topic} is not allowed: {reason}")),
                None => Ok(()),
            }
            .map(|()| identity)
        });
        let result = match admitted {
            Ok(identity) => {
                tracing::info!(client_id, remote = ?remote, verified = identity.verified, "device connected");
                if let Ok(mut sessions) = self.0.sessions.lock() {
                    sessions.insert(client_id.to_owned(), SessionCredentials { remote, listener, cert });
                }
                AuthResult::Allow(false, None)
            }
            Err(reason) => {
                self.0.counters.refused(Refused::Connect);
                if let Some(suppressed) = self.0.refusals.admit(client_id, "connect", Instant::now()) {
                    tracing::warn!(client_id, remote = ?remote, reason, suppressed, "connection refused");
                }
                AuthResult::NotAuthorized
            }
        };
        (false, Some(HookResult::AuthResult(result)))
    }
}

fn will_topic<'a>(will: &'a LastWill<'_>) -> &'a str {
    match will {
        LastWill::V3(will) => &will.topic,
        LastWill::V5(will) => &will.topic,
    }
}

/// `ClientSubscribeCheckAcl`: the filter must be within the topic depth limit (else 0x8F Topic
/// Filter invalid), a new filter within the client's subscription quota (else 0x97 Quota
/// exceeded), and allowed by `mqtt:subscribe` on `mqtt:topicfilter:<filter as sent>` (else
/// 0x87 Not authorized); a refused filter gets its failure code (3.1.1: 0x80), the others in the
/// same SUBSCRIBE are unaffected.
pub struct SubscribeCheck(pub Arc<HookState>);

#[async_trait]
impl Handler for SubscribeCheck {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        let Parameter::ClientSubscribeCheckAcl(session, subscribe) = param else { return (true, acc) };
        let client_id: &str = &session.id.client_id;
        let filter: &str = &subscribe.topic_filter;
        let shape = self.0.shape;
        let refusal = match shape.too_deep(filter) {
            Some(reason) => Some((SubscribeAckReason::TopicFilterInvalid, reason)),
            None if shape.max_subscriptions > 0 => {
                let held = match session.subscriptions().await {
                    Ok(subs) => {
                        let subs = subs.read().await;
                        if subs.contains_key(&subscribe.topic_filter) { 0 } else { subs.len() }
                    }
                    Err(_) => 0,
                };
                shape.over_quota(held).map(|reason| (SubscribeAckReason::QuotaExceeded, reason))
            }
            None => None,
        };
        let refusal = refusal.or_else(|| {
            authorize_subscription(&self.0.auth(), self.0.listener(session.id.lid), client_id, filter)
                .err()
                .map(|reason| (SubscribeAckReason::NotAuthorized, reason))
        });
        match refusal {
            None => (true, acc),
            Some((code, reason)) => {
                if let Some(suppressed) = self.0.refusals.admit(client_id, "subscribe", Instant::now()) {
                    tracing::warn!(client_id, filter, reason, suppressed, "subscribe refused");
                }
                self.0.counters.refused(Refused::Subscribe);
                let failure = SubscribeAclResult::new_failure(code);
                (false, Some(HookResult::SubscribeAclResult(failure)))
            }
        }
    }
}

/// Whether `client_id` may hold a subscription to `filter` (`mqtt:subscribe` on
/// `mqtt:topicfilter:<filter>`; a shared subscription `$share/GROUP/F` is authorized on `F`).
pub fn authorize_subscription(
    auth: &AuthSnapshot,
    listener: ListenerKind,
    client_id: &str,
    filter: &str,
) -> Result<(), String> {
    auth.authorize(listener, client_id, policy::SUBSCRIBE, &topic_filter_resource(shared_filter(filter)))
}

/// Why a retained publish is refused when the retained store has no room for it.
const RETAINED_FULL: &str = "the retained-message store is full ([broker] retained_bytes / retained_messages)";

/// `MessagePublishCheckAcl`: the topic must be within the depth limit (else MQTT 5 PUBACK 0x90
/// Topic Name invalid), a retained message must fit the retained store (else 0x97 Quota
/// exceeded), and the publish must be allowed by `mqtt:publish` on `mqtt:topic:<topic>` (else
/// 0x87 Not authorized); a refused publish is dropped, an allowed one is copied to every
/// matching tap.
pub struct PublishCheck(pub Arc<HookState>);

#[async_trait]
impl Handler for PublishCheck {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        let Parameter::MessagePublishCheckAcl(session, publish) = param else { return (true, acc) };
        self.0.trimmer.busy();
        let client_id: &str = &session.id.client_id;
        let topic: &str = &publish.topic;
        let listener = self.0.listener(session.id.lid);
        let refusal = match self.0.shape.too_deep(topic) {
            Some(reason) => Some((PublishAckReason::TopicNameInvalid, reason)),
            None => match self.0.auth().authorize(listener, client_id, policy::PUBLISH, &topic_resource(topic)) {
                Err(reason) => Some((PublishAckReason::NotAuthorized, reason)),
                Ok(())
                    if publish.retain
                        && !self.0.retained.fits(topic, publish.payload.len(), publish.properties.as_ref()) =>
                {
                    self.0.retained.refuse();
                    Some((PublishAckReason::QuotaExceeded, RETAINED_FULL.to_owned()))
                }
                Ok(()) => None,
            },
        };
        if let Some((code, reason)) = refusal {
            if let Some(suppressed) = self.0.refusals.admit(client_id, "publish", Instant::now()) {
                tracing::warn!(client_id, topic, reason, suppressed, "publish refused");
            }
            self.0.counters.refused(Refused::Publish);
            // MQTT 3.1.1 has no way to refuse a publish but closing the connection
            // (MQTT-3.3.5-2): a limit refusal does that. A policy denial is acknowledged and
            // dropped instead, as Greengrass's broker does.
            let v311 = session.connect_info().await.is_ok_and(|c| c.proto_ver() != MQTT_LEVEL_5);
            let disconnect = v311 && code != PublishAckReason::NotAuthorized;
            let rejected = PublishResult::reason_code(code, Some(reason.into()), disconnect);
            return (false, Some(HookResult::PublishAclResult(PublishAclResult(rejected))));
        }
        let taps = self.0.taps();
        let matching: Vec<&Tap> = taps.iter().filter(|tap| topic::matches(&tap.filter, topic)).collect();
        if !matching.is_empty() {
            let pool = &self.0.tap_pool;
            let cost = pool.cost(topic, &publish.payload);
            let credit = match pool.try_acquire(cost) {
                Some(credit) => credit,
                None => {
                    self.0.counters.host_wait();
                    pool.acquire(cost).await
                }
            };
            let properties = publish.properties.as_ref().and_then(carried).map(Arc::new);
            let span = tracing::debug_span!("message", from = %client_id, topic = %topic);
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
        (false, Some(HookResult::PublishAclResult(PublishAclResult::allow())))
    }
}

/// The properties of a device's publish that travel on with it (not its topic alias nor its
/// subscription identifiers, which belong to its connection).
pub fn carried(p: &PublishProperties) -> Option<MessageProperties> {
    MessageProperties {
        content_type: p.content_type.as_ref().map(|c| c.to_string()),
        correlation_data: p.correlation_data.clone(),
        response_topic: p.response_topic.as_ref().map(|t| t.to_string()),
        message_expiry_secs: p.message_expiry_interval.map(std::num::NonZeroU32::get),
        payload_is_utf8: p.is_utf8_payload,
        user_properties: p.user_properties.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
    .non_empty()
}

/// rmqtt's properties for a message the host publishes to devices.
pub fn to_codec(p: &MessageProperties) -> PublishProperties {
    PublishProperties {
        content_type: p.content_type.as_deref().map(Into::into),
        correlation_data: p.correlation_data.clone(),
        response_topic: p.response_topic.as_deref().map(Into::into),
        message_expiry_interval: p.message_expiry_secs.and_then(std::num::NonZeroU32::new),
        is_utf8_payload: p.payload_is_utf8,
        user_properties: p.user_properties.iter().map(|(k, v)| (k.as_str().into(), v.as_str().into())).collect(),
        ..PublishProperties::default()
    }
}

/// `SessionTerminated`: forget the credentials of a session that ended, and let the trimmer
/// know a burst of work may be over.
pub struct Forget(pub Arc<HookState>);

#[async_trait]
impl Handler for Forget {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        if let Parameter::SessionTerminated(session, _) = param
            && let Ok(mut sessions) = self.0.sessions.lock()
        {
            let client_id: &str = &session.id.client_id;
            if sessions.get(client_id).is_some_and(|c| c.remote == session.id.remote_addr) {
                sessions.remove(client_id);
            }
        }
        if let Parameter::SessionTerminated(..) = param {
            self.0.trimmer.hint(crate::memory::Burst::Traffic);
        }
        (true, acc)
    }
}

/// `MessageDropped`: count why the broker dropped a message (one copy for one recipient).
pub struct Dropped(pub Arc<BrokerCounters>);

/// The counter a drop reason of rmqtt's belongs to.
fn drop_reason(reason: &Reason) -> DropReason {
    match reason {
        Reason::MessageQueueFull => DropReason::QueueFull,
        Reason::MessageExpiration => DropReason::Expired,
        Reason::PublishResult(_) => DropReason::Denied,
        Reason::QueueWaitTimedOut => DropReason::WaitTimedOut,
        Reason::Unsubscribed => DropReason::Unsubscribed,
        _ => DropReason::SessionEnded,
    }
}

#[async_trait]
impl Handler for Dropped {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        if let Parameter::MessageDropped(_, _, _, reason) = param {
            self.0.dropped(drop_reason(reason));
        }
        (true, acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_depth_and_subscription_quota() {
        let shape = ShapeLimits { max_subscriptions: 2, max_topic_levels: 3 };
        assert_eq!(shape.too_deep("a/b/c"), None);
        assert_eq!(shape.too_deep("a/b/c/d").as_deref(), Some("4 topic levels, more than the limit of 3"));
        assert_eq!(shape.too_deep("$share/group/a/b/c"), None, "the share prefix is not a level");
        assert!(shape.too_deep("$share/group/a/b/c/#").is_some());
        assert!(shape.too_deep("////").is_some(), "empty levels count");
        assert_eq!(shape.over_quota(1), None);
        assert!(shape.over_quota(2).is_some());
        let none = ShapeLimits::default();
        assert_eq!(none.too_deep(&"a/".repeat(10_000)), None);
        assert_eq!(none.over_quota(usize::MAX), None);
    }

    #[test]
    fn rmqtt_drop_reasons_map_to_counters() {
        assert_eq!(drop_reason(&Reason::MessageQueueFull), DropReason::QueueFull);
        assert_eq!(drop_reason(&Reason::MessageExpiration), DropReason::Expired);
        let denied = Reason::PublishResult(rmqtt::types::PublishResult::success());
        assert_eq!(drop_reason(&denied), DropReason::Denied);
        assert_eq!(drop_reason(&Reason::SubscriberStalled), DropReason::SessionEnded);
        assert_eq!(drop_reason(&Reason::QueueWaitTimedOut), DropReason::WaitTimedOut);
        assert_eq!(drop_reason(&Reason::Unsubscribed), DropReason::Unsubscribed);
        assert_eq!(drop_reason(&Reason::from_static("the client has disconnected")), DropReason::SessionEnded);
    }
}
