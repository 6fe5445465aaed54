//! Size-rotated log files: `NAME.log` grows to a limit, then becomes `NAME.log.1` (older ones
//! shift to `.2` … up to a kept count; the oldest is deleted) and a fresh `NAME.log` starts.
//!
//! Used for component logs and the host log. A line is never split across files: rotation
//! happens before a write that would cross the limit. Readers (`turf logs`) find the rotated
//! files with [`rotated_files`].

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Rotate a log file once it would pass this size.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Rotated files kept beside the live one.
pub const KEEP: usize = 5;

/// An append-only file that rotates by size.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    keep: usize,
}

impl RotatingFile {
    /// Opens (creating) `path` with the default limits.
    pub fn open(path: &Path) -> io::Result<Self> {
        Self::with_limits(path, MAX_FILE_BYTES, KEEP)
    }

    /// Opens (creating) `path`, rotating past `max_bytes` and keeping `keep` old files.
    pub fn with_limits(path: &Path, max_bytes: u64, keep: usize) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Self { path: path.to_path_buf(), file, size, max_bytes: max_bytes.max(1), keep })
    }

    fn rotate(&mut self) -> io::Result<()> {
        let numbered = |n: usize| numbered_path(&self.path, n);
        if self.keep == 0 {
            self.file = OpenOptions::new().create(true).write(true).truncate(true).open(&self.path)?;
            self.size = 0;
            return Ok(());
        }
        let oldest = numbered(self.keep);
        if oldest.exists() {
            std::fs::remove_file(&oldest)?;
        }
        for n in (1..self.keep).rev() {
            let from = numbered(n);
            if from.exists() {
                std::fs::rename(&from, numbered(n + 1))?;
            }
        }
        std::fs::rename(&self.path, numbered(1))?;
        self.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let len = u64::try_from(buf.len()).unwrap_or(u64::MAX);
        if self.size > 0 && self.size.saturating_add(len) > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(buf)?;
        self.size = self.size.saturating_add(len);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn numbered_path(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// The rotated files of `path` that exist, oldest first (then comes `path` itself).
pub fn rotated_files(path: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = (1..=64).map(|n| numbered_path(path, n)).take_while(|p| p.exists()).collect();
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_whole_writes_and_keeps_a_bounded_number_of_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut log = RotatingFile::with_limits(&path, 10, 2).unwrap();
        for line in ["aaaa\n", "bbbb\n", "cccc\n", "dddd\n", "eeee\n", "ffff\n", "gggg\n"] {
            log.write_all(line.as_bytes()).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "gggg\n");
        assert_eq!(std::fs::read_to_string(dir.path().join("c.log.1")).unwrap(), "eeee\nffff\n");
        assert_eq!(std::fs::read_to_string(dir.path().join("c.log.2")).unwrap(), "cccc\ndddd\n");
        assert!(!dir.path().join("c.log.3").exists());
        assert_eq!(rotated_files(&path), vec![dir.path().join("c.log.2"), dir.path().join("c.log.1")]);
    }

    #[test]
    fn a_write_bigger_than_the_limit_still_lands_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut log = RotatingFile::with_limits(&path, 4, 1).unwrap();
        log.write_all(b"0123456789\n").unwrap();
        log.write_all(b"x\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x\n");
        assert_eq!(std::fs::read_to_string(dir.path().join("c.log.1")).unwrap(), "0123456789\n");
    }

    #[test]
    fn reopening_continues_counting_from_the_existing_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        std::fs::write(&path, "12345678\n").unwrap();
        let mut log = RotatingFile::with_limits(&path, 10, 1).unwrap();
        log.write_all(b"next\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "next\n");
    }
}
