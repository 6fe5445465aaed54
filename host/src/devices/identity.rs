//! Who a connecting client is: thing-name rules and the certificate → thing directory.
//!
//! Greengrass identity: the MQTT client id *is* the thing name, and on the TLS listener the
//! client certificate must be one registered to that thing. [`DeviceDirectory`] is an immutable
//! snapshot the device-auth service hands to the broker by message; the broker authenticates
//! every CONNECT against it without a round trip. Pure logic: no actors, no I/O.
//!
//! A certificate is bound to its thing by its SHA-256 fingerprint, not by its serial and
//! subject (which any trusted CA can copy). The broker sees both at different moments: the
//! whole certificate right after the TLS handshake ([`DeviceDirectory::vouch`] refuses one that
//! copies a registered certificate's serial and subject without being it), and only the serial
//! and subject at CONNECT ([`DeviceDirectory::authenticate`]). Together they accept exactly the
//! registered certificate; the registry refuses to register two certificates with the same
//! serial and subject, so the pair names one fingerprint.

use std::collections::HashMap;

use thiserror::Error;

/// Longest thing name AWS IoT accepts.
pub const MAX_THING_NAME: usize = 128;

/// Why a thing name is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ThingNameError {
    /// Empty name.
    #[error("thing name is empty")]
    Empty,
    /// Longer than [`MAX_THING_NAME`].
    #[error("thing name is {len} characters long; at most {MAX_THING_NAME} are allowed")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// A character outside `[a-zA-Z0-9:_-]`.
    #[error("thing name {name:?} contains {bad:?}; only letters, digits, ':', '_' and '-' are allowed")]
    BadChar {
        /// The name.
        name: String,
        /// The first bad character.
        bad: char,
    },
}

/// Checks `name` against AWS IoT's thing-name rules (`[a-zA-Z0-9:_-]{1,128}`).
pub fn validate_thing_name(name: &str) -> Result<(), ThingNameError> {
    if name.is_empty() {
        return Err(ThingNameError::Empty);
    }
    let len = name.chars().count();
    if len > MAX_THING_NAME {
        return Err(ThingNameError::TooLong { len });
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-'))) {
        return Err(ThingNameError::BadChar { name: name.to_owned(), bad });
    }
    Ok(())
}

/// Which listener a client came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// The mutual-TLS device listener: identity is proven by the certificate.
    Tls,
    /// The loopback plain-TCP listener: identity is the client id, unverified.
    Plain,
}

/// What the TLS layer reports about the client certificate (already verified to chain to a
/// trusted CA by the TLS handshake).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerCert {
    /// Serial number, lowercase hex without leading zeros.
    pub serial: String,
    /// Subject distinguished name as x509-parser prints it.
    pub subject: String,
}

impl PeerCert {
    /// The serial and subject of `cert` as the broker's TLS layer reports them (rmqtt-net's
    /// certificate extractor): the one place this format is written down.
    pub fn of(cert: &x509_parser::certificate::X509Certificate<'_>) -> Self {
        Self { serial: cert.serial.to_str_radix(16), subject: cert.subject().to_string() }
    }

    /// [`PeerCert::of`] the DER certificate `der`; `None` when it does not parse.
    pub fn of_der(der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        Some(Self::of(&cert))
    }
}

/// A registered certificate: the thing it belongs to and its SHA-256 fingerprint (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The thing.
    pub thing: String,
    /// SHA-256 of the certificate's DER, lowercase hex (the certificate id).
    pub fingerprint: String,
}

