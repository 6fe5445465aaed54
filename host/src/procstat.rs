//! The host process's own figures from `/proc/self`: resident memory, CPU time, open file
//! descriptors and threads (Prometheus's standard `process_*` metrics, and `turf status`).

use serde::{Deserialize, Serialize};

/// The process's figures now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessStats {
    /// Resident memory (`VmRSS`), bytes.
    pub resident_bytes: u64,
    /// User and system CPU time, milliseconds.
    pub cpu_ms: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The process's file descriptor limit (soft).
    pub max_fds: u64,
    /// Threads.
    pub threads: u64,
}

/// Reads the figures; one that cannot be read is reported as 0.
pub fn read() -> ProcessStats {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let (ticks, threads) = cpu_ticks_and_threads(&stat).unwrap_or_default();
    ProcessStats {
        resident_bytes: status_kib(&status, "VmRSS:").unwrap_or(0) * 1024,
        cpu_ms: (ticks as f64 * 1000.0 / clock_ticks_per_second()) as u64,
        open_fds: std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64),
        max_fds: open_files_limit(&limits).unwrap_or(0),
        threads,
    }
}

/// A `Key:   123 kB` line of `/proc/self/status`, in KiB.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// `utime + stime` (clock ticks) and `num_threads` from `/proc/self/stat`. The command name
/// (field 2) may hold spaces and parentheses, so fields are counted after its last `)`.
fn cpu_ticks_and_threads(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so field N is fields[N - 3].
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    let threads: u64 = fields.get(20 - 3)?.parse().ok()?;
    Some((utime + stime, threads))
}

/// The soft `Max open files` of `/proc/self/limits`.
fn open_files_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

/// The kernel's clock tick for `/proc` times (`USER_HZ`).
fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value; it has no preconditions.
    #[allow(unsafe_code)]
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse_including_a_command_name_with_parentheses_and_spaces() {
        let stat = "4242 (turf (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 7 0 12345 0 0";
        assert_eq!(cpu_ticks_and_threads(stat), Some((300, 7)));
        assert_eq!(cpu_ticks_and_threads("garbage"), None);
        assert_eq!(status_kib("Name:\tturf\nVmRSS:\t   20480 kB\n", "VmRSS:"), Some(20480));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(open_files_limit(limits), Some(1024));
    }

    #[test]
    fn this_process_has_memory_threads_and_open_files() {
        let stats = read();
        assert!(stats.resident_bytes > 0 && stats.threads > 0 && stats.open_fds > 0 && stats.max_fds > 0, "{stats:?}");
    }
}
