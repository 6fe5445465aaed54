//! `turf client publish`: a simulated client device, like the tutorial's `basic_discovery.py`.
//!
//! Connects with its thing name as client id and its issued certificate (mutual TLS, clean
//! session off, keepalive 30 s), subscribes to the topic, publishes
//! `{"message": M, "sequence": i}` N times at QoS 1, prints every publish and every message it
//! receives, and succeeds when all of its messages came back. Every wait is bounded.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeReasonCode, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::mpsc;

use super::CliError;
use crate::devices::files;

/// `turf client publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Thing name (also the MQTT client id).
    #[arg(long)]
    pub thing: String,
    /// Folder holding device.pem.crt, private.pem.key and ca.pem (from `turf device add`).
    #[arg(long)]
    pub certs: PathBuf,
    /// Broker address, HOST:PORT.
    #[arg(long, default_value = "localhost:8883")]
    pub broker: String,
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
    /// Longest to wait for the connection and for the last echo, in seconds.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
}

fn failed(text: impl Into<String>) -> CliError {
    CliError::Failed(text.into())
}

/// A rustls client configuration with the device's certificate, trusting `ca.pem`.
pub fn device_tls(certs: &Path) -> Result<rustls::ClientConfig, CliError> {
    let read = |name: &str| certs.join(name);
    let bad = |path: PathBuf, e: &dyn std::fmt::Display| failed(format!("{}: {e}", path.display()));
    let mut roots = rustls::RootCertStore::empty();
    let ca_path = read(files::CA);
    for cert in CertificateDer::pem_file_iter(&ca_path).map_err(|e| bad(ca_path.clone(), &e))? {
        roots.add(cert.map_err(|e| bad(ca_path.clone(), &e))?).map_err(|e| bad(ca_path.clone(), &e))?;
    }
    let cert_path = read(files::CERT);
    let chain = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| bad(cert_path.clone(), &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(cert_path.clone(), &e))?;
    let key_path = read(files::KEY);
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| bad(key_path.clone(), &e))?;
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| failed(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| failed(format!("device certificate and key do not match: {e}")))
}

fn split_broker(broker: &str) -> Result<(String, u16), CliError> {
    let (host, port) =
        broker.rsplit_once(':').ok_or_else(|| CliError::Usage(format!("--broker {broker:?}: expected HOST:PORT")))?;
    let port = port.parse().map_err(|_| CliError::Usage(format!("--broker {broker:?}: bad port")))?;
    Ok((host.trim_start_matches('[').trim_end_matches(']').to_owned(), port))
}

/// The payload the tutorial's sample publishes (Python `json.dumps` spacing).
pub fn hello_payload(message: &str, sequence: u32) -> String {
    let message = serde_json::to_string(message).unwrap_or_else(|_| "\"\"".to_owned());
    format!("{{\"message\": {message}, \"sequence\": {sequence}}}")
}

/// Runs the simulated device.
#[allow(clippy::print_stdout)] // command output
pub async fn publish(args: PublishArgs) -> Result<(), CliError> {
    let (host, port) = split_broker(&args.broker)?;
    let topic = args.topic.clone().unwrap_or_else(|| format!("clients/{}/hello/world", args.thing));
    let tls = device_tls(&args.certs)?;
    let mut options = MqttOptions::new(args.thing.clone(), host.clone(), port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_clean_session(false);
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(tls))));
    let (client, mut eventloop) = AsyncClient::new(options, 64);
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
    let timeout = Duration::from_secs(args.timeout);
    println!("Connecting to {host}:{port} as {}...", args.thing);
    loop {
        match tokio::time::timeout(timeout, events.recv()).await.ok().flatten() {
            Some(Ok(Event::Incoming(Packet::ConnAck(_)))) => break,
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(failed(format!("connection failed: {e}"))),
            None => return Err(failed(format!("no CONNACK within {} s", args.timeout))),
        }
    }
    println!("Connected!");
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
            None => return Err(failed(format!("no SUBACK within {} s", args.timeout))),
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
    fn broker_addresses_split_into_host_and_port() {
        assert_eq!(split_broker("localhost:8883").unwrap(), ("localhost".to_owned(), 8883));
        assert_eq!(split_broker("[::1]:1883").unwrap(), ("::1".to_owned(), 1883));
        assert!(split_broker("nohost").is_err());
        assert!(split_broker("h:notaport").is_err());
    }
}
