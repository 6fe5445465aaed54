//! `turf device ...`: through the running host, or on the root directly when it is stopped.

use std::path::Path;

use super::{CliError, DeviceCommand};
use crate::devices::registry::DeviceRecord;
use crate::devices::{self, DeviceBook, DeviceReply, DeviceRequest, files};
use crate::layout::RootLayout;
use crate::mgmt::client::Client;

fn read(path: &Path, what: &str) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| CliError::Usage(format!("cannot read {what} {}: {e}", path.display())))
}

/// Sends `request` to the running host, or performs it on the root when no host runs.
async fn perform(layout: &RootLayout, request: DeviceRequest) -> Result<DeviceReply, CliError> {
    if Client::is_running(&layout.socket()) {
        return Client::new(&layout.socket()).device(&request).await.map_err(|e| CliError::Host(e.to_string()));
    }
    let mut book = DeviceBook::open(layout)?;
    Ok(devices::perform(&mut book, request)?.0)
}

/// Runs a `turf device` command.
#[allow(clippy::print_stdout)] // command output
pub async fn execute(layout: &RootLayout, command: DeviceCommand) -> Result<(), CliError> {
    match command {
        DeviceCommand::Add { thing, out } => {
            let DeviceReply::Issued(issued) = perform(layout, DeviceRequest::Add { thing }).await? else {
                return Err(CliError::Host("unexpected reply to add".to_owned()));
            };
            issued.write_to(&out)?;
            println!("Registered thing {} (certificate {})", issued.thing, issued.certificate_id);
            for name in [files::CERT, files::KEY, files::CA] {
                println!("  wrote {}", out.join(name).display());
            }
        }
        DeviceCommand::Register { thing, cert } => {
            let cert_pem = read(&cert, "certificate")?;
            if let DeviceReply::Id { id } =
                perform(layout, DeviceRequest::Register { thing: thing.clone(), cert_pem }).await?
            {
                println!("Registered certificate {id} to thing {thing}");
            }
        }
        DeviceCommand::Remove { thing } => {
            perform(layout, DeviceRequest::Remove { thing: thing.clone() }).await?;
            println!("Removed thing {thing}");
        }
        DeviceCommand::TrustCa { file } => {
            let pem = read(&file, "CA certificate")?;
            if let DeviceReply::Id { id } = perform(layout, DeviceRequest::TrustCa { pem }).await? {
                println!("Trusting CA {id} for device certificates");
            }
        }
        DeviceCommand::UntrustCa { file } => {
            let pem = read(&file, "CA certificate")?;
            if let DeviceReply::Id { id } = perform(layout, DeviceRequest::UntrustCa { pem }).await? {
                println!("No longer trusting CA {id}; devices it issued certificates to cannot connect");
            }
        }
        DeviceCommand::Associate { thing } => {
            perform(layout, DeviceRequest::Associate { thing: thing.clone(), associated: true }).await?;
            println!("Associated {thing} with this core device; it may use discovery");
        }
        DeviceCommand::Disassociate { thing } => {
            perform(layout, DeviceRequest::Associate { thing: thing.clone(), associated: false }).await?;
            println!("Disassociated {thing} from this core device");
        }
        DeviceCommand::List => {
            let DeviceReply::Devices { devices } = perform(layout, DeviceRequest::List).await? else {
                return Err(CliError::Host("unexpected reply to list".to_owned()));
            };
            print_devices(devices);
        }
    }
    Ok(())
}

/// Prints `turf device list`.
#[allow(clippy::print_stdout)] // command output
fn print_devices(devices: Vec<DeviceRecord>) {
    if devices.is_empty() {
        println!("No devices registered. Add one with `turf device add THING --out DIR`.");
    }
    for device in devices {
        let when = chrono::DateTime::from_timestamp(device.created_at, 0).map(|t| t.to_rfc3339()).unwrap_or_default();
        let associated = if device.associated { "associated" } else { "not associated" };
        println!("{:<32} {associated}, {} certificate(s), registered {when}", device.thing, device.certificates.len());
        for id in device.certificates {
            println!("  {id}");
        }
    }
}

/// Makes `path` absolute so the host (with another working directory) finds it.
pub fn absolute(path: &Path) -> Result<std::path::PathBuf, CliError> {
    std::path::absolute(path).map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))
}
