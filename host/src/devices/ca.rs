//! The core device's certificate authority (`DIR/ca/`).
//!
//! Owns the core CA (EC P-256, generated on first start), the broker's server certificate and
//! the bundle of CAs whose device certificates the broker accepts. Issues device certificates.
//! Plain file I/O with `rcgen`; no actors. It never hands out the CA's private key, and writes
//! every private key 0600.

use std::collections::BTreeSet;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SerialNumber,
};
use thiserror::Error;
use time::{Duration, OffsetDateTime};

use crate::fsutil::{self, Access};

/// How long the core CA is valid.
const CA_VALIDITY: Duration = Duration::days(3650);
/// How long a device certificate is valid.
const DEVICE_VALIDITY: Duration = Duration::days(3650 - 1);
/// How long the broker's server certificate is valid.
const SERVER_VALIDITY: Duration = Duration::days(365);
/// Re-issue the server certificate when it has less than this left.
const SERVER_RENEW_BEFORE: Duration = Duration::days(30);

/// A failure of the certificate authority.
#[derive(Debug, Error)]
pub enum CaError {
    /// Reading or writing a file under `ca/` failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A stored certificate or key could not be parsed.
    #[error("{path} is not a valid {what}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What it should hold.
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// One of the CA's two files is there and the other is not: making a new CA would leave
    /// every device that trusts the old one unable to verify this core.
    #[error(
        "{present} exists but {missing} does not; restore {missing} (or, to start over with a new CA that every device must trust again, remove {present})"
    )]
    HalfPresent {
        /// The file that exists.
        present: PathBuf,
        /// The file that is missing.
        missing: PathBuf,
    },
    /// rcgen refused to build a certificate.
    #[error("cannot issue {what}: {source}")]
    Issue {
        /// What was being issued.
        what: String,
        /// What rcgen said.
        #[source]
        source: rcgen::Error,
    },
}

/// A freshly issued certificate with its private key, both PEM.
#[derive(Clone)]
pub struct IssuedCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM. Never logged.
    pub key_pem: String,
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCert").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

/// Paths of the files the broker's TLS listener is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsFiles {
    /// Server certificate, PEM.
    pub cert: PathBuf,
    /// Server private key, PEM (0600).
    pub key: PathBuf,
    /// Every CA whose device certificates are accepted, PEM bundle.
    pub client_roots: PathBuf,
}

/// The core CA, loaded from or created in `ca/`.
pub struct CoreCa {
    dir: PathBuf,
    key: KeyPair,
    cert_pem: String,
}

