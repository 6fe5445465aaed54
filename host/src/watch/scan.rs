//! Which watched files changed and are complete: the settle rules.
//!
//! Each scan lists files with their size and modification time. A changed file is reported as
//! *settled* once its writer closed it or renamed it into place (the caller passes those paths
//! as `complete`, from the file-system events), or, for a writer that never says so, once it
//! looked the same in two scans in a row and its last change is at least the settle time ago:
//! a writer still copying a file keeps changing its size or time, so a half-written file is
//! never reported. Editors' temporary files (hidden, `~`, `.tmp`, `.part`, `.swp`) are
//! skipped. Pure apart from [`scan`], which reads the folder.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// What a scan knows about a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileState {
    /// Size in bytes.
    pub size: u64,
    /// Last modification.
    pub modified: SystemTime,
}

/// A change worth acting on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The file is new or changed, and has settled.
    Settled(PathBuf),
    /// The file is gone.
    Removed(PathBuf),
}

#[derive(Debug, Clone)]
struct Seen {
    state: FileState,
    changed_at: Instant,
    /// True once this version of the file was reported.
    reported: bool,
}

/// Tracks one set of watched files across scans.
#[derive(Debug, Clone)]
pub struct Tracker {
    seen: BTreeMap<PathBuf, Seen>,
    settle: Duration,
}

impl Tracker {
    /// A tracker that reports a change once the file stayed the same for `settle`.
    pub fn new(settle: Duration) -> Self {
        Self { seen: BTreeMap::new(), settle }
    }

    /// Feeds one scan taken at `now`; `complete` are files whose writer closed them or renamed
    /// them into place since the last scan. Returns the settled and removed files, in path order.
    pub fn observe(
        &mut self,
        now: Instant,
        scan: &BTreeMap<PathBuf, FileState>,
        complete: &BTreeSet<PathBuf>,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        let gone: Vec<PathBuf> = self.seen.keys().filter(|p| !scan.contains_key(*p)).cloned().collect();
        for path in gone {
            if self.seen.remove(&path).is_some_and(|s| s.reported) {
                changes.push(Change::Removed(path));
            }
        }
        for (path, state) in scan {
            let seen =
                self.seen.entry(path.clone()).or_insert(Seen { state: *state, changed_at: now, reported: false });
            if seen.state != *state {
                *seen = Seen { state: *state, changed_at: now, reported: false };
            }
            let settled = complete.contains(path) || now.duration_since(seen.changed_at) >= self.settle;
            let unchanged_since_seen = seen.changed_at < now || complete.contains(path);
            if !seen.reported && settled && unchanged_since_seen {
                seen.reported = true;
                changes.push(Change::Settled(path.clone()));
            }
        }
        changes.sort_by(|a, b| change_path(a).cmp(change_path(b)));
        changes
    }

    /// Whether `path` was seen and reported settled in its current state.
    pub fn is_settled(&self, path: &Path) -> bool {
        self.seen.get(path).is_some_and(|s| s.reported)
    }

    /// The earliest time a file seen changing, and not yet reported, could settle.
    pub fn next_settle(&self) -> Option<Instant> {
        self.seen.values().filter(|s| !s.reported).map(|s| s.changed_at + self.settle).min()
    }
}

fn change_path(change: &Change) -> &Path {
    match change {
        Change::Settled(p) | Change::Removed(p) => p,
    }
}

/// True for names editors and copy tools use while writing.
pub fn is_temporary(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with('~')
        || [".tmp", ".part", ".swp", ".swx", ".crdownload"].iter().any(|ext| name.ends_with(ext))
}

