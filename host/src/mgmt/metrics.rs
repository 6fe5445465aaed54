//! `GET /metrics`: the status report (the figures `turf status --json` prints) in Prometheus's
//! text format. Names follow Prometheus's conventions: base units, counters end in `_total`,
//! standard `process_*` names for the process, and no client id or topic as a label (component
//! names are: the operator's deployments bound them).

use super::api::StatusReport;
use super::exposition::{Exposition, Kind};
use crate::broker::stats::BrokerStatus;
use crate::components::budget::UsageReport;
use crate::components::lifecycle::State;
use crate::shadow::sync::SyncSummary;
use crate::upstream::UpstreamStatus;

const STATES: [State; 8] = [
    State::New,
    State::Installed,
    State::Starting,
    State::Running,
    State::Stopping,
    State::Finished,
    State::Errored,
    State::Broken,
];

/// The report as Prometheus text.
pub fn render(report: &StatusReport) -> String {
    let mut text = Exposition::default();
    text.family("turf_build_info", Kind::Gauge, "Turf's version (the value is always 1).")
        .sample(&[("version", &report.version)], 1.0);
    process(&mut text, report);
    if let Some(broker) = &report.broker {
        connections(&mut text, broker);
        messages(&mut text, broker);
        queues(&mut text, broker);
    }
    if let Some(upstream) = &report.upstream {
        self::upstream(&mut text, upstream);
    }
    components(&mut text, report);
    services(&mut text, report);
    if let Some(cert) = &report.server_cert {
        text.family(
            "turf_server_certificate_expiry_timestamp_seconds",
            Kind::Gauge,
            "When the broker's certificate expires.",
        )
        .value(cert.not_after as f64);
    }
    let mut unreadable =
        text.family("turf_unreadable_rows", Kind::Gauge, "Stored rows the host cannot read, by table.");
    for rows in &report.unreadable {
        unreadable.sample(&[("table", &rows.table)], rows.rows as f64);
    }
    text.finish()
}

fn process(text: &mut Exposition, report: &StatusReport) {
    text.family("process_start_time_seconds", Kind::Gauge, "When the host started, seconds since the epoch.")
        .value(report.started_at as f64);
    let Some(p) = &report.process else { return };
    text.family("process_resident_memory_bytes", Kind::Gauge, "Resident memory.").value(p.resident_bytes as f64);
    text.family("process_cpu_seconds_total", Kind::Counter, "User and system CPU time.")
        .value(p.cpu_ms as f64 / 1000.0);
    text.family("process_open_fds", Kind::Gauge, "Open file descriptors.").value(p.open_fds as f64);
    text.family("process_max_fds", Kind::Gauge, "The file descriptor limit.").value(p.max_fds as f64);
    text.family("process_threads", Kind::Gauge, "Threads.").value(p.threads as f64);
}

fn connections(text: &mut Exposition, b: &BrokerStatus) {
    text.family("turf_mqtt_connections", Kind::Gauge, "Open MQTT connections.").value(b.connections as f64);
    text.family("turf_mqtt_sessions", Kind::Gauge, "MQTT sessions, connected or kept.").value(b.sessions as f64);
    text.family("turf_mqtt_connects_total", Kind::Counter, "CONNECTs by result.")
        .sample(&[("result", "accepted")], b.traffic.connects_accepted as f64)
        .sample(&[("result", "refused")], b.refused.connects as f64);
    let mut failures =
        text.family("turf_mqtt_authentication_failures_total", Kind::Counter, "Failed authentications by reason.");
    for (reason, count) in &b.traffic.authentication_failures {
        failures.sample(&[("reason", reason)], *count as f64);
    }
    let mut decisions =
        text.family("turf_mqtt_authorization_decisions_total", Kind::Counter, "Authorization decisions by action.");
    for (action, d) in &b.traffic.authorization {
        decisions.sample(&[("action", action), ("result", "allowed")], d.allowed as f64);
        decisions.sample(&[("action", action), ("result", "denied")], d.denied as f64);
    }
    text.family("turf_mqtt_admission_refusals_total", Kind::Counter, "Connections closed at once, by limit.")
        .sample(&[("limit", "max_connections")], b.refused.over_max_connections as f64)
        .sample(&[("limit", "max_handshakes")], b.refused.over_max_handshakes as f64)
        .sample(&[("limit", "handshake_timeout")], b.refused.handshake_timeouts as f64);
}

