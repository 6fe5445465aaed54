//! `turf shadow get|update|delete|list`: device shadows on the running host, for people.

use super::{CliError, ShadowCommand, SyncCommand};
use crate::layout::RootLayout;
use crate::mgmt::client::Client;
use crate::shadow::{ShadowOperation, ShadowReply, ShadowRequest};

/// Runs a `turf shadow` command and prints the answer as JSON.
#[allow(clippy::print_stdout)] // command output
pub async fn execute(layout: &RootLayout, command: ShadowCommand) -> Result<(), CliError> {
    let request = match command {
        ShadowCommand::Get(args) => {
            ShadowRequest { thing: args.thing, name: args.name, operation: ShadowOperation::Get, rate_limited: false }
        }
        ShadowCommand::Delete(args) => ShadowRequest {
            thing: args.thing,
            name: args.name,
            operation: ShadowOperation::Delete { expected_version: None },
            rate_limited: false,
        },
        ShadowCommand::Update { shadow, request } => {
            let payload = match request.strip_prefix('@') {
                Some(file) => std::fs::read_to_string(file).map_err(|e| CliError::Usage(format!("{file}: {e}")))?,
                None => request,
            };
            ShadowRequest {
                thing: shadow.thing,
                name: shadow.name,
                operation: ShadowOperation::Update { payload },
                rate_limited: false,
            }
        }
        ShadowCommand::Sync(SyncCommand::Status { thing, json }) => return sync_status(layout, thing, json).await,
        ShadowCommand::List { thing } => ShadowRequest {
            thing,
            name: String::new(),
            operation: ShadowOperation::ListNamed { next_token: None, page_size: Some(100) },
            rate_limited: false,
        },
    };
    let reply = Client::new(&layout.socket()).shadow(&request).await.map_err(|e| CliError::Host(e.to_string()))?;
    let text = match reply {
        ShadowReply::Document { document } => serde_json::to_string_pretty(&document),
        ShadowReply::Named(page) => serde_json::to_string_pretty(&page),
    };
    println!("{}", text.unwrap_or_default());
    Ok(())
}

/// Prints where shadow sync stands.
#[allow(clippy::print_stdout)] // command output
async fn sync_status(layout: &RootLayout, thing: Option<String>, json: bool) -> Result<(), CliError> {
    let status = Client::new(&layout.socket()).sync_status(thing.as_deref()).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status).unwrap_or_default());
        return Ok(());
    }
    if !status.enabled {
        println!("Shadow sync is off (no synchronize in aws.greengrass.ShadowManager's configuration).");
        return Ok(());
    }
    let link = if status.connected { "upstream connected" } else { "upstream not connected: changes wait" };
    println!(
        "Shadow sync {} ({link}); {} queued, {} running, at most {} cloud updates/s",
        status.direction, status.queued, status.running, status.outbound_rate
    );
    let c = &status.counts;
    println!(
        "  {} synced, {} conflicts merged, {} failed, {} cloud requests since start",
        c.synced, c.conflicts, c.failures, c.cloud_requests
    );
    println!("  {:<40} {:>8} {:>8}  {:<20} STATE", "SHADOW", "LOCAL", "CLOUD", "LAST SYNC");
    for r in &status.shadows {
        let shadow = if r.name.is_empty() { r.thing.clone() } else { format!("{} ({})", r.thing, r.name) };
        let when = r
            .synced_at
            .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|| "never".to_owned());
        let state = match (&r.last_error, r.pending) {
            (Some(error), _) => format!("failed: {error}"),
            (None, true) => "pending".to_owned(),
            (None, false) => "in step".to_owned(),
        };
        println!("  {shadow:<40} {:>8} {:>8}  {when:<20} {state}", r.local_version, r.cloud_version);
    }
    Ok(())
}
