//! The device registry against a real SQLite file, hostile certificates included.

use super::*;
use crate::devices::ca::CoreCa;
use crate::devices::identity::ListenerKind;

fn setup() -> (tempfile::TempDir, CoreCa, Registry) {
    let dir = tempfile::tempdir().unwrap();
    let ca = CoreCa::load_or_create(&dir.path().join("ca")).unwrap();
    let registry = Registry::open(&dir.path().join("t.db")).unwrap();
    (dir, ca, registry)
}

#[test]
fn registered_certificates_authenticate_their_thing() {
    let (_dir, ca, mut registry) = setup();
    let issued = ca.issue_device("MyClientDevice1").unwrap();
    let facts = registry.register("MyClientDevice1", &issued.cert_pem, &[ca.cert_pem().to_owned()]).unwrap();
    assert_eq!(facts.id.len(), 64);
    let directory = registry.directory().unwrap();
    let id = directory.authenticate(ListenerKind::Tls, "MyClientDevice1", Some(&facts.peer)).unwrap();
    assert!(id.verified);
    let list = registry.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].certificates, vec![facts.id.clone()]);
    assert_eq!(registry.certificate_owner(&facts.id).unwrap(), Some(("MyClientDevice1".to_owned(), false)));
}

#[test]
fn a_certificate_cannot_belong_to_two_things() {
    let (_dir, ca, mut registry) = setup();
    let trusted = [ca.cert_pem().to_owned()];
    let issued = ca.issue_device("A").unwrap();
    registry.register("A", &issued.cert_pem, &trusted).unwrap();
    registry.register("A", &issued.cert_pem, &trusted).unwrap();
    let err = registry.register("B", &issued.cert_pem, &trusted).unwrap_err();
    assert!(matches!(err, RegistryError::AlreadyRegistered { ref owner, .. } if owner == "A"));
}

#[test]
fn certificates_from_untrusted_issuers_need_their_ca_trusted_first() {
    let (dir, ca, mut registry) = setup();
    let other = CoreCa::load_or_create(&dir.path().join("other")).unwrap();
    let foreign = other.issue_device("Foreign").unwrap();
    let err = registry.register("Foreign", &foreign.cert_pem, &[ca.cert_pem().to_owned()]).unwrap_err();
    assert!(matches!(err, RegistryError::UntrustedIssuer { .. }), "{err}");
    registry.trust_ca(other.cert_pem()).unwrap();
    let mut trusted = vec![ca.cert_pem().to_owned()];
    trusted.extend(registry.trusted_cas().unwrap());
    registry.register("Foreign", &foreign.cert_pem, &trusted).unwrap();
    let leaf = ca.issue_device("leaf").unwrap();
    assert!(matches!(registry.trust_ca(&leaf.cert_pem), Err(RegistryError::BadCa(_))));
}

/// A certificate signed by a new CA that copies `original`'s serial and subject; returns
/// (CA PEM, certificate PEM).
fn look_alike(original_pem: &str) -> (String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SerialNumber};
    let (_, block) = x509_parser::pem::parse_x509_pem(original_pem.as_bytes()).unwrap();
    let original = block.parse_x509().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::default();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "Rogue CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, &ca_key);
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    for org in original.subject().iter_organization() {
        params.distinguished_name.push(DnType::OrganizationName, org.as_str().unwrap());
    }
    for cn in original.subject().iter_common_name() {
        params.distinguished_name.push(DnType::CommonName, cn.as_str().unwrap());
    }
    params.serial_number = Some(SerialNumber::from_slice(original.raw_serial()));
    let cert = params.signed_by(&KeyPair::generate().unwrap(), &issuer).unwrap();
    (ca.pem(), cert.pem())
}

