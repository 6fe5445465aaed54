//! TLS for the discovery endpoint, reloadable in place.
//!
//! The server certificate and the set of CAs whose device certificates are accepted both change
//! at run time (connectivity changes re-issue the certificate; `turf device trust-ca` adds a CA).
//! Instead of rebinding the port, the rustls configuration asks [`DynamicTls`] for the current
//! certificate and verifier on every handshake. Client certificates are required.

use std::sync::{Arc, RwLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::devices::ca::ServerTlsFiles;
use crate::pem;

/// The certificate and verifier currently in force.
pub struct DynamicTls {
    provider: Arc<CryptoProvider>,
    cert: RwLock<Arc<CertifiedKey>>,
    verifier: RwLock<Arc<dyn ClientCertVerifier>>,
}

impl std::fmt::Debug for DynamicTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamicTls").finish_non_exhaustive()
    }
}

fn load(
    provider: &Arc<CryptoProvider>,
    files: &ServerTlsFiles,
) -> Result<(CertifiedKey, Arc<dyn ClientCertVerifier>), String> {
    let at = |path: &std::path::Path, e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let chain = pem::certs(&files.cert)?;
    let signing_key = provider.key_provider.load_private_key(pem::key(&files.key)?).map_err(|e| at(&files.key, &e))?;
    let roots = pem::roots(pem::certs(&files.client_roots)?).map_err(|e| at(&files.client_roots, &e))?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .build()
        .map_err(|e| at(&files.client_roots, &e))?;
    Ok((CertifiedKey::new(chain, signing_key), verifier))
}

impl DynamicTls {
    /// Loads the files once.
    pub fn new(files: &ServerTlsFiles) -> Result<Arc<Self>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (cert, verifier) = load(&provider, files)?;
        Ok(Arc::new(Self { provider, cert: RwLock::new(Arc::new(cert)), verifier: RwLock::new(verifier) }))
    }

    /// Loads the files again; new handshakes use them.
    pub fn reload(&self, files: &ServerTlsFiles) -> Result<(), String> {
        let (cert, verifier) = load(&self.provider, files)?;
        if let Ok(mut current) = self.cert.write() {
            *current = Arc::new(cert);
        }
        if let Ok(mut current) = self.verifier.write() {
            *current = verifier;
        }
        Ok(())
    }

    fn verifier(&self) -> Result<Arc<dyn ClientCertVerifier>, rustls::Error> {
        self.verifier
            .read()
            .map(|v| Arc::clone(&v))
            .map_err(|_| rustls::Error::General("verifier lock poisoned".to_owned()))
    }

    /// A server configuration that consults `self` on every handshake; ALPN `x-amzn-http-ca`
    /// (what the AWS IoT Device SDK offers) is accepted besides HTTP/1.1.
    pub fn server_config(self: &Arc<Self>) -> Result<rustls::ServerConfig, String> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_client_cert_verifier(Arc::new(Verifier(Arc::clone(self))))
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"x-amzn-http-ca".to_vec()];
        Ok(config)
    }
}

impl DynamicTls {
    /// A server configuration for browsers and scrapers: the same certificate, no client
    /// certificate asked for, HTTP/1.1.
    pub fn browser_config(self: &Arc<Self>) -> Result<rustls::ServerConfig, String> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

impl ResolvesServerCert for DynamicTls {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.cert.read().ok().map(|c| Arc::clone(&c))
    }
}

/// Delegates to the verifier currently in force.
#[derive(Debug)]
struct Verifier(Arc<DynamicTls>);

impl ClientCertVerifier for Verifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.0.verifier()?.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verifier()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verifier()?.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.verifier().map(|v| v.supported_verify_schemes()).unwrap_or_default()
    }
}
