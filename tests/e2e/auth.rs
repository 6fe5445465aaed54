//! Client device auth: device groups and policies enforced by the broker, live.

use anyhow::{Context, Result};
use rumqttc::{Event, Packet, QoS, SubscribeFilter, SubscribeReasonCode};
use serde_json::json;
use turf_host::deploy::model::DeploymentState;
use turf_tests::{
    Device, HostOptions, TIMEOUT, TestHost, auth_update, foreign_certs, look_alike_certs, permissive_auth,
    tutorial_auth, wait_until,
};

/// Observers see everything; devices `dev*` may only use topics under their own name.
fn own_topics_policy() -> serde_json::Value {
    json!({"deviceGroups": {
        "formatVersion": "2021-03-05",
        "definitions": {
            "Devices": {"selectionRule": "thingName: dev*", "policyName": "OwnTopics"},
            "Observers": {"selectionRule": "thingName: observer", "policyName": "Observe"}},
        "policies": {
            "OwnTopics": {
                "Connect": {"operations": ["mqtt:connect"], "resources": ["mqtt:clientId:${iot:Connection.Thing.ThingName}"]},
                "Publish": {"operations": ["mqtt:publish"], "resources": ["mqtt:topic:clients/${iot:Connection.Thing.ThingName}/*"]},
                "Subscribe": {"operations": ["mqtt:subscribe"], "resources": ["mqtt:topicfilter:clients/${iot:Connection.Thing.ThingName}/#"]}},
            "Observe": {"All": {"operations": ["mqtt:connect", "mqtt:subscribe"], "resources": ["*"]}}}
    }})
}

#[actix_rt::test]
async fn tutorial_policy_admits_my_client_device_and_refuses_other_device() -> Result<()> {
    let host = TestHost::start_with(HostOptions { auth: Some(tutorial_auth()), ..HostOptions::default() }).await?;
    let mine = host.add_device("MyClientDevice1")?;
    let other = host.add_device("OtherDevice")?;
    let mut device = Device::tls(&host, "MyClientDevice1", &mine).await?;
    device.subscribe("clients/MyClientDevice1/hello/world", QoS::AtLeastOnce).await?;
    device.client.publish("clients/MyClientDevice1/hello/world", QoS::AtLeastOnce, false, "hello").await?;
    let got = device.collect_until(TIMEOUT, |_| true).await?;
    assert_eq!(&got[0].payload[..], b"hello");
    let refused = Device::tls(&host, "OtherDevice", &other).await.err().expect("OtherDevice must be refused");
    assert!(refused.to_string().contains("NotAuthorized"), "{refused}");
    host.shutdown().await
}

#[actix_rt::test]
async fn without_an_auth_configuration_no_device_connects_and_local_tools_do() -> Result<()> {
    let host = TestHost::start_with(HostOptions { auth: None, ..HostOptions::default() }).await?;
    let certs = host.add_device("MyClientDevice1")?;
    assert!(Device::tls(&host, "MyClientDevice1", &certs).await.is_err());
    let mut tool = Device::plain(&host, "tool").await.context("local tools have a policy of their own")?;
    tool.subscribe("a/#", QoS::AtLeastOnce).await?;
    tool.client.publish("a/b", QoS::AtLeastOnce, false, "x").await?;
    tool.collect_until(TIMEOUT, |p| p.topic == "a/b").await?;
    assert!(Device::plain(&host, "MyClientDevice1").await.is_err(), "a registered thing's id is not a tool's");
    host.shutdown().await
}

