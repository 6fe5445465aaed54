//! The core CA: issuing, loading, renewing, and refusing damaged files.

use super::*;
use std::os::unix::fs::PermissionsExt;

#[test]
fn ca_is_created_once_and_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CoreCa::load_or_create(dir.path()).unwrap();
    let again = CoreCa::load_or_create(dir.path()).unwrap();
    assert_eq!(ca.cert_pem(), again.cert_pem());
    let mode = fs::metadata(dir.path().join("ca.key")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn device_certificates_name_the_thing_and_chain_to_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CoreCa::load_or_create(dir.path()).unwrap();
    let issued = ca.issue_device("MyClientDevice1").unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(issued.cert_pem.as_bytes()).unwrap();
    let cert = pem.parse_x509().unwrap();
    let cn = cert.subject().iter_common_name().next().unwrap().as_str().unwrap();
    assert_eq!(cn, "MyClientDevice1");
    let (_, ca_pem) = x509_parser::pem::parse_x509_pem(ca.cert_pem().as_bytes()).unwrap();
    let ca_cert = ca_pem.parse_x509().unwrap();
    assert_eq!(cert.issuer(), ca_cert.subject());
    assert!(cert.verify_signature(Some(ca_cert.public_key())).is_ok());
}

#[test]
fn server_certificate_is_reissued_only_when_sans_change() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CoreCa::load_or_create(dir.path()).unwrap();
    let sans = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let (files, changed) = ca.ensure_server_cert("core", &sans).unwrap();
    assert!(changed);
    let first = fs::read(&files.cert).unwrap();
    assert!(!ca.ensure_server_cert("core", &sans).unwrap().1);
    assert_eq!(fs::read(&files.cert).unwrap(), first);
    assert!(ca.ensure_server_cert("core", &["localhost".to_owned(), "10.0.0.9".to_owned()]).unwrap().1);
    assert_ne!(fs::read(&files.cert).unwrap(), first);
    let (have, _) = existing_server_cert(&files.cert).unwrap();
    assert!(have.contains("10.0.0.9") && have.contains("localhost"));
}

#[test]
fn a_server_certificate_close_to_expiry_is_reissued_with_the_same_names() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CoreCa::load_or_create(dir.path()).unwrap();
    let sans = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let files = ca.tls_files();
    // A certificate with the right names but 10 days left, as a host up for 355 days has.
    let key = new_key("server key").unwrap();
    let mut params = CertificateParams::new(sans.clone()).unwrap();
    params.distinguished_name = name("core");
    set_validity(&mut params, Duration::days(10));
    let aging = params.signed_by(&key, &ca.issuer().unwrap()).unwrap();
    write(&files.key, key.serialize_pem().as_bytes(), Access::Private).unwrap();
    write(&files.cert, aging.pem().as_bytes(), Access::Public).unwrap();
    let (not_after, renew_at) = ca.server_cert_validity().unwrap();
    assert!(renew_at < OffsetDateTime::now_utc() && renew_at == not_after - SERVER_RENEW_BEFORE);

    assert!(ca.ensure_server_cert("core", &sans).unwrap().1, "due for renewal");
    let (have, not_after) = existing_server_cert(&files.cert).unwrap();
    assert_eq!(have, sans.iter().cloned().collect::<BTreeSet<_>>());
    assert!(not_after > OffsetDateTime::now_utc() + Duration::days(300));
    assert!(!ca.ensure_server_cert("core", &sans).unwrap().1, "fresh now");
}

#[test]
fn client_roots_list_the_core_ca_then_trusted_cas() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CoreCa::load_or_create(&dir.path().join("a")).unwrap();
    let other = CoreCa::load_or_create(&dir.path().join("b")).unwrap();
    ca.ensure_server_cert("core", &["localhost".to_owned()]).unwrap();
    assert!(!ca.write_client_roots(&[]).unwrap());
    assert!(ca.write_client_roots(&[other.cert_pem().to_owned()]).unwrap());
    let bundle = fs::read_to_string(ca.tls_files().client_roots).unwrap();
    assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 2);
    assert!(server_sans(["core.local"]).contains(&"core.local".to_owned()));
}

#[test]
fn a_ca_with_one_of_its_two_files_missing_is_an_error_not_a_new_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CoreCa::load_or_create(dir.path()).unwrap();
    let original = ca.cert_pem().to_owned();
    fs::remove_file(dir.path().join("ca.key")).unwrap();
    let err = CoreCa::load_or_create(dir.path()).unwrap_err();
    assert!(matches!(err, CaError::HalfPresent { .. }), "{err}");
    assert!(err.to_string().contains("ca.key does not"), "{err}");
    assert_eq!(fs::read_to_string(dir.path().join("ca.pem")).unwrap(), original, "the old CA is untouched");

    let dir = tempfile::tempdir().unwrap();
    CoreCa::load_or_create(dir.path()).unwrap();
    fs::remove_file(dir.path().join("ca.pem")).unwrap();
    let err = CoreCa::load_or_create(dir.path()).unwrap_err();
    assert!(err.to_string().contains("ca.pem does not"), "{err}");
    assert!(!dir.path().join("ca.pem").exists(), "no new CA was made");
}

#[test]
fn a_corrupt_ca_key_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    CoreCa::load_or_create(dir.path()).unwrap();
    fs::write(dir.path().join("ca.key"), "garbage").unwrap();
    let err = CoreCa::load_or_create(dir.path()).unwrap_err();
    assert!(err.to_string().contains("ca.key"), "{err}");
}
