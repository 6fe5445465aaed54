//! Step 2 of planning: the roots' dependencies, closed over and checked, and the start order.

use std::collections::{BTreeMap, BTreeSet};

use super::super::builtin;
use super::PlanError;
use super::select::{Catalog, Selected};

/// Adds every dependency, transitively: a built-in or the newest recipe in its range, or the
/// chain that cannot be satisfied. Returns the selection and the root names.
pub(super) fn close_dependencies(
    catalog: &Catalog,
    roots: BTreeMap<String, Selected>,
) -> Result<(BTreeMap<String, Selected>, BTreeSet<String>), PlanError> {
    let root_names: BTreeSet<String> = roots.keys().cloned().collect();
    let mut selected = roots;
    let mut work: Vec<(String, String)> = selected.keys().map(|n| (n.clone(), n.clone())).collect();
    while let Some((name, chain)) = work.pop() {
        let Some(Selected::Wasm(recipe)) = selected.get(&name).cloned() else {
            continue;
        };
        for (dep, spec) in &recipe.dependencies {
            let chain = format!("{chain} {} -> {dep}", recipe.version);
            let dep_err = |problem: String| PlanError::Dependency { chain: chain.clone(), problem };
            if let Some(existing) = selected.get(dep) {
                let have = existing.version();
                if !spec.requirement.matches(&have) {
                    return Err(dep_err(format!("requires {dep} {}, but {dep} {have} is deployed", spec.requirement)));
                }
                continue;
            }
            let chosen = if let Some(b) = builtin::find(dep) {
                if !spec.requirement.matches(&b.semver()) {
                    return Err(dep_err(format!(
                        "requires {dep} {}, but Turf provides {dep} {}",
                        spec.requirement, b.version
                    )));
                }
                Selected::Builtin(b)
            } else {
                let recipe = catalog.best(dep, &spec.requirement).ok_or_else(|| {
                    dep_err(format!(
                        "requires {dep} {}, and no recipe satisfies it (available: {})",
                        spec.requirement,
                        catalog.versions(dep)
                    ))
                })?;
                Selected::Wasm(Box::new(recipe.clone()))
            };
            selected.insert(dep.clone(), chosen);
            work.push((dep.clone(), chain));
        }
    }
    Ok((selected, root_names))
}

/// Refuses a dependency cycle, naming it.
pub(super) fn check_cycles(selected: &BTreeMap<String, Selected>) -> Result<(), PlanError> {
    fn visit<'a>(
        name: &'a str,
        selected: &'a BTreeMap<String, Selected>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Result<(), PlanError> {
        if done.contains(name) {
            return Ok(());
        }
        if let Some(pos) = stack.iter().position(|n| *n == name) {
            let mut cycle: Vec<&str> = stack[pos..].to_vec();
            cycle.push(name);
            return Err(PlanError::Dependency { chain: cycle.join(" -> "), problem: "dependency cycle".to_owned() });
        }
        stack.push(name);
        if let Some(Selected::Wasm(recipe)) = selected.get(name) {
            for dep in recipe.dependencies.keys() {
                if let Some((dep_key, _)) = selected.get_key_value(dep.as_str()) {
                    visit(dep_key, selected, stack, done)?;
                }
            }
        }
        stack.pop();
        done.insert(name);
        Ok(())
    }
    let mut done = BTreeSet::new();
    for name in selected.keys() {
        visit(name, selected, &mut Vec::new(), &mut done)?;
    }
    Ok(())
}

/// Orders WebAssembly components so that dependencies come first.
pub(super) fn dependency_order(selected: &BTreeMap<String, Selected>) -> Vec<String> {
    fn visit(name: &str, selected: &BTreeMap<String, Selected>, done: &mut Vec<String>) {
        if done.iter().any(|d| d == name) {
            return;
        }
        done.push(String::new()); // placeholder guards against cycles (already rejected)
        let placeholder = done.len() - 1;
        if let Some(Selected::Wasm(recipe)) = selected.get(name) {
            for dep in recipe.dependencies.keys() {
                visit(dep, selected, done);
            }
        }
        done.remove(placeholder);
        done.push(name.to_owned());
    }
    let mut done = Vec::new();
    for name in selected.keys() {
        visit(name, selected, &mut done);
    }
    done.retain(|n| matches!(selected.get(n), Some(Selected::Wasm(_))));
    done
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::deploy::recipe::{Platform, Recipe};

    fn wasm(name: &str, version: &str, deps: &[(&str, &str)]) -> Selected {
        let deps: serde_json::Map<String, serde_json::Value> =
            deps.iter().map(|(d, r)| ((*d).to_owned(), json!({"VersionRequirement": r}))).collect();
        let document = json!({
            "RecipeFormatVersion": "2020-01-25", "ComponentName": name, "ComponentVersion": version,
            "ComponentDependencies": deps,
            "Manifests": [{"Lifecycle": {"Run": "{artifacts:path}/c.wasm"}}]
        });
        Selected::Wasm(Box::new(Recipe::from_value(&document, "test", &Platform::current()).unwrap()))
    }

    fn selection(items: Vec<(&str, Selected)>) -> BTreeMap<String, Selected> {
        items.into_iter().map(|(n, s)| (n.to_owned(), s)).collect()
    }

    #[test]
    fn dependencies_start_before_their_dependants_and_built_ins_are_not_started() {
        let selected = selection(vec![
            ("app", wasm("app", "1.0.0", &[("lib", "^1"), ("aws.greengrass.Nucleus", "*")])),
            ("lib", wasm("lib", "1.0.0", &[("base", "*")])),
            ("base", wasm("base", "1.0.0", &[])),
            ("aws.greengrass.Nucleus", Selected::Builtin(builtin::find("aws.greengrass.Nucleus").unwrap())),
        ]);
        assert!(check_cycles(&selected).is_ok());
        assert_eq!(dependency_order(&selected), vec!["base", "lib", "app"]);
    }

    #[test]
    fn a_cycle_is_refused_with_its_path() {
        let selected = selection(vec![
            ("a", wasm("a", "1.0.0", &[("b", "*")])),
            ("b", wasm("b", "1.0.0", &[("c", "*")])),
            ("c", wasm("c", "1.0.0", &[("a", "*")])),
        ]);
        let error = check_cycles(&selected).unwrap_err().to_string();
        assert!(error.contains("a -> b -> c -> a") && error.contains("dependency cycle"), "{error}");
    }
}
