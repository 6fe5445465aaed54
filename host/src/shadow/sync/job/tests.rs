//! One sync against fake sides: the cloud's answers handed over the way the upstream does
//! (by client token), a 409 after the local write, answers on the wrong topic.

use std::sync::atomic::AtomicU64;

use serde_json::json;

use super::*;
use crate::fakes::fake;
use crate::shadow::document::ShadowError;

/// The cloud's answer to a request on `topic`: `(accepted, payload)`.
type Script = fn(&str) -> (bool, Value);

/// A [`Cloud`] whose upstream answers each request at once by `script`.
fn scripted_cloud(script: Script) -> Cloud {
    let waiting: Arc<Mutex<HashMap<String, Waiting>>> = Arc::default();
    let answering = Arc::clone(&waiting);
    let publish = fake::<RequestUpstream>(move |request| {
        let body: Value = serde_json::from_slice(&request.payload).unwrap();
        let token = body["clientToken"].as_str().unwrap().to_owned();
        let (accepted, mut payload) = script(&request.topic);
        payload["clientToken"] = json!(token);
        let waiter = answering.lock().unwrap().remove(&token).unwrap();
        waiter.answered.send(Answer { accepted, payload }).unwrap();
        Ok(())
    })
    .0;
    Cloud {
        publish,
        waiting,
        bucket: Arc::new(Mutex::new(TokenBucket::new(1000, Instant::now()))),
        sent: Arc::new(AtomicU64::new(0)),
        next_token: Arc::default(),
        instance: Cloud::new_instance(),
        echoes: Arc::default(),
        local_echoes: Arc::default(),
        local_deletes: Arc::default(),
    }
}

/// A local side at version 2 reporting `a: 2`, that accepts an update as version 3.
fn local_side_at_2() -> Recipient<ShadowRequest> {
    fake::<ShadowRequest>(|request| match &request.operation {
        ShadowOperation::Get => {
            Ok(ShadowReply::Document { document: json!({"state": {"reported": {"a": 2}}, "version": 2}) })
        }
        ShadowOperation::Update { .. } => Ok(ShadowReply::Document { document: json!({"version": 3}) }),
        _ => Err(ShadowError::conflict()),
    })
    .0
}

fn lamp() -> ShadowId {
    ShadowId { thing: "Lamp".into(), name: String::new() }
}

fn record(base: Value) -> SyncRecord {
    SyncRecord {
        base: Some(SyncState::from_json(&base)),
        local_version: 1,
        cloud_version: 4,
        ..SyncRecord::new("Lamp", "")
    }
}

#[actix_rt::test]
async fn a_cloud_conflict_after_the_local_write_keeps_what_was_written() {
    let cloud = scripted_cloud(|topic| match topic.rsplit('/').next() {
        Some("get") => (true, json!({"state": {"desired": {"b": 1}, "reported": {"a": 1}}, "version": 5})),
        _ => (false, json!({"code": 409, "message": "Version conflict"})),
    });
    let result =
        sync(cloud, local_side_at_2(), lamp(), Some(record(json!({"reported": {"a": 1}}))), None, Direction::Both)
            .await;
    let cloud_read = SyncState::from_json(&json!({"desired": {"b": 1}, "reported": {"a": 1}}));
    assert_eq!(
        result,
        Err(Failed {
            failure: Failure::Conflict,
            local_written: Some(Synced { base: Some(cloud_read), local_version: 3, cloud_version: 5 }),
        }),
        "the next merge must see the local side's a: 2 as a local change over the cloud's state"
    );
}

#[actix_rt::test]
async fn an_accepted_get_that_is_no_document_is_refused() {
    let scripts: [Script; 3] = [
        |_| (true, json!({"state": {"reported": {}}})),
        |_| (true, json!({"state": {"desired": "x"}, "version": 3})),
        |_| (true, json!({"state": [], "version": 3})),
    ];
    for (n, script) in scripts.into_iter().enumerate() {
        let result = sync(scripted_cloud(script), local_side_at_2(), lamp(), None, None, Direction::Both).await;
        let refused = matches!(result, Err(Failed { failure: Failure::Refused(_), local_written: None }));
        assert!(refused, "answer {n}: {result:?}");
    }
}

#[actix_rt::test]
async fn an_answer_is_taken_only_on_its_own_shadow_and_operation() {
    let cloud = scripted_cloud(|_| (true, json!({})));
    let (answered, mut answer) = oneshot::channel();
    let waiting = Waiting { shadow: lamp(), operation: Operation::Get, answered };
    cloud.waiting.lock().unwrap().insert("t1".into(), waiting);
    let fan = ShadowId { thing: "Fan".into(), name: String::new() };
    assert!(!cloud.answer("t1", &fan, Operation::Get, true, json!({})), "another shadow's answer");
    assert!(!cloud.answer("t1", &lamp(), Operation::Update, true, json!({})), "another operation's answer");
    assert_eq!(answer.try_recv().unwrap_err(), oneshot::error::TryRecvError::Empty, "still waiting");
    assert!(cloud.answer("t1", &lamp(), Operation::Get, true, json!({"version": 2})), "then its own answer");
    assert_eq!(answer.try_recv().unwrap().payload, json!({"version": 2}));
    let (answered, mut answer) = oneshot::channel();
    cloud.waiting.lock().unwrap().insert("t3".into(), Waiting { shadow: lamp(), operation: Operation::Get, answered });
    assert!(cloud.answer("t3", &lamp(), Operation::Get, true, json!({"version": 1})));
    assert_eq!(answer.try_recv().unwrap().payload, json!({"version": 1}));
}

#[test]
fn client_tokens_carry_this_process_instance() {
    let a = Cloud::new_instance();
    let b = Cloud::new_instance();
    assert_ne!(a, b, "two cores syncing the same shadows never share tokens");
    assert_eq!(a.len(), 12);
}
