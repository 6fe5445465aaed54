//! Results: one measurement per run, medians across repetitions, Turf's ratio to each peer
//! broker, and the JSON and markdown renderings. Pure: no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Which way is better for a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// Throughput, rates.
    Higher,
    /// Latency, memory, time.
    Lower,
}

/// One metric of one scenario, with every run's value per broker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Scenario, e.g. `1. throughput QoS 1, mTLS`.
    pub scenario: String,
    /// What is measured, e.g. `delivered msg/s`.
    pub name: String,
    /// Unit for display.
    pub unit: String,
    /// Which way is better.
    pub better: Better,
    /// Values per broker (`turf`, `mosquitto`, `rumqttd`), one per repetition.
    pub runs: BTreeMap<String, Vec<f64>>,
}

impl Metric {
    /// A metric with no runs yet.
    pub fn new(scenario: &str, name: &str, unit: &str, better: Better) -> Self {
        Self {
            scenario: scenario.to_owned(),
            name: name.to_owned(),
            unit: unit.to_owned(),
            better,
            runs: BTreeMap::new(),
        }
    }

    /// Adds one run's value for `broker`.
    pub fn add(&mut self, broker: &str, value: f64) {
        self.runs.entry(broker.to_owned()).or_default().push(value);
    }

    /// The median of `broker`'s runs.
    pub fn median(&self, broker: &str) -> Option<f64> {
        median(self.runs.get(broker)?)
    }

    /// Turf's median divided by `peer`'s, when both ran: infinite when only the peer's is 0,
    /// 1 when both are (an idle broker that never woke up).
    pub fn ratio(&self, peer: &str) -> Option<f64> {
        let (t, p) = (self.median(TURF)?, self.median(peer)?);
        Some(match (t == 0.0, p == 0.0) {
            (true, true) => 1.0,
            (false, true) => f64::INFINITY,
            _ => t / p,
        })
    }

    /// Whether a ratio means Turf did at least as well.
    fn ahead(&self, ratio: f64) -> bool {
        match self.better {
            Better::Higher => ratio >= 1.0,
            Better::Lower => ratio <= 1.0,
        }
    }
}

/// The name Turf's runs are recorded under; its column comes first, and every other broker gets
/// a ratio column.
pub const TURF: &str = "turf";

/// A broker with a column in the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Broker {
    /// The name its runs are recorded under (`turf`, `mosquitto`, `rumqttd`).
    pub name: String,
    /// Its column header, with its version (`mosquitto 2.0.11`).
    pub label: String,
}

/// The median of `values` (mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) { (sorted[mid - 1] + sorted[mid]) / 2.0 } else { sorted[mid] })
}

/// A number with sensible precision for a table.
pub fn format_value(value: f64, unit: &str) -> String {
    let number = if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else if value.abs() >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    };
    if unit.is_empty() { number } else { format!("{number} {unit}") }
}

/// A ratio with two decimals (`∞` when the peer measured 0).
fn format_ratio(ratio: f64) -> String {
    if ratio.is_infinite() { "∞".to_owned() } else { format!("{ratio:.2}") }
}

/// Everything one `make bench` run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// When it ran (RFC 3339).
    pub when: String,
    /// The machine, as `uname`, `/proc/cpuinfo` and `/proc/meminfo` describe it.
    pub machine: String,
    /// The brokers compared, in column order, Turf first.
    pub brokers: Vec<Broker>,
    /// Repetitions per scenario and broker.
    pub repetitions: usize,
    /// Every metric.
    pub metrics: Vec<Metric>,
}

/// The scenario number a label starts with (`7. footprint` → 7), for ordering the table.
fn scenario_number(label: &str) -> u32 {
    label.split('.').next().and_then(|n| n.trim().parse().ok()).unwrap_or(u32::MAX)
}

impl Report {
    /// Orders the metrics by scenario number, keeping the order within a scenario.
    pub fn sort(&mut self) {
        self.metrics.sort_by_key(|m| scenario_number(&m.scenario));
    }

    fn peers(&self) -> impl Iterator<Item = &Broker> {
        self.brokers.iter().filter(|b| b.name != TURF)
    }

    /// The table: scenario, metric, a column per broker, Turf's ratio to each peer (✓ where
    /// Turf did at least as well). A broker that did not take part shows `–`.
    pub fn markdown_table(&self) -> String {
        let mut out = String::from("| scenario | metric |");
        for b in &self.brokers {
            out.push_str(&format!(" {} |", b.label));
        }
        for p in self.peers() {
            out.push_str(&format!(" Turf / {} |", p.name));
        }
        out.push_str("\n|---|---|");
        out.push_str(&"---:|".repeat(self.brokers.len() + self.peers().count()));
        out.push('\n');
        for m in &self.metrics {
            out.push_str(&format!("| {} | {} |", m.scenario, m.name));
            for b in &self.brokers {
                let cell = m.median(&b.name).map(|v| format_value(v, &m.unit)).unwrap_or_else(|| "–".to_owned());
                out.push_str(&format!(" {cell} |"));
            }
            for p in self.peers() {
                let ratio = match m.ratio(&p.name) {
                    Some(r) => format!("{}{}", format_ratio(r), if m.ahead(r) { " ✓" } else { "" }),
                    None => "–".to_owned(),
                };
                out.push_str(&format!(" {ratio} |"));
            }
            out.push('\n');
        }
        out
    }

