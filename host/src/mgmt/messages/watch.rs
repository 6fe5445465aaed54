//! One live watch of the test client: a [`Watcher`] actor subscribed on the bus, as a broker tap
//! or upstream, turning each message into a server-sent event at once (it holds no host queue
//! credit) and handing it to the HTTP response through a bounded channel; a full channel drops
//! the event and counts it, a closed one stops the watch, which then drops its subscription.
//! At each keep-alive a watch also ends if the console session that opened it has ended (logout
//! or expiry), or if its browser has taken nothing for [`MAX_STALLED`] keep-alives in a row, so
//! no watch outlives its session and a stalled browser cannot hold a watch slot.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{ConsoleLimits, MessagesError, OPERATOR, Target, WatchServices};
use crate::broker::{DeviceMessage, SetTaps};
use crate::pubsub::{PubsubMessage, Subscribe, UnsubscribeAll};
use crate::topic;
use crate::upstream::{SubscribeUpstream, UnsubscribeUpstream, UpstreamMessage};

/// Most of a payload shown in an event, in bytes (the event says the full size).
const SHOWN_PAYLOAD: usize = 4096;

/// How often a watch writes a keep-alive line (and notices its browser left).
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// Keep-alives in a row a browser may leave unread before its watch ends.
pub const MAX_STALLED: u32 = 3;

/// Whether the session that opened a watch is still live.
pub type StillAllowed = Arc<dyn Fn() -> bool + Send + Sync>;

/// One message a watch saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenMessage {
    /// Topic.
    pub topic: String,
    /// Who published it: a component or service on the bus, a client id on LocalMqtt; none
    /// from upstream.
    pub from: Option<String>,
    /// The payload as text (invalid UTF-8 replaced), at most 4 KiB of it.
    pub payload: String,
    /// The payload's full size in bytes.
    pub bytes: usize,
    /// Events this browser was too slow to take since the previous one.
    pub dropped_before: u64,
}

/// What a watch hands its HTTP response.
#[derive(Debug, Clone)]
enum Event {
    Message(SeenMessage),
    KeepAlive,
}

impl Event {
    /// The event in the `text/event-stream` format.
    fn to_sse(&self) -> Bytes {
        match self {
            Event::Message(seen) => {
                let json = serde_json::to_string(seen).unwrap_or_default();
                Bytes::from(format!("event: message\ndata: {json}\n\n"))
            }
            Event::KeepAlive => Bytes::from_static(b": keep-alive\n\n"),
        }
    }
}

/// The watches running now.
#[derive(Debug, Default)]
pub struct Streams(AtomicUsize);

/// A place among the watches, given back when dropped.
struct StreamSlot(Arc<Streams>);

impl StreamSlot {
    fn take(streams: &Arc<Streams>, max: usize) -> Result<Self, MessagesError> {
        let taken = streams.0.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1));
        taken.map(|_| Self(Arc::clone(streams))).map_err(|_| MessagesError::TooManyStreams(max))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One live watch: subscribed to `filter` on `target` as `name`.
struct Watcher {
    name: String,
    target: Target,
    filter: String,
    services: WatchServices,
    events: mpsc::Sender<Event>,
    dropped: u64,
    allowed: StillAllowed,
    stalled: u32,
    _slot: StreamSlot,
}

impl Watcher {
    fn offer(&mut self, event: Event, ctx: &mut Context<Self>) {
        let event = match event {
            Event::Message(mut seen) => {
                seen.dropped_before = self.dropped;
                Event::Message(seen)
            }
            keep_alive => keep_alive,
        };
        let was_message = matches!(event, Event::Message(_));
        match self.events.try_send(event) {
            Ok(()) if was_message => self.dropped = 0,
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.dropped += u64::from(was_message),
            Err(mpsc::error::TrySendError::Closed(_)) => ctx.stop(),
        }
    }

    /// The keep-alive: ends the watch once its session ended or its browser stopped reading.
    fn keep_alive(&mut self, ctx: &mut Context<Self>) {
        if !(self.allowed)() {
            tracing::debug!(watch = self.name, "the console session that opened this watch ended");
            return ctx.stop();
        }
        match self.events.try_send(Event::KeepAlive) {
            Ok(()) => self.stalled = 0,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.stalled += 1;
                if self.stalled >= MAX_STALLED {
                    tracing::debug!(watch = self.name, "the browser stopped reading this watch");
                    ctx.stop();
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => ctx.stop(),
        }
    }

    fn seen(&mut self, topic: &str, from: Option<&str>, payload: &[u8], ctx: &mut Context<Self>) {
        let shown = &payload[..payload.len().min(SHOWN_PAYLOAD)];
        let seen = SeenMessage {
            topic: topic.to_owned(),
            from: from.map(str::to_owned),
            payload: String::from_utf8_lossy(shown).into_owned(),
            bytes: payload.len(),
            dropped_before: 0,
        };
        self.offer(Event::Message(seen), ctx);
    }
}

impl Actor for Watcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(KEEP_ALIVE, Self::keep_alive);
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        let name = self.name.clone();
        match self.target {
            Target::Pubsub => self.services.bus.unsubscribe_all.do_send(UnsubscribeAll { subscriber: name }),
            Target::LocalMqtt => self.services.broker.taps.do_send(SetTaps {
                owner: name,
                filters: Vec::new(),
                // No filters: the recipient is never used.
                recipient: ctx.address().recipient(),
            }),
            Target::IotCore => {
                self.services.upstream.unsubscribe.do_send(UnsubscribeUpstream { subscriber: name, filter: None })
            }
        }
        tracing::debug!(watch = self.name, filter = self.filter, "message watch ended");
    }
}

