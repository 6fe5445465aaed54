//! rmqtt hook handlers: who may connect, and taps that copy device publishes to host services.
//!
//! Runs inside rmqtt's connection tasks, reading [`HookState`], which only the broker actor
//! writes (from [`crate::devices::DirectoryChanged`] and tap registrations). Handlers decide from
//! that snapshot without awaiting other services. Taps run in the publish ACL hook *after* the
//! message is allowed, so host services never see a publish the broker refused, and publishes
//! the host itself injects (`forwards`) never come back through a tap.

use std::sync::{Arc, RwLock};

use actix::prelude::*;
use async_trait::async_trait;
use bytes::Bytes;
use rmqtt::codec::types::QoS;
use rmqtt::hook::{Handler, HookResult, Parameter, ReturnType};
use rmqtt::types::{AuthResult, ListenerId, PublishAclResult, Reason};

use crate::devices::identity::{DeviceDirectory, ListenerKind, PeerCert};
use crate::topic;

/// A message a device published, copied to a host service whose tap filter matched.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct DeviceMessage {
    /// Topic the device published to.
    pub topic: String,
    /// Payload as published.
    pub payload: Bytes,
    /// QoS the device used (0, 1 or 2).
    pub qos: u8,
    /// Whether the device set the retain flag.
    pub retain: bool,
    /// Client id (thing name) of the publisher.
    pub client_id: String,
}

/// One tap: device publishes matching `filter` go to `recipient`.
#[derive(Clone)]
pub struct Tap {
    /// Service that registered the tap (taps are replaced per owner).
    pub owner: String,
    /// MQTT topic filter.
    pub filter: String,
    /// Where matching messages go.
    pub recipient: Recipient<DeviceMessage>,
}

/// What the hooks read; written only by the broker actor.
pub struct HookState {
    /// Registered certificates, for authentication.
    pub directory: RwLock<Arc<DeviceDirectory>>,
    /// Current taps.
    pub taps: RwLock<Arc<Vec<Tap>>>,
    /// Listener id of the plain-TCP listener, if any.
    pub plain_listener: Option<ListenerId>,
}

impl HookState {
    /// State with no registered devices and no taps.
    pub fn new(plain_listener: Option<ListenerId>) -> Self {
        Self {
            directory: RwLock::new(Arc::new(DeviceDirectory::default())),
            taps: RwLock::new(Arc::new(Vec::new())),
            plain_listener,
        }
    }

    fn directory(&self) -> Arc<DeviceDirectory> {
        self.directory.read().map(|d| Arc::clone(&d)).unwrap_or_default()
    }

    fn taps(&self) -> Arc<Vec<Tap>> {
        self.taps.read().map(|t| Arc::clone(&t)).unwrap_or_default()
    }
}

fn qos_number(qos: QoS) -> u8 {
    match qos {
        QoS::AtMostOnce => 0,
        QoS::AtLeastOnce => 1,
        QoS::ExactlyOnce => 2,
    }
}

/// `ClientAuthenticate`: client id must be the thing the certificate is registered to.
pub struct Authenticate(pub Arc<HookState>);

#[async_trait]
impl Handler for Authenticate {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        let Parameter::ClientAuthenticate(info) = param else {
            return (true, acc);
        };
        let listener =
            if Some(info.id().lid) == self.0.plain_listener { ListenerKind::Plain } else { ListenerKind::Tls };
        let cert =
            info.cert().and_then(|c| c.serial.clone().map(|serial| PeerCert { serial, subject: c.subject.clone() }));
        let client_id: &str = info.client_id();
        let remote = info.ipaddress().map(|a| a.to_string()).unwrap_or_default();
        let result = match self.0.directory().authenticate(listener, client_id, cert.as_ref()) {
            Ok(identity) => {
                tracing::info!(client_id, remote, verified = identity.verified, "device connected");
                AuthResult::Allow(false, None)
            }
            Err(refusal) => {
                tracing::warn!(client_id, remote, reason = %refusal, "connection refused");
                AuthResult::NotAuthorized
            }
        };
        (false, Some(HookResult::AuthResult(result)))
    }
}

/// `MessagePublishCheckAcl`: allow, then copy the message to every matching tap.
pub struct PublishTap(pub Arc<HookState>);

#[async_trait]
impl Handler for PublishTap {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        let Parameter::MessagePublishCheckAcl(session, publish) = param else {
            return (true, acc);
        };
        let topic: &str = &publish.topic;
        for tap in self.0.taps().iter().filter(|tap| topic::matches(&tap.filter, topic)) {
            tap.recipient.do_send(DeviceMessage {
                topic: topic.to_owned(),
                payload: publish.payload.clone(),
                qos: qos_number(publish.qos),
                retain: publish.retain,
                client_id: session.id.client_id.to_string(),
            });
        }
        (false, Some(HookResult::PublishAclResult(PublishAclResult::allow())))
    }
}

/// `MessageDropped`: say why the broker dropped a message (queue full, expired, refused).
pub struct Dropped;

#[async_trait]
impl Handler for Dropped {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        if let Parameter::MessageDropped(to, from, publish, reason) = param {
            let to = to.as_ref().map(|t| t.client_id.to_string()).unwrap_or_default();
            let topic: &str = &publish.topic;
            match reason {
                Reason::MessageQueueFull => {
                    tracing::warn!(to, from = %from.client_id, topic, "message dropped: subscriber queue full");
                }
                other => {
                    tracing::debug!(to, from = %from.client_id, topic, reason = %other, "message dropped")
                }
            }
        }
        (true, acc)
    }
}
