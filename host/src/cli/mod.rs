//! The `turf` command line: argument definitions and dispatch, one file per command.
//!
//! Every command takes `--root` (env `TURF_ROOT`) to find the host's state and its socket.
//! Commands that need a running host say so when it is not; `turf device add|list` work on the
//! root directly when the host is stopped. Output is for people; exit status says success.
//!
//! - `run`: start a host. `device`: devices and certificates. `deployment`: local deployments.
//! - `status`: what runs. `component`: list, details, restart, stop. `logs`: component logs.
//! - `client`: a simulated client device.

mod client;
mod component;
mod connectivity;
mod deployment;
mod device;
mod logs;
mod run;
mod shadow;
mod shadow_client;
mod status;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use thiserror::Error;

use crate::config::{
    DEFAULT_DISCOVERY_LISTEN, DEFAULT_HTTP_LISTEN, DEFAULT_MQTT_LISTEN, DEFAULT_ROOT, DEFAULT_THING_NAME,
};
use crate::deploy::model::FailurePolicy;
use crate::layout::RootLayout;

/// Turf: an IoT core device host for local client devices (Greengrass-compatible).
#[derive(Debug, Parser)]
#[command(name = "turf", version, about, propagate_version = true)]
pub struct Cli {
    /// Root directory of the host's state.
    #[arg(long, global = true, env = "TURF_ROOT", default_value = DEFAULT_ROOT)]
    pub root: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the host: broker, bridge, components; stops cleanly on SIGINT/SIGTERM.
    Run(Box<RunArgs>),
    /// Register client devices and issue their certificates.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Create and inspect local deployments.
    #[command(subcommand)]
    Deployment(DeploymentCommand),
    /// Print a one-time link that logs a browser in to the console (valid 5 minutes, once).
    Console,
    /// Show what the running host listens on, which components run, and its counters.
    Status {
        /// Print the whole report as JSON (the figures `/metrics` serves).
        #[arg(long)]
        json: bool,
    },
    /// List, inspect, restart or stop components.
    #[command(subcommand)]
    Component(ComponentCommand),
    /// Print a component's log (or the host's: `turf logs turf`).
    Logs(LogsArgs),
    /// Show or set the endpoints discovery hands to devices ("Manage core device endpoints").
    #[command(subcommand)]
    Connectivity(ConnectivityCommand),
    /// Read, update or delete device shadows on the running host.
    #[command(subcommand)]
    Shadow(ShadowCommand),
    /// Act as a client device (for trying Turf without real hardware).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Compile a component for this host's engine (the host's own compile helper).
    #[command(hide = true)]
    CompileComponent {
        /// The `.wasm` component.
        input: PathBuf,
        /// Where the compiled code goes.
        output: PathBuf,
    },
}

/// `turf run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Mutual-TLS listener for client devices.
    #[arg(long, default_value = DEFAULT_MQTT_LISTEN)]
    pub mqtt_listen: std::net::SocketAddr,
    /// Optional plain-TCP listener for local tools; must be a loopback address.
    #[arg(long)]
    pub plain_listen: Option<std::net::SocketAddr>,
    /// Greengrass discovery endpoint (HTTPS, mutual TLS).
    #[arg(long, default_value = DEFAULT_DISCOVERY_LISTEN)]
    pub discovery_listen: std::net::SocketAddr,
    /// Local HTTP listener: Prometheus (`GET /metrics`) and the console. Loopback only,
    /// unless served over TLS with `--http-tls`.
    #[arg(long, default_value = DEFAULT_HTTP_LISTEN)]
    pub http_listen: std::net::SocketAddr,
    /// Serve the HTTP listener over TLS, with the broker's server certificate from the core CA
    /// (required to listen on an address other than loopback).
    #[arg(long)]
    pub http_tls: bool,
    /// Log level (error, warn, info, debug, trace) or a filter directive; `RUST_LOG` is used
    /// when this is not given.
    #[arg(long, default_value = crate::logging::DEFAULT_LEVEL)]
    pub log_level: String,
    /// Thing name of this core device.
    #[arg(long, default_value = DEFAULT_THING_NAME)]
    pub thing_name: String,
    /// Upstream ("IotCore") broker: mqtts://HOST[:PORT] (or mqtt:// on loopback). Overrides
    /// `[upstream]` in DIR/config.toml.
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// Upstream MQTT client id (default: the thing name).
    #[arg(long, value_name = "ID")]
    pub upstream_client_id: Option<String>,
    /// Upstream client certificate (PEM).
    #[arg(long, value_name = "FILE")]
    pub upstream_cert: Option<PathBuf>,
    /// Upstream client private key (PEM).
    #[arg(long, value_name = "FILE")]
    pub upstream_key: Option<PathBuf>,
    /// CA certificates that sign the upstream broker's certificate (PEM).
    #[arg(long, value_name = "FILE")]
    pub upstream_ca: Option<PathBuf>,
    /// Upstream MQTT version: 3.1.1 (default) or 5.
    #[arg(long, value_name = "VERSION")]
    pub upstream_mqtt_version: Option<String>,
    /// Hot reload: redeploy a deployed component when its recipe in this folder changes.
    #[arg(long, value_name = "DIR")]
    pub watch_recipes: Option<PathBuf>,
    /// Hot reload: redeploy a deployed component when its artifacts under DIR/<name>/<version>/
    /// change (default with --watch-recipes: an `artifacts` folder beside the recipe folder).
    #[arg(long, value_name = "DIR")]
    pub watch_artifacts: Option<PathBuf>,
}

