//! One connection to the upstream broker, over rumqttc for MQTT 3.1.1 or 5.
//!
//! A [`Link`] is made per connection attempt and thrown away when the connection ends, so
//! rumqttc never replays anything by itself: what was not acknowledged stays in the spool and
//! the upstream service sends it again on the next link. The event loop runs in its own task
//! and reports [`LinkEvent`]s, the same for both protocol versions. Publishes go out at QoS 1
//! and incoming publishes are acknowledged manually, once they were handed on. Each incoming
//! publish takes credit from the host's pool before it is handed on; while the pool is empty
//! the event loop is not polled, so the upstream broker's messages wait in its own queue (TCP
//! backpressure) instead of in the host's memory. Not polling also means no PUBACK for our own
//! publishes and no keep-alive ping go out meanwhile: a wait longer than the keep-alive ends the
//! link, and the spool sends what was unacknowledged on the next one.

use std::sync::Arc;

use bytes::Bytes;
use rumqttc::{TlsConfiguration, Transport};
use tokio::task::JoinHandle;

use super::config::{MqttVersion, UpstreamConfig};
use super::error::UpstreamError;
use crate::flow::{Credit, CreditPool};
use crate::pem;
use crate::properties::MessageProperties;

/// What happened on a link.
#[derive(Debug)]
pub enum LinkEvent {
    /// The broker accepted the connection.
    Connected,
    /// rumqttc sent the next queued publish with this packet id.
    Sent(u16),
    /// The broker acknowledged a publish; `refused` carries an MQTT 5 failure reason.
    Acked {
        /// Packet id.
        pkid: u16,
        /// Why the broker refused it, if it did.
        refused: Option<String>,
    },
    /// The broker refused some filters of a subscribe.
    SubscribeRefused(usize),
    /// A message from the broker.
    Message(Incoming),
    /// The connection ended (or never came up).
    Closed(String),
}

/// A message from the upstream broker, with what is needed to acknowledge it.
#[derive(Debug)]
pub struct Incoming {
    /// Topic.
    pub topic: String,
    /// Payload.
    pub payload: Bytes,
    /// Its MQTT 5 properties.
    pub properties: Option<Arc<MessageProperties>>,
    /// Host queue space it holds (taken before it was read on, see [`Link::open`]).
    pub credit: Credit,
    ack: Ack,
}

/// The properties of a message from an MQTT 5 upstream broker that travel on.
fn carried(p: &rumqttc::v5::mqttbytes::v5::PublishProperties) -> Option<MessageProperties> {
    MessageProperties {
        content_type: p.content_type.clone(),
        correlation_data: p.correlation_data.clone(),
        response_topic: p.response_topic.clone(),
        message_expiry_secs: p.message_expiry_interval,
        payload_is_utf8: p.payload_format_indicator == Some(1),
        user_properties: p.user_properties.clone(),
    }
    .non_empty()
}

/// rumqttc's properties for a publish to an MQTT 5 upstream broker.
fn to_v5(p: &MessageProperties) -> rumqttc::v5::mqttbytes::v5::PublishProperties {
    rumqttc::v5::mqttbytes::v5::PublishProperties {
        payload_format_indicator: p.payload_is_utf8.then_some(1),
        message_expiry_interval: p.message_expiry_secs,
        response_topic: p.response_topic.clone(),
        correlation_data: p.correlation_data.clone(),
        user_properties: p.user_properties.clone(),
        content_type: p.content_type.clone(),
        ..Default::default()
    }
}

#[derive(Debug)]
enum Ack {
    V311(rumqttc::Publish),
    V5(Box<rumqttc::v5::mqttbytes::v5::Publish>),
}

