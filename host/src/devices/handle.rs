//! What the device-auth service offers and announces: the operations it performs, the
//! questions it answers, the snapshots it publishes, and its handle.

use std::sync::Arc;

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use super::ca::ServerTlsFiles;
use super::local_tools::LocalTools;
use super::policy::{DeviceGroups, PolicyError};
use super::registry::DeviceRecord;
use super::{AuthSnapshot, DeviceAuth, DeviceError, IssuedDevice};
use crate::connectivity::{ConnectivityChanged, ConnectivityInfo};

/// The broker's server certificate, for `turf status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerCertStatus {
    /// When it expires (seconds since the epoch).
    pub not_after: i64,
    /// When it will be re-issued (seconds since the epoch).
    pub renew_at: i64,
}

/// Asks the device-auth service about the broker's server certificate.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Option<ServerCertStatus>")]
pub struct GetServerCert;

/// Devices or policies changed (sent to the broker).
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct AuthChanged(pub Arc<AuthSnapshot>);

/// The broker's certificate or the accepted client CAs changed; reload from these files.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct TlsChanged(pub ServerTlsFiles);

/// The policies of the Auth component's configuration.
#[derive(Debug, Clone, Default)]
pub struct AuthPolicies {
    /// `deviceGroups`; `None` denies every device.
    pub groups: Option<Arc<DeviceGroups>>,
    /// `localTools` (its default when absent).
    pub local_tools: Arc<LocalTools>,
}

impl AuthPolicies {
    /// Reads both from the Auth component's whole configuration; errors name the JSON path.
    pub fn from_config(config: &serde_json::Value) -> Result<Self, PolicyError> {
        Ok(Self {
            groups: DeviceGroups::from_config(config)?.map(Arc::new),
            local_tools: Arc::new(LocalTools::from_config(config)?),
        })
    }
}

/// The groups that select a thing and what they allow it (empty: none select it, so it is
/// denied everything).
#[derive(Message)]
#[rtype(result = "Result<ThingAccess, DeviceError>")]
pub struct GetAccess {
    /// Thing name.
    pub thing: String,
}

/// The answer to [`GetAccess`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThingAccess {
    /// Thing name.
    pub thing: String,
    /// Whether the Auth component has `deviceGroups` at all (without, every device is denied).
    pub configured: bool,
    /// The groups that select it, with their policies' statements.
    pub groups: Vec<super::policy::GroupAccess>,
}

/// New policies (from a deployment).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ConfigureAuth(pub AuthPolicies);

/// A `turf device` operation.
#[derive(Message, Debug, Clone, Serialize, Deserialize)]
#[rtype(result = "Result<DeviceReply, DeviceError>")]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum DeviceRequest {
    /// Issue and register a certificate.
    Add {
        /// Thing name.
        thing: String,
    },
    /// Register a certificate issued elsewhere.
    Register {
        /// Thing name.
        thing: String,
        /// The certificate, PEM.
        cert_pem: String,
    },
    /// Remove a thing and its certificates (its connections are closed).
    Remove {
        /// Thing name.
        thing: String,
    },
    /// Trust another CA for device certificates.
    TrustCa {
        /// The CA certificate, PEM.
        pem: String,
    },
    /// Stop trusting a CA added with `TrustCa`.
    UntrustCa {
        /// The CA certificate, PEM.
        pem: String,
    },
    /// Associate a thing with this core (or not).
    Associate {
        /// Thing name.
        thing: String,
        /// Associate (true) or disassociate (false).
        associated: bool,
    },
    /// List things.
    List,
}

impl DeviceRequest {
    /// The operation's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            DeviceRequest::Add { .. } => "add",
            DeviceRequest::Register { .. } => "register",
            DeviceRequest::Remove { .. } => "remove",
            DeviceRequest::TrustCa { .. } => "trust-ca",
            DeviceRequest::UntrustCa { .. } => "untrust-ca",
            DeviceRequest::Associate { .. } => "associate",
            DeviceRequest::List => "list",
        }
    }
}

/// The answer to a [`DeviceRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DeviceReply {
    /// A new device's credentials.
    Issued(IssuedDevice),
    /// The id of a registered certificate or trusted CA.
    Id {
        /// Certificate id.
        id: String,
    },
    /// Done.
    Done,
    /// The things.
    Devices {
        /// Records.
        devices: Vec<DeviceRecord>,
    },
}

/// Where device auth sends things; wired by the supervisor.
pub struct DevicePeers {
    /// The broker's authorization snapshot.
    pub auth: Recipient<AuthChanged>,
    /// Listeners that reload TLS (broker, discovery).
    pub tls: Vec<Recipient<TlsChanged>>,
}

/// May `thing`, presenting the certificate `certificate_id`, discover this core? Asked by the
/// discovery endpoint, which turns the answer into Greengrass's JSON.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<DiscoveryAnswer, DiscoverError>")]
pub struct Discover {
    /// Thing name from the request path.
    pub thing: String,
    /// Id (SHA-256) of the certificate the device presented.
    pub certificate_id: String,
}

/// Why discovery was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoverError {
    /// The certificate is not registered to this thing (it is another thing's or none's, or the
    /// thing does not exist: the answer does not say which).
    #[error(
        "the client certificate is not registered to thing {0}; a device may only discover with its own certificate"
    )]
    NotOwnCertificate(String),
    /// The thing is not associated with this core.
    #[error(
        "thing {thing} is not associated with core device {core}; associate it with `turf device associate {thing}`"
    )]
    NotAssociated {
        /// The thing.
        thing: String,
        /// This core.
        core: String,
    },
    /// The lookup failed (the detail is for the log, not for the device).
    #[error("discovery failed: {0}")]
    Internal(String),
}

/// What a device may learn when it may discover: the core, where it listens, and the CA its
/// certificate chains to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryAnswer {
    /// This core's thing name.
    pub core_thing: String,
    /// Where the broker can be reached.
    pub connectivity: Vec<ConnectivityInfo>,
    /// The core CA certificate (PEM).
    pub ca_pem: String,
}

/// What the device-auth service offers, built once by the supervisor.
#[derive(Clone)]
pub struct DevicesHandle {
    /// `turf device` operations.
    pub requests: Recipient<DeviceRequest>,
    /// The broker's server certificate, for `turf status`.
    pub server_cert: Recipient<GetServerCert>,
    /// What the device groups allow a thing.
    pub access: Recipient<GetAccess>,
    /// Discovery's question.
    pub discover: Recipient<Discover>,
    /// New policies from a deployment.
    pub configure: Recipient<ConfigureAuth>,
    /// The connectivity list changed (the broker certificate's names follow it).
    pub connectivity: Recipient<ConnectivityChanged>,
}

impl DevicesHandle {
    /// The handle of the device-auth service at `addr` (it may still be starting).
    pub fn of(addr: &Addr<DeviceAuth>) -> Self {
        Self {
            requests: addr.clone().recipient(),
            server_cert: addr.clone().recipient(),
            access: addr.clone().recipient(),
            discover: addr.clone().recipient(),
            configure: addr.clone().recipient(),
            connectivity: addr.clone().recipient(),
        }
    }
}
