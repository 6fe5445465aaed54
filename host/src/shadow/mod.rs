//! The shadow manager (`aws.greengrass.ShadowManager`): local device shadows.
//!
//! The `ShadowManager` actor owns the `shadows` table and runs on its own arbiter thread, so the
//! fsync that makes every update durable never stalls the broker. It lives on the local pubsub
//! bus like Greengrass's: it subscribes to `$aws/things/+/shadow/#`, answers requests on
//! `…/{get,update,delete}` with `/accepted` or `/rejected`, and publishes `update/delta` and
//! `update/documents`; devices reach it only through bridge routes. Messages in: [`PubsubMessage`]
//! (requests from the bus), [`ShadowRequest`] (components' `shadow` imports, the CLI),
//! [`ConfigureShadows`]. Messages out: [`Publish`] to the bus. An update is acknowledged only
//! after it is on disk. The responses to a device's request carry the request's flow credit
//! (see [`crate::flow`]), so a device that floods requests but does not read the answers is
//! slowed down rather than having its answers dropped on the way back.
//!
//! - `document`: update, merge, metadata, delta, versions, payloads (pure).
//! - `topics`: topic parsing and names (pure). `settings`: configuration (pure).
//! - `store`: SQLite persistence.
//! - `sync`: the `synchronize` shadows kept in step with the upstream (its own actor).

pub mod counts;
pub mod document;
mod handle;
pub mod rate;
pub mod settings;
pub mod store;
pub mod sync;
pub mod topics;

use actix::prelude::*;
use base64::Engine;
use serde_json::Value;

use self::counts::ShadowCounts;
use self::document::{ShadowError, apply_update, delete_payload, parse_update};
pub use self::handle::{
    ConfigureShadows, GetShadowCounts, ListShadows, NamedShadowsPage, ShadowHandle, ShadowOperation, ShadowReply,
    ShadowRequest,
};
use self::rate::RateLimiter;
use self::settings::ShadowSettings;
use self::store::{ShadowStore, StoreFailure};
use self::topics::{Operation, ShadowId, parse_request};
use crate::flow::Credit;
use crate::pubsub::subscriptions::ReceiveMode;
use crate::pubsub::{Publish, PubsubMessage, Subscribe};

/// Component name of the shadow manager, also its identity on the pubsub bus.
pub const COMPONENT_NAME: &str = "aws.greengrass.ShadowManager";
/// What the shadow manager listens to.
pub const REQUEST_FILTER: &str = "$aws/things/+/shadow/#";
/// Default and largest page of `ListNamedShadowsForThing`.
const PAGE_SIZE: (u32, u32) = (25, 100);

/// The shadow manager service.
pub struct ShadowManager {
    store: ShadowStore,
    settings: ShadowSettings,
    subscribe: Recipient<Subscribe>,
    publish: Recipient<Publish>,
    /// The credit of the bus request being answered ([`Credit::none`] between requests).
    answering: Credit,
    /// `rateLimits`, for requests from devices and components.
    limiter: RateLimiter,
    /// What it answered.
    counts: ShadowCounts,
}

fn now() -> i64 {
    crate::store::now_secs()
}

/// The client token of a get/delete request payload, when it has one.
fn token_of(payload: &[u8]) -> Option<String> {
    serde_json::from_slice::<Value>(payload).ok()?.get("clientToken")?.as_str().map(str::to_owned)
}

fn encode_token(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("offset:{offset}"))
}

fn decode_token(token: &str) -> Option<usize> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).ok()?;
    String::from_utf8(bytes).ok()?.strip_prefix("offset:")?.parse().ok()
}

impl ShadowManager {
    /// A manager over `store`, publishing on the bus.
    pub fn new(store: ShadowStore, subscribe: Recipient<Subscribe>, publish: Recipient<Publish>) -> Self {
        let settings = ShadowSettings::default();
        let limiter = RateLimiter::new(settings.rate_limits, std::time::Instant::now());
        Self { store, settings, subscribe, publish, answering: Credit::none(), limiter, counts: ShadowCounts::new() }
    }

    fn send(&self, shadow: &ShadowId, operation: Operation, suffix: &str, payload: &Value) {
        self.publish.do_send(Publish {
            publisher: COMPONENT_NAME.to_owned(),
            topic: shadow.topic(operation, suffix),
            payload: payload.to_string().into(),
            credit: self.answering.clone(),
            span: tracing::Span::current(),
        });
    }

