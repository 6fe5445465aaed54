//! `turf-bench`: Turf and mosquitto side by side on this machine (`make bench`).
//!
//! Starts Turf (`turf run`, release build) and Debian's mosquitto configured like it (same
//! certificates, see `brokers`), runs each broker scenario against both, alternating which goes
//! first, several times, then Turf's own scenarios. Prints a table of medians with the ratio
//! Turf / mosquitto and writes `bench/results/latest.json`, `bench/results/latest.md`, and the
//! results section of `docs/BENCHMARKS.md`.
//!
//! - `brokers`: the two brokers as child processes. `load`: the MQTT load generator and
//!   scenarios 1–4. `turf_only`: scenarios 5–7. `api`: Turf's management API. `report`: medians
//!   and tables.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line tool: stdout is its output

mod api;
mod brokers;
mod load;
mod report;
mod turf_only;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use rumqttc::QoS;
use serde_json::{Value, json};

use self::brokers::{MosquittoProcess, Target, TurfProcess, allow_all, mosquitto_version};
use self::load::{Creds, Via};
use self::report::{Better, Metric, Report};
use self::turf_only::Artifacts;

/// Benchmark Turf against mosquitto on this machine.
#[derive(Debug, Parser)]
struct Args {
    /// The `turf` binary (a release build).
    #[arg(long, default_value = "target/release/turf")]
    turf: PathBuf,
    /// The workspace (recipes, built plugins).
    #[arg(long, default_value = ".")]
    workspace: PathBuf,
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
    /// Only these scenarios (comma-separated numbers, e.g. `1,5`); all by default.
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

/// The order of the two brokers in repetition `rep` (alternating who goes first).
fn order(targets: &[Target; 2], rep: usize) -> [&Target; 2] {
    if rep.is_multiple_of(2) { [&targets[0], &targets[1]] } else { [&targets[1], &targets[0]] }
}

fn step(text: &str) {
    eprintln!("==> {text}");
}

async fn broker_scenarios(
    targets: &[Target; 2],
    creds: &Devices,
    args: &Args,
    metrics: &mut Vec<Metric>,
) -> Result<()> {
    let window = Duration::from_secs(args.window);
    let throughput =
        if args.runs("1") { vec![(QoS::AtMostOnce, "QoS 0"), (QoS::AtLeastOnce, "QoS 1")] } else { vec![] };
    for (qos, qos_name) in throughput {
        for tls in [true, false] {
            let scenario = format!("1. 1→1 {qos_name}, {}", if tls { "mTLS" } else { "plain" });
            step(&scenario);
            let mut rate = Metric::new(&scenario, "delivered", "msg/s", Better::Higher);
            let mut share = Metric::new(&scenario, "delivered share", "%", Better::Higher);
            for rep in 0..args.reps {
                for target in order(targets, rep) {
                    let (pub_via, sub_via) = if tls {
                        (Via::Tls(&creds.publisher), Via::Tls(&creds.subscriber))
                    } else {
                        (Via::Plain("bench-pub"), Via::Plain("bench-sub"))
                    };
                    let run = format!("{rep}-{}", target.name);
                    let (r, s) = load::throughput(target, pub_via, sub_via, qos, &run, window).await?;
                    rate.add(target.name, r);
                    share.add(target.name, s);
                }
            }
            metrics.push(rate);
            metrics.push(share);
        }
    }
    if !args.runs("2") {
        return latency(targets, creds, args, metrics).await;
    }
    let scenario = "2. fan-in 100→1 QoS 1, mTLS";
    step(scenario);
    let mut rate = Metric::new(scenario, "delivered", "msg/s", Better::Higher);
    let mut share = Metric::new(scenario, "delivered share", "%", Better::Higher);
    for rep in 0..args.reps {
        for target in order(targets, rep) {
            let (r, s) = load::fan_in(target, &creds.fan_in, &creds.subscriber, window).await?;
            rate.add(target.name, r);
            share.add(target.name, s);
        }
    }
    metrics.push(rate);
    metrics.push(share);
    latency(targets, creds, args, metrics).await
}

async fn latency(targets: &[Target; 2], creds: &Devices, args: &Args, metrics: &mut Vec<Metric>) -> Result<()> {
    let window = Duration::from_secs(args.window);
    if !args.runs("3") {
        return Ok(());
    }
    for msg_rate in [1000u32, 5000] {
        let scenario = format!("3. latency at {}k msg/s, QoS 1, mTLS", msg_rate / 1000);
        step(&scenario);
        let mut p50 = Metric::new(&scenario, "p50", "ms", Better::Lower);
        let mut p99 = Metric::new(&scenario, "p99", "ms", Better::Lower);
        let mut max = Metric::new(&scenario, "max", "ms", Better::Lower);
        for rep in 0..args.reps {
            for target in order(targets, rep) {
                let run = format!("{msg_rate}-{rep}-{}", target.name);
                let (a, b, c, _) =
                    load::latency(target, &creds.publisher, &creds.subscriber, msg_rate, &run, window).await?;
                p50.add(target.name, a);
                p99.add(target.name, b);
                max.add(target.name, c);
            }
        }
        metrics.extend([p50, p99, max]);
    }
    Ok(())
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
        let mut hot = Metric::new("7. footprint", "hot reload: .wasm moved in → answered by it", "ms", Better::Lower);
        for _ in 0..args.reps {
            hot.add("turf", turf_only::hot_reload(turf, &creds.hot, &artifacts).await?);
        }
        metrics.push(hot);
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
    turf.stop()?;
    let scenario = "7. footprint";
    let mut rss = Metric::new(scenario, "idle RSS, tutorial deployed", "MB", Better::Lower);
    let mut ready = Metric::new(scenario, "exec → ready (listeners accepting)", "ms", Better::Lower);
    let mut running = Metric::new(scenario, "exec → all components RUNNING", "ms", Better::Lower);
    for _ in 0..args.reps {
        let f = turf_only::footprint(&args.turf, &root)?;
        rss.add("turf", f.idle_rss_mb);
        ready.add("turf", f.ready_ms);
        running.add("turf", f.running_ms);
    }
    metrics.extend([rss, ready, running]);
    Ok(())
}

/// Scenario 4 and the idle footprint, each repetition on freshly started brokers (memory a
/// broker kept from earlier load would hide what connections cost).
async fn storm(
    args: &Args,
    turf_root: &Path,
    scratch: &Path,
    devices: &[Creds],
    metrics: &mut Vec<Metric>,
) -> Result<()> {
    let scenario = format!("4. storm: {} mTLS devices", devices.len());
    step(&scenario);
    let mut idle = Metric::new("0. idle, freshly started", "RSS", "MB", Better::Lower);
    let mut rate = Metric::new(&scenario, "connections", "conn/s", Better::Higher);
    let mut per = Metric::new(&scenario, "RSS per idle connection", "kB", Better::Lower);
    for rep in 0..args.reps {
        let names = if rep.is_multiple_of(2) { ["turf", "mosquitto"] } else { ["mosquitto", "turf"] };
        for name in names {
            let (target, stop): (Target, Box<dyn FnOnce() -> Result<()>>) = if name == "turf" {
                let turf = TurfProcess::start(&args.turf, turf_root)?;
                (turf.target.clone(), Box::new(move || turf.stop()))
            } else {
                let mosquitto = MosquittoProcess::start(turf_root, &scratch.join(format!("mosquitto-storm-{rep}")))?;
                (mosquitto.target.clone(), Box::new(move || mosquitto.stop()))
            };
            tokio::time::sleep(Duration::from_secs(1)).await;
            idle.add(name, brokers::rss_kb(target.pid)? as f64 / 1024.0);
            let (r, p) = load::storm(&target, devices).await?;
            rate.add(name, r);
            per.add(name, p);
            stop()?;
        }
    }
    metrics.insert(0, idle);
    metrics.push(rate);
    metrics.push(per);
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
    let mosquitto = MosquittoProcess::start(&turf.root, &scratch.path().join("mosquitto"))?;
    let targets = [turf.target.clone(), mosquitto.target.clone()];
    eprintln!(
        "    turf: TLS {} plain {}; mosquitto: TLS {} plain {}",
        targets[0].tls_port, targets[0].plain_port, targets[1].tls_port, targets[1].plain_port
    );
    if args.runs("1") || args.runs("2") || args.runs("3") {
        broker_scenarios(&targets, &devices, &args, &mut metrics).await?;
    }
    mosquitto.stop()?;
    turf_scenarios(&turf, &devices, &args, scratch.path(), &mut metrics).await?;
    let turf_root = turf.root.clone();
    turf.stop()?;
    if args.runs("4") {
        storm(&args, &turf_root, scratch.path(), &devices.storm, &mut metrics).await?;
    }
    if args.runs("7") {
        footprint(&args, scratch.path(), &mut metrics)?;
    }
    Ok(Report {
        when: String::from_utf8_lossy(&when.stdout).trim().to_owned(),
        machine: machine(),
        mosquitto: mosquitto_version(),
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
    let section = format!(
        "Run {} on {}, against {}; medians of {} runs per broker.\n\n{}",
        report.when,
        report.machine,
        report.mosquitto,
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

    #[test]
    fn brokers_alternate_who_goes_first() {
        let t = |name| Target { name, tls_port: 0, plain_port: 0, pid: 0 };
        let targets = [t("turf"), t("mosquitto")];
        assert_eq!(order(&targets, 0).map(|t| t.name), ["turf", "mosquitto"]);
        assert_eq!(order(&targets, 1).map(|t| t.name), ["mosquitto", "turf"]);
    }
}
