//! The brokers one run compares — Turf, mosquitto, and rumqttd when its binary is given — and
//! starting any of them afresh for a measurement that needs a new process (idle figures, memory
//! after load), each in a directory of its own under the run's scratch directory.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::brokers::{MosquittoProcess, Target, TurfProcess, allow_all, mosquitto_version};
use crate::report::{Broker, TURF};
use crate::rumqttd::{self, RumqttdProcess};

/// A broker process started by the lineup.
pub enum Running {
    /// `turf run`.
    Turf(TurfProcess),
    /// mosquitto configured like Turf.
    Mosquitto(MosquittoProcess),
    /// rumqttd, plain TCP only.
    Rumqttd(RumqttdProcess),
}

impl Running {
    /// Where it listens.
    pub fn target(&self) -> &Target {
        match self {
            Self::Turf(p) => &p.target,
            Self::Mosquitto(p) => &p.target,
            Self::Rumqttd(p) => &p.target,
        }
    }

    /// Stops it and waits for it to exit.
    pub fn stop(self) -> Result<()> {
        match self {
            Self::Turf(p) => p.stop(),
            Self::Mosquitto(p) => p.stop(),
            Self::Rumqttd(p) => p.stop(),
        }
    }
}

/// The brokers of a run and how to start each.
pub struct Lineup {
    /// The `turf` binary.
    turf: PathBuf,
    /// The `rumqttd` binary, when rumqttd takes part.
    rumqttd: Option<PathBuf>,
    /// A Turf root whose CA and server certificate mosquitto is started with.
    certs: PathBuf,
    /// Where configurations and fresh roots go.
    scratch: PathBuf,
    /// Brokers started so far (names their directories).
    started: Cell<usize>,
}

impl Lineup {
    /// A lineup taking certificates for mosquitto from the Turf root `certs`.
    pub fn new(turf: &Path, rumqttd: Option<&Path>, certs: &Path, scratch: &Path) -> Self {
        Self {
            turf: turf.to_path_buf(),
            rumqttd: rumqttd.map(Path::to_path_buf),
            certs: certs.to_path_buf(),
            scratch: scratch.to_path_buf(),
            started: Cell::new(0),
        }
    }

    /// The brokers taking part in plain-TCP scenarios (all), or in mTLS ones (`tls`).
    pub fn names(&self, tls: bool) -> Vec<&'static str> {
        let mut names = vec![TURF, "mosquitto"];
        if self.rumqttd.is_some() && !tls {
            names.push("rumqttd");
        }
        names
    }

    /// The table's columns: each broker with its version.
    pub fn columns(&self) -> Vec<Broker> {
        let mosquitto = mosquitto_version().replace("mosquitto version", "mosquitto");
        let mut columns = vec![column(TURF, "Turf"), column("mosquitto", &mosquitto)];
        if let Some(bin) = &self.rumqttd {
            columns.push(column("rumqttd", &rumqttd::version(bin)));
        }
        columns
    }

    /// A new Turf root with nothing in it but the allow-all device policy (Turf admits clients
    /// of its plain listener by device policy too), for scenarios whose memory figures should
    /// not include registered devices.
    pub fn policy_root(&self) -> Result<PathBuf> {
        let Running::Turf(turf) = self.start(TURF, None)? else { bail!("not Turf") };
        allow_all(&turf.api())?;
        let root = turf.root.clone();
        turf.stop()?;
        Ok(root)
    }

    /// Starts `name` afresh. Turf runs on `turf_root`, or on a new empty root when that is
    /// `None`; the others each get a new directory for their configuration.
    pub fn start(&self, name: &str, turf_root: Option<&Path>) -> Result<Running> {
        let n = self.started.get();
        self.started.set(n + 1);
        let dir = self.scratch.join(format!("{name}-{n}"));
        Ok(match name {
            TURF => Running::Turf(TurfProcess::start(&self.turf, turf_root.unwrap_or(&dir))?),
            "mosquitto" => Running::Mosquitto(MosquittoProcess::start(&self.certs, &dir)?),
            "rumqttd" => match &self.rumqttd {
                Some(bin) => Running::Rumqttd(RumqttdProcess::start(bin, &dir)?),
                None => bail!("rumqttd is not part of this run (--rumqttd)"),
            },
            other => bail!("no broker named {other}"),
        })
    }
}

fn column(name: &str, label: &str) -> Broker {
    Broker { name: name.to_owned(), label: if label.is_empty() { name.to_owned() } else { label.to_owned() } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rumqttd_takes_part_in_plain_scenarios_only_and_only_when_given() {
        let dir = Path::new("/nonexistent");
        let with = Lineup::new(dir, Some(dir), dir, dir);
        assert_eq!(with.names(false), ["turf", "mosquitto", "rumqttd"]);
        assert_eq!(with.names(true), ["turf", "mosquitto"]);
        let without = Lineup::new(dir, None, dir, dir);
        assert_eq!(without.names(false), ["turf", "mosquitto"]);
        assert!(without.start("rumqttd", None).is_err());
    }
}
