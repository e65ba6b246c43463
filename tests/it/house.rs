//! The shape of the crate's imports, checked on the source text of `src/`
//! (`crate::`, `super::` and `self::` paths outside test code):
//!
//! - every import between top-level modules points down the agreed layer
//!   order below (README, "How it is built"), so no circle of modules can
//!   form;
//! - the files of one module do not import each other in a circle.
//!
//! A small scanner instead of a tool such as `cargo-modules`: it needs
//! nothing installed, runs in a second with the rest of the suite, and
//! reads exactly the paths a reader sees; `cargo-modules` would be a
//! large build on every CI machine and follows rust-analyzer's internals.
//! Macro-generated and glob imports (`use x::*`) of other modules are not
//! resolved; the code does not use them across modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The agreed layers, bottom first. A module may import modules of lower
/// layers only: not its own layer's, not a higher one's.
const LAYERS: &[(&str, &[&str])] = &[
    ("plain types and the clock", &["domain", "clock", "alloc"]),
    (
        "leaf services: configuration data, SQL, signed links, templates",
        &["config", "store", "links", "render"],
    ),
    (
        "sources, embeddings, ranking, mail transport, metrics, subscriber files",
        &[
            "sources",
            "embed",
            "rank",
            "deliver",
            "telemetry",
            "subscriber_file",
        ],
    ),
    ("mail feedback loops (bounces, complaints)", &["bounces"]),
    ("the shared application context", &["app"]),
    (
        "digests and transactional mail",
        &["digest", "transactional"],
    ),
    (
        "scheduled jobs, the web server, recorded fixtures",
        &["jobs", "web", "fixtures"],
    ),
    ("the command line", &["cli"]),
];

/// Imports the layer order allows but the design does not.
const KEEPS_OUT: &[(&str, &str, &str)] = &[
    (
        "sources",
        "store",
        "parsers stay testable on fixture files; the fetcher writes through domain::fetch::ListingStore",
    ),
    (
        "rank",
        "store",
        "ranking is pure: candidates and vectors are handed in",
    ),
];

/// Upward imports between modules that are known debts: none today. An
/// entry needs an owner and a plan; the check fails on any other upward
/// import, and on an entry here that no longer exists (so the list only
/// shrinks).
const KNOWN_UPWARD: &[(&str, &str)] = &[];

/// Circles between the files of one module that are known debts, as the
/// two files' paths under `src/`: none today; same rules as
/// [`KNOWN_UPWARD`].
const KNOWN_FILE_CIRCLES: &[(&str, &str)] = &[];