enum Client {
    V311(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// A live connection attempt.
pub struct Link {
    client: Client,
    pump: JoinHandle<()>,
}

/// Where a link reports; returns false once nobody listens.
pub type Events = Box<dyn Fn(LinkEvent) -> bool + Send>;

/// Requests rumqttc may queue before `try_*` calls fail.
const REQUEST_QUEUE: usize = 512;

/// Builds the TLS client configuration from the configured files.
pub fn tls_config(config: &UpstreamConfig) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = &config.ca {
        let certs = pem::certs(ca).map_err(|e| format!("upstream CA {e}"))?;
        if certs.is_empty() {
            return Err(format!("upstream CA {}: no certificate in it", ca.display()));
        }
        roots = pem::roots(certs).map_err(|e| format!("upstream CA {}: {e}", ca.display()))?;
    }
    let identity = match (&config.cert, &config.key) {
        (Some(cert), Some(key)) => Some((
            pem::certs(cert).map_err(|e| format!("upstream certificate {e}"))?,
            pem::key(key).map_err(|e| format!("upstream key {e}"))?,
        )),
        _ => None,
    };
    let mut tls = pem::client_config(roots, identity).map_err(|e| format!("upstream {e}"))?;
    tls.alpn_protocols = config.endpoint.alpn();
    Ok(Arc::new(tls))
}

/// TCP_NODELAY: a PUBACK or small publish must not wait for Nagle's algorithm.
fn nodelay() -> rumqttc::NetworkOptions {
    let mut options = rumqttc::NetworkOptions::new();
    options.set_tcp_nodelay(true);
    options
}

fn transport(tls: Option<&Arc<rustls::ClientConfig>>) -> Transport {
    match tls {
        Some(tls) => Transport::tls_with_config(TlsConfiguration::Rustls(Arc::clone(tls))),
        None => Transport::tcp(),
    }
}

impl Link {
    /// Starts connecting; events go to `events` (until it returns false, or after
    /// [`LinkEvent::Closed`]).
    pub fn open(
        config: &UpstreamConfig,
        tls: Option<&Arc<rustls::ClientConfig>>,
        inflight: u16,
        events: Events,
        incoming: CreditPool,
    ) -> Self {
        let (host, port) = (config.endpoint.host.clone(), config.endpoint.port);
        match config.version {
            MqttVersion::V311 => {
                let mut options = rumqttc::MqttOptions::new(&config.client_id, host, port);
                options
                    .set_keep_alive(config.keepalive)
                    .set_clean_session(true)
                    .set_manual_acks(true)
                    .set_inflight(inflight)
                    .set_max_packet_size(256 * 1024, 256 * 1024)
                    .set_transport(transport(tls));
                let (client, mut eventloop) = rumqttc::AsyncClient::new(options, REQUEST_QUEUE);
                eventloop.set_network_options(nodelay());
                let pump = tokio::spawn(pump_v311(eventloop, events, incoming));
                Self { client: Client::V311(client), pump }
            }
            MqttVersion::V5 => {
                let mut options = rumqttc::v5::MqttOptions::new(&config.client_id, host, port);
                options
                    .set_keep_alive(config.keepalive)
                    .set_clean_start(true)
                    .set_manual_acks(true)
                    .set_outgoing_inflight_upper_limit(inflight)
                    .set_max_packet_size(Some(256 * 1024))
                    .set_transport(transport(tls))
                    .set_network_options(nodelay());
                let (client, eventloop) = rumqttc::v5::AsyncClient::new(options, REQUEST_QUEUE);
                let pump = tokio::spawn(pump_v5(eventloop, events, incoming));
                Self { client: Client::V5(client), pump }
            }
        }
    }

    /// Queues a QoS 1 publish (its properties only over MQTT 5, which has them).
    pub fn publish(
        &self,
        topic: &str,
        payload: Vec<u8>,
        retain: bool,
        properties: Option<&MessageProperties>,
    ) -> Result<(), UpstreamError> {
        let qos5 = rumqttc::v5::mqttbytes::QoS::AtLeastOnce;
        match (&self.client, properties) {
            (Client::V311(c), _) => {
                c.try_publish(topic, rumqttc::QoS::AtLeastOnce, retain, payload).map_err(refused("publish"))
            }
            (Client::V5(c), None) => c.try_publish(topic, qos5, retain, payload).map_err(refused("publish")),
            (Client::V5(c), Some(p)) => {
                c.try_publish_with_properties(topic, qos5, retain, payload, to_v5(p)).map_err(refused("publish"))
            }
        }
    }

