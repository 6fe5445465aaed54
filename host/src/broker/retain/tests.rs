//! The retained-message store: budgets, expiry, persistence and unreadable rows.

use super::*;

const ROOMY: RetainLimits = RetainLimits { max_bytes: 1 << 20, max_messages: 1000 };

fn retain(topic: &str, payload: &str) -> Retain {
    let publish = CodecPublish {
        dup: false,
        retain: true,
        qos: QoS::AtLeastOnce,
        topic: topic.into(),
        packet_id: None,
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        properties: None,
    };
    let id = Id::new(1, 0, None, None, "t".into(), None);
    Retain { msg_id: None, from: From::from_system(id), publish: Publish::from(publish) }
}

fn payloads(found: &[(TopicName, Retain)]) -> Vec<Bytes> {
    found.iter().map(|(_, r)| r.publish.payload.clone()).collect()
}

fn database() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("turf.db");
    (dir, path)
}

#[test]
fn last_retained_message_per_topic_is_returned_for_matching_filters() {
    let store = RetainStore::in_memory(ROOMY);
    let now = Instant::now();
    store.set_now("a/b", retain("a/b", "1"), None, now);
    store.set_now("a/b", retain("a/b", "2"), None, now);
    store.set_now("a/c", retain("a/c", "3"), None, now);
    store.set_now("$aws/x", retain("$aws/x", "4"), None, now);
    store.set_now("a/c/d", retain("a/c/d", "5"), None, now);
    assert_eq!(payloads(&store.get_now("a/+", now)), vec![Bytes::from("2"), Bytes::from("3")]);
    assert_eq!(store.get_now("#", now).len(), 3, "'#' does not match $ topics");
    assert_eq!(store.get_now("+/#", now).len(), 3);
    assert_eq!(store.get_now("$aws/#", now).len(), 1);
    assert_eq!(payloads(&store.get_now("a/c/#", now)), vec![Bytes::from("3"), Bytes::from("5")]);
    assert!(store.get_now("a/#/b", now).is_empty(), "an invalid filter matches nothing");
    assert_eq!(store.usage().0, 4);
}

#[test]
fn empty_payload_clears_and_expiry_hides() {
    let store = RetainStore::in_memory(ROOMY);
    let now = Instant::now();
    store.set_now("a", retain("a", "1"), None, now);
    store.set_now("a", retain("a", ""), None, now);
    assert!(store.get_now("a", now).is_empty());
    assert_eq!(store.usage(), (0, 0), "clearing gives the bytes back");
    store.set_now("b", retain("b", "1"), Some(Duration::from_secs(10)), now);
    assert_eq!(store.get_now("b", now).len(), 1);
    assert!(store.get_now("b", now + Duration::from_secs(11)).is_empty());
}

#[test]
fn the_byte_budget_refuses_what_does_not_fit_and_replacing_reuses_room() {
    let one = cost("t/0", 100, 0);
    let store = RetainStore::in_memory(RetainLimits { max_bytes: 3 * one, max_messages: 10 });
    let now = Instant::now();
    let body = "x".repeat(100);
    for n in 0..3 {
        assert!(store.fits(&format!("t/{n}"), 100, None));
        store.set_now(&format!("t/{n}"), retain(&format!("t/{n}"), &body), None, now);
    }
    assert!(!store.fits("t/3", 100, None), "a fourth topic is over the budget");
    assert!(store.fits("t/1", 100, None), "replacing a topic reuses its room");
    assert!(store.fits("t/3", 0, None), "clearing always fits");
    store.set_now("t/3", retain("t/3", &body), None, now);
    assert_eq!(store.refused(), 1, "a set past the hook is refused and counted");
    assert!(store.get_now("t/3", now).is_empty());
    assert_eq!(store.usage(), (3, 3 * one));
    let counted = RetainStore::in_memory(RetainLimits { max_bytes: 1 << 20, max_messages: 2 });
    counted.set_now("a", retain("a", "1"), None, now);
    counted.set_now("b", retain("b", "1"), None, now);
    assert!(!counted.fits("c", 1, None));
}