#[test]
fn every_import_points_down_the_agreed_layer_order() {
    let files = source_files();
    let problems = layer_problems(&module_edges(&files), KNOWN_UPWARD);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_files_of_a_module_import_each_other_in_no_circle() {
    let files = source_files();
    let problems = file_circle_problems(&file_edges(&files), KNOWN_FILE_CIRCLES);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_top_level_module_has_a_layer() {
    let layered: BTreeSet<&str> = LAYERS.iter().flat_map(|(_, m)| m.iter().copied()).collect();
    let src = src_dir();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let is_module = path.is_dir() || path.extension().is_some_and(|e| e == "rs");
        if is_module
            && !["lib", "main"].contains(&name.as_str())
            && !layered.contains(name.as_str())
        {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "src/ modules missing from LAYERS in tests/it/house.rs (and README's layer list): {missing:?}"
    );
}

#[test]
fn an_upward_import_an_unknown_circle_and_a_stale_exception_are_reported() {
    // Arrange: `domain` importing `rank` (up), `sources` importing
    // `store` (kept out), a known upward import (`store` → `bounces`)
    // that no edge uses, and a known file circle that is not there.
    let edges: Edges = [
        (("domain", "domain/paper.rs"), "rank"),
        (("sources", "sources/mod.rs"), "store"),
        (("rank", "rank/mod.rs"), "domain"),
    ]
    .into_iter()
    .map(|((m, f), to)| Edge {
        from: m.into(),
        file: f.into(),
        to: to.into(),
    })
    .collect();
    let circle: BTreeMap<String, BTreeSet<String>> = [
        ("rank/a.rs", "rank/b.rs"),
        ("rank/b.rs", "rank/c.rs"),
        ("rank/c.rs", "rank/a.rs"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), BTreeSet::from([b.to_string()])))
    .collect();

    // Act
    let layers = layer_problems(&edges, &[("store", "bounces")]).join("\n");
    let circles = file_circle_problems(&circle, &[("web/feedback.rs", "web/manage.rs")]).join("\n");

    // Assert
    assert!(
        layers.contains("domain/paper.rs: `domain` imports `rank`"),
        "{layers}"
    );
    assert!(
        layers.contains("`sources` keeps out of `store`"),
        "{layers}"
    );
    assert!(
        layers.contains("no longer imports `bounces`"),
        "a stale exception is named: {layers}"
    );
    assert!(
        circles.contains("rank/a.rs → rank/b.rs → rank/c.rs"),
        "{circles}"
    );
    assert!(
        circles.contains("web/feedback.rs"),
        "a stale known circle is named: {circles}"
    );
}

#[test]
fn the_import_scanner_reads_groups_and_skips_comments_strings_and_tests() {
    let text = r#"
use crate::{config::Config, store::{Store, StoreError}};
use super::hits::Hit;
use super::super::domain::Paper;
// use crate::web::Nope;
/* crate::jobs::Nope */
const S: &str = "crate::cli::Nope";
const C: char = '"';
fn f() { let _ = crate::rank::Profile::default(); }
#[cfg(test)]
mod tests {
    use crate::bounces::Nope;
}
"#;
    let paths = import_paths(&strip_tests(&strip_comments_and_strings(text)));
    let found: BTreeSet<String> = paths.iter().map(|p| p.join("::")).collect();
    let want: BTreeSet<String> = [
        "crate::config::Config",
        "crate::store::Store",
        "crate::store::StoreError",
        "super::hits::Hit",
        "super::super::domain::Paper",
        "crate::rank::Profile::default",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(found, want);
}

// ---- The scanner ----

/// One source file: its path under `src/` and module path.
struct SourceFile {
    rel: String,
    module: Vec<String>,
    text: String,
}

struct Edge {
    from: String,
    file: String,
    to: String,
}

type Edges = Vec<Edge>;

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every non-test `.rs` file under `src/`, its test modules removed.
fn source_files() -> Vec<SourceFile> {
    let src = src_dir();
    let mut out = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "tests") {
                    stack.push(path);
                }
                continue;
            }
            let rel = path
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let stem = path.file_stem().unwrap().to_string_lossy().to_string();
            if !rel.ends_with(".rs") || stem == "tests" || stem.ends_with("_tests") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            out.push(SourceFile {
                module: module_path(&rel),
                text: strip_tests(&strip_comments_and_strings(&text)),
                rel,
            });
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    out
}

/// `rank/dense.rs` → `[rank, dense]`; `rank/mod.rs` → `[rank]`.
fn module_path(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .trim_end_matches(".rs")
        .split('/')
        .map(String::from)
        .collect();
    if parts
        .last()
        .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
    {
        parts.pop();
    }
    parts
}