/// Why a CONNECT was refused. The text is logged with the client id.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    /// The client id is not a valid thing name.
    #[error("client id is not a valid thing name: {0}")]
    BadClientId(ThingNameError),
    /// A TLS client arrived without a certificate (cannot happen with the verifier on).
    #[error("no client certificate was presented")]
    NoCertificate,
    /// The certificate chains to a trusted CA but is not registered to any thing.
    #[error(
        "certificate (serial {serial}, subject {subject}) is not registered to any thing; register it with `turf device add` or `turf device register`"
    )]
    UnknownCertificate {
        /// Serial of the presented certificate.
        serial: String,
        /// Subject of the presented certificate.
        subject: String,
    },
    /// The certificate copies the serial and subject of a registered certificate but is not it
    /// (another trusted CA signed a look-alike).
    #[error(
        "certificate (serial {serial}, subject {subject}) copies the serial and subject of a certificate registered to thing {registered:?} but is a different certificate"
    )]
    ForgedCertificate {
        /// Serial of the presented certificate.
        serial: String,
        /// Subject of the presented certificate.
        subject: String,
        /// The thing whose certificate it imitates.
        registered: String,
    },
    /// The certificate is registered, but to a different thing than the client id.
    #[error(
        "certificate is registered to thing {registered:?}, not to {client_id:?}; a device must connect with its thing name as client id"
    )]
    WrongThing {
        /// The thing the certificate belongs to.
        registered: String,
        /// The client id used.
        client_id: String,
    },
}

impl Refusal {
    /// A short stable name of the kind of refusal (a metrics label).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BadClientId(_) => "bad_client_id",
            Self::NoCertificate => "no_certificate",
            Self::UnknownCertificate { .. } => "unknown_certificate",
            Self::ForgedCertificate { .. } => "forged_certificate",
            Self::WrongThing { .. } => "wrong_thing",
        }
    }
}

/// An authenticated client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The thing name (equal to the MQTT client id).
    pub thing: String,
    /// Whether the certificate proved it.
    pub verified: bool,
}

/// Snapshot of every registered certificate and the thing it belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceDirectory {
    by_cert: HashMap<PeerCert, Registration>,
}

impl DeviceDirectory {
    /// Builds a directory from `(certificate, registration)` pairs.
    pub fn new(entries: impl IntoIterator<Item = (PeerCert, Registration)>) -> Self {
        Self { by_cert: entries.into_iter().collect() }
    }