fn messages(text: &mut Exposition, b: &BrokerStatus) {
    let t = &b.traffic;
    text.family("turf_mqtt_messages_received_total", Kind::Counter, "PUBLISH packets received from clients, by QoS.")
        .sample(&[("qos", "0")], t.received_qos0 as f64)
        .sample(&[("qos", "1")], t.received_qos1 as f64)
        .sample(&[("qos", "2")], t.received_qos2 as f64);
    text.family("turf_mqtt_received_bytes_total", Kind::Counter, "Topic and payload bytes of the publishes received.")
        .value(t.received_bytes as f64);
    text.family("turf_mqtt_messages_sent_total", Kind::Counter, "PUBLISH packets written to subscribers, by QoS.")
        .sample(&[("qos", "0")], t.sent_qos0 as f64)
        .sample(&[("qos", "1")], t.sent_qos1 as f64)
        .sample(&[("qos", "2")], t.sent_qos2 as f64);
    text.family("turf_mqtt_sent_bytes_total", Kind::Counter, "Topic and payload bytes of the publishes sent.")
        .value(t.sent_bytes as f64);
    text.family("turf_mqtt_subscriptions", Kind::Gauge, "Subscriptions held by sessions.")
        .value(t.subscriptions as f64);
    text.family("turf_mqtt_inflight_messages", Kind::Gauge, "QoS 1/2 messages sent and not yet acknowledged.")
        .value(t.inflight as f64);
    let d = &b.dropped;
    text.family("turf_mqtt_messages_dropped_total", Kind::Counter, "Messages not delivered, by reason.")
        .sample(&[("reason", "no_subscriber")], t.nonsubscribed as f64)
        .sample(&[("reason", "queue_full")], d.queue_full as f64)
        .sample(&[("reason", "expired")], d.expired as f64)
        .sample(&[("reason", "denied")], d.denied as f64)
        .sample(&[("reason", "session_ended")], d.session_ended as f64)
        .sample(&[("reason", "host_outbox_full")], d.host_outbox_full as f64)
        .sample(&[("reason", "wait_timed_out")], d.wait_timed_out as f64)
        .sample(&[("reason", "unsubscribed")], d.unsubscribed as f64);
    let r = &b.refused;
    text.family("turf_mqtt_refusals_total", Kind::Counter, "Requests refused or held back, by kind.")
        .sample(&[("kind", "certificate")], r.certificates as f64)
        .sample(&[("kind", "subscribe")], r.subscribes as f64)
        .sample(&[("kind", "publish")], r.publishes as f64)
        .sample(&[("kind", "retained")], r.retained as f64)
        .sample(&[("kind", "publish_rate")], r.publish_throttles as f64);
}

fn queues(text: &mut Exposition, b: &BrokerStatus) {
    text.family("turf_mqtt_queued_bytes", Kind::Gauge, "Bytes of message copies queued for sessions.")
        .value(b.queued_bytes as f64);
    text.family("turf_mqtt_queued_limit_bytes", Kind::Gauge, "The limit of turf_mqtt_queued_bytes.")
        .value(b.queued_bytes_limit as f64);
    text.family("turf_mqtt_waiting_publishes", Kind::Gauge, "Publishes waiting for a subscriber's queue room.")
        .value(b.waiting_publishes as f64);
    text.family("turf_mqtt_publish_waits_total", Kind::Counter, "Publishes that waited for queue room.")
        .value(b.waits as f64);
    text.family("turf_mqtt_stalled_disconnects_total", Kind::Counter, "Subscribers disconnected for stalling.")
        .value(b.stalled_disconnects as f64);
    text.family("turf_host_queued_bytes", Kind::Gauge, "Bytes of device messages inside the host.")
        .value(b.host_bytes as f64);
    text.family("turf_host_queued_limit_bytes", Kind::Gauge, "The limit of turf_host_queued_bytes.")
        .value(b.host_bytes_limit as f64);
    text.family("turf_host_waits_total", Kind::Counter, "Device publishes that waited for the host.")
        .value(b.host_waits as f64);
    text.family("turf_retained_messages", Kind::Gauge, "Retained messages.").value(b.retained_messages as f64);
    text.family("turf_retained_bytes", Kind::Gauge, "Bytes of retained messages.").value(b.retained_bytes as f64);
    text.family("turf_retained_limit_bytes", Kind::Gauge, "The limit of turf_retained_bytes.")
        .value(b.retained_bytes_limit as f64);
    text.family("turf_retained_write_failures_total", Kind::Counter, "Failed writes of retained messages.")
        .value(b.retained_write_failures as f64);
}

fn upstream(text: &mut Exposition, u: &UpstreamStatus) {
    let connected = if u.state == "connected" { 1.0 } else { 0.0 };
    text.family("turf_upstream_connected", Kind::Gauge, "1 while the upstream link is connected.").value(connected);
    text.family("turf_upstream_spool_messages", Kind::Gauge, "Messages waiting in the upstream spool.")
        .value(u.spooled as f64);
    text.family("turf_upstream_spool_bytes", Kind::Gauge, "Bytes waiting in the upstream spool.")
        .value(u.spooled_bytes as f64);
    text.family("turf_upstream_delivered_total", Kind::Counter, "Messages the upstream broker acknowledged.")
        .value(u.delivered as f64);
    text.family("turf_upstream_dropped_total", Kind::Counter, "Messages dropped from a full spool.")
        .value(u.dropped as f64);
}

