//! The Prometheus text exposition format (version 0.0.4): `# HELP` and `# TYPE` lines, then one
//! line per sample, label values escaped.
//!
//! Written by hand rather than with a metrics crate: every figure already lives in the service
//! that counts it, and a scrape asks the services for a snapshot, so there is no registry to keep
//! — only this text to write (and no global recorder that could panic).

use std::fmt::Write as _;

/// The type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (restarts at 0 with the process); its name ends in `_total`.
    Counter,
    /// Goes up and down.
    Gauge,
}

/// A text exposition being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

/// One metric family: its samples follow its `HELP` and `TYPE` lines.
pub struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl Exposition {
    /// Starts the family `name` (which must be a valid metric name) of `kind`.
    pub fn family(&mut self, name: &'static str, kind: Kind, help: &str) -> Family<'_> {
        debug_assert!(valid_name(name), "{name}");
        debug_assert!(kind != Kind::Counter || name.ends_with("_total"), "{name}");
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        Family { out: &mut self.out, name }
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

impl Family<'_> {
    /// A sample with `labels` (name, value) pairs; label names must be valid.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (name, value)) in labels.iter().enumerate() {
                debug_assert!(valid_name(name) && !name.contains(':'), "{name}");
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{name}=\"{}\"", escape(value));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
        self
    }

    /// A sample without labels.
    pub fn value(&mut self, value: f64) -> &mut Self {
        self.sample(&[], value)
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A sample value as the format writes it: integers without a fraction, `NaN`, `+Inf`, `-Inf`.
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf".to_owned() } else { "-Inf".to_owned() }
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_hostile_label_values() {
        let mut text = Exposition::default();
        text.family("turf_things_total", Kind::Counter, "Things.\nSeen.").value(3.0);
        text.family("turf_component_memory_bytes", Kind::Gauge, "Memory.")
            .sample(&[("component", "a\"b\\c\nd")], 1.5)
            .sample(&[("component", "x"), ("state", "RUNNING")], f64::INFINITY);
        let out = text.finish();
        assert_eq!(
            out,
            "# HELP turf_things_total Things.\\nSeen.\n# TYPE turf_things_total counter\nturf_things_total 3\n\
             # HELP turf_component_memory_bytes Memory.\n# TYPE turf_component_memory_bytes gauge\n\
             turf_component_memory_bytes{component=\"a\\\"b\\\\c\\nd\"} 1.5\n\
             turf_component_memory_bytes{component=\"x\",state=\"RUNNING\"} +Inf\n"
        );
    }

    #[test]
    fn names_and_numbers() {
        assert!(valid_name("process_cpu_seconds_total") && valid_name("a:b") && !valid_name("9a") && !valid_name(""));
        assert!(!valid_name("a-b"));
        assert_eq!(
            (number(0.0), number(-2.0), number(f64::NAN), number(0.25)),
            ("0".into(), "-2".into(), "NaN".into(), "0.25".into())
        );
        assert_eq!(number(1e20), "100000000000000000000");
    }
}
