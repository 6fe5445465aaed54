//! Hot reload and drop-in components: the `Watcher` service.
//!
//! Polls, every [`POLL`], the folders given to `turf run --watch-recipes/--watch-artifacts`
//! and the drop-in folder `DIR/plugins/`, and turns settled changes into ordinary deployments
//! (so they are validated, queued, rolled back and recorded like any other):
//!
//! - A watched recipe or artifact of a deployed component changed → redeploy that component at
//!   the same version. The content hash decides: touching a file does nothing. A broken edit
//!   fails its deployment before anything changes; the running version stays, and the error is
//!   logged and kept in `turf deployment list`.
//! - `plugins/NAME-VERSION.wasm` appeared or changed (with an optional recipe
//!   `NAME-VERSION.json|yaml|yml` beside it) → deploy it; the code is swapped in place. Without
//!   a recipe it gets a default one with no access rights. Deleting the `.wasm` removes it.
//!
//! Files count only once they stopped changing (see `scan`) and, for `.wasm`, start with the
//! WebAssembly magic; each is snapshotted into `DIR/dropin/` before deploying, so a writer
//! touching it again cannot change what is loaded. Messages in: none (it drives itself with a
//! timer). Messages out: [`CreateDeployment`], [`WaitDeployment`], [`ListComponents`]. File work
//! runs on a blocking thread, never in the actor's mailbox.

pub mod scan;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Component as PathComponent, Path, PathBuf};
use std::time::{Duration, Instant};

use actix::prelude::*;
use semver::Version;
use sha2::{Digest, Sha256};

use self::scan::{Change, Tracker};
use crate::config::RootLayout;
use crate::deploy::dropin::{self, DropinName, Staging};
use crate::deploy::model::{DeploymentRequest, DeploymentState};
use crate::deploy::recipe::{self, Platform};
use crate::deploy::{CreateDeployment, ListComponents, WaitDeployment};
use crate::fsutil::{self, Access};

/// How often the watched folders are scanned.
pub const POLL: Duration = Duration::from_millis(100);
/// How long a file must stay unchanged before it is used.
pub const SETTLE: Duration = Duration::from_millis(250);
/// The first bytes of every WebAssembly binary.
const WASM_MAGIC: &[u8] = b"\0asm";

/// What `turf run` asked to watch besides the drop-in folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchConfig {
    /// Recipe folder (`--watch-recipes`).
    pub recipes: Option<PathBuf>,
    /// Artifact folder laid out `<name>/<version>/` (`--watch-artifacts`).
    pub artifacts: Option<PathBuf>,
}

/// The deployment service, as the watcher uses it.
#[derive(Clone)]
pub struct WatchPeers {
    /// Submit a deployment.
    pub create: Recipient<CreateDeployment>,
    /// Wait for its outcome (to log it).
    pub wait: Recipient<WaitDeployment>,
    /// What is deployed.
    pub components: Recipient<ListComponents>,
}

