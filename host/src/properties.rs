//! MQTT 5 message properties that travel with a message through the host: from a device to
//! the bridge, to other devices and to the upstream broker (spooled on disk meanwhile), and
//! back. The set is what Greengrass's bridge forwards: content type, correlation data, response
//! topic, message expiry, payload format and user properties (the request/response pattern and
//! application metadata). Topic aliases and subscription identifiers belong to one connection
//! and never travel. The broker and the upstream link convert to and from their client
//! libraries' types; everything else sees only this one. Pure data.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The properties of one message that the host carries along.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MessageProperties {
    /// Content Type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Correlation Data (request/response).
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_bytes")]
    pub correlation_data: Option<Bytes>,
    /// Response Topic (request/response).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_topic: Option<String>,
    /// Message Expiry Interval, seconds, as published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_expiry_secs: Option<u32>,
    /// Payload Format Indicator: the payload is UTF-8.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub payload_is_utf8: bool,
    /// User Properties, in order (names may repeat).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub user_properties: Vec<(String, String)>,
}

impl MessageProperties {
    /// True when there is nothing to carry.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `self`, or `None` when it is empty (messages carry `Option<Arc<MessageProperties>>`).
    pub fn non_empty(self) -> Option<Self> {
        (!self.is_empty()).then_some(self)
    }
}

/// Correlation data as a list of bytes in JSON (the spool stores properties as JSON).
mod opt_bytes {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Bytes>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(bytes) => serializer.serialize_bytes(bytes),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Bytes>, D::Error> {
        Ok(Option::<Vec<u8>>::deserialize(deserializer)?.map(Bytes::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_round_trip_through_json_and_empty_ones_are_none() {
        let properties = MessageProperties {
            content_type: Some("application/json".into()),
            correlation_data: Some(Bytes::from_static(&[0, 159, 255])),
            response_topic: Some("replies/dev1".into()),
            message_expiry_secs: Some(30),
            payload_is_utf8: true,
            user_properties: vec![("k".into(), "v1".into()), ("k".into(), "v2".into())],
        };
        let json = serde_json::to_string(&properties).unwrap();
        assert_eq!(serde_json::from_str::<MessageProperties>(&json).unwrap(), properties);
        assert_eq!(serde_json::to_string(&MessageProperties::default()).unwrap(), "{}");
        assert_eq!(MessageProperties::default().non_empty(), None);
        assert!(properties.clone().non_empty().is_some());
    }
}
