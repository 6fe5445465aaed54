//! `turf-bench`: Turf, mosquitto and rumqttd side by side on this machine (`make bench`).
//!
//! Starts Turf (`turf run`, release build), Debian's mosquitto configured like it (same
//! certificates, see `brokers`) and, when `--rumqttd` names its binary, rumqttd 0.20 (plain TCP
//! only, see `rumqttd`); runs each broker scenario against every broker that takes part,
//! rotating which goes first, several times, then Turf's own scenarios. Prints a table of
//! medians with Turf's ratio to each peer and writes `bench/results/latest.json`,
//! `bench/results/latest.md`, and the results section of `docs/BENCHMARKS.md`.
//!
//! - `brokers`: Turf and mosquitto as child processes. `rumqttd`: rumqttd as one. `lineup`: which
//!   brokers take part, and starting them afresh. `compare`: the side-by-side scenarios 0–4.
//!   `client`: the MQTT clients. `load`: the load of scenarios 1–4. `procfs`: memory, wake-ups
//!   and CPU of a process. `turf_only`: scenarios 5–7. `api`: Turf's management API. `report`:
//!   medians and tables.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line tool: stdout is its output

mod api;
mod brokers;
mod client;
mod compare;
mod lineup;
mod load;
mod procfs;
mod report;
mod rumqttd;
mod turf_only;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::{Value, json};

use self::brokers::{TurfProcess, allow_all};
use self::client::Creds;
use self::lineup::Lineup;
use self::procfs::rss_kb;
use self::report::{Better, Metric, Report};
use self::turf_only::Artifacts;

/// Benchmark Turf against mosquitto and rumqttd on this machine.
#[derive(Debug, Parser)]
struct Args {
    /// The `turf` binary (a release build).
    #[arg(long, default_value = "target/release/turf")]
    turf: PathBuf,
    /// The workspace (recipes, built plugins).
    #[arg(long, default_value = ".")]
    workspace: PathBuf,
    /// The `rumqttd` binary (0.20; `make bench` installs it under `target/peers`). Without it
    /// the run compares Turf and mosquitto only.
    #[arg(long)]
    rumqttd: Option<PathBuf>,
    /// Repetitions of each scenario per broker.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Devices in the connection storm.
    #[arg(long, default_value_t = 2000)]
    storm: usize,
    /// Seconds each throughput run publishes.
    #[arg(long, default_value_t = 3)]
    window: u64,
    /// JSON results.
    #[arg(long, default_value = "bench/results/latest.json")]
    out: PathBuf,
    /// The document whose results section is replaced.
    #[arg(long, default_value = "docs/BENCHMARKS.md")]
    doc: PathBuf,
    /// Only these scenarios (comma-separated numbers, e.g. `0,1,5`); all by default.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

impl Args {
    fn runs(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == scenario)
    }
}