/// Deployments, shadow requests and bridge routes.
fn services(text: &mut Exposition, report: &StatusReport) {
    let count = |state: &str| report.deployments.get(state).copied().unwrap_or(0) as f64;
    text.family("turf_deployments_total", Kind::Counter, "Deployments in the history, by result.")
        .sample(&[("result", "succeeded")], count("SUCCEEDED"))
        .sample(&[("result", "failed")], count("FAILED"));
    text.family("turf_deployments_pending", Kind::Gauge, "Deployments queued or being applied.")
        .value(count("QUEUED") + count("IN_PROGRESS"));
    if let Some(shadows) = &report.shadows {
        let mut requests =
            text.family("turf_shadow_requests_total", Kind::Counter, "Shadow requests by operation and result.");
        for (operation, outcomes) in &shadows.requests {
            requests.sample(&[("operation", operation), ("result", "accepted")], outcomes.accepted as f64);
            requests.sample(&[("operation", operation), ("result", "rejected")], outcomes.rejected as f64);
        }
        let mut rejections = text.family("turf_shadow_rejections_total", Kind::Counter, "Shadow rejections by code.");
        for (code, n) in &shadows.rejections {
            rejections.sample(&[("code", &code.to_string())], *n as f64);
        }
    }
    if let Some(sync) = &report.shadow_sync {
        shadow_sync(text, sync);
    }
    let mut bridge = text.family(
        "turf_bridge_messages_total",
        Kind::Counter,
        "Messages the bridge relayed, by route and direction.",
    );
    for route in &report.bridge {
        let labels = [("route", route.route.as_str()), ("source", &route.source), ("target", &route.target)];
        bridge.sample(&labels, route.messages as f64);
    }
}

fn shadow_sync(text: &mut Exposition, sync: &SyncSummary) {
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    text.family("turf_shadow_sync_enabled", Kind::Gauge, "Whether any shadow is synced with the upstream.")
        .value(flag(sync.enabled));
    text.family("turf_shadow_sync_connected", Kind::Gauge, "Whether sync's upstream connection is up.")
        .value(flag(sync.connected));
    text.family("turf_shadow_sync_queued_shadows", Kind::Gauge, "Shadows waiting for a sync.")
        .value(sync.queued as f64);
    text.family("turf_shadow_sync_pending_shadows", Kind::Gauge, "Shadows changed locally, not yet in the cloud.")
        .value(sync.pending as f64);
    text.family("turf_shadow_sync_failed_shadows", Kind::Gauge, "Shadows whose last sync failed.")
        .value(sync.failed as f64);
    let c = &sync.counts;
    text.family("turf_shadow_syncs_total", Kind::Counter, "Shadow syncs by result.")
        .sample(&[("result", "synced")], c.synced as f64)
        .sample(&[("result", "conflict")], c.conflicts as f64)
        .sample(&[("result", "failed")], c.failures as f64);
    text.family("turf_shadow_sync_cloud_requests_total", Kind::Counter, "Requests sync sent to the upstream broker.")
        .value(c.cloud_requests as f64);
    text.family("turf_shadow_sync_dropped_total", Kind::Counter, "Changes not queued because the sync queue was full.")
        .value(c.dropped as f64);
    text.family(
        "turf_shadow_sync_over_limit_total",
        Kind::Counter,
        "Shadows the cloud announced, left out because maxShadows are synced.",
    )
    .value(c.over_limit as f64);
}

fn components(text: &mut Exposition, report: &StatusReport) {
    let mut states = text.family("turf_components", Kind::Gauge, "Components by state.");
    for state in STATES {
        let count = report.components.iter().filter(|c| c.state == state).count();
        states.sample(&[("state", &state.to_string())], count as f64);
    }
    let wasm: Vec<_> = report.components.iter().filter(|c| !c.builtin).collect();
    let mut restarts = text.family("turf_component_restarts_total", Kind::Counter, "Restarts of a component.");
    for c in &wasm {
        restarts.sample(&[("component", &c.name)], f64::from(c.restarts));
    }
    let usage: Vec<_> = wasm.iter().filter_map(|c| c.usage.as_ref().map(|u| (c.name.as_str(), u))).collect();
    type Figure = fn(&UsageReport) -> f64;
    let per_component: [(&'static str, Kind, &str, Figure); 5] = [
        ("turf_component_memory_bytes", Kind::Gauge, "WebAssembly memory a component holds.", |u| {
            u.memory_bytes as f64
        }),
        ("turf_component_memory_limit_bytes", Kind::Gauge, "A component's memory budget.", |u| {
            u.memory_limit_bytes as f64
        }),
        ("turf_component_cpu_seconds_total", Kind::Counter, "Time a component ran on its thread.", |u| {
            u.cpu_ms as f64 / 1000.0
        }),
        ("turf_component_budget_overruns_total", Kind::Counter, "Calls killed past their budget.", |u| {
            u.budget_overruns as f64
        }),
        ("turf_component_dropped_messages_total", Kind::Counter, "Messages dropped from a full inbox.", |u| {
            u.dropped_messages as f64
        }),
    ];
    for (name, kind, help, figure) in per_component {
        let mut family = text.family(name, kind, help);
        for (component, u) in &usage {
            family.sample(&[("component", component)], figure(u));
        }
    }
}