/// Blanks comments and the contents of string and character literals,
/// keeping line structure.
fn strip_comments_and_strings(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if rest.starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if b[i] == b'\n' {
                        out.push(b'\n');
                    }
                    i += 1;
                }
            }
        } else if rest.starts_with(b"r\"") || rest.starts_with(b"r#") {
            let hashes = rest[1..].iter().take_while(|&&c| c == b'#').count();
            if rest.get(1 + hashes) != Some(&b'"') {
                out.push(b[i]);
                i += 1;
                continue;
            }
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            i += 2 + hashes;
            while i < b.len() && !b[i..].starts_with(&close) {
                if b[i] == b'\n' {
                    out.push(b'\n');
                }
                i += 1;
            }
            i += close.len();
            out.extend_from_slice(b"\"\"");
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                if i < b.len() && b[i] == b'\n' {
                    out.push(b'\n');
                }
                i += 1;
            }
            i += 1;
            out.extend_from_slice(b"\"\"");
        } else if b[i] == b'\'' && char_literal_len(rest) > 0 {
            i += char_literal_len(rest);
            out.extend_from_slice(b"' '");
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Length of a character literal at the start of `s` (`'a'`, `'\n'`,
/// `'\u{1F600}'`, `'é'`), or 0 for a lifetime or label.
fn char_literal_len(s: &[u8]) -> usize {
    if s.get(1) == Some(&b'\\') {
        return s[2..].iter().position(|&c| c == b'\'').map_or(0, |p| p + 3);
    }
    let text = String::from_utf8_lossy(&s[1..s.len().min(6)]).into_owned();
    match text.chars().next() {
        Some(c) if text[c.len_utf8()..].starts_with('\'') => c.len_utf8() + 2,
        _ => 0,
    }
}

/// Cuts `#[cfg(test)]` items: a module's braces, or the item up to `;`.
fn strip_tests(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let (semi, brace) = (after.find(';'), after.find('{'));
        let end = match (semi, brace) {
            (Some(s), Some(b)) if s < b => s + 1,
            (_, Some(b)) => b + matching_brace(&after[b..]),
            (Some(s), None) => s + 1,
            (None, None) => after.len(),
        };
        rest = &after[end.min(after.len())..];
    }
    out.push_str(rest);
    out
}

/// Length up to and including the brace that closes the one `s` starts with.
fn matching_brace(s: &str) -> usize {
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    s.len()
}

/// Every path starting with `crate::`, `$crate::`, `super::` or `self::`,
/// `use` groups expanded: `crate::{a::X, b::{Y, Z}}` gives three.
fn import_paths(text: &str) -> Vec<Vec<String>> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let at_word =
            i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_' || b[i - 1] == b':');
        let start = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|p| text[i..].starts_with(p));
        match start {
            Some(p) if at_word => {
                let (paths, used) = path_tree(&text[i..]);
                out.extend(paths);
                i += used.max(p.len());
            }
            _ => i += 1,
        }
    }
    out
}

/// Parses one path (possibly ending in a `{…}` group) at the start of
/// `s`; returns the expanded paths and the bytes read.
fn path_tree(s: &str) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    let mut i = 0;
    loop {
        let ident: String = s[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if ident.is_empty() {
            break;
        }
        i += ident.len();
        prefix.push(ident);
        let ws = s[i..].len() - s[i..].trim_start().len();
        if !s[i + ws..].starts_with("::") {
            return (vec![prefix], i);
        }
        i += ws + 2;
        i += s[i..].len() - s[i..].trim_start().len();
        if s[i..].starts_with('{') {
            let close = i + matching_brace(&s[i..]);
            let mut paths = Vec::new();
            for part in split_top_level(&s[i + 1..close - 1]) {
                let (sub, _) = path_tree(part.trim());
                for p in sub {
                    paths.push(prefix.iter().cloned().chain(p).collect());
                }
            }
            return (paths, close);
        }
    }
    (vec![prefix], i)
}

/// Splits a group's contents at its top-level commas.
fn split_top_level(s: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// `path` as an absolute module path, seen from module `at`.
fn absolute(path: &[String], at: &[String]) -> Vec<String> {
    let mut base: Vec<String> = Vec::new();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => rest = &rest[1..],
        Some("self") => {
            base = at.to_vec();
            rest = &rest[1..];
        }
        Some("super") => {
            base = at.to_vec();
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
        }
        _ => {}
    }
    base.extend(rest.iter().cloned());
    base
}

/// Imports between top-level modules, one per (file, target module).
fn module_edges(files: &[SourceFile]) -> Edges {
    let mut edges = Vec::new();
    for f in files {
        let Some(top) = f.module.first() else {
            continue;
        };
        let mut seen = BTreeSet::new();
        for path in import_paths(&f.text) {
            let abs = absolute(&path, &f.module);
            if let Some(to) = abs.first().filter(|t| *t != top) {
                if seen.insert(to.clone()) {
                    edges.push(Edge {
                        from: top.clone(),
                        file: f.rel.clone(),
                        to: to.clone(),
                    });
                }
            }
        }
    }
    edges
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, ms)| ms.contains(&module))
}