    /// A plain-text table for the terminal.
    pub fn text_table(&self) -> String {
        let mut header = vec!["scenario".to_owned(), "metric".to_owned()];
        header.extend(self.brokers.iter().map(|b| b.name.clone()));
        header.extend(self.peers().map(|p| format!("turf/{}", p.name)));
        let rows: Vec<Vec<String>> = self
            .metrics
            .iter()
            .map(|m| {
                let mut row = vec![m.scenario.clone(), m.name.clone()];
                row.extend(
                    self.brokers
                        .iter()
                        .map(|b| m.median(&b.name).map(|v| format_value(v, &m.unit)).unwrap_or_else(|| "-".to_owned())),
                );
                row.extend(self.peers().map(|p| m.ratio(&p.name).map(format_ratio).unwrap_or_else(|| "-".to_owned())));
                row
            })
            .collect();
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |row: &[String]| {
            row.iter()
                .zip(&widths)
                .map(|(c, &w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        };
        let mut out = line(&header) + "\n";
        for row in &rows {
            out.push_str(&line(row));
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_ignore_order_and_non_finite_values() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
        assert_eq!(median(&[]), None);
    }

    fn brokers() -> Vec<Broker> {
        [("turf", "Turf"), ("mosquitto", "mosquitto 2.0.11"), ("rumqttd", "rumqttd 0.20.0")]
            .map(|(name, label)| Broker { name: name.to_owned(), label: label.to_owned() })
            .to_vec()
    }

    #[test]
    fn ratios_and_marks_follow_which_way_is_better() {
        let mut throughput = Metric::new("1", "delivered", "msg/s", Better::Higher);
        throughput.add("turf", 200.0);
        throughput.add("mosquitto", 100.0);
        let mut latency = Metric::new("3", "p99", "ms", Better::Lower);
        latency.add("turf", 2.0);
        latency.add("mosquitto", 1.0);
        throughput.add("rumqttd", 400.0);
        let mut idle = Metric::new("0", "wake-ups", "/s", Better::Lower);
        idle.add("turf", 2.0);
        idle.add("mosquitto", 0.0);
        idle.add("rumqttd", 0.0);
        let mut cpu = Metric::new("0", "CPU", "%", Better::Lower);
        cpu.add("turf", 0.0);
        cpu.add("mosquitto", 0.5);
        cpu.add("rumqttd", 0.0);
        let report = Report {
            when: String::new(),
            machine: String::new(),
            brokers: brokers(),
            repetitions: 1,
            metrics: vec![throughput, latency, idle, cpu],
        };
        let table = report.markdown_table();
        assert!(
            table.starts_with(
                "| scenario | metric | Turf | mosquitto 2.0.11 | rumqttd 0.20.0 | Turf / mosquitto | Turf / rumqttd |\n\
                 |---|---|---:|---:|---:|---:|---:|\n"
            ),
            "{table}"
        );
        assert!(table.contains("| 1 | delivered | 200 msg/s | 100 msg/s | 400 msg/s | 2.00 ✓ | 0.50 |"), "{table}");
        assert!(table.contains("| 3 | p99 | 2.00 ms | 1.00 ms | – | 2.00 | – |"), "{table}");
        assert!(table.contains("| 0 | wake-ups | 2.00 /s | 0.000 /s | 0.000 /s | ∞ | ∞ |"), "{table}");
        assert!(table.contains("| 0 | CPU | 0.000 % | 0.500 % | 0.000 % | 0.00 ✓ | 1.00 ✓ |"), "{table}");
        let text = report.text_table();
        assert_eq!(text.lines().count(), 5);
        assert!(text.lines().next().is_some_and(|h| h.ends_with("turf/mosquitto  turf/rumqttd")), "{text}");
    }

    #[test]
    fn metrics_sort_by_scenario_number_and_keep_their_order_within_one() {
        let mut report = Report {
            when: String::new(),
            machine: String::new(),
            brokers: brokers(),
            repetitions: 1,
            metrics: vec![
                Metric::new("7. footprint", "a", "", Better::Lower),
                Metric::new("4. storm", "b", "", Better::Lower),
                Metric::new("7. footprint", "c", "", Better::Lower),
                Metric::new("10. later", "d", "", Better::Lower),
            ],
        };
        report.sort();
        let names: Vec<&str> = report.metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, vec!["b", "a", "c", "d"]);
    }

    #[test]
    fn values_get_precision_by_size() {
        assert_eq!(format_value(123_456.7, "msg/s"), "123457 msg/s");
        assert_eq!(format_value(12.34, "ms"), "12.3 ms");
        assert_eq!(format_value(0.1234, "ms"), "0.123 ms");
        assert_eq!(format_value(5.0, ""), "5.00");
    }
}
