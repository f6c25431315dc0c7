//! A check that every crate's `[dependencies]` are used by its code: a
//! declared but unused dependency still costs every build its compile time
//! and its audit, and says the code relies on something it does not.

#![cfg(test)]

use std::path::Path;

/// The names under `[dependencies]` of a Cargo.toml (not dev- or build-).
fn declared(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut inside = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == "[dependencies]";
            continue;
        }
        if inside && !line.is_empty() && !line.starts_with('#') {
            if let Some((name, _)) = line.split_once('=') {
                // `serde.workspace = true` names serde.
                let name = name.trim().split('.').next().unwrap_or("").trim();
                names.push(name.to_string());
            }
        }
    }
    names
}

/// Whether `src` refers to crate `name` as a path, a `use`, or a macro.
fn used(src: &str, name: &str) -> bool {
    let id = name.replace('-', "_");
    src.match_indices(&id).any(|(i, _)| {
        let before = src[..i].chars().next_back();
        let after = &src[i + id.len()..];
        let starts_word = !before.is_some_and(|c| c.is_alphanumeric() || c == '_');
        starts_word
            && (after.starts_with("::")
                || after.starts_with('!')
                || after.starts_with(';')
                || after.starts_with(" as ")
                || after.starts_with("::{"))
    })
}

/// Every `.rs` file under `dir`, concatenated.
fn sources(dir: &Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() && p.file_name().is_some_and(|n| n != "target") {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
        }
    }
}

#[test]
fn every_declared_dependency_is_used() {
    let root = crate::sh::root();
    let mut unused = Vec::new();
    for member in ["userspace", "xtask", "tests", "bpf/common"] {
        let dir = root.join(member);
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        let mut src = String::new();
        sources(&dir, &mut src);
        for name in declared(&manifest) {
            if !used(&src, &name) {
                unused.push(format!("{member}: {name}"));
            }
        }
    }
    assert!(unused.is_empty(), "declared but never used: {unused:?}");
}

#[test]
fn the_check_reads_names_and_uses() {
    let m = "[package]\nname = \"x\"\n[dependencies]\nserde.workspace = true\n\
             async-tftp = \"0.4\"\n# note\n[dev-dependencies]\ntempfile = \"3\"\n";
    assert_eq!(declared(m), ["serde", "async-tftp"]);
    assert!(used("use serde::Deserialize;", "serde"));
    assert!(used("x = async_tftp::server();", "async-tftp"));
    // A mention in prose is not a use.
    assert!(!used("//! Why not async-tftp 0.4", "async-tftp"));
    assert!(!used("let my_serde = 1;", "serde"));
}

/// Every upper-case markdown document name (`README` followed by `.md`)
/// a source names; the project's documents sit at its top.
fn cited_documents(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in src.match_indices(".md") {
        let start = src[..i]
            .rfind(|c: char| !(c.is_ascii_uppercase() || c == '_'))
            .map_or(0, |j| j + 1);
        let name = &src[start..i];
        let after = src[i + 3..].chars().next();
        if !name.is_empty() && !after.is_some_and(|c| c.is_alphanumeric()) {
            out.push(format!("{name}.md"));
        }
    }
    out
}

#[test]
fn sources_cite_only_documents_the_project_has() {
    let root = crate::sh::root();
    let mut src = String::new();
    for member in ["userspace", "xtask", "tests", "bpf"] {
        sources(&root.join(member), &mut src);
    }
    let mut missing: Vec<String> = cited_documents(&src)
        .into_iter()
        .filter(|d| !root.join(d).exists())
        .collect();
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "cited but not in the project (cite the test or command instead): {missing:?}"
    );
    // Built, so that this file does not cite them itself.
    let (gone, here) = (format!("{}.md", "NETBOOT"), format!("{}.md", "README"));
    assert_eq!(
        cited_documents(&format!("see {gone}, and {here}; not x.mdx")),
        [gone, here]
    );
}
