//! Built-in components: Turf services that answer to Greengrass component names.
//!
//! A Greengrass deployment names these components and merges configuration into them; in Turf
//! they are always present (the broker, the bridge, the nucleus itself), report versions that
//! satisfy the tutorial recipes' `VersionRequirement`s, and validate their configuration before a
//! deployment changes anything. Pure data and validation: no actors.

use serde_json::Value;

use crate::bridge::routes::BridgeConfig;
use crate::connectivity::IpDetectorConfig;
use crate::devices::AuthPolicies;
use crate::shadow::settings::ShadowSettings;

/// Name of the nucleus component.
pub const NUCLEUS: &str = "aws.greengrass.Nucleus";
/// Name of the bridge component.
pub const BRIDGE: &str = crate::bridge::COMPONENT_NAME;
/// Name of the Moquette broker component (Turf's embedded broker answers to it).
pub const MOQUETTE: &str = "aws.greengrass.clientdevices.mqtt.Moquette";
/// Name of the client device auth component.
pub const AUTH: &str = "aws.greengrass.clientdevices.Auth";
/// Name of the IP detector component.
pub const IP_DETECTOR: &str = "aws.greengrass.clientdevices.IPDetector";
/// Name of the shadow manager component.
pub const SHADOW_MANAGER: &str = crate::shadow::COMPONENT_NAME;

/// A built-in component.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    /// Greengrass component name.
    pub name: &'static str,
    /// Version reported to dependency resolution.
    pub version: &'static str,
    /// What provides it in Turf.
    pub description: &'static str,
    validate: fn(&Value) -> Result<(), String>,
}

impl Builtin {
    /// Checks a configuration for this component; the error says what is wrong and where.
    pub fn validate(&self, config: &Value) -> Result<(), String> {
        (self.validate)(config)
    }

    /// The version, parsed.
    pub fn semver(&self) -> semver::Version {
        semver::Version::parse(self.version).unwrap_or_else(|_| semver::Version::new(0, 0, 0))
    }
}

fn any_object(config: &Value) -> Result<(), String> {
    if config.is_object() { Ok(()) } else { Err("configuration must be a JSON object".to_owned()) }
}

fn bridge(config: &Value) -> Result<(), String> {
    BridgeConfig::from_json(config).map(|_| ()).map_err(|e| e.to_string())
}

fn auth(config: &Value) -> Result<(), String> {
    any_object(config)?;
    if let Some(key) = config.as_object().and_then(|m| {
        m.keys().find(|k| {
            ![
                "deviceGroups",
                "localTools",
                "certificates",
                "certificateAuthority",
                "performance",
                "security",
                "metrics",
            ]
            .contains(&k.as_str())
        })
    }) {
        return Err(format!("{key}: unknown setting of aws.greengrass.clientdevices.Auth"));
    }
    AuthPolicies::from_config(config).map(|_| ()).map_err(|e| e.to_string())
}

fn shadow_manager(config: &Value) -> Result<(), String> {
    ShadowSettings::from_config(config)
        .map(|_| ())
        .map_err(|e| format!("aws.greengrass.ShadowManager configuration: {e}"))
}

fn ip_detector(config: &Value) -> Result<(), String> {
    IpDetectorConfig::from_config(config)
        .map(|_| ())
        .map_err(|e| format!("aws.greengrass.clientdevices.IPDetector configuration: {e}"))
}

/// Every built-in component.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: NUCLEUS,
        version: "2.14.0",
        description: "the Turf host itself (Greengrass nucleus settings that do not apply to Turf are ignored)",
        validate: any_object,
    },
    Builtin {
        name: MOQUETTE,
        version: "2.3.7",
        description: "Turf's embedded MQTT broker (listeners come from `turf run` flags)",
        validate: any_object,
    },
    Builtin { name: BRIDGE, version: "2.3.2", description: "Turf's MQTT bridge (mqttTopicMapping)", validate: bridge },
    Builtin {
        name: AUTH,
        version: "2.5.3",
        description: "Turf's client device auth (deviceGroups; certificates come from Turf's CA)",
        validate: auth,
    },
    Builtin {
        name: SHADOW_MANAGER,
        version: "2.3.9",
        description: "Turf's shadow manager (local shadows in turf.db)",
        validate: shadow_manager,
    },
    Builtin {
        name: IP_DETECTOR,
        version: "2.2.2",
        description: "Turf's IP detector (the endpoints discovery reports)",
        validate: ip_detector,
    },
];

/// The built-in component called `name`.
pub fn find(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::semver_range::VersionRange;
    use serde_json::json;

    #[test]
    fn builtin_versions_satisfy_the_tutorial_requirements() {
        let nucleus = find(NUCLEUS).unwrap().semver();
        let bridge = find(BRIDGE).unwrap().semver();
        let shadows = find(SHADOW_MANAGER).unwrap().semver();
        assert!(VersionRange::parse("^2.6.0").unwrap().matches(&nucleus));
        assert!(VersionRange::parse("^2.2.0").unwrap().matches(&bridge));
        assert!(VersionRange::parse("^2.2.0").unwrap().matches(&shadows));
    }

    #[test]
    fn bridge_configuration_is_validated() {
        let bridge = find(BRIDGE).unwrap();
        assert!(bridge.validate(&json!({"mqttTopicMapping": {}})).is_ok());
        let err = bridge
            .validate(&json!({"mqttTopicMapping": {"R": {"topic": "a", "source": "X", "target": "Pubsub"}}}))
            .unwrap_err();
        assert!(err.contains("mqttTopicMapping.R.source"), "{err}");
    }
}
