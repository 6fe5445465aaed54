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

mod ends;
mod properties;
mod publish;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use actix::prelude::*;
use async_trait::async_trait;
use bytes::Bytes;
use rmqtt::codec::types::QoS;
use rmqtt::codec::v5::SubscribeAckReason;
use rmqtt::hook::{Handler, HookResult, Parameter, ReturnType};
use rmqtt::types::{AuthResult, LastWill, ListenerId, SubscribeAclResult};

pub use self::ends::{Dropped, Forget, Presence};
pub use self::properties::{carried, to_codec};
pub use self::publish::PublishCheck;
use super::clients::{ClientSession, Denials, MAX_LISTED};
use super::refusals::RefusalLog;
use super::retain::RetainStore;
use super::stats::{BrokerCounters, Refused};
use super::traffic::Action;

use crate::devices::identity::{ListenerKind, PeerCert};
use crate::devices::policy::{self, topic_filter_resource, topic_resource};
use crate::devices::{AuthRefusal, AuthSnapshot};
use crate::flow::{Credit, CreditPool};
use crate::properties::MessageProperties;

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

/// How a live session authenticated, to re-check it when devices or policies change, and the
/// span its lines and messages belong to.
#[derive(Debug, Clone)]
pub struct SessionCredentials {
    /// Where it connected from.
    pub remote: Option<SocketAddr>,
    /// Which listener.
    pub listener: ListenerKind,
    /// Its certificate, on TLS.
    pub cert: Option<PeerCert>,
    /// `session{client_id, remote}`: its connect, refusals, end, and the parent of every
    /// `message` span its publishes start.
    pub span: tracing::Span,
    /// When it was admitted (seconds since the epoch).
    pub since: i64,
    /// Whether its connection is open (a persistent session outlives its connection).
    pub connected: bool,
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
    /// The refusals logged last, for the console.
    pub denials: Denials,
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
            denials: Denials::default(),
            shape,
            retained,
        }
    }

    /// The current snapshot.
    pub fn auth(&self) -> Arc<AuthSnapshot> {
        self.auth.read().map(|a| Arc::clone(&a)).unwrap_or_default()
    }

    /// The check a TLS client's certificate (DER) passes before its CONNECT is read: it must
    /// not imitate a registered certificate. Refusals are logged like refused CONNECTs; rmqtt's
    /// hook takes the reason as text.
    pub fn vouch(&self, der: &[u8]) -> Result<(), String> {
        self.auth().vouch(der).map_err(|reason| {
            self.counters.refused(Refused::Certificate);
            self.counters.traffic.authentication_failed(reason.reason());
            if let Some(suppressed) = self.refusals.admit("(TLS)", "tls", Instant::now()) {
                tracing::warn!(%reason, suppressed, "TLS client refused");
                self.denials.record("(TLS)", "tls", "", &reason.to_string(), suppressed);
            }
            reason.to_string()
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

    /// The sessions admitted (at most [`MAX_LISTED`], by client id) and how many there are.
    pub fn sessions(&self) -> (Vec<ClientSession>, usize) {
        let Ok(sessions) = self.sessions.lock() else { return (Vec::new(), 0) };
        let mut listed: Vec<ClientSession> = sessions
            .iter()
            .map(|(client_id, c)| ClientSession {
                client_id: client_id.clone(),
                remote: c.remote,
                listener: match c.listener {
                    ListenerKind::Tls => "tls",
                    ListenerKind::Plain => "plain",
                }
                .to_owned(),
                since: c.since,
                connected: c.connected,
            })
            .collect();
        listed.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        let total = listed.len();
        listed.truncate(MAX_LISTED);
        (listed, total)
    }

    /// The span of `client_id`'s session (none if it is not admitted, or spans are off).
    fn session_span(&self, client_id: &str) -> tracing::Span {
        self.sessions
            .lock()
            .ok()
            .and_then(|s| s.get(client_id).map(|c| c.span.clone()))
            .unwrap_or_else(tracing::Span::none)
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
                    .map_err(|reason| AuthRefusal::Will { topic, reason: Box::new(reason) }),
                None => Ok(()),
            }
            .map(|()| identity)
        });
        let result = match admitted {
            Ok(identity) => {
                self.0.counters.traffic.connected();
                self.0.counters.traffic.decided(Action::Connect, true);
                let span = match remote {
                    Some(addr) => tracing::info_span!("session", %client_id, remote = %addr),
                    None => tracing::info_span!("session", %client_id),
                };
                span.in_scope(|| tracing::info!(verified = identity.verified, ?listener, "device connected"));
                if let Ok(mut sessions) = self.0.sessions.lock() {
                    let since = chrono::Utc::now().timestamp();
                    let credentials = SessionCredentials { remote, listener, cert, span, since, connected: true };
                    sessions.insert(client_id.to_owned(), credentials);
                }
                AuthResult::Allow(false, None)
            }
            Err(reason) => {
                self.0.counters.refused(Refused::Connect);
                if reason.is_authentication() {
                    self.0.counters.traffic.authentication_failed(reason.reason());
                } else {
                    self.0.counters.traffic.decided(Action::Connect, false);
                }
                if let Some(suppressed) = self.0.refusals.admit(client_id, "connect", Instant::now()) {
                    tracing::warn!(client_id, remote = ?remote, %reason, suppressed, "connection refused");
                    self.0.denials.record(client_id, "connect", "", &reason.to_string(), suppressed);
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
            let decision = authorize_subscription(&self.0.auth(), self.0.listener(session.id.lid), client_id, filter);
            self.0.counters.traffic.decided(Action::Subscribe, decision.is_ok());
            decision.err().map(|reason| (SubscribeAckReason::NotAuthorized, reason.to_string()))
        });
        match refusal {
            None => (true, acc),
            Some((code, reason)) => {
                if let Some(suppressed) = self.0.refusals.admit(client_id, "subscribe", Instant::now()) {
                    let session = self.0.session_span(client_id);
                    session.in_scope(|| tracing::warn!(client_id, filter, reason, suppressed, "subscribe refused"));
                    self.0.denials.record(client_id, "subscribe", filter, &reason, suppressed);
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
) -> Result<(), AuthRefusal> {
    auth.authorize(listener, client_id, policy::SUBSCRIBE, &topic_filter_resource(shared_filter(filter)))
}

#[cfg(test)]
mod tests;
