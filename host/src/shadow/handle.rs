//! What the shadow manager offers: the requests it answers and its handle.

use actix::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ShadowManager;
use super::counts::ShadowCounts;
use super::document::ShadowError;
use super::settings::ShadowSettings;
use super::sync::{ConfigureSync, GetSyncStatus, GetSyncSummary, ShadowSync};

/// What to do with a shadow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum ShadowOperation {
    /// Read the document.
    Get,
    /// Apply an update request (JSON text).
    Update {
        /// The request document.
        payload: String,
    },
    /// Delete the shadow.
    Delete {
        /// Only if the shadow is at this version (409 otherwise): how shadow sync deletes, so a
        /// device's update that lands between sync's read and its delete is never lost.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected_version: Option<u64>,
    },
    /// List the thing's named shadows (the shadow name is ignored).
    ListNamed {
        /// From a previous page.
        next_token: Option<String>,
        /// 1 to 100, default 25.
        page_size: Option<u32>,
    },
}

/// A shadow request from a component or the CLI.
#[derive(Message, Debug, Clone, Serialize, Deserialize)]
#[rtype(result = "Result<ShadowReply, ShadowError>")]
pub struct ShadowRequest {
    /// Thing name.
    pub thing: String,
    /// Shadow name; empty for the classic shadow.
    #[serde(default)]
    pub name: String,
    /// What to do.
    #[serde(flatten)]
    pub operation: ShadowOperation,
    /// Counted against `rateLimits` (a component's request; the operator's CLI is not).
    #[serde(skip)]
    pub rate_limited: bool,
}

/// One page of named shadows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedShadowsPage {
    /// Names.
    pub results: Vec<String>,
    /// Seconds since the epoch.
    pub timestamp: i64,
    /// Token of the next page.
    pub next_token: Option<String>,
}

/// The answer to a [`ShadowRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ShadowReply {
    /// A response document (get/accepted, update/accepted, delete/accepted).
    Document {
        /// The JSON.
        document: Value,
    },
    /// A page of names.
    Named(NamedShadowsPage),
}

/// New settings from a deployment.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct ConfigureShadows(pub ShadowSettings);

/// What the manager answered since the host started.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "ShadowCounts")]
pub struct GetShadowCounts;

/// Every local shadow's thing, name and version (a full sync looks at them all).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<Vec<(String, String, u64)>, String>")]
pub struct ListShadows;

/// What the shadow manager and its sync offer, built once by the supervisor.
#[derive(Clone)]
pub struct ShadowHandle {
    /// Shadow requests (components' `shadow` imports, the CLI).
    pub requests: Recipient<ShadowRequest>,
    /// New settings from a deployment.
    pub configure: Recipient<ConfigureShadows>,
    /// What it answered.
    pub counts: Recipient<GetShadowCounts>,
    /// New `synchronize` settings from a deployment.
    pub configure_sync: Recipient<ConfigureSync>,
    /// Where sync stands.
    pub sync_status: Recipient<GetSyncStatus>,
    /// Sync's figures.
    pub sync_summary: Recipient<GetSyncSummary>,
}

impl ShadowHandle {
    /// The handle of a running shadow manager and its sync.
    pub fn of(manager: &Addr<ShadowManager>, sync: &Addr<ShadowSync>) -> Self {
        Self {
            requests: manager.clone().recipient(),
            configure: manager.clone().recipient(),
            counts: manager.clone().recipient(),
            configure_sync: sync.clone().recipient(),
            sync_status: sync.clone().recipient(),
            sync_summary: sync.clone().recipient(),
        }
    }
}
