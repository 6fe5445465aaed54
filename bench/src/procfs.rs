//! What `/proc` says about a broker process: resident memory now (`VmRSS`), its peak while a
//! scenario runs (sampled every 50 ms on a thread of its own), and how often it wakes up and how
//! much CPU it uses while idle (context switches of all its threads, `utime + stime`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Resident set size of `pid` in kB (`VmRSS`).
pub fn rss_kb(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status_field(&status, "VmRSS:").context("no VmRSS")
}

/// The number after `key` in a `/proc/.../status` text.
fn status_field(status: &str, key: &str) -> Option<u64> {
    status.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok()
}

/// Samples a process's RSS every 50 ms until stopped (at most `limit`), keeping the highest.
pub struct PeakRss {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<u64>,
}

impl PeakRss {
    /// Starts sampling `pid`.
    pub fn start(pid: u32, limit: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut peak = 0;
            while !flag.load(Ordering::Relaxed) && started.elapsed() < limit {
                peak = peak.max(rss_kb(pid).unwrap_or(0));
                std::thread::sleep(Duration::from_millis(50));
            }
            peak.max(rss_kb(pid).unwrap_or(0))
        });
        Self { stop, thread }
    }

    /// Stops sampling; the highest RSS seen, kB.
    pub fn finish(self) -> Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.join() {
            Ok(peak) if peak > 0 => Ok(peak),
            Ok(_) => bail!("no RSS sample"),
            Err(_) => bail!("the RSS sampler stopped"),
        }
    }
}

/// Context switches (voluntary and not) summed over the threads of `pid` alive now.
pub fn context_switches(pid: u32) -> Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        // A thread that exits between the listing and the read is skipped.
        let Ok(status) = std::fs::read_to_string(task?.path().join("status")) else { continue };
        total += status_field(&status, "voluntary_ctxt_switches:").unwrap_or(0);
        total += status_field(&status, "nonvoluntary_ctxt_switches:").unwrap_or(0);
    }
    Ok(total)
}

/// CPU time of `pid` (all its threads, living and gone) in clock ticks: `utime + stime`.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    stat_cpu_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat"))?)
}

/// `utime + stime` from a `/proc/PID/stat` line (fields 14 and 15; the command name in field 2
/// may contain spaces and parentheses, so count from the last `)`).
fn stat_cpu_ticks(stat: &str) -> Result<u64> {
    let rest = stat.rsplit_once(')').context("malformed stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    let field = |n: usize| -> Result<u64> { Ok(fields.get(n - 3).context("short stat")?.parse()?) };
    Ok(field(14)? + field(15)?)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 where that fails, Linux's value everywhere).
pub fn ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// What an idle process did over a window.
pub struct Idle {
    /// Context switches per second, all threads.
    pub wakeups_per_second: f64,
    /// CPU time as % of one core.
    pub cpu_percent: f64,
}

/// Watches `pid` for `window` (blocking) and reports its wake-ups and CPU use.
pub fn idle(pid: u32, window: Duration) -> Result<Idle> {
    let (switches, ticks, started) = (context_switches(pid)?, cpu_ticks(pid)?, Instant::now());
    std::thread::sleep(window);
    let (switches_after, ticks_after) = (context_switches(pid)?, cpu_ticks(pid)?);
    let seconds = started.elapsed().as_secs_f64().max(1e-3);
    Ok(Idle {
        wakeups_per_second: switches_after.saturating_sub(switches) as f64 / seconds,
        cpu_percent: 100.0 * ticks_after.saturating_sub(ticks) as f64 / ticks_per_second() as f64 / seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_counted_after_the_command_name() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 4 0 100 1000 200";
        assert_eq!(stat_cpu_ticks(stat).ok(), Some(10));
        assert!(stat_cpu_ticks("42 (x) S 1").is_err());
    }

    #[test]
    fn this_process_has_rss_switches_and_cpu_time() {
        let pid = std::process::id();
        assert!(rss_kb(pid).is_ok_and(|kb| kb > 0));
        assert!(context_switches(pid).is_ok());
        assert!(cpu_ticks(pid).is_ok());
        assert!(ticks_per_second() > 0);
        let peak = PeakRss::start(pid, Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(120));
        assert!(peak.finish().is_ok_and(|kb| kb > 0));
    }
}
