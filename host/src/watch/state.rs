//! What the watcher knows about the watched files, and what to do about a change.
//!
//! [`WatchState`] owns the trackers of the watched folders, the content last acted on per file
//! and the drop-ins deployed; a scan turns settled changes into [`Action`]s. Runs on a blocking
//! thread (it reads and hashes files); talks to nobody (the `Watcher` actor submits the actions).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Component as PathComponent, Path, PathBuf};
use std::time::{Duration, Instant};

use semver::Version;
use sha2::{Digest, Sha256};

use super::WatchConfig;
use super::scan::{self, Change, Tracker};
use crate::deploy::dropin::{self, DropinName, Staging};
use crate::deploy::model::DeploymentRequest;
use crate::deploy::recipe::{self, Platform};
use crate::fsutil::{self, Access};
use crate::layout::RootLayout;

/// How long a file seen changing (but not closed or renamed into place) must stay unchanged
/// before it is used.
pub const SETTLE: Duration = Duration::from_millis(250);
/// The first bytes of every WebAssembly binary.
const WASM_MAGIC: &[u8] = b"\0asm";

/// Something a scan found to do.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Action {
    /// A watched recipe or artifact of `name` at `version` changed: redeploy it if it runs.
    Redeploy { name: String, version: Version, cause: String, from: WatchConfig },
    /// Deploy a staged drop-in.
    Dropin { name: String, request: DeploymentRequest, cause: String },
    /// The drop-in's `.wasm` is gone: remove the component.
    RemoveDropin { name: String },
}

type Hash = [u8; 32];

