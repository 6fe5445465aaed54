//! The local HTTP listener (`--http-listen`, default `127.0.0.1:1441`, the port of Greengrass's
//! debug console): `GET /metrics` in Prometheus's text format, from the same report as
//! `turf status`, and the console.
//!
//! The console is the management API itself under `/api` (the same handlers the CLI reaches
//! over the socket, so it can do nothing the CLI cannot; minting login tokens is the socket's
//! alone) and its page at `/`, both behind a session: `GET /login?token=` turns a token from
//! `turf console` into a session cookie (`HttpOnly`, `SameSite=Strict`, and `Secure` over TLS)
//! and hands the page its session key in the URL fragment; the API also needs that key, in the
//! `x-turf-key` header (or, for an event stream, `?key=`), since browsers send cookies to every
//! port of a host (see [`super::console`]). `POST /logout` ends the session.
//!
//! Every request must name this listener: on plain HTTP its `Host` is the bound address or
//! `localhost` with its port (a DNS-rebound name is refused), and an `Origin`, when a browser
//! sends one, must be the listener's own. At most `[console] max_connections` connections are
//! open at once, each with short request and idle timeouts.
//!
//! Plain HTTP on loopback only: an address other than loopback needs `--http-tls`, which serves
//! HTTPS with the broker's server certificate from the core CA (the one discovery serves,
//! reloaded in place when it is re-issued); without it the host refuses to start, saying so.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde::Deserialize;

use super::console::{COOKIE, SESSION_TTL, Session};
use super::metrics;
use super::server::{self, MgmtError, MgmtServices, gather};
use crate::discovery::DynamicTls;

/// The console: its page, style and script (embedded; no build step).
const CONSOLE_PAGE: &str = include_str!("../../assets/console/index.html");
const CONSOLE_STYLE: &str = include_str!("../../assets/console/console.css");
const CONSOLE_SCRIPT: &str = include_str!("../../assets/console/console.js");

/// What a request without a session is told.
const LOG_IN: &str = "not logged in: run `turf console` for a login link\n";

/// The header carrying the session key.
const KEY_HEADER: &str = "x-turf-key";

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

#[derive(Deserialize)]
struct Login {
    token: String,
}

/// Redeems a login token for a session cookie and goes to the console.
async fn login(
    services: web::Data<MgmtServices>,
    listener: web::Data<Listener>,
    query: web::Query<Login>,
) -> HttpResponse {
    let Some(Session { id, key }) = services.logins.redeem(&query.token, Instant::now()) else {
        return HttpResponse::Unauthorized()
            .content_type("text/plain; charset=utf-8")
            .body("this login link is unknown, used or expired: run `turf console` for a new one\n");
    };
    let cookie = Cookie::build(COOKIE, id)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(listener.https)
        .max_age(actix_web::cookie::time::Duration::seconds(SESSION_TTL.as_secs() as i64))
        .finish();
    // The fragment never leaves the browser; the page moves the key into its storage.
    HttpResponse::SeeOther().insert_header(("location", format!("/#key={key}"))).cookie(cookie).finish()
}

/// Ends the request's session.
async fn logout(services: web::Data<MgmtServices>, request: HttpRequest) -> HttpResponse {
    if let Some(cookie) = request.cookie(COOKIE) {
        services.logins.end(cookie.value());
    }
    let mut gone = Cookie::build(COOKIE, "").path("/").finish();
    gone.make_removal();
    HttpResponse::Ok().cookie(gone).content_type("text/plain; charset=utf-8").body("logged out\n")
}

/// One of the console's embedded files.
fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("x-frame-options", "DENY"))
        .insert_header(("content-security-policy", "default-src 'self'; frame-ancestors 'none'"))
        .body(body)
}

async fn page() -> HttpResponse {
    asset("text/html; charset=utf-8", CONSOLE_PAGE)
}

async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", CONSOLE_STYLE)
}

async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", CONSOLE_SCRIPT)
}

/// The session key a request carries: its header, or for a `GET` (an event stream, which
/// cannot set headers) its `key` query parameter.
fn key_of(request: &ServiceRequest) -> Option<String> {
    if let Some(key) = request.headers().get(KEY_HEADER).and_then(|v| v.to_str().ok()) {
        return Some(key.to_owned());
    }
    if request.method() != actix_web::http::Method::GET {
        return None;
    }
    request.query_string().split('&').find_map(|pair| pair.strip_prefix("key=")).map(str::to_owned)
}

/// Whether `request` carries a live session cookie and, if `with_key`, that session's key.
fn has_session(request: &ServiceRequest, with_key: bool) -> bool {
    let Some(services) = request.app_data::<web::Data<MgmtServices>>() else { return false };
    let Some(cookie) = request.cookie(COOKIE) else { return false };
    let now = Instant::now();
    match with_key {
        false => services.logins.valid(cookie.value(), now),
        true => services.logins.authorizes(cookie.value(), &key_of(request).unwrap_or_default(), now),
    }
}

/// Lets a request through only with a live session cookie (401 otherwise): the page's own
/// files, which hold no secret.
async fn require_session(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if !has_session(&request, false) {
        return Err(actix_web::error::ErrorUnauthorized(LOG_IN));
    }
    next.call(request).await
}

