//! The modules of `host/src` form layers, written down once in ARCHITECTURE.md ("Layers"): a
//! module may use modules of lower layers only, so the imports form no cycle and nothing reaches
//! up. This test reads that list and every `crate::` path outside unit-test modules, and fails
//! on an upward or sideways import, or on a module the list does not place.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `layer N: a b c` lines of ARCHITECTURE.md: module → layer.
fn layers(text: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("layer ") else { continue };
        let Some((number, modules)) = rest.split_once(':') else { continue };
        let layer: usize = number.trim().parse().unwrap_or_else(|_| panic!("bad layer line: {line}"));
        for module in modules.split_whitespace() {
            assert!(out.insert(module.to_owned(), layer).is_none(), "{module} is placed twice");
        }
    }
    out
}

/// The top-level module a file under `host/src` belongs to (`lib` for lib.rs and main.rs).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    match first.strip_suffix(".rs") {
        Some("lib" | "main") => "lib".to_owned(),
        Some(name) => name.to_owned(),
        None => first,
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `(line, module)` for every `crate::module` outside `#[cfg(test)]` modules.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let code = match text.find("#[cfg(test)]\nmod tests") {
        Some(end) => &text[..end],
        None => text,
    };
    let mut out = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let line = line.split("//").next().unwrap_or_default();
        for (i, _) in line.match_indices("crate::") {
            let name: String = line[i + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                out.push((n + 1, name));
            }
        }
    }
    out
}

#[test]
fn host_modules_only_use_lower_layers() {
    let root = workspace();
    let layers = layers(&std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap());
    assert!(!layers.is_empty(), "ARCHITECTURE.md lists no `layer N:` lines");
    let src = root.join("host/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut problems = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == "lib" {
            continue;
        }
        let Some(&own) = layers.get(&module) else {
            problems.push(format!("{module} ({}) is in no layer of ARCHITECTURE.md", file.display()));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (line, used) in crate_paths(&text) {
            // Items of lib.rs itself (`crate::run`) and the module's own paths are not edges.
            let Some(&theirs) = layers.get(&used) else { continue };
            if used != module && theirs >= own {
                let relative = file.strip_prefix(&root).unwrap().display();
                problems.push(format!(
                    "{relative}:{line}: {module} (layer {own}) uses {used} (layer {theirs}), which is not below it"
                ));
            }
        }
    }
    let placed_but_missing: Vec<_> =
        layers.keys().filter(|m| !files.iter().any(|f| &module_of(&src, f) == *m)).collect();
    assert!(placed_but_missing.is_empty(), "ARCHITECTURE.md places modules that do not exist: {placed_but_missing:?}");
    assert!(problems.is_empty(), "imports against the layers:\n{}", problems.join("\n"));
}

#[test]
fn the_checker_sees_an_upward_import_and_ignores_unit_tests() {
    let paths = crate_paths(
        "use crate::a::B;\nfn f() { crate::b::g(); } // crate::c\n#[cfg(test)]\nmod tests {\n use crate::d;\n}\n",
    );
    assert_eq!(paths, vec![(1, "a".to_owned()), (2, "b".to_owned())]);
    let layers = layers("text\nlayer 0: a b\nlayer 1: c\n");
    assert_eq!(layers.get("b"), Some(&0));
    assert_eq!(layers.get("c"), Some(&1));
}
