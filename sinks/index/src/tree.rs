//! A lineage answer as a human tree, like `tree` prints a directory: the root, then each
//! entity reached from it in the walk's direction. An edge walked the way it was asserted
//! reads `--relation--> key`; one walked against it (down from a commit to its build, up from
//! a dataset to the job that wrote it) reads `<--relation-- key`. Each entity is expanded once,
//! under its *home*: the first entity one hop nearer the root that leads to it (so its depth in
//! the tree is its fewest hops); anywhere else it reads `(shown under <home>)`, or `(the root)`.
//! One no event is about yet (a pending target) is marked `(no event yet)`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::model::{Edge, Lineage, Node};

/// Entity types that events are about (the others — commits, environments, datasets — are
/// only ever referred to).
const OBSERVABLE: [&str; 6] = ["build", "artifact", "deploy", "instance", "job", "approval"];

/// Renders `lineage` as a tree (see the module doc). Ends with a newline.
pub fn format_tree(lineage: &Lineage) -> String {
    let nodes: BTreeMap<&str, &Node> = lineage.nodes.iter().map(|n| (n.key.as_str(), n)).collect();
    let mut children: BTreeMap<&str, Vec<&Edge>> = BTreeMap::new();
    for e in &lineage.edges {
        children
            .entry(e.near(lineage.direction))
            .or_default()
            .push(e);
    }
    for list in children.values_mut() {
        list.sort_by(|a, b| {
            (&a.relation, a.far(lineage.direction)).cmp(&(&b.relation, b.far(lineage.direction)))
        });
    }
    // Home of each entity: the first (by key) entity one hop nearer the root leading to it.
    let depth = |k: &str| nodes.get(k).map(|n| n.depth);
    let mut home: BTreeMap<&str, &str> = BTreeMap::new();
    for (near, list) in &children {
        for e in list {
            let far = e.far(lineage.direction);
            if far != lineage.root
                && depth(near).is_some_and(|d| Some(d + 1) == depth(far))
                && home.get(far).is_none_or(|h| near < h)
            {
                home.insert(far, near);
            }
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}{}",
        lineage.root,
        note(nodes.get(lineage.root.as_str()))
    );
    let mut seen = BTreeSet::from([lineage.root.as_str()]);
    let tree = Tree {
        lineage,
        children: &children,
        nodes: &nodes,
        home: &home,
    };
    tree.walk(&lineage.root, "", &mut seen, &mut out);
    if lineage.truncated {
        let _ = writeln!(
            out,
            "… stopped at {} entities; ask for less depth",
            lineage.nodes.len()
        );
    }
    out
}

fn note(node: Option<&&Node>) -> &'static str {
    match node {
        Some(n) if !n.observed && OBSERVABLE.contains(&n.entity_type.as_str()) => " (no event yet)",
        _ => "",
    }
}

struct Tree<'a, 'b> {
    lineage: &'a Lineage,
    children: &'b BTreeMap<&'a str, Vec<&'a Edge>>,
    nodes: &'b BTreeMap<&'a str, &'a Node>,
    home: &'b BTreeMap<&'a str, &'a str>,
}

impl<'a> Tree<'a, '_> {
    fn walk(&self, key: &str, prefix: &str, seen: &mut BTreeSet<&'a str>, out: &mut String) {
        let Some(list) = self.children.get(key) else {
            return;
        };
        for (i, e) in list.iter().enumerate() {
            let last = i + 1 == list.len();
            let far = e.far(self.lineage.direction);
            let arrow = if far == e.to {
                format!("--{}--> ", e.relation)
            } else {
                format!("<--{}-- ", e.relation)
            };
            let branch = if last { "└── " } else { "├── " };
            let is_home = self.home.get(far).is_some_and(|h| *h == key);
            let expand = is_home && seen.insert(far);
            let where_shown = if expand {
                String::new()
            } else if far == self.lineage.root {
                " (the root)".to_owned()
            } else {
                match self.home.get(far) {
                    Some(h) if *h != key => format!(" (shown under {h})"),
                    _ => " (shown above)".to_owned(),
                }
            };
            let _ = writeln!(
                out,
                "{prefix}{branch}{arrow}{far}{}{where_shown}",
                note(self.nodes.get(far)),
            );
            if expand {
                let deeper = format!("{prefix}{}", if last { "    " } else { "│   " });
                self.walk(far, &deeper, seen, out);
            }
        }
    }
}