    fn internal(&self, error: impl std::fmt::Display, token: &Option<String>) -> ShadowError {
        tracing::error!(%error, "shadow storage failed");
        ShadowError { client_token: token.clone(), ..ShadowError::internal() }
    }

    /// Performs one operation, publishing its responses; returns the answer document. A
    /// `limited` request over `rateLimits` is rejected with 429 before anything is read.
    fn perform(
        &mut self,
        shadow: &ShadowId,
        operation: Operation,
        payload: &[u8],
        limited: bool,
    ) -> Result<Value, ShadowError> {
        let result = if self.over_rate(&shadow.thing, limited) {
            Err(ShadowError { client_token: token_of(payload), ..ShadowError::throttled() })
        } else {
            self.operate(shadow, operation, payload)
        };
        self.counts.count(operation.word(), result.as_ref().err().map(|e| e.code));
        if let Err(error) = &result {
            self.send(shadow, operation, "rejected", &error.payload(now()));
        }
        result
    }

    /// Whether a `limited` request for `thing` is over `rateLimits` (if not, it is counted).
    fn over_rate(&mut self, thing: &str, limited: bool) -> bool {
        limited && !self.limiter.admit(thing, std::time::Instant::now())
    }

    fn operate(&mut self, shadow: &ShadowId, operation: Operation, payload: &[u8]) -> Result<Value, ShadowError> {
        match operation {
            Operation::Get => self.get(shadow, token_of(payload)),
            Operation::Update => self.update(shadow, payload),
            Operation::Delete => self.delete(shadow, token_of(payload)),
        }
    }

    fn get(&mut self, shadow: &ShadowId, token: Option<String>) -> Result<Value, ShadowError> {
        let document = self.store.get(shadow).map_err(|e| self.internal(e, &token))?;
        let document = document
            .ok_or_else(|| ShadowError { client_token: token.clone(), ..ShadowError::not_found(&shadow.name) })?;
        let answer = document.get_payload(now(), &token);
        self.send(shadow, Operation::Get, "accepted", &answer);
        Ok(answer)
    }

    fn update(&mut self, shadow: &ShadowId, payload: &[u8]) -> Result<Value, ShadowError> {
        let request = parse_update(payload)?;
        let token = request.client_token.clone();
        let current = self.store.get(shadow).map_err(|e| self.internal(e, &token))?;
        let outcome = apply_update(current.as_ref(), &request, now(), self.settings.max_document_size)?;
        self.store.put(shadow, &outcome.document).map_err(|e| self.internal(e, &token))?;
        tracing::debug!(shadow = %shadow, version = outcome.document.version, "shadow updated");
        if let Some(delta) = &outcome.delta {
            self.send(shadow, Operation::Update, "delta", delta);
        }
        self.send(shadow, Operation::Update, "documents", &outcome.documents);
        self.send(shadow, Operation::Update, "accepted", &outcome.accepted);
        Ok(outcome.accepted)
    }

    fn delete(&mut self, shadow: &ShadowId, token: Option<String>) -> Result<Value, ShadowError> {
        // An unreadable document can still be deleted: that is how it is recovered from.
        let version = match self.store.get(shadow) {
            Ok(Some(current)) => current.version,
            Ok(None) => return Err(ShadowError { client_token: token, ..ShadowError::not_found(&shadow.name) }),
            Err(StoreFailure::Corrupt { version, reason, .. }) => {
                tracing::warn!(shadow = %shadow, reason, "deleting an unreadable shadow document");
                version
            }
            Err(error) => return Err(self.internal(error, &token)),
        };
        self.store.delete(shadow).map_err(|e| self.internal(e, &token))?;
        let answer = delete_payload(version, now(), &token);
        self.send(shadow, Operation::Delete, "accepted", &answer);
        Ok(answer)
    }

    /// A 409 (counted) unless `shadow` exists at version `expected`.
    fn expect_version(&mut self, shadow: &ShadowId, expected: u64) -> Result<(), ShadowError> {
        let current = match self.store.get(shadow) {
            Ok(document) => document.map(|d| d.version),
            Err(StoreFailure::Corrupt { version, .. }) => Some(version),
            Err(error) => return Err(self.internal(error, &None)),
        };
        if current == Some(expected) {
            return Ok(());
        }
        self.counts.count(Operation::Delete.word(), Some(409));
        Err(ShadowError::conflict())
    }