/// Lets a request through only with a live session cookie and that session's key (401
/// otherwise): the API and logout.
async fn require_key(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if !has_session(&request, true) {
        return Err(actix_web::error::ErrorUnauthorized(LOG_IN));
    }
    next.call(request).await
}

/// Who a request must name: this listener's address and scheme (its cookies are `Secure` over
/// HTTPS).
#[derive(Clone, Copy)]
struct Listener {
    bound: SocketAddr,
    https: bool,
}

impl Listener {
    /// Whether `host` (a `Host` header) names this listener. Over TLS the certificate already
    /// binds the name, so any is taken; on plain HTTP only the bound address or `localhost`, so a
    /// name rebound by DNS to loopback reaches nothing.
    fn is_named_by(self, host: &str) -> bool {
        let port = self.bound.port();
        self.https
            || host == self.bound.to_string()
            || [format!("localhost:{port}"), format!("127.0.0.1:{port}"), format!("[::1]:{port}")]
                .iter()
                .any(|allowed| allowed == host)
    }
}

/// Refuses a request whose `Host` is not this listener (421) or whose `Origin`, when sent, is
/// another site (403).
async fn same_listener(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let listener = request.app_data::<web::Data<Listener>>().map(|l| *l.get_ref());
    let host = header("host").unwrap_or_default();
    if !listener.is_some_and(|l| l.is_named_by(&host)) {
        let text = format!("this listener does not serve the host {host:?}\n");
        return Err(actix_web::error::InternalError::new(text, StatusCode::MISDIRECTED_REQUEST).into());
    }
    let scheme = if listener.is_some_and(|l| l.https) { "https" } else { "http" };
    if header("origin").is_some_and(|origin| origin != format!("{scheme}://{host}")) {
        return Err(actix_web::error::ErrorForbidden("requests from another site are refused\n"));
    }
    next.call(request).await
}

/// Starts serving on `addr`, over TLS with `tls` (required unless `addr` is loopback); returns
/// the handle that stops it and the address it listens on.
pub fn start(
    addr: SocketAddr,
    tls: Option<Arc<DynamicTls>>,
    mut services: MgmtServices,
) -> Result<(ServerHandle, SocketAddr), MgmtError> {
    if !addr.ip().is_loopback() && tls.is_none() {
        return Err(MgmtError::NotLoopback(addr));
    }
    let bind = |source| MgmtError::BindHttp { addr, source };
    // Bound first, so the report it serves names the port the OS chose.
    let listener = std::net::TcpListener::bind(addr).map_err(bind)?;
    let bound = listener.local_addr().map_err(bind)?;
    services.status.http = Some(bound);
    services.status.http_tls = tls.is_some();
    let max_connections = services.console.max_connections;
    let data = web::Data::new(services);
    let listener_data = web::Data::new(Listener { bound, https: tls.is_some() });
    let server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(same_listener))
            .app_data(data.clone())
            .app_data(listener_data.clone())
            .app_data(server::json_config())
            .route("/metrics", web::get().to(scrape))
            .route("/login", web::get().to(login))
            .service(web::resource("/logout").wrap(from_fn(require_key)).route(web::post().to(logout)))
            .service(web::scope("/api").wrap(from_fn(require_key)).configure(server::console_routes))
            .service(web::resource("/").wrap(from_fn(require_session)).route(web::get().to(page)))
            .service(web::resource("/console.css").wrap(from_fn(require_session)).route(web::get().to(style)))
            .service(web::resource("/console.js").wrap(from_fn(require_session)).route(web::get().to(script)))
    })
    .workers(1)
    .max_connections(max_connections)
    .client_request_timeout(std::time::Duration::from_secs(5))
    .client_disconnect_timeout(std::time::Duration::from_secs(1))
    .keep_alive(std::time::Duration::from_secs(5))
    .disable_signals()
    .shutdown_timeout(1);
    let server = match tls {
        Some(tls) => {
            let config = tls.browser_config().map_err(|e| bind(std::io::Error::other(e)))?;
            server.listen_rustls_0_23(listener, config).map_err(bind)?
        }
        None => server.listen(listener).map_err(bind)?,
    };
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(async move {
        if let Err(error) = server.await {
            tracing::error!(%error, "HTTP listener stopped");
        }
    });
    Ok((handle, bound))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_listeners_own_names_are_served_on_plain_http() {
        let plain = Listener { bound: "127.0.0.1:1441".parse().unwrap(), https: false };
        for host in ["127.0.0.1:1441", "localhost:1441", "[::1]:1441"] {
            assert!(plain.is_named_by(host), "{host}");
        }
        for host in ["", "localhost", "127.0.0.1", "localhost:1442", "evil.example:1441", "127.0.0.1:1441.evil.example"]
        {
            assert!(!plain.is_named_by(host), "{host:?}");
        }
        let tls = Listener { bound: "0.0.0.0:1441".parse().unwrap(), https: true };
        assert!(tls.is_named_by("core.example:1441"), "over TLS the certificate binds the name");
    }
}
