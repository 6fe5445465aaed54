//! The MQTT bridge (`aws.greengrass.clientdevices.mqtt.Bridge`): relays messages between
//! LocalMqtt (the device broker), the local pubsub bus and IotCore.
//!
//! The `Bridge` actor owns the validated routes. Messages in: [`ConfigureBridge`] (from
//! deployments), [`DeviceMessage`] (broker taps), [`PubsubMessage`] (bus). Messages out:
//! [`SetTaps`] and [`PublishToDevices`] to the broker, [`Subscribe`]/[`UnsubscribeAll`]/[`Publish`]
//! to the bus. As in Greengrass it republishes at QoS 1 with the retain flag cleared. It never
//! receives its own pubsub publishes (it subscribes "from others"), and its publishes to devices
//! never pass through the broker's taps, so two-way routes on one filter cannot loop. IotCore
//! routes stay inactive until an upstream is configured, and say so once.
//!
//! - `routes`: parsing `mqttTopicMapping` and matching routes (pure).

pub mod routes;

use std::collections::HashSet;

use actix::prelude::*;

use self::routes::{BridgeConfig, Endpoint};
use crate::broker::{DeviceMessage, PublishToDevices, SetTaps};
use crate::pubsub::subscriptions::ReceiveMode;
use crate::pubsub::{Publish, PubsubMessage, Subscribe, UnsubscribeAll};

/// Component name of the bridge, also its identity on the pubsub bus.
pub const COMPONENT_NAME: &str = "aws.greengrass.clientdevices.mqtt.Bridge";

/// Apply a new validated configuration.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ConfigureBridge(pub BridgeConfig);

/// Where the bridge sends things; wired by the supervisor.
pub struct BridgePeers {
    /// Broker: tap registration.
    pub taps: Recipient<SetTaps>,
    /// Broker: publishing to devices.
    pub to_devices: Recipient<PublishToDevices>,
    /// Bus: subscribing.
    pub subscribe: Recipient<Subscribe>,
    /// Bus: dropping all subscriptions.
    pub unsubscribe_all: Recipient<UnsubscribeAll>,
    /// Bus: publishing.
    pub publish: Recipient<Publish>,
}

/// The bridge service.
pub struct Bridge {
    config: BridgeConfig,
    peers: BridgePeers,
    warned_inactive: HashSet<String>,
}

impl Bridge {
    /// A bridge with no routes.
    pub fn new(peers: BridgePeers) -> Self {
        Self { config: BridgeConfig::default(), peers, warned_inactive: HashSet::new() }
    }

    fn configure(&mut self, config: BridgeConfig, me: &Addr<Self>) {
        self.peers.taps.do_send(SetTaps {
            owner: COMPONENT_NAME.to_owned(),
            filters: config.source_filters(Endpoint::LocalMqtt),
            recipient: me.clone().recipient(),
        });
        self.peers.unsubscribe_all.do_send(UnsubscribeAll { subscriber: COMPONENT_NAME.to_owned() });
        for filter in config.source_filters(Endpoint::Pubsub) {
            self.peers.subscribe.do_send(Subscribe {
                subscriber: COMPONENT_NAME.to_owned(),
                filter,
                mode: Some(ReceiveMode::FromOthers),
                recipient: me.clone().recipient(),
            });
        }
        self.warned_inactive.clear();
        for route in config.routes().iter().filter(|r| r.source == Endpoint::IotCore || r.target == Endpoint::IotCore) {
            self.warn_inactive(&route.name);
        }
        tracing::info!(routes = config.routes().len(), "bridge configured");
        self.config = config;
    }

    fn warn_inactive(&mut self, route: &str) {
        if self.warned_inactive.insert(route.to_owned()) {
            tracing::warn!(
                route,
                "bridge route uses IotCore, but no upstream broker is configured; the route is inactive"
            );
        }
    }

    fn relay_device_message(&mut self, msg: DeviceMessage) {
        let mut inactive = Vec::new();
        for (route, target_topic) in self.config.forwards(Endpoint::LocalMqtt, &msg.topic) {
            match route.target {
                Endpoint::Pubsub => self.peers.publish.do_send(Publish {
                    publisher: COMPONENT_NAME.to_owned(),
                    topic: target_topic,
                    payload: msg.payload.clone(),
                }),
                Endpoint::IotCore => inactive.push(route.name.clone()),
                Endpoint::LocalMqtt => {}
            }
        }
        inactive.iter().for_each(|name| self.warn_inactive(name));
    }

    fn relay_pubsub_message(&mut self, msg: PubsubMessage) {
        let mut inactive = Vec::new();
        for (route, target_topic) in self.config.forwards(Endpoint::Pubsub, &msg.topic) {
            match route.target {
                Endpoint::LocalMqtt => self.peers.to_devices.do_send(PublishToDevices {
                    topic: target_topic,
                    payload: msg.payload.clone(),
                    qos: 1,
                    retain: false,
                }),
                Endpoint::IotCore => inactive.push(route.name.clone()),
                Endpoint::Pubsub => {}
            }
        }
        inactive.iter().for_each(|name| self.warn_inactive(name));
    }
}

impl Actor for Bridge {
    type Context = Context<Self>;
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
        self.relay_device_message(msg);
    }
}

impl Handler<PubsubMessage> for Bridge {
    type Result = ();

    fn handle(&mut self, msg: PubsubMessage, _ctx: &mut Self::Context) {
        self.relay_pubsub_message(msg);
    }
}
