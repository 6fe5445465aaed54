//! One shadow's sync: read both sides, decide, apply each side's action with its version.
//!
//! The cloud is reached by publishing the AWS IoT shadow requests upstream
//! (`$aws/things/T/shadow[/name/N]/{get,update,delete}`) with a `clientToken` and waiting for
//! the `/accepted` or `/rejected` answer that carries it ([`ANSWER_TIMEOUT`] at most); every
//! request first takes a token from the outbound bucket. The local side is the shadow manager,
//! asked directly. A 409 from either side ends the job as [`Failure::Conflict`]: the caller
//! reads both sides again and merges anew.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

use super::TOKEN_PREFIX;
use super::bucket::TokenBucket;
use super::config::Direction;
use super::decide::{Action, Side, decide};
pub use super::echoes::Echoes;
use super::merge::SyncState;
use super::records::SyncRecord;
use crate::shadow::topics::{Operation, ShadowId};
use crate::shadow::{ShadowOperation, ShadowReply, ShadowRequest};
use crate::upstream::{RequestUpstream, UpstreamError};

/// Longest wait for the cloud's answer to one request.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a sync did not finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// A side changed between the read and the write (409): read again.
    #[error("version conflict")]
    Conflict,
    /// The cloud did not answer (the connection dropped, or the request was lost).
    #[error("no answer from the cloud within {0:?}")]
    NoAnswer(Duration),
    /// The upstream connection is down: tried again once it is back.
    #[error("the upstream broker is not connected")]
    NotConnected,
    /// A side refused or failed.
    #[error("{0}")]
    Refused(String),
}

/// What a finished sync left: the state both sides have (none: both deleted) and their versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    /// The new base.
    pub base: Option<SyncState>,
    /// The local shadow's version now (0: absent).
    pub local_version: u64,
    /// The cloud shadow's version now (0: absent).
    pub cloud_version: u64,
}

/// A sync that did not finish, and what it had written locally before it stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// Why.
    pub failure: Failure,
    /// When the local side was updated and the cloud's write then failed: the record to keep
    /// (the cloud's state as read for its base, the new local version), so the next merge sees
    /// the local side's new keys as local changes and the cloud's later ones as the cloud's.
    pub local_written: Option<Synced>,
}

impl From<Failure> for Failed {
    fn from(failure: Failure) -> Self {
        Self { failure, local_written: None }
    }
}

/// An answer from the cloud.
#[derive(Debug)]
pub struct Answer {
    accepted: bool,
    payload: Value,
}

/// A request waiting for its answer: it takes one only on the request's own answer topics.
#[derive(Debug)]
pub struct Waiting {
    shadow: ShadowId,
    operation: Operation,
    answered: oneshot::Sender<Answer>,
}

/// What jobs share to talk to the cloud and to tell their own writes' echoes apart.
#[derive(Clone)]
pub struct Cloud {
    /// Publish upstream, now and unspooled (a request is never sent after its job gave up).
    pub publish: Recipient<RequestUpstream>,
    /// Requests waiting for their answer, by client token.
    pub waiting: Arc<Mutex<HashMap<String, Waiting>>>,
    /// The outbound rate.
    pub bucket: Arc<Mutex<TokenBucket>>,
    /// Requests sent.
    pub sent: Arc<AtomicU64>,
    /// Numbers client tokens.
    pub next_token: Arc<AtomicU64>,
    /// This process's part of every client token: another core syncing the same cloud shadows
    /// (whose answers reach every subscriber) never has its answers taken for this one's.
    pub instance: Arc<str>,
    /// Sync's cloud writes whose echo is to come.
    pub echoes: Arc<Echoes>,
    /// Sync's local writes whose echo is to come.
    pub local_echoes: Arc<Echoes>,
    /// Shadows sync is deleting locally, whose `delete/accepted` (no client token: a delete
    /// carries none) is to come.
    pub local_deletes: Arc<Echoes>,
}

impl Cloud {
    /// Requests sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// A token for this process's client tokens.
    pub fn new_instance() -> Arc<str> {
        let random = uuid::Uuid::new_v4().simple().to_string();
        Arc::from(&random[..12])
    }

    /// Hands an answer that came on `shadow`'s `operation` answer topic to the request waiting
    /// for `token`; whether one was waiting there (an answer on another shadow's topic, or to
    /// another operation, is not taken).
    pub fn answer(&self, token: &str, shadow: &ShadowId, operation: Operation, accepted: bool, payload: Value) -> bool {
        let Ok(mut waiting) = self.waiting.lock() else { return false };
        // An answer on another topic is not this request's, and leaves it waiting.
        let ours = waiting.get(token).is_some_and(|w| w.shadow == *shadow && w.operation == operation);
        if !ours {
            return false;
        }
        match waiting.remove(token) {
            Some(waiting) => {
                let _ = waiting.answered.send(Answer { accepted, payload });
                true
            }
            None => false,
        }
    }

