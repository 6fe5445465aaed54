//! The device registry: things, their certificates, their association with this core, and the
//! extra CAs trusted for device certificates (tables `things`, `certificates`, `trusted_cas`).
//!
//! Owns those tables and nothing else. Used by the device-auth actor while the host runs and
//! directly by `turf device ...` when it is stopped. Never stores private keys. A certificate is
//! registered only if it was issued by the core CA or a trusted CA.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::identity::{DeviceDirectory, PeerCert, Registration, ThingNameError, validate_thing_name};
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
    /// The certificate was not issued by a trusted CA.
    #[error(
        "certificate for thing {thing:?} is issued by {issuer}, which is not trusted; add that CA with `turf device trust-ca FILE`"
    )]
    UntrustedIssuer {
        /// The thing it was meant for.
        thing: String,
        /// Its issuer.
        issuer: String,
    },
    /// `untrust-ca` named a CA that is not trusted (the core CA never is: it cannot be untrusted).
    #[error("CA {0} is not among the trusted CAs (`turf device trust-ca` adds one)")]
    NotTrusted(String),
    /// `untrust-ca` named a CA that issued registered certificates.
    #[error(
        "CA {id} issued the certificates of registered things {things:?}; remove them first (`turf device remove THING`)"
    )]
    CaInUse {
        /// The CA's id.
        id: String,
        /// Things with a certificate it issued.
        things: Vec<String>,
    },
    /// Another registered certificate has the same serial and subject: the broker could not
    /// tell the two apart at CONNECT.
    #[error(
        "a different certificate with serial {serial} and subject {subject} is already registered (to thing {owner:?}); a certificate is identified by its serial and subject at CONNECT, so the pair must be unique"
    )]
    SameSerialAndSubject {
        /// Serial of both.
        serial: String,
        /// Subject of both.
        subject: String,
        /// The thing the registered one belongs to.
        owner: String,
    },
    /// The certificate is already registered to another thing.
    #[error("certificate {id} is already registered to thing {owner:?}")]
    AlreadyRegistered {
        /// Certificate id (SHA-256 of the DER).
        id: String,
        /// The thing that owns it.
        owner: String,
    },
    /// No such thing.
    #[error("no thing named {0:?} is registered")]
    UnknownThing(String),
    /// A CA certificate could not be used.
    #[error("{0}")]
    BadCa(String),
}

fn sql(action: &str) -> impl Fn(rusqlite::Error) -> RegistryError + '_ {
    move |source| RegistryError::Sql { action: action.to_owned(), source }
}

/// Identifying facts of a certificate, as the registry stores them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    /// SHA-256 of the DER, lowercase hex (the AWS IoT certificate id).
    pub id: String,
    /// What the TLS layer will report for it.
    pub peer: PeerCert,
    /// Issuer distinguished name.
    pub issuer: String,
}

/// Parses the first certificate of `pem`.
pub fn certificate_facts(pem: &str) -> Result<CertificateFacts, String> {
    let (_, parsed) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
    if parsed.label != "CERTIFICATE" {
        return Err(format!("expected a CERTIFICATE block, found {:?}", parsed.label));
    }
    let cert = parsed.parse_x509().map_err(|e| e.to_string())?;
    Ok(CertificateFacts {
        id: certificate_id(&parsed.contents),
        peer: PeerCert::of(&cert),
        issuer: cert.issuer().to_string(),
    })
}

