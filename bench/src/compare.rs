//! The side-by-side scenarios: which brokers take part in each (every broker over plain TCP,
//! those with an mTLS listener over mTLS), the order they run in (rotating, so each goes first
//! equally often), and the metrics each run adds to. Scenarios 1–3 run on long-lived brokers;
//! the connection storm (4), the plain fan-in with its memory figures (2) and the idle figures
//! (0) start every broker afresh for every repetition.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use rumqttc::QoS;

use crate::brokers::Target;
use crate::client::{Creds, Via};
use crate::lineup::Lineup;
use crate::procfs::{self, PeakRss, rss_kb};
use crate::report::{Better, Metric};
use crate::{Args, Devices, load, step};

/// The order of `items` in repetition `rep`: rotated by one each repetition.
pub fn order<T>(items: &[T], rep: usize) -> Vec<&T> {
    let shift = if items.is_empty() { 0 } else { rep % items.len() };
    items[shift..].iter().chain(&items[..shift]).collect()
}

/// The brokers of `targets` that take part: all over plain TCP, those with mTLS over mTLS.
fn taking_part(targets: &[Target], tls: bool) -> Vec<&Target> {
    targets.iter().filter(|t| !tls || t.tls_port.is_some()).collect()
}

/// Scenarios 1 (1→1 throughput), 2 (fan-in over mTLS) and 3 (latency) on running brokers.
pub async fn broker_scenarios(
    targets: &[Target],
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
            let brokers = taking_part(targets, tls);
            for rep in 0..args.reps {
                for target in order(&brokers, rep) {
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
    if args.runs("2") {
        let scenario = "2. fan-in 100→1 QoS 1, mTLS";
        step(scenario);
        let mut rate = Metric::new(scenario, "delivered", "msg/s", Better::Higher);
        let mut share = Metric::new(scenario, "delivered share of acknowledged", "%", Better::Higher);
        let mut p50 = Metric::new(scenario, "p50 latency of what arrived", "ms", Better::Lower);
        let devices: Vec<Via> = creds.fan_in.iter().map(Via::Tls).collect();
        let brokers = taking_part(targets, true);
        for rep in 0..args.reps {
            for target in order(&brokers, rep) {
                let run = load::fan_in(target, &devices, Via::Tls(&creds.subscriber), window).await?;
                rate.add(target.name, run.rate);
                share.add(target.name, run.share);
                p50.add(target.name, run.p50_ms);
            }
        }
        metrics.extend([rate, share, p50]);
    }
    if args.runs("3") {
        latency(targets, creds, args, metrics).await?;
    }
    Ok(())
}

async fn latency(targets: &[Target], creds: &Devices, args: &Args, metrics: &mut Vec<Metric>) -> Result<()> {
    let window = Duration::from_secs(args.window);
    let brokers = taking_part(targets, true);
    for msg_rate in [1000u32, 5000] {
        let scenario = format!("3. latency at {}k msg/s, QoS 1, mTLS", msg_rate / 1000);
        step(&scenario);
        let mut p50 = Metric::new(&scenario, "p50", "ms", Better::Lower);
        let mut p99 = Metric::new(&scenario, "p99", "ms", Better::Lower);
        let mut max = Metric::new(&scenario, "max", "ms", Better::Lower);
        for rep in 0..args.reps {
            for target in order(&brokers, rep) {
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

/// Scenario 4, each repetition on freshly started brokers (memory a broker kept from earlier
/// load would hide what connections cost). Turf runs on `turf_root`, where the devices are.
pub async fn storm(
    lineup: &Lineup,
    args: &Args,
    turf_root: &Path,
    devices: &[Creds],
    metrics: &mut Vec<Metric>,
) -> Result<()> {
    let scenario = format!("4. storm: {} mTLS devices", devices.len());
    step(&scenario);
    let mut idle = Metric::new(&scenario, "RSS before, fresh (devices registered)", "MB", Better::Lower);
    let mut rate = Metric::new(&scenario, "connections", "conn/s", Better::Higher);
    let mut per = Metric::new(&scenario, "RSS per idle connection", "kB", Better::Lower);
    for rep in 0..args.reps {
        for name in order(&lineup.names(true), rep) {
            let broker = lineup.start(name, Some(turf_root))?;
            let target = broker.target().clone();
            tokio::time::sleep(Duration::from_secs(1)).await;
            idle.add(name, rss_kb(target.pid)? as f64 / 1024.0);
            let (r, p) = load::storm(&target, devices).await?;
            rate.add(name, r);
            per.add(name, p);
            broker.stop()?;
        }
    }
    metrics.extend([idle, rate, per]);
    Ok(())
}

/// How long after a fan-in ended its "RSS after" is read.
const AFTER: Duration = Duration::from_secs(10);

/// Scenario 2 over plain TCP, every broker fresh for every repetition so that its memory during
/// and after the load is the load's: delivered rate and share, median latency, peak RSS (sampled
/// every 50 ms) and RSS [`AFTER`] the fan-in ended and every client disconnected. Turf runs on a
/// root that holds nothing but its device policy.
pub async fn fresh_fan_in(lineup: &Lineup, args: &Args, metrics: &mut Vec<Metric>) -> Result<()> {
    let scenario = "2. fan-in 100→1 QoS 1, plain, fresh brokers";
    step(scenario);
    let turf_root = lineup.policy_root()?;
    let window = Duration::from_secs(args.window);
    let mut rate = Metric::new(scenario, "delivered", "msg/s", Better::Higher);
    let mut share = Metric::new(scenario, "delivered share of acknowledged", "%", Better::Higher);
    let mut p50 = Metric::new(scenario, "p50 latency of what arrived", "ms", Better::Lower);
    let mut peak = Metric::new(scenario, "peak RSS during the fan-in", "MB", Better::Lower);
    let mut after = Metric::new(scenario, "RSS 10 s after it ended", "MB", Better::Lower);
    let ids: Vec<String> = (0..100).map(|i| format!("fanin-plain-{i:03}")).collect();
    let devices: Vec<Via> = ids.iter().map(|id| Via::Plain(id)).collect();
    for rep in 0..args.reps {
        for name in order(&lineup.names(false), rep) {
            let broker = lineup.start(name, Some(&turf_root))?;
            let target = broker.target().clone();
            tokio::time::sleep(Duration::from_secs(1)).await;
            let sampler = PeakRss::start(target.pid, Duration::from_secs(180));
            let run = load::fan_in(&target, &devices, Via::Plain("fanin-plain-sub"), window).await;
            let highest = sampler.finish()?;
            let run = run?;
            tokio::time::sleep(AFTER).await;
            rate.add(name, run.rate);
            share.add(name, run.share);
            p50.add(name, run.p50_ms);
            peak.add(name, highest as f64 / 1024.0);
            after.add(name, rss_kb(target.pid)? as f64 / 1024.0);
            broker.stop()?;
        }
    }
    metrics.extend([rate, share, p50, peak, after]);
    Ok(())
}

/// How long a fresh broker settles before the idle window.
const SETTLE: Duration = Duration::from_secs(2);
/// The idle window wake-ups and CPU are counted over.
const IDLE_WINDOW: Duration = Duration::from_secs(10);

/// Scenario 0: each broker freshly started (Turf on an empty root), nothing connected: after
/// [`SETTLE`], context switches per second of all its threads and CPU % of one core over
/// [`IDLE_WINDOW`], then its RSS.
pub async fn idle(lineup: &Lineup, args: &Args, metrics: &mut Vec<Metric>) -> Result<()> {
    let scenario = "0. idle, fresh process, empty root";
    step(scenario);
    let mut rss = Metric::new(scenario, "RSS", "MB", Better::Lower);
    let mut wakeups = Metric::new(scenario, "wake-ups (context switches, all threads)", "/s", Better::Lower);
    let mut cpu = Metric::new(scenario, "CPU (% of one core)", "%", Better::Lower);
    for rep in 0..args.reps {
        for name in order(&lineup.names(false), rep) {
            let broker = lineup.start(name, None)?;
            let pid = broker.target().pid;
            tokio::time::sleep(SETTLE).await;
            let figures = tokio::task::spawn_blocking(move || procfs::idle(pid, IDLE_WINDOW)).await??;
            rss.add(name, rss_kb(pid)? as f64 / 1024.0);
            wakeups.add(name, figures.wakeups_per_second);
            cpu.add(name, figures.cpu_percent);
            broker.stop()?;
        }
    }
    metrics.extend([rss, wakeups, cpu]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brokers_take_turns_going_first() {
        let names = ["turf", "mosquitto", "rumqttd"];
        assert_eq!(order(&names, 0), [&"turf", &"mosquitto", &"rumqttd"]);
        assert_eq!(order(&names, 1), [&"mosquitto", &"rumqttd", &"turf"]);
        assert_eq!(order(&names, 2), [&"rumqttd", &"turf", &"mosquitto"]);
        assert_eq!(order(&names, 3), order(&names, 0));
        assert_eq!(order(&names[..2], 1), [&"mosquitto", &"turf"]);
        assert!(order::<u8>(&[], 1).is_empty());
    }

    #[test]
    fn rumqttd_sits_out_the_mtls_scenarios() {
        let t = |name, tls_port| Target { name, tls_port, plain_port: 0, pid: 0 };
        let targets = [t("turf", Some(1)), t("mosquitto", Some(2)), t("rumqttd", None)];
        let names = |tls| taking_part(&targets, tls).iter().map(|t| t.name).collect::<Vec<_>>();
        assert_eq!(names(true), ["turf", "mosquitto"]);
        assert_eq!(names(false), ["turf", "mosquitto", "rumqttd"]);
    }
}
