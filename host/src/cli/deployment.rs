//! `turf deployment create|list|status`, with the greengrass-cli flag spellings.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use super::device::absolute;
use super::{CliError, CreateArgs, DeploymentCommand};
use crate::deploy::config_update::parse_updates;
use crate::deploy::model::{DeploymentRecord, DeploymentRequest, DeploymentState, ProgressEvent};
use crate::layout::RootLayout;
use crate::mgmt::client::Client;

/// Reads `--update-config`: inline JSON, `@FILE`, or a path to a file.
fn update_config_text(arg: &str) -> Result<String, CliError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| CliError::Usage(format!("--update-config {}: {e}", path.display())))
    };
    if let Some(file) = arg.strip_prefix('@') {
        return read(Path::new(file));
    }
    if !arg.trim_start().starts_with('{') && Path::new(arg).is_file() {
        return read(Path::new(arg));
    }
    Ok(arg.to_owned())
}

/// Turns the command-line flags into a request.
fn request(args: &CreateArgs) -> Result<DeploymentRequest, CliError> {
    let mut merge = BTreeMap::new();
    for item in &args.merge {
        let (name, version) = item
            .split_once('=')
            .filter(|(n, v)| !n.trim().is_empty() && !v.trim().is_empty())
            .ok_or_else(|| CliError::Usage(format!("--merge {item:?}: expected NAME=VERSION")))?;
        merge.insert(name.trim().to_owned(), version.trim().to_owned());
    }
    let remove = args
        .remove
        .iter()
        .flat_map(|r| r.split(','))
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect();
    let update_config = match &args.update_config {
        Some(arg) => parse_updates(&update_config_text(arg)?).map_err(CliError::Usage)?,
        None => BTreeMap::new(),
    };
    let dir = |d: &Option<std::path::PathBuf>, flag: &str| -> Result<Option<std::path::PathBuf>, CliError> {
        match d {
            Some(d) if !d.is_dir() => Err(CliError::Usage(format!("{flag} {}: not a directory", d.display()))),
            Some(d) => Ok(Some(absolute(d)?)),
            None => Ok(None),
        }
    };
    Ok(DeploymentRequest {
        recipe_dir: dir(&args.recipe_dir, "--recipe-dir")?,
        artifact_dir: dir(&args.artifact_dir, "--artifact-dir")?,
        merge,
        remove,
        update_config,
        failure_handling_policy: args.failure_handling_policy,
    })
}

