//! A component's inbox: the bounded queue between the bus (and the upstream link) and the
//! component actor.
//!
//! The bus and the upstream service never wait for a subscriber, and a component may take up to
//! its call budget per message, so messages for a component that is busy have to wait
//! somewhere. They wait here, not in the component actor's mailbox: at most [`Bounds`] messages
//! and bytes (`queue_messages`, `queue_bytes` of the component's limits), and beyond that the
//! *oldest* is dropped and counted in the component's usage, as Greengrass's IPC subscription
//! queue does. The inbox hands the component one
//! message at a time and sends the next once that one was handled, so the component's mailbox
//! holds at most one delivery. A device message's flow credit (see [`crate::flow`]) returns when
//! the message enters the inbox: a slow component loses its oldest messages instead of slowing
//! every device. Messages in: [`PubsubMessage`], [`UpstreamMessage`] (to queue), [`SetBounds`]. Messages out:
//! the same, to the component actor. It never calls a guest itself.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::FutureExt;

use super::budget::Usage;
use crate::flow::Credit;
use crate::pubsub::PubsubMessage;
use crate::upstream::UpstreamMessage;

/// How much one inbox holds, and where its drops are counted.
#[derive(Debug, Clone)]
pub struct Bounds {
    /// Messages.
    pub messages: usize,
    /// Bytes of topics and payloads.
    pub bytes: usize,
    /// The component's counters.
    pub usage: Arc<Usage>,
}
/// Shortest interval between two "messages dropped" log lines of one inbox.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// One queued message.
enum Delivery {
    Pubsub(PubsubMessage),
    Upstream(UpstreamMessage),
}

impl Delivery {
    fn bytes(&self) -> usize {
        match self {
            Delivery::Pubsub(m) => m.topic.len() + m.payload.len(),
            Delivery::Upstream(m) => m.topic.len() + m.payload.len(),
        }
    }
}

/// The queue itself (pure, so its bound is unit-tested).
struct Queue {
    items: VecDeque<Delivery>,
    bytes: usize,
    dropped: u64,
    bounds: Bounds,
}

impl Queue {
    fn new(bounds: Bounds) -> Self {
        Self { items: VecDeque::new(), bytes: 0, dropped: 0, bounds }
    }

    /// Appends `delivery`, dropping the oldest messages while the queue is over its bounds.
    fn push(&mut self, delivery: Delivery) {
        self.bytes += delivery.bytes();
        self.items.push_back(delivery);
        let (max_messages, max_bytes) = (self.bounds.messages.max(1), self.bounds.bytes);
        while self.items.len() > max_messages || (self.bytes > max_bytes && self.items.len() > 1) {
            if let Some(oldest) = self.items.pop_front() {
                self.bytes -= oldest.bytes();
                self.dropped += 1;
                Usage::add(&self.bounds.usage.dropped_messages, 1);
            }
        }
    }

    fn pop(&mut self) -> Option<Delivery> {
        let delivery = self.items.pop_front()?;
        self.bytes -= delivery.bytes();
        Some(delivery)
    }
}

/// The inbox of one component.
pub struct ComponentInbox {
    name: String,
    queue: Queue,
    busy: bool,
    pubsub: Recipient<PubsubMessage>,
    upstream: Recipient<UpstreamMessage>,
    logged_dropped: u64,
    last_log: Option<Instant>,
}

impl ComponentInbox {
    /// An inbox that feeds the component `name` through these recipients.
    pub fn new(
        name: String,
        bounds: Bounds,
        pubsub: Recipient<PubsubMessage>,
        upstream: Recipient<UpstreamMessage>,
    ) -> Self {
        Self { name, queue: Queue::new(bounds), busy: false, pubsub, upstream, logged_dropped: 0, last_log: None }
    }

    fn push(&mut self, delivery: Delivery, ctx: &mut Context<Self>) {
        self.queue.push(delivery);
        self.report_drops();
        self.pump(ctx);
    }

