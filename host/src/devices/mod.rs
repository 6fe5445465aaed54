//! Client device auth (`aws.greengrass.clientdevices.Auth`): the core CA, the device registry,
//! device groups and policies, and who may discover this core.
//!
//! The `DeviceAuth` actor owns the CA (`ca/`), the registry tables and the deployed
//! `deviceGroups`. Messages in: [`DeviceRequest`] (add, register, remove, trust a CA,
//! associate, list), [`ConfigureAuth`] (from deployments), [`ConnectivityChanged`] (re-issue the
//! broker certificate for new endpoints), [`Discover`]. Messages out: [`AuthChanged`] to the broker
//! whenever devices or policies change, so it authorizes from an immutable snapshot without asking;
//! [`TlsChanged`] to the broker and discovery when certificates or trusted CAs change. It never sees
//! MQTT traffic and never logs key material.
//!
//! - `ca`: certificate authority files and issuing. `registry`: SQLite tables.
//! - `book`: CA + registry operations shared with the offline CLI.
//! - `identity`, `selection`, `policy`: pure rules for who a client is and what it may do.
//! - `local_tools`: the policy of clients on the plain loopback listener that no group selects.

pub mod book;
pub mod ca;
mod handle;
pub mod identity;
pub mod local_tools;
pub mod policy;
mod refusal;
pub mod registry;
pub mod selection;

use std::sync::Arc;

use actix::prelude::*;

pub use self::book::{DeviceBook, DeviceError, IssuedDevice, files};
use self::ca::server_sans;
pub use self::handle::{
    AuthChanged, AuthPolicies, ConfigureAuth, DevicePeers, DeviceReply, DeviceRequest, DevicesHandle, Discover,
    DiscoverError, DiscoveryAnswer, GetAccess, GetServerCert, ServerCertStatus, ThingAccess, TlsChanged,
};
use self::identity::{DeviceDirectory, Identity, ListenerKind, PeerCert};
use self::local_tools::LocalTools;
use self::policy::{DeviceGroups, client_id_resource};
pub use self::refusal::{AUTHENTICATION_FAILURES, AuthRefusal};
use self::registry::RegistryError;
use crate::connectivity::{ConnectivityChanged, ConnectivityInfo};

/// Everything the broker needs to decide who may connect and what they may do.
#[derive(Debug, Clone, Default)]
pub struct AuthSnapshot {
    /// Registered certificates.
    pub directory: DeviceDirectory,
    /// Deployed device groups; `None` until the Auth component is configured (deny all).
    pub groups: Option<Arc<DeviceGroups>>,
    /// What clients of the plain loopback listener that no group selects may do.
    pub local_tools: Arc<LocalTools>,
}

impl AuthSnapshot {
    /// Whether `thing`, connected on `listener`, may perform `operation` on `resource`; `Err`
    /// says why not. On the plain listener a client no device group selects is a local tool.
    pub fn authorize(
        &self,
        listener: ListenerKind,
        thing: &str,
        operation: &str,
        resource: &str,
    ) -> Result<(), AuthRefusal> {
        if listener == ListenerKind::Plain && !self.groups.as_ref().is_some_and(|g| g.selects(thing)) {
            return self.local_tools.authorize(thing, operation, resource);
        }
        let Some(groups) = &self.groups else {
            return Err(AuthRefusal::NoDeviceGroups);
        };
        if groups.allows(thing, operation, resource) {
            return Ok(());
        }
        Err(groups.decide(thing, operation, resource).refusal(operation, resource))
    }

    /// Checks the certificate (DER) a TLS client presented, right after the handshake: it must
    /// not imitate a registered certificate (see [`identity`]).
    pub fn vouch(&self, der: &[u8]) -> Result<(), AuthRefusal> {
        let Some(peer) = PeerCert::of_der(der) else { return Err(AuthRefusal::UnparsableCertificate) };
        Ok(self.directory.vouch(&peer, &registry::certificate_id(der))?)
    }

