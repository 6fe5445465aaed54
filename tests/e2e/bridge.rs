//! The MQTT bridge between LocalMqtt and the pubsub bus.

use anyhow::Result;
use rumqttc::QoS;
use serde_json::json;
use turf_host::deploy::model::DeploymentState;
use turf_tests::{Device, TIMEOUT, TestHost, all_seen, bridge_update, pubsub_access};

const PROBE: &str = "com.turf.test.Probe";

#[actix_rt::test]
async fn two_way_routes_on_one_filter_relay_each_message_exactly_once() -> Result<()> {
    let host = TestHost::start().await?;
    let record = host
        .deploy(&bridge_update(&[("In", "relay/#", "LocalMqtt", "Pubsub"), ("Out", "relay/#", "Pubsub", "LocalMqtt")]))
        .await?;
    assert_eq!(record.state, DeploymentState::Succeeded, "{:?}", record.error);
    let config = json!({
        "subscribe": ["relay/#"],
        "echoPrefix": "relay/out/",
        "accessControl": pubsub_access(PROBE, &["SubscribeToTopic", "PublishToTopic"], &["relay/*"]),
    });
    host.deploy_probe(PROBE, config).await?;

    let mut device = Device::plain(&host, "relayer").await?;
    device.subscribe("relay/#", QoS::AtLeastOnce).await?;
    let sent: Vec<String> = (0..5).map(|i| format!("relay/in/{i}")).chain(["relay/in/done".to_owned()]).collect();
    for topic in &sent {
        device.client.publish(topic, QoS::AtLeastOnce, false, "payload").await?;
    }
    // The echo of "done" may overtake the device's own copy of it: wait for both.
    let got = device.collect_until(TIMEOUT, all_seen(&["relay/in/done", "relay/out/relay/in/done"])).await?;
    for topic in &sent {
        let own = got.iter().filter(|p| &p.topic == topic).count();
        let echoed = got.iter().filter(|p| p.topic == format!("relay/out/{topic}")).count();
        assert_eq!((own, echoed), (1, 1), "{topic}: {:?}", got.iter().map(|p| &p.topic).collect::<Vec<_>>());
    }
    let log = host.log(PROBE);
    for topic in &sent {
        assert_eq!(log.matches(&format!("message {topic}: ")).count(), 1, "{log}");
    }
    assert!(!log.contains("message relay/out/"), "the bridge looped a message back:\n{log}");
    host.shutdown().await
}

#[actix_rt::test]
async fn bridge_routes_can_be_replaced_by_a_later_deployment() -> Result<()> {
    let host = TestHost::start().await?;
    host.deploy(&bridge_update(&[("R", "first/#", "LocalMqtt", "Pubsub")])).await?;
    let config = json!({"subscribe": ["#"], "accessControl": pubsub_access(PROBE, &["SubscribeToTopic"], &["*"])});
    host.deploy_probe(PROBE, config).await?;
    let device = Device::plain(&host, "mover").await?;
    device.client.publish("first/a", QoS::AtLeastOnce, false, "1").await?;
    host.wait_for_log(PROBE, "message first/a: 1", 1).await?;
    host.deploy(&bridge_update(&[("R", "second/#", "LocalMqtt", "Pubsub")])).await?;
    device.client.publish("first/a", QoS::AtLeastOnce, false, "2").await?;
    device.client.publish("second/b", QoS::AtLeastOnce, false, "3").await?;
    host.wait_for_log(PROBE, "message second/b: 3", 1).await?;
    assert!(!host.log(PROBE).contains("message first/a: 2"), "old route still active");
    host.shutdown().await
}
