//! Checks on the `mcp:oauth` WIT package (`wit/` at the workspace root):
//! it parses, every item carries a doc comment, and every effect of the
//! engine core has a WIT counterpart. Run by `cargo test -p wit-check`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use wit_parser::{Docs, Resolve, TypeDefKind};

/// The `wit/` directory of the workspace.
pub fn wit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit")
}

/// Parses the package.
pub fn load() -> Result<Resolve> {
    let mut resolve = Resolve::default();
    resolve.push_dir(wit_dir()).context("wit/ does not parse")?;
    Ok(resolve)
}

fn documented(docs: &Docs) -> bool {
    docs.contents.as_deref().is_some_and(|d| !d.trim().is_empty())
}

/// Every interface, world, type, field, case and function without docs.
pub fn undocumented(resolve: &Resolve) -> Vec<String> {
    let mut missing = Vec::new();
    for (_, world) in &resolve.worlds {
        if !documented(&world.docs) {
            missing.push(format!("world {}", world.name));
        }
    }
    for (_, iface) in &resolve.interfaces {
        let iname = iface.name.clone().unwrap_or_default();
        if !documented(&iface.docs) {
            missing.push(format!("interface {iname}"));
        }
        for (fname, f) in &iface.functions {
            if !documented(&f.docs) {
                missing.push(format!("{iname}.{fname}"));
            }
        }
    }
    for (_, ty) in &resolve.types {
        let tname = ty.name.clone().unwrap_or_default();
        // Anonymous types (option<...>, result<...>) and `use` aliases have no docs of their own.
        if ty.name.is_none() || matches!(ty.kind, TypeDefKind::Type(_)) {
            continue;
        }
        if !documented(&ty.docs) {
            missing.push(format!("type {tname}"));
        }
        match &ty.kind {
            TypeDefKind::Record(r) => missing.extend(
                r.fields
                    .iter()
                    .filter(|f| !documented(&f.docs))
                    .map(|f| format!("{tname}.{}", f.name)),
            ),
            TypeDefKind::Variant(v) => missing.extend(
                v.cases
                    .iter()
                    .filter(|c| !documented(&c.docs))
                    .map(|c| format!("{tname}::{}", c.name)),
            ),
            TypeDefKind::Enum(e) => missing.extend(
                e.cases
                    .iter()
                    .filter(|c| !documented(&c.docs))
                    .map(|c| format!("{tname}::{}", c.name)),
            ),
            _ => {}
        }
    }
    missing
}