/// Something a scan found to do.
#[derive(Debug, Clone, PartialEq)]
enum Action {
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
struct WatchState {
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
    fn new(layout: RootLayout, config: WatchConfig) -> Self {
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
        state.dev.observe(now, &files);
        for change in state.dev.observe(now + SETTLE, &files) {
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

    fn tick(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let files = self.dev_scan();
        for change in self.dev.observe(now, &files) {
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
        actions.extend(self.plugins_tick(now));
        actions
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

    fn plugins_tick(&mut self, now: Instant) -> Vec<Action> {
        let dir = self.layout.plugins_dir();
        let files = scan::scan(&dir, false);
        let mut affected: BTreeSet<String> = BTreeSet::new();
        for change in self.plugins.observe(now, &files) {
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
            // The newest settled `.wasm` of this component wins.
            let newest = files
                .keys()
                .filter_map(|p| {
                    let file = p.file_name()?.to_str()?;
                    let parsed = dropin::parse_file_name(file).ok()?;
                    (parsed.name == name && file.ends_with(".wasm")).then(|| (parsed, p.clone()))
                })
                .max_by(|a, b| a.0.version.cmp(&b.0.version));
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
            .find(|p| p.is_file() && !self.plugins_unsettled(p));
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
            Some(path) => {
                let r = recipe::load(path, &self.platform).map_err(|e| e.to_string())?;
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
                        format!(
                            "{}: Lifecycle.Run must be {{artifacts:path}}/<file>.wasm for a drop-in",
                            path.display()
                        )
                    })?;
                (r.document, run_file)
            }
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

    /// True while a drop-in's recipe is still being written (it waits for the next change).
    fn plugins_unsettled(&self, path: &Path) -> bool {
        std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < SETTLE)
    }
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

/// The watcher service.
pub struct Watcher {
    state: Option<WatchState>,
    peers: WatchPeers,
}

impl Watcher {
    /// Records what the watched folders hold now; only later changes act.
    pub fn new(layout: RootLayout, config: WatchConfig, peers: WatchPeers) -> Self {
        for dir in [&config.recipes, &config.artifacts].into_iter().flatten() {
            tracing::info!(dir = %dir.display(), "watching for changes to redeploy");
        }
        tracing::info!(dir = %layout.plugins_dir().display(), "watching the drop-in folder");
        Self { state: Some(WatchState::new(layout, config)), peers }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        // A scan still running (`state` is on its thread) is not overlapped.
        let Some(mut state) = self.state.take() else {
            return;
        };
        let scan = tokio::task::spawn_blocking(move || {
            let actions = state.tick(Instant::now());
            (state, actions)
        });
        ctx.spawn(scan.into_actor(self).map(|joined, act, ctx| match joined {
            Ok((state, actions)) => {
                act.state = Some(state);
                if !actions.is_empty() {
                    ctx.spawn(submit(act.peers.clone(), actions).into_actor(act));
                }
            }
            Err(error) => tracing::error!(%error, "the watcher's scan failed; hot reload stops"),
        }));
    }
}

/// Turns actions into deployments, in order, and logs how each ended.
async fn submit(peers: WatchPeers, actions: Vec<Action>) {
    let deployed = peers.components.send(ListComponents).await.unwrap_or_default();
    for action in actions {
        let (what, request) = match action {
            Action::Redeploy { name, version, cause, from } => {
                let Some(info) =
                    deployed.iter().find(|c| c.name == name && c.version == version.to_string() && !c.builtin)
                else {
                    tracing::debug!(component = name, %version, cause, "not deployed at this version; nothing to reload");
                    continue;
                };
                let mut request = DeploymentRequest {
                    recipe_dir: from.recipes,
                    artifact_dir: from.artifacts,
                    ..DeploymentRequest::default()
                };
                if info.root {
                    request.merge.insert(name.clone(), version.to_string());
                }
                (format!("hot reload of {name} {version} ({cause})"), request)
            }
            Action::Dropin { name, request, cause } => (format!("drop-in {name} ({cause})"), request),
            Action::RemoveDropin { name } => {
                if !deployed.iter().any(|c| c.name == name && c.root) {
                    continue;
                }
                let request = DeploymentRequest { remove: vec![name.clone()], ..DeploymentRequest::default() };
                (format!("removal of drop-in {name} (its .wasm was deleted)"), request)
            }
        };
        let record = match peers.create.send(CreateDeployment(request)).await {
            Ok(Ok(record)) => record,
            Ok(Err(error)) => {
                tracing::error!(what, error, "cannot submit the deployment");
                continue;
            }
            Err(error) => {
                tracing::error!(what, %error, "deployment service unavailable");
                return;
            }
        };
        tracing::info!(what, deployment = record.id, "deploying");
        let wait = peers.wait.clone();
        actix_rt::spawn(async move {
            match wait.send(WaitDeployment { id: record.id.clone(), after: None }).await {
                Ok(Some(done)) if done.state == DeploymentState::Succeeded => {
                    tracing::info!(what, deployment = done.id, took_ms = done.took_ms, "done");
                }
                Ok(Some(done)) => tracing::warn!(
                    what,
                    deployment = done.id,
                    error = done.error.as_deref().unwrap_or("unknown"),
                    "failed; what ran before keeps running"
                ),
                _ => {}
            }
        });
    }
}

impl Actor for Watcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(POLL, |act, ctx| act.tick(ctx));
    }
}
