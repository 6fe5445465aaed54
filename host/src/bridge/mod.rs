//! The MQTT bridge (`aws.greengrass.clientdevices.mqtt.Bridge`): relays messages between
//! LocalMqtt (the device broker), the local pubsub bus and IotCore.
//!
//! The `Bridge` actor owns the validated routes. Messages in: [`ConfigureBridge`] (from
//! deployments), [`DeviceMessage`] (broker taps), [`PubsubMessage`] (bus), [`UpstreamMessage`]
//! (upstream broker). Messages out: [`SetTaps`] and [`PublishToDevices`] to the broker,
//! [`Subscribe`]/[`UnsubscribeAll`]/[`Publish`] to the bus, [`PublishUpstream`] and
//! [`SubscribeUpstream`]/[`UnsubscribeUpstream`] to the upstream service. As in Greengrass it
//! republishes at QoS 1 with the retain flag cleared (kept for a device message on a route with
//! `mqtt5RouteOptions.<route>.retainAsPublished`), and carries a message's MQTT 5 properties
//! (content type, correlation data, response topic, expiry, payload format, user properties)
//! between devices and the upstream broker; the pubsub bus has no such properties, as in
//! Greengrass. It never receives its own pubsub
//! publishes (it subscribes "from others"), and its publishes to devices never pass through the
//! broker's taps, so two-way routes on one filter cannot loop. IotCore routes stay inactive
//! when no upstream broker is configured, and say so once. A relayed message's flow credit
//! (see [`crate::flow`]) goes into every copy it sends, so the device that sent it is slowed
//! down until the slowest destination is done with it.
//!
//! - `routes`: parsing `mqttTopicMapping` and matching routes (pure).

pub mod routes;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use self::routes::{BridgeConfig, Endpoint};
use crate::broker::{BrokerHandle, DeviceMessage, PublishToDevices, SetTaps};
use crate::flow::Credit;
use crate::properties::MessageProperties;
use crate::pubsub::subscriptions::ReceiveMode;
use crate::pubsub::{BusHandle, Publish, PubsubMessage, Subscribe, UnsubscribeAll};
use crate::upstream::{PublishUpstream, SubscribeUpstream, UnsubscribeUpstream, UpstreamHandle, UpstreamMessage};

/// Component name of the bridge, also its identity on the pubsub bus.
pub const COMPONENT_NAME: &str = "aws.greengrass.clientdevices.mqtt.Bridge";

/// Apply a new validated configuration.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ConfigureBridge(pub BridgeConfig);

/// Messages relayed along one route in one direction since the host started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteCount {
    /// The route's name (`mqttTopicMapping` key).
    pub route: String,
    /// Where the messages came from.
    pub source: String,
    /// Where they went.
    pub target: String,
    /// How many.
    pub messages: u64,
}

/// Messages relayed since start, per route and direction.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Vec<RouteCount>")]
pub struct GetBridgeCounts;

/// What the bridge offers, built once by the supervisor.
#[derive(Clone)]
pub struct BridgeHandle {
    /// Apply new routes.
    pub configure: Recipient<ConfigureBridge>,
    /// Messages relayed per route.
    pub counts: Recipient<GetBridgeCounts>,
}

impl BridgeHandle {
    /// The handle of a running bridge.
    pub fn of(bridge: &Addr<Bridge>) -> Self {
        Self { configure: bridge.clone().recipient(), counts: bridge.clone().recipient() }
    }
}

/// The bridge service.
pub struct Bridge {
    config: BridgeConfig,
    broker: BrokerHandle,
    bus: BusHandle,
    upstream: UpstreamHandle,
    warned_inactive: HashSet<String>,
    /// Messages relayed since start, by route and direction (routes since removed included).
    /// Keyed by route name first, so counting a message allocates nothing once its route has
    /// been counted.
    relayed: BTreeMap<String, BTreeMap<(Endpoint, Endpoint), u64>>,
}

impl Bridge {
    /// A bridge with no routes between the broker, the bus and the upstream.
    pub fn new(broker: BrokerHandle, bus: BusHandle, upstream: UpstreamHandle) -> Self {
        Self {
            config: BridgeConfig::default(),
            broker,
            bus,
            upstream,
            warned_inactive: HashSet::new(),
            relayed: BTreeMap::new(),
        }
    }

    fn configure(&mut self, config: BridgeConfig, me: &Addr<Self>) {
        self.broker.taps.do_send(SetTaps {
            owner: COMPONENT_NAME.to_owned(),
            filters: config.source_filters(Endpoint::LocalMqtt),
            recipient: me.clone().recipient(),
        });
        self.bus.unsubscribe_all.do_send(UnsubscribeAll { subscriber: COMPONENT_NAME.to_owned() });
        for filter in config.source_filters(Endpoint::Pubsub) {
            self.bus.subscribe.do_send(Subscribe {
                subscriber: COMPONENT_NAME.to_owned(),
                filter,
                mode: Some(ReceiveMode::FromOthers),
                recipient: me.clone().recipient(),
            });
        }
        self.warned_inactive.clear();
        self.upstream.unsubscribe.do_send(UnsubscribeUpstream { subscriber: COMPONENT_NAME.to_owned(), filter: None });
        if self.upstream.configured {
            for filter in config.source_filters(Endpoint::IotCore) {
                self.upstream.subscribe.do_send(SubscribeUpstream {
                    subscriber: COMPONENT_NAME.to_owned(),
                    filter,
                    recipient: me.clone().recipient(),
                });
            }
        } else {
            for route in
                config.routes().iter().filter(|r| r.source == Endpoint::IotCore || r.target == Endpoint::IotCore)
            {
                self.warn_inactive(&route.name);
            }
        }
        tracing::info!(routes = config.routes().len(), "bridge configured");
        self.config = config;
    }

