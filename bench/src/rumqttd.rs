//! rumqttd 0.20 (the crates.io broker, `make bench` installs it under `target/peers`) as a child
//! process: its TOML configuration, sized for these scenarios, and starting and stopping it.
//!
//! It takes part in the plain-TCP scenarios only. Its TLS listener cannot do what the other two
//! do here: it trusts only the first certificate of its CA file, verifies client certificates
//! only when built with a non-default feature, and handshakes inline in its accept loop.

use std::path::Path;
use std::process::{Child, Command};

use anyhow::{Context, Result};

use crate::brokers::{Target, free_port, kill_if_running, terminate, wait_listening};

/// Bytes per segment of each subscription filter's in-memory log. rumqttd keeps every message
/// of a filter in a log of [`SEGMENT_COUNT`] segments; a subscriber that falls further behind
/// than the log holds skips to its head, losing what it had not read, and publishers are never
/// slowed down. rumqttd counts only `4 + topic + payload` bytes of a message against a segment
/// (about 85 for these 64-byte messages: some 50,000 per log), while a stored message takes
/// about 310 bytes of memory. Its sample configuration's 100 MB × 10 would hold a whole run, at
/// up to 3 GB per filter.
pub const SEGMENT_BYTES: usize = 1 << 20;
/// Segments per filter: 4 × 1 MiB, at most some 15 MB resident per filter.
pub const SEGMENT_COUNT: usize = 4;

/// The configuration: one MQTT 3.1.1 (v4) listener on `port`, 128 KiB packets, the network read
/// batch (`max_inflight_count`) at 1024; no TLS, v5, websocket, console or metrics listeners.
fn config(port: u16) -> String {
    format!(
        "id = 0\n\n[router]\nid = 0\nmax_connections = 10010\nmax_outgoing_packet_count = 200\n\
         max_segment_size = {SEGMENT_BYTES}\nmax_segment_count = {SEGMENT_COUNT}\n\n\
         [v4.1]\nname = \"v4-1\"\nlisten = \"127.0.0.1:{port}\"\nnext_connection_delay_ms = 0\n\n\
         [v4.1.connections]\nconnection_timeout_ms = 60000\nmax_payload_size = 131072\n\
         max_inflight_count = 1024\ndynamic_filters = true\n"
    )
}

/// rumqttd in a child process.
pub struct RumqttdProcess {
    child: Child,
    /// Where it listens (plain only).
    pub target: Target,
}

impl RumqttdProcess {
    /// Starts `bin` with a configuration written under `dir` and waits (at most 10 s) until its
    /// port accepts connections.
    pub fn start(bin: &Path, dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let plain_port = free_port()?;
        let path = dir.join("rumqttd.toml");
        std::fs::write(&path, config(plain_port))?;
        // It logs (to stdout) a warning for each subscriber that skipped ahead; keep them for a look.
        let log = std::fs::File::create(dir.join("rumqttd.log"))?;
        let errors = log.try_clone()?;
        let child = Command::new(bin)
            .arg("-q")
            .arg("-c")
            .arg(&path)
            .stdout(log)
            .stderr(errors)
            .spawn()
            .with_context(|| format!("start {} (make bench installs it)", bin.display()))?;
        let pid = child.id();
        // Made before the wait, so that dropping it on failure kills the child.
        let rumqttd = Self { child, target: Target { name: "rumqttd", tls_port: None, plain_port, pid } };
        wait_listening(plain_port, "rumqttd").with_context(|| format!("see {}", dir.join("rumqttd.log").display()))?;
        Ok(rumqttd)
    }

    /// Stops it.
    pub fn stop(mut self) -> Result<()> {
        terminate(&mut self.child)
    }
}

impl Drop for RumqttdProcess {
    fn drop(&mut self) {
        kill_if_running(&mut self.child);
    }
}

/// `rumqttd -V`, e.g. `rumqttd 0.20.0`.
pub fn version(bin: &Path) -> String {
    Command::new(bin)
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_has_one_plain_v4_listener_on_loopback() {
        let config = config(18830);
        assert!(config.contains("[v4.1]\n"));
        assert!(config.contains("listen = \"127.0.0.1:18830\""));
        assert!(config.contains("max_segment_size = 1048576\nmax_segment_count = 4\n"));
        for absent in ["[v5", "[ws", "tls", "[console", "[prometheus"] {
            assert!(!config.contains(absent), "{absent}");
        }
    }
}