    /// Authenticates a CONNECT and checks `mqtt:connect` on `mqtt:clientId:<client_id>`.
    /// On the plain listener, a registered thing's client id is refused unless `localTools`
    /// allows it, so a local tool never takes over a device's session.
    pub fn admit(
        &self,
        listener: ListenerKind,
        client_id: &str,
        cert: Option<&PeerCert>,
    ) -> Result<Identity, AuthRefusal> {
        if listener == ListenerKind::Plain
            && !self.local_tools.allows_thing_client_ids()
            && self.directory.has_thing(client_id)
        {
            return Err(AuthRefusal::ThingClientId(client_id.to_owned()));
        }
        let identity = self.directory.authenticate(listener, client_id, cert)?;
        self.authorize(listener, &identity.thing, policy::CONNECT, &client_id_resource(client_id))?;
        Ok(identity)
    }
}

/// How often the device-auth service checks whether the broker's server certificate is due
/// for renewal (it is re-issued 30 days before it expires). A timer, not a check at start
/// only: a host that runs for a year must not serve an expired certificate.
const RENEW_CHECK: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// Performs a device operation on a book (used by the actor, and by the CLI when the host is
/// stopped). The flag says whether the broker's view or TLS changed.
pub fn perform(book: &mut DeviceBook, request: DeviceRequest) -> Result<(DeviceReply, Effects), DeviceError> {
    Ok(match request {
        DeviceRequest::Add { thing } => (DeviceReply::Issued(book.add(&thing)?), Effects::DIRECTORY),
        DeviceRequest::Register { thing, cert_pem } => {
            (DeviceReply::Id { id: book.register(&thing, &cert_pem)? }, Effects::DIRECTORY)
        }
        DeviceRequest::Remove { thing } => {
            book.remove(&thing)?;
            (DeviceReply::Done, Effects::DIRECTORY)
        }
        DeviceRequest::TrustCa { pem } => {
            let (id, changed) = book.trust_ca(&pem)?;
            (DeviceReply::Id { id }, if changed { Effects::TLS } else { Effects::NONE })
        }
        DeviceRequest::UntrustCa { pem } => {
            let id = book.untrust_ca(&pem)?;
            (DeviceReply::Id { id }, Effects::TLS)
        }
        DeviceRequest::Associate { thing, associated } => {
            book.associate(&thing, associated)?;
            (DeviceReply::Done, Effects::NONE)
        }
        DeviceRequest::List => (DeviceReply::Devices { devices: book.list()? }, Effects::NONE),
    })
}

/// What an operation changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effects {
    directory: bool,
    tls: bool,
}

impl Effects {
    const NONE: Self = Self { directory: false, tls: false };
    const DIRECTORY: Self = Self { directory: true, tls: false };
    const TLS: Self = Self { directory: false, tls: true };
}

/// The device-auth service.
pub struct DeviceAuth {
    book: DeviceBook,
    core_thing: String,
    policies: AuthPolicies,
    /// The endpoints discovery reports; `None` until the connectivity service first reports.
    connectivity: Option<Vec<ConnectivityInfo>>,
    peers: DevicePeers,
}

impl DeviceAuth {
    /// A service over an opened book for core `core_thing`.
    pub fn new(book: DeviceBook, core_thing: String, peers: DevicePeers) -> Self {
        Self { book, core_thing, policies: AuthPolicies::default(), connectivity: None, peers }
    }

    fn publish_auth(&self) -> Result<(), DeviceError> {
        let directory = self.book.registry().directory()?;
        tracing::debug!(
            certificates = directory.len(),
            groups = self.policies.groups.is_some(),
            "authorization snapshot updated"
        );
        let AuthPolicies { groups, local_tools } = self.policies.clone();
        self.peers.auth.do_send(AuthChanged(Arc::new(AuthSnapshot { directory, groups, local_tools })));
        Ok(())
    }

    fn publish_tls(&self) {
        let files = self.book.ca().tls_files();
        for peer in &self.peers.tls {
            peer.do_send(TlsChanged(files.clone()));
        }
    }

    fn request(&mut self, request: DeviceRequest) -> Result<DeviceReply, DeviceError> {
        let what = request.name();
        let (reply, effects) = perform(&mut self.book, request)?;
        if effects.directory {
            self.publish_auth()?;
        }
        if effects.tls {
            self.publish_tls();
        }
        if what != "list" {
            tracing::info!(operation = what, "device registry changed");
        }
        Ok(reply)
    }

    fn connectivity_changed(&mut self, list: Vec<ConnectivityInfo>) {
        self.connectivity = Some(list);
        self.ensure_server_cert("connectivity changed");
    }

