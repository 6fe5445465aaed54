//! `turf status`: listeners and components of the running host.

use super::CliError;
use crate::config::RootLayout;
use crate::mgmt::client::Client;

/// Prints the host's status.
#[allow(clippy::print_stdout)] // command output
pub async fn execute(layout: &RootLayout) -> Result<(), CliError> {
    let status = Client::new(&layout.socket()).status().await?;
    println!("turf {} — core device {} (root {})", status.version, status.thing_name, status.root.display());
    println!("  devices (MQTT, mutual TLS): {}", status.mqtt);
    if let Some(plain) = status.plain {
        println!("  local tools (MQTT, plain):  {plain}");
    }
    println!();
    println!("{:<52} {:<9} {:<9} {:>8}", "COMPONENT", "VERSION", "STATE", "RESTARTS");
    for c in status.components {
        let kind = if c.builtin { " (built-in)" } else { "" };
        println!("{:<52} {:<9} {:<9} {:>8}", format!("{}{kind}", c.name), c.version, c.state.to_string(), c.restarts);
        if let Some(error) = c.error {
            println!("    last error: {error}");
        }
    }
    Ok(())
}