    /// Checks a certificate the TLS handshake accepted, before its client may send CONNECT:
    /// one with a registered certificate's serial and subject must be that certificate
    /// (`fingerprint`, SHA-256 hex of its DER). Unregistered certificates pass here and are
    /// refused at CONNECT, where the refusal can name them.
    pub fn vouch(&self, peer: &PeerCert, fingerprint: &str) -> Result<(), Refusal> {
        match self.by_cert.get(peer) {
            Some(registered) if !registered.fingerprint.eq_ignore_ascii_case(fingerprint) => {
                Err(Refusal::ForgedCertificate {
                    serial: peer.serial.clone(),
                    subject: peer.subject.clone(),
                    registered: registered.thing.clone(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Whether some certificate is registered to `thing`.
    pub fn has_thing(&self, thing: &str) -> bool {
        self.by_cert.values().any(|r| r.thing == thing)
    }

    /// Number of registered certificates.
    pub fn len(&self) -> usize {
        self.by_cert.len()
    }

    /// True when no certificate is registered.
    pub fn is_empty(&self) -> bool {
        self.by_cert.is_empty()
    }

    /// Decides who a client connecting with `client_id` (and, on TLS, `cert`) is.
    pub fn authenticate(
        &self,
        listener: ListenerKind,
        client_id: &str,
        cert: Option<&PeerCert>,
    ) -> Result<Identity, Refusal> {
        match listener {
            // Local tools pick client ids freely; MQTT allows any (the codec has checked it).
            ListenerKind::Plain => Ok(Identity { thing: client_id.to_owned(), verified: false }),
            ListenerKind::Tls => {
                validate_thing_name(client_id).map_err(Refusal::BadClientId)?;
                let cert = cert.ok_or(Refusal::NoCertificate)?;
                match self.by_cert.get(cert) {
                    None => {
                        Err(Refusal::UnknownCertificate { serial: cert.serial.clone(), subject: cert.subject.clone() })
                    }
                    Some(registered) if registered.thing != client_id => Err(Refusal::WrongThing {
                        registered: registered.thing.clone(),
                        client_id: client_id.to_owned(),
                    }),
                    Some(registered) => Ok(Identity { thing: registered.thing.clone(), verified: true }),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(serial: &str) -> PeerCert {
        PeerCert { serial: serial.to_owned(), subject: format!("CN={serial}") }
    }

    fn registration(thing: &str, fingerprint: &str) -> Registration {
        Registration { thing: thing.to_owned(), fingerprint: fingerprint.to_owned() }
    }

    fn directory() -> DeviceDirectory {
        DeviceDirectory::new([
            (cert("01"), registration("MyClientDevice1", "aa01")),
            (cert("02"), registration("Other", "aa02")),
        ])
    }

    #[test]
    fn a_look_alike_of_a_registered_certificate_is_refused_before_connect() {
        let dir = directory();
        assert_eq!(dir.vouch(&cert("01"), "aa01"), Ok(()));
        assert_eq!(dir.vouch(&cert("01"), "AA01"), Ok(()), "hex case does not matter");
        assert!(matches!(
            dir.vouch(&cert("01"), "bb01"),
            Err(Refusal::ForgedCertificate { ref registered, .. }) if registered == "MyClientDevice1"
        ));
        // Unregistered certificates are left to CONNECT, which names them.
        assert_eq!(dir.vouch(&cert("99"), "cc99"), Ok(()));
    }

    #[test]
    fn serial_and_subject_are_read_as_the_tls_layer_reports_them() {
        use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SerialNumber};
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "MyClientDevice1");
        params.distinguished_name = name;
        params.serial_number = Some(SerialNumber::from_slice(&[0x00, 0x0a, 0xbc]));
        let cert = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
        let peer = PeerCert::of_der(cert.der()).unwrap();
        assert_eq!(peer, PeerCert { serial: "abc".to_owned(), subject: "CN=MyClientDevice1".to_owned() });
        assert_eq!(PeerCert::of_der(b"not a certificate"), None);
        assert_eq!(PeerCert::of_der(&[]), None);
    }

    #[test]
    fn registered_certificate_with_its_thing_name_is_accepted() {
        let id = directory().authenticate(ListenerKind::Tls, "MyClientDevice1", Some(&cert("01"))).unwrap();
        assert_eq!(id, Identity { thing: "MyClientDevice1".to_owned(), verified: true });
    }

    #[test]
    fn certificate_of_another_thing_is_refused() {
        let err = directory().authenticate(ListenerKind::Tls, "MyClientDevice1", Some(&cert("02"))).unwrap_err();
        assert!(matches!(err, Refusal::WrongThing { ref registered, .. } if registered == "Other"));
    }

    #[test]
    fn unregistered_or_missing_certificates_are_refused() {
        let dir = directory();
        assert!(matches!(
            dir.authenticate(ListenerKind::Tls, "MyClientDevice1", Some(&cert("99"))),
            Err(Refusal::UnknownCertificate { .. })
        ));
        assert_eq!(dir.authenticate(ListenerKind::Tls, "MyClientDevice1", None), Err(Refusal::NoCertificate));
        // Same serial, different subject: a different certificate.
        let forged = PeerCert { serial: "01".to_owned(), subject: "CN=evil".to_owned() };
        assert!(dir.authenticate(ListenerKind::Tls, "MyClientDevice1", Some(&forged)).is_err());
    }

    #[test]
    fn plain_listener_takes_any_client_id_mqtt_allows_and_tls_needs_a_thing_name() {
        for id in ["tool-1", "clean retained", "mqttx_3f2a", "a/b", "*", "ä"] {
            let identity = directory().authenticate(ListenerKind::Plain, id, None).unwrap();
            assert_eq!((identity.thing.as_str(), identity.verified), (id, false));
        }
        assert!(matches!(
            directory().authenticate(ListenerKind::Tls, "a/b", Some(&cert("01"))),
            Err(Refusal::BadClientId(ThingNameError::BadChar { bad: '/', .. }))
        ));
        assert!(directory().has_thing("MyClientDevice1"));
        assert!(!directory().has_thing("MyClientDevice"));
    }

    #[test]
    fn thing_names_follow_aws_rules() {
        assert_eq!(validate_thing_name("My_Thing-1:a"), Ok(()));
        assert_eq!(validate_thing_name(""), Err(ThingNameError::Empty));
        assert_eq!(validate_thing_name(&"a".repeat(129)), Err(ThingNameError::TooLong { len: 129 }));
        assert!(validate_thing_name(&"a".repeat(128)).is_ok());
        for bad in ["a b", "a/b", "a#", "a+", "ä", "a\0", "$aws"] {
            assert!(validate_thing_name(bad).is_err(), "{bad:?}");
        }
    }
}
