//! The sync actor against fake peers: what it subscribes to, and a hostile cloud announcing
//! endless shadows, announcements stale, fresh or garbled.

use serde_json::json;

use super::records::SyncRecord;
use super::*;
use crate::fakes::{fake, sink};
use crate::flow::Credit;
use crate::shadow::document::ShadowError;
use crate::shadow::{ShadowOperation, ShadowReply};
use crate::upstream::{RequestUpstream, SubscribeUpstream, UpstreamMessage, UpstreamStatus};

fn sync_with_fakes(dir: &std::path::Path) -> (Addr<ShadowSync>, crate::fakes::Seen<SubscribeUpstream>) {
    let fakes = fakes(dir, "disconnected", 0);
    (fakes.sync, fakes.subscribed)
}

/// A sync actor over fake peers, and what they were sent.
struct Fakes {
    sync: Addr<ShadowSync>,
    subscribed: crate::fakes::Seen<SubscribeUpstream>,
    /// Requests sent upstream.
    requested: crate::fakes::Seen<RequestUpstream>,
    /// Requests to the local shadow manager.
    asked_locally: crate::fakes::Seen<ShadowRequest>,
}

/// Fakes with the upstream in `upstream_state`. Connected, the cloud answers every `get` with
/// an empty shadow at version 5 and the local side holds an empty shadow; otherwise every
/// request upstream is refused (not connected) and the local side has no shadow. The manager
/// lists `local_shadows` shadows (`T0`, `T1`, ...) for a full sync.
fn fakes(dir: &std::path::Path, upstream_state: &'static str, local_shadows: usize) -> Fakes {
    let records = SyncRecords::open(&dir.join("turf.db")).unwrap();
    let connected = upstream_state == "connected";
    let (local, asked_locally) = fake::<ShadowRequest>(move |request| match (&request.operation, connected) {
        (ShadowOperation::Get, true) => Ok(ShadowReply::Document { document: json!({"state": {}, "version": 1}) }),
        (ShadowOperation::Update { .. }, true) => Ok(ShadowReply::Document { document: json!({"version": 2}) }),
        _ => Err(ShadowError::not_found("")),
    });
    let list_local =
        fake::<ListShadows>(move |_| Ok((0..local_shadows).map(|n| (format!("T{n}"), String::new(), 1)).collect())).0;
    let bus = BusHandle {
        subscribe: fake(|_| Ok(())).0,
        unsubscribe: fake(|_| true).0,
        unsubscribe_all: sink().0,
        publish: fake(|_| Ok(())).0,
    };
    let (subscribe, subscribed) = fake::<SubscribeUpstream>(|_| Ok(()));
    let answers: Arc<Mutex<Option<Recipient<UpstreamMessage>>>> = Arc::default();
    let answering = Arc::clone(&answers);
    let (request, requested) = fake::<RequestUpstream>(move |request| {
        let answer_to = answering.lock().unwrap().clone().filter(|_| connected && request.topic.ends_with("/get"));
        let Some(answer_to) = answer_to else { return Err(crate::upstream::UpstreamError::NotConnected) };
        let token = serde_json::from_slice::<serde_json::Value>(&request.payload).unwrap()["clientToken"].clone();
        answer_to.do_send(from_cloud(
            format!("{}/accepted", request.topic),
            json!({"state": {}, "version": 5, "clientToken": token}),
        ));
        Ok(())
    });
    let status =
        move |_: &_| UpstreamStatus { state: upstream_state.into(), since: Some(1), ..UpstreamStatus::default() };
    let upstream = UpstreamHandle {
        request,
        publish: fake(|_| Ok(())).0,
        subscribe,
        unsubscribe: fake(|_| true).0,
        status: fake(status).0,
        stop: sink().0,
        configured: true,
    };
    let sync = ShadowSync::new("Core".into(), records, local, list_local, bus, upstream).start();
    *answers.lock().unwrap() = Some(sync.clone().recipient());
    Fakes { sync, subscribed, requested, asked_locally }
}