/// `turf component ...`.
#[derive(Debug, Subcommand)]
pub enum ComponentCommand {
    /// Every component: version, state, uptime, restarts.
    List,
    /// One component: state, last error, effective configuration and recipe.
    Details {
        /// Component name.
        name: String,
    },
    /// Restart components with a fresh instance (also brings back BROKEN or stopped ones).
    Restart {
        /// Component names (NAME[,NAME]).
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Stop components until they are restarted or redeployed.
    Stop {
        /// Component names (NAME[,NAME]).
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// `turf logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Component name (`turf` for the host's own log).
    pub name: String,
    /// Keep printing new lines as they are written.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only lines from this long ago on: 30s, 10m, 2h, 1d, 1h30m.
    #[arg(long)]
    pub since: Option<String>,
}

/// `turf device ...`.
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Issue a certificate for a new device and register it.
    Add {
        /// Thing name (the device connects with it as MQTT client id).
        thing: String,
        /// Folder to write device.pem.crt, private.pem.key and ca.pem into.
        #[arg(long)]
        out: PathBuf,
    },
    /// Register a certificate issued by another CA (trust that CA first with `trust-ca`).
    Register {
        /// Thing name.
        thing: String,
        /// The device certificate, PEM.
        #[arg(long)]
        cert: PathBuf,
    },
    /// Remove a thing and its certificates; its connections are closed.
    Remove {
        /// Thing name.
        thing: String,
    },
    /// Trust a CA for device certificates (as AWS IoT trusts registered CAs).
    TrustCa {
        /// The CA certificate, PEM.
        file: PathBuf,
    },
    /// Stop trusting a CA added with `trust-ca`. Refused while certificates it issued are
    /// registered: remove those things first.
    UntrustCa {
        /// The CA certificate, PEM (the file given to `trust-ca`).
        file: PathBuf,
    },
    /// Associate a thing with this core device, so it may use discovery.
    Associate {
        /// Thing name.
        thing: String,
    },
    /// Undo `associate`.
    Disassociate {
        /// Thing name.
        thing: String,
    },
    /// List registered devices.
    List,
}

/// `turf connectivity ...`.
#[derive(Debug, Subcommand)]
pub enum ConnectivityCommand {
    /// Show the endpoints and where they come from.
    Show,
    /// Use these endpoints instead of the IP detector (HOST:PORT or HOST, meaning port 8883).
    Set {
        /// Endpoints, in the order devices should try them.
        #[arg(required = true)]
        endpoints: Vec<String>,
    },
    /// Go back to the IP detector.
    Clear,
}

/// `turf deployment ...`.
#[derive(Debug, Subcommand)]
pub enum DeploymentCommand {
    /// Deploy components and configuration (greengrass-cli compatible flags).
    Create(CreateArgs),
    /// List recent deployments.
    List,
    /// Show one deployment.
    Status {
        /// Deployment id.
        id: String,
    },
}

/// `turf deployment create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Folder of recipes (JSON or YAML, searched recursively).
    #[arg(long, visible_alias = "recipeDir", short = 'r')]
    pub recipe_dir: Option<PathBuf>,
    /// Folder of artifacts laid out <component>/<version>/....
    #[arg(long, visible_alias = "artifactDir", short = 'a')]
    pub artifact_dir: Option<PathBuf>,
    /// Component to add or update, NAME=VERSION (repeatable).
    #[arg(long, short = 'm')]
    pub merge: Vec<String>,
    /// Root components to remove, NAME[,NAME] (repeatable).
    #[arg(long)]
    pub remove: Vec<String>,
    /// Configuration update: JSON, @FILE or a file path, {"<component>": {"MERGE": {...}, "RESET": [...]}}.
    #[arg(long, short = 'c')]
    pub update_config: Option<String>,
    /// What to do when a component fails to start: put the previous deployment back
    /// (ROLLBACK, the default) or leave things as they are (DO_NOTHING).
    #[arg(long, visible_alias = "fp", value_enum, default_value_t = FailurePolicy::Rollback)]
    pub failure_handling_policy: FailurePolicy,
    /// Return after submitting instead of waiting for the outcome.
    #[arg(long)]
    pub no_wait: bool,
    /// Longest to wait for the outcome, in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

/// `turf shadow ...`.
#[derive(Debug, Subcommand)]
pub enum ShadowCommand {
    /// Print a shadow document.
    Get(ShadowArgs),
    /// Apply an update request, e.g. '{"state": {"desired": {"color": "red"}}}'.
    Update {
        #[command(flatten)]
        /// Which shadow.
        shadow: ShadowArgs,
        /// The update request (JSON, or @FILE).
        request: String,
    },
    /// Delete a shadow.
    Delete(ShadowArgs),
    /// List a thing's named shadows.
    List {
        /// Thing name.
        thing: String,
    },
    /// Shadow sync with the upstream (`synchronize`).
    #[command(subcommand)]
    Sync(SyncCommand),
}

/// `turf shadow sync ...`.
#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Direction, connection, and per shadow: versions on each side, last sync, pending.
    Status {
        /// Only this thing's shadows.
        thing: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Which shadow.
#[derive(Debug, Args)]
pub struct ShadowArgs {
    /// Thing name.
    pub thing: String,
    /// Named shadow (omit for the classic shadow).
    #[arg(long, default_value = "")]
    pub name: String,
}

/// `turf client ...`.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Connect as a device, subscribe to a topic and publish numbered messages to it.
    Publish(client::PublishArgs),
    /// Be a smart light: follow shadow deltas for a property and report it back.
    Shadow(shadow_client::ShadowArgs),
}

/// A command that failed; the text is what the user sees after `error:`.
#[derive(Debug, Error)]
pub enum CliError {
    /// The request to the host failed.
    #[error(transparent)]
    Client(#[from] crate::mgmt::client::ClientError),
    /// A device operation failed.
    #[error(transparent)]
    Device(#[from] crate::devices::DeviceError),
    /// The host failed to start.
    #[error(transparent)]
    Start(#[from] crate::supervisor::StartError),
    /// Logging could not be set up.
    #[error(transparent)]
    Logging(#[from] crate::logging::LoggingError),
    /// The arguments are wrong.
    #[error("{0}")]
    Usage(String),
    /// The upstream settings are wrong.
    #[error(transparent)]
    Upstream(#[from] crate::upstream::config::UpstreamConfigError),
    /// `config.toml` is not what it should be.
    #[error(transparent)]
    ConfigFile(#[from] crate::config::ConfigFileError),
    /// The host refused or failed an operation.
    #[error("{0}")]
    Host(String),
    /// The command ran but did not succeed (a failed deployment, a device that got no echo).
    #[error("{0}")]
    Failed(String),
}

/// Runs the parsed command. Must be called inside an actix system.
pub async fn execute(cli: Cli) -> Result<(), CliError> {
    let layout = RootLayout::new(&cli.root);
    match cli.command {
        Command::Run(args) => run::run(&cli.root, *args).await,
        Command::Device(command) => device::execute(&layout, command).await,
        Command::Deployment(command) => deployment::execute(&layout, command).await,
        Command::Status { json } => status::execute(&layout, json).await,
        Command::Console => status::console(&layout).await,
        Command::Component(command) => component::execute(&layout, command).await,
        Command::Logs(args) => logs::execute(&layout, args).await,
        Command::Connectivity(command) => connectivity::execute(&layout, command).await,
        Command::Client(ClientCommand::Publish(args)) => client::publish(args).await,
        Command::Client(ClientCommand::Shadow(args)) => shadow_client::run(args).await,
        Command::Shadow(command) => shadow::execute(&layout, command).await,
        Command::CompileComponent { input, output } => {
            crate::components::engine::compile_to_file(&input, &output).map_err(|e| CliError::Failed(e.to_string()))
        }
    }
}
