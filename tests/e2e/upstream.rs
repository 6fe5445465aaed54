//! The IotCore bridge target against a real second broker (Debian's mosquitto, TLS with client
//! certificates): the tutorial's mapping, messages from the cloud, and the disk spool across an
//! upstream outage, a host restart and a full spool.

use std::time::Duration;

use anyhow::{Context, Result};
use rumqttc::QoS;
use serde_json::json;
use turf_host::deploy::config_update::ConfigUpdate;
use turf_host::deploy::model::{DeploymentRequest, DeploymentState};
use turf_host::upstream::UpstreamStatus;
use turf_tests::{
    Device, HostOptions, Mosquitto, TIMEOUT, TestHost, bridge_update, wait_until, with_timeout, workspace,
};

async fn upstream_status(host: &TestHost) -> Result<UpstreamStatus> {
    Ok(host.client().status().await?.upstream.expect("status without upstream"))
}

async fn wait_for_upstream(host: &TestHost, state: &str) -> Result<()> {
    let what = format!("the upstream to be {state}");
    wait_until(TIMEOUT, &what, || async { upstream_status(host).await.is_ok_and(|s| s.state == state) }).await
}

async fn start(
    cloud: &Mosquitto,
    tweak: impl FnOnce(&mut turf_host::upstream::config::UpstreamConfig),
) -> Result<TestHost> {
    let mut upstream = cloud.upstream();
    tweak(&mut upstream);
    let host = TestHost::start_with(HostOptions { upstream: Some(upstream), ..HostOptions::default() }).await?;
    wait_for_upstream(&host, "connected").await?;
    Ok(host)
}

/// Starts a host connected to `cloud` whose bridge sends devices' `up/#` to the cloud.
async fn start_with_up_route(
    cloud: &Mosquitto,
    tweak: impl FnOnce(&mut turf_host::upstream::config::UpstreamConfig),
) -> Result<TestHost> {
    let host = start(cloud, tweak).await?;
    let record = host.deploy(&bridge_update(&[("Up", "up/#", "LocalMqtt", "IotCore")])).await?;
    assert_eq!(record.state, DeploymentState::Succeeded, "{:?}", record.error);
    Ok(host)
}

/// Publishes `up/1` … `up/n` from a device (QoS 1, so each reached the broker).
async fn publish_numbered(device: &Device, from: u32, to: u32) -> Result<()> {
    for n in from..=to {
        device.client.publish(format!("up/{n}"), QoS::AtLeastOnce, false, n.to_string()).await?;
    }
    Ok(())
}

/// Collects `expected` messages on the observer, then checks nothing else (no duplicate) follows.
async fn receive_exactly(observer: &mut Device, expected: &[u32]) -> Result<()> {
    let last = expected.last().copied().unwrap_or(0).to_string();
    let got = observer.collect_until(Duration::from_secs(30), |p| p.payload == last.as_bytes()).await?;
    let numbers: Vec<u32> = got.iter().map(|p| String::from_utf8_lossy(&p.payload).parse().unwrap()).collect();
    assert_eq!(numbers, expected, "lost, duplicated or out of order");
    let extra = observer.collect_until(Duration::from_millis(500), |_| true).await;
    assert!(extra.is_err(), "a message arrived twice: {extra:?}");
    Ok(())
}