impl std::fmt::Debug for CoreCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreCa").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl CoreCa {
    /// Loads the CA from `dir`, generating it on first use (neither file there). Exactly one of
    /// the two files is an error, never a reason to make a new CA.
    pub fn load_or_create(dir: &Path) -> Result<Self, CaError> {
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        let (have_cert, have_key) = (cert_path.exists(), key_path.exists());
        match (have_cert, have_key) {
            (true, false) => return Err(CaError::HalfPresent { present: cert_path, missing: key_path }),
            (false, true) => return Err(CaError::HalfPresent { present: key_path, missing: cert_path }),
            _ => {}
        }
        if have_cert {
            let cert_pem = read(&cert_path)?;
            let key_pem = read(&key_path)?;
            let key = KeyPair::from_pem(&key_pem).map_err(|e| CaError::Corrupt {
                path: key_path.clone(),
                what: "private key",
                reason: e.to_string(),
            })?;
            Issuer::from_ca_cert_pem(&cert_pem, &key).map_err(|e| CaError::Corrupt {
                path: cert_path.clone(),
                what: "CA certificate",
                reason: e.to_string(),
            })?;
            return Ok(Self { dir: dir.to_path_buf(), key, cert_pem });
        }
        fsutil::create_private_dir(dir).map_err(|source| CaError::Io {
            action: "cannot create",
            path: dir.to_path_buf(),
            source,
        })?;
        let key = new_key("core CA key")?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name("Turf Core CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.serial_number = Some(random_serial());
        set_validity(&mut params, CA_VALIDITY);
        let cert =
            params.self_signed(&key).map_err(|source| CaError::Issue { what: "the core CA".to_owned(), source })?;
        write(&key_path, key.serialize_pem().as_bytes(), Access::Private)?;
        write(&cert_path, cert.pem().as_bytes(), Access::Public)?;
        Ok(Self { dir: dir.to_path_buf(), key, cert_pem: cert.pem() })
    }

    /// The CA certificate, PEM (what devices trust and discovery returns).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Path of the CA certificate file.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn issuer(&self) -> Result<Issuer<'_, &KeyPair>, CaError> {
        Issuer::from_ca_cert_pem(&self.cert_pem, &self.key).map_err(|e| CaError::Corrupt {
            path: self.cert_path(),
            what: "CA certificate",
            reason: e.to_string(),
        })
    }

    /// Issues a client certificate for the device `thing` (CN = thing name, EKU clientAuth).
    pub fn issue_device(&self, thing: &str) -> Result<IssuedCert, CaError> {
        let what = || format!("a certificate for thing {thing:?}");
        let key = new_key("device key")?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(thing);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.serial_number = Some(random_serial());
        set_validity(&mut params, DEVICE_VALIDITY);
        let cert = params.signed_by(&key, &self.issuer()?).map_err(|source| CaError::Issue { what: what(), source })?;
        Ok(IssuedCert { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// Paths of the broker's TLS files in `ca/`.
    pub fn tls_files(&self) -> ServerTlsFiles {
        ServerTlsFiles {
            cert: self.dir.join("server.pem"),
            key: self.dir.join("server.key"),
            client_roots: self.dir.join("client-roots.pem"),
        }
    }

    /// Writes the bundle of CAs whose device certificates are accepted: the core CA followed by
    /// `extra`. Returns whether the file changed.
    pub fn write_client_roots(&self, extra: &[String]) -> Result<bool, CaError> {
        let path = self.tls_files().client_roots;
        let mut bundle = self.cert_pem.clone();
        for pem in extra {
            if !bundle.ends_with('\n') {
                bundle.push('\n');
            }
            bundle.push_str(pem);
        }
        if fs::read_to_string(&path).ok().as_deref() == Some(bundle.as_str()) {
            return Ok(false);
        }
        write(&path, bundle.as_bytes(), Access::Public)?;
        Ok(true)
    }

    /// Makes sure `ca/` holds a server certificate covering `sans` with enough validity left,
    /// and a client-roots bundle; re-issues the certificate when the SANs changed. Returns the
    /// files and whether anything was (re)written.
    pub fn ensure_server_cert(&self, common_name: &str, sans: &[String]) -> Result<(ServerTlsFiles, bool), CaError> {
        let files = self.tls_files();
        let wanted: BTreeSet<String> = sans.iter().cloned().collect();
        let current = existing_server_cert(&files.cert);
        let fresh = match current {
            Some((have, not_after)) => have == wanted && not_after > OffsetDateTime::now_utc() + SERVER_RENEW_BEFORE,
            None => false,
        };
        let mut changed = false;
        if !fresh || !files.key.exists() {
            let issued = self.issue_server(common_name, &wanted)?;
            write(&files.key, issued.key_pem.as_bytes(), Access::Private)?;
            write(&files.cert, issued.cert_pem.as_bytes(), Access::Public)?;
            changed = true;
        }
        if !files.client_roots.exists() {
            write(&files.client_roots, self.cert_pem.as_bytes(), Access::Public)?;
            changed = true;
        }
        Ok((files, changed))
    }

    /// When the broker's current server certificate expires, and when it is due for renewal;
    /// `None` when there is none (or it does not parse).
    pub fn server_cert_validity(&self) -> Option<(OffsetDateTime, OffsetDateTime)> {
        existing_server_cert(&self.tls_files().cert).map(|(_, not_after)| (not_after, not_after - SERVER_RENEW_BEFORE))
    }

    fn issue_server(&self, common_name: &str, sans: &BTreeSet<String>) -> Result<IssuedCert, CaError> {
        let what = || "the broker's server certificate".to_owned();
        let key = new_key("server key")?;
        let mut params = CertificateParams::new(sans.iter().cloned().collect::<Vec<_>>())
            .map_err(|source| CaError::Issue { what: what(), source })?;
        params.distinguished_name = name(common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.serial_number = Some(random_serial());
        set_validity(&mut params, SERVER_VALIDITY);
        let cert = params.signed_by(&key, &self.issuer()?).map_err(|source| CaError::Issue { what: what(), source })?;
        Ok(IssuedCert { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

/// The names the server certificate should cover: `localhost`, loopback, this host's name, every
/// address of its interfaces, and every connectivity host (Greengrass: connectivity plus
/// `localhost`), sorted and deduplicated.
pub fn server_sans<'a>(connectivity_hosts: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut sans: BTreeSet<String> = default_server_sans().into_iter().collect();
    sans.extend(connectivity_hosts.into_iter().filter(|h| !h.is_empty()).map(str::to_owned));
    sans.into_iter().collect()
}

/// `localhost`, loopback, this host's name and every address of its interfaces.
pub fn default_server_sans() -> Vec<String> {
    let mut sans: BTreeSet<String> = ["localhost", "127.0.0.1", "::1"].iter().map(|s| (*s).to_owned()).collect();
    if let Ok(interfaces) = if_addrs::get_if_addrs() {
        for interface in interfaces {
            let ip = interface.ip();
            let link_local_v6 = matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80);
            if !link_local_v6 {
                sans.insert(ip.to_string());
            }
        }
    }
    if let Ok(host) = fs::read_to_string("/etc/hostname") {
        let host = host.trim();
        if !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
            sans.insert(host.to_owned());
        }
    }
    sans.into_iter().collect()
}

/// SANs and expiry of the server certificate at `path`, if it exists and parses.
fn existing_server_cert(path: &Path) -> Option<(BTreeSet<String>, OffsetDateTime)> {
    let pem = fs::read(path).ok()?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).ok()?;
    let cert = pem.parse_x509().ok()?;
    let not_after = cert.validity().not_after.to_datetime();
    let sans = cert
        .subject_alternative_name()
        .ok()??
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            x509_parser::extensions::GeneralName::IPAddress(bytes) => ip_from_bytes(bytes).map(|ip| ip.to_string()),
            _ => None,
        })
        .collect();
    Some((sans, not_after))
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn new_key(what: &str) -> Result<KeyPair, CaError> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| CaError::Issue { what: what.to_owned(), source })
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Turf");
    dn.push(DnType::CommonName, common_name);
    dn
}

/// A random positive 16-byte serial number (RFC 5280 §4.1.2.2).
fn random_serial() -> SerialNumber {
    let mut bytes = *uuid::Uuid::new_v4().as_bytes();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01; // never a leading zero byte, so the encoding is always 16 bytes
    SerialNumber::from_slice(&bytes)
}

fn set_validity(params: &mut CertificateParams, validity: Duration) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + validity;
}

fn read(path: &Path) -> Result<String, CaError> {
    fs::read_to_string(path).map_err(|source| CaError::Io { action: "cannot read", path: path.to_path_buf(), source })
}

fn write(path: &Path, bytes: &[u8], access: Access) -> Result<(), CaError> {
    fsutil::write_atomic(path, bytes, access).map_err(|source| CaError::Io {
        action: "cannot write",
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests;