/// The AWS IoT certificate id of a DER certificate: SHA-256, lowercase hex.
pub fn certificate_id(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// Whether the certificate `cert_pem` was signed by one of `ca_pems`.
pub fn issued_by_any(cert_pem: &str, ca_pems: &[String]) -> bool {
    let Ok((_, cert_block)) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()) else { return false };
    let Ok(cert) = cert_block.parse_x509() else { return false };
    ca_pems.iter().any(|ca_pem| {
        let Ok((_, ca_block)) = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes()) else { return false };
        let Ok(ca) = ca_block.parse_x509() else { return false };
        cert.issuer() == ca.subject() && cert.verify_signature(Some(ca.public_key())).is_ok()
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
    /// Associated with this core (may use discovery).
    #[serde(default)]
    pub associated: bool,
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

    /// Registers `cert_pem` to `thing`, creating the thing if needed. The certificate must be
    /// issued by one of `trusted` (PEM CA certificates).
    pub fn register(
        &mut self,
        thing: &str,
        cert_pem: &str,
        trusted: &[String],
    ) -> Result<CertificateFacts, RegistryError> {
        validate_thing_name(thing)?;
        let facts = certificate_facts(cert_pem)
            .map_err(|reason| RegistryError::BadCertificate { thing: thing.to_owned(), reason })?;
        if !issued_by_any(cert_pem, trusted) {
            return Err(RegistryError::UntrustedIssuer { thing: thing.to_owned(), issuer: facts.issuer });
        }
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
        let look_alike: Option<String> = tx
            .query_row(
                "SELECT thing FROM certificates WHERE serial = ?1 AND subject = ?2",
                params![facts.peer.serial, facts.peer.subject],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql("look up a certificate"))?;
        if let Some(owner) = look_alike {
            return Err(RegistryError::SameSerialAndSubject {
                serial: facts.peer.serial.clone(),
                subject: facts.peer.subject.clone(),
                owner,
            });
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

    /// Removes `thing` and its certificates.
    pub fn remove(&mut self, thing: &str) -> Result<(), RegistryError> {
        let tx = self.conn.transaction().map_err(sql("begin a transaction"))?;
        tx.execute("DELETE FROM certificates WHERE thing = ?1", [thing]).map_err(sql("remove certificates"))?;
        let removed = tx.execute("DELETE FROM things WHERE name = ?1", [thing]).map_err(sql("remove a thing"))?;
        if removed == 0 {
            return Err(RegistryError::UnknownThing(thing.to_owned()));
        }
        tx.commit().map_err(sql("commit"))
    }

    /// Associates `thing` with this core (or not).
    pub fn set_associated(&mut self, thing: &str, associated: bool) -> Result<(), RegistryError> {
        let changed = self
            .conn
            .execute("UPDATE things SET associated = ?2 WHERE name = ?1", params![thing, associated])
            .map_err(sql("update an association"))?;
        if changed == 0 { Err(RegistryError::UnknownThing(thing.to_owned())) } else { Ok(()) }
    }

    /// The thing a certificate (by id) is registered to, and whether that thing is associated.
    pub fn certificate_owner(&self, certificate_id: &str) -> Result<Option<(String, bool)>, RegistryError> {
        self.conn
            .query_row(
                "SELECT t.name, t.associated FROM certificates c JOIN things t ON t.name = c.thing WHERE c.id = ?1",
                [certificate_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(sql("look up a certificate"))
    }

    /// Whether `thing` is registered.
    pub fn exists(&self, thing: &str) -> Result<bool, RegistryError> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM things WHERE name = ?1", [thing], |r| r.get(0))
            .map_err(sql("look up a thing"))?;
        Ok(n > 0)
    }

    /// Every thing with its certificate ids, sorted by name.
    pub fn list(&self) -> Result<Vec<DeviceRecord>, RegistryError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT t.name, t.created_at, t.associated, c.id FROM things t LEFT JOIN certificates c ON c.thing = t.name \
                 ORDER BY t.name, c.created_at, c.id",
            )
            .map_err(sql("list things"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, bool>(2)?, r.get::<_, Option<String>>(3)?))
            })
            .map_err(sql("list things"))?;
        let mut out: Vec<DeviceRecord> = Vec::new();
        for row in rows {
            let (thing, created_at, associated, cert) = row.map_err(sql("list things"))?;
            if out.last().map(|d| d.thing != thing).unwrap_or(true) {
                out.push(DeviceRecord { thing, created_at, certificates: Vec::new(), associated });
            }
            if let (Some(cert), Some(last)) = (cert, out.last_mut()) {
                last.certificates.push(cert);
            }
        }
        Ok(out)
    }

    /// The certificate → thing snapshot the broker authenticates against.
    pub fn directory(&self) -> Result<DeviceDirectory, RegistryError> {
        let mut stmt = self
            .conn
            .prepare("SELECT serial, subject, thing, id FROM certificates")
            .map_err(sql("read certificates"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    PeerCert { serial: r.get(0)?, subject: r.get(1)? },
                    Registration { thing: r.get(2)?, fingerprint: r.get(3)? },
                ))
            })
            .map_err(sql("read certificates"))?;
        let entries = rows.collect::<Result<Vec<_>, _>>().map_err(sql("read certificates"))?;
        Ok(DeviceDirectory::new(entries))
    }

    /// Adds a CA whose device certificates are accepted; returns its id.
    pub fn trust_ca(&mut self, pem: &str) -> Result<String, RegistryError> {
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .map_err(|e| RegistryError::BadCa(format!("not a PEM certificate: {e}")))?;
        let cert = block.parse_x509().map_err(|e| RegistryError::BadCa(format!("not an X.509 certificate: {e}")))?;
        if !cert.is_ca() {
            return Err(RegistryError::BadCa(format!(
                "{} is not a CA certificate (basicConstraints CA is not set)",
                cert.subject()
            )));
        }
        let id = certificate_id(&block.contents);
        let pem = pem_of(&block.contents);
        self.conn
            .execute(
                "INSERT OR IGNORE INTO trusted_cas(id, subject, pem, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![id, cert.subject().to_string(), pem, store::now_secs()],
            )
            .map_err(sql("trust a CA"))?;
        Ok(id)
    }

    /// Stops trusting the CA `pem`; returns its id. Refused while certificates it issued are
    /// registered, and when it is not trusted.
    pub fn untrust_ca(&mut self, pem: &str) -> Result<String, RegistryError> {
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .map_err(|e| RegistryError::BadCa(format!("not a PEM certificate: {e}")))?;
        let id = certificate_id(&block.contents);
        let trusted: Option<String> = self
            .conn
            .query_row("SELECT pem FROM trusted_cas WHERE id = ?1", [&id], |r| r.get(0))
            .optional()
            .map_err(sql("look up a CA"))?;
        let Some(ca_pem) = trusted else { return Err(RegistryError::NotTrusted(id)) };
        let mut stmt = self
            .conn
            .prepare("SELECT thing, pem FROM certificates ORDER BY thing")
            .map_err(sql("read certificates"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(sql("read certificates"))?;
        let mut issued = Vec::new();
        for row in rows {
            let (thing, cert_pem) = row.map_err(sql("read certificates"))?;
            if issued_by_any(&cert_pem, std::slice::from_ref(&ca_pem)) && !issued.contains(&thing) {
                issued.push(thing);
            }
        }
        drop(stmt);
        if !issued.is_empty() {
            return Err(RegistryError::CaInUse { id, things: issued });
        }
        self.conn.execute("DELETE FROM trusted_cas WHERE id = ?1", [&id]).map_err(sql("untrust a CA"))?;
        Ok(id)
    }

    /// PEMs of the CAs trusted in addition to the core CA.
    pub fn trusted_cas(&self) -> Result<Vec<String>, RegistryError> {
        let mut stmt =
            self.conn.prepare("SELECT pem FROM trusted_cas ORDER BY created_at, id").map_err(sql("read CAs"))?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(sql("read CAs"))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql("read CAs"))
    }
}

/// Re-encodes a DER certificate as PEM.
pub fn pem_of(der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests;