#[actix_rt::test]
async fn the_tutorial_mapping_relays_device_messages_to_the_cloud() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cloud = Mosquitto::start(&dir.path().join("cloud")).await?;
    let mut observer = cloud.observer("cloud-observer").await?;
    observer.subscribe("clients/+/hello/world", QoS::AtLeastOnce).await?;
    let host = start(&cloud, |_| {}).await?;
    let step4 = std::fs::read_to_string(workspace().join("recipes/tutorial/step4-bridge.json"))?;
    let request = DeploymentRequest {
        update_config: turf_host::deploy::config_update::parse_updates(&step4).map_err(anyhow::Error::msg)?,
        ..DeploymentRequest::default()
    };
    assert_eq!(host.deploy(&request).await?.state, DeploymentState::Succeeded);

    let device = Device::plain(&host, "MyClientDevice1").await?;
    let hello = json!({"message": "Hello World!", "sequence": 0}).to_string();
    device.client.publish("clients/MyClientDevice1/hello/world", QoS::AtMostOnce, false, hello.clone()).await?;
    let got = observer.collect_until(TIMEOUT, |_| true).await?;
    assert_eq!(got[0].topic, "clients/MyClientDevice1/hello/world");
    assert_eq!(got[0].payload, hello.as_bytes());
    assert_eq!(got[0].qos, QoS::AtLeastOnce, "the bridge publishes upstream at QoS 1");
    assert!(!got[0].retain);
    // The observer can get the message before the core has processed the broker's PUBACK.
    wait_until(TIMEOUT, "the PUBACK to empty the spool", || async {
        upstream_status(&host).await.is_ok_and(|s| (s.delivered, s.spooled) == (1, 0))
    })
    .await?;
    assert!(upstream_status(&host).await?.endpoint.unwrap().starts_with("mqtts://localhost:"));
    host.shutdown().await
}

#[actix_rt::test]
async fn messages_from_the_cloud_reach_devices_with_the_target_prefix() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cloud = Mosquitto::start(&dir.path().join("cloud")).await?;
    let host = start(&cloud, |_| {}).await?;
    let mut routes = bridge_update(&[("Cloud", "commands/#", "IotCore", "LocalMqtt")]);
    routes.update_config.insert(
        "aws.greengrass.clientdevices.mqtt.Bridge".to_owned(),
        ConfigUpdate {
            merge: Some(json!({"mqttTopicMapping": {"Cloud": {
                "topic": "commands/#", "source": "IotCore", "target": "LocalMqtt", "targetTopicPrefix": "from-cloud/"}}})),
            reset: vec![],
        },
    );
    assert_eq!(host.deploy(&routes).await?.state, DeploymentState::Succeeded);
    wait_until(TIMEOUT, "the upstream subscription", || async {
        upstream_status(&host).await.is_ok_and(|s| s.subscriptions == 1)
    })
    .await?;
    let mut device = Device::plain(&host, "listener").await?;
    device.subscribe("from-cloud/#", QoS::AtLeastOnce).await?;
    let cloud_client = cloud.observer("cloud-sender").await?;
    // The subscription travels to mosquitto asynchronously: send until one arrives.
    let mut got = Vec::new();
    for attempt in 0..50 {
        cloud_client.client.publish("commands/light", QoS::AtLeastOnce, false, format!("on {attempt}")).await?;
        if let Ok(p) = device.collect_until(Duration::from_millis(300), |_| true).await {
            got = p;
            break;
        }
    }
    assert_eq!(got.first().map(|p| p.topic.as_str()), Some("from-cloud/commands/light"), "{}", cloud.log());
    host.shutdown().await
}

#[actix_rt::test]
async fn an_upstream_outage_spools_and_delivers_every_message_once_in_order() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cloud = Mosquitto::start(&dir.path().join("cloud")).await?;
    let mut observer = cloud.observer("observer").await?;
    observer.subscribe("up/#", QoS::AtLeastOnce).await?;
    let host = start_with_up_route(&cloud, |_| {}).await?;
    let device = Device::plain(&host, "sensor").await?;
    publish_numbered(&device, 1, 5).await?;
    receive_exactly(&mut observer, &[1, 2, 3, 4, 5]).await?;
    observer.vanish().await;

    cloud.stop().await?;
    wait_for_upstream(&host, "disconnected").await?;
    publish_numbered(&device, 6, 55).await?;
    wait_until(TIMEOUT, "50 spooled messages", || async {
        upstream_status(&host).await.is_ok_and(|s| s.spooled == 50)
    })
    .await?;
    let status = upstream_status(&host).await?;
    assert!(status.last_error.is_some());

    cloud.restart().await?;
    wait_for_upstream(&host, "connected").await?;
    let mut observer = cloud.observer("observer").await?;
    receive_exactly(&mut observer, &(6..=55).collect::<Vec<_>>()).await.with_context(|| cloud.log())?;
    wait_until(TIMEOUT, "the spool to drain", || async { upstream_status(&host).await.is_ok_and(|s| s.spooled == 0) })
        .await?;
    host.shutdown().await
}

