//! `turf run`: start a host in the foreground until SIGINT or SIGTERM.

use std::path::{Path, PathBuf};

use super::device::absolute;
use super::{CliError, RunArgs};
use crate::broker::BrokerLimits;
use crate::components::engine::Compiler;
use crate::components::limits::ComponentLimits;
use crate::config::{ConfigFile, HostConfig};
use crate::mgmt::messages::ConsoleLimits;
use crate::supervisor::Endpoints;
use crate::upstream::config::{UpstreamConfig, UpstreamSettings};
use crate::watch::WatchConfig;

/// The most a stop may take: past it the process exits whatever is still running.
const EXIT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Resolves on the first SIGINT or SIGTERM, and from then on guarantees the process ends within
/// [`EXIT_DEADLINE`]: the orderly shutdown's steps have deadlines of their own that add up to
/// less; this is the backstop if something outside them (a blocking thread) holds the exit.
async fn shutdown_signal() {
    wait_for_signal().await;
    let watchdog = std::thread::Builder::new().name("turf-exit".to_owned()).spawn(|| {
        std::thread::sleep(EXIT_DEADLINE);
        // Straight to stderr: the log writer's thread may be what is stuck.
        #[allow(clippy::print_stderr)]
        {
            eprintln!("turf: shutdown did not finish within {EXIT_DEADLINE:?}; exiting anyway");
        }
        std::process::exit(1);
    });
    if let Err(error) = watchdog {
        tracing::warn!(%error, "cannot start the shutdown watchdog");
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut interrupt), Ok(mut terminate)) => {
            tokio::select! {
                _ = interrupt.recv() => tracing::info!("SIGINT received"),
                _ = terminate.recv() => tracing::info!("SIGTERM received"),
            }
        }
        _ => {
            tracing::warn!("cannot install signal handlers; stop with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[allow(clippy::print_stdout)] // the bound addresses are this command's output
fn print_ready(endpoints: &Endpoints) {
    println!("turf is ready");
    println!("  devices (MQTT, mutual TLS): {}", endpoints.mqtt);
    if let Some(plain) = endpoints.plain {
        println!("  local tools (MQTT, plain):  {plain}");
    }
    println!("  discovery (HTTPS, mTLS):    {}", endpoints.discovery);
    println!("  metrics and console:        {}/metrics", endpoints.http_url());
    if let Some(upstream) = &endpoints.upstream {
        println!("  upstream (IotCore):         {upstream}");
    }
    println!("  management socket:          {}", endpoints.socket.display());
    println!("  core CA certificate:        {}", endpoints.ca_cert.display());
    println!("  host log:                   {}", endpoints.root.join("logs/turf.log").display());
}

/// Checks the watched folders; `--watch-artifacts` defaults to `artifacts` beside the recipes.
fn watch_config(recipes: Option<&Path>, artifacts: Option<&Path>) -> Result<WatchConfig, CliError> {
    let dir = |path: &Path, flag: &str| -> Result<PathBuf, CliError> {
        if !path.is_dir() {
            return Err(CliError::Usage(format!("{flag} {}: not a directory", path.display())));
        }
        absolute(path)
    };
    let recipes = recipes.map(|p| dir(p, "--watch-recipes")).transpose()?;
    let artifacts = match artifacts {
        Some(p) => Some(dir(p, "--watch-artifacts")?),
        None => recipes.as_ref().and_then(|r| r.parent()).map(|p| p.join("artifacts")).filter(|p| p.is_dir()),
    };
    Ok(WatchConfig { recipes, artifacts })
}

/// `DIR/config.toml`, or an empty one when there is none.
fn config_file(config: &HostConfig) -> Result<ConfigFile, CliError> {
    let path = config.layout().config_file();
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(ConfigFile::parse(&text, &path.display().to_string())?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConfigFile::default()),
        Err(e) => Err(CliError::Usage(format!("cannot read {}: {e}", path.display()))),
    }
}

/// The upstream settings: `[upstream]` in `DIR/config.toml` (paths relative to the root), with
/// the flags on top.
fn upstream_config(
    config: &HostConfig,
    file: &ConfigFile,
    flags: UpstreamSettings,
) -> Result<Option<UpstreamConfig>, CliError> {
    let from_file = file.upstream.clone().unwrap_or_default();
    Ok(from_file.overridden_by(flags).resolve(&config.thing_name, &config.root)?)
}

/// The queue limits: `[broker]` in `DIR/config.toml`, defaults for what it leaves out.
fn broker_limits(config: &HostConfig, file: &ConfigFile) -> Result<BrokerLimits, CliError> {
    BrokerLimits::try_from(file.broker.clone().unwrap_or_default())
        .map_err(|e| CliError::Usage(format!("{}: {e}", config.layout().config_file().display())))
}

/// Raises the soft limit of open files to the hard limit (systemd and shells start services at
/// 1024, fewer than `max_connections` on two listeners need), and says so when even the hard
/// limit is short of what the broker limits allow.
fn raise_open_files_limit(limits: &BrokerLimits) {
    // Two listeners' connections, the database, logs, sockets to the upstream and components.
    let wanted = 2 * u64::from(limits.max_connections) + 256;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limits.max_connections > 0 && limit < wanted => tracing::warn!(
            limit,
            wanted,
            "the open-files limit is lower than [broker] max_connections needs; raise the hard limit (LimitNOFILE=) or lower max_connections"
        ),
        Ok(limit) => tracing::debug!(limit, "open-files limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open-files limit"),
    }
}

/// Runs the host until a signal arrives.
pub async fn run(root: &Path, args: RunArgs) -> Result<(), CliError> {
    let mut config = HostConfig::new(root);
    config.mqtt_listen = args.mqtt_listen;
    config.plain_listen = args.plain_listen;
    config.discovery_listen = args.discovery_listen;
    config.http_listen = args.http_listen;
    config.http_tls = args.http_tls;
    config.thing_name = args.thing_name;
    config.watch = watch_config(args.watch_recipes.as_deref(), args.watch_artifacts.as_deref())?;
    let flags = UpstreamSettings {
        endpoint: args.upstream,
        client_id: args.upstream_client_id,
        cert: args.upstream_cert.map(|p| absolute(&p)).transpose()?,
        key: args.upstream_key.map(|p| absolute(&p)).transpose()?,
        ca: args.upstream_ca.map(|p| absolute(&p)).transpose()?,
        mqtt_version: args.upstream_mqtt_version,
        ..UpstreamSettings::default()
    };
    let file = config_file(&config)?;
    config.upstream = upstream_config(&config, &file, flags)?;
    config.broker = broker_limits(&config, &file)?;
    config.component_limits = ComponentLimits::try_from(file.components.clone().unwrap_or_default())
        .map_err(|e| CliError::Usage(format!("{}: {e}", config.layout().config_file().display())))?;
    config.console = ConsoleLimits::try_from(file.console.clone().unwrap_or_default())
        .map_err(|e| CliError::Usage(format!("{}: {e}", config.layout().config_file().display())))?;

    let _guard = crate::logging::init(&config.layout().logs_dir(), &args.log_level)?;
    raise_open_files_limit(&config.broker);
    // Compile components in a child process (this binary), so the compiler's memory and code
    // never stay resident in the host.
    config.compiler = match std::env::current_exe() {
        Ok(exe) => Compiler::Helper(exe),
        Err(error) => {
            tracing::warn!(%error, "cannot locate the turf binary; compiling components in-process");
            Compiler::InProcess
        }
    };
    crate::run(config, print_ready, shutdown_signal()).await?;
    Ok(())
}
