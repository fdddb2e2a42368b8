//! The shape of the code, checked: no import cycles between the files of a
//! crate (ARCHITECTURE.md: dependencies point one way, inside crates too).
//!
//! A file's dependencies are the `crate::<module>` paths its production code
//! names (comments and the `#[cfg(test)]` part are not production code).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const CRATES: [&str; 9] = [
    "schemas/src",
    "client/src",
    "ledger/src",
    "log/src",
    "api/src",
    "explorer/src",
    "verifier/src",
    "witness/src",
    "src",
];

/// Module name -> the sibling modules its production code names.
fn graph(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("crate source directory") {
        let path = entry.expect("entry").path();
        let module = if path.extension().is_some_and(|e| e == "rs") {
            path.file_stem().map(|s| s.to_string_lossy().into_owned())
        } else if path.join("mod.rs").is_file() {
            path.file_name().map(|s| s.to_string_lossy().into_owned())
        } else {
            None
        };
        let Some(module) = module else { continue };
        let mut text = String::new();
        let sources: Vec<std::path::PathBuf> = if path.is_dir() {
            std::fs::read_dir(&path)
                .expect("module directory")
                .map(|e| e.expect("entry").path())
                .filter(|p| p.extension().is_some_and(|e| e == "rs"))
                .collect()
        } else {
            vec![path]
        };
        for source in sources {
            let body = std::fs::read_to_string(&source).expect("source");
            let production = body.split("#[cfg(test)]").next().unwrap_or("");
            for line in production.lines() {
                if !line.trim_start().starts_with("//") {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
        files.insert(module, text);
    }
    let modules: BTreeSet<String> = files.keys().cloned().collect();
    files
        .iter()
        .map(|(module, text)| {
            let deps = text
                .match_indices("crate::")
                .filter_map(|(at, _)| {
                    let rest = &text[at + "crate::".len()..];
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    (modules.contains(&name) && name != *module).then_some(name)
                })
                .collect();
            (module.clone(), deps)
        })
        .collect()
}

/// A cycle through `start`, if there is one.
fn cycle_through(g: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_owned(), vec![start.to_owned()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for dep in g.get(&node).into_iter().flatten() {
            if dep == start {
                let mut cycle = path.clone();
                cycle.push(start.to_owned());
                return Some(cycle);
            }
            if seen.insert(dep.clone()) {
                let mut next = path.clone();
                next.push(dep.clone());
                stack.push((dep.clone(), next));
            }
        }
    }
    None
}

#[test]
fn no_file_of_a_crate_imports_from_a_file_that_imports_from_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cycles = Vec::new();
    for krate in CRATES {
        let g = graph(&root.join(krate));
        assert!(!g.is_empty(), "{krate}: no modules found");
        for module in g.keys() {
            if let Some(cycle) = cycle_through(&g, module) {
                cycles.push(format!("{krate}: {}", cycle.join(" -> ")));
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

/// The files of a module directory (`tree/`, `store/`, `audit/`): which
/// siblings each one's production code names through `super::<file>`, and
/// which name an item of `mod.rs` itself (`super::<Item>`). `mod.rs`'s own
/// `mod` and `pub use` lines declare and re-export; they are not imports.
fn directory_graph(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("module directory") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let Some(name) = path.file_stem().map(|s| s.to_string_lossy().into_owned()) else {
            continue;
        };
        let body = std::fs::read_to_string(&path).expect("source");
        let production = body.split("#[cfg(test)]").next().unwrap_or("");
        let text: String = production
            .lines()
            .map(str::trim_start)
            .filter(|l| !l.starts_with("//"))
            .filter(|l| {
                name != "mod"
                    || !(l.starts_with("pub use")
                        || l.starts_with("pub(crate) use")
                        || l.starts_with("mod ")
                        || l.starts_with("pub mod ")
                        || l.starts_with("pub(crate) mod "))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        files.insert(name, text);
    }
    let siblings: BTreeSet<String> = files.keys().cloned().collect();
    let ident = |rest: &str| -> String {
        rest.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    files
        .iter()
        .map(|(file, text)| {
            let mut deps = BTreeSet::new();
            if file == "mod" {
                // mod.rs names its children as `child::Item`.
                for sibling in siblings.iter().filter(|s| *s != "mod") {
                    let needle = format!("{sibling}::");
                    let named = text.match_indices(&needle).any(|(at, _)| {
                        at == 0
                            || !text[..at].ends_with(|c: char| {
                                c.is_ascii_alphanumeric() || c == '_' || c == ':'
                            })
                    });
                    if named {
                        deps.insert(sibling.clone());
                    }
                }
            } else {
                for (at, _) in text.match_indices("super::") {
                    let rest = &text[at + "super::".len()..];
                    // `super::{a, b::C}` names each of its members.
                    let names: Vec<String> = match rest.strip_prefix('{') {
                        Some(group) => group
                            .split('}')
                            .next()
                            .unwrap_or("")
                            .split(',')
                            .map(|m| ident(m.trim()))
                            .collect(),
                        None => vec![ident(rest)],
                    };
                    for name in names.into_iter().filter(|n| !n.is_empty()) {
                        let dep = if siblings.contains(&name) {
                            name
                        } else {
                            "mod".to_owned()
                        };
                        if dep != *file {
                            deps.insert(dep);
                        }
                    }
                }
            }
            (file.clone(), deps)
        })
        .collect()
}

#[test]
fn the_directory_graph_reads_super_imports_and_mod_rs_uses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| {
        std::fs::write(dir.path().join(name), text).expect("write");
    };
    write(
        "mod.rs",
        "mod a;\nmod b;\npub use a::A;\nfn f() -> b::B { todo!() }\n",
    );
    write("a.rs", "use super::{b::B, Trait};\n");
    write(
        "b.rs",
        "use super::a::A;\n#[cfg(test)]\nuse super::mod_only_in_tests;\n",
    );
    let g = directory_graph(dir.path());
    let set = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
    assert_eq!(g["mod"], set(&["b"]), "pub use is a re-export, b::B a use");
    assert_eq!(g["a"], set(&["b", "mod"]));
    assert_eq!(g["b"], set(&["a"]));
    assert!(cycle_through(&g, "a").is_some(), "a -> b -> a");
}

#[test]
fn no_file_of_a_module_directory_imports_from_one_that_imports_from_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = Vec::new();
    for krate in CRATES {
        for entry in std::fs::read_dir(root.join(krate)).expect("crate") {
            let path = entry.expect("entry").path();
            if path.join("mod.rs").is_file() {
                dirs.push(path);
            }
        }
    }
    assert!(dirs.len() >= 3, "module directories: {dirs:?}");
    let mut cycles = Vec::new();
    for dir in dirs {
        let g = directory_graph(&dir);
        for file in g.keys() {
            if let Some(cycle) = cycle_through(&g, file) {
                cycles.push(format!("{}: {}", dir.display(), cycle.join(" -> ")));
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let g: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(m, d)| (m.to_owned(), d.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(
        cycle_through(&g, "a"),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    assert_eq!(cycle_through(&g, "d"), None);
}
