//! MQTT 5 as the specification says: topic aliases both ways, shared subscriptions, the
//! client's Receive Maximum, the server keep alive, with a real MQTT 5 client.

use std::time::Duration;

use anyhow::{Context, Result};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish, PublishProperties};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use turf_host::broker::BrokerLimits;
use turf_tests::v5::subscribed;
use turf_tests::{HostOptions, TIMEOUT, TestHost, with_timeout};

fn options(host: &TestHost, client_id: &str) -> MqttOptions {
    let plain = host.endpoints.plain.expect("plain listener");
    let mut options = MqttOptions::new(client_id, "127.0.0.1", plain.port());
    options.set_keep_alive(Duration::from_secs(30));
    options
}

/// Connects and returns the client, its event loop and the CONNACK.
async fn connect(options: MqttOptions) -> Result<(AsyncClient, EventLoop, rumqttc::v5::mqttbytes::v5::ConnAck)> {
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    let ack = with_timeout(TIMEOUT, "CONNACK", async {
        loop {
            if let Event::Incoming(Packet::ConnAck(ack)) = eventloop.poll().await? {
                return Ok::<_, anyhow::Error>(ack);
            }
        }
    })
    .await??;
    Ok((client, eventloop, ack))
}

/// Publishes received until `count` arrived or `quiet` passed without one.
async fn receive(eventloop: &mut EventLoop, count: usize, quiet: Duration) -> Vec<Publish> {
    let mut got = Vec::new();
    while got.len() < count {
        match tokio::time::timeout(quiet, eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => got.push(p),
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => break,
        }
    }
    got
}

#[actix_rt::test]
async fn topic_aliases_work_both_ways() -> Result<()> {
    let host = TestHost::start().await?;
    let mut sub_options = options(&host, "alias-subscriber");
    sub_options.set_topic_alias_max(Some(8));
    let (sub, mut sub_loop, _) = connect(sub_options).await?;
    subscribed(&sub, &mut sub_loop, "alias/#").await?;
    let (publisher, mut pub_loop, connack) = connect(options(&host, "alias-publisher")).await?;
    let granted = connack.properties.and_then(|p| p.topic_alias_max).unwrap_or(0);
    assert!(granted >= 1, "the broker offers topic aliases (CONNACK Topic Alias Maximum {granted})");
    let (acked, mut acks) = tokio::sync::mpsc::unbounded_channel();
    let pumping = tokio::spawn(async move {
        while let Ok(event) = pub_loop.poll().await {
            if let Event::Incoming(Packet::PubAck(_)) = event {
                let _ = acked.send(());
            }
        }
    });
    let alias = |n: u16| PublishProperties { topic_alias: Some(n), ..PublishProperties::default() };
    publisher.publish_with_properties("alias/long/topic/name", QoS::AtLeastOnce, false, "1", alias(1)).await?;
    publisher.publish_with_properties("", QoS::AtLeastOnce, false, "2", alias(1)).await?;
    publisher.publish_with_properties("", QoS::AtLeastOnce, false, "3", alias(1)).await?;
    // MQTT orders messages per publisher only: the second publisher starts once the first's
    // three are acknowledged, so the expected order below is the one the specification promises.
    with_timeout(TIMEOUT, "PUBACKs of the aliased publishes", async {
        for _ in 0..3 {
            acks.recv().await;
        }
    })
    .await?;
    // A publisher without properties (MQTT 3.1.1) on the same topic: still resolvable.
    let old_publisher = turf_tests::Device::plain(&host, "alias-v311").await?;
    old_publisher.client.publish("alias/long/topic/name", rumqttc::QoS::AtLeastOnce, false, "4").await?;
    old_publisher.client.publish("alias/long/topic/name", rumqttc::QoS::AtLeastOnce, false, "5").await?;
    let got = receive(&mut sub_loop, 5, TIMEOUT).await;
    pumping.abort();
    // rumqttc reports a publish before it resolves its alias: resolve here, as a client must.
    let mut aliases = std::collections::HashMap::new();
    let mut topics = Vec::new();
    for p in &got {
        let alias = p.properties.as_ref().and_then(|props| props.topic_alias);
        let topic = match (p.topic.is_empty(), alias) {
            (false, Some(alias)) => {
                aliases.insert(alias, p.topic.clone());
                p.topic.clone()
            }
            (false, None) => p.topic.clone(),
            (true, Some(alias)) => aliases.get(&alias).cloned().context("an alias the broker never set up")?,
            (true, None) => anyhow::bail!("an empty topic without an alias: {p:?}"),
        };
        topics.push((String::from_utf8_lossy(&topic).into_owned(), p.payload.clone()));
    }
    assert_eq!(
        topics,
        vec![
            ("alias/long/topic/name".to_owned(), "1".into()),
            ("alias/long/topic/name".to_owned(), "2".into()),
            ("alias/long/topic/name".to_owned(), "3".into()),
            ("alias/long/topic/name".to_owned(), "4".into()),
            ("alias/long/topic/name".to_owned(), "5".into()),
        ],
        "a publish by alias reaches subscribers on its topic"
    );
    // The subscriber allowed aliases: the broker used one for the repeated topic.
    assert!(
        got[1..].iter().any(|p| p.properties.as_ref().is_some_and(|props| props.topic_alias.is_some())),
        "server-to-client aliases unused: {got:?}"
    );
    host.shutdown().await
}