/// The plain listener is for people's tools: any client id MQTT allows is accepted and gets the
/// `localTools` policy (default: everything but shadow writes) unless a device group selects it;
/// a registered thing's client id is refused there (a tool never takes over a device's
/// session) unless `localTools.allowThingClientIds` says otherwise.
#[actix_rt::test]
async fn local_tools_pick_any_client_id_and_never_take_over_a_registered_thing() -> Result<()> {
    use rumqttc::v5::mqttbytes::QoS as QoS5;
    use rumqttc::v5::mqttbytes::v5::PubAckReason;
    use rumqttc::v5::{AsyncClient, MqttOptions};
    let host = TestHost::start_with(HostOptions { auth: Some(tutorial_auth()), ..HostOptions::default() }).await?;
    let certs = host.add_device("MyClientDevice1")?;
    let mut device = Device::tls(&host, "MyClientDevice1", &certs).await?;
    device.subscribe("clients/MyClientDevice1/#", QoS::AtLeastOnce).await?;

    let mut explorer = Device::plain(&host, "mqttx_3f2a").await?;
    explorer.subscribe("#", QoS::AtLeastOnce).await?;
    let spaced = Device::plain(&host, "clean retained").await.context("a client id with a space")?;
    let anonymous = Device::plain(&host, "").await.context("an empty client id (clean session)")?;
    spaced.client.publish("clients/MyClientDevice1/from-tool", QoS::AtLeastOnce, false, "hi").await?;
    device.collect_until(TIMEOUT, |p| p.topic == "clients/MyClientDevice1/from-tool").await?;
    anonymous.client.publish("tools/anon", QoS::AtLeastOnce, false, "x").await?;
    explorer.collect_until(TIMEOUT, |p| p.topic == "tools/anon").await?;

    // Shadow writes are not for tools by default; a shadow read is.
    let plain = host.endpoints.plain.context("plain listener")?;
    let (client, mut eventloop) = AsyncClient::new(MqttOptions::new("script", "127.0.0.1", plain.port()), 10);
    client.publish("$aws/things/MyClientDevice1/shadow/update", QoS5::AtLeastOnce, false, "{}").await?;
    client.publish("$aws/things/MyClientDevice1/shadow/get", QoS5::AtLeastOnce, false, "").await?;
    let reasons = turf_tests::v5::pubacks(&mut eventloop, 2).await?;
    assert_eq!(reasons, vec![PubAckReason::NotAuthorized, PubAckReason::Success]);

    // A tool with the device's client id is refused, and the device keeps its session.
    let refused = Device::plain(&host, "MyClientDevice1").await.err().context("the takeover must be refused")?;
    assert!(refused.to_string().contains("NotAuthorized"), "{refused}");
    device.client.publish("clients/MyClientDevice1/still", QoS::AtLeastOnce, false, "here").await?;
    device.collect_until(TIMEOUT, |p| p.topic == "clients/MyClientDevice1/still").await?;

    let mut allow = tutorial_auth();
    allow["localTools"] = json!({"allowThingClientIds": true});
    assert_eq!(host.deploy(&auth_update(allow)).await?.state, DeploymentState::Succeeded);
    Device::plain(&host, "MyClientDevice1").await.context("allowThingClientIds lets a tool use it")?;
    host.shutdown().await
}

#[actix_rt::test]
async fn thing_name_policies_confine_devices_to_their_own_topics() -> Result<()> {
    let host = TestHost::start_with(HostOptions { auth: Some(own_topics_policy()), ..HostOptions::default() }).await?;
    let mut observer = Device::plain(&host, "observer").await?;
    observer.subscribe("clients/#", QoS::AtLeastOnce).await?;
    let mut dev1 = Device::plain(&host, "dev1").await?;
    dev1.client.publish("clients/dev2/spoof", QoS::AtLeastOnce, false, "not mine").await?;
    dev1.client.publish("clients/dev1/done", QoS::AtLeastOnce, false, "mine").await?;
    let seen = observer.collect_until(TIMEOUT, |p| p.topic == "clients/dev1/done").await?;
    let topics: Vec<_> = seen.iter().map(|p| p.topic.as_str()).collect();
    assert_eq!(topics, vec!["clients/dev1/done"], "a denied publish must be dropped");

    // One SUBSCRIBE with an allowed and a denied filter: only the denied one fails.
    dev1.client
        .subscribe_many([
            SubscribeFilter::new("clients/dev1/#".to_owned(), QoS::AtLeastOnce),
            SubscribeFilter::new("clients/dev2/#".to_owned(), QoS::AtLeastOnce),
        ])
        .await?;
    let codes = loop {
        if let Event::Incoming(Packet::SubAck(ack)) = dev1.next(TIMEOUT).await? {
            break ack.return_codes;
        }
    };
    assert!(matches!(codes[0], SubscribeReasonCode::Success(_)), "{codes:?}");
    assert!(matches!(codes[1], SubscribeReasonCode::Failure), "{codes:?}");
    let certs = host.add_device("stranger")?;
    assert!(Device::tls(&host, "stranger", &certs).await.is_err(), "a thing in no group is refused");
    host.shutdown().await
}

