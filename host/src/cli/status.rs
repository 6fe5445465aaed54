//! `turf status`: listeners and components of the running host.

use super::CliError;
use super::component::human_duration;
use crate::broker::stats::BrokerStatus;
use crate::layout::RootLayout;
use crate::mgmt::api::StatusReport;
use crate::mgmt::client::Client;
use crate::store;

/// `1.5 MiB`, `12.0 KiB`, `300 B`.
fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / f64::from(1 << 10)),
        b => format!("{b} B"),
    }
}

#[allow(clippy::print_stdout)] // command output
fn print_broker(b: &BrokerStatus) {
    println!(
        "  broker:                     {} connection(s), {} session(s); queued {} of {}, {} publish(es) waiting",
        b.connections,
        b.sessions,
        human_bytes(b.queued_bytes),
        human_bytes(b.queued_bytes_limit),
        b.waiting_publishes
    );
    let t = &b.traffic;
    println!(
        "    traffic: {} publish(es) received (QoS 0/1/2: {}/{}/{}, {}); {} connect(s) accepted, {} authentication failure(s)",
        t.received_qos0 + t.received_qos1 + t.received_qos2,
        t.received_qos0,
        t.received_qos1,
        t.received_qos2,
        human_bytes(t.received_bytes),
        t.connects_accepted,
        t.authentication_failures.values().sum::<u64>()
    );
    let d = &b.dropped;
    println!(
        "    dropped: {} queue full, {} expired, {} session ended, {} host outbox full; {} denied; {} unsubscribed; {} not queued in time (publisher not acknowledged); {} stalled subscriber(s) disconnected",
        d.queue_full,
        d.expired,
        d.session_ended,
        d.host_outbox_full,
        d.denied,
        d.unsubscribed,
        d.wait_timed_out,
        b.stalled_disconnects
    );
    println!(
        "    retained: {} message(s), {} of {}{}",
        b.retained_messages,
        human_bytes(b.retained_bytes),
        human_bytes(b.retained_bytes_limit),
        match b.retained_write_failures {
            0 => String::new(),
            n => format!("; {n} failed database write(s), retried"),
        }
    );
    let r = &b.refused;
    println!(
        "    refused: {} connect(s), {} imitated certificate(s), {} subscription(s), {} publish(es) ({} retained); {} socket(s) over max_connections, {} over max_handshakes, {} handshake timeout(s); {} publish-rate pause(s)",
        r.connects,
        r.certificates,
        r.subscribes,
        r.publishes,
        r.retained,
        r.over_max_connections,
        r.over_max_handshakes,
        r.handshake_timeouts,
        r.publish_throttles
    );
}

/// Prints where the host listens, its broker certificate and its upstream link.
#[allow(clippy::print_stdout)] // command output
fn print_endpoints(status: &StatusReport) {
    println!("turf {} — core device {} (root {})", status.version, status.thing_name, status.root.display());
    println!("  devices (MQTT, mutual TLS): {}", status.mqtt);
    if let Some(plain) = status.plain {
        println!("  local tools (MQTT, plain):  {plain}");
    }
    println!("  discovery (HTTPS, mTLS):    {}", status.discovery);
    if let Some(http) = status.http {
        let scheme = if status.http_tls { "https" } else { "http" };
        println!("  metrics and console:        {scheme}://{http}/metrics");
    }
    if let Some(cert) = &status.server_cert {
        let date = |t: i64| chrono::DateTime::from_timestamp(t, 0).map(|t| t.format("%Y-%m-%d").to_string());
        println!(
            "  broker certificate:         expires {}, renewed from {}",
            date(cert.not_after).unwrap_or_default(),
            date(cert.renew_at).unwrap_or_default()
        );
    }
    if let Some(up) = &status.upstream {
        match &up.endpoint {
            None => println!("  upstream (IotCore):         not configured"),
            Some(endpoint) => {
                let since =
                    up.since.map(|t| format!(" for {}", human_duration(store::now_secs() - t))).unwrap_or_default();
                println!("  upstream (IotCore):         {endpoint} {}{since}", up.state);
                println!(
                    "    spool: {} message(s), {} bytes; delivered {}, dropped {}",
                    up.spooled, up.spooled_bytes, up.delivered, up.dropped
                );
                if let Some(error) = &up.last_error {
                    println!("    last error: {error}");
                }
            }
        }
    }
}

/// Prints a console login link.
#[allow(clippy::print_stdout)] // command output
pub async fn console(layout: &RootLayout) -> Result<(), CliError> {
    let token = Client::new(&layout.socket()).console_token().await?;
    match token.url {
        Some(url) if url.starts_with("https:") => {
            println!(
                "Open {url} in a browser (valid 5 minutes, once); its certificate is from the core CA, {}.",
                layout.ca_dir().join("ca.pem").display()
            );
            if ["://0.0.0.0:", "://[::]:"].iter().any(|any| url.contains(any)) {
                println!(
                    "The listener is bound to every address: put a name or address of this host that its \
                     certificate carries (see `turf connectivity show`) in place of the wildcard."
                );
            }
        }
        Some(url) => println!("Open {url} in a browser on this machine (valid 5 minutes, once)."),
        None => println!("The host has no HTTP listener; token: {}", token.token),
    }
    Ok(())
}

/// Prints the host's status.
#[allow(clippy::print_stdout)] // command output
pub async fn execute(layout: &RootLayout, json: bool) -> Result<(), CliError> {
    let status = Client::new(&layout.socket()).status().await?;
    if json {
        let text = serde_json::to_string_pretty(&status).map_err(|e| CliError::Host(e.to_string()))?;
        println!("{text}");
        return Ok(());
    }
    print_endpoints(&status);
    if let Some(broker) = &status.broker {
        print_broker(broker);
    }
    for u in &status.unreadable {
        let more = if u.rows > u.examples.len() as u64 { ", ..." } else { "" };
        println!("  unreadable stored rows:     {} in {} ({}{more})", u.rows, u.table, u.examples.join(", "));
    }
    if let Some(error) = &status.census_error {
        println!("  unreadable stored rows:     unknown: {error}");
    }
    println!();
    let names: Vec<String> =
        status.components.iter().map(|c| format!("{}{}", c.name, if c.builtin { " (built-in)" } else { "" })).collect();
    let width = names.iter().map(String::len).max().unwrap_or(9).max(9);
    println!("{:<width$}  {:<9} {:<9} {:>8} {:>14}", "COMPONENT", "VERSION", "STATE", "RESTARTS", "MEMORY");
    for (c, name) in status.components.into_iter().zip(names) {
        let memory = c.usage.as_ref().map(super::component::memory_figure).unwrap_or_else(|| "-".to_owned());
        println!("{name:<width$}  {:<9} {:<9} {:>8} {memory:>14}", c.version, c.state.to_string(), c.restarts);
        if let Some(error) = c.error {
            println!("    last error: {error}");
        }
        if let Some(refused) = c.usage.as_ref().and_then(super::component::refusals) {
            println!("    {refused}");
        }
    }
    Ok(())
}