fn when(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// One progress line: `  +0.012s  com.example.Hello  RUNNING`.
fn event_line(event: &ProgressEvent) -> String {
    let secs = Duration::from_millis(event.at_ms).as_secs_f64();
    format!("  +{secs:.3}s  {:<50} {}", event.component.as_deref().unwrap_or("(deployment)"), event.what)
}

#[allow(clippy::print_stdout)] // command output
fn print_record(record: &DeploymentRecord, with_progress: bool) {
    match record.detail {
        Some(detail) => println!("Deployment {}: {} ({detail})", record.id, record.state),
        None => println!("Deployment {}: {}", record.id, record.state),
    }
    let mut timing = format!("  submitted {}", when(record.created_at));
    if let Some(started) = record.started_at {
        timing.push_str(&format!(", started {}", when(started)));
    }
    if let Some(ms) = record.took_ms {
        timing.push_str(&format!(", took {ms} ms"));
    }
    println!("{timing}; policy {}", record.request.failure_handling_policy);
    for c in &record.components {
        println!("  {:<52} {:<9} {}", c.name, c.version, c.action);
    }
    if with_progress && !record.progress.is_empty() {
        println!("  steps:");
        for event in &record.progress {
            println!("  {}", event_line(event));
        }
    }
    if let Some(error) = &record.error {
        println!("  error: {error}");
    }
}

/// Follows a deployment until it finished or `timeout` passed: prints each step as it happens
/// and, on a terminal, a spinner with the elapsed time.
#[allow(clippy::print_stdout)] // command output
async fn follow(client: &Client, id: &str, timeout: Duration) -> Result<DeploymentRecord, CliError> {
    let tty = std::io::stdout().is_terminal();
    let started = Instant::now();
    let mut seen = 0;
    let mut frame = 0usize;
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    loop {
        let left = timeout.saturating_sub(started.elapsed());
        let poll = client.wait_deployment(id, left.min(Duration::from_secs(30)), Some(seen));
        tokio::pin!(poll);
        let record = loop {
            tokio::select! {
                record = &mut poll => break record?,
                _ = ticker.tick(), if tty => {
                    frame += 1;
                    let spin = SPINNER[frame % SPINNER.len()];
                    print!("\r{spin} deploying… {:.1}s \x1b[K", started.elapsed().as_secs_f64());
                    let _ = std::io::stdout().flush();
                }
            }
        };
        if tty {
            print!("\r\x1b[K");
        }
        for event in record.progress.iter().skip(seen) {
            println!("{}", event_line(event));
        }
        seen = record.progress.len();
        if record.state.is_final() || started.elapsed() >= timeout {
            return Ok(record);
        }
    }
}

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// Runs a `turf deployment` command.
#[allow(clippy::print_stdout)] // command output
pub async fn execute(layout: &RootLayout, command: DeploymentCommand) -> Result<(), CliError> {
    let client = Client::new(&layout.socket());
    match command {
        DeploymentCommand::Create(args) => {
            let request = request(&args)?;
            let record = client.create_deployment(&request).await?;
            println!("Local deployment submitted! Deployment Id: {}", record.id);
            if args.no_wait {
                return Ok(());
            }
            let record = follow(&client, &record.id, Duration::from_secs(args.timeout)).await?;
            print_record(&record, false);
            match record.state {
                DeploymentState::Succeeded => Ok(()),
                DeploymentState::Failed => Err(CliError::Failed(format!(
                    "deployment {} failed: {}",
                    record.id,
                    record.error.unwrap_or_default()
                ))),
                state => Err(CliError::Failed(format!(
                    "deployment {} is still {state} after {} s; check it with `turf deployment status {}`",
                    record.id, args.timeout, record.id
                ))),
            }
        }
        DeploymentCommand::List => {
            println!("{:<36}  {:<11} {:<19}  {:>8}  DETAIL", "ID", "STATE", "SUBMITTED", "TOOK");
            for record in client.deployments().await? {
                let took = record
                    .took_ms
                    .map(|ms| format!("{:.2}s", Duration::from_millis(ms).as_secs_f64()))
                    .unwrap_or_default();
                let detail = record.detail.map(|d| d.to_string()).unwrap_or_default();
                println!(
                    "{}  {:<11} {:<19}  {took:>8}  {detail}",
                    record.id,
                    record.state.to_string(),
                    when(record.created_at)
                );
            }
            Ok(())
        }
        DeploymentCommand::Status { id } => {
            print_record(&client.deployment(&id).await?, true);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::model::FailurePolicy;

    fn args(merge: &[&str], remove: &[&str], update: Option<&str>) -> CreateArgs {
        CreateArgs {
            recipe_dir: None,
            artifact_dir: None,
            merge: merge.iter().map(|s| (*s).to_owned()).collect(),
            remove: remove.iter().map(|s| (*s).to_owned()).collect(),
            update_config: update.map(str::to_owned),
            failure_handling_policy: FailurePolicy::Rollback,
            no_wait: false,
            timeout: 1,
        }
    }

    #[test]
    fn greengrass_cli_arguments_become_a_request() {
        let r =
            request(&args(&["a=1.0.0", " b = 2.0.0 "], &["x,y", "z"], Some(r#"{"a": {"MERGE": {"k": 1}}}"#))).unwrap();
        assert_eq!(r.merge.get("b").map(String::as_str), Some("2.0.0"));
        assert_eq!(r.remove, vec!["x", "y", "z"]);
        assert!(r.update_config.contains_key("a"));
    }

    #[test]
    fn malformed_arguments_say_what_is_expected() {
        for bad in [args(&["a"], &[], None), args(&["=1"], &[], None), args(&[], &[], Some("{nope"))] {
            assert!(matches!(request(&bad), Err(CliError::Usage(_))));
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("u.json");
        std::fs::write(&file, r#"{"c": {"RESET": [""]}}"#).unwrap();
        let from_file = request(&args(&[], &[], Some(&format!("@{}", file.display())))).unwrap();
        assert_eq!(from_file.update_config["c"].reset, vec![String::new()]);
        let from_path = request(&args(&[], &[], Some(file.to_str().unwrap()))).unwrap();
        assert!(from_path.update_config.contains_key("c"));
    }
}
