//! Keeps the hub's modules layered: the graph of which sibling module of `hub` names which
//! other one must have no cycle.
//!
//! The graph is read from the source files under `src/hub`, comments and literals left out:
//! every path that starts with `crate::hub::` or with `super::` and leaves its own module counts
//! as an edge from the file's sibling module (a child such as `supervisor/links.rs`, or an
//! inline `mod tests`, belongs to its parent's sibling) to the sibling it reaches. The modules
//! of the `runtime` folder are siblings of the public ones (`runtime/link.rs` is the node
//! `link`): the folder says who may see a module, not where it sits in the order. A name the
//! hub's `mod.rs` re-exports (`crate::hub::EndCause`, `runtime::inbound::Delivery`)
//! counts as the module that defines it. `mod.rs` and `runtime/mod.rs` are roots: they declare
//! and re-export everything, so their own paths are not edges.
//!
//! The boundary between the protocol core and the runtime needs no such test: it is the crate
//! boundary of `ship-proto`, which cannot name tokio, rustls or any runtime module. The hub's
//! modules share one crate, so their order is checked here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Sibling module → the siblings it names.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// The folder of the hub's task internals, whose modules count as siblings of the public ones.
const RUNTIME: &str = "runtime";

/// The node of the graph a module path (relative to `hub`) belongs to: its first segment, or
/// its second inside the `runtime` folder; none for the roots (`mod.rs`, `runtime/mod.rs`).
fn node(module: &[String]) -> Option<String> {
    match module {
        [] => None,
        [first] if first == RUNTIME => None,
        [first, second, ..] if first == RUNTIME => Some(second.clone()),
        [first, ..] => Some(first.clone()),
    }
}

/// One token of Rust source, as much as this reader needs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    PathSep,
    Punct(char),
}

/// Splits Rust source into identifiers, `::` and single punctuation, dropping comments,
/// string, byte-string and char literals, lifetimes and numbers.
fn tokens(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '"' {
            i = skip_string(&chars, i + 1);
        } else if (c == 'r' || c == 'b') && raw_string_start(&chars, i).is_some() {
            let (hashes, body) = raw_string_start(&chars, i).expect("checked");
            i = body;
            while i < chars.len() {
                if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
                i += 1;
            }
        } else if c == 'b' && next == Some('"') {
            i = skip_string(&chars, i + 2);
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if next == Some('\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
        } else if c == ':' && next == Some(':') {
            out.push(Token::PathSep);
            i += 2;
        } else {
            if !c.is_whitespace() {
                out.push(Token::Punct(c));
            }
            i += 1;
        }
    }
    out
}

