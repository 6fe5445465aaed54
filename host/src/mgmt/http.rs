//! The local HTTP listener (`--http-listen`, default `127.0.0.1:1441`, the port of Greengrass's
//! debug console): `GET /metrics` in Prometheus's text format, from the same report as
//! `turf status`.
//!
//! Loopback only: anyone who reaches it reads the host's figures, and there is no login in
//! front of it, so an address other than loopback is refused at start with the reason.

use std::net::SocketAddr;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse, HttpServer, web};

use super::metrics;
use super::server::{MgmtError, MgmtServices, gather};

/// Prometheus's content type for the text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

async fn scrape(services: web::Data<MgmtServices>) -> HttpResponse {
    match gather(&services, false).await {
        Ok(report) => HttpResponse::Ok().content_type(TEXT_FORMAT).body(metrics::render(&report)),
        Err(e) => HttpResponse::build(StatusCode::SERVICE_UNAVAILABLE)
            .content_type("text/plain; charset=utf-8")
            .body(format!("host service unavailable: {e}\n")),
    }
}

/// Starts serving on `addr` (loopback only); returns the handle that stops it and the address
/// it listens on.
pub fn start(addr: SocketAddr, services: MgmtServices) -> Result<(ServerHandle, SocketAddr), MgmtError> {
    if !addr.ip().is_loopback() {
        return Err(MgmtError::NotLoopback(addr));
    }
    let data = web::Data::new(services);
    let server = HttpServer::new(move || App::new().app_data(data.clone()).route("/metrics", web::get().to(scrape)))
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .bind(addr)
        .map_err(|source| MgmtError::BindHttp { addr, source })?;
    let bound = server.addrs().first().copied().unwrap_or(addr);
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(async move {
        if let Err(error) = server.await {
            tracing::error!(%error, "HTTP listener stopped");
        }
    });
    Ok((handle, bound))
}
