//! The device MQTT broker: rmqtt embedded in the host, its connections on their own runtime.
//!
//! The `Broker` actor (on the actix main thread) owns rmqtt's `ServerContext`, its listeners (mutual TLS for devices, an
//! optional loopback plain-TCP port for local tools) and the state its hooks read. Messages in:
//! [`AuthChanged`] (who may connect and do what; sessions no longer admitted are disconnected),
//! [`TlsChanged`] (rebind with new certificates), [`SetTaps`] (a service wants copies of device
//! publishes), [`PublishToDevices`] (a host service publishes to devices), [`StopBroker`].
//! Messages out: [`DeviceMessage`] to tap owners. Everything rmqtt-specific stays in this module;
//! no other module names an rmqtt type. It never calls `MqttServer::start()` (which exits the
//! process on error), and never waits for a subscriber on the actor itself: host publishes go
//! through the outbox. Listeners and connections run on a multi-thread tokio runtime of their
//! own (`BrokerRuntime`, `[broker] threads`); hooks reach actors only by message.
//!
//! Flow control (rmqtt patched in `vendor/rmqtt`, see ARCHITECTURE.md): every queue between a
//! publisher and a subscriber is bounded in bytes ([`BrokerLimits`]); an acknowledged QoS 1/2
//! message is never dropped for queue space, its publisher waits instead.
//!
//! - `hooks`: authentication, authorization, publish taps and drop counting.
//! - `limits`: the `[broker]` queue limits (pure).
//! - `listeners`: binding (and rebinding) the listeners.
//! - `outbox`: host publishes to devices, bounded and routed off the actor.
//! - `refusals`: refused connects, publishes and subscribes are logged once per client and
//!   kind per interval, with a count (pure).
//! - `retain`: our retained-message store (SQLite-backed, bounded).
//! - `shared`: which member of a shared subscription gets a message.
//! - `stats`: drop counters and the status report. `traffic`: what the hooks see go by.
//! - `clients`: the sessions admitted and the latest refusals (the console's client devices).
//! - `handle`: the messages the broker takes and its handle.

pub mod clients;
mod handle;
mod hooks;
pub mod limits;
mod listeners;
mod outbox;
mod refusals;
mod retain;
mod shared;
pub mod stats;
pub mod traffic;

use std::net::SocketAddr;
use std::sync::Arc;

use actix::prelude::*;
use rmqtt::context::ServerContext;
use rmqtt::flow::FlowConfig;
use rmqtt::hook::Type;
use rmqtt::types::{Id, Unsubscribe};
use thiserror::Error;
use tokio::task::JoinHandle;

use self::clients::ClientsReport;
pub use self::handle::{BrokerHandle, GetBrokerStatus, ListClients, PublishToDevices, SetTaps, StopBroker};
pub use self::hooks::DeviceMessage;
use self::hooks::{Authenticate, Dropped, Forget, HookState, Presence, PublishCheck, ShapeLimits, SubscribeCheck, Tap};
pub use self::limits::BrokerLimits;
use self::outbox::Outbox;
use self::retain::{RetainLimits, RetainStore, SharedRetain};
use self::stats::BrokerCounters;
use crate::devices::ca::ServerTlsFiles;
use crate::devices::identity::ListenerKind;
use crate::devices::{AuthChanged, AuthSnapshot, TlsChanged};
use crate::flow::CreditPool;

/// A failure to start the broker.
#[derive(Debug, Error)]
pub enum BrokerError {
    /// The plain listener was asked for on a non-loopback address.
    #[error(
        "--plain-listen {0} is not a loopback address; the plain listener has no TLS and is only for local tools (use 127.0.0.1)"
    )]
    PlainNotLoopback(SocketAddr),
    /// The threads for device connections could not be started.
    #[error("cannot start the broker's threads: {0}")]
    Runtime(String),
    /// The database holding retained messages could not be opened.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The retained messages could not be read back.
    #[error(transparent)]
    Retained(#[from] retain::LoadError),
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
    /// Queue limits.
    pub limits: BrokerLimits,
    /// Told when a session ends (a burst of connections may be over).
    pub trimmer: crate::memory::Trimmer,
    /// `turf.db`, where retained messages are kept.
    pub database: std::path::PathBuf,
}

