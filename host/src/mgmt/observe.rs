//! What the console (and some CLI commands) show beyond `turf status`, as management API
//! routes: the broker's sessions and latest refusals, what the device groups allow a thing, the
//! test client (publish, live watch), a component's last log lines, the configuration a
//! MERGE/RESET would give a component, and where shadow sync stands. Each handler asks the owning service, like those in
//! [`super::server`].

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::messages::{self, MessagesError, Target, TestPublish, WatchServices};
use super::refusal::Refusal;
use super::server::{MgmtServices, ask, ask_or_refuse, error, json, refused, unavailable};
use crate::broker::ListClients;
use crate::deploy::GetComponent;
use crate::deploy::config_update::{self, ConfigUpdate};
use crate::devices::GetAccess;
use crate::shadow::sync::GetSyncStatus;

/// Most log lines one request returns.
pub const MAX_LOG_LINES: usize = 1000;

/// How far back from a log file's end lines are looked for, in bytes.
const LOG_WINDOW: u64 = 256 * 1024;

async fn clients(services: web::Data<MgmtServices>) -> HttpResponse {
    ask(&services.broker.clients, ListClients).await
}

async fn access(services: web::Data<MgmtServices>, thing: web::Path<String>) -> HttpResponse {
    ask_or_refuse(&services.devices.access, GetAccess { thing: thing.into_inner() }).await
}

impl Refusal for MessagesError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Topic { .. } | Self::TooLarge { .. } | Self::Qos(_) => StatusCode::BAD_REQUEST,
            Self::NoUpstream => StatusCode::CONFLICT,
            Self::TooManyStreams(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Service(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The services the test client goes through.
fn watch_services(services: &MgmtServices) -> WatchServices {
    WatchServices { bus: services.bus.clone(), broker: services.broker.clone(), upstream: services.upstream.clone() }
}

async fn publish(services: web::Data<MgmtServices>, body: web::Json<TestPublish>) -> HttpResponse {
    match messages::publish(&watch_services(&services), services.console, body.into_inner()).await {
        Ok(()) => json(serde_json::json!({})),
        Err(refusal) => refused(&refusal),
    }
}

#[derive(Deserialize)]
struct WatchQuery {
    target: Target,
    filter: String,
}

/// `GET /v1/messages/stream?target=pubsub|local-mqtt|iot-core&filter=F`: server-sent events,
/// for as long as the console session that asked lives (a request over the socket has none).
async fn stream(
    services: web::Data<MgmtServices>,
    query: web::Query<WatchQuery>,
    request: actix_web::HttpRequest,
) -> HttpResponse {
    let query = query.into_inner();
    let watch = watch_services(&services);
    let session = request.cookie(super::console::COOKIE).map(|cookie| cookie.value().to_owned());
    let logins = std::sync::Arc::clone(&services.logins);
    let allowed: messages::StillAllowed = std::sync::Arc::new(move || {
        session.as_deref().is_none_or(|session| logins.valid(session, std::time::Instant::now()))
    });
    let watched = (query.target, query.filter);
    match messages::watch(watch, &services.streams, services.console, watched, allowed).await {
        Ok(events) => HttpResponse::Ok()
            .content_type("text/event-stream")
            .insert_header(("cache-control", "no-cache"))
            .streaming(events),
        Err(refusal) => refused(&refusal),
    }
}

#[derive(Deserialize)]
struct LogsQuery {
    lines: Option<usize>,
}

/// A component's last log lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogTail {
    /// The log file.
    pub file: std::path::PathBuf,
    /// Its last lines, oldest first.
    pub lines: Vec<String>,
}

/// `GET /v1/components/{name}/logs?lines=N` (default 200, at most [`MAX_LOG_LINES`]).
async fn logs(
    services: web::Data<MgmtServices>,
    name: web::Path<String>,
    query: web::Query<LogsQuery>,
) -> HttpResponse {
    let name = name.into_inner();
    let wanted = query.lines.unwrap_or(200).min(MAX_LOG_LINES);
    let details = match services.deployments.component.send(GetComponent { name: name.clone() }).await {
        Ok(Some(details)) => details,
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("no component named {name} is deployed")),
        Err(e) => return unavailable(e),
    };
    let Some(file) = details.log_file else {
        return error(StatusCode::NOT_FOUND, format!("{name} is built into Turf: its lines are in the host's log"));
    };
    let read = web::block(move || read_tail(&file, wanted).map(|lines| LogTail { file, lines })).await;
    match read {
        Ok(Ok(tail)) => json(tail),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

/// The last `wanted` lines of `file` (none if it does not exist yet), looking back at most
/// [`LOG_WINDOW`] bytes.
fn read_tail(file: &Path, wanted: usize) -> Result<Vec<String>, String> {
    let mut opened = match std::fs::File::open(file) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
    };
    let at = |e: std::io::Error| format!("cannot read {}: {e}", file.display());
    let size = opened.metadata().map_err(at)?.len();
    let start = size.saturating_sub(LOG_WINDOW);
    opened.seek(SeekFrom::Start(start)).map_err(at)?;
    let mut bytes = Vec::new();
    opened.take(LOG_WINDOW).read_to_end(&mut bytes).map_err(at)?;
    Ok(last_lines(&bytes, start > 0, wanted))
}

/// The last `wanted` lines of `bytes`; the first is skipped when `partial` (the window began
/// mid-line).
fn last_lines(bytes: &[u8], partial: bool, wanted: usize) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if partial && !lines.is_empty() {
        lines.remove(0);
    }
    let skip = lines.len().saturating_sub(wanted);
    lines[skip..].iter().map(|l| (*l).to_owned()).collect()
}

