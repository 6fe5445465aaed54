//! The WIT host functions called directly, without WebAssembly: each import checks the
//! component's `accessControl` first, sends the right request to the right service (fakes here)
//! and turns the service's answer or refusal into the guest's `error`.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::components::access::AccessControl;
use crate::components::bindings::turf::host::types::Error;
use crate::components::bindings::turf::host::{config, pubsub, shadow};
use crate::components::budget::Usage;
use crate::components::instance::{HostSetup, HostState, KillSwitch};
use crate::components::limits::ComponentLimits;
use crate::components::log::ComponentLog;
use crate::components::{ConfigUpdateError, HostServices, UpdateConfiguration};
use crate::fakes::{Seen, fake, sink};
use crate::pubsub::{BusHandle, Publish, Subscribe};
use crate::shadow::document::ShadowError;
use crate::shadow::{ShadowHandle, ShadowOperation, ShadowReply, ShadowRequest};
use crate::upstream::{PublishUpstream, UpstreamError, UpstreamHandle};

const NAME: &str = "com.example.Probe";

/// What the fakes behind one component's imports saw.
struct Sent {
    publishes: Seen<Publish>,
    subscribes: Seen<Subscribe>,
    shadows: Seen<ShadowRequest>,
    updates: Seen<UpdateConfiguration>,
    upstream: Seen<PublishUpstream>,
}

/// Fakes for every service; the config store refuses updates to keys under `refuse`, the shadow
/// manager answers 404 for thing `Missing`, and the upstream has no broker.
fn services() -> (HostServices, Sent) {
    let (publish, publishes) = fake::<Publish>(|_| Ok(()));
    let (subscribe, subscribes) = fake::<Subscribe>(|_| Ok(()));
    let (requests, shadows) = fake::<ShadowRequest>(|request| match request.thing.as_str() {
        "Missing" => {
            Err(ShadowError { code: 404, message: "No shadow exists with name: 'Missing'".into(), client_token: None })
        }
        _ => Ok(ShadowReply::Document { document: json!({"state": {"reported": {"on": true}}, "version": 3}) }),
    });
    let (config_store, updates) = fake::<UpdateConfiguration>(|update| match update.key_path.first() {
        Some(first) if first == "refuse" => Err(ConfigUpdateError::NotDeployed(update.component.clone())),
        _ => Ok(()),
    });
    let (upstream_publish, upstream) = fake::<PublishUpstream>(|_| Err(UpstreamError::NotConfigured));
    let services = HostServices {
        bus: BusHandle { subscribe, unsubscribe: fake(|_| true).0, unsubscribe_all: sink().0, publish },
        shadows: ShadowHandle {
            requests,
            configure: sink().0,
            counts: fake(|_| Default::default()).0,
            configure_sync: fake(|_| Ok(())).0,
            sync_status: fake(|_| Err("no sync in this test".to_owned())).0,
            sync_summary: fake(|_| Default::default()).0,
        },
        upstream: UpstreamHandle {
            request: fake(|_| Err(crate::upstream::UpstreamError::NotConnected)).0,
            publish: upstream_publish,
            subscribe: fake(|_| Err(UpstreamError::NotConfigured)).0,
            unsubscribe: fake(|_| false).0,
            status: fake(|_| Default::default()).0,
            stop: sink().0,
            configured: false,
        },
        config_store,
        status: sink().0,
    };
    (services, Sent { publishes, subscribes, shadows, updates, upstream })
}

/// A component's host state with `access` and configuration `config`, over fake services.
fn state(dir: &tempfile::TempDir, access: Value, config: Value) -> (HostState, Sent) {
    let (services, sent) = services();
    let access = AccessControl::from_config(&json!({ "accessControl": access })).unwrap();
    let configs = [(NAME.to_owned(), config)].into_iter().collect();
    let setup = HostSetup {
        name: NAME.to_owned(),
        log: ComponentLog::open(NAME, &dir.path().join("probe.log")).unwrap(),
        access: Arc::new(access),
        configs: Arc::new(configs),
        services,
        inbox: sink().0,
        upstream_inbox: sink().0,
        timers: sink().0,
        limits: ComponentLimits::default(),
        usage: Arc::new(Usage::default()),
        kill: KillSwitch::default().watch(),
        generation: 1,
    };
    (HostState::new(setup), sent)
}

fn policy(service: &str, operations: &[&str], resources: &[&str]) -> Value {
    json!({ service: { "test:1": { "operations": operations, "resources": resources } } })
}