    /// Re-issues the broker's certificate when its names no longer match the connectivity or it
    /// is close to expiry, and has the listeners reload it. Waits for the first connectivity
    /// report: the names come from it.
    fn ensure_server_cert(&mut self, why: &str) {
        let Some(connectivity) = &self.connectivity else { return };
        let sans = server_sans(connectivity.iter().map(|c| c.host_address.as_str()));
        match self.book.ca().ensure_server_cert(&self.core_thing, &sans) {
            Ok((_, true)) => {
                tracing::info!(?sans, why, "broker certificate re-issued");
                self.publish_tls();
            }
            Ok((_, false)) => {}
            Err(error) => tracing::error!(%error, "cannot re-issue the broker certificate"),
        }
    }

    /// The certificate is checked before anything else, so an unknown thing and someone else's
    /// thing get the same answer: a device cannot learn which thing names are registered.
    fn discover(&self, msg: Discover) -> Result<DiscoveryAnswer, DiscoverError> {
        let internal = |e: registry::RegistryError| DiscoverError::Internal(e.to_string());
        match self.book.registry().certificate_owner(&msg.certificate_id).map_err(internal)? {
            Some((owner, associated)) if owner == msg.thing => {
                if !associated {
                    return Err(DiscoverError::NotAssociated { thing: msg.thing, core: self.core_thing.clone() });
                }
                Ok(DiscoveryAnswer {
                    core_thing: self.core_thing.clone(),
                    connectivity: self.connectivity.clone().unwrap_or_default(),
                    ca_pem: self.book.ca().cert_pem().to_owned(),
                })
            }
            _ => Err(DiscoverError::NotOwnCertificate(msg.thing)),
        }
    }
}

impl Actor for DeviceAuth {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Err(error) = self.publish_auth() {
            tracing::error!(%error, "cannot load the device registry");
        }
        ctx.run_interval(RENEW_CHECK, |this, _| this.ensure_server_cert("close to expiry"));
    }
}

impl Handler<GetServerCert> for DeviceAuth {
    type Result = Option<ServerCertStatus>;

    fn handle(&mut self, _msg: GetServerCert, _ctx: &mut Self::Context) -> Self::Result {
        let (not_after, renew_at) = self.book.ca().server_cert_validity()?;
        Some(ServerCertStatus { not_after: not_after.unix_timestamp(), renew_at: renew_at.unix_timestamp() })
    }
}

impl Handler<DeviceRequest> for DeviceAuth {
    type Result = Result<DeviceReply, DeviceError>;

    fn handle(&mut self, msg: DeviceRequest, _ctx: &mut Self::Context) -> Self::Result {
        self.request(msg)
    }
}

impl Handler<GetAccess> for DeviceAuth {
    type Result = Result<ThingAccess, DeviceError>;

    fn handle(&mut self, msg: GetAccess, _ctx: &mut Self::Context) -> Self::Result {
        identity::validate_thing_name(&msg.thing).map_err(|e| DeviceError::Registry(RegistryError::ThingName(e)))?;
        let groups = self.policies.groups.as_ref().map(|g| g.explain(&msg.thing)).unwrap_or_default();
        Ok(ThingAccess { configured: self.policies.groups.is_some(), thing: msg.thing, groups })
    }
}

impl Handler<ConfigureAuth> for DeviceAuth {
    type Result = ();

    fn handle(&mut self, msg: ConfigureAuth, _ctx: &mut Self::Context) {
        self.policies = msg.0;
        if let Err(error) = self.publish_auth() {
            tracing::error!(%error, "cannot publish the new device policies");
        }
    }
}

impl Handler<ConnectivityChanged> for DeviceAuth {
    type Result = ();

    fn handle(&mut self, msg: ConnectivityChanged, _ctx: &mut Self::Context) {
        self.connectivity_changed(msg.0);
    }
}

impl Handler<Discover> for DeviceAuth {
    type Result = Result<DiscoveryAnswer, DiscoverError>;

