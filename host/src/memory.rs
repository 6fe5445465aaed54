//! Giving memory back to the kernel once a burst of work is over.
//!
//! Two things keep a long-running host's resident set high after the work that needed it ended:
//! - glibc keeps freed heap pages (a burst of messages, a deployment) for reuse, and gives back
//!   only the top of each arena on its own; `malloc_trim(0)` returns every free page;
//! - the pages of the `turf` binary that ran once (start-up, a deployment, TLS set-up) stay
//!   mapped, and the kernel maps code in 64 KiB blocks around each page that runs, so one-off code
//!   spread over a 25 MB binary keeps megabytes resident. `madvise(MADV_PAGEOUT)` on the code
//!   tells the kernel to reclaim them; what runs again later is read back in. (The same
//!   technique the Android runtime uses for apps that went to the background.)
//!
//! [`Trimmer`] does this once the host is quiet: it is told when a burst of work might have ended
//! (start-up or a deployment finished: [`Burst::OneOff`]; a connection closed: [`Burst::Traffic`])
//! and when messages flow ([`Trimmer::busy`], a counter bump per publish); it trims after
//! [`SETTLE`] with no message. Code is paged out only after one-off work: the code traffic runs is
//! the code the next message needs (paged out, it would be read back from disk). It has no timer
//! of its own: an idle host stays idle. Linux with glibc only; elsewhere it does nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long after the last hint the trim runs (hints in a burst make one trim).
pub const SETTLE: Duration = Duration::from_secs(2);

/// Returns free heap pages to the kernel and, with `code`, once-run code pages too.
pub fn trim(code: bool) {
    trim_heap();
    if code {
        page_out_code();
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_heap() {
    // SAFETY: malloc_trim takes no pointers; it only walks glibc's own arenas under their locks.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

/// The executable mappings of the running binary, from `/proc/self/maps`.
#[cfg(target_os = "linux")]
fn own_code_ranges() -> Vec<(usize, usize)> {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else { return Vec::new() };
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else { return Vec::new() };
    code_ranges(&maps, &exe.to_string_lossy())
}

/// The `r-xp` mappings of `path` in a `/proc/PID/maps` text, as (start, length).
fn code_ranges(maps: &str, path: &str) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (range, perms) = (fields.next()?, fields.next()?);
            let mapped = fields.nth(3)?;
            if perms != "r-xp" || mapped != path {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            let (start, end) = (usize::from_str_radix(start, 16).ok()?, usize::from_str_radix(end, 16).ok()?);
            (end > start).then_some((start, end - start))
        })
        .collect()
}

#[cfg(target_os = "linux")]
fn page_out_code() {
    for (start, len) in own_code_ranges() {
        // SAFETY: the range is a whole mapping of this process's own executable, read from
        // /proc/self/maps; MADV_PAGEOUT only asks the kernel to reclaim its clean pages, which
        // are read back on the next access. It changes no memory contents. Kernels before 5.4
        // answer EINVAL, which is ignored.
        #[allow(unsafe_code)]
        unsafe {
            libc::madvise(start as *mut libc::c_void, len, libc::MADV_PAGEOUT);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn page_out_code() {}

/// What a burst of work was, and so what to give back after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Burst {
    /// Messages or connections: heap only (the code they ran is the code that runs next time).
    Traffic,
    /// Start-up or a deployment: heap, and the code that ran once.
    OneOff,
}

/// Trims memory once work seems to be over: call [`Trimmer::hint`] whenever a burst might have
/// ended and [`Trimmer::busy`] for every message; the trim runs on a blocking thread once
/// [`SETTLE`] passed after the last hint with no message. One task waits at a time, however
/// many hints arrive.
#[derive(Clone, Default)]
pub struct Trimmer(Arc<TrimState>);

#[derive(Default)]
struct TrimState {
    /// The trim to come, if any: when, and the largest burst hinted since the last trim.
    due: Mutex<Due>,
    /// Messages seen; a trim waits until it stops moving.
    activity: AtomicU64,
}

#[derive(Default)]
struct Due {
    at: Option<Instant>,
    burst: Option<Burst>,
    /// Whether a task is waiting for `at`.
    waiting: bool,
}

impl TrimState {
    fn due(&self) -> MutexGuard<'_, Due> {
        self.due.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for Trimmer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let due = self.0.due();
        write!(f, "Trimmer(due: {:?}, burst: {:?})", due.at, due.burst)
    }
}

impl Trimmer {
    /// A trimmer with nothing scheduled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes that a message went through (cheap: one relaxed counter bump).
    pub fn busy(&self) {
        self.0.activity.fetch_add(1, Ordering::Relaxed);
    }

    /// Schedules a trim [`SETTLE`] from now (a trim already scheduled moves). Must be called
    /// inside a tokio runtime.
    pub fn hint(&self, burst: Burst) {
        {
            let mut due = self.0.due();
            due.at = Some(Instant::now() + SETTLE);
            due.burst = due.burst.max(Some(burst));
            if std::mem::replace(&mut due.waiting, true) {
                return;
            }
        }
        let state = Arc::clone(&self.0);
        tokio::spawn(async move {
            let mut seen = state.activity.load(Ordering::Relaxed);
            let burst = loop {
                let at = {
                    let mut due = state.due();
                    match due.at {
                        Some(at) if at > Instant::now() => at,
                        _ => {
                            // Messages flowed meanwhile: wait for a quiet period.
                            let now = state.activity.load(Ordering::Relaxed);
                            if now != seen {
                                seen = now;
                                due.at = Some(Instant::now() + SETTLE);
                                continue;
                            }
                            // Decided under the lock: a hint from now on starts a new wait.
                            due.at = None;
                            due.waiting = false;
                            break due.burst.take();
                        }
                    }
                };
                tokio::time::sleep_until(at.into()).await;
            };
            let code = burst == Some(Burst::OneOff);
            let _ = tokio::task::spawn_blocking(move || trim(code)).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_ranges_are_the_executable_mappings_of_the_binary_only() {
        let maps = "\
55d0c0000000-55d0c0100000 r--p 00000000 fd:01 42 /usr/bin/turf
55d0c0100000-55d0c1a00000 r-xp 00100000 fd:01 42 /usr/bin/turf
55d0c1a00000-55d0c1b00000 r--p 01a00000 fd:01 42 /usr/bin/turf
7f0000000000-7f0000200000 r-xp 00000000 fd:01 7 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000400000-7f0000500000 rw-p 00000000 00:00 0
not a line
";
        assert_eq!(code_ranges(maps, "/usr/bin/turf"), vec![(0x55d0c0100000, 0x1900000)]);
        assert!(code_ranges(maps, "/usr/bin/other").is_empty());
    }

    #[test]
    fn trimming_is_harmless_for_running_code() {
        trim(true);
        // This test still runs: its own code faulted back in.
        assert_eq!(code_ranges("", "x"), Vec::new());
    }
}
