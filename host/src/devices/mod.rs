//! Client device auth: the core CA, the device registry and who may connect.
//!
//! The `DeviceAuth` actor owns the CA (`ca/`) and the registry tables. Messages in:
//! [`AddDevice`], [`ListDevices`]. Messages out: [`DirectoryChanged`] to the broker whenever the
//! set of registered certificates changes, so the broker authenticates CONNECTs from an
//! immutable snapshot without asking. It never sees MQTT traffic and never logs key material.
//!
//! - `ca`: certificate authority files and issuing.
//! - `registry`: SQLite tables of things and certificates.
//! - `identity`: pure thing-name and certificate → thing rules.

pub mod ca;
pub mod identity;
pub mod registry;

use std::path::Path;
use std::sync::Arc;

use actix::prelude::*;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use self::ca::{CaError, CoreCa};
use self::identity::DeviceDirectory;
use self::registry::{DeviceRecord, Registry, RegistryError};
use crate::config::RootLayout;
use crate::fsutil::{self, Access};

/// A failure of a device operation.
#[derive(Debug, Error)]
pub enum DeviceError {
    /// The CA failed.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Writing the device's files failed.
    #[error("cannot write {path}: {source}")]
    WriteFile {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Credentials issued to a new device.
#[derive(Clone, Serialize, Deserialize)]
pub struct IssuedDevice {
    /// Thing name.
    pub thing: String,
    /// Certificate id (SHA-256 of the DER, hex).
    pub certificate_id: String,
    /// Device certificate, PEM.
    pub cert_pem: String,
    /// Device private key, PEM. Never logged.
    pub key_pem: String,
    /// Core CA certificate, PEM (the device trusts the broker with it).
    pub ca_pem: String,
}

impl std::fmt::Debug for IssuedDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedDevice")
            .field("thing", &self.thing)
            .field("certificate_id", &self.certificate_id)
            .finish_non_exhaustive()
    }
}

/// File names written into a device's certificate folder, as the AWS IoT console names them.
pub mod files {
    /// Device certificate.
    pub const CERT: &str = "device.pem.crt";
    /// Device private key (0600).
    pub const KEY: &str = "private.pem.key";
    /// Core CA certificate.
    pub const CA: &str = "ca.pem";
}

impl IssuedDevice {
    /// Writes `device.pem.crt`, `private.pem.key` (0600) and `ca.pem` into `dir`.
    pub fn write_to(&self, dir: &Path) -> Result<(), DeviceError> {
        for (name, content, access) in [
            (files::CERT, &self.cert_pem, Access::Public),
            (files::KEY, &self.key_pem, Access::Private),
            (files::CA, &self.ca_pem, Access::Public),
        ] {
            let path = dir.join(name);
            fsutil::write_atomic(&path, content.as_bytes(), access)
                .map_err(|source| DeviceError::WriteFile { path, source })?;
        }
        Ok(())
    }
}

fn issue_and_register(ca: &CoreCa, registry: &mut Registry, thing: &str) -> Result<IssuedDevice, DeviceError> {
    identity::validate_thing_name(thing).map_err(RegistryError::from)?;
    let issued = ca.issue_device(thing)?;
    let facts = registry.register(thing, &issued.cert_pem)?;
    Ok(IssuedDevice {
        thing: thing.to_owned(),
        certificate_id: facts.id,
        cert_pem: issued.cert_pem,
        key_pem: issued.key_pem,
        ca_pem: ca.cert_pem().to_owned(),
    })
}

/// Issues and registers a device while the host is stopped, working on the root directly.
pub fn add_device_offline(layout: &RootLayout, thing: &str) -> Result<IssuedDevice, DeviceError> {
    let ca = CoreCa::load_or_create(&layout.ca_dir())?;
    let mut registry = Registry::open(&layout.database())?;
    issue_and_register(&ca, &mut registry, thing)
}

/// Lists devices while the host is stopped.
pub fn list_devices_offline(layout: &RootLayout) -> Result<Vec<DeviceRecord>, DeviceError> {
    Ok(Registry::open(&layout.database())?.list()?)
}

/// Issue a certificate for a new device and register it.
#[derive(Message)]
#[rtype(result = "Result<IssuedDevice, DeviceError>")]
pub struct AddDevice {
    /// Thing name of the device (its MQTT client id).
    pub thing: String,
}

/// List registered devices.
#[derive(Message)]
#[rtype(result = "Result<Vec<DeviceRecord>, DeviceError>")]
pub struct ListDevices;

/// The set of registered certificates changed (sent to the broker).
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct DirectoryChanged(pub Arc<DeviceDirectory>);

/// The device-auth service.
pub struct DeviceAuth {
    ca: CoreCa,
    registry: Registry,
    broker: Recipient<DirectoryChanged>,
}

impl DeviceAuth {
    /// A service over an opened CA and registry, reporting to `broker`.
    pub fn new(ca: CoreCa, registry: Registry, broker: Recipient<DirectoryChanged>) -> Self {
        Self { ca, registry, broker }
    }

    fn publish_directory(&self) -> Result<(), DeviceError> {
        let directory = self.registry.directory()?;
        tracing::debug!(certificates = directory.len(), "device directory updated");
        self.broker.do_send(DirectoryChanged(Arc::new(directory)));
        Ok(())
    }

    fn add_device(&mut self, thing: &str) -> Result<IssuedDevice, DeviceError> {
        let issued = issue_and_register(&self.ca, &mut self.registry, thing)?;
        tracing::info!(thing, certificate_id = %issued.certificate_id, "device added");
        self.publish_directory()?;
        Ok(issued)
    }
}

impl Actor for DeviceAuth {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        if let Err(error) = self.publish_directory() {
            tracing::error!(%error, "cannot load the device registry");
        }
    }
}

impl Handler<AddDevice> for DeviceAuth {
    type Result = Result<IssuedDevice, DeviceError>;

    fn handle(&mut self, msg: AddDevice, _ctx: &mut Self::Context) -> Self::Result {
        self.add_device(&msg.thing)
    }
}

impl Handler<ListDevices> for DeviceAuth {
    type Result = Result<Vec<DeviceRecord>, DeviceError>;

    fn handle(&mut self, _msg: ListDevices, _ctx: &mut Self::Context) -> Self::Result {
        Ok(self.registry.list()?)
    }
}