    fn token(&self) -> String {
        format!("{TOKEN_PREFIX}{}-{}", self.instance, self.next_token.fetch_add(1, Ordering::Relaxed))
    }

    async fn paced(&self) {
        loop {
            let wait = match self.bucket.lock() {
                Ok(mut bucket) => bucket.take(Instant::now()),
                Err(_) => Ok(()),
            };
            match wait {
                Ok(()) => return,
                Err(wait) => tokio::time::sleep(wait).await,
            }
        }
    }

    async fn request(
        &self,
        shadow: &ShadowId,
        operation: Operation,
        mut body: Map<String, Value>,
    ) -> Result<Answer, Failure> {
        self.paced().await;
        self.sent.fetch_add(1, Ordering::Relaxed);
        let token = self.token();
        body.insert("clientToken".to_owned(), Value::String(token.clone()));
        let echoed = operation == Operation::Update;
        if echoed {
            self.echoes.expect(&token);
        }
        let (answered, answer) = oneshot::channel();
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.insert(token.clone(), Waiting { shadow: shadow.clone(), operation, answered });
        }
        let publish = RequestUpstream {
            topic: format!("{}/{}", shadow.prefix(), operation.word()),
            payload: Value::Object(body).to_string().into(),
        };
        let sent = match self.publish.send(publish).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(UpstreamError::NotConnected)) => Err(Failure::NotConnected),
            Ok(Err(e)) => Err(Failure::Refused(format!("cannot send to the upstream broker: {e}"))),
            Err(e) => Err(Failure::Refused(format!("the upstream service is gone: {e}"))),
        };
        let answer = match sent {
            Ok(()) => tokio::time::timeout(ANSWER_TIMEOUT, answer).await.ok().and_then(Result::ok),
            Err(failure) => {
                self.forget(&token);
                self.echoes.forget(&token);
                return Err(failure);
            }
        };
        self.forget(&token);
        if echoed && answer.as_ref().is_none_or(|a| !a.accepted) {
            self.echoes.forget(&token);
        }
        answer.ok_or(Failure::NoAnswer(ANSWER_TIMEOUT))
    }

    fn forget(&self, token: &str) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.remove(token);
        }
    }

    /// The cloud side of `shadow`.
    async fn get(&self, shadow: &ShadowId) -> Result<Side, Failure> {
        let answer = self.request(shadow, Operation::Get, Map::new()).await?;
        if answer.accepted {
            return match SyncState::read_document(&answer.payload, false) {
                Some((state, version)) => Ok(Side::Present(state, version)),
                None => Err(Failure::Refused("the cloud accepted a get with no document".to_owned())),
            };
        }
        match code(&answer.payload) {
            404 => Ok(Side::Absent),
            _ => Err(rejected("get", &answer.payload)),
        }
    }

    /// Applies `action` to the cloud shadow now at `side`; its version afterwards.
    async fn apply(&self, shadow: &ShadowId, action: &Action, side: &Side) -> Result<u64, Failure> {
        match (action, side) {
            (Action::Nothing, Side::Present(_, version)) => Ok(*version),
            (Action::Nothing, Side::Absent) => Ok(0),
            (Action::Update(state), side) => {
                let mut body = Map::new();
                body.insert("state".to_owned(), state.clone());
                if let Side::Present(_, version) = side {
                    body.insert("version".to_owned(), json!(version));
                }
                let answer = self.request(shadow, Operation::Update, body).await?;
                match (answer.accepted, code(&answer.payload)) {
                    (true, _) => answer
                        .payload
                        .get("version")
                        .and_then(Value::as_u64)
                        .ok_or_else(|| Failure::Refused("the cloud accepted an update with no version".to_owned())),
                    (false, 409) => Err(Failure::Conflict),
                    (false, _) => Err(rejected("update", &answer.payload)),
                }
            }
            (Action::Delete, _) => {
                let answer = self.request(shadow, Operation::Delete, Map::new()).await?;
                match (answer.accepted, code(&answer.payload)) {
                    (true, _) | (false, 404) => Ok(0),
                    (false, _) => Err(rejected("delete", &answer.payload)),
                }
            }
        }
    }
}

fn code(payload: &Value) -> u64 {
    payload.get("code").and_then(Value::as_u64).unwrap_or(0)
}