    /// Queues a QoS 1 subscribe.
    pub fn subscribe(&self, filter: &str) -> Result<(), UpstreamError> {
        match &self.client {
            Client::V311(c) => c.try_subscribe(filter, rumqttc::QoS::AtLeastOnce).map_err(refused("subscribe")),
            Client::V5(c) => {
                c.try_subscribe(filter, rumqttc::v5::mqttbytes::QoS::AtLeastOnce).map_err(refused("subscribe"))
            }
        }
    }

    /// Queues an unsubscribe.
    pub fn unsubscribe(&self, filter: &str) -> Result<(), UpstreamError> {
        match &self.client {
            Client::V311(c) => c.try_unsubscribe(filter).map_err(refused("unsubscribe")),
            Client::V5(c) => c.try_unsubscribe(filter).map_err(refused("unsubscribe")),
        }
    }

    /// Acknowledges a message that was handed on.
    pub fn ack(&self, message: &Incoming) {
        let result = match (&self.client, &message.ack) {
            (Client::V311(c), Ack::V311(p)) => c.try_ack(p).map_err(|e| e.to_string()),
            (Client::V5(c), Ack::V5(p)) => c.try_ack(p).map_err(|e| e.to_string()),
            _ => Ok(()),
        };
        if let Err(error) = result {
            tracing::debug!(error, "cannot acknowledge an upstream message; the broker will resend it");
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.pump.abort();
    }
}

async fn pump_v311(mut eventloop: rumqttc::EventLoop, events: Events, incoming: CreditPool) {
    use rumqttc::{Event, Outgoing, Packet, SubscribeReasonCode};
    loop {
        let event = match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => LinkEvent::Connected,
            Ok(Event::Incoming(Packet::PubAck(ack))) => LinkEvent::Acked { pkid: ack.pkid, refused: None },
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let refused = ack.return_codes.iter().filter(|c| matches!(c, SubscribeReasonCode::Failure)).count();
                if refused == 0 {
                    continue;
                }
                LinkEvent::SubscribeRefused(refused)
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let credit = incoming.acquire(incoming.cost(&p.topic, &p.payload)).await;
                LinkEvent::Message(Incoming {
                    topic: p.topic.clone(),
                    payload: p.payload.clone(),
                    properties: None,
                    credit,
                    ack: Ack::V311(p),
                })
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => LinkEvent::Sent(pkid),
            Ok(_) => continue,
            Err(error) => {
                events(LinkEvent::Closed(error.to_string()));
                return;
            }
        };
        if !events(event) {
            return;
        }
    }
}

async fn pump_v5(mut eventloop: rumqttc::v5::EventLoop, events: Events, incoming: CreditPool) {
    use rumqttc::Outgoing;
    use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason, SubscribeReasonCode};
    use rumqttc::v5::{Event, Incoming as V5Incoming};
    loop {
        let event = match eventloop.poll().await {
            Ok(Event::Incoming(V5Incoming::ConnAck(_))) => LinkEvent::Connected,
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                let refused = match ack.reason {
                    PubAckReason::Success | PubAckReason::NoMatchingSubscribers => None,
                    other => Some(format!("{other:?}")),
                };
                LinkEvent::Acked { pkid: ack.pkid, refused }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let refused = ack.return_codes.iter().filter(|c| !matches!(c, SubscribeReasonCode::Success(_))).count();
                if refused == 0 {
                    continue;
                }
                LinkEvent::SubscribeRefused(refused)
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let topic = String::from_utf8_lossy(&p.topic).into_owned();
                let credit = incoming.acquire(incoming.cost(&topic, &p.payload)).await;
                let properties = p.properties.as_ref().and_then(carried).map(Arc::new);
                LinkEvent::Message(Incoming {
                    topic,
                    payload: p.payload.clone(),
                    properties,
                    credit,
                    ack: Ack::V5(Box::new(p)),
                })
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => LinkEvent::Sent(pkid),
            Ok(_) => continue,
            Err(error) => {
                events(LinkEvent::Closed(error.to_string()));
                return;
            }
        };
        if !events(event) {
            return;
        }
    }
}

/// Maps an MQTT client's refusal to queue a request.
fn refused<E: std::fmt::Display>(action: &'static str) -> impl Fn(E) -> UpstreamError {
    move |e| UpstreamError::Link { action, reason: e.to_string() }
}