    fn report_drops(&mut self) {
        let new = self.queue.dropped - self.logged_dropped;
        if new == 0 || self.last_log.is_some_and(|t| t.elapsed() < LOG_EVERY) {
            return;
        }
        tracing::warn!(
            component = self.name,
            dropped = new,
            total = self.queue.dropped,
            limit = self.queue.bounds.messages,
            "component is slower than its messages: oldest queued messages dropped"
        );
        self.logged_dropped = self.queue.dropped;
        self.last_log = Some(Instant::now());
    }

    /// Hands the next message to the component unless it is still handling the previous one.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        let Some(delivery) = self.queue.pop() else { return };
        self.busy = true;
        let handled = match delivery {
            Delivery::Pubsub(m) => self.pubsub.send(m).boxed_local(),
            Delivery::Upstream(m) => self.upstream.send(m).boxed_local(),
        };
        ctx.spawn(handled.into_actor(self).map(|result, act, ctx| {
            act.busy = false;
            match result {
                Ok(()) => act.pump(ctx),
                // The component actor is gone; so is the point of this inbox.
                Err(_) => ctx.stop(),
            }
        }));
    }
}

impl Actor for ComponentInbox {
    type Context = Context<Self>;
}

/// New bounds (a new version of the component with other limits).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetBounds(pub Bounds);

impl Handler<SetBounds> for ComponentInbox {
    type Result = ();

    fn handle(&mut self, msg: SetBounds, _ctx: &mut Self::Context) {
        self.queue.bounds = msg.0;
    }
}

impl Handler<PubsubMessage> for ComponentInbox {
    type Result = ();

    fn handle(&mut self, mut msg: PubsubMessage, ctx: &mut Self::Context) {
        msg.credit = Credit::none();
        self.push(Delivery::Pubsub(msg), ctx);
    }
}

impl Handler<UpstreamMessage> for ComponentInbox {
    type Result = ();

    fn handle(&mut self, mut msg: UpstreamMessage, ctx: &mut Self::Context) {
        msg.credit = Credit::none();
        self.push(Delivery::Upstream(msg), ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: usize, size: usize) -> Delivery {
        Delivery::Pubsub(PubsubMessage {
            topic: format!("t/{n}"),
            payload: vec![b'x'; size].into(),
            publisher: "p".to_owned(),
            credit: Credit::none(),
            span: tracing::Span::none(),
        })
    }

    const MAX_QUEUED: usize = 1000;
    const MAX_QUEUED_BYTES: usize = 1 << 20;

    fn queue() -> Queue {
        Queue::new(Bounds { messages: MAX_QUEUED, bytes: MAX_QUEUED_BYTES, usage: Arc::default() })
    }

    fn topics(queue: &Queue) -> Vec<String> {
        queue
            .items
            .iter()
            .map(|d| match d {
                Delivery::Pubsub(m) => m.topic.clone(),
                Delivery::Upstream(m) => m.topic.clone(),
            })
            .collect()
    }

    #[test]
    fn beyond_the_message_bound_the_oldest_are_dropped_and_counted() {
        let mut queue = queue();
        for n in 0..MAX_QUEUED + 5 {
            queue.push(message(n, 1));
        }
        assert_eq!(queue.items.len(), MAX_QUEUED);
        assert_eq!(queue.dropped, 5);
        assert_eq!(queue.bounds.usage.report(0).dropped_messages, 5, "counted where the operator sees it");
        assert_eq!(topics(&queue).first().map(String::as_str), Some("t/5"));
    }

    #[test]
    fn beyond_the_byte_bound_the_oldest_are_dropped_but_the_newest_stays() {
        let mut queue = queue();
        queue.push(message(0, MAX_QUEUED_BYTES / 2));
        queue.push(message(1, MAX_QUEUED_BYTES / 2));
        queue.push(message(2, 10));
        assert_eq!(topics(&queue), ["t/1", "t/2"]);
        queue.push(message(3, MAX_QUEUED_BYTES * 2));
        assert_eq!(topics(&queue), ["t/3"], "one oversized message is kept on its own");
        assert_eq!(queue.dropped, 3);
        assert_eq!(queue.pop().map(|d| d.bytes()), Some(3 + MAX_QUEUED_BYTES * 2));
        assert_eq!(queue.bytes, 0);
    }
}