#[actix_rt::test]
async fn a_host_restart_while_the_upstream_is_down_loses_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cloud = Mosquitto::start(&dir.path().join("cloud")).await?;
    let mut observer = cloud.observer("observer").await?;
    observer.subscribe("up/#", QoS::AtLeastOnce).await?;
    observer.vanish().await;
    let upstream = cloud.upstream();
    let host = start_with_up_route(&cloud, |_| {}).await?;
    cloud.stop().await?;
    wait_for_upstream(&host, "disconnected").await?;
    let device = Device::plain(&host, "sensor").await?;
    publish_numbered(&device, 1, 20).await?;
    wait_until(TIMEOUT, "20 spooled messages", || async {
        upstream_status(&host).await.is_ok_and(|s| s.spooled == 20)
    })
    .await?;
    device.vanish().await;

    let (root_dir, root) = (std::sync::Arc::clone(&host.dir), host.root.clone());
    host.shutdown().await?;
    let host = TestHost::start_with(HostOptions {
        root: Some((root_dir, root)),
        auth: None,
        upstream: Some(upstream),
        ..HostOptions::default()
    })
    .await?;
    assert_eq!(upstream_status(&host).await?.spooled, 20, "the spool survived the restart");
    cloud.restart().await?;
    let mut observer = cloud.observer("observer").await?;
    receive_exactly(&mut observer, &(1..=20).collect::<Vec<_>>()).await.with_context(|| cloud.log())?;
    host.shutdown().await
}

#[actix_rt::test]
async fn a_full_spool_drops_the_oldest_and_counts_them() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cloud = Mosquitto::start(&dir.path().join("cloud")).await?;
    let mut observer = cloud.observer("observer").await?;
    observer.subscribe("up/#", QoS::AtLeastOnce).await?;
    observer.vanish().await;
    let host = start_with_up_route(&cloud, |u| u.spool_max_messages = 10).await?;
    cloud.stop().await?;
    wait_for_upstream(&host, "disconnected").await?;
    let device = Device::plain(&host, "sensor").await?;
    publish_numbered(&device, 1, 25).await?;
    wait_until(TIMEOUT, "the spool to fill", || async {
        upstream_status(&host).await.is_ok_and(|s| s.spooled == 10 && s.dropped == 15)
    })
    .await?;
    let status = host.turf_ok(&["status"])?;
    assert!(
        status.contains("disconnected") && status.contains("spool: 10 message(s)") && status.contains("dropped 15"),
        "{status}"
    );
    cloud.restart().await?;
    let mut observer = cloud.observer("observer").await?;
    receive_exactly(&mut observer, &(16..=25).collect::<Vec<_>>()).await.with_context(|| cloud.log())?;
    host.shutdown().await
}