#[actix_rt::test]
async fn mqtt5_publish_denial_gets_puback_not_authorized() -> Result<()> {
    use rumqttc::v5::mqttbytes::QoS as QoS5;
    use rumqttc::v5::mqttbytes::v5::PubAckReason;
    use rumqttc::v5::{AsyncClient, MqttOptions};
    let host = TestHost::start_with(HostOptions { auth: Some(own_topics_policy()), ..HostOptions::default() }).await?;
    let plain = host.endpoints.plain.unwrap();
    let (client, mut eventloop) = AsyncClient::new(MqttOptions::new("dev1", "127.0.0.1", plain.port()), 10);
    client.publish("clients/dev2/spoof", QoS5::AtLeastOnce, false, "x").await?;
    client.publish("clients/dev1/ok", QoS5::AtLeastOnce, false, "y").await?;
    let reasons = turf_tests::v5::pubacks(&mut eventloop, 2).await?;
    assert_eq!(reasons, vec![PubAckReason::NotAuthorized, PubAckReason::Success]);
    host.shutdown().await
}

#[actix_rt::test]
async fn policy_changes_apply_at_once_and_disconnect_devices_that_lose_connect() -> Result<()> {
    let host = TestHost::start().await?;
    // A device (TLS): on the plain listener a client no group selects is a local tool instead.
    let certs = host.add_device("dev1")?;
    let mut device = Device::tls(&host, "dev1", &certs).await?;
    let mut observer = Device::plain(&host, "observer").await?;
    observer.subscribe("clients/#", QoS::AtLeastOnce).await?;
    device.client.publish("clients/dev2/x", QoS::AtLeastOnce, false, "allowed for now").await?;
    observer.collect_until(TIMEOUT, |p| p.topic == "clients/dev2/x").await?;

    assert_eq!(host.deploy(&auth_update(own_topics_policy())).await?.state, DeploymentState::Succeeded);
    device.client.publish("clients/dev2/x", QoS::AtLeastOnce, false, "now denied").await?;
    device.client.publish("clients/dev1/marker", QoS::AtLeastOnce, false, "m").await?;
    let seen = observer.collect_until(TIMEOUT, |p| p.topic == "clients/dev1/marker").await?;
    assert!(seen.iter().all(|p| p.topic != "clients/dev2/x"), "the new policy applies to the next publish");

    let no_dev = json!({"deviceGroups": {"definitions": {"Observers": {"selectionRule": "thingName: observer", "policyName": "Observe"}},
        "policies": {"Observe": {"All": {"operations": ["*"], "resources": ["*"]}}}}});
    assert_eq!(host.deploy(&auth_update(no_dev)).await?.state, DeploymentState::Succeeded);
    device.wait_closed(TIMEOUT).await.context("dev1 was never disconnected")?;
    observer.client.publish("clients/observer/still", QoS::AtLeastOnce, false, "here").await?;
    observer.collect_until(TIMEOUT, |p| p.topic == "clients/observer/still").await?;
    host.shutdown().await
}

