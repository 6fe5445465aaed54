//! `turf shadow get|update|delete|list`: device shadows on the running host, for people.

use super::{CliError, ShadowCommand};
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
            operation: ShadowOperation::Delete,
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
