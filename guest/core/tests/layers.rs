//! The engine's modules form layers without cycles: vocabulary (error,
//! effect, config) → primitives → wire messages → records → policy →
//! session. This reads every source file's `crate::` paths and fails on an
//! import that goes up a layer, or on a cycle between top-level modules.
//!
//!     cargo test -p mcp-oauth-core --test layers

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layer of each top-level module.
fn layer(module: &str) -> Option<usize> {
    Some(match module {
        "error" | "effect" | "report" => 0,
        "primitives" => 1,
        "config" | "wire" => 2,
        "records" => 3,
        "policy" => 4,
        "session" => 5,
        _ => return None,
    })
}

/// The `crate::<module>[::<sub>]` paths a file uses (comments skipped).
fn imports(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let mut parts = rest.split("::").map(|p| {
                p.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect::<String>()
            });
            let top = parts.next().unwrap_or_default();
            let sub = parts
                .next()
                .filter(|s| s.chars().next().is_some_and(|c| c.is_ascii_lowercase()));
            out.push((top, sub));
        }
    }
    out
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src/wire/token.rs` → ("wire", Some("token")); `src/records.rs` → ("records", None).
fn module_of(src: &Path, file: &Path) -> (String, Option<String>) {
    let rel = file.strip_prefix(src).unwrap();
    let parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    let sub = parts.get(1).filter(|s| *s != "mod").cloned();
    (parts[0].clone(), sub)
}

#[test]
fn imports_only_go_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    assert!(files.len() > 20, "found only {} files", files.len());
    let mut violations = Vec::new();
    for file in &files {
        let (module, _) = module_of(&src, file);
        if module == "lib" {
            continue;
        }
        let own = layer(&module).unwrap_or_else(|| panic!("{} has no layer: add it to layer()", file.display()));
        let text = std::fs::read_to_string(file).unwrap();
        for (top, _) in imports(&text) {
            let Some(theirs) = layer(&top) else { continue };
            if theirs > own {
                violations.push(format!(
                    "{} ({module}, layer {own}) imports crate::{top} (layer {theirs})",
                    file.display()
                ));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports up the layers:\n{}",
        violations.join("\n")
    );
}

#[test]
fn no_two_modules_import_each_other_in_a_circle() {
    // The graph of files (wire::token, session::refresh, records, ...):
    // inside a layer, files may import each other, but never in a cycle.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let (module, sub) = module_of(&src, file);
        if module == "lib" || module == "session" {
            // The session's stage files are one `impl Session` split by stage.
            continue;
        }
        let me = match &sub {
            Some(s) => format!("{module}::{s}"),
            None => module.clone(),
        };
        let text = std::fs::read_to_string(file).unwrap();
        let deps = graph.entry(me.clone()).or_default();
        for (top, sub) in imports(&text) {
            let dep = match (top.as_str(), sub) {
                ("primitives" | "wire" | "policy", Some(s)) => format!("{top}::{s}"),
                (t, _) => t.to_string(),
            };
            if dep != me && layer(&top).is_some() {
                deps.insert(dep);
            }
        }
    }
    // Depth-first search for a back edge.
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(1) => {
                let i = path.iter().position(|p| p == n).unwrap_or(0);
                let mut cycle = path[i..].to_vec();
                cycle.push(n.to_string());
                return Some(cycle);
            }
            Some(2) => return None,
            _ => {}
        }
        state.insert(n.to_string(), 1);
        path.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, g, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        let mut path = Vec::new();
        if let Some(cycle) = visit(n, &graph, &mut state, &mut path) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
    assert!(graph.contains_key("wire::token") && graph.contains_key("records"));
}

#[test]
fn no_source_file_is_over_500_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > 500).then(|| format!("{}: {n} lines", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "files over 500 lines:\n{}", long.join("\n"));
}