    fn warn_inactive(&mut self, route: &str) {
        if self.warned_inactive.insert(route.to_owned()) {
            tracing::warn!(
                route,
                "bridge route uses IotCore, but no upstream broker is configured (turf run --upstream); the route is inactive"
            );
        }
    }

    /// Sends a message to the upstream broker, or notes the route as inactive without one.
    fn send_upstream(&mut self, route: &str, topic: String, message: &Relayed<'_>, retain: bool) {
        if self.upstream.configured {
            let publish = PublishUpstream {
                topic,
                payload: message.payload.clone(),
                retain,
                properties: message.properties.cloned(),
                credit: message.credit.clone(),
            };
            self.upstream.publish.do_send(publish);
        } else {
            self.warn_inactive(route);
        }
    }

    /// Sends a message that arrived from `source` along every route from there whose filter
    /// matches its topic (a route never sends back to where the message came from).
    /// The message's `credit` goes with every copy.
    fn relay(&mut self, source: Endpoint, message: &Relayed<'_>) {
        let _path = message.span.enter();
        let mut upstream = Vec::new();
        for (route, target_topic) in self.config.forwards(source, message.topic) {
            let retain = message.retain && route.retain_as_published;
            tracing::debug!(route = route.name, target = ?route.target, topic = target_topic, "relayed");
            // An IotCore route without an upstream is inactive: nothing is relayed along it.
            let active = route.target != Endpoint::IotCore || self.upstream.configured;
            if route.target != source && active {
                let directions = match self.relayed.get_mut(route.name.as_str()) {
                    Some(directions) => directions,
                    None => self.relayed.entry(route.name.clone()).or_default(),
                };
                *directions.entry((source, route.target)).or_default() += 1;
            }
            match route.target {
                target if target == source => {}
                Endpoint::Pubsub => self.bus.publish.do_send(Publish {
                    publisher: COMPONENT_NAME.to_owned(),
                    topic: target_topic,
                    payload: message.payload.clone(),
                    credit: message.credit.clone(),
                    span: message.span.clone(),
                }),
                Endpoint::LocalMqtt => self.broker.to_devices.do_send(PublishToDevices {
                    topic: target_topic,
                    payload: message.payload.clone(),
                    qos: 1,
                    retain,
                    properties: message.properties.cloned(),
                    credit: message.credit.clone(),
                }),
                Endpoint::IotCore => upstream.push((route.name.clone(), target_topic, retain)),
            }
        }
        for (route, topic, retain) in upstream {
            self.send_upstream(&route, topic, message, retain);
        }
    }
}

/// A message the bridge relays, as it arrived from its source.
struct Relayed<'a> {
    topic: &'a str,
    payload: &'a bytes::Bytes,
    /// Set only by a device (LocalMqtt); kept only on `retainAsPublished` routes.
    retain: bool,
    properties: Option<&'a Arc<MessageProperties>>,
    credit: &'a Credit,
    /// The path it belongs to (`Span::current()` when it came from elsewhere).
    span: &'a tracing::Span,
}

impl Actor for Bridge {
    type Context = Context<Self>;
}

impl Handler<GetBridgeCounts> for Bridge {
    type Result = MessageResult<GetBridgeCounts>;

    fn handle(&mut self, _msg: GetBridgeCounts, _ctx: &mut Self::Context) -> Self::Result {
        let counts = self.relayed.iter().flat_map(|(route, directions)| {
            directions.iter().map(move |((source, target), messages)| RouteCount {
                route: route.clone(),
                source: source.to_string(),
                target: target.to_string(),
                messages: *messages,
            })
        });
        MessageResult(counts.collect())
    }
}

impl Handler<ConfigureBridge> for Bridge {
    type Result = ();

    fn handle(&mut self, msg: ConfigureBridge, ctx: &mut Self::Context) {
        self.configure(msg.0, &ctx.address());
    }
}

impl Handler<DeviceMessage> for Bridge {
    type Result = ();

    fn handle(&mut self, msg: DeviceMessage, _ctx: &mut Self::Context) {
        let message = Relayed {
            topic: &msg.topic,
            payload: &msg.payload,
            retain: msg.retain,
            properties: msg.properties.as_ref(),
            credit: &msg.credit,
            span: &msg.span,
        };
        self.relay(Endpoint::LocalMqtt, &message);
    }
}

impl Handler<UpstreamMessage> for Bridge {
    type Result = ();

    fn handle(&mut self, msg: UpstreamMessage, _ctx: &mut Self::Context) {
        let message = Relayed {
            topic: &msg.topic,
            payload: &msg.payload,
            retain: false,
            properties: msg.properties.as_ref(),
            credit: &msg.credit,
            span: &tracing::Span::current(),
        };
        self.relay(Endpoint::IotCore, &message);
    }
}

impl Handler<PubsubMessage> for Bridge {
    type Result = ();

    fn handle(&mut self, msg: PubsubMessage, _ctx: &mut Self::Context) {
        let message = Relayed {
            topic: &msg.topic,
            payload: &msg.payload,
            retain: false,
            properties: None,
            credit: &msg.credit,
            span: &msg.span,
        };
        self.relay(Endpoint::Pubsub, &message);
    }
}

#[cfg(test)]
mod tests;
