//! `turf run` as a child process: the binary exactly as a user starts it, with its printed
//! listener addresses, its resident memory, and the two ways it ends (SIGTERM, SIGKILL).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{TIMEOUT, turf_bin};

/// `turf run` in a child process, with its stdout lines.
pub struct RunningTurf {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    root: PathBuf,
    /// The plain loopback listener's port.
    pub plain: u16,
}

impl RunningTurf {
    /// Starts `turf run`; returns it with the MQTT and discovery ports.
    pub fn start(root: &Path) -> Result<(Self, u16, u16)> {
        Self::start_with(root, &[])
    }

    /// Starts `turf run` with `extra` flags.
    pub fn start_with(root: &Path, extra: &[&str]) -> Result<(Self, u16, u16)> {
        Self::spawn(Command::new(turf_bin()), root, extra)
    }

    /// Starts `turf run` with `env` added to its environment.
    pub fn start_with_env(root: &Path, env: &[(&str, &str)]) -> Result<(Self, u16, u16)> {
        let mut command = Command::new(turf_bin());
        command.envs(env.iter().copied());
        Self::spawn(command, root, &[])
    }

    /// Starts `turf run` with its soft open-files limit lowered to `soft` first (through the
    /// shell's `ulimit`), as systemd and login shells start services.
    pub fn start_with_soft_nofile(root: &Path, soft: u32) -> Result<(Self, u16, u16)> {
        let mut command = Command::new("sh");
        command.args(["-c", &format!("ulimit -Sn {soft} && exec \"$0\" \"$@\"")]).arg(turf_bin());
        Self::spawn(command, root, &[])
    }

    fn spawn(mut command: Command, root: &Path, extra: &[&str]) -> Result<(Self, u16, u16)> {
        let mut child = command
            .args(["--root", root.to_str().unwrap(), "run", "--mqtt-listen", "127.0.0.1:0"])
            .args([
                "--plain-listen",
                "127.0.0.1:0",
                "--discovery-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut running = Self { child, lines, root: root.to_path_buf(), plain: 0 };
        let deadline = Instant::now() + TIMEOUT;
        let port = |line: &str| line.rsplit(':').next().unwrap().parse::<u16>();
        let (mut mqtt, mut discovery, mut plain) = (None, None, None);
        while mqtt.is_none() || discovery.is_none() || plain.is_none() {
            let line = running
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .context("turf run printed no listener address")?;
            if line.starts_with("  devices (MQTT, mutual TLS): ") {
                mqtt = Some(port(&line)?);
            }
            if line.starts_with("  local tools (MQTT, plain):  ") {
                plain = Some(port(&line)?);
            }
            if line.starts_with("  discovery (HTTPS, mTLS): ") {
                discovery = Some(port(&line)?);
            }
        }
        running.plain = plain.unwrap();
        Ok((running, mqtt.unwrap(), discovery.unwrap()))
    }

    /// Runs another `turf` command against the same root.
    pub fn turf(&self, args: &[&str]) -> std::process::Output {
        Command::new(turf_bin()).arg("--root").arg(&self.root).args(args).output().unwrap()
    }

    /// The soft and hard limits of open files of the process (`/proc/PID/limits`).
    pub fn open_files_limits(&self) -> Result<(String, String)> {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.child.id()))?;
        let line = limits.lines().find(|l| l.starts_with("Max open files")).context("no open-files line")?;
        let mut fields = line.trim_start_matches("Max open files").split_whitespace();
        Ok((fields.next().context("no soft limit")?.to_owned(), fields.next().context("no hard limit")?.to_owned()))
    }

    /// Resident memory of the process now, in kB (`VmRSS`).
    pub fn rss_kb(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS line")?;
        Ok(line.split_whitespace().nth(1).context("VmRSS without a value")?.parse()?)
    }

    /// SIGKILL: no shutdown path runs at all.
    pub fn kill_9(mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM, then waits (bounded) for the exit.
    pub fn terminate(mut self) -> Result<std::process::ExitStatus> {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status()?;
        assert!(status.success());
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        bail!("turf run did not exit within {TIMEOUT:?} of SIGTERM")
    }
}

impl Drop for RunningTurf {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
