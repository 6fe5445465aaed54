//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the same entry points
//! the fuzz targets call (`turf_host::fuzz`), on stable, so every input a fuzzing run found
//! interesting keeps being checked by `make test`. See docs/FUZZING.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use turf_tests::workspace;

/// Runs every corpus file of `target` through `entry`; fails if the corpus is missing or
/// small (a replay of nothing proves nothing).
fn replay(target: &str, entry: fn(&[u8])) {
    let dir = workspace().join("fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{}: only {} inputs", dir.display(), files.len());
    for file in files {
        let data = std::fs::read(&file).unwrap();
        let outcome = std::panic::catch_unwind(|| entry(&data));
        assert!(outcome.is_ok(), "{} fails", file.display());
    }
}

#[test]
fn recipe_corpus() {
    replay("recipe", turf_host::fuzz::recipe);
}

#[test]
fn shadow_corpus() {
    replay("shadow", turf_host::fuzz::shadow);
}

#[test]
fn policy_corpus() {
    replay("policy", turf_host::fuzz::policy);
}

#[test]
fn update_config_corpus() {
    replay("update_config", turf_host::fuzz::update_config);
}

#[test]
fn thing_name_corpus() {
    replay("thing_name", turf_host::fuzz::thing_name);
}

#[test]
fn topic_filter_corpus() {
    replay("topic_filter", turf_host::fuzz::topic_filter);
}
