//! The sync actor against fake peers: what it subscribes to, and a hostile cloud announcing
//! endless shadows.

use serde_json::json;

use super::*;
use crate::fakes::{fake, sink};
use crate::flow::Credit;
use crate::shadow::document::ShadowError;
use crate::upstream::{SubscribeUpstream, UpstreamMessage, UpstreamStatus};

fn sync_with_fakes(dir: &std::path::Path) -> (Addr<ShadowSync>, crate::fakes::Seen<SubscribeUpstream>) {
    let records = SyncRecords::open(&dir.join("turf.db")).unwrap();
    let local = fake::<ShadowRequest>(|_| Err(ShadowError::not_found(""))).0;
    let list_local = fake::<ListShadows>(|_| Ok(Vec::new())).0;
    let bus = BusHandle {
        subscribe: fake(|_| Ok(())).0,
        unsubscribe: fake(|_| true).0,
        unsubscribe_all: sink().0,
        publish: fake(|_| Ok(())).0,
    };
    let (subscribe, subscribed) = fake::<SubscribeUpstream>(|_| Ok(()));
    let upstream = UpstreamHandle {
        request: fake(|_| Err(crate::upstream::UpstreamError::NotConnected)).0,
        publish: fake(|_| Ok(())).0,
        subscribe,
        unsubscribe: fake(|_| true).0,
        status: fake(|_| UpstreamStatus { state: "disconnected".into(), ..UpstreamStatus::default() }).0,
        stop: sink().0,
        configured: true,
    };
    let sync = ShadowSync::new("Core".into(), records, local, list_local, bus, upstream).start();
    (sync, subscribed)
}

/// The cloud announces that `thing`'s classic shadow now has `state` (an `update/documents`).
fn announce(sync: &Addr<ShadowSync>, thing: &str, state: serde_json::Value) {
    let payload = json!({"current": {"state": state, "version": 3}});
    sync.do_send(UpstreamMessage {
        topic: format!("$aws/things/{thing}/shadow/update/documents"),
        payload: payload.to_string().into(),
        properties: None,
        credit: Credit::none(),
    });
}

#[actix_rt::test]
async fn a_cloud_announcing_endless_shadows_fills_a_bounded_queue_and_the_rest_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (sync, subscribed) = sync_with_fakes(dir.path());
    let config = json!({"synchronize": {"shadowDocuments": [{"thingNamePattern": "*"}]}});
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
