//! A lineage answer as a human tree, like `tree` prints a directory: the root, then each
//! entity reached from it in the walk's direction. An edge walked the way it was asserted
//! reads `--relation--> key`; one walked against it (down from a commit to its build, up from
//! a dataset to the job that wrote it) reads `<--relation-- key`. An entity reached twice is
//! printed once and then `(see above)`; one no event is about yet (a pending target) is
//! marked `(no event yet)`.

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
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}{}",
        lineage.root,
        note(nodes.get(lineage.root.as_str()))
    );
    let mut seen = BTreeSet::from([lineage.root.as_str()]);
    walk(
        lineage,
        &lineage.root,
        "",
        &children,
        &nodes,
        &mut seen,
        &mut out,
    );
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

fn walk<'a>(
    lineage: &'a Lineage,
    key: &str,
    prefix: &str,
    children: &BTreeMap<&str, Vec<&'a Edge>>,
    nodes: &BTreeMap<&str, &'a Node>,
    seen: &mut BTreeSet<&'a str>,
    out: &mut String,
) {
    let Some(list) = children.get(key) else {
        return;
    };
    for (i, e) in list.iter().enumerate() {
        let last = i + 1 == list.len();
        let far = e.far(lineage.direction);
        let arrow = if far == e.to {
            format!("--{}--> ", e.relation)
        } else {
            format!("<--{}-- ", e.relation)
        };
        let branch = if last { "└── " } else { "├── " };
        let again = !seen.insert(far);
        let _ = writeln!(
            out,
            "{prefix}{branch}{arrow}{far}{}{}",
            note(nodes.get(far)),
            if again { " (see above)" } else { "" }
        );
        if !again {
            let deeper = format!("{prefix}{}", if last { "    " } else { "│   " });
            walk(lineage, far, &deeper, children, nodes, seen, out);
        }
    }
}
