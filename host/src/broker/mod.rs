//! The device MQTT broker: rmqtt embedded in the actix runtime.
//!
//! The `Broker` actor owns rmqtt's `ServerContext`, its listeners (mutual TLS for devices, an
//! optional loopback plain-TCP port for local tools) and the state its hooks read. Messages in:
//! [`AuthChanged`] (who may connect and do what; sessions no longer admitted are disconnected),
//! [`TlsChanged`] (rebind with new certificates), [`SetTaps`] (a service wants copies of device
//! publishes), [`PublishToDevices`] (a host service publishes to devices), [`StopBroker`].
//! Messages out: [`DeviceMessage`] to tap owners. Everything rmqtt-specific stays in this module;
//! no other module names an rmqtt type. It never calls `MqttServer::start()` (which exits the
//! process on error).
//!
//! - `hooks`: authentication, authorization and publish taps.
//! - `listeners`: binding (and rebinding) the listeners.
//! - `retain`: our retained-message store.

mod hooks;
mod listeners;
mod retain;

use std::net::SocketAddr;
use std::sync::Arc;

use actix::prelude::*;
use bytes::Bytes;
use rmqtt::codec::types::{Publish as CodecPublish, QoS};
use rmqtt::context::ServerContext;
use rmqtt::hook::Type;
use rmqtt::session::SessionState;
use rmqtt::types::{From, Id, Publish};
use thiserror::Error;
use tokio::task::JoinHandle;

pub use self::hooks::DeviceMessage;
use self::hooks::{Authenticate, Dropped, Forget, HookState, PublishCheck, SubscribeCheck, Tap};
use self::retain::RetainStore;
use crate::devices::ca::ServerTlsFiles;
use crate::devices::identity::ListenerKind;
use crate::devices::{AuthChanged, AuthSnapshot, TlsChanged};

/// A failure to start the broker.
#[derive(Debug, Error)]
pub enum BrokerError {
    /// The plain listener was asked for on a non-loopback address.
    #[error(
        "--plain-listen {0} is not a loopback address; the plain listener has no TLS and is only for local tools (use 127.0.0.1)"
    )]
    PlainNotLoopback(SocketAddr),
    /// A listener could not be bound or configured.
    #[error("cannot listen on {addr} ({what}): {reason}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Which listener.
        what: &'static str,
        /// What went wrong.
        reason: String,
    },
}

/// What the broker listens on, and with which certificates.
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    /// Mutual-TLS device listener address.
    pub mqtt_listen: SocketAddr,
    /// Optional plain-TCP loopback listener.
    pub plain_listen: Option<SocketAddr>,
    /// Server certificate, key and accepted client CAs.
    pub tls: ServerTlsFiles,
}

/// Addresses the broker actually bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerAddrs {
    /// Mutual-TLS device listener.
    pub mqtt: SocketAddr,
    /// Plain loopback listener, if enabled.
    pub plain: Option<SocketAddr>,
}

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
}

/// Stop listening and disconnect every client; replies once done.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopBroker;

/// The broker service.
pub struct Broker {
    scx: ServerContext,
    hooks: Arc<HookState>,
    server: Option<JoinHandle<()>>,
    host_id: Id,
    addrs: BrokerAddrs,
}

impl Broker {
    /// Builds rmqtt, binds the listeners and starts accepting. Must run inside the actix system.
    pub async fn start(options: &BrokerOptions) -> Result<(Self, BrokerAddrs), BrokerError> {
        if let Some(addr) = options.plain_listen.filter(|a| !a.ip().is_loopback()) {
            return Err(BrokerError::PlainNotLoopback(addr));
        }
        let scx = ServerContext::new().busy_check_enable(false).build().await;
        *scx.extends.retain_mut().await = Box::new(RetainStore::new());
        let hooks = Arc::new(HookState::new(options.plain_listen.map(|_| listeners::PLAIN_LISTENER)));
        let register = scx.extends.hook_mgr().register();
        register.add(Type::ClientAuthenticate, Box::new(Authenticate(Arc::clone(&hooks)))).await;
        register.add(Type::ClientSubscribeCheckAcl, Box::new(SubscribeCheck(Arc::clone(&hooks)))).await;
        register.add(Type::MessagePublishCheckAcl, Box::new(PublishCheck(Arc::clone(&hooks)))).await;
        register.add(Type::SessionTerminated, Box::new(Forget(Arc::clone(&hooks)))).await;
        register.add(Type::MessageDropped, Box::new(Dropped)).await;
        register.start().await;
        let (task, addrs) = listeners::bind(&scx, options.mqtt_listen, options.plain_listen, &options.tls)?;
        let host_id = Id::new(scx.node.id(), 0, None, None, "turf-host".into(), None);
        tracing::info!(mqtt = %addrs.mqtt, plain = ?addrs.plain, "MQTT broker listening");
        Ok((Self { scx, hooks, server: Some(task), host_id, addrs }, addrs))
    }