/// The configuration a deployment with `update` would give a component now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigPreview {
    /// What it runs with now.
    pub current: Value,
    /// What it would run with.
    pub result: Value,
    /// Top-level keys that would change.
    pub changed: Vec<String>,
}

/// `POST /v1/components/{name}/preview` with a `{"MERGE": ..., "RESET": [...]}` body: the
/// planner's own rule (running → RESET → defaults → MERGE), without deploying.
async fn preview(
    services: web::Data<MgmtServices>,
    name: web::Path<String>,
    update: web::Json<ConfigUpdate>,
) -> HttpResponse {
    let name = name.into_inner();
    let update = update.into_inner();
    if let Err(e) = update.validate() {
        return error(StatusCode::BAD_REQUEST, format!("configuration update for {name}: {e}"));
    }
    let details = match services.deployments.component.send(GetComponent { name: name.clone() }).await {
        Ok(Some(details)) => details,
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("no component named {name} is deployed")),
        Err(e) => return unavailable(e),
    };
    let defaults = details.recipe.as_ref().map_or(Value::Null, default_configuration);
    let result = config_update::resolve(Some(&details.configuration), &defaults, Some(&update));
    let changed = config_update::changed_keys(Some(&details.configuration), &result);
    json(ConfigPreview { current: details.configuration, result, changed })
}

/// A recipe's `ComponentConfiguration.DefaultConfiguration` (keys matched without case, as
/// recipes are read), or null.
fn default_configuration(recipe: &Value) -> Value {
    let field = |value: &Value, key: &str| {
        value.as_object().and_then(|map| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key))).map(|(_, v)| v.clone())
    };
    field(recipe, "ComponentConfiguration")
        .and_then(|section| field(&section, "DefaultConfiguration"))
        .unwrap_or(Value::Null)
}

#[derive(Deserialize)]
struct SyncQuery {
    thing: Option<String>,
}

/// `GET /v1/shadows/sync[?thing=T]`.
async fn sync_status(services: web::Data<MgmtServices>, query: web::Query<SyncQuery>) -> HttpResponse {
    match services.shadows.sync_status.send(GetSyncStatus { thing: query.into_inner().thing }).await {
        Ok(Ok(status)) => json(status),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => unavailable(e),
    }
}

/// The routes, inside [`super::api::PREFIX`].
pub(super) fn routes(scope: actix_web::Scope) -> actix_web::Scope {
    scope
        .route("/clients", web::get().to(clients))
        .route("/devices/{thing}/access", web::get().to(access))
        .route("/messages", web::post().to(publish))
        .route("/messages/stream", web::get().to(stream))
        .route("/components/{name}/logs", web::get().to(logs))
        .route("/components/{name}/preview", web::post().to(preview))
        .route("/shadows/sync", web::get().to(sync_status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_last_lines_skip_a_partial_first_one() {
        let bytes = b"tail of an earlier line\none\ntwo\nthree\n";
        assert_eq!(last_lines(bytes, true, 10), ["one", "two", "three"]);
        assert_eq!(last_lines(bytes, true, 2), ["two", "three"]);
        assert_eq!(last_lines(bytes, false, 10).len(), 4);
        assert!(last_lines(b"", true, 10).is_empty());
        assert_eq!(last_lines(b"\xff\xfe broken\n", false, 1), ["\u{fffd}\u{fffd} broken"]);
    }

    #[test]
    fn a_missing_log_file_has_no_lines_yet() {
        let lines = read_tail(Path::new("/nonexistent/turf/never.log"), 5).unwrap();
        assert!(lines.is_empty());
    }

    #[test]
    fn defaults_are_found_whatever_the_key_case() {
        let recipe = json!({"componentConfiguration": {"defaultConfiguration": {"a": 1}}});
        assert_eq!(default_configuration(&recipe), json!({"a": 1}));
        assert_eq!(default_configuration(&json!({"ComponentName": "x"})), Value::Null);
    }
}
