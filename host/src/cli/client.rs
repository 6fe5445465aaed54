//! `turf client publish`: a simulated client device, like the tutorial's `basic_discovery.py`.
//!
//! With `--core` it first runs Greengrass discovery against the core (mutual TLS with the
//! device certificate, trusting `ca.pem`), then tries each returned endpoint in order with the
//! returned CA; with `--broker` it connects directly. It connects with its thing name as client
//! id (clean session off, keepalive 30 s), subscribes to the topic, publishes
//! `{"message": M, "sequence": i}` N times at QoS 1, prints every publish and every message it
//! receives, and succeeds when all of its messages came back. Every wait is bounded.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeReasonCode, TlsConfiguration, Transport};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::sync::mpsc;

use super::CliError;
use crate::connectivity::detect::parse_endpoint;
use crate::devices::files;
use crate::discovery::client::discover;
use crate::pem;

/// Default port of the discovery endpoint.
const DISCOVERY_PORT: u16 = 8443;

/// How a simulated device reaches the core (shared by every `turf client` command).
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Thing name (also the MQTT client id).
    #[arg(long)]
    pub thing: String,
    /// Folder holding device.pem.crt, private.pem.key and ca.pem (from `turf device add`).
    #[arg(long)]
    pub certs: PathBuf,
    /// Core device to discover, HOST[:PORT] (discovery port, default 8443).
    #[arg(long, conflicts_with = "broker", required_unless_present = "broker")]
    pub core: Option<String>,
    /// Broker to connect to directly, HOST:PORT (skips discovery).
    #[arg(long)]
    pub broker: Option<String>,
    /// Longest to wait for the connection (and for any reply), in seconds.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
}

/// `turf client publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Where and who.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Topic to subscribe and publish to (default clients/<thing>/hello/world).
    #[arg(long)]
    pub topic: Option<String>,
    /// Message text.
    #[arg(long, default_value = "Hello World!")]
    pub message: String,
    /// How many messages to publish.
    #[arg(long, default_value_t = 10)]
    pub count: u32,
    /// Pause between publishes, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
}

pub(super) fn failed(text: impl Into<String>) -> CliError {
    CliError::Failed(text.into())
}

/// A rustls client configuration with the device's certificate from `certs`, trusting the CA
/// certificates in `ca_pem` (PEM text).
pub fn device_tls(certs: &Path, ca_pem: &str) -> Result<rustls::ClientConfig, CliError> {
    let ca = CertificateDer::pem_slice_iter(ca_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| failed(format!("CA certificate: {e}")))?;
    let roots = pem::roots(ca).map_err(|e| failed(format!("CA certificate: {e}")))?;
    let identity =
        (pem::certs(&certs.join(files::CERT)).map_err(failed)?, pem::key(&certs.join(files::KEY)).map_err(failed)?);
    pem::client_config(roots, Some(identity)).map_err(|e| failed(format!("device {e}")))
}

fn split_host(text: &str, flag: &str, default_port: Option<u16>) -> Result<(String, u16), CliError> {
    let endpoint =
        parse_endpoint(text, default_port).map_err(|e| CliError::Usage(format!("{flag} {text:?}: {}", e.problem)))?;
    Ok((endpoint.host_address, endpoint.port))
}

/// Where to connect: endpoints in order (host, port, core ARN), and the CA that signs the
/// broker's certificate.
#[allow(clippy::print_stdout)] // command output
async fn endpoints(args: &ConnectArgs) -> Result<(Vec<(String, u16, String)>, String), CliError> {
    let ca_path = args.certs.join(files::CA);
    let local_ca = std::fs::read_to_string(&ca_path).map_err(|e| failed(format!("{}: {e}", ca_path.display())))?;
    if let Some(broker) = &args.broker {
        let (host, port) = split_host(broker, "--broker", None)?;
        return Ok((vec![(host.clone(), port, host)], local_ca));
    }
    let core = args.core.as_deref().unwrap_or_default();
    let (host, port) = split_host(core, "--core", Some(DISCOVERY_PORT))?;
    println!("Performing greengrass discovery...");
    let answer = discover(&host, port, &args.thing, device_tls(&args.certs, &local_ca)?)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let mut targets = Vec::new();
    let mut ca = None;
    for group in &answer.gg_groups {
        println!("Discovered group {} ({} CA certificate(s))", group.gg_group_id, group.cas.len());
        ca = ca.or_else(|| group.cas.first().cloned());
        for core in &group.cores {
            for endpoint in &core.connectivity {
                targets.push((endpoint.host_address.clone(), endpoint.port_number, core.thing_arn.clone()));
            }
        }
    }
    let ca = ca.ok_or_else(|| failed("discovery returned no CA certificate"))?;
    if targets.is_empty() {
        return Err(failed("discovery returned no endpoints; set them with `turf connectivity set` on the core"));
    }
    Ok((targets, ca))
}

/// The payload the tutorial's sample publishes (Python `json.dumps` spacing).
pub fn hello_payload(message: &str, sequence: u32) -> String {
    let message = serde_json::to_string(message).unwrap_or_else(|_| "\"\"".to_owned());
    format!("{{\"message\": {message}, \"sequence\": {sequence}}}")
}

/// Events of a connected client.
pub(super) type Events = mpsc::UnboundedReceiver<Result<Event, rumqttc::ConnectionError>>;

/// A connected simulated device.
pub(super) struct Session {
    /// The client.
    pub client: AsyncClient,
    /// Its events.
    pub events: Events,
    /// The task polling its event loop.
    pub pump: tokio::task::JoinHandle<()>,
}

