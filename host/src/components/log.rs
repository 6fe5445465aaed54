//! A component's log file (`logs/<component>.log`): timestamped lines from the guest's stdout,
//! stderr, the `logging` interface and the host's lifecycle notes.
//!
//! Lines look like Greengrass's component logs:
//! `2026-11-27T10:49:24.908Z [INFO] com.example.X: stdout. Received new message: …`.
//! The file rotates by size (see `rotate`).
//! Writes are synchronous appends under a mutex, so lines from every source keep their order.
//! Implements WASI's stdout/stderr stream traits so guest `println!` lands here, one log line per
//! text line. Never grows without bound in one line: partial lines longer than 64 KiB are flushed.
//! What the guest writes is rate-limited (a token bucket over bytes, set by [`ComponentLog::limit`]):
//! past the rate lines are dropped, counted in the component's usage, and noted once per burst,
//! so a component printing in a loop neither fills the disk nor holds the thread writing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;

use super::budget::{Bucket, Usage};
use crate::rotate::RotatingFile;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest partial line buffered before it is written anyway.
const MAX_LINE: usize = 64 * 1024;

/// Severity written in brackets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `[TRACE]`
    Trace,
    /// `[DEBUG]`
    Debug,
    /// `[INFO]`
    Info,
    /// `[WARN]`
    Warn,
    /// `[ERROR]`
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }
}

struct Inner {
    file: Option<RotatingFile>,
    failed: bool,
    /// Guest output allowed, in bytes, and where drops are counted.
    rate: Option<(Bucket, Arc<Usage>)>,
    /// Bytes dropped since the last note in the file.
    dropped: u64,
}

/// Append-only, timestamped log of one component. Cheap to clone.
#[derive(Clone)]
pub struct ComponentLog {
    name: Arc<str>,
    path: Arc<PathBuf>,
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for ComponentLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentLog").field("path", &self.path).finish_non_exhaustive()
    }
}

impl ComponentLog {
    /// Opens (creating) `path` for appending lines of component `name`.
    pub fn open(name: &str, path: &Path) -> std::io::Result<Self> {
        let file = RotatingFile::open(path)?;
        Ok(Self {
            name: Arc::from(name),
            path: Arc::new(path.to_path_buf()),
            inner: Arc::new(Mutex::new(Inner { file: Some(file), failed: false, rate: None, dropped: 0 })),
        })
    }

    /// Path of the log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Limits what the guest writes to `bytes_per_sec` (bursts of 16 seconds' worth, and at
    /// least one longest line); drops are counted in `usage`.
    pub fn limit(&self, bytes_per_sec: usize, usage: Arc<Usage>) {
        let rate = bytes_per_sec as f64;
        let burst = (rate * 16.0).max(MAX_LINE as f64 + 1.0);
        if let Ok(mut inner) = self.inner.lock() {
            inner.rate = Some((Bucket::new(rate, burst, std::time::Instant::now()), usage));
        }
    }

    /// Appends one line; `source` is `stdout`, `stderr`, `log` or `lifecycle`.
    pub fn line(&self, level: Level, source: &str, text: &str) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if inner.dropped > 0 {
            let note = format!("{} bytes of output dropped: over the log rate", inner.dropped);
            inner.dropped = 0;
            self.write(&mut inner, Level::Warn, "lifecycle", &note);
        }
        self.write(&mut inner, level, source, text);
    }

    /// Appends one line the guest wrote, unless that is over its rate.
    pub fn guest_line(&self, level: Level, source: &str, text: &str) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if let Some((bucket, usage)) = inner.rate.as_mut()
            && !bucket.take(text.len() as f64 + 1.0, std::time::Instant::now())
        {
            Usage::add(&usage.dropped_log_bytes, text.len() as u64 + 1);
            inner.dropped += text.len() as u64 + 1;
            return;
        }
        drop(inner);
        self.line(level, source, text);
    }

    fn write(&self, inner: &mut Inner, level: Level, source: &str, text: &str) {
        let stamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
        let line = format!("{stamp} [{}] {}: {source}. {}\n", level.as_str(), self.name, text.trim_end_matches('\r'));
        let result = match inner.file.as_mut() {
            Some(file) => file.write_all(line.as_bytes()),
            None => return,
        };
        if let Err(error) = result
            && !inner.failed
        {
            inner.failed = true;
            tracing::error!(component = %self.name, path = %self.path.display(), %error, "cannot write component log; dropping lines");
        }
    }

    /// A WASI output stream that turns guest output into log lines.
    pub fn guest_stream(&self, source: &'static str, level: Level) -> GuestOutput {
        GuestOutput { log: self.clone(), source, level, partial: Arc::new(Mutex::new(Vec::new())) }
    }
}

