//! What `turf component list` and `turf component details` show: the deployed set joined with
//! the runtime's latest status of each component.

use super::Deployments;
use super::builtin;
use super::dropin;
use super::model::{ComponentDetails, ComponentInfo};
use crate::components::lifecycle::State;

impl Deployments {
    /// Everything about one component (`turf component details`).
    pub(super) fn details(&self, name: &str) -> Option<ComponentDetails> {
        let info = self.components().into_iter().find(|c| c.name == name)?;
        let deployed = self.current.get(name);
        let recipe = deployed.and_then(|d| d.recipe.as_ref());
        Some(ComponentDetails {
            configuration: deployed.map_or_else(|| serde_json::json!({}), |d| d.config.clone()),
            recipe: recipe.map(|r| r.document.clone()),
            origin: recipe.and_then(dropin::origin_note),
            log_file: recipe.map(|_| self.layout.component_log(name)),
            info,
        })
    }

    /// Every component with its state (`turf component list`).
    pub(super) fn components(&self) -> Vec<ComponentInfo> {
        let mut out: Vec<ComponentInfo> = builtin::BUILTINS
            .iter()
            .map(|b| ComponentInfo {
                name: b.name.to_owned(),
                version: b.version.to_owned(),
                state: State::Running,
                builtin: true,
                root: self.current.get(b.name).is_some_and(|d| d.root),
                restarts: 0,
                error: None,
                running_since: None,
                usage: None,
            })
            .collect();
        for (name, deployed) in self.current.iter().filter(|(_, d)| d.recipe.is_some()) {
            let status = self.statuses.get(name).filter(|s| s.version == deployed.version.to_string());
            out.push(ComponentInfo {
                name: name.clone(),
                version: deployed.version.to_string(),
                state: status.map(|s| s.state).unwrap_or(State::Installed),
                builtin: false,
                root: deployed.root,
                restarts: status.map(|s| s.restarts).unwrap_or(0),
                error: status.and_then(|s| s.error.clone()),
                running_since: status.and_then(|s| s.running_since),
                usage: status.map(|s| s.usage.report()),
            });
        }
        out
    }
}
