//! The upstream broker ("IotCore"): one MQTT connection from the core to AWS IoT Core or any
//! MQTT 3.1.1/5 broker, with a disk spool for when it is away.
//!
//! The `Upstream` actor owns the connection, the spool and the upstream subscriptions.
//! Messages in: [`PublishUpstream`] (bridge routes and components), [`SubscribeUpstream`] /
//! [`UnsubscribeUpstream`], [`GetUpstreamStatus`], [`StopUpstream`]. Messages out: [`UpstreamMessage`] to each
//! subscriber. Every publish is spooled first and leaves the spool only when the broker
//! acknowledged it (QoS 1), so a broken connection or a host restart loses nothing; the spool
//! is bounded and drops its oldest messages, counted and logged, when full. The connection is
//! retried with jittered exponential backoff; on every new connection the subscriptions are
//! made again and the spool is sent again from its oldest message, in order.
//!
//! - `config`: settings, endpoint parsing and backoff (pure).
//! - `spool`: the SQLite spool. `link`: one rumqttc connection, either protocol version.

pub mod config;
mod error;
mod handle;
mod handlers;
pub mod link;
pub mod spool;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

use actix::prelude::*;
use bytes::Bytes;

use self::config::{UpstreamConfig, backoff};
pub use self::error::{UpstreamError, UpstreamStartError};
pub use self::handle::{
    GetUpstreamStatus, PublishUpstream, RequestUpstream, StopUpstream, SubscribeUpstream, UnsubscribeUpstream,
    UpstreamHandle, UpstreamMessage, UpstreamStatus,
};
use self::link::{Link, LinkEvent};
use self::spool::{Spool, SpoolError};
use crate::flow::{Credit, CreditPool};
use crate::properties::MessageProperties;
use crate::topic;

/// Publishes sent but not yet acknowledged, at most.
pub const WINDOW: u16 = 64;

/// An event of the link made for connection number `generation`.
#[derive(Message)]
#[rtype(result = "()")]
struct FromLink {
    generation: u64,
    event: LinkEvent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkState {
    Disabled,
    Connecting,
    Connected,
    Disconnected,
}

impl LinkState {
    fn name(self) -> &'static str {
        match self {
            LinkState::Disabled => "disabled",
            LinkState::Connecting => "connecting",
            LinkState::Connected => "connected",
            LinkState::Disconnected => "disconnected",
        }
    }
}

/// The upstream service.
pub struct Upstream {
    config: Option<UpstreamConfig>,
    tls: Option<Arc<rustls::ClientConfig>>,
    spool: Option<Spool>,
    link: Option<Link>,
    generation: u64,
    state: LinkState,
    since: SystemTime,
    attempts: u32,
    /// Highest spool entry handed to the current link.
    cursor: i64,
    /// Spool entries handed to rumqttc, waiting for their packet id.
    unsent: VecDeque<Option<i64>>,
    /// Packet id → spool entry, waiting for PUBACK.
    inflight: HashMap<u16, i64>,
    subscriptions: BTreeMap<String, BTreeMap<String, Recipient<UpstreamMessage>>>,
    dropped: u64,
    delivered: u64,
    last_error: Option<String>,
    /// Host queue space for messages from the upstream broker.
    incoming: CreditPool,
}

impl Upstream {
    /// The service for `config` (`None`: no upstream; publishes are refused), spooling in `db`;
    /// messages from the upstream broker in transit through the host hold at most `incoming`.
    pub fn new(
        config: Option<UpstreamConfig>,
        db: &std::path::Path,
        incoming: CreditPool,
    ) -> Result<Self, UpstreamStartError> {
        let (tls, spool) = match &config {
            Some(c) => {
                let tls =
                    if c.endpoint.tls { Some(link::tls_config(c).map_err(UpstreamStartError::Tls)?) } else { None };
                (tls, Some(Spool::open(db, c.spool_max_messages, c.spool_max_bytes)?))
            }
            None => (None, None),
        };
        let state = if config.is_some() { LinkState::Connecting } else { LinkState::Disabled };
        Ok(Self {
            config,
            tls,
            spool,
            link: None,
            generation: 0,
            state,
            since: SystemTime::now(),
            attempts: 0,
            cursor: 0,
            unsent: VecDeque::new(),
            inflight: HashMap::new(),
            subscriptions: BTreeMap::new(),
            dropped: 0,
            delivered: 0,
            last_error: None,
            incoming,
        })
    }

