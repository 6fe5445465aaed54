//! `turf run`: start a host in the foreground until SIGINT or SIGTERM.

use std::path::Path;

use super::{CliError, RunArgs};
use crate::config::HostConfig;
use crate::supervisor::Endpoints;

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut interrupt), Ok(mut terminate)) => {
            tokio::select! {
                _ = interrupt.recv() => tracing::info!("SIGINT received"),
                _ = terminate.recv() => tracing::info!("SIGTERM received"),
            }
        }
        _ => {
            tracing::warn!("cannot install signal handlers; stop with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[allow(clippy::print_stdout)] // the bound addresses are this command's output
fn print_ready(endpoints: &Endpoints) {
    println!("turf is ready");
    println!("  devices (MQTT, mutual TLS): {}", endpoints.mqtt);
    if let Some(plain) = endpoints.plain {
        println!("  local tools (MQTT, plain):  {plain}");
    }
    println!("  discovery (HTTPS, mTLS):    {}", endpoints.discovery);
    println!("  management socket:          {}", endpoints.socket.display());
    println!("  core CA certificate:        {}", endpoints.ca_cert.display());
    println!("  host log:                   {}", endpoints.root.join("logs/turf.log").display());
}

/// Runs the host until a signal arrives.
pub async fn run(root: &Path, args: RunArgs) -> Result<(), CliError> {
    let mut config = HostConfig::new(root);
    config.mqtt_listen = args.mqtt_listen;
    config.plain_listen = args.plain_listen;
    config.discovery_listen = args.discovery_listen;
    config.thing_name = args.thing_name;
    let _guard = crate::logging::init(&config.layout().logs_dir(), &args.log_level)?;
    crate::run(config, print_ready, shutdown_signal()).await?;
    Ok(())
}
