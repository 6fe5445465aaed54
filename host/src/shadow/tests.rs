//! The shadow manager against a stand-in bus: unreadable documents, versioned deletes, page tokens.

use super::*;
use crate::pubsub::PubsubError;

/// A stand-in for the bus that keeps what the manager publishes.
#[derive(Default)]
struct Bus(Vec<String>);

impl Actor for Bus {
    type Context = Context<Self>;
}

impl Handler<Publish> for Bus {
    type Result = Result<(), PubsubError>;

    fn handle(&mut self, msg: Publish, _ctx: &mut Self::Context) -> Self::Result {
        self.0.push(msg.topic);
        Ok(())
    }
}

impl Handler<Subscribe> for Bus {
    type Result = Result<(), PubsubError>;

    fn handle(&mut self, _msg: Subscribe, _ctx: &mut Self::Context) -> Self::Result {
        Ok(())
    }
}

#[actix_rt::test]
async fn an_unreadable_shadow_answers_500_to_an_update_and_is_not_overwritten_but_can_be_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let store = ShadowStore::open(&db).unwrap();
    let id = ShadowId::new("Lamp", "").unwrap();
    let good = br#"{"state": {"reported": {"color": "red"}}}"#;
    let bus = Bus::default().start();
    let mut manager = ShadowManager::new(store, bus.clone().recipient(), bus.recipient());
    manager.perform(&id, Operation::Update, good, false).unwrap();
    let rusqlite_conn = crate::store::open(&db).unwrap();
    rusqlite_conn.execute("UPDATE shadows SET document = '{torn' WHERE thing = 'Lamp'", []).unwrap();

    let update = manager.perform(&id, Operation::Update, good, false).unwrap_err();
    assert_eq!(update.code, 500, "{update:?}");
    let get = manager.perform(&id, Operation::Get, b"{}", false).unwrap_err();
    assert_eq!(get.code, 500, "an unreadable shadow is not reported absent");
    let stored: String =
        rusqlite_conn.query_row("SELECT document FROM shadows WHERE thing = 'Lamp'", [], |r| r.get(0)).unwrap();
    assert_eq!(stored, "{torn", "the update did not restart the shadow over it");

    let deleted = manager.perform(&id, Operation::Delete, b"{}", false).unwrap();
    assert_eq!(deleted["version"], 1, "the deleted version comes from the row");
    let after = manager.perform(&id, Operation::Get, b"{}", false).unwrap_err();
    assert_eq!(after.code, 404);
}

#[actix_rt::test]
async fn a_delete_expecting_a_version_refuses_any_other_with_409() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::default().start();
    let store = ShadowStore::open(&dir.path().join("t.db")).unwrap();
    let mut manager = ShadowManager::new(store, bus.clone().recipient(), bus.recipient());
    let delete = |expected_version| ShadowRequest {
        thing: "Lamp".into(),
        name: String::new(),
        operation: ShadowOperation::Delete { expected_version },
        rate_limited: false,
    };
    let update = ShadowOperation::Update { payload: r#"{"state": {"reported": {"on": true}}}"#.into() };
    let request = ShadowRequest { operation: update, ..delete(None) };
    manager.request(request.clone()).unwrap();
    manager.request(request).unwrap();
    for stale in [Some(1), Some(3)] {
        assert_eq!(manager.request(delete(stale)).unwrap_err().code, 409, "{stale:?}");
    }
    manager.request(delete(Some(2))).unwrap();
    assert_eq!(manager.request(delete(Some(2))).unwrap_err().code, 409, "gone: no version matches");
}

#[test]
fn page_tokens_round_trip_and_garbage_is_refused() {
    assert_eq!(decode_token(&encode_token(50)), Some(50));
    assert_eq!(decode_token("!!!"), None);
    assert_eq!(decode_token(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("offset:x")), None);
    assert_eq!(token_of(br#"{"clientToken": "abc"}"#), Some("abc".to_owned()));
    assert_eq!(token_of(b"not json"), None);
}