fn digest(parts: &[&[u8]]) -> Hash {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(u64::try_from(part.len()).unwrap_or(u64::MAX).to_le_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// The watcher's files and memory; moved to a blocking thread for each scan.
pub(super) struct WatchState {
    layout: RootLayout,
    config: WatchConfig,
    platform: Platform,
    dev: Tracker,
    plugins: Tracker,
    /// Content last acted on, per watched file (drop-ins: per `.wasm`, recipe included).
    handled: HashMap<PathBuf, Hash>,
    /// Which component each watched recipe file declared when it last parsed.
    recipe_owner: HashMap<PathBuf, (String, Version)>,
    /// Drop-ins deployed: name → version (kept in `dropin/deployed.json`).
    dropins: BTreeMap<String, Version>,
    /// Drop-ins whose file vanished while the host was down are removed on the first scan.
    first_plugin_scan: bool,
}

impl WatchState {
    pub(super) fn new(layout: RootLayout, config: WatchConfig) -> Self {
        let mut state = Self {
            dropins: load_dropins(&layout),
            layout,
            config,
            platform: Platform::current(),
            dev: Tracker::new(SETTLE),
            plugins: Tracker::new(SETTLE),
            handled: HashMap::new(),
            recipe_owner: HashMap::new(),
            first_plugin_scan: true,
        };
        // What is there at start is the baseline: only later changes redeploy.
        let now = Instant::now().checked_sub(SETTLE).unwrap_or_else(Instant::now);
        let files = state.dev_scan();
        state.dev.observe(now, &files, &BTreeSet::new());
        for change in state.dev.observe(now + SETTLE, &files, &BTreeSet::new()) {
            if let Change::Settled(path) = change
                && let Ok(bytes) = std::fs::read(&path)
            {
                state.handled.insert(path.clone(), digest(&[&bytes]));
                if recipe::is_recipe_file(&path)
                    && let Ok(r) = recipe::load(&path, &state.platform)
                {
                    state.recipe_owner.insert(path, (r.name, r.version));
                }
            }
        }
        state
    }

    fn dev_scan(&self) -> BTreeMap<PathBuf, scan::FileState> {
        let mut files = BTreeMap::new();
        for dir in [&self.config.recipes, &self.config.artifacts].into_iter().flatten() {
            files.extend(scan::scan(dir, true));
        }
        files
    }

    /// Scans the watched folders at `now`; `complete` are files a writer closed or renamed into
    /// place since the last scan (they need not wait for the settle time).
    pub(super) fn tick(&mut self, now: Instant, complete: &BTreeSet<PathBuf>) -> Vec<Action> {
        let mut actions = Vec::new();
        let files = self.dev_scan();
        for change in self.dev.observe(now, &files, complete) {
            match change {
                Change::Settled(path) => actions.extend(self.dev_changed(&path)),
                Change::Removed(path) => {
                    self.handled.remove(&path);
                }
            }
        }
        let mut seen = BTreeSet::new();
        actions.retain(|a| match a {
            Action::Redeploy { name, version, .. } => seen.insert((name.clone(), version.clone())),
            _ => true,
        });
        actions.extend(self.plugins_tick(now, complete));
        actions
    }

    /// When a file seen changing could next have settled (a scan is due then), if any.
    pub(super) fn next_settle(&self) -> Option<Instant> {
        [self.dev.next_settle(), self.plugins.next_settle()].into_iter().flatten().min()
    }

    /// A settled change under the watched recipe or artifact folder.
    fn dev_changed(&mut self, path: &Path) -> Option<Action> {
        let bytes = std::fs::read(path).ok()?;
        let hash = digest(&[&bytes]);
        if self.handled.insert(path.to_path_buf(), hash) == Some(hash) {
            return None;
        }
        if let Some(recipes) = &self.config.recipes
            && path.starts_with(recipes)
            && recipe::is_recipe_file(path)
        {
            let cause = format!("recipe {} changed", path.display());
            return match recipe::load(path, &self.platform) {
                Ok(r) => {
                    self.recipe_owner.insert(path.to_path_buf(), (r.name.clone(), r.version.clone()));
                    Some(Action::Redeploy { name: r.name, version: r.version, cause, from: self.config.clone() })
                }
                Err(error) => match self.recipe_owner.get(path) {
                    // Redeploying reports the error and keeps the running version.
                    Some((name, version)) => Some(Action::Redeploy {
                        name: name.clone(),
                        version: version.clone(),
                        cause,
                        from: self.config.clone(),
                    }),
                    None => {
                        tracing::warn!(%error, "watched recipe is invalid; fix it to deploy it");
                        None
                    }
                },
            };
        }
        let artifacts = self.config.artifacts.as_ref()?;
        let mut parts = path.strip_prefix(artifacts).ok()?.components();
        let (Some(PathComponent::Normal(name)), Some(PathComponent::Normal(version))) = (parts.next(), parts.next())
        else {
            return None;
        };
        let version = Version::parse(version.to_str()?).ok()?;
        let cause = format!("artifact {} changed", path.display());
        Some(Action::Redeploy { name: name.to_str()?.to_owned(), version, cause, from: self.config.clone() })
    }

    fn plugins_tick(&mut self, now: Instant, complete: &BTreeSet<PathBuf>) -> Vec<Action> {
        let dir = self.layout.plugins_dir();
        let files = scan::scan(&dir, false);
        let mut affected: BTreeSet<String> = BTreeSet::new();
        for change in self.plugins.observe(now, &files, complete) {
            let path = match &change {
                Change::Settled(p) | Change::Removed(p) => p,
            };
            let file = path.file_name().and_then(|f| f.to_str()).unwrap_or_default();
            match dropin::parse_file_name(file) {
                Ok(name) => {
                    affected.insert(name.name);
                }
                Err(problem) if matches!(change, Change::Settled(_)) => {
                    tracing::warn!(file = %path.display(), problem, "ignoring a file in the drop-in folder");
                }
                Err(_) => {}
            }
        }
        if std::mem::take(&mut self.first_plugin_scan) {
            affected.extend(self.dropins.keys().cloned());
        }
        let mut actions = Vec::new();
        for name in affected {
            // The newest `.wasm` of this component wins; while it is still being written the
            // component waits for its settled change (and is not taken for removed).
            let newest = files
                .keys()
                .filter_map(|p| {
                    let file = p.file_name()?.to_str()?;
                    let parsed = dropin::parse_file_name(file).ok()?;
                    (parsed.name == name && file.ends_with(".wasm")).then(|| (parsed, p.clone()))
                })
                .max_by(|a, b| a.0.version.cmp(&b.0.version));
            if newest.as_ref().is_some_and(|(_, wasm)| !self.plugins.is_settled(wasm)) {
                continue;
            }
            match newest {
                None => {
                    if self.dropins.remove(&name).is_some() {
                        save_dropins(&self.layout, &self.dropins);
                        actions.push(Action::RemoveDropin { name });
                    }
                }
                Some((parsed, wasm)) => match self.dropin_changed(&parsed, &wasm) {
                    Ok(Some(action)) => actions.push(action),
                    Ok(None) => {}
                    Err(problem) => tracing::warn!(file = %wasm.display(), problem, "drop-in not deployed"),
                },
            }
        }
        actions
    }

    /// Snapshots a drop-in and its recipe, if their content changed, and asks to deploy it.
    fn dropin_changed(&mut self, name: &DropinName, wasm: &Path) -> Result<Option<Action>, String> {
        let read = |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
        let bytes = read(wasm)?;
        let sidecar = ["json", "yaml", "yml"]
            .iter()
            .map(|ext| wasm.with_extension(ext))
            .find(|p| p.is_file() && self.plugins.is_settled(p));
        let recipe_bytes = sidecar.as_deref().map(read).transpose()?.unwrap_or_default();
        let hash = digest(&[&bytes, &recipe_bytes]);
        if self.handled.get(wasm) == Some(&hash) && self.dropins.get(&name.name) == Some(&name.version) {
            return Ok(None);
        }
        self.handled.insert(wasm.to_path_buf(), hash);
        if !bytes.starts_with(WASM_MAGIC) {
            return Err(
                "not a WebAssembly file (it does not start with \\0asm); replace it with a built component".to_owned()
            );
        }
        let file = wasm.file_name().and_then(|f| f.to_str()).unwrap_or_default();
        let (document, run_file) = match &sidecar {
            Some(path) => sidecar_recipe(path, name, &self.platform)?,
            None => (dropin::default_recipe(name, file), file.to_owned()),
        };
        let stamp = hex::encode(&hash[..8]);
        let staging = Staging::of(&self.layout.dropin_dir(), name, &stamp, &run_file);
        stage(&staging, &bytes, &document).map_err(|e| format!("cannot stage the drop-in: {e}"))?;
        self.dropins.insert(name.name.clone(), name.version.clone());
        save_dropins(&self.layout, &self.dropins);
        let request = DeploymentRequest {
            recipe_dir: Some(staging.recipe_dir),
            artifact_dir: Some(staging.artifact_dir),
            merge: [(name.name.clone(), name.version.to_string())].into_iter().collect(),
            ..DeploymentRequest::default()
        };
        let cause =
            format!("plugins/{file} {}", if sidecar.is_some() { "with its recipe" } else { "(default recipe)" });
        Ok(Some(Action::Dropin { name: name.name.clone(), request, cause }))
    }
}

/// A drop-in's own recipe: it must name the drop-in's component and version, and run a `.wasm`
/// right under `{artifacts:path}`. Returns the document and that file's name.
fn sidecar_recipe(path: &Path, name: &DropinName, platform: &Platform) -> Result<(serde_json::Value, String), String> {
    let r = recipe::load(path, platform).map_err(|e| e.to_string())?;
    if r.name != name.name || r.version != name.version {
        return Err(format!(
            "{} declares {}={}, but the file name says {}={}",
            path.display(),
            r.name,
            r.version,
            name.name,
            name.version
        ));
    }
    let run_file = r
        .run
        .strip_prefix("{artifacts:path}/")
        .filter(|rel| !rel.contains('{'))
        .filter(|rel| Path::new(rel).components().all(|c| matches!(c, PathComponent::Normal(_))))
        .map(str::to_owned)
        .ok_or_else(|| {
            format!("{}: Lifecycle.Run must be {{artifacts:path}}/<file>.wasm for a drop-in", path.display())
        })?;
    Ok((r.document, run_file))
}

/// Writes a drop-in's snapshot: its `.wasm` and recipe, replacing older snapshots of it.
fn stage(staging: &Staging, wasm: &[u8], recipe: &serde_json::Value) -> std::io::Result<()> {
    if let Some(version_dir) = staging.base.parent()
        && let Ok(entries) = std::fs::read_dir(version_dir)
    {
        for entry in entries.flatten() {
            if entry.path() != staging.base {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    if let Some(dir) = staging.wasm.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::create_dir_all(&staging.recipe_dir)?;
    fsutil::write_atomic(&staging.wasm, wasm, Access::Public)?;
    let text = serde_json::to_vec_pretty(recipe).map_err(std::io::Error::other)?;
    fsutil::write_atomic(&staging.recipe_dir.join("recipe.json"), &text, Access::Public)
}

fn load_dropins(layout: &RootLayout) -> BTreeMap<String, Version> {
    std::fs::read(layout.dropin_dir().join("deployed.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn save_dropins(layout: &RootLayout, dropins: &BTreeMap<String, Version>) {
    let path = layout.dropin_dir().join("deployed.json");
    let written = serde_json::to_vec_pretty(dropins)
        .map_err(std::io::Error::other)
        .and_then(|text| fsutil::write_atomic(&path, &text, Access::Public));
    if let Err(error) = written {
        tracing::error!(path = %path.display(), %error, "cannot record the deployed drop-ins");
    }
}
