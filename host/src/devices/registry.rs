//! The device registry: things and the certificates registered to them (tables `things`,
//! `certificates` in `turf.db`).
//!
//! Owns those two tables and nothing else. Used by the device-auth actor while the host runs,
//! and directly by `turf device add` when it is stopped. Never stores private keys.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::identity::{DeviceDirectory, PeerCert, ThingNameError, validate_thing_name};
use crate::store::{self, StoreError};

/// A failure of the registry.
#[derive(Debug, Error)]
pub enum RegistryError {
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A query failed.
    #[error("device registry: cannot {action}: {source}")]
    Sql {
        /// What was being done.
        action: String,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The thing name is not valid.
    #[error(transparent)]
    ThingName(#[from] ThingNameError),
    /// The certificate PEM could not be parsed.
    #[error("certificate for thing {thing:?} is not a valid X.509 PEM certificate: {reason}")]
    BadCertificate {
        /// The thing it was meant for.
        thing: String,
        /// Why it was refused.
        reason: String,
    },
    /// The certificate is already registered to another thing.
    #[error("certificate {id} is already registered to thing {owner:?}")]
    AlreadyRegistered {
        /// Certificate id (SHA-256 of the DER).
        id: String,
        /// The thing that owns it.
        owner: String,
    },
}

/// Identifying facts of a certificate, as the registry stores them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    /// SHA-256 of the DER, lowercase hex (the AWS IoT certificate id).
    pub id: String,
    /// What the TLS layer will report for it.
    pub peer: PeerCert,
}

/// Parses the first certificate of `pem`.
pub fn certificate_facts(pem: &str) -> Result<CertificateFacts, String> {
    let (_, parsed) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
    if parsed.label != "CERTIFICATE" {
        return Err(format!("expected a CERTIFICATE block, found {:?}", parsed.label));
    }
    let cert = parsed.parse_x509().map_err(|e| e.to_string())?;
    Ok(CertificateFacts {
        id: hex::encode(Sha256::digest(&parsed.contents)),
        peer: PeerCert { serial: cert.serial.to_str_radix(16), subject: cert.subject().to_string() },
    })
}

/// One thing and its certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// Thing name.
    pub thing: String,
    /// When it was first registered (seconds since the epoch).
    pub created_at: i64,
    /// Ids of its certificates.
    pub certificates: Vec<String>,
}

/// The registry, over its own database connection.
pub struct Registry {
    conn: Connection,
}

impl Registry {
    /// Opens the registry in the database at `db`.
    pub fn open(db: &Path) -> Result<Self, RegistryError> {
        Ok(Self { conn: store::open(db)? })
    }

    /// Registers `cert_pem` to `thing`, creating the thing if needed.
    pub fn register(&mut self, thing: &str, cert_pem: &str) -> Result<CertificateFacts, RegistryError> {
        validate_thing_name(thing)?;
        let facts = certificate_facts(cert_pem)
            .map_err(|reason| RegistryError::BadCertificate { thing: thing.to_owned(), reason })?;
        let sql = |action: &str| {
            let action = action.to_owned();
            move |source| RegistryError::Sql { action, source }
        };
        let tx = self.conn.transaction().map_err(sql("begin a transaction"))?;
        let owner: Option<String> = tx
            .query_row("SELECT thing FROM certificates WHERE id = ?1", [&facts.id], |r| r.get(0))
            .optional()
            .map_err(sql("look up a certificate"))?;
        match owner {
            Some(owner) if owner != thing => {
                return Err(RegistryError::AlreadyRegistered { id: facts.id, owner });
            }
            Some(_) => return Ok(facts),
            None => {}
        }
        let now = store::now_secs();
        tx.execute("INSERT OR IGNORE INTO things(name, created_at) VALUES (?1, ?2)", params![thing, now])
            .map_err(sql("insert a thing"))?;
        tx.execute(
            "INSERT INTO certificates(id, thing, serial, subject, pem, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![facts.id, thing, facts.peer.serial, facts.peer.subject, cert_pem, now],
        )
        .map_err(sql("insert a certificate"))?;
        tx.commit().map_err(sql("commit"))?;
        Ok(facts)
    }