impl Session {
    /// Disconnects and waits (bounded) for the event loop to end.
    pub async fn close(self) {
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.pump).await;
    }
}

/// Discovery (with `--core`) or the given broker, then each endpoint in turn until one accepts,
/// printing each step as the tutorial's samples do.
#[allow(clippy::print_stdout)] // command output
pub(super) async fn connect_device(args: &ConnectArgs) -> Result<Session, CliError> {
    let (targets, ca) = endpoints(args).await?;
    let tls = Arc::new(device_tls(&args.certs, &ca)?);
    let timeout = Duration::from_secs(args.timeout);
    for (host, port, core) in &targets {
        println!("Trying core {core} at host {host} port {port}");
        match connect(&args.thing, host, *port, Arc::clone(&tls), timeout).await {
            Ok((client, events, pump)) => {
                println!("Connected!");
                return Ok(Session { client, events, pump });
            }
            Err(e) => println!("Connection failed with exception {e}"),
        }
    }
    Err(failed("All connection attempts failed"))
}

/// Connects to one endpoint; returns the client, its events and the pump task.
async fn connect(
    thing: &str,
    host: &str,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<(AsyncClient, Events, tokio::task::JoinHandle<()>), String> {
    let mut options = MqttOptions::new(thing.to_owned(), host.to_owned(), port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_clean_session(false);
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    // Like a device SDK: no Nagle delay on small packets (PUBACKs, shadow updates).
    let mut network = eventloop.network_options();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let pump = tokio::spawn(async move {
        loop {
            let event = eventloop.poll().await;
            let stop = event.is_err();
            if events_tx.send(event).is_err() || stop {
                break;
            }
        }
    });
    loop {
        match tokio::time::timeout(timeout, events.recv()).await.ok().flatten() {
            Some(Ok(Event::Incoming(Packet::ConnAck(_)))) => return Ok((client, events, pump)),
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                pump.abort();
                return Err(e.to_string());
            }
            None => {
                pump.abort();
                return Err(format!("no CONNACK within {} s", timeout.as_secs()));
            }
        }
    }
}

/// Runs the simulated device.
#[allow(clippy::print_stdout)] // command output
pub async fn publish(args: PublishArgs) -> Result<(), CliError> {
    let topic = args.topic.clone().unwrap_or_else(|| format!("clients/{}/hello/world", args.connect.thing));
    let timeout = Duration::from_secs(args.connect.timeout);
    let Session { client, mut events, pump } = connect_device(&args.connect).await?;
    client.subscribe(&topic, QoS::AtLeastOnce).await.map_err(|e| failed(e.to_string()))?;
    loop {
        match tokio::time::timeout(timeout, events.recv()).await.ok().flatten() {
            Some(Ok(Event::Incoming(Packet::SubAck(ack)))) => {
                if ack.return_codes.iter().any(|c| matches!(c, SubscribeReasonCode::Failure)) {
                    return Err(failed(format!("subscription to {topic} was refused")));
                }
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(failed(format!("connection lost: {e}"))),
            None => return Err(failed(format!("no SUBACK within {} s", args.connect.timeout))),
        }
    }
    let mut received = 0u32;
    let print_incoming = |packet: &rumqttc::Publish| {
        println!();
        println!("Publish received on topic {}", packet.topic);
        println!("{}", String::from_utf8_lossy(&packet.payload));
        u32::from(packet.topic == topic)
    };
    for sequence in 0..args.count {
        let payload = hello_payload(&args.message, sequence);
        client.publish(&topic, QoS::AtLeastOnce, false, payload.clone()).await.map_err(|e| failed(e.to_string()))?;
        println!("Published topic {topic}: {payload}");
        let until = tokio::time::Instant::now() + Duration::from_millis(args.interval_ms);
        while let Ok(event) = tokio::time::timeout_at(until, events.recv()).await {
            match event {
                Some(Ok(Event::Incoming(Packet::Publish(p)))) => received += print_incoming(&p),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(failed(format!("connection lost: {e}"))),
                None => return Err(failed("connection closed")),
            }
        }
    }
    let deadline = tokio::time::Instant::now() + timeout;
    while received < args.count {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(Ok(Event::Incoming(Packet::Publish(p))))) => received += print_incoming(&p),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(failed(format!("connection lost: {e}"))),
            Ok(None) => return Err(failed("connection closed")),
            Err(_) => break,
        }
    }
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), pump).await;
    if received < args.count {
        return Err(failed(format!("only {received} of {} messages came back on {topic}", args.count)));
    }
    println!();
    println!("All {} messages came back.", args.count);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_matches_the_tutorial_sample() {
        assert_eq!(hello_payload("Hello World!", 0), r#"{"message": "Hello World!", "sequence": 0}"#);
        assert_eq!(hello_payload("a\"b", 9), r#"{"message": "a\"b", "sequence": 9}"#);
    }

    #[test]
    fn addresses_split_into_host_and_port() {
        assert_eq!(split_host("localhost:8883", "--broker", None).unwrap(), ("localhost".to_owned(), 8883));
        assert_eq!(split_host("[::1]:1883", "--broker", None).unwrap(), ("::1".to_owned(), 1883));
        assert_eq!(split_host("core.local", "--core", Some(8443)).unwrap(), ("core.local".to_owned(), 8443));
        assert!(split_host("nohost", "--broker", None).is_err());
        assert!(split_host("h:notaport", "--broker", None).is_err());
    }
}