fn machine() -> String {
    let uname = std::process::Command::new("uname")
        .args(["-srm"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("")
        .trim()
        .to_owned();
    let cores = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    format!("{uname}; {cores} × {model}; {:.1} GiB RAM", mem_kb as f64 / 1024.0 / 1024.0)
}

/// Issues `count` device certificates from Turf's CA, named `prefix-0000`…
fn add_devices(api: &api::Api, prefix: &str, count: usize) -> Result<Vec<Creds>> {
    (0..count)
        .map(|i| {
            let thing = format!("{prefix}-{i:04}");
            let reply: Value = api.post("/devices", &json!({"op": "add", "thing": thing}))?;
            let field = |k: &str| reply[k].as_str().map(str::to_owned).with_context(|| format!("no {k} in {reply}"));
            Ok(Creds { thing, cert_pem: field("cert_pem")?, key_pem: field("key_pem")?, ca_pem: field("ca_pem")? })
        })
        .collect()
}

fn step(text: &str) {
    eprintln!("==> {text}");
}

struct Devices {
    publisher: Creds,
    subscriber: Creds,
    fan_in: Vec<Creds>,
    storm: Vec<Creds>,
    shadow: Creds,
    hot: Creds,
}

async fn turf_scenarios(
    turf: &TurfProcess,
    creds: &Devices,
    args: &Args,
    scratch: &Path,
    metrics: &mut Vec<Metric>,
) -> Result<()> {
    let artifacts = Artifacts { workspace: args.workspace.clone() };
    if args.runs("5") {
        end_to_end(turf, creds, &artifacts, scratch, metrics).await?;
    }
    if args.runs("6") {
        shadows(turf, creds, args, metrics).await?;
    }
    if args.runs("7") {
        step("7. hot reload");
        let mut fresh =
            Metric::new("7. footprint", "hot reload: new .wasm moved in → answered by it", "ms", Better::Lower);
        let mut cached =
            Metric::new("7. footprint", "hot reload: a .wasm compiled before (cache hit)", "ms", Better::Lower);
        // Once unmeasured, so that the plain copy is in the compile cache from then on.
        turf_only::hot_reload(turf, &creds.hot, &artifacts, None).await?;
        for rep in 0..args.reps {
            let salt = (u64::from(std::process::id()) << 32) | rep as u64;
            fresh.add("turf", turf_only::hot_reload(turf, &creds.hot, &artifacts, Some(salt)).await?);
            cached.add("turf", turf_only::hot_reload(turf, &creds.hot, &artifacts, None).await?);
        }
        metrics.push(fresh);
        metrics.push(cached);
    }
    Ok(())
}

async fn end_to_end(
    turf: &TurfProcess,
    creds: &Devices,
    artifacts: &Artifacts,
    scratch: &Path,
    metrics: &mut Vec<Metric>,
) -> Result<()> {
    let scenario = "5. device → component → device, mTLS";
    step(scenario);
    let e2e = turf_only::end_to_end(turf, &creds.publisher, artifacts, &scratch.join("echo")).await?;
    for (name, value, unit, better) in [
        ("p50 at 1k msg/s", e2e.p50, "ms", Better::Lower),
        ("p99 at 1k msg/s", e2e.p99, "ms", Better::Lower),
        ("max at 1k msg/s", e2e.max, "ms", Better::Lower),
        ("echo rate with no loss (offered 2k…32k)", e2e.lossless_rate, "msg/s", Better::Higher),
    ] {
        let mut m = Metric::new(scenario, name, unit, better);
        m.add("turf", value);
        metrics.push(m);
    }
    Ok(())
}

async fn shadows(turf: &TurfProcess, creds: &Devices, args: &Args, metrics: &mut Vec<Metric>) -> Result<()> {
    let scenario = "6. shadow update → accepted, mTLS";
    step(scenario);
    let shadows = turf_only::shadows(turf, &creds.shadow, &args.workspace).await?;
    for (name, value, unit, better) in [
        ("round trip p50", shadows.p50, "ms", Better::Lower),
        ("round trip p99", shadows.p99, "ms", Better::Lower),
        ("durable updates (32 in flight)", shadows.per_second, "updates/s", Better::Higher),
    ] {
        let mut m = Metric::new(scenario, name, unit, better);
        m.add("turf", value);
        metrics.push(m);
    }
    Ok(())
}

fn footprint(args: &Args, scratch: &Path, metrics: &mut Vec<Metric>) -> Result<()> {
    step("7. footprint with the tutorial deployed");
    let root = scratch.join("tutorial-root");
    let turf = TurfProcess::start(&args.turf, &root)?;
    turf_only::deploy_tutorial(&turf.api(), &args.workspace)?;
    turf_only::wait_running(&turf.api(), Duration::from_secs(30))?;
    // The same idle wait as after a restart (start-up and deployments give memory back 2 s on).
    std::thread::sleep(Duration::from_secs(5));
    let scenario = "7. footprint";
    let mut fresh = Metric::new(scenario, "idle RSS, tutorial just deployed on a fresh root", "MB", Better::Lower);
    fresh.add("turf", rss_kb(turf.target.pid)? as f64 / 1024.0);
    turf.stop()?;
    let mut rss = Metric::new(scenario, "idle RSS, tutorial deployed, after a restart", "MB", Better::Lower);
    let mut ready = Metric::new(scenario, "exec → ready (listeners accepting)", "ms", Better::Lower);
    let mut running = Metric::new(scenario, "exec → all components RUNNING", "ms", Better::Lower);
    for _ in 0..args.reps {
        let f = turf_only::footprint(&args.turf, &root)?;
        rss.add("turf", f.idle_rss_mb);
        ready.add("turf", f.ready_ms);
        running.add("turf", f.running_ms);
    }
    metrics.extend([fresh, rss, ready, running]);
    Ok(())
}

/// Replaces the part of `doc` between the results markers with `section`.
fn splice(doc: &str, section: &str) -> String {
    const START: &str = "<!-- results:start -->";
    const END: &str = "<!-- results:end -->";
    match (doc.find(START), doc.find(END)) {
        (Some(a), Some(b)) if a < b => format!("{}{START}\n{section}{}", &doc[..a], &doc[b..]),
        _ => format!("{doc}\n{START}\n{section}{END}\n"),
    }
}

async fn run(args: Args) -> Result<Report> {
    let scratch = tempfile::tempdir()?;
    let when = std::process::Command::new("date").arg("-u").arg("+%Y-%m-%dT%H:%M:%SZ").output()?;
    let mut metrics = Vec::new();
    step("starting Turf and issuing device certificates");
    let turf = TurfProcess::start(&args.turf, &scratch.path().join("turf-root"))?;
    let api = turf.api();
    allow_all(&api)?;
    let mut fixed = add_devices(&api, "bench", 4)?.into_iter();
    let devices = Devices {
        publisher: fixed.next().context("device")?,
        subscriber: fixed.next().context("device")?,
        shadow: fixed.next().context("device")?,
        hot: fixed.next().context("device")?,
        fan_in: add_devices(&api, "fanin", 100)?,
        storm: add_devices(&api, "storm", args.storm)?,
    };
    let lineup = Lineup::new(&args.turf, args.rumqttd.as_deref(), &turf.root, scratch.path());
    if args.runs("1") || args.runs("2") || args.runs("3") {
        let mut peers = Vec::new();
        for name in lineup.names(false).into_iter().filter(|&n| n != report::TURF) {
            peers.push(lineup.start(name, None)?);
        }
        let mut targets = vec![turf.target.clone()];
        targets.extend(peers.iter().map(|p| p.target().clone()));
        for t in &targets {
            eprintln!("    {}: TLS {:?} plain {}", t.name, t.tls_port, t.plain_port);
        }
        compare::broker_scenarios(&targets, &devices, &args, &mut metrics).await?;
        for peer in peers {
            peer.stop()?;
        }
    }
    turf_scenarios(&turf, &devices, &args, scratch.path(), &mut metrics).await?;
    let turf_root = turf.root.clone();
    turf.stop()?;
    if args.runs("4") {
        compare::storm(&lineup, &args, &turf_root, &devices.storm, &mut metrics).await?;
    }
    if args.runs("2") {
        compare::fresh_fan_in(&lineup, &args, &mut metrics).await?;
    }
    if args.runs("0") {
        compare::idle(&lineup, &args, &mut metrics).await?;
    }
    if args.runs("7") {
        footprint(&args, scratch.path(), &mut metrics)?;
    }
    Ok(Report {
        when: String::from_utf8_lossy(&when.stdout).trim().to_owned(),
        machine: machine(),
        brokers: lineup.columns(),
        repetitions: args.reps,
        metrics,
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let (out, doc) = (args.out.clone(), args.doc.clone());
    let mut report = runtime.block_on(run(args))?;
    report.sort();
    println!("\n{}", report.text_table());
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&report)?)?;
    let peers: Vec<&str> = report.brokers.iter().skip(1).map(|b| b.label.as_str()).collect();
    let section = format!(
        "Run {} on {}, against {}; medians of {} runs per broker.\n\n{}",
        report.when,
        report.machine,
        peers.join(" and "),
        report.repetitions,
        report.markdown_table()
    );
    std::fs::write(out.with_extension("md"), &section)?;
    let existing = std::fs::read_to_string(&doc).unwrap_or_default();
    std::fs::write(&doc, splice(&existing, &section))?;
    println!("wrote {}, {} and {}", out.display(), out.with_extension("md").display(), doc.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_replace_only_their_section() {
        let doc = "# Benchmarks\nfindings\n<!-- results:start -->\nold\n<!-- results:end -->\nmore findings\n";
        let new = splice(doc, "new table\n");
        assert_eq!(
            new,
            "# Benchmarks\nfindings\n<!-- results:start -->\nnew table\n<!-- results:end -->\nmore findings\n"
        );
        assert!(splice("# empty", "t\n").ends_with("<!-- results:start -->\nt\n<!-- results:end -->\n"));
    }
}
