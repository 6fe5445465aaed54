//! What the broker service offers: the messages it takes and its handle.

use std::sync::Arc;

use actix::prelude::*;
use bytes::Bytes;

use super::Broker;
use super::hooks::DeviceMessage;
use super::stats::BrokerStatus;
use crate::devices::{AuthChanged, TlsChanged};
use crate::flow::Credit;

/// Replace the taps owned by `owner` with `filters` → `recipient`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetTaps {
    /// Service that owns the taps.
    pub owner: String,
    /// Topic filters to copy.
    pub filters: Vec<String>,
    /// Where copies go.
    pub recipient: Recipient<DeviceMessage>,
}

/// Publish a message to devices subscribed on the broker, as the host.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct PublishToDevices {
    /// Topic name.
    pub topic: String,
    /// Payload.
    pub payload: Bytes,
    /// QoS 0, 1 or 2.
    pub qos: u8,
    /// Retain flag.
    pub retain: bool,
    /// MQTT 5 properties to publish it with.
    pub properties: Option<Arc<crate::properties::MessageProperties>>,
    /// The device credit of the message this one relays, if any (returned once routed).
    pub credit: Credit,
}

/// The broker's queues and counters.
#[derive(Message)]
#[rtype(result = "BrokerStatus")]
pub struct GetBrokerStatus;

/// The sessions admitted and the latest refusals.
#[derive(Message)]
#[rtype(result = "super::clients::ClientsReport")]
pub struct ListClients;

/// Stop listening and disconnect every client; replies once done.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopBroker;

/// What the broker offers, built once by the supervisor.
#[derive(Clone)]
pub struct BrokerHandle {
    /// Who may connect and what they may do.
    pub auth: Recipient<AuthChanged>,
    /// Reload the server certificate and the accepted client CAs.
    pub tls: Recipient<TlsChanged>,
    /// Copy device messages on some filters to a service.
    pub taps: Recipient<SetTaps>,
    /// Publish to devices as the host.
    pub to_devices: Recipient<PublishToDevices>,
    /// Queues and counters.
    pub status: Recipient<GetBrokerStatus>,
    /// Sessions and recent refusals.
    pub clients: Recipient<ListClients>,
    /// Stop listening (shutdown).
    pub stop: Recipient<StopBroker>,
}

impl BrokerHandle {
    /// The handle of a running broker.
    pub fn of(broker: &Addr<Broker>) -> Self {
        Self {
            auth: broker.clone().recipient(),
            tls: broker.clone().recipient(),
            taps: broker.clone().recipient(),
            to_devices: broker.clone().recipient(),
            status: broker.clone().recipient(),
            clients: broker.clone().recipient(),
            stop: broker.clone().recipient(),
        }
    }
}