    /// Installs a new snapshot and disconnects sessions it no longer admits.
    fn set_auth(&mut self, snapshot: Arc<AuthSnapshot>) -> impl Future<Output = ()> + 'static {
        if let Ok(mut current) = self.hooks.auth.write() {
            *current = Arc::clone(&snapshot);
        }
        let (scx, hooks) = (self.scx.clone(), Arc::clone(&self.hooks));
        async move {
            let entries: Vec<_> = scx.extends.shared().await.iter().collect();
            for entry in entries {
                let id = entry.id();
                let client_id = id.client_id.to_string();
                let credentials = hooks.credentials(&client_id);
                let listener = credentials.as_ref().map(|c| c.listener).unwrap_or(ListenerKind::Tls);
                let cert = credentials.and_then(|c| c.cert);
                if let Err(reason) = snapshot.admit(listener, &client_id, cert.as_ref()) {
                    tracing::warn!(client_id, reason, "disconnecting device: no longer admitted");
                    if let Ok(mut locked) = entry.try_lock().await {
                        let _ = locked.kick(true, true, true).await;
                    }
                }
            }
        }
    }

    /// Rebinds the listeners on the same addresses with the new certificate files; sessions on
    /// existing connections are not interrupted.
    fn reload_tls(&mut self, files: ServerTlsFiles) -> impl Future<Output = Option<JoinHandle<()>>> + 'static {
        let old = self.server.take();
        let (scx, addrs) = (self.scx.clone(), self.addrs);
        async move {
            if let Some(old) = old {
                old.abort();
                let _ = old.await;
            }
            match listeners::bind(&scx, addrs.mqtt, addrs.plain, &files) {
                Ok((task, _)) => {
                    tracing::info!(mqtt = %addrs.mqtt, "broker TLS reloaded");
                    Some(task)
                }
                Err(error) => {
                    tracing::error!(%error, "cannot rebind the broker after a certificate change; devices cannot connect");
                    None
                }
            }
        }
    }

    fn set_taps(&mut self, msg: SetTaps) {
        let Ok(mut taps) = self.hooks.taps.write() else {
            return;
        };
        let mut next: Vec<Tap> = taps.iter().filter(|t| t.owner != msg.owner).cloned().collect();
        next.extend(msg.filters.into_iter().map(|filter| Tap {
            owner: msg.owner.clone(),
            filter,
            recipient: msg.recipient.clone(),
        }));
        *taps = Arc::new(next);
    }

    fn publish_future(&self, msg: PublishToDevices) -> impl Future<Output = ()> + 'static {
        let scx = self.scx.clone();
        let from = From::from_system(self.host_id.clone());
        async move {
            let qos = match msg.qos {
                0 => QoS::AtMostOnce,
                1 => QoS::AtLeastOnce,
                _ => QoS::ExactlyOnce,
            };
            let topic = msg.topic.clone();
            let publish = CodecPublish {
                dup: false,
                retain: msg.retain,
                qos,
                topic: msg.topic.into(),
                packet_id: None,
                payload: msg.payload,
                properties: None,
            };
            let publish = Publish::from(publish).create_time(rmqtt::utils::timestamp_millis());
            if let Err(error) = SessionState::forwards(&scx, from, publish, false, None).await {
                tracing::warn!(topic, %error, "cannot publish to devices");
            }
        }
    }

    fn stop_future(&mut self) -> impl Future<Output = ()> + 'static {
        if let Some(task) = self.server.take() {
            task.abort();
        }
        let scx = self.scx.clone();
        async move {
            let entries: Vec<_> = scx.extends.shared().await.iter().collect();
            for entry in entries {
                if let Ok(mut locked) = entry.try_lock().await {
                    let _ = locked.kick(true, true, true).await;
                }
            }
            tracing::info!("MQTT broker stopped");
        }
    }
}

impl Actor for Broker {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        if let Some(task) = self.server.take() {
            task.abort();
        }
    }
}

impl Handler<AuthChanged> for Broker {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: AuthChanged, _ctx: &mut Self::Context) -> Self::Result {
        AtomicResponse::new(Box::pin(self.set_auth(msg.0).into_actor(self)))
    }
}

impl Handler<TlsChanged> for Broker {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: TlsChanged, _ctx: &mut Self::Context) -> Self::Result {
        AtomicResponse::new(Box::pin(self.reload_tls(msg.0).into_actor(self).map(|task, act, _| act.server = task)))
    }
}

impl Handler<SetTaps> for Broker {
    type Result = ();

    fn handle(&mut self, msg: SetTaps, _ctx: &mut Self::Context) {
        self.set_taps(msg);
    }
}

impl Handler<PublishToDevices> for Broker {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: PublishToDevices, _ctx: &mut Self::Context) -> Self::Result {
        AtomicResponse::new(Box::pin(self.publish_future(msg).into_actor(self)))
    }
}

impl Handler<StopBroker> for Broker {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, _msg: StopBroker, _ctx: &mut Self::Context) -> Self::Result {
        AtomicResponse::new(Box::pin(self.stop_future().into_actor(self)))
    }
}