/// Addresses the broker actually bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerAddrs {
    /// Mutual-TLS device listener.
    pub mqtt: SocketAddr,
    /// Plain loopback listener, if enabled.
    pub plain: Option<SocketAddr>,
}

/// The broker service.
pub struct Broker {
    runtime: BrokerRuntime,
    scx: ServerContext,
    hooks: Arc<HookState>,
    server: Option<JoinHandle<()>>,
    outbox: Outbox,
    addrs: BrokerAddrs,
    limits: BrokerLimits,
    retained: Arc<RetainStore>,
}

impl Broker {
    /// Builds rmqtt, binds the listeners and starts accepting. Must run inside the actix system.
    pub async fn start(options: &BrokerOptions) -> Result<(Self, BrokerAddrs), BrokerError> {
        if let Some(addr) = options.plain_listen.filter(|a| !a.ip().is_loopback()) {
            return Err(BrokerError::PlainNotLoopback(addr));
        }
        let limits = options.limits;
        let flow = FlowConfig {
            session_queue_bytes: limits.session_queue_bytes,
            total_queue_bytes: limits.total_queue_bytes,
            stall_timeout: limits.stall_timeout,
            inbound_queue_bytes: limits.inbound_queue_bytes as usize,
            session_queue_messages: limits.session_queue_messages,
            publish_rate: limits.publish_rate,
        };
        let retained = Arc::new(RetainStore::open(
            crate::store::open(&options.database)?,
            RetainLimits { max_bytes: limits.retained_bytes as usize, max_messages: limits.retained_messages as usize },
        )?);
        let counters = Arc::new(BrokerCounters::default());
        let hooks = Arc::new(HookState::new(
            options.plain_listen.map(|_| listeners::PLAIN_LISTENER),
            CreditPool::new(limits.host_queue_bytes),
            Arc::clone(&counters),
            options.trimmer.clone(),
            ShapeLimits { max_subscriptions: limits.max_subscriptions, max_topic_levels: limits.max_topic_levels },
            Arc::clone(&retained),
        ));
        let vouch = {
            let hooks = Arc::clone(&hooks);
            Arc::new(move |der: &[u8]| hooks.vouch(der))
        };
        let scx = ServerContext::new().busy_check_enable(false).flow_control(flow).tls_peer_check(vouch).build().await;
        *scx.extends.retain_mut().await = Box::new(SharedRetain(Arc::clone(&retained)));
        *scx.extends.shared_subscription_mut().await = Box::new(shared::RoundRobin::default());
        let register = scx.extends.hook_mgr().register();
        register.add(Type::ClientAuthenticate, Box::new(Authenticate(Arc::clone(&hooks)))).await;
        register.add(Type::ClientSubscribeCheckAcl, Box::new(SubscribeCheck(Arc::clone(&hooks)))).await;
        register.add(Type::MessagePublishCheckAcl, Box::new(PublishCheck(Arc::clone(&hooks)))).await;
        register.add(Type::SessionTerminated, Box::new(Forget(Arc::clone(&hooks)))).await;
        register.add(Type::ClientConnected, Box::new(Presence(Arc::clone(&hooks)))).await;
        register.add(Type::ClientDisconnected, Box::new(Presence(Arc::clone(&hooks)))).await;
        register.add(Type::MessageDropped, Box::new(Dropped(Arc::clone(&counters)))).await;
        register.start().await;
        let runtime = BrokerRuntime::new(limits.threads)?;
        let handle = runtime.handle();
        let (task, addrs) =
            listeners::bind(&scx, options.mqtt_listen, options.plain_listen, &options.tls, &limits, &handle)?;
        let host_id = Id::new(scx.node.id(), 0, None, None, "turf-host".into(), None);
        let (outbox, _) = Outbox::start(&handle, scx.clone(), host_id, limits.host_queue_bytes, counters);
        tracing::info!(mqtt = %addrs.mqtt, plain = ?addrs.plain, threads = limits.threads, "MQTT broker listening");
        Ok((Self { runtime, scx, hooks, server: Some(task), outbox, addrs, limits, retained }, addrs))
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
                let span = credentials.as_ref().map_or_else(tracing::Span::none, |c| c.span.clone());
                let cert = credentials.and_then(|c| c.cert);
                if let Err(reason) = snapshot.admit(listener, &client_id, cert.as_ref()) {
                    span.in_scope(|| tracing::warn!(client_id, %reason, "disconnecting device: no longer admitted"));
                    if let Ok(mut locked) = entry.try_lock().await {
                        let _ = locked.kick(true, true, true).await;
                    }
                    continue;
                }
                // Connected or kept for later (a persistent session), a session keeps only the
                // subscriptions the new policy allows: nothing more reaches it, now or on resume.
                for filter in entry.subscriptions().await.unwrap_or_default().into_iter().map(|s| s.topic) {
                    if let Err(reason) = hooks::authorize_subscription(&snapshot, listener, &client_id, &filter) {
                        tracing::warn!(client_id, %filter, %reason, "subscription removed: the policy no longer allows it");
                        if let Ok(unsubscribe) = Unsubscribe::from(&filter, true, false) {
                            let _ = entry.unsubscribe(&unsubscribe).await;
                        }
                    }
                }
            }
        }
    }

    /// Rebinds the listeners on the same addresses with the new certificate files; sessions on
    /// existing connections are not interrupted.
    fn reload_tls(&mut self, files: ServerTlsFiles) -> impl Future<Output = Option<JoinHandle<()>>> + 'static {
        let old = self.server.take();
        let (scx, addrs, limits, runtime) = (self.scx.clone(), self.addrs, self.limits, self.runtime.handle());
        async move {
            if let Some(old) = old {
                old.abort();
                let _ = old.await;
            }
            match listeners::bind(&scx, addrs.mqtt, addrs.plain, &files, &limits, &runtime) {
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

    fn stop_future(&mut self) -> impl Future<Output = ()> + 'static {
        if let Some(task) = self.server.take() {
            task.abort();
        }
        let (scx, retained) = (self.scx.clone(), Arc::clone(&self.retained));
        async move {
            let entries: Vec<_> = scx.extends.shared().await.iter().collect();
            for entry in entries {
                if let Ok(mut locked) = entry.try_lock().await {
                    let _ = locked.kick(true, true, true).await;
                }
            }
            // Last wills are retained too: written once every client is gone.
            let _ = tokio::task::spawn_blocking(move || retained.close()).await;
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
        self.runtime.shut_down();
    }
}

/// The multi-thread runtime device connections run on. It is never dropped in place (that
/// would block inside the actix runtime): it is shut down in the background.
struct BrokerRuntime(Option<tokio::runtime::Runtime>, tokio::runtime::Handle);

impl BrokerRuntime {
    /// `threads` of its own; 0 runs device connections on the caller's runtime (the actix thread).
    fn new(threads: u16) -> Result<Self, BrokerError> {
        if threads == 0 {
            return Ok(Self(None, tokio::runtime::Handle::current()));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(threads.max(1)))
            .thread_name("turf-broker")
            .enable_all()
            .build()
            .map_err(|e| BrokerError::Runtime(e.to_string()))?;
        let handle = runtime.handle().clone();
        Ok(Self(Some(runtime), handle))
    }

    fn handle(&self) -> tokio::runtime::Handle {
        self.1.clone()
    }

    fn shut_down(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for BrokerRuntime {
    fn drop(&mut self) {
        self.shut_down();
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
    type Result = ();

    fn handle(&mut self, msg: PublishToDevices, _ctx: &mut Self::Context) {
        self.outbox.push(msg);
    }
}

impl Handler<GetBrokerStatus> for Broker {
    type Result = MessageResult<GetBrokerStatus>;

    fn handle(&mut self, _msg: GetBrokerStatus, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.status())
    }
}

impl Handler<ListClients> for Broker {
    type Result = MessageResult<ListClients>;

    fn handle(&mut self, _msg: ListClients, _ctx: &mut Self::Context) -> Self::Result {
        let (sessions, total) = self.hooks.sessions();
        MessageResult(ClientsReport { sessions, total, denials: self.hooks.denials.recent() })
    }
}

impl Handler<StopBroker> for Broker {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, _msg: StopBroker, _ctx: &mut Self::Context) -> Self::Result {
        AtomicResponse::new(Box::pin(self.stop_future().into_actor(self)))
    }
}
