//! Step 1 of planning: which root components the deployment has, and from which recipe.

use std::collections::BTreeMap;
use std::path::Path;

use semver::Version;

use super::super::builtin;
use super::super::model::DeploymentRequest;
use super::super::recipe::{self, Recipe};
use super::super::semver_range::VersionRange;
use super::{DeployedSet, PlanContext, PlanError};

/// Recipes available to a deployment: the request's and the installed ones.
pub(super) struct Catalog {
    recipes: BTreeMap<String, BTreeMap<Version, Recipe>>,
}

impl Catalog {
    pub(super) fn load(cx: &PlanContext<'_>, recipe_dir: Option<&Path>) -> Result<Self, PlanError> {
        let mut recipes: BTreeMap<String, BTreeMap<Version, Recipe>> = BTreeMap::new();
        let installed_dir = cx.layout.recipes_dir();
        if installed_dir.is_dir() {
            let installed = recipe::recipe_files(&installed_dir).map_err(|e| PlanError::RecipeDir {
                path: installed_dir.display().to_string(),
                reason: e.to_string(),
            })?;
            for path in installed {
                match recipe::load(&path, cx.platform) {
                    Ok(r) => {
                        recipes.entry(r.name.clone()).or_default().insert(r.version.clone(), r);
                    }
                    Err(error) => tracing::warn!(%error, "ignoring unusable installed recipe"),
                }
            }
        }
        if let Some(dir) = recipe_dir {
            let files = recipe::recipe_files(dir)
                .map_err(|e| PlanError::RecipeDir { path: dir.display().to_string(), reason: e.to_string() })?;
            let mut seen: BTreeMap<(String, Version), String> = BTreeMap::new();
            for path in files {
                let r = recipe::load(&path, cx.platform)?;
                let key = (r.name.clone(), r.version.clone());
                if let Some(first) = seen.insert(key, path.display().to_string()) {
                    return Err(PlanError::DuplicateRecipe {
                        name: r.name,
                        version: r.version.to_string(),
                        first,
                        second: path.display().to_string(),
                    });
                }
                recipes.entry(r.name.clone()).or_default().insert(r.version.clone(), r);
            }
        }
        Ok(Self { recipes })
    }

    pub(super) fn get(&self, name: &str, version: &Version) -> Option<&Recipe> {
        self.recipes.get(name)?.get(version)
    }

    pub(super) fn versions(&self, name: &str) -> String {
        let list: Vec<String> =
            self.recipes.get(name).map(|v| v.keys().map(Version::to_string).collect()).unwrap_or_default();
        if list.is_empty() { "none".to_owned() } else { list.join(", ") }
    }

    pub(super) fn best(&self, name: &str, range: &VersionRange) -> Option<&Recipe> {
        self.recipes.get(name)?.iter().rev().find(|(v, _)| range.matches(v)).map(|(_, r)| r)
    }
}

/// A component selected for the target set.
#[derive(Debug, Clone)]
pub(super) enum Selected {
    Builtin(&'static builtin::Builtin),
    Wasm(Box<Recipe>),
}

impl Selected {
    pub(super) fn version(&self) -> Version {
        match self {
            Selected::Builtin(b) => b.semver(),
            Selected::Wasm(r) => r.version.clone(),
        }
    }
}

/// The roots: running ones not removed, and those `--merge` names (a built-in must be compatible).
pub(super) fn select_roots(
    catalog: &Catalog,
    current: &DeployedSet,
    request: &DeploymentRequest,
) -> Result<BTreeMap<String, Selected>, PlanError> {
    let mut roots: BTreeMap<String, Selected> = BTreeMap::new();
    for name in &request.remove {
        if !current.get(name).is_some_and(|d| d.root) {
            return Err(PlanError::NotDeployed(name.clone()));
        }
    }
    for (name, deployed) in current.iter().filter(|(n, d)| d.root && !request.remove.contains(n)) {
        let selected = match (&deployed.recipe, builtin::find(name)) {
            (Some(recipe), _) => Selected::Wasm(Box::new(recipe.clone())),
            (None, Some(b)) => Selected::Builtin(b),
            (None, None) => continue,
        };
        roots.insert(name.clone(), selected);
    }
    for (name, version_text) in &request.merge {
        let bad = |problem: String| PlanError::BadMerge { name: name.clone(), version: version_text.clone(), problem };
        recipe::validate_component_name(name).map_err(bad)?;
        let version = Version::parse(version_text).map_err(|e| bad(format!("not a semantic version: {e}")))?;
        let selected = if let Some(b) = builtin::find(name) {
            let requested = VersionRange::parse(&format!("^{version}")).map_err(|e| bad(e.to_string()))?;
            if !requested.matches(&b.semver()) {
                return Err(bad(format!(
                    "{name} is built into Turf at version {}, which is not compatible with {version}",
                    b.version
                )));
            }
            Selected::Builtin(b)
        } else {
            let recipe = catalog.get(name, &version).ok_or_else(|| PlanError::NoRecipe {
                name: name.clone(),
                version: version.to_string(),
                installed: catalog.versions(name),
            })?;
            Selected::Wasm(Box::new(recipe.clone()))
        };
        roots.insert(name.clone(), selected);
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::recipe::Platform;
    use crate::layout::RootLayout;

    #[test]
    fn removing_what_is_not_a_root_and_merging_an_incompatible_builtin_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let layout = RootLayout::new(dir.path());
        let platform = Platform::current();
        let cx = PlanContext { layout: &layout, platform: &platform, thing_name: "Core" };
        let catalog = Catalog::load(&cx, None).unwrap();
        let current = DeployedSet::new();

        let remove = DeploymentRequest { remove: vec!["com.example.Gone".into()], ..DeploymentRequest::default() };
        let error = select_roots(&catalog, &current, &remove).unwrap_err();
        assert_eq!(error, PlanError::NotDeployed("com.example.Gone".into()));

        let merge = |name: &str, version: &str| DeploymentRequest {
            merge: [(name.to_owned(), version.to_owned())].into_iter().collect(),
            ..DeploymentRequest::default()
        };
        let old = select_roots(&catalog, &current, &merge("aws.greengrass.Nucleus", "1.0.0")).unwrap_err();
        assert!(old.to_string().contains("built into Turf"), "{old}");
        let missing = select_roots(&catalog, &current, &merge("com.example.Lamp", "1.0.0")).unwrap_err();
        assert!(missing.to_string().contains("installed versions: none"), "{missing}");
        let garbage = select_roots(&catalog, &current, &merge("com.example.Lamp", "one")).unwrap_err();
        assert!(matches!(garbage, PlanError::BadMerge { .. }), "{garbage}");
        let builtin = select_roots(&catalog, &current, &merge("aws.greengrass.ShadowManager", "2.3.0")).unwrap();
        assert!(matches!(builtin["aws.greengrass.ShadowManager"], Selected::Builtin(_)));
    }
}
