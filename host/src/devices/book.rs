//! The device book: the CA and the registry used together, for every `turf device` operation.
//!
//! Both the device-auth actor (host running) and the CLI (host stopped) go through these
//! methods, so the rules are the same either way: issued certificates are registered to their
//! thing, foreign certificates must chain to a trusted CA, trusting a CA rewrites the bundle of
//! accepted client CAs. No actors.

use serde::{Deserialize, Serialize};

use super::ca::{CaError, CoreCa};
use super::identity;
use super::registry::{DeviceRecord, Registry, RegistryError};
use crate::fsutil::{self, Access};
use crate::layout::RootLayout;

/// A failure of a device operation.
#[derive(Debug, thiserror::Error)]
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
    pub fn write_to(&self, dir: &std::path::Path) -> Result<(), DeviceError> {
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

/// The CA and the registry of one root directory.
pub struct DeviceBook {
    ca: CoreCa,
    registry: Registry,
}

impl DeviceBook {
    /// Opens (creating the CA if needed) the book under `layout`.
    pub fn open(layout: &RootLayout) -> Result<Self, DeviceError> {
        Ok(Self { ca: CoreCa::load_or_create(&layout.ca_dir())?, registry: Registry::open(&layout.database())? })
    }

    /// The core CA.
    pub fn ca(&self) -> &CoreCa {
        &self.ca
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The core CA and every trusted CA, PEM.
    pub fn trusted(&self) -> Result<Vec<String>, DeviceError> {
        let mut pems = vec![self.ca.cert_pem().to_owned()];
        pems.extend(self.registry.trusted_cas()?);
        Ok(pems)
    }

    /// Issues a certificate for `thing` and registers it.
    pub fn add(&mut self, thing: &str) -> Result<IssuedDevice, DeviceError> {
        identity::validate_thing_name(thing).map_err(RegistryError::from)?;
        let issued = self.ca.issue_device(thing)?;
        let trusted = [self.ca.cert_pem().to_owned()];
        let facts = self.registry.register(thing, &issued.cert_pem, &trusted)?;
        Ok(IssuedDevice {
            thing: thing.to_owned(),
            certificate_id: facts.id,
            cert_pem: issued.cert_pem,
            key_pem: issued.key_pem,
            ca_pem: self.ca.cert_pem().to_owned(),
        })
    }

    /// Registers a certificate issued elsewhere to `thing`; returns its id.
    pub fn register(&mut self, thing: &str, cert_pem: &str) -> Result<String, DeviceError> {
        let trusted = self.trusted()?;
        Ok(self.registry.register(thing, cert_pem, &trusted)?.id)
    }

    /// Removes `thing` and its certificates.
    pub fn remove(&mut self, thing: &str) -> Result<(), DeviceError> {
        Ok(self.registry.remove(thing)?)
    }

    /// Trusts another CA for device certificates and rewrites the bundle; returns its id and
    /// whether the bundle changed (it does not for a CA trusted already).
    pub fn trust_ca(&mut self, pem: &str) -> Result<(String, bool), DeviceError> {
        let id = self.registry.trust_ca(pem)?;
        Ok((id, self.write_client_roots()?))
    }

    /// Stops trusting the CA `pem` (added with [`trust_ca`](Self::trust_ca)) and rewrites the
    /// bundle; returns its id. Refused while a registered certificate was issued by it (the
    /// error names the things), and for a CA that is not trusted.
    pub fn untrust_ca(&mut self, pem: &str) -> Result<String, DeviceError> {
        let id = self.registry.untrust_ca(pem)?;
        self.write_client_roots()?;
        Ok(id)
    }

    /// Writes the client-roots bundle the broker verifies devices with: this core's CA and every
    /// trusted one. Returns whether the file changed.
    pub fn write_client_roots(&self) -> Result<bool, DeviceError> {
        Ok(self.ca.write_client_roots(&self.registry.trusted_cas()?)?)
    }

    /// Associates `thing` with this core (discovery allowed), or not.
    pub fn associate(&mut self, thing: &str, associated: bool) -> Result<(), DeviceError> {
        Ok(self.registry.set_associated(thing, associated)?)
    }

    /// Every thing.
    pub fn list(&self) -> Result<Vec<DeviceRecord>, DeviceError> {
        Ok(self.registry.list()?)
    }
}
