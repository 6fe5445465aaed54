//! The device MQTT broker: rmqtt embedded in the actix runtime.
//!
//! The `Broker` actor owns rmqtt's `ServerContext`, its listeners (mutual TLS for devices, an
//! optional loopback plain-TCP port for local tools) and the state its hooks read. Messages in:
//! [`crate::devices::DirectoryChanged`] (who may connect), [`SetTaps`] (a service wants copies of
//! device publishes), [`PublishToDevices`] (a host service publishes to devices), [`StopBroker`].
//! Messages out: [`DeviceMessage`] to tap owners. Everything rmqtt-specific stays in this module;
//! no other module names an rmqtt type. It never calls `MqttServer::start()` (which exits the
//! process on error).
//!
//! - `hooks`: authentication and publish taps.
//! - `retain`: our retained-message store.

mod hooks;
mod retain;

use std::net::SocketAddr;
use std::sync::Arc;

use actix::prelude::*;
use bytes::Bytes;
use rmqtt::codec::types::{Publish as CodecPublish, QoS};
use rmqtt::context::ServerContext;
use rmqtt::hook::Type;
use rmqtt::net::Builder;
use rmqtt::server::MqttServer;
use rmqtt::session::SessionState;
use rmqtt::types::{From, Id, ListenerId, Publish};
use thiserror::Error;
use tokio::task::JoinHandle;

pub use self::hooks::DeviceMessage;
use self::hooks::{Authenticate, Dropped, HookState, PublishTap, Tap};
use self::retain::RetainStore;
use crate::devices::DirectoryChanged;
use crate::devices::ca::ServerTlsFiles;

/// Listener id of the mutual-TLS device listener.
const TLS_LISTENER: ListenerId = 1;
/// Listener id of the plain loopback listener.
const PLAIN_LISTENER: ListenerId = 2;
/// Largest MQTT packet accepted (Greengrass's Moquette default, 128 KiB).
const MAX_PACKET_SIZE: u32 = 128 * 1024;
/// Unacknowledged QoS 1/2 messages per session, each way. rmqtt's default (16) also caps a
/// client's *incoming* unfinished QoS 2 publishes and drops the connection beyond it, which
/// MQTT 3.1.1 clients (no Receive Maximum) hit with ordinary bursts. 1024 keeps memory per
/// session bounded while no sane client reaches it; MQTT 5 clients are told it as Receive Maximum.
const MAX_INFLIGHT: u16 = 1024;

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
}

impl Broker {
    /// Builds rmqtt, binds the listeners and starts accepting. Must run inside the actix system.
    pub async fn start(options: &BrokerOptions) -> Result<(Self, BrokerAddrs), BrokerError> {
        if let Some(addr) = options.plain_listen.filter(|a| !a.ip().is_loopback()) {
            return Err(BrokerError::PlainNotLoopback(addr));
        }
        let scx = ServerContext::new().busy_check_enable(false).build().await;
        *scx.extends.retain_mut().await = Box::new(RetainStore::new());
        let hooks = Arc::new(HookState::new(options.plain_listen.map(|_| PLAIN_LISTENER)));
        let register = scx.extends.hook_mgr().register();
        register.add(Type::ClientAuthenticate, Box::new(Authenticate(Arc::clone(&hooks)))).await;
        register.add(Type::MessagePublishCheckAcl, Box::new(PublishTap(Arc::clone(&hooks)))).await;
        register.add(Type::MessageDropped, Box::new(Dropped)).await;
        register.start().await;

        let tls = listener(options.mqtt_listen)
            .name("devices/mtls")
            .tls_cert(Some(path_str(&options.tls.cert)))
            .tls_key(Some(path_str(&options.tls.key)))
            .tls_client_ca_certs(Some(path_str(&options.tls.client_roots)))
            .tls_cross_certificate(true)
            .collect_cert_info(true)
            .bind()
            .and_then(|l| l.tls())
            .map_err(|e| listen_error(options.mqtt_listen, "mutual-TLS device listener", e))?;
        let mqtt = tls.local_addr().map_err(|e| listen_error(options.mqtt_listen, "mutual-TLS device listener", e))?;
        let mut server = MqttServer::new(scx.clone()).listener_by_id(tls, TLS_LISTENER);
        let mut plain = None;
        if let Some(addr) = options.plain_listen {
            let l = listener(addr)
                .name("local/plain")
                .bind()
                .and_then(|l| l.tcp())
                .map_err(|e| listen_error(addr, "plain loopback listener", e))?;
            plain = Some(l.local_addr().map_err(|e| listen_error(addr, "plain loopback listener", e))?);
            server = server.listener_by_id(l, PLAIN_LISTENER);
        }
        let server = server.build();
        let task = tokio::spawn(async move {
            if let Err(error) = server.run().await {
                tracing::error!(%error, "MQTT broker stopped");
            }
        });
        let host_id = Id::new(scx.node.id(), 0, None, None, "turf-host".into(), None);
        tracing::info!(%mqtt, plain = ?plain, "MQTT broker listening");
        Ok((Self { scx, hooks, server: Some(task), host_id }, BrokerAddrs { mqtt, plain }))
    }

    fn set_directory(&mut self, directory: DirectoryChanged) {
        if let Ok(mut current) = self.hooks.directory.write() {
            *current = directory.0;
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

fn listener(addr: SocketAddr) -> Builder {
    Builder::new()
        .laddr(addr)
        .reuseaddr(Some(true))
        .nodelay(true)
        .allow_anonymous(false)
        .max_packet_size(MAX_PACKET_SIZE)
        .max_inflight(std::num::NonZeroU16::new(MAX_INFLIGHT).unwrap_or(std::num::NonZeroU16::MIN))
        .handshake_timeout(std::time::Duration::from_secs(10))
}

fn path_str(path: &std::path::Path) -> String {
    path.to_string_lossy().into_owned()
}

fn listen_error(addr: SocketAddr, what: &'static str, error: impl std::fmt::Display) -> BrokerError {
    BrokerError::Listen { addr, what, reason: error.to_string() }
}

impl Actor for Broker {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        if let Some(task) = self.server.take() {
            task.abort();
        }
    }
}

impl Handler<DirectoryChanged> for Broker {
    type Result = ();

    fn handle(&mut self, msg: DirectoryChanged, _ctx: &mut Self::Context) {
        self.set_directory(msg);
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
