//! `turf status`: listeners and components of the running host.

use super::CliError;
use super::component::human_duration;
use crate::config::RootLayout;
use crate::mgmt::client::Client;
use crate::store;

/// Prints the host's status.
#[allow(clippy::print_stdout)] // command output
pub async fn execute(layout: &RootLayout) -> Result<(), CliError> {
    let status = Client::new(&layout.socket()).status().await?;
    println!("turf {} — core device {} (root {})", status.version, status.thing_name, status.root.display());
    println!("  devices (MQTT, mutual TLS): {}", status.mqtt);
    if let Some(plain) = status.plain {
        println!("  local tools (MQTT, plain):  {plain}");
    }
    println!("  discovery (HTTPS, mTLS):    {}", status.discovery);
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
    println!();
    let names: Vec<String> =
        status.components.iter().map(|c| format!("{}{}", c.name, if c.builtin { " (built-in)" } else { "" })).collect();
    let width = names.iter().map(String::len).max().unwrap_or(9).max(9);
    println!("{:<width$}  {:<9} {:<9} {:>8}", "COMPONENT", "VERSION", "STATE", "RESTARTS");
    for (c, name) in status.components.into_iter().zip(names) {
        println!("{name:<width$}  {:<9} {:<9} {:>8}", c.version, c.state.to_string(), c.restarts);
        if let Some(error) = c.error {
            println!("    last error: {error}");
        }
    }
    Ok(())
}
