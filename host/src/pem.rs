//! PEM files for rustls: certificate chains, private keys and root stores read from disk, and
//! the ring-backed client configuration Turf's own TLS clients use. Errors name the file.
//!
//! Owns no state; used by the discovery server, the upstream link and `turf client`.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

fn at(path: &Path, error: &dyn std::fmt::Display) -> String {
    format!("{}: {error}", path.display())
}

/// Every certificate in the PEM file at `path`, in order.
pub fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_file_iter(path)
        .map_err(|e| at(path, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| at(path, &e))
}

/// The private key in the PEM file at `path`.
pub fn key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| at(path, &e))
}

/// A root store holding `certs`.
pub fn roots(certs: Vec<CertificateDer<'static>>) -> Result<RootCertStore, rustls::Error> {
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert)?;
    }
    Ok(roots)
}

/// A TLS client configuration (ring, safe protocol versions) trusting `roots`, presenting
/// `identity` (certificate chain and key) when given.
pub fn client_config(
    roots: RootCertStore,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<ClientConfig, String> {
    let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    match identity {
        Some((chain, key)) => {
            builder.with_client_auth_cert(chain, key).map_err(|e| format!("certificate and key do not match: {e}"))
        }
        None => Ok(builder.with_no_client_auth()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_and_hostile_files_are_errors_that_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        assert!(certs(&missing).unwrap_err().contains("missing.pem"));
        assert!(key(&missing).unwrap_err().contains("missing.pem"));

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, b"-----BEGIN CERTIFICATE-----\n%%%not base64%%%\n-----END CERTIFICATE-----\n")
            .unwrap();
        assert!(certs(&garbage).unwrap_err().contains("garbage.pem"));
        assert!(key(&garbage).unwrap_err().contains("garbage.pem"), "a certificate is not a key");

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, b"no PEM sections at all").unwrap();
        assert!(certs(&empty).unwrap().is_empty());
        assert!(client_config(roots(Vec::new()).unwrap(), None).is_ok());
    }
}