/// Waits (2 s at most) until `seen` holds a message `matching`; whether one came.
async fn seen_within<M>(seen: &crate::fakes::Seen<M>, matching: impl Fn(&M) -> bool) -> bool {
    for _ in 0..100 {
        if seen.take().iter().any(&matching) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    false
}

/// A message from the upstream broker on `topic`.
fn from_cloud(topic: String, payload: serde_json::Value) -> UpstreamMessage {
    UpstreamMessage { topic, payload: payload.to_string().into(), properties: None, credit: Credit::none() }
}

/// The cloud announces that `thing`'s classic shadow now has `state` (an `update/documents`).
fn announce(sync: &Addr<ShadowSync>, thing: &str, state: serde_json::Value) {
    announce_version(sync, thing, state, 3);
}

fn announce_version(sync: &Addr<ShadowSync>, thing: &str, state: serde_json::Value, version: u64) {
    let payload = json!({"current": {"state": state, "version": version}});
    sync.do_send(from_cloud(format!("$aws/things/{thing}/shadow/update/documents"), payload));
}

#[actix_rt::test]
async fn a_cloud_announcing_endless_shadows_fills_a_bounded_queue_and_the_rest_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (sync, subscribed) = sync_with_fakes(dir.path());
    // maxShadows above the queue's bound, so the queue is what stops them.
    let config = json!({"synchronize": {"shadowDocuments": [{"thingNamePattern": "*"}], "maxShadows": 100_000}});
    sync.send(ConfigureSync(config)).await.unwrap().unwrap();
    let extra = 50;
    for n in 0..MAX_QUEUED + extra {
        announce(&sync, &format!("T{n}"), json!({"reported": {"n": n}}));
    }
    let summary = sync.send(GetSyncSummary).await.unwrap();
    assert_eq!(summary.queued, MAX_QUEUED);
    assert_eq!(summary.counts.dropped, extra as u64);
    assert!(!summary.connected, "nothing runs while the upstream is down");
    let filters: Vec<String> = subscribed.take().into_iter().map(|s| s.filter).collect();
    assert_eq!(filters, ["$aws/things/+/shadow/#"], "a pattern subscribes to every thing's shadow topics");
}

#[actix_rt::test]
async fn a_bad_section_names_its_path_and_an_empty_one_turns_sync_off() {
    let dir = tempfile::tempdir().unwrap();
    let (sync, _) = sync_with_fakes(dir.path());
    let bad = json!({"synchronize": {"shadowDocuments": [{"thingName": "a/b"}]}});
    let error = sync.send(ConfigureSync(bad)).await.unwrap().unwrap_err();
    assert!(error.contains("synchronize.shadowDocuments[0].thingName"), "{error}");
    sync.send(ConfigureSync(json!({}))).await.unwrap().unwrap();
    assert!(!sync.send(GetSyncSummary).await.unwrap().enabled);
}

#[actix_rt::test]
async fn past_max_shadows_a_shadow_the_cloud_announces_is_left_out_but_a_tracked_one_still_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let records = SyncRecords::open(&dir.path().join("turf.db")).unwrap();
    records.put(&SyncRecord::new("Known1", "")).unwrap();
    records.put(&SyncRecord::new("Known2", "")).unwrap();
    let (sync, _) = sync_with_fakes(dir.path());
    let config = json!({"synchronize": {"shadowDocuments": [{"thingNamePattern": "*"}], "maxShadows": 2}});
    sync.send(ConfigureSync(config)).await.unwrap().unwrap();
    for thing in ["Stranger", "Known1"] {
        announce(&sync, thing, json!({"desired": {"on": true}}));
    }
    let summary = sync.send(GetSyncSummary).await.unwrap();
    assert_eq!(summary.counts.over_limit, 1, "the stranger is left out");
    assert_eq!(summary.queued, 1, "a shadow sync already keeps is synced");
}

#[actix_rt::test]
async fn shadows_admitted_and_not_yet_recorded_count_against_max_shadows() {
    let dir = tempfile::tempdir().unwrap();
    let (sync, _) = sync_with_fakes(dir.path());
    let config = json!({"synchronize": {"shadowDocuments": [{"thingNamePattern": "*"}], "maxShadows": 3}});
    sync.send(ConfigureSync(config)).await.unwrap().unwrap();
    for n in 0..10 {
        announce(&sync, &format!("T{n}"), json!({"reported": {"n": n}}));
    }
    announce(&sync, "T0", json!({"reported": {"n": "again"}}));
    let summary = sync.send(GetSyncSummary).await.unwrap();
    assert_eq!(summary.queued, 3, "a burst of announcements cannot pass maxShadows before any is recorded");
    assert_eq!(summary.counts.over_limit, 7, "an admitted shadow announced again is not counted");
}