#[actix_rt::test]
async fn pubsub_checks_access_then_publishes_as_the_component() {
    let dir = tempfile::tempdir().unwrap();
    let access = policy("aws.greengrass.ipc.pubsub", &["aws.greengrass#PublishToTopic"], &["lights/*"]);
    let (mut host, sent) = state(&dir, access, json!({}));

    pubsub::Host::publish(&mut host, "lights/1".into(), b"on".to_vec()).await.unwrap();
    let published = sent.publishes.take();
    assert_eq!(published.len(), 1);
    assert_eq!((published[0].publisher.as_str(), published[0].topic.as_str()), (NAME, "lights/1"));
    assert_eq!(&published[0].payload[..], b"on");

    let denied = pubsub::Host::publish(&mut host, "doors/1".into(), b"open".to_vec()).await;
    assert!(matches!(denied, Err(Error::Unauthorized(_))), "{denied:?}");
    let wildcard = pubsub::Host::publish(&mut host, "lights/+".into(), Vec::new()).await;
    assert!(matches!(wildcard, Err(Error::InvalidArguments(_))), "{wildcard:?}");
    let subscribe = pubsub::Host::subscribe(&mut host, "lights/#".into()).await;
    assert!(matches!(subscribe, Err(Error::Unauthorized(_))), "publishing rights do not let it subscribe");
    assert_eq!(sent.publishes.len() + sent.subscribes.len(), 0, "refused calls reach no service");

    let upstream = pubsub::Host::publish_to_iotcore(&mut host, "lights/1".into(), Vec::new()).await;
    assert!(matches!(upstream, Err(Error::Unauthorized(_))), "{upstream:?}");
    assert_eq!(sent.upstream.len(), 0);
}

#[actix_rt::test]
async fn the_upstreams_refusal_reaches_the_guest_as_a_service_error() {
    let dir = tempfile::tempdir().unwrap();
    let access = policy("aws.greengrass.ipc.mqttproxy", &["aws.greengrass#PublishToIoTCore"], &["*"]);
    let (mut host, sent) = state(&dir, access, json!({}));
    let refused = pubsub::Host::publish_to_iotcore(&mut host, "lights/1".into(), Vec::new()).await;
    match refused {
        Err(Error::ServiceError(text)) => assert!(text.contains("no upstream broker is configured"), "{text}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(sent.upstream.take()[0].topic, "lights/1");
}

#[actix_rt::test]
async fn shadow_calls_are_rate_limited_requests_and_aws_codes_become_guest_errors() {
    let dir = tempfile::tempdir().unwrap();
    let access = policy("aws.greengrass.ShadowManager", &["aws.greengrass#GetThingShadow"], &["$aws/things/*/shadow"]);
    let (mut host, sent) = state(&dir, access, json!({}));

    let document = shadow::Host::get_thing_shadow(&mut host, "Lamp".into(), String::new()).await.unwrap();
    let document: Value = serde_json::from_slice(&document).unwrap();
    assert_eq!(document["version"], 3);
    let requests = sent.shadows.take();
    assert_eq!((requests[0].thing.as_str(), requests[0].name.as_str()), ("Lamp", ""));
    assert_eq!(requests[0].operation, ShadowOperation::Get);
    assert!(requests[0].rate_limited, "a component's request counts against rateLimits");

    let missing = shadow::Host::get_thing_shadow(&mut host, "Missing".into(), String::new()).await;
    assert!(matches!(missing, Err(Error::ResourceNotFound(_))), "{missing:?}");
    let named = shadow::Host::get_thing_shadow(&mut host, "Lamp".into(), "config".into()).await;
    assert!(matches!(named, Err(Error::Unauthorized(_))), "the policy names the classic shadow only");
    let update = shadow::Host::update_thing_shadow(&mut host, "Lamp".into(), String::new(), b"{}".to_vec()).await;
    assert!(matches!(update, Err(Error::Unauthorized(_))), "{update:?}");
    let bad = shadow::Host::get_thing_shadow(&mut host, "bad/thing".into(), String::new()).await;
    assert!(matches!(bad, Err(Error::InvalidArguments(_))), "{bad:?}");
    assert_eq!(sent.shadows.len(), 1, "only the allowed, valid request reached the manager");
}

#[actix_rt::test]
async fn configuration_reads_own_keys_and_updates_go_to_the_store_unless_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut host, sent) = state(&dir, json!({}), json!({"color": "red", "lights": {"count": 2}}));

    let color = config::Host::get_configuration(&mut host, None, vec!["color".into()]).await.unwrap();
    assert_eq!(serde_json::from_str::<Value>(&color).unwrap(), json!({"color": "red"}));
    let absent = config::Host::get_configuration(&mut host, None, vec!["nope".into()]).await;
    assert!(matches!(absent, Err(Error::ResourceNotFound(_))), "{absent:?}");

    config::Host::update_configuration(&mut host, vec!["lights".into()], r#"{"count": 3}"#.into()).await.unwrap();
    let updates = sent.updates.take();
    assert_eq!((updates[0].component.as_str(), updates[0].value.clone()), (NAME, json!({"count": 3})));
    let merged = config::Host::get_configuration(&mut host, None, vec!["lights".into()]).await.unwrap();
    assert_eq!(serde_json::from_str::<Value>(&merged).unwrap(), json!({"count": 3}), "read back at once");

    let refused = config::Host::update_configuration(&mut host, vec!["refuse".into()], "{}".into()).await;
    assert!(matches!(refused, Err(Error::InvalidArguments(ref t)) if t.contains("is not deployed")), "{refused:?}");
    let access = config::Host::update_configuration(&mut host, Vec::new(), r#"{"accessControl": {}}"#.into()).await;
    assert!(matches!(access, Err(Error::InvalidArguments(_))), "{access:?}");
    let not_json = config::Host::update_configuration(&mut host, Vec::new(), "{".into()).await;
    assert!(matches!(not_json, Err(Error::InvalidArguments(_))), "{not_json:?}");
    assert_eq!(sent.updates.len(), 1, "refused before the store: accessControl and malformed JSON");
}