#[test]
fn the_publish_check_sees_expired_messages_make_room_and_properties_count() {
    let store = RetainStore::in_memory(RetainLimits { max_bytes: cost("a", 10, 0) + 5, max_messages: 1 });
    let now = Instant::now();
    store.set_now("old", retain("old", "1"), Some(Duration::from_millis(1)), now);
    std::thread::sleep(Duration::from_millis(5));
    assert!(store.fits("a", 10, None), "an expired message does not hold room");
    let heavy = PublishProperties {
        user_properties: vec![("k".into(), "v".repeat(100).into())],
        ..PublishProperties::default()
    };
    assert!(!store.fits("a", 10, Some(&heavy)), "properties are charged as the store charges them");
}

#[test]
fn a_retained_message_is_delivered_with_what_is_left_of_its_expiry() {
    let store = RetainStore::in_memory(ROOMY);
    let now = Instant::now();
    let mut expiring = retain("e", "1");
    expiring.publish.properties = Some(PublishProperties {
        message_expiry_interval: std::num::NonZeroU32::new(100),
        ..PublishProperties::default()
    });
    store.set_now("e", expiring, Some(Duration::from_secs(100)), now);
    let found = store.get_now("e", now + Duration::from_secs(40));
    let left = found[0].1.publish.properties.as_ref().and_then(|p| p.message_expiry_interval);
    assert_eq!(left.map(std::num::NonZeroU32::get), Some(60));
}

#[test]
fn expired_messages_make_room_when_the_store_is_full() {
    let store = RetainStore::in_memory(RetainLimits { max_bytes: 1 << 20, max_messages: 1 });
    let now = Instant::now();
    store.set_now("old", retain("old", "1"), Some(Duration::from_secs(1)), now);
    store.set_now("new", retain("new", "2"), None, now + Duration::from_secs(2));
    assert_eq!(store.get_now("new", now + Duration::from_secs(2)).len(), 1);
    assert_eq!(store.refused(), 0);
}

#[test]
fn retained_messages_survive_a_reopen_with_their_properties_and_clears() {
    let (_dir, path) = database();
    let now = Instant::now();
    {
        let store = RetainStore::open(crate::store::open(&path).unwrap(), ROOMY).unwrap();
        let mut with_props = retain("p/1", "props");
        with_props.publish.properties = Some(PublishProperties {
            content_type: Some("text/plain".into()),
            topic_alias: std::num::NonZeroU16::new(3),
            user_properties: vec![("k".into(), "v".into())],
            ..PublishProperties::default()
        });
        store.set_now("p/1", with_props, None, now);
        store.set_now("p/2", retain("p/2", "gone"), None, now);
        store.set_now("p/2", retain("p/2", ""), None, now);
        store.set_now("p/3", retain("p/3", "expiring"), Some(Duration::from_secs(3600)), now);
        store.close();
    }
    let store = RetainStore::open(crate::store::open(&path).unwrap(), ROOMY).unwrap();
    let found = store.get_now("p/#", Instant::now());
    assert_eq!(payloads(&found), vec![Bytes::from("props"), Bytes::from("expiring")]);
    let properties = found[0].1.publish.properties.clone().unwrap();
    assert_eq!(properties.content_type.as_deref(), Some("text/plain"));
    assert_eq!(properties.user_properties, vec![("k".into(), "v".into())]);
    assert_eq!(properties.topic_alias, None, "a topic alias belongs to the publisher's connection");
    assert_eq!(found[0].1.publish.qos, QoS::AtLeastOnce);
}

#[test]
fn expired_and_unreadable_rows_are_not_served_after_a_restart() {
    let (_dir, path) = database();
    let conn = crate::store::open(&path).unwrap();
    let past = now_unix() - 10;
    conn.execute(
        "INSERT INTO retained (topic, payload, qos, publisher, properties, expires_at) VALUES ('e', x'31', 1, 'd', NULL, ?1)",
        [past],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO retained (topic, payload, qos, publisher, properties, expires_at) VALUES ('bad', x'31', 7, 'd', NULL, NULL)",
        [],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO retained (topic, payload, qos, publisher, properties, expires_at) VALUES ('ok', x'31', 0, 'd', NULL, NULL)",
        [],
    )
    .unwrap();
    let store = RetainStore::open(conn, ROOMY).unwrap();
    let now = Instant::now();
    assert!(store.get_now("e", now).is_empty(), "expired while the host was down");
    assert!(store.get_now("bad", now).is_empty(), "QoS 7 is not a message");
    assert_eq!(store.get_now("ok", now).len(), 1);
    assert_eq!(store.refused(), 1, "the unreadable row is counted");
}