/// The index after the string literal whose body starts at `i`.
fn skip_string(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// At `r"`, `r#"`, `br"`, …: the number of `#` and the index where the body starts.
fn raw_string_start(chars: &[char], i: usize) -> Option<(usize, usize)> {
    if i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') {
        return None;
    }
    let mut j = i;
    if chars[j] == 'b' {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while chars.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    (chars.get(j) == Some(&'"')).then_some((hashes, j + 1))
}

fn ident(tokens: &[Token], i: usize) -> Option<&str> {
    match tokens.get(i) {
        Some(Token::Ident(name)) => Some(name),
        _ => None,
    }
}

/// The first segments that follow a path prefix at `i`: one name, or each item of a
/// `{ … }` use group (`self` in a group names the prefix itself: `None`).
fn first_segments(tokens: &[Token], i: usize) -> Vec<Option<String>> {
    match tokens.get(i) {
        Some(Token::Ident(name)) => vec![Some(name.clone())],
        Some(Token::Punct('*')) => vec![None],
        Some(Token::Punct('{')) => {
            let mut items = Vec::new();
            let mut depth = 0;
            let mut item_start = true;
            for token in &tokens[i + 1..] {
                match token {
                    Token::Punct('{') => depth += 1,
                    Token::Punct('}') if depth == 0 => break,
                    Token::Punct('}') => depth -= 1,
                    Token::Punct(',') if depth == 0 => item_start = true,
                    Token::Ident(name) if item_start => {
                        items.push((name != "self").then(|| name.clone()));
                        item_start = false;
                    }
                    _ => item_start = false,
                }
            }
            items
        }
        _ => Vec::new(),
    }
}

/// The names `mod.rs` re-exports, each with the sibling module that defines it.
fn re_exports(root: &[Token]) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for (i, token) in root.iter().enumerate() {
        if *token != Token::Ident("use".into()) {
            continue;
        }
        let (Some(mut module), Some(Token::PathSep)) = (ident(root, i + 1), root.get(i + 2)) else {
            continue;
        };
        let mut start = i + 3;
        if module == RUNTIME {
            // `use runtime::inbound::{…}`: the module inside the folder defines them.
            let (Some(inner), Some(Token::PathSep)) = (ident(root, start), root.get(start + 1))
            else {
                continue;
            };
            module = inner;
            start += 2;
        }
        // The last name of each item (`A`, `a::B`, `C as D` re-export D).
        let mut last = None;
        for token in &root[start..] {
            match token {
                Token::Ident(name) => last = Some(name.clone()),
                Token::Punct(',' | '}' | ';') => {
                    if let Some(name) = last.take() {
                        names.insert(name, module.to_owned());
                    }
                    if *token == Token::Punct(';') {
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    names
}

/// Every `.rs` file under `dir`, with its module path relative to `hub` (`mod.rs` of a folder
/// is the folder's module).
fn source_files(dir: &Path, module: &[String], files: &mut Vec<(PathBuf, Vec<String>)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read src/hub")
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("UTF-8 file name")
            .to_owned();
        let mut child = module.to_vec();
        if path.is_dir() {
            child.push(stem);
            source_files(&path, &child, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            if stem != "mod" {
                child.push(stem);
            }
            files.push((path, child));
        }
    }
}

/// The sibling-module graph of the hub whose sources are in `dir`.
fn sibling_graph(dir: &Path) -> Graph {
    let mut files = Vec::new();
    source_files(dir, &[], &mut files);
    let root = std::fs::read_to_string(dir.join("mod.rs")).expect("read hub/mod.rs");
    let exported = re_exports(&tokens(&root));
    let sibling_of = |name: &str| -> String { exported.get(name).cloned().unwrap_or(name.into()) };
    let mut graph = Graph::new();
    for (path, module) in files {
        let Some(from) = node(&module) else {
            continue;
        };
        graph.entry(from.clone()).or_default();
        let source = std::fs::read_to_string(&path).expect("read a hub source file");
        let tokens = tokens(&source);
        // Inline modules (`mod tests { … }`) open at these brace depths.
        let mut inline: Vec<(String, usize)> = Vec::new();
        let mut depth = 0;
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                Token::Punct('{') => depth += 1,
                Token::Punct('}') => {
                    if inline.last().is_some_and(|(_, at)| *at == depth) {
                        inline.pop();
                    }
                    depth -= 1;
                }
                Token::Ident(word)
                    if word == "mod" && tokens.get(i + 2) == Some(&Token::Punct('{')) =>
                {
                    if let Some(name) = ident(&tokens, i + 1) {
                        inline.push((name.to_owned(), depth + 1));
                    }
                }
                _ => {}
            }
            let starts_path = i == 0 || tokens[i - 1] != Token::PathSep;
            let mut here: Vec<String> = module.clone();
            here.extend(inline.iter().map(|(name, _)| name.clone()));
            let mut j = i;
            let mut target: Option<Vec<String>> = None;
            if starts_path
                && ident(&tokens, i) == Some("crate")
                && tokens.get(i + 1) == Some(&Token::PathSep)
                && ident(&tokens, i + 2) == Some("hub")
                && tokens.get(i + 3) == Some(&Token::PathSep)
            {
                target = Some(Vec::new());
                j = i + 4;
            } else if starts_path && ident(&tokens, i) == Some("super") {
                while ident(&tokens, j) == Some("super")
                    && tokens.get(j + 1) == Some(&Token::PathSep)
                {
                    here.pop();
                    j += 2;
                }
                // `super` past the hub leaves it: not an edge between siblings.
                let levels = (j - i) / 2;
                if levels > 0 && levels <= module.len() + inline.len() {
                    target = Some(here);
                }
            }
            if let Some(mut prefix) = target {
                // `crate::hub::runtime::x` and `super::runtime::x` name `x`.
                if prefix.is_empty()
                    && ident(&tokens, j) == Some(RUNTIME)
                    && tokens.get(j + 1) == Some(&Token::PathSep)
                {
                    prefix.push(RUNTIME.into());
                    j += 2;
                }
                let targets: Vec<String> = match node(&prefix) {
                    Some(sibling) => vec![sibling],
                    None if prefix.is_empty() => first_segments(&tokens, j)
                        .into_iter()
                        .flatten()
                        .map(|name| sibling_of(&name))
                        .collect(),
                    None => first_segments(&tokens, j).into_iter().flatten().collect(),
                };
                for to in targets {
                    if to != from {
                        graph.entry(from.clone()).or_default().insert(to);
                    }
                }
            }
            i += 1;
        }
    }
    graph
}

/// The graph's strongly connected components of more than one module (each a set of modules
/// that import each other in a cycle), by Tarjan's algorithm.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct Walk<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, node: &'g str) {
            let n = self.index.len();
            self.index.insert(node, n);
            self.low.insert(node, n);
            self.stack.push(node);
            for next in self.graph.get(node).into_iter().flatten() {
                let next = next.as_str();
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if self.stack.contains(&next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = Vec::new();
                while let Some(top) = self.stack.pop() {
                    component.push(top.to_owned());
                    if top == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !walk.index.contains_key(node.as_str()) {
            walk.visit(node);
        }
    }
    walk.found
}

fn hub_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join("hub")
}

fn show(graph: &Graph) -> String {
    graph
        .iter()
        .map(|(from, to)| {
            let to: Vec<&str> = to.iter().map(String::as_str).collect();
            format!("{from} -> {}\n", to.join(", "))
        })
        .collect()
}

#[test]
fn the_hub_modules_import_each_other_without_cycles() {
    let graph = sibling_graph(&hub_dir());
    // `cargo test --lib layering -- --nocapture` shows the graph.
    println!("{}", show(&graph));
    let found = cycles(&graph);
    assert!(
        found.is_empty(),
        "import cycles between hub modules: {found:?}\n\n{}",
        show(&graph)
    );
}

#[test]
fn the_reader_sees_the_imports_it_must_see() {
    let graph = sibling_graph(&hub_dir());
    // Known edges, so that a reader that found nothing cannot pass the test above.
    for (from, to) in [
        ("handle", "supervisor"),
        ("supervisor", "dial"),
        ("listener", "admission"),
    ] {
        assert!(
            graph.get(from).is_some_and(|t| t.contains(to)),
            "{from} -> {to} not seen:\n{}",
            show(&graph)
        );
    }
    assert!(graph.len() > 15, "modules seen:\n{}", show(&graph));
}

#[test]
fn the_reader_resolves_paths_and_groups() {
    let source = "use super::{a, b::{c, self}, Shared};\n\
                  // use super::ignored;\n\
                  fn f() { let s = \"super::nope\"; crate::hub::d::x(); super::super::other(); }\n\
                  mod tests { use super::*; use super::super::e; }";
    let tokens = tokens(source);
    assert!(!tokens.contains(&Token::Ident("ignored".into())));
    assert!(!tokens.contains(&Token::Ident("nope".into())));
    let group = tokens
        .iter()
        .position(|t| *t == Token::Punct('{'))
        .expect("a group");
    assert_eq!(
        first_segments(&tokens, group),
        vec![Some("a".into()), Some("b".into()), Some("Shared".into())]
    );
    let exported = re_exports(&self::tokens(
        "pub use handle::{Hub, HubError as E};\npub(crate) use handle::Shared;\nmod x;",
    ));
    assert_eq!(exported.get("Shared").map(String::as_str), Some("handle"));
    assert_eq!(exported.get("E").map(String::as_str), Some("handle"));
    assert_eq!(exported.get("Hub").map(String::as_str), Some("handle"));
}

#[test]
fn the_runtime_folder_holds_siblings() {
    let path = |p: &str| -> Vec<String> { p.split('/').map(String::from).collect() };
    assert_eq!(node(&path("runtime/link")), Some("link".into()));
    assert_eq!(
        node(&path("runtime/supervisor/links")),
        Some("supervisor".into())
    );
    assert_eq!(node(&path("config")), Some("config".into()));
    assert_eq!(node(&path("runtime")), None);
    assert_eq!(node(&[]), None);
    let exported = re_exports(&tokens("pub use runtime::inbound::{Delivery, Token};"));
    assert_eq!(
        exported.get("Delivery").map(String::as_str),
        Some("inbound")
    );
}

#[test]
fn a_cycle_is_found() {
    let mut graph = Graph::new();
    graph.entry("a".into()).or_default().insert("b".into());
    graph.entry("b".into()).or_default().insert("c".into());
    graph.entry("c".into()).or_default().insert("a".into());
    graph.entry("d".into()).or_default().insert("a".into());
    assert_eq!(cycles(&graph), vec![vec!["a", "b", "c"]]);
}