#[test]
fn a_look_alike_certificate_is_not_its_original() {
    let (_dir, ca, mut registry) = setup();
    let issued = ca.issue_device("MyClientDevice1").unwrap();
    let real = registry.register("MyClientDevice1", &issued.cert_pem, &[ca.cert_pem().to_owned()]).unwrap();
    let (rogue_ca, forged) = look_alike(&issued.cert_pem);
    let forged_facts = certificate_facts(&forged).unwrap();
    assert_eq!(forged_facts.peer, real.peer, "the forgery copies serial and subject");
    assert_ne!(forged_facts.id, real.id);
    let directory = registry.directory().unwrap();
    assert!(directory.vouch(&real.peer, &real.id).is_ok());
    assert!(directory.vouch(&forged_facts.peer, &forged_facts.id).is_err());
    // Nor can it be registered beside the original, even with its CA trusted.
    registry.trust_ca(&rogue_ca).unwrap();
    let trusted = [ca.cert_pem().to_owned(), rogue_ca];
    let err = registry.register("Impostor", &forged, &trusted).unwrap_err();
    assert!(
        matches!(err, RegistryError::SameSerialAndSubject { ref owner, .. } if owner == "MyClientDevice1"),
        "{err}"
    );
}

#[test]
fn a_ca_is_untrusted_only_when_no_registered_certificate_needs_it() {
    let (dir, ca, mut registry) = setup();
    let other = CoreCa::load_or_create(&dir.path().join("other")).unwrap();
    assert!(matches!(registry.untrust_ca(other.cert_pem()), Err(RegistryError::NotTrusted(_))));
    assert!(matches!(registry.untrust_ca(ca.cert_pem()), Err(RegistryError::NotTrusted(_))));
    assert!(matches!(registry.untrust_ca("not pem"), Err(RegistryError::BadCa(_))));
    registry.trust_ca(other.cert_pem()).unwrap();
    let foreign = other.issue_device("Foreign").unwrap();
    let trusted = [ca.cert_pem().to_owned(), other.cert_pem().to_owned()];
    registry.register("Foreign", &foreign.cert_pem, &trusted).unwrap();
    let err = registry.untrust_ca(other.cert_pem()).unwrap_err();
    assert!(matches!(err, RegistryError::CaInUse { ref things, .. } if things == &["Foreign".to_owned()]), "{err}");
    assert_eq!(registry.trusted_cas().unwrap().len(), 1);
    registry.remove("Foreign").unwrap();
    registry.untrust_ca(other.cert_pem()).unwrap();
    assert!(registry.trusted_cas().unwrap().is_empty());
}

#[test]
fn removal_and_association_need_an_existing_thing() {
    let (_dir, ca, mut registry) = setup();
    let issued = ca.issue_device("A").unwrap();
    registry.register("A", &issued.cert_pem, &[ca.cert_pem().to_owned()]).unwrap();
    registry.set_associated("A", true).unwrap();
    assert!(registry.list().unwrap()[0].associated);
    assert!(matches!(registry.set_associated("ghost", true), Err(RegistryError::UnknownThing(_))));
    registry.remove("A").unwrap();
    assert!(registry.directory().unwrap().is_empty());
    assert!(matches!(registry.remove("A"), Err(RegistryError::UnknownThing(_))));
}

#[test]
fn garbage_certificates_and_names_are_refused() {
    let (_dir, ca, mut registry) = setup();
    let trusted = [ca.cert_pem().to_owned()];
    assert!(matches!(registry.register("A", "not a pem", &trusted), Err(RegistryError::BadCertificate { .. })));
    let key_pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    assert!(matches!(registry.register("A", key_pem, &trusted), Err(RegistryError::BadCertificate { .. })));
    assert!(matches!(registry.register("a/b", "x", &trusted), Err(RegistryError::ThingName(_))));
    assert!(registry.list().unwrap().is_empty());
}

#[test]
fn pem_round_trips() {
    let (_dir, ca, _registry) = setup();
    let (_, block) = x509_parser::pem::parse_x509_pem(ca.cert_pem().as_bytes()).unwrap();
    let again = pem_of(&block.contents);
    let (_, block2) = x509_parser::pem::parse_x509_pem(again.as_bytes()).unwrap();
    assert_eq!(block.contents, block2.contents);
}