    fn list(
        &self,
        thing: &str,
        next_token: Option<String>,
        page_size: Option<u32>,
    ) -> Result<NamedShadowsPage, ShadowError> {
        ShadowId::new(thing, "")?;
        let size = page_size.unwrap_or(PAGE_SIZE.0);
        if !(1..=PAGE_SIZE.1).contains(&size) {
            return Err(document::invalid("pageSize argument must be between 1 and 100"));
        }
        let offset = match next_token.filter(|t| !t.is_empty()) {
            Some(token) => decode_token(&token).ok_or_else(|| document::invalid("Invalid nextToken argument"))?,
            None => 0,
        };
        let results = self.store.list_named(thing, offset, size as usize).map_err(|e| self.internal(e, &None))?;
        let next_token = (results.len() == size as usize).then(|| encode_token(offset + results.len()));
        Ok(NamedShadowsPage { results, timestamp: now(), next_token })
    }

    fn request(&mut self, msg: ShadowRequest) -> Result<ShadowReply, ShadowError> {
        let (operation, payload, expected_version) = match msg.operation {
            ShadowOperation::ListNamed { next_token, page_size } => {
                let listed = if self.over_rate(&msg.thing, msg.rate_limited) {
                    Err(ShadowError::throttled())
                } else {
                    self.list(&msg.thing, next_token, page_size)
                };
                self.counts.count("list", listed.as_ref().err().map(|e| e.code));
                return listed.map(ShadowReply::Named);
            }
            ShadowOperation::Get => (Operation::Get, Vec::new(), None),
            ShadowOperation::Update { payload } => (Operation::Update, payload.into_bytes(), None),
            ShadowOperation::Delete { expected_version } => (Operation::Delete, Vec::new(), expected_version),
        };
        let shadow = ShadowId::new(&msg.thing, &msg.name)?;
        if let Some(expected) = expected_version {
            self.expect_version(&shadow, expected)?;
        }
        self.perform(&shadow, operation, &payload, msg.rate_limited).map(|document| ShadowReply::Document { document })
    }

    fn handle_bus_request(&mut self, msg: PubsubMessage) {
        match parse_request(&msg.topic) {
            None => {}
            Some(Err(error)) => {
                tracing::warn!(topic = msg.topic, %error, "ignoring shadow request with an invalid name")
            }
            Some(Ok(request)) => {
                self.answering = msg.credit.clone();
                let performed = self.perform(&request.shadow, request.operation, &msg.payload, true);
                self.answering = Credit::none();
                if let Err(error) = performed {
                    tracing::debug!(shadow = %request.shadow, %error, "shadow request rejected");
                }
            }
        }
    }
}

impl Actor for ShadowManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.subscribe.do_send(Subscribe {
            subscriber: COMPONENT_NAME.to_owned(),
            filter: REQUEST_FILTER.to_owned(),
            mode: Some(ReceiveMode::FromOthers),
            recipient: ctx.address().recipient(),
        });
    }
}

impl Handler<PubsubMessage> for ShadowManager {
    type Result = ();

    fn handle(&mut self, msg: PubsubMessage, _ctx: &mut Self::Context) {
        self.handle_bus_request(msg);
    }
}

impl Handler<ShadowRequest> for ShadowManager {
    type Result = Result<ShadowReply, ShadowError>;

    fn handle(&mut self, msg: ShadowRequest, _ctx: &mut Self::Context) -> Self::Result {
        self.request(msg)
    }
}

impl Handler<GetShadowCounts> for ShadowManager {
    type Result = MessageResult<GetShadowCounts>;

    fn handle(&mut self, _msg: GetShadowCounts, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.counts.clone())
    }
}

impl Handler<ListShadows> for ShadowManager {
    type Result = Result<Vec<(String, String, u64)>, String>;

    fn handle(&mut self, _msg: ListShadows, _ctx: &mut Self::Context) -> Self::Result {
        self.store.list_all().map_err(|e| e.to_string())
    }
}

impl Handler<ConfigureShadows> for ShadowManager {
    type Result = ();

    fn handle(&mut self, msg: ConfigureShadows, _ctx: &mut Self::Context) {
        if msg.0.rate_limits != self.limiter.limits() {
            self.limiter = RateLimiter::new(msg.0.rate_limits, std::time::Instant::now());
        }
        self.settings = msg.0;
    }
}

#[cfg(test)]
mod tests;
