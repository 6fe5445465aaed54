//! `turf component list|details|restart|stop`, after greengrass-cli's `component` commands.

use super::{CliError, ComponentCommand};
use crate::components::ControlAction;
use crate::components::budget::UsageReport;
use crate::deploy::model::{ComponentDetails, ComponentInfo};
use crate::layout::RootLayout;
use crate::mgmt::client::Client;
use crate::store;

/// `3d 4h`, `2h 5m`, `4m 10s`, `12s`: the two largest units of a duration in seconds.
pub fn human_duration(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// `1.2/8.0 MiB`: memory held over the budget.
pub fn memory_figure(u: &UsageReport) -> String {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    format!("{:.1}/{:.1} MiB", mib(u.memory_bytes), mib(u.memory_limit_bytes))
}

/// One line of what was dropped, refused or slowed, or `None` when nothing was.
pub fn refusals(u: &UsageReport) -> Option<String> {
    let parts: Vec<String> = [
        (u.dropped_messages, "message(s) dropped (inbox full)"),
        (u.budget_overruns, "call(s) over budget"),
        (u.memory_refusals, "memory growth(s) refused"),
        (u.throttled_calls, "call(s) throttled (CPU share)"),
        (u.coalesced_ticks, "timer tick(s) merged"),
        (u.dropped_log_bytes, "log byte(s) dropped"),
        (u.refused_config_updates, "configuration update(s) refused"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn uptime(c: &ComponentInfo, now: i64) -> String {
    c.running_since.map(|since| human_duration(now - since)).unwrap_or_else(|| "-".to_owned())
}

#[allow(clippy::print_stdout)] // command output
fn print_list(components: &[ComponentInfo]) {
    let now = store::now_secs();
    let names: Vec<String> =
        components.iter().map(|c| format!("{}{}", c.name, if c.builtin { " (built-in)" } else { "" })).collect();
    let width = names.iter().map(String::len).max().unwrap_or(9).max(9);
    println!("{:<width$}  {:<9} {:<9} {:>8} {:>8}", "COMPONENT", "VERSION", "STATE", "UPTIME", "RESTARTS");
    for (c, name) in components.iter().zip(names) {
        let up = if c.builtin { "-".to_owned() } else { uptime(c, now) };
        println!("{name:<width$}  {:<9} {:<9} {up:>8} {:>8}", c.version, c.state.to_string(), c.restarts);
    }
}

/// Prints `turf component details`.
#[allow(clippy::print_stdout)] // command output
fn print_details(d: &ComponentDetails) {
    let c = &d.info;
    println!("Component {} {}{}", c.name, c.version, if c.builtin { " (built into Turf)" } else { "" });
    println!("  state:     {}", c.state);
    if !c.builtin {
        println!("  uptime:    {}", uptime(c, store::now_secs()));
        println!("  restarts:  {}", c.restarts);
        println!("  root:      {}", if c.root { "yes (deployed by name)" } else { "no (a dependency)" });
    }
    if let Some(origin) = &d.origin {
        println!("  recipe:    {origin}");
    }
    if let Some(log) = &d.log_file {
        println!("  log:       {} (turf logs {})", log.display(), c.name);
    }
    println!("  last error: {}", c.error.as_deref().unwrap_or("none"));
    if let Some(u) = &c.usage {
        println!("  memory:    {} (peak {:.1} MiB)", memory_figure(u), u.memory_peak_bytes as f64 / 1048576.0);
        println!("  cpu:       {} ms on the component thread", u.cpu_ms);
        println!("  throttled: {} call(s), {} ms waited (over its CPU share)", u.throttled_calls, u.throttled_ms);
        println!("  dropped:   {} message(s) (inbox full), {} log byte(s)", u.dropped_messages, u.dropped_log_bytes);
        println!(
            "  refused:   {} call(s) over budget, {} memory growth(s), {} configuration update(s); {} timer tick(s) merged",
            u.budget_overruns, u.memory_refusals, u.refused_config_updates, u.coalesced_ticks
        );
    }
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    println!("  effective configuration:");
    for line in pretty(&d.configuration).lines() {
        println!("    {line}");
    }
    if let Some(recipe) = &d.recipe {
        println!("  recipe:");
        for line in pretty(recipe).lines() {
            println!("    {line}");
        }
    }
}

/// Runs a `turf component` command.
#[allow(clippy::print_stdout)] // command output
pub async fn execute(layout: &RootLayout, command: ComponentCommand) -> Result<(), CliError> {
    let client = Client::new(&layout.socket());
    match command {
        ComponentCommand::List => print_list(&client.components().await?),
        ComponentCommand::Details { name } => print_details(&client.component(&name).await?),
        ComponentCommand::Restart { names } => {
            for name in split_names(&names)? {
                client.control(&name, ControlAction::Restart).await?;
                println!("{name}: restarted, RUNNING");
            }
        }
        ComponentCommand::Stop { names } => {
            for name in split_names(&names)? {
                client.control(&name, ControlAction::Stop).await?;
                println!("{name}: stopped (it starts again with `turf component restart {name}` or a deployment)");
            }
        }
    }
    Ok(())
}

/// `a,b c` → `[a, b, c]` (greengrass-cli takes comma-separated names).
fn split_names(names: &[String]) -> Result<Vec<String>, CliError> {
    let out: Vec<String> =
        names.iter().flat_map(|n| n.split(',')).map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned).collect();
    if out.is_empty() {
        return Err(CliError::Usage("name at least one component".to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_show_their_two_largest_units() {
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(59), "59s");
        assert_eq!(human_duration(61), "1m 1s");
        assert_eq!(human_duration(3 * 3600 + 125), "3h 2m");
        assert_eq!(human_duration(2 * 86_400 + 7200), "2d 2h");
        assert_eq!(human_duration(-5), "0s");
    }

    #[test]
    fn names_split_on_commas_and_nothing_is_refused() {
        assert_eq!(split_names(&["a,b".to_owned(), " c ".to_owned()]).unwrap(), vec!["a", "b", "c"]);
        assert!(split_names(&[",".to_owned()]).is_err());
    }
}