#[actix_rt::test]
async fn a_cloud_announcement_older_than_the_last_sync_is_read_again_not_believed() {
    let dir = tempfile::tempdir().unwrap();
    let records = SyncRecords::open(&dir.path().join("turf.db")).unwrap();
    let synced = SyncRecord {
        base: Some(merge::SyncState::default()),
        local_version: 1,
        cloud_version: 5,
        ..SyncRecord::new("Lamp", "")
    };
    records.put(&synced).unwrap();
    let fakes = fakes(dir.path(), "connected", 0);
    let config = json!({"synchronize": {"shadowDocuments": [{"thingName": "Lamp"}]}});
    fakes.sync.send(ConfigureSync(config)).await.unwrap().unwrap();
    let is_get = |r: &RequestUpstream| r.topic == "$aws/things/Lamp/shadow/get";
    assert!(seen_within(&fakes.requested, is_get).await, "the full sync at connect reads the cloud");
    let sync = &fakes.sync;
    let synced = |n| move || async move { sync.send(GetSyncSummary).await.unwrap().counts.synced >= n };
    wait_for(synced(1)).await;

    // A duplicate or overtaken announcement (version 3, the record is at 5): the cloud is read.
    announce_version(&fakes.sync, "Lamp", json!({"desired": {"stale": true}}), 3);
    assert!(seen_within(&fakes.requested, is_get).await, "a stale announcement is not believed");
    wait_for(synced(2)).await;
    // A newer one is the cloud's side as it stands: no read, straight to the local side.
    fakes.asked_locally.take();
    announce_version(&fakes.sync, "Lamp", json!({"desired": {"fresh": true}}), 9);
    assert!(seen_within(&fakes.asked_locally, |r| r.operation == ShadowOperation::Get).await);
    wait_for(synced(3)).await;
    assert!(!fakes.requested.take().iter().any(is_get), "a fresh announcement needs no read");
}

#[actix_rt::test]
async fn a_garbled_announcement_is_no_change_and_an_untracked_delete_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let fakes = fakes(dir.path(), "connected", 0);
    let config = json!({"synchronize": {"shadowDocuments": [{"thingNamePattern": "*"}]}});
    fakes.sync.send(ConfigureSync(config)).await.unwrap().unwrap();
    wait_for(|| async { fakes.sync.send(GetSyncSummary).await.unwrap().connected }).await;
    for current in [json!({"version": 99}), json!({"state": {"desired": "x"}, "version": 99}), json!("garbage")] {
        fakes
            .sync
            .do_send(from_cloud("$aws/things/Lamp/shadow/update/documents".into(), json!({ "current": current })));
    }
    fakes.sync.do_send(from_cloud("$aws/things/Stranger/shadow/delete/accepted".into(), json!({"version": 3})));
    let summary = fakes.sync.send(GetSyncSummary).await.unwrap();
    assert_eq!(summary.queued, 0, "nothing queued: {summary:?}");
    assert!(fakes.requested.take().is_empty() && fakes.asked_locally.take().is_empty(), "nothing read");
}

/// Waits (5 s at most) until `condition` holds.
async fn wait_for<F: std::future::Future<Output = bool>>(condition: impl Fn() -> F) {
    for _ in 0..250 {
        if condition().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("timed out");
}

#[actix_rt::test]
async fn a_full_sync_of_more_shadows_than_the_queue_holds_drops_none_and_leaves_room_for_changes() {
    let dir = tempfile::tempdir().unwrap();
    let many = MAX_QUEUED + MAX_QUEUED / 2;
    let fakes = fakes(dir.path(), "connected", many);
    let config = json!({"synchronize": {"shadowDocuments": [{"thingNamePattern": "*"}]}});
    fakes.sync.send(ConfigureSync(config)).await.unwrap().unwrap();
    let sync = &fakes.sync;
    wait_for(|| async move { sync.send(GetSyncSummary).await.unwrap().queued > MAX_QUEUED }).await;
    // Changes still find room in the queue while the backlog waits.
    for n in 0..100 {
        announce_version(sync, &format!("Changed{n}"), json!({"desired": {"n": n}}), 2);
    }
    let summary = sync.send(GetSyncSummary).await.unwrap();
    assert_eq!(summary.counts.dropped, 0, "{summary:?}");
    assert_eq!(summary.counts.over_limit, 0, "{summary:?}");
}

#[actix_rt::test]
async fn a_shadow_no_longer_selected_leaves_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let (sync, _) = sync_with_fakes(dir.path());
    let everything = json!({"synchronize": {"shadowDocuments": [{"thingNamePattern": "*"}]}});
    sync.send(ConfigureSync(everything)).await.unwrap().unwrap();
    for thing in ["Lamp1", "Lamp2", "Fan"] {
        announce(&sync, thing, json!({"desired": {"on": true}}));
    }
    assert_eq!(sync.send(GetSyncSummary).await.unwrap().queued, 3);
    let lamps = json!({"synchronize": {"shadowDocuments": [{"thingNamePattern": "Lamp*"}]}});
    sync.send(ConfigureSync(lamps)).await.unwrap().unwrap();
    assert_eq!(sync.send(GetSyncSummary).await.unwrap().queued, 2, "the fan is no longer synced");
}
