//! `turf connectivity show|set|clear`: the endpoints discovery returns ("Manage core device
//! endpoints" in Greengrass). Works on the root directly when the host is stopped.

use super::{CliError, ConnectivityCommand};
use crate::connectivity::detect::parse_endpoint;
use crate::connectivity::{self, ConnectivityInfo, ConnectivityReport};
use crate::layout::RootLayout;
use crate::mgmt::client::Client;

/// Port assumed when an endpoint names only a host.
const DEFAULT_PORT: u16 = 8883;

#[allow(clippy::print_stdout)] // command output
fn print(report: &ConnectivityReport) {
    println!("Connectivity ({}):", report.source);
    if report.entries.is_empty() {
        println!("  (none: devices cannot discover this core; set endpoints or configure the IP detector)");
    }
    for entry in &report.entries {
        println!("  {}:{}", entry.host_address, entry.port);
    }
    if let Some(problem) = &report.problem {
        println!("  warning: {problem}");
    }
}

fn offline(layout: &RootLayout, manual: Option<Vec<ConnectivityInfo>>) -> Result<(), CliError> {
    let conn = crate::store::open(&layout.database()).map_err(|e| CliError::Host(e.to_string()))?;
    connectivity::save_manual(&conn, manual.as_ref()).map_err(|e| CliError::Host(e.to_string()))
}

/// Runs a `turf connectivity` command.
#[allow(clippy::print_stdout)] // command output
pub async fn execute(layout: &RootLayout, command: ConnectivityCommand) -> Result<(), CliError> {
    let running = Client::is_running(&layout.socket());
    let client = Client::new(&layout.socket());
    let manual = match command {
        ConnectivityCommand::Show => {
            print(&client.connectivity().await?);
            return Ok(());
        }
        ConnectivityCommand::Set { endpoints } => Some(
            endpoints
                .iter()
                .map(|e| parse_endpoint(e, Some(DEFAULT_PORT)).map_err(|e| CliError::Usage(format!("endpoint {e}"))))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        ConnectivityCommand::Clear => None,
    };
    if running {
        print(&client.set_connectivity(manual).await?);
    } else {
        offline(layout, manual)?;
        println!("Saved; the host uses it when it starts.");
    }
    Ok(())
}
