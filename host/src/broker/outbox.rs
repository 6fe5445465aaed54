//! The host's outbox to devices: publishes from host services, routed one at a time.
//!
//! Routing a message to devices may wait for a subscriber's queue space (flow control), and that
//! wait must not block the broker actor. So [`super::PublishToDevices`] lands here and a task
//! routes the queued messages in order. A message that carries a device's credit (a relayed
//! device message, or the shadow manager's answer to one) is already bounded by the host's
//! pool and is never dropped here; any other takes credit for its size from the outbox's own
//! bounded pool, or is dropped, counted as `host_outbox_full`, when that pool is empty. Credits
//! return once the message reached every subscriber's session. Nothing else in the crate routes
//! host publishes.

use std::sync::Arc;

use bytes::Bytes;
use rmqtt::codec::types::{Publish as CodecPublish, QoS};
use rmqtt::context::ServerContext;
use rmqtt::session::SessionState;
use rmqtt::types::{From, Id, Publish};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::PublishToDevices;
use super::stats::{BrokerCounters, DropReason};
use crate::flow::{Credit, CreditPool};

/// The sending side; the routing task ends when it is dropped.
pub struct Outbox {
    queue: mpsc::UnboundedSender<(PublishToDevices, Credit)>,
    pool: CreditPool,
    counters: Arc<BrokerCounters>,
}

impl Outbox {
    /// Starts the routing task on the broker's runtime.
    pub fn start(
        runtime: &tokio::runtime::Handle,
        scx: ServerContext,
        host_id: Id,
        bytes: u32,
        counters: Arc<BrokerCounters>,
    ) -> (Self, JoinHandle<()>) {
        let (queue, mut queued) = mpsc::unbounded_channel::<(PublishToDevices, Credit)>();
        let task = runtime.spawn(async move {
            while let Some((msg, credit)) = queued.recv().await {
                route(&scx, &host_id, msg).await;
                drop(credit);
            }
        });
        (Self { queue, pool: CreditPool::new(bytes), counters }, task)
    }

    /// Queues `msg`, or drops it (counted) when the outbox is full.
    pub fn push(&self, msg: PublishToDevices) {
        if msg.credit.bytes() > 0 {
            if self.queue.send((msg, Credit::none())).is_err() {
                self.counters.dropped(DropReason::HostOutboxFull);
            }
            return;
        }
        let cost = self.pool.cost(&msg.topic, &msg.payload);
        match self.pool.try_acquire(cost) {
            Some(credit) => {
                if self.queue.send((msg, credit)).is_err() {
                    self.counters.dropped(DropReason::HostOutboxFull);
                }
            }
            None => self.counters.dropped(DropReason::HostOutboxFull),
        }
    }

    /// Bytes queued.
    pub fn in_use(&self) -> u32 {
        self.pool.in_use()
    }
}

fn qos(level: u8) -> QoS {
    match level {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

async fn route(scx: &ServerContext, host_id: &Id, msg: PublishToDevices) {
    let topic = msg.topic.clone();
    let publish = CodecPublish {
        dup: false,
        retain: msg.retain,
        qos: qos(msg.qos),
        topic: msg.topic.into(),
        packet_id: None,
        payload: Bytes::clone(&msg.payload),
        properties: msg.properties.as_deref().map(super::hooks::to_codec),
    };
    let publish = Publish::from(publish).create_time(rmqtt::utils::timestamp_millis());
    // A copy that could not be queued is counted by the broker's drop hook; no line per message.
    if let Err(error) = SessionState::forwards(scx, From::from_system(host_id.clone()), publish, false, None).await {
        tracing::debug!(topic, %error, "a host publish did not reach every subscriber");
    }
}