/// Guest stdout or stderr, split into timestamped log lines.
#[derive(Clone)]
pub struct GuestOutput {
    log: ComponentLog,
    source: &'static str,
    level: Level,
    partial: Arc<Mutex<Vec<u8>>>,
}

impl GuestOutput {
    fn push(&self, bytes: &[u8]) {
        let Ok(mut partial) = self.partial.lock() else {
            return;
        };
        partial.extend_from_slice(bytes);
        while let Some(end) = partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = partial.drain(..=end).collect();
            self.log.guest_line(self.level, self.source, String::from_utf8_lossy(&line[..end]).as_ref());
        }
        if partial.len() > MAX_LINE {
            let line = std::mem::take(&mut *partial);
            self.log.guest_line(self.level, self.source, String::from_utf8_lossy(&line).as_ref());
        }
    }

    fn flush_partial(&self) {
        let Ok(mut partial) = self.partial.lock() else {
            return;
        };
        if !partial.is_empty() {
            let line = std::mem::take(&mut *partial);
            self.log.guest_line(self.level, self.source, String::from_utf8_lossy(&line).as_ref());
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LINE)
    }
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.flush_partial();
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_output_becomes_one_timestamped_line_per_text_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/c.log");
        let log = ComponentLog::open("com.example.C", &path).unwrap();
        let out = log.guest_stream("stdout", Level::Info);
        out.push(b"Received new message: a\nRecei");
        out.push(b"ved new message: b\n");
        log.line(Level::Error, "lifecycle", "trapped");
        out.push(b"tail");
        out.flush_partial();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].ends_with("[INFO] com.example.C: stdout. Received new message: a"), "{}", lines[0]);
        assert!(lines[1].ends_with("stdout. Received new message: b"));
        assert!(lines[2].contains("[ERROR] com.example.C: lifecycle. trapped"));
        assert!(lines[3].ends_with("stdout. tail"));
        assert_eq!(&lines[0][4..5], "-");
        assert!(lines[0][..24].ends_with('Z'), "{}", lines[0]);
    }

    #[test]
    fn guest_output_over_the_rate_is_dropped_counted_and_noted_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let log = ComponentLog::open("c", &path).unwrap();
        let usage = Arc::new(Usage::default());
        log.limit(4096, Arc::clone(&usage));
        let out = log.guest_stream("stdout", Level::Info);
        for _ in 0..10_000 {
            out.push(b"0123456789012345678\n");
        }
        log.line(Level::Info, "lifecycle", "RUNNING");
        let text = std::fs::read_to_string(&path).unwrap();
        // A burst of 64 KiB + 1 (one longest line; 16 s at 4 KiB/s is the same), 20 bytes a line,
        // plus what refilled while the loop ran.
        let written = text.matches("stdout. 0123").count();
        assert!((3276..3400).contains(&written), "{written} lines written");
        let dropped = usage.report(0).dropped_log_bytes;
        assert_eq!(dropped, (10_000 - written as u64) * 20);
        let noted: u64 = text
            .lines()
            .filter_map(|l| l.split("lifecycle. ").nth(1)?.strip_suffix(" bytes of output dropped: over the log rate"))
            .map(|n| n.parse::<u64>().unwrap())
            .sum();
        assert_eq!(noted, dropped, "every dropped byte is noted in the log, once per burst");
        assert!(text.trim_end().ends_with("lifecycle. RUNNING"));
    }

    #[test]
    fn endless_lines_are_split_not_buffered_forever() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let log = ComponentLog::open("c", &path).unwrap();
        let out = log.guest_stream("stdout", Level::Info);
        out.push(&vec![b'x'; MAX_LINE + 10]);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
    }
}