#[actix_rt::test]
async fn a_shared_subscription_delivers_each_message_to_one_member() -> Result<()> {
    const COUNT: usize = 40;
    let host = TestHost::start().await?;
    let (a, mut a_loop, _) = connect(options(&host, "worker-a")).await?;
    let (b, mut b_loop, _) = connect(options(&host, "worker-b")).await?;
    subscribed(&a, &mut a_loop, "$share/workers/jobs/#").await?;
    subscribed(&b, &mut b_loop, "$share/workers/jobs/#").await?;
    let (publisher, mut pub_loop, _) = connect(options(&host, "dispatcher")).await?;
    let pumping = tokio::spawn(async move { while pub_loop.poll().await.is_ok() {} });
    for n in 0..COUNT {
        publisher.publish(format!("jobs/{n}"), QoS::AtLeastOnce, false, n.to_string()).await?;
    }
    // Both members read at once, into one channel, until all arrived (or the suite's timeout);
    // then a quiet second shows up any duplicate.
    let (sender, mut arrivals) = tokio::sync::mpsc::unbounded_channel();
    let members = [("a", a_loop), ("b", b_loop)].map(|(member, mut events)| {
        let sender = sender.clone();
        tokio::spawn(async move {
            while let Ok(event) = events.poll().await {
                if let Event::Incoming(Packet::Publish(p)) = event {
                    let _ = sender.send((member, p));
                }
            }
        })
    });
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let wait = match got_a.len() + got_b.len() < COUNT {
            true => deadline.saturating_duration_since(tokio::time::Instant::now()),
            false => Duration::from_secs(1),
        };
        match tokio::time::timeout(wait, arrivals.recv()).await {
            Ok(Some(("a", p))) => got_a.push(p),
            Ok(Some((_, p))) => got_b.push(p),
            Ok(None) | Err(_) => break,
        }
    }
    members.iter().for_each(tokio::task::JoinHandle::abort);
    pumping.abort();
    let mut all: Vec<String> =
        got_a.iter().chain(&got_b).map(|p| String::from_utf8_lossy(&p.payload).into_owned()).collect();
    all.sort_by_key(|n| n.parse::<usize>().unwrap_or(usize::MAX));
    let expected: Vec<String> = (0..COUNT).map(|n| n.to_string()).collect();
    assert_eq!(all, expected, "each job exactly once across the group");
    assert!(!got_a.is_empty() && !got_b.is_empty(), "both members get work: {} / {}", got_a.len(), got_b.len());
    host.shutdown().await
}

#[actix_rt::test]
async fn the_broker_never_has_more_unacknowledged_messages_out_than_the_client_receive_maximum() -> Result<()> {
    let host = TestHost::start().await?;
    let mut slow = options(&host, "slow-acker");
    slow.set_receive_maximum(Some(2));
    slow.set_manual_acks(true);
    let (sub, mut sub_loop, _) = connect(slow).await?;
    subscribed(&sub, &mut sub_loop, "rm/#").await?;
    let (publisher, mut pub_loop, _) = connect(options(&host, "rm-publisher")).await?;
    let pumping = tokio::spawn(async move { while pub_loop.poll().await.is_ok() {} });
    for n in 0..5 {
        publisher.publish(format!("rm/{n}"), QoS::AtLeastOnce, false, "x").await?;
    }
    let first = receive(&mut sub_loop, 2, TIMEOUT).await;
    assert_eq!(first.len(), 2, "the first two arrive");
    let more = receive(&mut sub_loop, 1, Duration::from_millis(1500)).await;
    assert!(more.is_empty(), "Receive Maximum 2: two unacknowledged at most, got a third: {more:?}");
    for p in &first {
        sub.ack(p).await?;
    }
    let mut rest = Vec::new();
    for _ in 0..3 {
        let next = receive(&mut sub_loop, 1, TIMEOUT).await;
        for p in &next {
            sub.ack(p).await?;
        }
        rest.extend(next);
    }
    pumping.abort();
    let topics: Vec<_> = first.iter().chain(&rest).map(|p| String::from_utf8_lossy(&p.topic).into_owned()).collect();
    assert_eq!(topics, vec!["rm/0", "rm/1", "rm/2", "rm/3", "rm/4"], "the rest follow the acknowledgements, in order");
    host.shutdown().await
}

#[actix_rt::test]
async fn the_server_keep_alive_is_the_client_request_or_the_configured_maximum() -> Result<()> {
    let limits = BrokerLimits { max_keepalive_secs: 60, ..BrokerLimits::default() };
    let host = TestHost::start_with(HostOptions { broker: limits, ..HostOptions::default() }).await?;
    let mut modest = options(&host, "modest");
    modest.set_keep_alive(Duration::from_secs(20));
    let (_, _, ack) = connect(modest).await?;
    let told = ack.properties.and_then(|p| p.server_keep_alive);
    assert!(told.is_none_or(|k| k == 20), "a request within the limit is kept: {told:?}");
    let mut greedy = options(&host, "greedy");
    greedy.set_keep_alive(Duration::from_secs(600));
    let (_, _, ack) = connect(greedy).await?;
    let told = ack.properties.and_then(|p| p.server_keep_alive).context("Server Keep Alive in CONNACK")?;
    assert_eq!(told, 60, "a longer request is cut to max_keepalive_secs and the client is told");
    host.shutdown().await
}
