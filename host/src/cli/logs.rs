//! `turf logs NAME [--follow] [--since DURATION]`: a component's log (`DIR/logs/NAME.log`,
//! with its rotated files), or the host's own with `turf logs turf`. Reads the files directly,
//! so it works with the host stopped too.
//!
//! `--since` keeps lines whose leading timestamp is recent enough (lines without one belong to
//! the line before). `--follow` keeps printing new lines and follows the file across rotation.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{CliError, LogsArgs};
use crate::layout::RootLayout;
use crate::rotate;

/// How often `--follow` looks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// Parses `90s`, `10m`, `2h`, `1d`, `1h30m`; a bare number means seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("--since {text:?}: expected a duration like 30s, 10m, 2h, 1d or 1h30m");
    let text = text.trim();
    if text.is_empty() || text.len() > 32 {
        return Err(bad());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            number.push(ch);
            continue;
        }
        let unit = match ch {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let value: u64 = number.parse().map_err(|_| bad())?;
        total = value.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// The timestamp a log line starts with, if any (component and host lines both start with an
/// RFC 3339 time).
fn line_time(line: &str) -> Option<DateTime<Utc>> {
    let first = line.split_whitespace().next()?;
    DateTime::parse_from_rfc3339(first).ok().map(|t| t.with_timezone(&Utc))
}

/// Keeps lines at or after `since`; untimed lines follow the decision for the line before.
struct SinceFilter {
    since: Option<DateTime<Utc>>,
    keeping: bool,
}

impl SinceFilter {
    fn new(since: Option<DateTime<Utc>>) -> Self {
        Self { since, keeping: since.is_none() }
    }

    fn keep(&mut self, line: &str) -> bool {
        if let (Some(since), Some(at)) = (self.since, line_time(line)) {
            self.keeping = at >= since;
        }
        self.keeping
    }
}

fn log_path(layout: &RootLayout, name: &str) -> Result<PathBuf, CliError> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(CliError::Usage(format!("{name:?} is not a component name")));
    }
    Ok(if name == "turf" { layout.logs_dir().join("turf.log") } else { layout.component_log(name) })
}

fn print_file(path: &Path, filter: &mut SinceFilter, out: &mut impl Write) -> std::io::Result<u64> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut line = String::new();
    let mut read = 0u64;
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n == 0 || !line.ends_with('\n') {
            // A partial last line is left for --follow to pick up once complete.
            return Ok(read);
        }
        read += u64::try_from(n).unwrap_or(0);
        if filter.keep(&line) {
            out.write_all(line.as_bytes())?;
        }
    }
}

/// Runs `turf logs`.
pub async fn execute(layout: &RootLayout, args: LogsArgs) -> Result<(), CliError> {
    let path = log_path(layout, &args.name)?;
    if !path.exists() {
        let known: Vec<String> = std::fs::read_dir(layout.logs_dir())
            .map(|dir| {
                dir.filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".log").map(str::to_owned)).collect()
            })
            .unwrap_or_default();
        return Err(CliError::Failed(format!(
            "no log for {} at {} (logs there: {})",
            args.name,
            path.display(),
            if known.is_empty() { "none".to_owned() } else { known.join(", ") }
        )));
    }
    let since = match &args.since {
        Some(text) => {
            let ago = parse_duration(text).map_err(CliError::Usage)?;
            Some(Utc::now() - chrono::Duration::from_std(ago).unwrap_or(chrono::Duration::MAX))
        }
        None => None,
    };
    let mut filter = SinceFilter::new(since);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let io = |e: std::io::Error| CliError::Failed(format!("reading {}: {e}", path.display()));
    for old in rotate::rotated_files(&path) {
        print_file(&old, &mut filter, &mut out).map_err(io)?;
    }
    let offset = print_file(&path, &mut filter, &mut out).map_err(io)?;
    out.flush().map_err(io)?;
    drop(out);
    if args.follow {
        follow(&path, offset, filter).await.map_err(io)?;
    }
    Ok(())
}

/// Prints lines appended to `path` after `offset`, reopening it when it was rotated.
async fn follow(path: &Path, mut offset: u64, mut filter: SinceFilter) -> std::io::Result<()> {
    let mut file = File::open(path)?;
    let mut inode = file.metadata()?.ino();
    let mut pending = String::new();
    loop {
        file.seek(SeekFrom::Start(offset))?;
        let mut chunk = String::new();
        offset += u64::try_from(file.read_to_string(&mut chunk)?).unwrap_or(0);
        pending.push_str(&chunk);
        if let Some(end) = pending.rfind('\n') {
            let complete: String = pending.drain(..=end).collect();
            let mut out = std::io::stdout().lock();
            for line in complete.split_inclusive('\n') {
                if filter.keep(line) {
                    out.write_all(line.as_bytes())?;
                }
            }
            out.flush()?;
        }
        // Rotated: the old file was fully read above; continue with the new one.
        if let Ok(meta) = std::fs::metadata(path)
            && (meta.ino() != inode || meta.len() < offset)
        {
            file = File::open(path)?;
            inode = file.metadata()?.ino();
            offset = 0;
            continue;
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_garbage_does_not() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        for bad in ["", "m", "10x", "1h30", "-5m", "1.5h", "99999999999999999999d", "１m", &"9".repeat(40)] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn since_keeps_recent_lines_and_their_continuations() {
        let since = DateTime::parse_from_rfc3339("2026-11-27T10:00:00Z").unwrap().with_timezone(&Utc);
        let mut f = SinceFilter::new(Some(since));
        assert!(!f.keep("2026-11-27T09:59:59.000Z [INFO] c: stdout. old\n"));
        assert!(!f.keep("  continuation of old\n"));
        assert!(f.keep("2026-11-27T10:00:01.000Z [INFO] c: stdout. new\n"));
        assert!(f.keep("  continuation of new\n"));
        assert!(f.keep("2026-11-27T10:00:02.123456Z  INFO turf_host: host line\n"));
        let mut all = SinceFilter::new(None);
        assert!(all.keep("no timestamp at all\n"));
    }

    #[test]
    fn log_names_cannot_escape_the_log_folder() {
        let layout = RootLayout::new("/tmp/turf-root");
        for bad in ["", "../etc/passwd", "a/b", ".hidden"] {
            assert!(log_path(&layout, bad).is_err(), "{bad:?} accepted");
        }
        assert!(log_path(&layout, "turf").unwrap().ends_with("logs/turf.log"));
    }
}
