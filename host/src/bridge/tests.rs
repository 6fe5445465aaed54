//! The bridge actor against fake peers: routes become taps and subscriptions, messages follow
//! them, and each relay is counted.

use bytes::Bytes;
use serde_json::json;

use super::*;
use crate::broker::{GetBrokerStatus, ListClients, StopBroker};
use crate::devices::{AuthChanged, TlsChanged};
use crate::fakes::{Seen, fake, sink};
use crate::upstream::{GetUpstreamStatus, StopUpstream};

/// What the bridge sent to its (fake) peers.
struct Sent {
    taps: Seen<SetTaps>,
    to_devices: Seen<PublishToDevices>,
    subscribes: Seen<Subscribe>,
    publishes: Seen<Publish>,
    upstream: Seen<PublishUpstream>,
}

fn bridge(upstream_configured: bool) -> (Addr<Bridge>, Sent) {
    let (taps, taps_seen) = sink::<SetTaps>();
    let (to_devices, to_devices_seen) = sink::<PublishToDevices>();
    let broker = BrokerHandle {
        auth: sink::<AuthChanged>().0,
        tls: sink::<TlsChanged>().0,
        taps,
        to_devices,
        status: fake::<GetBrokerStatus>(|_| Default::default()).0,
        clients: fake::<ListClients>(|_| Default::default()).0,
        stop: sink::<StopBroker>().0,
    };
    let (subscribe, subscribes) = fake::<Subscribe>(|_| Ok(()));
    let (publish, publishes) = fake::<Publish>(|_| Ok(()));
    let bus = BusHandle { subscribe, unsubscribe: fake(|_| true).0, unsubscribe_all: sink().0, publish };
    let (upstream_publish, upstream_seen) = fake::<PublishUpstream>(|_| Ok(()));
    let upstream = UpstreamHandle {
        request: fake(|_| Err(crate::upstream::UpstreamError::NotConnected)).0,
        publish: upstream_publish,
        subscribe: fake::<SubscribeUpstream>(|_| Ok(())).0,
        unsubscribe: fake::<UnsubscribeUpstream>(|_| true).0,
        status: fake::<GetUpstreamStatus>(|_| Default::default()).0,
        stop: sink::<StopUpstream>().0,
        configured: upstream_configured,
    };
    let sent = Sent { taps: taps_seen, to_devices: to_devices_seen, subscribes, publishes, upstream: upstream_seen };
    (Bridge::new(broker, bus, upstream).start(), sent)
}

fn device_message(topic: &str) -> DeviceMessage {
    DeviceMessage {
        topic: topic.into(),
        payload: Bytes::from_static(b"hi"),
        qos: 1,
        retain: true,
        client_id: "MyClientDevice1".into(),
        properties: None,
        credit: Credit::none(),
        span: tracing::Span::none(),
    }
}

/// The tutorial's step-5 routes.
fn tutorial_routes() -> ConfigureBridge {
    let config = json!({"mqttTopicMapping": {
        "HelloWorldIotCoreMapping": {"topic": "clients/+/hello/world", "source": "LocalMqtt", "target": "IotCore"},
        "HelloWorldPubsubMapping": {"topic": "clients/+/hello/world", "source": "LocalMqtt", "target": "Pubsub"},
        "ShadowsPubsubToLocalMqtt": {"topic": "$aws/things/+/shadow/#", "source": "Pubsub", "target": "LocalMqtt"}
    }});
    ConfigureBridge(BridgeConfig::from_json(&config).unwrap())
}

#[actix_rt::test]
async fn routes_become_taps_and_subscriptions_and_messages_follow_them() {
    let (bridge, sent) = bridge(true);
    bridge.send(tutorial_routes()).await.unwrap();
    let taps = sent.taps.take();
    assert_eq!(taps.last().map(|t| t.filters.clone()), Some(vec!["clients/+/hello/world".to_owned()]));
    let subscribes = sent.subscribes.take();
    assert_eq!(subscribes.len(), 1);
    assert_eq!(subscribes[0].filter, "$aws/things/+/shadow/#");
    assert_eq!(subscribes[0].mode, Some(ReceiveMode::FromOthers), "it never hears its own publishes");

    bridge.send(device_message("clients/MyClientDevice1/hello/world")).await.unwrap();
    let published = sent.publishes.take();
    assert_eq!(published.len(), 1);
    assert_eq!(
        (published[0].publisher.as_str(), published[0].topic.as_str()),
        (COMPONENT_NAME, "clients/MyClientDevice1/hello/world")
    );
    let upstream = sent.upstream.take();
    assert_eq!(upstream.len(), 1);
    assert!(!upstream[0].retain, "republished with the retain flag cleared, as Greengrass does");

    bridge.send(device_message("elsewhere")).await.unwrap();
    let answer = PubsubMessage {
        topic: "$aws/things/Lamp/shadow/update/delta".into(),
        payload: Bytes::from_static(b"{}"),
        publisher: "aws.greengrass.ShadowManager".into(),
        credit: Credit::none(),
        span: tracing::Span::none(),
    };
    bridge.send(answer).await.unwrap();
    let to_devices = sent.to_devices.take();
    assert_eq!(to_devices.len(), 1);
    assert_eq!((to_devices[0].topic.as_str(), to_devices[0].qos), ("$aws/things/Lamp/shadow/update/delta", 1));
    assert_eq!(sent.publishes.len() + sent.upstream.len(), 0, "an unrouted topic goes nowhere");
    let counts = bridge.send(GetBridgeCounts).await.unwrap();
    let counted: Vec<(&str, &str, &str, u64)> =
        counts.iter().map(|c| (c.route.as_str(), c.source.as_str(), c.target.as_str(), c.messages)).collect();
    assert_eq!(
        counted,
        vec![
            ("HelloWorldIotCoreMapping", "LocalMqtt", "IotCore", 1),
            ("HelloWorldPubsubMapping", "LocalMqtt", "Pubsub", 1),
            ("ShadowsPubsubToLocalMqtt", "Pubsub", "LocalMqtt", 1),
        ]
    );
}

#[actix_rt::test]
async fn iotcore_routes_stay_inactive_without_an_upstream() {
    let (bridge, sent) = bridge(false);
    bridge.send(tutorial_routes()).await.unwrap();
    bridge.send(device_message("clients/MyClientDevice1/hello/world")).await.unwrap();
    assert_eq!(sent.upstream.len(), 0);
    assert_eq!(sent.publishes.len(), 1, "the pubsub route still works");
    let counts = bridge.send(GetBridgeCounts).await.unwrap();
    let routes: Vec<&str> = counts.iter().map(|c| c.route.as_str()).collect();
    assert_eq!(routes, vec!["HelloWorldPubsubMapping"], "nothing is counted along an inactive route");
}