fn rejected(what: &str, payload: &Value) -> Failure {
    let message = payload.get("message").and_then(Value::as_str).unwrap_or("no message");
    Failure::Refused(format!("the cloud rejected the {what}: {} {message}", code(payload)))
}

/// The local side of `shadow`.
async fn local_side(local: &Recipient<ShadowRequest>, shadow: &ShadowId) -> Result<Side, Failure> {
    let request = ShadowRequest {
        thing: shadow.thing.clone(),
        name: shadow.name.clone(),
        operation: ShadowOperation::Get,
        rate_limited: false,
    };
    match local.send(request).await {
        Ok(Ok(ShadowReply::Document { document })) => {
            let version = document.get("version").and_then(Value::as_u64).unwrap_or(0);
            Ok(Side::Present(SyncState::of_document(&document), version))
        }
        Ok(Ok(ShadowReply::Named(_))) => {
            Err(Failure::Refused("the shadow manager answered a get with a list".to_owned()))
        }
        Ok(Err(error)) if error.code == 404 => Ok(Side::Absent),
        Ok(Err(error)) => Err(Failure::Refused(format!("the local shadow cannot be read: {error}"))),
        Err(e) => Err(Failure::Refused(format!("the shadow manager is gone: {e}"))),
    }
}

/// Applies `action` to the local shadow now at `side`; its version afterwards.
async fn apply_local(
    local: &Recipient<ShadowRequest>,
    shadow: &ShadowId,
    action: &Action,
    side: &Side,
    cloud: &Cloud,
) -> Result<u64, Failure> {
    // What tells this write's echo apart: its client token, or for a delete (which carries
    // none) the shadow's name.
    let (echoes, mark) = match action {
        Action::Delete => (cloud.local_deletes.as_ref(), shadow.to_string()),
        _ => (cloud.local_echoes.as_ref(), cloud.token()),
    };
    let operation = match (action, side) {
        (Action::Nothing, Side::Present(_, version)) => return Ok(*version),
        (Action::Nothing, Side::Absent) => return Ok(0),
        (Action::Update(state), side) => {
            let mut request = json!({"state": state, "clientToken": mark});
            if let Side::Present(_, version) = side {
                request["version"] = json!(version);
            }
            ShadowOperation::Update { payload: request.to_string() }
        }
        (Action::Delete, side) => {
            let expected_version = match side {
                Side::Present(_, version) => Some(*version),
                Side::Absent => None,
            };
            ShadowOperation::Delete { expected_version }
        }
    };
    let request =
        ShadowRequest { thing: shadow.thing.clone(), name: shadow.name.clone(), operation, rate_limited: false };
    echoes.expect(&mark);
    let answer = local.send(request).await;
    if !matches!(answer, Ok(Ok(_))) {
        echoes.forget(&mark);
    }
    match answer {
        Ok(Ok(ShadowReply::Document { document })) => Ok(document.get("version").and_then(Value::as_u64).unwrap_or(0)),
        Ok(Ok(ShadowReply::Named(_))) => Ok(0),
        Ok(Err(error)) if error.code == 409 => Err(Failure::Conflict),
        Ok(Err(error)) if error.code == 404 && matches!(action, Action::Delete) => Ok(0),
        Ok(Err(error)) => Err(Failure::Refused(format!("the local shadow refused the sync: {error}"))),
        Err(e) => Err(Failure::Refused(format!("the shadow manager is gone: {e}"))),
    }
}

/// Syncs one shadow: `known` is the cloud side when the change that queued it carried it.
pub async fn sync(
    cloud: Cloud,
    local: Recipient<ShadowRequest>,
    shadow: ShadowId,
    record: Option<SyncRecord>,
    known: Option<Side>,
    direction: Direction,
) -> Result<Synced, Failed> {
    let cloud_side = match known {
        Some(side) => side,
        None => cloud.get(&shadow).await?,
    };
    let local_before = local_side(&local, &shadow).await?;
    let decision = decide(record.as_ref(), &local_before, &cloud_side, direction);
    let local_version = apply_local(&local, &shadow, &decision.local, &local_before, &cloud).await?;
    let cloud_version = match cloud.apply(&shadow, &decision.cloud, &cloud_side).await {
        Ok(version) => version,
        Err(failure) => {
            let local_written = match (&decision.local, &cloud_side) {
                (Action::Update(_), Side::Present(state, version)) => {
                    Some(Synced { base: Some(state.clone()), local_version, cloud_version: *version })
                }
                _ => None,
            };
            return Err(Failed { failure, local_written });
        }
    };
    Ok(Synced { base: decision.base, local_version, cloud_version })
}

#[cfg(test)]
mod tests;
