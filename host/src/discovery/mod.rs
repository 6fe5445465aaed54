//! Greengrass discovery: `GET /greengrass/discover/thing/{thingName}` over mutual TLS.
//!
//! The `Discovery` actor owns the HTTPS listener (default `0.0.0.0:8443`) and its reloadable TLS.
//! Each request carries the device's certificate (captured at connect); the handler asks the
//! device-auth service ([`Discover`]) whether that certificate belongs to the thing in the path
//! and the thing is associated with this core, and returns the SDK's JSON or a JSON error
//! (403 when the certificate is not the thing's, whether the thing exists or not, or when the
//! thing is not associated; 500 without the internal detail, which goes to the log). Messages in:
//! [`TlsChanged`] (reload certificate and accepted CAs), [`StopDiscovery`]. Never decides who a
//! device is itself.
//!
//! - `response`: the response JSON. `tls`: reloadable rustls configuration.
//! - `client`: the device side (used by `turf client`).

pub mod client;
pub mod response;
pub mod tls;

use std::any::Any;
use std::net::SocketAddr;
use std::sync::Arc;

use actix::prelude::*;
use actix_web::dev::{Extensions, ServerHandle};
use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde::Serialize;
use thiserror::Error;

pub use self::tls::DynamicTls;
use crate::devices::ca::ServerTlsFiles;
use crate::devices::registry::certificate_id;
use crate::devices::{Discover, DiscoverError, TlsChanged};

/// How a refusal looks on the wire.
trait DiscoverRefusal {
    fn status(&self) -> StatusCode;
    fn public_message(&self) -> String;
}

impl DiscoverRefusal for DiscoverError {
    fn status(&self) -> StatusCode {
        match self {
            DiscoverError::NotOwnCertificate(_) | DiscoverError::NotAssociated { .. } => StatusCode::FORBIDDEN,
            DiscoverError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the device is told: everything but an internal failure's detail.
    fn public_message(&self) -> String {
        match self {
            DiscoverError::Internal(_) => "discovery failed on the core device; its log has the details".to_owned(),
            other => other.to_string(),
        }
    }
}

/// Stop the listener; replies when stopped.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopDiscovery;

/// A failure to start discovery.
#[derive(Debug, Error)]
pub enum DiscoveryError {
    /// TLS material could not be loaded.
    #[error("discovery TLS: {0}")]
    Tls(String),
    /// The port could not be bound.
    #[error("cannot listen for discovery on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Id of the client certificate of a connection.
#[derive(Debug, Clone)]
struct PeerCertificate(String);

#[derive(Serialize)]
struct ErrorBody {
    message: String,
}

fn capture_peer(conn: &dyn Any, ext: &mut Extensions) {
    type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
    if let Some(stream) = conn.downcast_ref::<Tls>() {
        let (_, session) = stream.get_ref();
        if let Some(cert) = session.peer_certificates().and_then(|c| c.first()) {
            ext.insert(PeerCertificate(certificate_id(cert.as_ref())));
        }
    }
}

async fn discover(
    peers: web::Data<Recipient<Discover>>,
    request: HttpRequest,
    thing: web::Path<String>,
) -> HttpResponse {
    let thing = thing.into_inner();
    let Some(PeerCertificate(certificate_id)) = request.conn_data::<PeerCertificate>().cloned() else {
        return HttpResponse::Unauthorized().json(ErrorBody { message: "a client certificate is required".to_owned() });
    };
    match peers.send(Discover { thing: thing.clone(), certificate_id }).await {
        Ok(Ok(answer)) => {
            tracing::info!(thing, "discovery answered");
            HttpResponse::Ok().json(response::build(&answer.core_thing, &answer.connectivity, &answer.ca_pem))
        }
        Ok(Err(error)) => {
            tracing::warn!(thing, %error, "discovery refused");
            HttpResponse::build(error.status()).json(ErrorBody { message: error.public_message() })
        }
        Err(error) => {
            HttpResponse::ServiceUnavailable().json(ErrorBody { message: format!("device auth unavailable: {error}") })
        }
    }
}

async fn not_found(request: HttpRequest) -> HttpResponse {
    HttpResponse::NotFound()
        .json(ErrorBody { message: format!("no such endpoint: {} {}", request.method(), request.path()) })
}

/// The discovery service.
pub struct Discovery {
    tls: Arc<DynamicTls>,
    server: ServerHandle,
}

impl Discovery {
    /// Binds `addr` and starts serving; returns the bound address.
    pub fn start(
        addr: SocketAddr,
        files: &ServerTlsFiles,
        authority: Recipient<Discover>,
    ) -> Result<(Self, SocketAddr), DiscoveryError> {
        let tls = DynamicTls::new(files).map_err(DiscoveryError::Tls)?;
        let config = tls.server_config().map_err(DiscoveryError::Tls)?;
        let data = web::Data::new(authority);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/greengrass/discover/thing/{thing}", web::get().to(discover))
                .default_service(web::to(not_found))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .on_connect(capture_peer)
        .bind_rustls_0_23(addr, config)
        .map_err(|source| DiscoveryError::Bind { addr, source })?;
        let bound = server.addrs().first().copied().unwrap_or(addr);
        let server = server.run();
        let handle = server.handle();
        actix_rt::spawn(async move {
            if let Err(error) = server.await {
                tracing::error!(%error, "discovery endpoint stopped");
            }
        });
        tracing::info!(%bound, "discovery listening");
        Ok((Self { tls, server: handle }, bound))
    }
}

impl Discovery {
    /// The certificate it serves, reloaded in place when device auth re-issues it.
    pub fn tls(&self) -> Arc<DynamicTls> {
        Arc::clone(&self.tls)
    }
}

impl Actor for Discovery {
    type Context = Context<Self>;
}

impl Handler<TlsChanged> for Discovery {
    type Result = ();

    fn handle(&mut self, msg: TlsChanged, _ctx: &mut Self::Context) {
        match self.tls.reload(&msg.0) {
            Ok(()) => tracing::info!("discovery TLS reloaded"),
            Err(error) => tracing::error!(error, "cannot reload discovery TLS; keeping the previous certificate"),
        }
    }
}

impl Handler<StopDiscovery> for Discovery {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _msg: StopDiscovery, _ctx: &mut Self::Context) -> Self::Result {
        let server = self.server.clone();
        Box::pin(async move { server.stop(true).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_failure_is_a_500_that_does_not_echo_its_detail() {
        let error = DiscoverError::Internal("database disk image is malformed (SQLITE_CORRUPT)".to_owned());
        assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!error.public_message().contains("SQLITE"), "{}", error.public_message());
        assert!(error.to_string().contains("SQLITE_CORRUPT"), "the log keeps the detail");
    }

    #[test]
    fn refusals_are_403_and_say_why() {
        let not_own = DiscoverError::NotOwnCertificate("Thing".to_owned());
        assert_eq!(not_own.status(), StatusCode::FORBIDDEN);
        assert_eq!(not_own.public_message(), not_own.to_string());
        let unassociated = DiscoverError::NotAssociated { thing: "Thing".to_owned(), core: "Core".to_owned() };
        assert_eq!(unassociated.status(), StatusCode::FORBIDDEN);
    }
}