/// A policy change re-authorizes every session's subscriptions: a connected device stops
/// receiving on a filter it may no longer subscribe to, and so does a persistent session that
/// was offline during the change when it resumes, including what its queue held from before.
#[actix_rt::test]
async fn a_policy_change_removes_subscriptions_it_no_longer_allows() -> Result<()> {
    let host = TestHost::start().await?;
    let mut observer = Device::plain(&host, "observer").await?;
    observer.subscribe("clients/#", QoS::AtLeastOnce).await?;
    let mut live = Device::plain(&host, "dev1").await?;
    live.subscribe("clients/dev2/#", QoS::AtLeastOnce).await?;
    live.subscribe("clients/dev1/#", QoS::AtLeastOnce).await?;
    let mut options = Device::plain_options(&host, "dev3");
    options.set_clean_session(false);
    let mut persistent = Device::connect(options.clone()).await?;
    persistent.subscribe("clients/dev2/#", QoS::AtLeastOnce).await?;
    persistent.subscribe("clients/dev3/#", QoS::AtLeastOnce).await?;
    persistent.vanish().await;
    // "before" must be queued for dev3's session, not sent to its last connection (a message in
    // flight there is one MQTT requires the broker to send again on resume, policy or not).
    wait_until(TIMEOUT, "dev3 seen offline", || async {
        let clients = host.client().clients().await;
        clients.is_ok_and(|r| r.sessions.iter().any(|s| s.client_id == "dev3" && !s.connected))
    })
    .await?;
    let dev2 = Device::plain(&host, "dev2").await?;
    dev2.client.publish("clients/dev2/x", QoS::AtLeastOnce, false, "before").await?;
    live.collect_until(TIMEOUT, |p| p.topic == "clients/dev2/x").await?;

    assert_eq!(host.deploy(&auth_update(own_topics_policy())).await?.state, DeploymentState::Succeeded);
    dev2.client.publish("clients/dev2/x", QoS::AtLeastOnce, false, "after").await?;
    observer.collect_until(TIMEOUT, |p| p.topic == "clients/dev2/x" && &p.payload[..] == b"after").await?;
    live.client.publish("clients/dev1/marker", QoS::AtLeastOnce, false, "m").await?;
    let seen = live.collect_until(TIMEOUT, |p| p.topic == "clients/dev1/marker").await?;
    assert!(seen.iter().all(|p| p.topic != "clients/dev2/x"), "dev1 still receives on clients/dev2/#: {seen:?}");

    let mut resumed = Device::connect(options).await?;
    dev2.client.publish("clients/dev2/x", QoS::AtLeastOnce, false, "resumed").await?;
    observer.collect_until(TIMEOUT, |p| p.topic == "clients/dev2/x" && &p.payload[..] == b"resumed").await?;
    resumed.client.publish("clients/dev3/marker", QoS::AtLeastOnce, false, "m").await?;
    let seen = resumed.collect_until(TIMEOUT, |p| p.topic == "clients/dev3/marker").await?;
    // Nothing on clients/dev2/# reaches the resumed session: neither what was published after
    // the change, nor what its queue held from before it (queued while it was still allowed).
    assert!(seen.iter().all(|p| p.topic != "clients/dev2/x"), "dev3 received on clients/dev2/#: {seen:?}");
    let status = host.client().status().await?.broker.expect("broker status");
    assert!(status.dropped.unsubscribed >= 1, "the queued copy is counted: {status:?}");
    host.shutdown().await
}

#[actix_rt::test]
async fn removed_device_is_disconnected_and_cannot_return() -> Result<()> {
    let host = TestHost::start().await?;
    let certs = host.add_device("Doomed")?;
    let mut device = Device::tls(&host, "Doomed", &certs).await?;
    host.turf_ok(&["device", "remove", "Doomed"])?;
    device.wait_closed(TIMEOUT).await.context("Doomed was never disconnected")?;
    assert!(Device::tls(&host, "Doomed", &certs).await.is_err());
    host.shutdown().await
}

