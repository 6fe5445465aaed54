//! Why device auth refuses a client: at the TLS handshake, at CONNECT, or one operation. The
//! broker logs the text (once per client and kind per interval) and counts the refusal.

use thiserror::Error;

use super::identity::Refusal;

/// Why a client was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthRefusal {
    /// Its certificate or client id does not name a registered thing it may be.
    #[error(transparent)]
    Identity(#[from] Refusal),
    /// The certificate presented at the handshake does not parse.
    #[error("the certificate does not parse")]
    UnparsableCertificate,
    /// A local tool on the plain listener used a registered thing's client id.
    #[error(
        "{0:?} is a registered thing; a local tool may not use its client id (allow it with localTools.allowThingClientIds)"
    )]
    ThingClientId(String),
    /// No device groups are deployed, so no device may do anything.
    #[error("no device groups are configured; deploy aws.greengrass.clientdevices.Auth deviceGroups")]
    NoDeviceGroups,
    /// No device group selects the thing.
    #[error("the thing is in no device group (no selectionRule matches it)")]
    NoGroup,
    /// No policy of the thing's groups allows the operation.
    #[error("no policy of its groups ({groups}) allows {operation} on {resource}")]
    NotAllowed {
        /// The groups that select the thing, comma-separated.
        groups: String,
        /// The operation (`mqtt:publish`, ...).
        operation: String,
        /// The resource (`mqtt:topic:...`, ...).
        resource: String,
    },
    /// The `localTools` policy does not allow the operation.
    #[error("the localTools policy does not allow {operation} on {resource}")]
    LocalToolsPolicy {
        /// The operation.
        operation: String,
        /// The resource.
        resource: String,
    },
    /// Without a `localTools` policy, local tools may not write shadows.
    #[error("local tools may not write shadows by default ({0}); allow it with a localTools policy")]
    LocalToolsShadowWrite(String),
    /// The client's Last Will is on a topic it may not publish to.
    #[error("its Last Will on {topic} is not allowed: {reason}")]
    Will {
        /// The will's topic.
        topic: String,
        /// Why publishing there is refused.
        reason: Box<AuthRefusal>,
    },
}

/// Every reason an authentication can fail for ([`AuthRefusal::reason`] of those that
/// [`AuthRefusal::is_authentication`]), so each can be reported from zero.
pub const AUTHENTICATION_FAILURES: [&str; 7] = [
    "bad_client_id",
    "no_certificate",
    "unknown_certificate",
    "forged_certificate",
    "wrong_thing",
    "unparsable_certificate",
    "thing_client_id",
];

impl AuthRefusal {
    /// A short stable name of the kind of refusal (a metrics label).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Identity(refusal) => refusal.reason(),
            Self::UnparsableCertificate => "unparsable_certificate",
            Self::ThingClientId(_) => "thing_client_id",
            Self::NoDeviceGroups => "no_device_groups",
            Self::NoGroup => "no_group",
            Self::NotAllowed { .. } => "not_allowed",
            Self::LocalToolsPolicy { .. } => "local_tools_policy",
            Self::LocalToolsShadowWrite(_) => "local_tools_shadow_write",
            Self::Will { .. } => "will_not_allowed",
        }
    }

    /// Whether the client was not recognised as who it claims to be (authentication), rather
    /// than recognised and not allowed (authorization).
    pub fn is_authentication(&self) -> bool {
        matches!(self, Self::Identity(_) | Self::UnparsableCertificate | Self::ThingClientId(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_authentication_failure_has_a_listed_reason() {
        let failures = [
            AuthRefusal::Identity(Refusal::NoCertificate),
            AuthRefusal::Identity(Refusal::UnknownCertificate { serial: "1".into(), subject: "CN=x".into() }),
            AuthRefusal::UnparsableCertificate,
            AuthRefusal::ThingClientId("Lamp".into()),
        ];
        for failure in failures {
            assert!(failure.is_authentication());
            assert!(AUTHENTICATION_FAILURES.contains(&failure.reason()), "{}", failure.reason());
        }
        assert!(!AuthRefusal::NoGroup.is_authentication());
        let will = AuthRefusal::Will { topic: "t".into(), reason: Box::new(AuthRefusal::NoGroup) };
        assert_eq!((will.reason(), will.is_authentication()), ("will_not_allowed", false));
    }
}