/// Lists the regular files under `dir` (recursively when `deep`), skipping temporary ones.
/// A missing folder lists as empty.
pub fn scan(dir: &Path, deep: bool) -> BTreeMap<PathBuf, FileState> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut folders = 0usize;
    while let Some(dir) = stack.pop() {
        folders += 1;
        if folders > 10_000 {
            tracing::warn!(dir = %dir.display(), "watched folder too deep; stopping at 10000 folders");
            break;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if is_temporary(&name.to_string_lossy()) {
                continue;
            }
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.is_dir() {
                if deep {
                    stack.push(entry.path());
                }
            } else if meta.is_file() {
                let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                out.insert(entry.path(), FileState { size: meta.len(), modified });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(size: u64, secs: u64) -> FileState {
        FileState { size, modified: SystemTime::UNIX_EPOCH + Duration::from_secs(secs) }
    }

    fn files(entries: &[(&str, FileState)]) -> BTreeMap<PathBuf, FileState> {
        entries.iter().map(|(p, s)| (PathBuf::from(p), *s)).collect()
    }

    fn none() -> BTreeSet<PathBuf> {
        BTreeSet::new()
    }

    fn closed(path: &str) -> BTreeSet<PathBuf> {
        [PathBuf::from(path)].into_iter().collect()
    }

    #[test]
    fn a_file_is_reported_once_it_stopped_changing() {
        let settle = Duration::from_millis(400);
        let mut t = Tracker::new(settle);
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        assert!(t.observe(ms(0), &files(&[("a.wasm", state(10, 1))]), &none()).is_empty());
        // Still growing: not yet.
        assert!(t.observe(ms(250), &files(&[("a.wasm", state(20, 1))]), &none()).is_empty());
        assert!(t.observe(ms(500), &files(&[("a.wasm", state(20, 1))]), &none()).is_empty(), "settle time not over");
        assert_eq!(
            t.observe(ms(700), &files(&[("a.wasm", state(20, 1))]), &none()),
            vec![Change::Settled("a.wasm".into())]
        );
        assert!(t.observe(ms(900), &files(&[("a.wasm", state(20, 1))]), &none()).is_empty(), "reported once");
        // Rewritten with the same size: the time gives it away.
        t.observe(ms(1000), &files(&[("a.wasm", state(20, 2))]), &none());
        assert_eq!(
            t.observe(ms(1500), &files(&[("a.wasm", state(20, 2))]), &none()),
            vec![Change::Settled("a.wasm".into())]
        );
        assert_eq!(t.observe(ms(1600), &files(&[]), &none()), vec![Change::Removed("a.wasm".into())]);
    }

    #[test]
    fn a_file_closed_or_renamed_into_place_is_reported_at_once() {
        let mut t = Tracker::new(Duration::from_millis(400));
        let t0 = Instant::now();
        assert_eq!(
            t.observe(t0, &files(&[("a.wasm", state(20, 1))]), &closed("a.wasm")),
            vec![Change::Settled("a.wasm".into())]
        );
        assert!(t.observe(t0, &files(&[("a.wasm", state(20, 1))]), &closed("a.wasm")).is_empty(), "once");
        // Written again without being closed yet: it waits for the settle time.
        assert!(t.observe(t0 + Duration::from_millis(10), &files(&[("a.wasm", state(30, 2))]), &none()).is_empty());
        assert_eq!(t.next_settle(), Some(t0 + Duration::from_millis(410)));
        assert_eq!(
            t.observe(t0 + Duration::from_millis(20), &files(&[("a.wasm", state(40, 3))]), &closed("a.wasm")),
            vec![Change::Settled("a.wasm".into())]
        );
        assert_eq!(t.next_settle(), None);
    }

    #[test]
    fn a_file_gone_before_it_settled_is_not_reported_at_all() {
        let mut t = Tracker::new(Duration::from_millis(400));
        let t0 = Instant::now();
        t.observe(t0, &files(&[("half.wasm", state(1, 1))]), &none());
        assert!(t.observe(t0 + Duration::from_millis(100), &files(&[]), &none()).is_empty());
    }

    #[test]
    fn temporary_names_are_skipped() {
        for name in [".hello-1.0.0.wasm.swp", "hello-1.0.0.wasm~", "hello-1.0.0.wasm.part", "x.tmp", ".hidden"] {
            assert!(is_temporary(name), "{name}");
        }
        assert!(!is_temporary("hello-1.0.0.wasm"));
    }

    #[test]
    fn scanning_lists_files_and_skips_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a.json"), "{}").unwrap();
        std::fs::write(dir.path().join("sub/b.yaml"), "x").unwrap();
        std::fs::write(dir.path().join(".a.json.swp"), "x").unwrap();
        assert_eq!(scan(dir.path(), false).len(), 1);
        assert_eq!(scan(dir.path(), true).len(), 2);
        assert!(scan(&dir.path().join("missing"), true).is_empty());
    }
}