#[actix_rt::test]
async fn certificates_from_a_trusted_ca_can_be_registered_without_restart() -> Result<()> {
    let host = TestHost::start_with(HostOptions { auth: Some(permissive_auth()), ..HostOptions::default() }).await?;
    let own = host.add_device("Anchor")?;
    let foreign = foreign_certs(host.dir.path(), "Foreign1", &own);
    let cert = foreign.join("device.pem.crt");
    let refused = host.turf(&["device", "register", "Foreign1", "--cert", cert.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("trust-ca"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    host.turf_ok(&["device", "trust-ca", foreign.join("rogue-ca.pem").to_str().unwrap()])?;
    host.turf_ok(&["device", "register", "Foreign1", "--cert", cert.to_str().unwrap()])?;
    let connected = turf_tests::wait_until(TIMEOUT, "the foreign device to connect", || async {
        Device::tls(&host, "Foreign1", &foreign).await.is_ok()
    })
    .await;
    connected?;
    let anchor = Device::tls(&host, "Anchor", &own).await;
    assert!(anchor.is_ok(), "devices of the core CA still connect after the reload");
    host.shutdown().await
}

/// A second trusted CA signs a certificate that copies a registered device's serial number and
/// subject: it must not authenticate as that device (identity is the certificate's fingerprint).
/// The CA cannot be untrusted while a device it issued is registered; once untrusted, its
/// devices no longer connect.
#[actix_rt::test]
async fn a_look_alike_certificate_from_another_trusted_ca_is_not_the_device_it_copies() -> Result<()> {
    let host = TestHost::start_with(HostOptions { auth: Some(permissive_auth()), ..HostOptions::default() }).await?;
    let real = host.add_device("MyClientDevice1")?;
    let forged = look_alike_certs(host.dir.path(), "forged", &real, &real);
    let forger_ca = forged.join("rogue-ca.pem");
    host.turf_ok(&["device", "trust-ca", forger_ca.to_str().unwrap()])?;
    let impostor = Device::tls(&host, "MyClientDevice1", &forged).await;
    assert!(impostor.is_err(), "a copy of the serial and subject must not authenticate as MyClientDevice1");
    let forged_cert = forged.join("device.pem.crt");
    let refused = host.turf(&["device", "register", "Impostor", "--cert", forged_cert.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("serial"), "{stderr}");
    Device::tls(&host, "MyClientDevice1", &real).await?;
    host.turf_ok(&["device", "untrust-ca", forger_ca.to_str().unwrap()])?;

    // A CA stays trusted while a device it issued is registered; untrusted, its devices are out.
    let honest = foreign_certs(host.dir.path(), "Honest", &real);
    let (honest_ca, honest_cert) = (honest.join("rogue-ca.pem"), honest.join("device.pem.crt"));
    host.turf_ok(&["device", "trust-ca", honest_ca.to_str().unwrap()])?;
    host.turf_ok(&["device", "register", "Honest", "--cert", honest_cert.to_str().unwrap()])?;
    turf_tests::wait_until(TIMEOUT, "the second CA's device to connect", || async {
        Device::tls(&host, "Honest", &honest).await.is_ok()
    })
    .await?;
    let in_use = host.turf(&["device", "untrust-ca", honest_ca.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&in_use.stderr);
    assert!(!in_use.status.success() && stderr.contains("Honest"), "{stderr}");
    host.turf_ok(&["device", "remove", "Honest"])?;
    host.turf_ok(&["device", "untrust-ca", honest_ca.to_str().unwrap()])?;
    let again = host.turf(&["device", "untrust-ca", honest_ca.to_str().unwrap()]);
    assert!(!again.status.success(), "untrusting twice is an error");
    let untrusted = host.turf_ok(&["device", "register", "Honest", "--cert", honest_cert.to_str().unwrap()]);
    assert!(untrusted.is_err(), "the untrusted CA's certificates can no longer be registered");
    host.shutdown().await
}

#[actix_rt::test]
async fn a_bad_selection_rule_fails_the_deployment_with_its_position() -> Result<()> {
    let host = TestHost::start().await?;
    let bad = json!({"deviceGroups": {
        "definitions": {"G": {"selectionRule": "thingName: MyClientDevice* or thingName: x", "policyName": "P"}},
        "policies": {"P": {"S": {"operations": ["*"], "resources": ["*"]}}}}});
    let record = host.deploy(&auth_update(bad)).await?;
    assert_eq!(record.state, DeploymentState::Failed);
    let error = record.error.unwrap_or_default();
    assert!(
        error.contains("deviceGroups.definitions.G.selectionRule")
            && error.contains("at character 28")
            && error.contains("expected 'OR', 'AND'"),
        "{error}"
    );
    assert!(Device::plain(&host, "still-permitted").await.is_ok(), "the previous policy stays in force");
    host.shutdown().await
}

/// Connects `client_id` to the plain listener with a retained QoS 1 Last Will on `topic`.
async fn with_will(host: &TestHost, client_id: &str, topic: &str) -> Result<Device> {
    let mut options = Device::plain_options(host, client_id);
    options.set_last_will(rumqttc::LastWill::new(topic, format!("{client_id} is gone"), QoS::AtLeastOnce, true));
    Device::connect(options).await
}

#[actix_rt::test]
async fn a_last_will_outside_the_publish_policy_refuses_the_connect() -> Result<()> {
    use rumqttc::v5::mqttbytes::QoS as QoS5;
    use rumqttc::v5::mqttbytes::v5::LastWill as LastWill5;
    use rumqttc::v5::{AsyncClient, MqttOptions};
    let host = TestHost::start_with(HostOptions { auth: Some(own_topics_policy()), ..HostOptions::default() }).await?;
    let mut observer = Device::plain(&host, "observer").await?;
    observer.subscribe("clients/#", QoS::AtLeastOnce).await?;

    let refused = with_will(&host, "dev1", "clients/dev2/will").await.err().expect("a will on dev2's topic");
    assert!(refused.to_string().contains("NotAuthorized"), "MQTT 3.1.1: CONNACK 0x05, got {refused}");

    let plain = host.endpoints.plain.unwrap();
    let mut options = MqttOptions::new("dev1", "127.0.0.1", plain.port());
    options.set_last_will(LastWill5::new("clients/dev2/will", "x", QoS5::AtLeastOnce, true, None));
    let (_client, mut eventloop) = AsyncClient::new(options, 10);
    let refused = tokio::time::timeout(TIMEOUT, eventloop.poll()).await?.expect_err("MQTT 5 refuses the connect");
    assert!(refused.to_string().contains("NotAuthorized"), "MQTT 5: CONNACK 0x87, got {refused}");

    // A will the policy allows is accepted and published, retained.
    with_will(&host, "dev1", "clients/dev1/will").await?.vanish().await;
    let got = observer.collect_until(TIMEOUT, |p| p.topic == "clients/dev1/will").await?;
    assert!(got.iter().all(|p| p.topic != "clients/dev2/will"), "{got:?}");
    host.shutdown().await
}

#[actix_rt::test]
async fn a_last_will_the_policy_no_longer_allows_is_not_published_nor_retained() -> Result<()> {
    let host = TestHost::start().await?;
    let mut observer = Device::plain(&host, "observer").await?;
    observer.subscribe("clients/+/will", QoS::AtLeastOnce).await?;
    let dev1 = with_will(&host, "dev1", "clients/dev2/will").await?;

    assert_eq!(host.deploy(&auth_update(own_topics_policy())).await?.state, DeploymentState::Succeeded);
    dev1.vanish().await;
    // dev3's will is allowed; it vanishes after dev1, so its will marks that dev1's was handled.
    with_will(&host, "dev3", "clients/dev3/will").await?.vanish().await;
    let got = observer.collect_until(TIMEOUT, |p| p.topic == "clients/dev3/will").await?;
    assert!(got.iter().all(|p| p.topic != "clients/dev2/will"), "dev1's will was published: {got:?}");

    // Nothing was retained either: a new subscription gets dev3's retained will and not dev1's
    // (the retained messages of each SUBSCRIBE follow its SUBACK, in order).
    observer.subscribe("clients/dev2/will", QoS::AtLeastOnce).await?;
    observer.subscribe("clients/dev3/will", QoS::AtLeastOnce).await?;
    let retained = observer.collect_until(TIMEOUT, |p| p.topic == "clients/dev3/will").await?;
    assert!(retained.iter().all(|p| p.topic != "clients/dev2/will"), "dev1's will was retained: {retained:?}");
    host.shutdown().await
}