    fn set_state(&mut self, state: LinkState) {
        self.state = state;
        self.since = SystemTime::now();
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        let Some(config) = &self.config else {
            return;
        };
        self.generation += 1;
        let generation = self.generation;
        let addr = ctx.address();
        let events: link::Events = Box::new(move |event| {
            addr.do_send(FromLink { generation, event });
            addr.connected()
        });
        self.link = Some(Link::open(config, self.tls.as_ref(), WINDOW, events, self.incoming.clone()));
        // Retries after a loss stay "disconnected", counting from when it was lost.
        if self.state != LinkState::Disconnected {
            self.set_state(LinkState::Connecting);
        }
    }

    fn on_link(&mut self, msg: FromLink, ctx: &mut Context<Self>) {
        if msg.generation != self.generation {
            return;
        }
        match msg.event {
            LinkEvent::Connected => {
                tracing::info!(endpoint = %self.endpoint_text(), spooled = self.spooled(), "upstream connected");
                self.set_state(LinkState::Connected);
                self.attempts = 0;
                self.cursor = 0;
                self.unsent.clear();
                self.inflight.clear();
                if let Some(link) = &self.link {
                    for filter in self.subscriptions.keys() {
                        if let Err(error) = link.subscribe(filter) {
                            tracing::warn!(filter, %error, "cannot subscribe upstream");
                        }
                    }
                }
                self.fill();
            }
            LinkEvent::Sent(pkid) => {
                // Requests (not spooled) are not followed once sent.
                if let Some(Some(seq)) = self.unsent.pop_front() {
                    self.inflight.insert(pkid, seq);
                }
            }
            LinkEvent::Acked { pkid, refused } => {
                if let Some(seq) = self.inflight.remove(&pkid) {
                    if let Some(reason) = refused {
                        tracing::warn!(reason, "the upstream broker refused a message; it is dropped, not retried");
                    } else {
                        self.delivered += 1;
                    }
                    if let Some(spool) = self.spool.as_mut()
                        && let Err(error) = spool.remove(seq)
                    {
                        tracing::error!(%error, "cannot remove a delivered message from the spool; it may be sent twice");
                    }
                }
                self.fill();
            }
            LinkEvent::SubscribeRefused(count) => {
                tracing::warn!(count, "the upstream broker refused subscriptions; check its policy for this client");
            }
            LinkEvent::Message(incoming) => {
                self.deliver(&incoming.topic, &incoming.payload, incoming.properties.as_ref(), &incoming.credit);
                if let Some(link) = &self.link {
                    link.ack(&incoming);
                }
            }
            LinkEvent::Closed(error) => self.closed(error, ctx),
        }
    }

    /// The link ended: forget what was in flight (it stays spooled) and retry later.
    fn closed(&mut self, error: String, ctx: &mut Context<Self>) {
        let Some(config) = &self.config else {
            return;
        };
        let was = self.state;
        self.link = None;
        self.unsent.clear();
        self.inflight.clear();
        let random = f64::from(uuid::Uuid::new_v4().as_u128() as u32) / f64::from(u32::MAX);
        let delay = backoff(self.attempts, config.min_reconnect_delay, config.max_reconnect_delay, random);
        self.attempts = self.attempts.saturating_add(1);
        if was == LinkState::Connected {
            tracing::warn!(endpoint = %self.endpoint_text(), error, spooled = self.spooled(), "upstream connection lost; messages are spooled until it is back");
        } else {
            tracing::debug!(endpoint = %self.endpoint_text(), error, retry_in = ?delay, "upstream connection failed");
        }
        if was != LinkState::Disconnected {
            self.set_state(LinkState::Disconnected);
        }
        self.last_error = Some(error);
        let generation = self.generation;
        ctx.run_later(delay, move |act, ctx| {
            if act.generation == generation && act.link.is_none() {
                act.connect(ctx);
            }
        });
    }

    /// Hands spooled messages to the link, oldest first, up to the window.
    fn fill(&mut self) {
        let (Some(link), Some(spool)) = (&self.link, &self.spool) else {
            return;
        };
        if self.state != LinkState::Connected {
            return;
        }
        let busy = self.unsent.len() + self.inflight.len();
        let room = usize::from(WINDOW).saturating_sub(busy);
        if room == 0 {
            return;
        }
        let batch = match spool.after(self.cursor, room) {
            Ok(batch) => batch,
            Err(error) => {
                tracing::error!(%error, "cannot read the upstream spool");
                return;
            }
        };
        for message in batch {
            if let Err(error) =
                link.publish(&message.topic, message.payload, message.retain, message.properties.as_ref())
            {
                tracing::debug!(%error, "rumqttc queue full; the rest is sent on the next acknowledgement");
                return;
            }
            self.unsent.push_back(Some(message.seq));
            self.cursor = message.seq;
        }
    }