fn layer_problems(edges: &Edges, known_upward: &[(&'static str, &'static str)]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut used_known = BTreeSet::new();
    for e in edges {
        let (Some(from), Some(to)) = (layer_of(&e.from), layer_of(&e.to)) else {
            continue; // `every_top_level_module_has_a_layer` names it
        };
        if let Some((_, _, why)) = KEEPS_OUT
            .iter()
            .find(|(a, b, _)| *a == e.from && *b == e.to)
        {
            problems.push(format!(
                "{}: `{}` keeps out of `{}`: {why}",
                e.file, e.from, e.to
            ));
        }
        if to < from {
            continue;
        }
        let known = known_upward
            .iter()
            .find(|(a, b)| *a == e.from && *b == e.to);
        match known {
            Some(k) => {
                used_known.insert(*k);
            }
            None => problems.push(format!(
                "{}: `{}` imports `{}`, which is {} it in the layer order ({} is layer {}: {}); \
                 move what both need into a lower module",
                e.file,
                e.from,
                e.to,
                if to == from { "beside" } else { "above" },
                e.to,
                to,
                LAYERS[to].0
            )),
        }
    }
    for (a, b) in known_upward.iter().filter(|k| !used_known.contains(*k)) {
        problems.push(format!(
            "`{a}` no longer imports `{b}`: remove it from KNOWN_UPWARD in tests/it/house.rs"
        ));
    }
    problems
}

/// Imports between files of the same top-level module, leaving out the
/// module files that declare them (`mod.rs`: a parent and its children
/// always see each other).
fn file_edges(files: &[SourceFile]) -> BTreeMap<String, BTreeSet<String>> {
    let by_module: BTreeMap<&[String], &str> = files
        .iter()
        .map(|f| (f.module.as_slice(), f.rel.as_str()))
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        for path in import_paths(&f.text) {
            let abs = absolute(&path, &f.module);
            // The longest prefix of the path that is a file of its own.
            let Some(target) = (1..=abs.len())
                .rev()
                .find_map(|n| by_module.get(&abs[..n]).map(|rel| (&abs[..n], *rel)))
            else {
                continue;
            };
            let (module, rel) = target;
            let related = module.starts_with(&f.module) || f.module.starts_with(module);
            if module.first() == f.module.first() && !related {
                edges
                    .entry(f.rel.clone())
                    .or_default()
                    .insert(rel.to_string());
            }
        }
    }
    edges
}

fn file_circle_problems(
    edges: &BTreeMap<String, BTreeSet<String>>,
    known_circles: &[(&'static str, &'static str)],
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut used_known = BTreeSet::new();
    for circle in circles(edges) {
        let known = known_circles.iter().find(|(a, b)| {
            circle.len() == 2 && circle.contains(&a.to_string()) && circle.contains(&b.to_string())
        });
        match known {
            Some(k) => {
                used_known.insert(*k);
            }
            None => problems.push(format!(
                "files that import each other in a circle: {} → {}; move what they share into a file both import",
                circle.join(" → "),
                circle[0]
            )),
        }
    }
    for (a, b) in known_circles.iter().filter(|k| !used_known.contains(*k)) {
        problems.push(format!(
            "{a} and {b} no longer import each other: remove them from KNOWN_FILE_CIRCLES in tests/it/house.rs"
        ));
    }
    problems
}

/// The strongly connected components of more than one file (Tarjan).
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        for w in s.edges.get(v).into_iter().flatten() {
            if !s.index.contains_key(w.as_str()) {
                visit(s, w);
                let lw = s.low[w.as_str()];
                s.low.entry(v).and_modify(|l| *l = (*l).min(lw));
            } else if s.stack.contains(&w.as_str()) {
                let iw = s.index[w.as_str()];
                s.low.entry(v).and_modify(|l| *l = (*l).min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}
