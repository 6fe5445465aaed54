//! The `[broker]` settings: defaults, ranges, and refused values.

use super::*;

#[test]
fn missing_settings_take_the_defaults() {
    assert_eq!(BrokerLimits::try_from(BrokerSettings::default()), Ok(BrokerLimits::default()));
}

#[test]
fn settings_override_the_defaults() {
    let settings = BrokerSettings {
        session_queue_bytes: Some(65_536),
        total_queue_bytes: Some(1 << 20),
        subscriber_stall_timeout_ms: Some(500),
        inbound_queue_bytes: Some(8192),
        host_queue_bytes: Some(16_384),
        threads: Some(3),
        session_queue_messages: Some(10),
        max_connections: Some(5),
        max_handshakes: Some(2),
        handshake_timeout_ms: Some(1500),
        max_packet_bytes: Some(4096),
        max_subscriptions: Some(3),
        max_topic_levels: Some(4),
        max_session_expiry_secs: Some(60),
        max_inflight: Some(8),
        publish_rate: Some(0),
        max_topic_aliases: Some(0),
        max_keepalive_secs: Some(30),
        retained_bytes: Some(1 << 20),
        retained_messages: Some(7),
    };
    let limits = BrokerLimits::try_from(settings).unwrap();
    assert_eq!(limits.session_queue_bytes, 65_536);
    assert_eq!(limits.total_queue_bytes, 1 << 20);
    assert_eq!(limits.stall_timeout, Duration::from_millis(500));
    assert_eq!(limits.inbound_queue_bytes, 8192);
    assert_eq!(limits.host_queue_bytes, 16_384);
    assert_eq!(limits.threads, 3);
    assert_eq!(limits.session_queue_messages, 10);
    assert_eq!((limits.max_connections, limits.max_handshakes), (5, 2));
    assert_eq!(limits.handshake_timeout, Duration::from_millis(1500));
    assert_eq!((limits.max_packet_bytes, limits.max_subscriptions, limits.max_topic_levels), (4096, 3, 4));
    assert_eq!(limits.max_session_expiry, Duration::from_secs(60));
    assert_eq!((limits.max_inflight, limits.publish_rate, limits.max_topic_aliases), (8, 0, 0));
    assert_eq!((limits.retained_bytes, limits.retained_messages), (1 << 20, 7));
    assert_eq!(limits.max_keepalive_secs, 30);
}

#[test]
fn out_of_range_settings_name_the_field() {
    let zero = BrokerSettings { session_queue_bytes: Some(0), ..BrokerSettings::default() };
    assert_eq!(BrokerLimits::try_from(zero).unwrap_err().field, "session_queue_bytes");
    let huge = BrokerSettings { host_queue_bytes: Some(u64::MAX), ..BrokerSettings::default() };
    assert_eq!(BrokerLimits::try_from(huge).unwrap_err().field, "host_queue_bytes");
    let inverted =
        BrokerSettings { session_queue_bytes: Some(1 << 20), total_queue_bytes: Some(1 << 16), ..Default::default() };
    let error = BrokerLimits::try_from(inverted).unwrap_err();
    assert_eq!(error.to_string(), "broker.total_queue_bytes: 65536 is smaller than session_queue_bytes (1048576)");
    let instant = BrokerSettings { subscriber_stall_timeout_ms: Some(0), ..BrokerSettings::default() };
    assert_eq!(BrokerLimits::try_from(instant).unwrap_err().field, "subscriber_stall_timeout_ms");
    let many = BrokerSettings { threads: Some(65), ..BrokerSettings::default() };
    assert_eq!(BrokerLimits::try_from(many).unwrap_err().field, "threads");
    let no_window = BrokerSettings { max_inflight: Some(0), ..BrokerSettings::default() };
    let error = BrokerLimits::try_from(no_window).unwrap_err();
    assert_eq!(error.to_string(), "broker.max_inflight: 0 is out of range (1 to 65535)");
    let tiny = BrokerSettings { max_packet_bytes: Some(10), ..BrokerSettings::default() };
    assert_eq!(BrokerLimits::try_from(tiny).unwrap_err().field, "max_packet_bytes");
    let instant = BrokerSettings { handshake_timeout_ms: Some(1), ..BrokerSettings::default() };
    assert_eq!(BrokerLimits::try_from(instant).unwrap_err().field, "handshake_timeout_ms");
    let aliases = BrokerSettings { max_topic_aliases: Some(70_000), ..BrokerSettings::default() };
    assert_eq!(BrokerLimits::try_from(aliases).unwrap_err().field, "max_topic_aliases");
}

#[test]
fn unknown_keys_are_refused() {
    let error = toml::from_str::<BrokerSettings>("session_queue_byte = 5").unwrap_err();
    assert!(error.to_string().contains("session_queue_byte"), "{error}");
}