    fn publish(&mut self, msg: PublishUpstream) -> Result<(), UpstreamError> {
        let Some(spool) = self.spool.as_mut() else {
            return Err(UpstreamError::NotConfigured);
        };
        topic::validate_topic(&msg.topic)
            .map_err(|source| UpstreamError::BadTopic { topic: msg.topic.clone(), source })?;
        if topic::has_wildcard(&msg.topic) {
            return Err(UpstreamError::Wildcard(msg.topic));
        }
        match spool.push(&msg.topic, &msg.payload, msg.retain, msg.properties.as_deref()) {
            Ok(pushed) if pushed.dropped > 0 => {
                self.dropped += pushed.dropped;
                tracing::warn!(
                    dropped = pushed.dropped,
                    dropped_total = self.dropped,
                    spooled = spool.len(),
                    "upstream spool full: dropped the oldest messages"
                );
            }
            Ok(_) => {}
            Err(error @ SpoolError::TooBig { .. }) => {
                self.dropped += 1;
                tracing::warn!(%error, topic = msg.topic, "upstream message dropped");
                return Err(error.into());
            }
            Err(error) => {
                tracing::error!(%error, "cannot spool an upstream message");
                return Err(error.into());
            }
        }
        self.fill();
        Ok(())
    }

    fn subscribe(&mut self, msg: SubscribeUpstream) -> Result<(), UpstreamError> {
        if self.config.is_none() {
            return Err(UpstreamError::NotConfigured);
        }
        topic::validate_filter(&msg.filter)
            .map_err(|source| UpstreamError::BadTopic { topic: msg.filter.clone(), source })?;
        let subscribers = self.subscriptions.entry(msg.filter.clone()).or_default();
        let new_filter = subscribers.is_empty();
        subscribers.insert(msg.subscriber, msg.recipient);
        if new_filter
            && self.state == LinkState::Connected
            && let Some(link) = &self.link
        {
            link.subscribe(&msg.filter)?;
        }
        Ok(())
    }

    fn unsubscribe(&mut self, msg: UnsubscribeUpstream) -> bool {
        let mut emptied = Vec::new();
        let mut found = false;
        for (filter, subscribers) in &mut self.subscriptions {
            if msg.filter.as_ref().is_none_or(|f| f == filter) {
                found |= subscribers.remove(&msg.subscriber).is_some();
                if subscribers.is_empty() {
                    emptied.push(filter.clone());
                }
            }
        }
        for filter in emptied {
            self.subscriptions.remove(&filter);
            if self.state == LinkState::Connected
                && let Some(link) = &self.link
                && let Err(error) = link.unsubscribe(&filter)
            {
                tracing::debug!(filter, %error, "cannot unsubscribe upstream");
            }
        }
        found
    }

    /// Hands a message to every subscriber with a matching filter, once each.
    fn deliver(&self, topic_name: &str, payload: &Bytes, properties: Option<&Arc<MessageProperties>>, credit: &Credit) {
        let mut done = BTreeSet::new();
        for (filter, subscribers) in &self.subscriptions {
            if !topic::matches(filter, topic_name) {
                continue;
            }
            for (name, recipient) in subscribers {
                if done.insert(name.as_str()) {
                    recipient.do_send(UpstreamMessage {
                        topic: topic_name.to_owned(),
                        payload: payload.clone(),
                        properties: properties.cloned(),
                        credit: credit.clone(),
                    });
                }
            }
        }
    }

    fn spooled(&self) -> u64 {
        self.spool.as_ref().map_or(0, Spool::len)
    }

    fn endpoint_text(&self) -> String {
        self.config.as_ref().map(|c| c.endpoint.to_string()).unwrap_or_default()
    }

    fn status(&self) -> UpstreamStatus {
        UpstreamStatus {
            endpoint: self.config.as_ref().map(|c| c.endpoint.to_string()),
            state: self.state.name().to_owned(),
            since: (self.state != LinkState::Disabled).then(|| crate::store::secs_since_epoch(self.since)),
            spooled: self.spooled(),
            spooled_bytes: self.spool.as_ref().map_or(0, Spool::bytes),
            dropped: self.dropped,
            delivered: self.delivered,
            subscriptions: self.subscriptions.len(),
            last_error: self.last_error.clone(),
        }
    }
}