#[actix_rt::test]
async fn components_publish_and_subscribe_upstream_within_their_mqttproxy_policy() -> Result<()> {
    const PROBE: &str = "com.turf.test.Probe";
    let dir = tempfile::tempdir()?;
    let cloud = Mosquitto::start(&dir.path().join("cloud")).await?;
    let mut observer = cloud.observer("observer").await?;
    observer.subscribe("telemetry/#", QoS::AtLeastOnce).await?;
    let host = start(&cloud, |_| {}).await?;
    // Bridge routes between the local bus and the cloud, beside the component's own calls.
    let routes =
        bridge_update(&[("FleetDown", "fleet/#", "IotCore", "Pubsub"), ("TeleUp", "tele/#", "Pubsub", "IotCore")]);
    assert_eq!(host.deploy(&routes).await?.state, DeploymentState::Succeeded);
    observer.subscribe("tele/#", QoS::AtLeastOnce).await?;
    let config = json!({
        "subscribe": ["fleet/#"],
        "publish": [{"topic": "tele/bus", "payload": "via the bridge"}],
        "iotcoreSubscribe": ["commands/#", "secrets/#"],
        "iotcorePublish": [{"topic": "telemetry/probe", "payload": "hello cloud"}, {"topic": "billing/x", "payload": "no"}],
        "accessControl": {"aws.greengrass.ipc.mqttproxy": {"com.turf.test.Probe:mqttproxy:1": {
            "policyDescription": "telemetry out, commands in",
            "operations": ["aws.greengrass#PublishToIoTCore", "aws.greengrass#SubscribeToIoTCore"],
            "resources": ["telemetry/+", "commands/#"]}},
            "aws.greengrass.ipc.pubsub": {"com.turf.test.Probe:pubsub:1": {
                "policyDescription": "local bus",
                "operations": ["aws.greengrass#PublishToTopic", "aws.greengrass#SubscribeToTopic"],
                "resources": ["*"]}}},
    });
    host.deploy_probe(PROBE, config).await?;
    let log = host.log(PROBE);
    assert!(
        log.contains("subscribed upstream commands/#") && log.contains("published upstream telemetry/probe"),
        "{log}"
    );
    assert!(
        log.contains("subscribe upstream secrets/# failed")
            && log.contains("aws.greengrass.ipc.mqttproxy:aws.greengrass#SubscribeToIoTCore"),
        "{log}"
    );
    assert!(log.contains("publish upstream billing/x failed"), "{log}");

    let mut got = observer.collect_until(TIMEOUT, |_| true).await?;
    got.extend(observer.collect_until(TIMEOUT, |_| true).await?);
    let topics: Vec<(&str, &[u8])> = got.iter().map(|p| (p.topic.as_str(), &p.payload[..])).collect();
    assert!(topics.contains(&("telemetry/probe", &b"hello cloud"[..])), "{topics:?}");
    assert!(topics.contains(&("tele/bus", &b"via the bridge"[..])), "{topics:?}");
    let sender = cloud.observer("sender").await?;
    sender.client.publish("commands/reboot", QoS::AtLeastOnce, false, "now").await?;
    host.wait_for_log(PROBE, "iotcore message commands/reboot: now", 1).await?;
    sender.client.publish("fleet/update", QoS::AtLeastOnce, false, "v2").await?;
    host.wait_for_log(PROBE, "message fleet/update: v2", 1).await?;
    host.shutdown().await
}

#[actix_rt::test]
async fn an_mqtt5_upstream_relays_both_ways() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cloud = Mosquitto::start(&dir.path().join("cloud")).await?;
    let mut observer = cloud.observer("observer").await?;
    observer.subscribe("up/#", QoS::AtLeastOnce).await?;
    let host = start(&cloud, |u| u.version = turf_host::upstream::config::MqttVersion::V5).await?;
    let routes = bridge_update(&[("Up", "up/#", "LocalMqtt", "IotCore"), ("Down", "down/#", "IotCore", "LocalMqtt")]);
    assert_eq!(host.deploy(&routes).await?.state, DeploymentState::Succeeded);
    let mut device = Device::plain(&host, "sensor").await?;
    device.subscribe("down/#", QoS::AtLeastOnce).await?;
    publish_numbered(&device, 1, 3).await?;
    receive_exactly(&mut observer, &[1, 2, 3]).await?;
    let mut got = Vec::new();
    for attempt in 0..50 {
        observer.client.publish("down/x", QoS::AtLeastOnce, false, format!("{attempt}")).await?;
        if let Ok(p) = device.collect_until(Duration::from_millis(300), |_| true).await {
            got = p;
            break;
        }
    }
    assert_eq!(got.first().map(|p| p.topic.as_str()), Some("down/x"));
    assert!(cloud.log().contains("as TurfCore (p5"), "not an MQTT 5 connection:\n{}", cloud.log());
    host.shutdown().await
}

