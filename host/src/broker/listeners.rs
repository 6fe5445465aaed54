//! Binding rmqtt's listeners: mutual TLS for devices and the optional plain loopback port.
//!
//! rmqtt builds its TLS configuration from files when a listener is bound, so a new certificate
//! or a newly trusted CA means binding again; [`bind`] replaces our listener registrations in the
//! server context so it can run more than once. Connections already accepted keep running. Every
//! listener sets `SO_REUSEADDR`, `TCP_NODELAY` and refuses anonymous clients. Listeners and
//! their connections run on the broker's own multi-thread runtime.

use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::time::Duration;

use rmqtt::context::ServerContext;
use rmqtt::net::Builder;
use rmqtt::server::MqttServer;
use rmqtt::types::ListenerId;
use tokio::task::JoinHandle;

use super::{BrokerAddrs, BrokerError, BrokerLimits};
use crate::devices::ca::ServerTlsFiles;

/// Listener id of the mutual-TLS device listener.
pub const TLS_LISTENER: ListenerId = 1;
/// Listener id of the plain loopback listener.
pub const PLAIN_LISTENER: ListenerId = 2;

/// Retained messages a new subscription may queue beyond what flow control admits (they are
/// delivered to the subscriber's own queue without holding queue space).
const RETAINED_ALLOWANCE: usize = 1024;

fn builder(addr: SocketAddr, limits: &BrokerLimits) -> Builder {
    // Flow control bounds a session's queue in bytes; the message count must never bind first,
    // or rmqtt would drop the oldest queued (acknowledged) message. Twice the budget: a session
    // taken over by a new connection carries its old queue (held by the old budget) into the new.
    let max_mqueue_len = 2 * (limits.session_queue_bytes as usize / rmqtt::flow::MESSAGE_OVERHEAD) + RETAINED_ALLOWANCE;
    Builder::new()
        .laddr(addr)
        .reuseaddr(Some(true))
        .nodelay(true)
        .allow_anonymous(false)
        .max_packet_size(limits.max_packet_bytes)
        .max_inflight(NonZeroU16::new(limits.max_inflight).unwrap_or(NonZeroU16::MIN))
        // The fork's accept loops apply these two to sockets and TLS (`rmqtt::admission`);
        // rmqtt itself sizes its CONNECT-processing pool with them (workers, queue), so neither
        // may reach it as 0.
        .max_connections(match limits.max_connections {
            0 => super::limits::NO_CONNECTION_LIMIT,
            n => n as usize,
        })
        .max_handshaking_limit(limits.max_handshakes.max(1) as usize)
        .handshake_timeout(limits.handshake_timeout)
        .max_mqueue_len(max_mqueue_len)
        // Persistent sessions of MQTT 3.1.1 clients live this long; MQTT 5 clients' own
        // Session Expiry Interval is capped at it.
        .session_expiry_interval(limits.max_session_expiry)
        .max_session_expiry_interval(limits.max_session_expiry)
        .max_topic_aliases(limits.max_topic_aliases)
        .max_keepalive(limits.max_keepalive_secs)
        // Zero means "never": a queued, offline or retained message expires only when its
        // publisher set a Message Expiry Interval (rmqtt's default, 300 s, dropped acknowledged
        // messages and retained ones).
        .message_expiry_interval(Duration::ZERO)
}

fn path_str(path: &std::path::Path) -> String {
    path.to_string_lossy().into_owned()
}

fn listen_error(addr: SocketAddr, what: &'static str, error: impl std::fmt::Display) -> BrokerError {
    BrokerError::Listen { addr, what, reason: error.to_string() }
}

/// Binds the listeners and runs the accept loops; returns the task (abort it to close the
/// listening sockets) and the bound addresses.
pub fn bind(
    scx: &ServerContext,
    mqtt: SocketAddr,
    plain: Option<SocketAddr>,
    files: &ServerTlsFiles,
    limits: &BrokerLimits,
    runtime: &tokio::runtime::Handle,
) -> Result<(JoinHandle<()>, BrokerAddrs), BrokerError> {
    // The sockets belong to the broker's runtime, which runs every connection.
    let _context = runtime.enter();
    const TLS: &str = "mutual-TLS device listener";
    const PLAIN: &str = "plain loopback listener";
    let tls = builder(mqtt, limits)
        .name("devices/mtls")
        .tls_cert(Some(path_str(&files.cert)))
        .tls_key(Some(path_str(&files.key)))
        .tls_client_ca_certs(Some(path_str(&files.client_roots)))
        .tls_cross_certificate(true)
        .collect_cert_info(true)
        .bind()
        .and_then(|l| l.tls())
        .map_err(|e| listen_error(mqtt, TLS, e))?;
    let mqtt = tls.local_addr().map_err(|e| listen_error(mqtt, TLS, e))?;
    scx.listen_cfgs.remove(&TLS_LISTENER);
    scx.listen_cfgs.remove(&PLAIN_LISTENER);
    let mut server = MqttServer::new(scx.clone()).listener_by_id(tls, TLS_LISTENER);
    let mut plain_bound = None;
    if let Some(addr) = plain {
        let listener = builder(addr, limits)
            .name("local/plain")
            .bind()
            .and_then(|l| l.tcp())
            .map_err(|e| listen_error(addr, PLAIN, e))?;
        plain_bound = Some(listener.local_addr().map_err(|e| listen_error(addr, PLAIN, e))?);
        server = server.listener_by_id(listener, PLAIN_LISTENER);
    }
    let server = server.build();
    let task = runtime.spawn(async move {
        if let Err(error) = server.run().await {
            tracing::error!(%error, "MQTT broker stopped");
        }
    });
    Ok((task, BrokerAddrs { mqtt, plain: plain_bound }))
}
