//! MQTT 5 publish properties between rmqtt's codec and the host's [`MessageProperties`].

use rmqtt::codec::v5::PublishProperties;

use crate::properties::MessageProperties;

/// The properties of a device's publish that travel on with it (not its topic alias nor its
/// subscription identifiers, which belong to its connection).
pub fn carried(p: &PublishProperties) -> Option<MessageProperties> {
    MessageProperties {
        content_type: p.content_type.as_ref().map(|c| c.to_string()),
        correlation_data: p.correlation_data.clone(),
        response_topic: p.response_topic.as_ref().map(|t| t.to_string()),
        message_expiry_secs: p.message_expiry_interval.map(std::num::NonZeroU32::get),
        payload_is_utf8: p.is_utf8_payload,
        user_properties: p.user_properties.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
    .non_empty()
}

/// rmqtt's properties for a message the host publishes to devices.
pub fn to_codec(p: &MessageProperties) -> PublishProperties {
    PublishProperties {
        content_type: p.content_type.as_deref().map(Into::into),
        correlation_data: p.correlation_data.clone(),
        response_topic: p.response_topic.as_deref().map(Into::into),
        message_expiry_interval: p.message_expiry_secs.and_then(std::num::NonZeroU32::new),
        is_utf8_payload: p.payload_is_utf8,
        user_properties: p.user_properties.iter().map(|(k, v)| (k.as_str().into(), v.as_str().into())).collect(),
        ..PublishProperties::default()
    }
}
