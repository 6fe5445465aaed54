//! The Greengrass discovery response, exactly as the AWS IoT Device SDKs parse it.
//!
//! Keys are PascalCase (`GGGroups`, `GGGroupId`, `Cores`, `Connectivity[{Id, HostAddress,
//! PortNumber, Metadata}]`, `CAs`) except the core's `thingArn`; the v2 developer guide's
//! camelCase example would be silently dropped by the SDK. One group per associated core: this one.
//! Pure data: no I/O.

use serde::{Deserialize, Serialize};

use crate::connectivity::ConnectivityInfo;

/// `GET /greengrass/discover/thing/{thing}` → 200 body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoverResponse {
    /// One group per core device the thing is associated with.
    #[serde(rename = "GGGroups")]
    pub gg_groups: Vec<GgGroup>,
}

/// A Greengrass group (v2: one per core device).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GgGroup {
    /// `greengrassV2-coreDevice-<core thing name>`.
    #[serde(rename = "GGGroupId")]
    pub gg_group_id: String,
    /// The core devices.
    #[serde(rename = "Cores")]
    pub cores: Vec<GgCore>,
    /// CA certificates (PEM) that sign the cores' broker certificates.
    #[serde(rename = "CAs")]
    pub cas: Vec<String>,
}

/// A core device and its endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GgCore {
    /// ARN of the core's thing.
    #[serde(rename = "thingArn")]
    pub thing_arn: String,
    /// Endpoints to try in order.
    #[serde(rename = "Connectivity")]
    pub connectivity: Vec<Endpoint>,
}

/// One endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Identifier.
    #[serde(rename = "Id")]
    pub id: String,
    /// Host name or address.
    #[serde(rename = "HostAddress")]
    pub host_address: String,
    /// Broker port.
    #[serde(rename = "PortNumber")]
    pub port_number: u16,
    /// Free-form metadata.
    #[serde(rename = "Metadata")]
    pub metadata: String,
}

/// The ARN Turf reports for a core thing (there is no AWS account behind a local core).
pub fn thing_arn(thing: &str) -> String {
    format!("arn:aws:iot:local:000000000000:thing/{thing}")
}

/// The response for a device associated with core `core_thing`.
pub fn build(core_thing: &str, connectivity: &[ConnectivityInfo], ca_pem: &str) -> DiscoverResponse {
    let connectivity = connectivity
        .iter()
        .map(|c| Endpoint {
            id: c.id.clone(),
            host_address: c.host_address.clone(),
            port_number: c.port,
            metadata: c.metadata.clone(),
        })
        .collect();
    DiscoverResponse {
        gg_groups: vec![GgGroup {
            gg_group_id: format!("greengrassV2-coreDevice-{core_thing}"),
            cores: vec![GgCore { thing_arn: thing_arn(core_thing), connectivity }],
            cas: vec![ca_pem.to_owned()],
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_ones_the_sdk_reads() {
        let response = build("Core", &[ConnectivityInfo::new("192.168.1.5", 8883)], "PEM");
        let json = serde_json::to_value(&response).unwrap();
        let group = &json["GGGroups"][0];
        assert_eq!(group["GGGroupId"], "greengrassV2-coreDevice-Core");
        assert_eq!(group["CAs"][0], "PEM");
        let core = &group["Cores"][0];
        assert_eq!(core["thingArn"], "arn:aws:iot:local:000000000000:thing/Core");
        assert_eq!(
            core["Connectivity"][0],
            serde_json::json!({"Id": "192.168.1.5", "HostAddress": "192.168.1.5", "PortNumber": 8883, "Metadata": ""})
        );
    }
}