    fn handle(&mut self, msg: Discover, _ctx: &mut Self::Context) -> Self::Result {
        self.discover(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn without_device_groups_no_device_may_connect_but_local_tools_may() {
        let snapshot = AuthSnapshot::default();
        let err = snapshot.admit(ListenerKind::Tls, "device", None).unwrap_err();
        assert!(err.to_string().contains("certificate"), "{err}");
        let tool = snapshot.admit(ListenerKind::Plain, "mosquitto_sub 3f2a", None).expect("any client id");
        assert!(!tool.verified);
        let err = snapshot.authorize(ListenerKind::Tls, "device", policy::CONNECT, "mqtt:clientId:device").unwrap_err();
        assert_eq!(err, AuthRefusal::NoDeviceGroups);
    }

    #[test]
    fn admission_needs_identity_and_connect_permission() {
        let groups = DeviceGroups::from_config(&json!({"deviceGroups": {
            "definitions": {"G": {"selectionRule": "thingName: ok*", "policyName": "P"}},
            "policies": {"P": {"S": {"operations": ["mqtt:connect"], "resources": ["mqtt:clientId:ok-1"]}}}}}))
        .unwrap()
        .map(Arc::new);
        let snapshot = AuthSnapshot { directory: DeviceDirectory::default(), groups, local_tools: Arc::default() };
        assert!(snapshot.admit(ListenerKind::Plain, "ok-1", None).is_ok());
        assert!(snapshot.admit(ListenerKind::Plain, "ok-2", None).is_err(), "a group selects ok-2: its policy decides");
        assert!(snapshot.admit(ListenerKind::Plain, "other", None).is_ok(), "no group selects it: a local tool");
        assert!(snapshot.admit(ListenerKind::Tls, "ok-1", None).is_err(), "TLS needs a registered certificate");
    }

    /// Device auth on a fresh root, publishing to fakes.
    fn device_auth(
        root: &tempfile::TempDir,
    ) -> (Addr<DeviceAuth>, crate::fakes::Seen<AuthChanged>, crate::fakes::Seen<TlsChanged>) {
        let book = DeviceBook::open(&crate::layout::RootLayout::new(root.path())).unwrap();
        let (auth, snapshots) = crate::fakes::sink::<AuthChanged>();
        let (tls, reloads) = crate::fakes::sink::<TlsChanged>();
        let addr = DeviceAuth::new(book, "MyCore".into(), DevicePeers { auth, tls: vec![tls] }).start();
        (addr, snapshots, reloads)
    }

    #[actix_rt::test]
    async fn registry_changes_reach_the_broker_and_refusals_stay_typed() {
        let root = tempfile::tempdir().unwrap();
        let (auth, snapshots, _) = device_auth(&root);
        let reply = auth.send(DeviceRequest::Add { thing: "Lamp".into() }).await.unwrap().unwrap();
        assert!(matches!(reply, DeviceReply::Issued(ref issued) if issued.thing == "Lamp"));
        let seen = snapshots.take();
        let latest = &seen.last().expect("a snapshot after the change").0;
        assert!(latest.directory.has_thing("Lamp"), "the broker learns the new certificate at once");

        let refused = auth.send(DeviceRequest::Remove { thing: "Ghost".into() }).await.unwrap();
        assert!(matches!(refused, Err(DeviceError::Registry(registry::RegistryError::UnknownThing(_)))), "{refused:?}");
        assert_eq!(snapshots.len(), 0, "a refused change publishes nothing");
        auth.send(DeviceRequest::List).await.unwrap().unwrap();
        assert_eq!(snapshots.len(), 0, "reads publish nothing");
    }

    #[actix_rt::test]
    async fn a_new_endpoint_reissues_the_broker_certificate_and_reloads_the_listeners() {
        let root = tempfile::tempdir().unwrap();
        let (auth, _, reloads) = device_auth(&root);
        let endpoint = |host: &str| ConnectivityInfo {
            id: host.into(),
            host_address: host.into(),
            port: 8883,
            metadata: String::new(),
        };
        auth.send(ConnectivityChanged(vec![endpoint("10.0.0.7")])).await.unwrap();
        assert_eq!(reloads.take().len(), 1, "a certificate naming 10.0.0.7 was issued and the listeners told");
        auth.send(ConnectivityChanged(vec![endpoint("10.0.0.7")])).await.unwrap();
        assert_eq!(reloads.len(), 0, "the same names need no new certificate");
    }

    #[test]
    fn requests_round_trip_as_json() {
        let request = DeviceRequest::Associate { thing: "t".to_owned(), associated: true };
        let text = serde_json::to_string(&request).unwrap();
        assert_eq!(text, r#"{"op":"associate","thing":"t","associated":true}"#);
        assert!(matches!(serde_json::from_str::<DeviceRequest>(&text).unwrap(), DeviceRequest::Associate { .. }));
    }
}