/// MQTT 5 properties (the request/response pattern's response topic and correlation data,
/// content type, user properties) travel device → cloud and cloud → device through the bridge
/// over an MQTT 5 upstream link; `mqtt5RouteOptions.<route>.retainAsPublished` keeps a device's
/// retain flag.
#[actix_rt::test]
async fn mqtt5_properties_and_retain_as_published_travel_through_the_bridge() -> Result<()> {
    use rumqttc::v5::mqttbytes::QoS as QoS5;
    use rumqttc::v5::mqttbytes::v5::{Packet as Packet5, Publish as Publish5, PublishProperties};
    use rumqttc::v5::{AsyncClient, Event as Event5, EventLoop};

    async fn next_publish(eventloop: &mut EventLoop, topic: &str) -> Result<Publish5> {
        with_timeout(TIMEOUT, "a publish", async {
            loop {
                if let Event5::Incoming(Packet5::Publish(p)) = eventloop.poll().await?
                    && p.topic == topic.as_bytes()
                {
                    return Ok::<_, anyhow::Error>(p);
                }
            }
        })
        .await?
    }
    use turf_tests::v5::subscribed;
    let request = PublishProperties {
        response_topic: Some("down/replies".into()),
        correlation_data: Some(bytes::Bytes::from_static(&[1, 2, 3])),
        content_type: Some("text/plain".into()),
        user_properties: vec![("trace".into(), "abc".into()), ("trace".into(), "def".into())],
        ..PublishProperties::default()
    };

    let dir = tempfile::tempdir()?;
    let cloud = Mosquitto::start(&dir.path().join("cloud")).await?;
    let host = start(&cloud, |u| u.version = turf_host::upstream::config::MqttVersion::V5).await?;
    let routes = json!({"mqttTopicMapping": {
            "Up": {"topic": "up/#", "source": "LocalMqtt", "target": "IotCore"},
            "Down": {"topic": "down/#", "source": "IotCore", "target": "LocalMqtt"}},
        "mqtt5RouteOptions": {"Up": {"noLocal": true, "retainAsPublished": true}}});
    let record = host.deploy(&turf_tests::merge_update("aws.greengrass.clientdevices.mqtt.Bridge", routes)).await?;
    assert_eq!(record.state, DeploymentState::Succeeded, "{:?}", record.error);

    let (cloud_client, mut cloud_loop) = AsyncClient::new(cloud.observer_v5("cloud-app"), 10);
    subscribed(&cloud_client, &mut cloud_loop, "up/#").await?;
    let plain = host.endpoints.plain.context("plain listener")?;
    let (device, mut device_loop) =
        AsyncClient::new(rumqttc::v5::MqttOptions::new("requester", "127.0.0.1", plain.port()), 10);
    subscribed(&device, &mut device_loop, "down/#").await?;
    device.publish_with_properties("up/request", QoS5::AtLeastOnce, true, "what time is it", request.clone()).await?;
    let pumping = tokio::spawn(async move { while device_loop.poll().await.is_ok() {} });
    let got = next_publish(&mut cloud_loop, "up/request").await?;
    let properties = got.properties.clone().context("the request arrived without properties")?;
    assert_eq!(properties.response_topic.as_deref(), Some("down/replies"));
    assert_eq!(properties.correlation_data.as_deref(), Some(&[1u8, 2, 3][..]));
    assert_eq!(properties.content_type.as_deref(), Some("text/plain"));
    assert_eq!(properties.user_properties, request.user_properties, "user properties, in order, repeats kept");

    // retainAsPublished: the cloud kept it as a retained message.
    let (late, mut late_loop) = AsyncClient::new(cloud.observer_v5("cloud-late"), 10);
    subscribed(&late, &mut late_loop, "up/#").await?;
    let retained = next_publish(&mut late_loop, "up/request").await?;
    assert!(retained.retain, "the route keeps the device's retain flag");

    // The reply, from the cloud to the device, with its correlation data.
    pumping.abort();
    let (device, mut device_loop) =
        AsyncClient::new(rumqttc::v5::MqttOptions::new("requester-2", "127.0.0.1", plain.port()), 10);
    subscribed(&device, &mut device_loop, "down/#").await?;
    let reply = PublishProperties {
        correlation_data: Some(bytes::Bytes::from_static(&[1, 2, 3])),
        user_properties: vec![("from".into(), "cloud".into())],
        ..PublishProperties::default()
    };
    let cloud_pump = tokio::spawn(async move { while cloud_loop.poll().await.is_ok() {} });
    cloud_client.publish_with_properties("down/replies", QoS5::AtLeastOnce, false, "noon", reply.clone()).await?;
    let answer = next_publish(&mut device_loop, "down/replies").await?;
    cloud_pump.abort();
    let properties = answer.properties.context("the reply arrived without properties")?;
    assert_eq!(properties.correlation_data, reply.correlation_data);
    assert_eq!(properties.user_properties, reply.user_properties);
    host.shutdown().await
}