impl Handler<PubsubMessage> for Watcher {
    type Result = ();

    fn handle(&mut self, msg: PubsubMessage, ctx: &mut Self::Context) {
        self.seen(&msg.topic, Some(&msg.publisher), &msg.payload, ctx);
    }
}

impl Handler<DeviceMessage> for Watcher {
    type Result = ();

    fn handle(&mut self, msg: DeviceMessage, ctx: &mut Self::Context) {
        self.seen(&msg.topic, Some(&msg.client_id), &msg.payload, ctx);
    }
}

impl Handler<UpstreamMessage> for Watcher {
    type Result = ();

    fn handle(&mut self, msg: UpstreamMessage, ctx: &mut Self::Context) {
        self.seen(&msg.topic, None, &msg.payload, ctx);
    }
}

/// Names watches apart (`turf-console/watch-N`).
static WATCH_NUMBER: AtomicUsize = AtomicUsize::new(0);

/// Starts a watch of `filter` on `target`, for as long as `allowed` says; returns its events as
/// `text/event-stream` chunks.
pub async fn watch(
    services: WatchServices,
    streams: &Arc<Streams>,
    limits: ConsoleLimits,
    (target, filter): (Target, String),
    allowed: StillAllowed,
) -> Result<impl futures::Stream<Item = Result<Bytes, std::convert::Infallible>> + use<>, MessagesError> {
    topic::validate_filter(&filter).map_err(|reason| MessagesError::Topic {
        what: "filter",
        text: filter.clone(),
        reason,
    })?;
    if target == Target::IotCore && !services.upstream.configured {
        return Err(MessagesError::NoUpstream);
    }
    let slot = StreamSlot::take(streams, limits.max_watches)?;
    let name = format!("{OPERATOR}/watch-{}", WATCH_NUMBER.fetch_add(1, Ordering::Relaxed));
    let (events, received) = mpsc::channel(limits.watch_queue);
    let watcher = Watcher {
        name: name.clone(),
        target,
        filter: filter.clone(),
        services: services.clone(),
        events,
        dropped: 0,
        allowed,
        stalled: 0,
        _slot: slot,
    }
    .start();
    let gone = |e: MailboxError| MessagesError::Service(format!("host service unavailable: {e}"));
    let subscribed = match target {
        Target::Pubsub => {
            let request = Subscribe { subscriber: name, filter, mode: None, recipient: watcher.clone().recipient() };
            services.bus.subscribe.send(request).await.map_err(gone)?.map_err(|e| MessagesError::Service(e.to_string()))
        }
        Target::LocalMqtt => {
            let taps = SetTaps { owner: name, filters: vec![filter], recipient: watcher.clone().recipient() };
            services.broker.taps.send(taps).await.map_err(gone)
        }
        Target::IotCore => {
            let request = SubscribeUpstream { subscriber: name, filter, recipient: watcher.clone().recipient() };
            let answer = services.upstream.subscribe.send(request).await.map_err(gone)?;
            answer.map_err(|e| MessagesError::Service(e.to_string()))
        }
    };
    if let Err(refused) = subscribed {
        watcher.do_send(StopWatch);
        return Err(refused);
    }
    let opening = futures::stream::once(async { Ok(Bytes::from_static(b": watching\n\n")) });
    let events = futures::stream::unfold(received, |mut received| async move {
        received.recv().await.map(|event| (Ok(event.to_sse()), received))
    });
    Ok(futures::StreamExt::chain(opening, events))
}

/// Ends a watch that could not subscribe.
#[derive(Message)]
#[rtype(result = "()")]
struct StopWatch;

impl Handler<StopWatch> for Watcher {
    type Result = ();

    fn handle(&mut self, _msg: StopWatch, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_max_watches_slots_and_a_dropped_one_is_given_back() {
        let streams = Arc::new(Streams::default());
        let slots: Vec<StreamSlot> = (0..3).map(|_| StreamSlot::take(&streams, 3).unwrap()).collect();
        assert_eq!(StreamSlot::take(&streams, 3).err(), Some(MessagesError::TooManyStreams(3)));
        drop(slots);
        assert!(StreamSlot::take(&streams, 3).is_ok());
    }

    #[test]
    fn events_are_server_sent_events() {
        let seen = SeenMessage {
            topic: "a/b".into(),
            from: Some("Lamp".into()),
            payload: "line1\nline2".into(),
            bytes: 11,
            dropped_before: 0,
        };
        let text = String::from_utf8(Event::Message(seen).to_sse().to_vec()).unwrap();
        assert!(text.starts_with("event: message\ndata: {"), "{text}");
        assert_eq!(text.matches('\n').count(), 3, "a payload's newline stays inside the JSON: {text}");
        assert_eq!(&Event::KeepAlive.to_sse()[..], b": keep-alive\n\n");
    }
}
