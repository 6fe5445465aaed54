//! `turf device add|list`: through the running host, or on the root directly when it is stopped.

use std::path::Path;

use super::{CliError, DeviceCommand};
use crate::config::RootLayout;
use crate::devices::{self, files};
use crate::mgmt::client::Client;

/// Runs a `turf device` command.
#[allow(clippy::print_stdout)] // command output
pub async fn execute(layout: &RootLayout, command: DeviceCommand) -> Result<(), CliError> {
    let running = Client::is_running(&layout.socket());
    match command {
        DeviceCommand::Add { thing, out } => {
            let issued = if running {
                Client::new(&layout.socket()).add_device(&thing).await?
            } else {
                devices::add_device_offline(layout, &thing)?
            };
            issued.write_to(&out)?;
            println!("Registered thing {} (certificate {})", issued.thing, issued.certificate_id);
            for name in [files::CERT, files::KEY, files::CA] {
                println!("  wrote {}", out.join(name).display());
            }
            Ok(())
        }
        DeviceCommand::List => {
            let list = if running {
                Client::new(&layout.socket()).list_devices().await?
            } else {
                devices::list_devices_offline(layout)?
            };
            if list.is_empty() {
                println!("No devices registered. Add one with `turf device add THING --out DIR`.");
            }
            for device in list {
                let when =
                    chrono::DateTime::from_timestamp(device.created_at, 0).map(|t| t.to_rfc3339()).unwrap_or_default();
                println!("{:<32} {} certificate(s), registered {when}", device.thing, device.certificates.len());
                for id in device.certificates {
                    println!("  {id}");
                }
            }
            Ok(())
        }
    }
}

/// Makes `path` absolute so the host (with another working directory) finds it.
pub fn absolute(path: &Path) -> Result<std::path::PathBuf, CliError> {
    std::path::absolute(path).map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))
}