    /// Every thing with its certificate ids, sorted by name.
    pub fn list(&self) -> Result<Vec<DeviceRecord>, RegistryError> {
        let sql = |source| RegistryError::Sql { action: "list things".to_owned(), source };
        let mut stmt = self
            .conn
            .prepare(
                "SELECT t.name, t.created_at, c.id FROM things t LEFT JOIN certificates c ON c.thing = t.name \
                 ORDER BY t.name, c.created_at, c.id",
            )
            .map_err(sql)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, Option<String>>(2)?)))
            .map_err(sql)?;
        let mut out: Vec<DeviceRecord> = Vec::new();
        for row in rows {
            let (thing, created_at, cert) = row.map_err(sql)?;
            if out.last().map(|d| d.thing != thing).unwrap_or(true) {
                out.push(DeviceRecord { thing, created_at, certificates: Vec::new() });
            }
            if let (Some(cert), Some(last)) = (cert, out.last_mut()) {
                last.certificates.push(cert);
            }
        }
        Ok(out)
    }

    /// The certificate → thing snapshot the broker authenticates against.
    pub fn directory(&self) -> Result<DeviceDirectory, RegistryError> {
        let sql = |source| RegistryError::Sql { action: "read certificates".to_owned(), source };
        let mut stmt = self.conn.prepare("SELECT serial, subject, thing FROM certificates").map_err(sql)?;
        let rows = stmt
            .query_map([], |r| Ok((PeerCert { serial: r.get(0)?, subject: r.get(1)? }, r.get::<_, String>(2)?)))
            .map_err(sql)?;
        let entries = rows.collect::<Result<Vec<_>, _>>().map_err(sql)?;
        Ok(DeviceDirectory::new(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::ca::CoreCa;
    use crate::devices::identity::ListenerKind;

    #[test]
    fn registered_certificates_authenticate_their_thing() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CoreCa::load_or_create(&dir.path().join("ca")).unwrap();
        let mut registry = Registry::open(&dir.path().join("t.db")).unwrap();
        let issued = ca.issue_device("MyClientDevice1").unwrap();
        let facts = registry.register("MyClientDevice1", &issued.cert_pem).unwrap();
        assert_eq!(facts.id.len(), 64);
        let directory = registry.directory().unwrap();
        let id = directory.authenticate(ListenerKind::Tls, "MyClientDevice1", Some(&facts.peer)).unwrap();
        assert!(id.verified);
        let list = registry.list().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].certificates, vec![facts.id]);
    }

    #[test]
    fn a_certificate_cannot_belong_to_two_things() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CoreCa::load_or_create(&dir.path().join("ca")).unwrap();
        let mut registry = Registry::open(&dir.path().join("t.db")).unwrap();
        let issued = ca.issue_device("A").unwrap();
        registry.register("A", &issued.cert_pem).unwrap();
        registry.register("A", &issued.cert_pem).unwrap();
        let err = registry.register("B", &issued.cert_pem).unwrap_err();
        assert!(matches!(err, RegistryError::AlreadyRegistered { ref owner, .. } if owner == "A"));
    }

    #[test]
    fn garbage_certificates_and_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = Registry::open(&dir.path().join("t.db")).unwrap();
        assert!(matches!(registry.register("A", "not a pem"), Err(RegistryError::BadCertificate { .. })));
        let key_pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(matches!(registry.register("A", key_pem), Err(RegistryError::BadCertificate { .. })));
        assert!(matches!(registry.register("a/b", "x"), Err(RegistryError::ThingName(_))));
        assert!(registry.list().unwrap().is_empty());
    }
}
