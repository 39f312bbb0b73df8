//! The dashboards that query the lineage index (Grafana's PostgreSQL datasource
//! `provenant-index`) run here against a real PostgreSQL index, as the read-only role
//! `ops/postgres/grafana-reader.sql` creates, and must agree with the code's own answers.
//!
//! The index is the conformance story (`provenant_index::story::small_story`) written by
//! `PostgresIndex`, so the tables are the ones the index sink's migrations make. Each SQL
//! target and each SQL template variable is expanded the way Grafana does (`$__timeFilter`,
//! `$__timeFrom()`, `$__timeTo()`, `$var`, `${var}`; any other `$` name fails the test), run,
//! and must return at least one row on the story. The panels that restate a query the CLI has
//! (coverage, unproven artifacts, rollback targets, lineage up and down) must return what
//! `Index` returns. The role must not be able to write.

use std::collections::{BTreeMap, BTreeSet};

use provenant_index::story::{digest, small_story};
use provenant_index::{Direction, Index, PostgresIndex};
use provenant_schemas::EntityKey;
use serde_json::Value;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use super::{json, repo, str_of};

const READER: &str = "provenant_grafana_test";
/// Grafana's expansion of `$__timeFilter(x)` for a range wide enough to hold the story.
const FROM: &str = "2000-01-01T00:00:00Z";
const TO: &str = "2100-01-01T00:00:00Z";

fn base_url() -> String {
    std::env::var("PROVENANT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// `base` with its database (and user, when given) replaced.
fn url_for(db: &str, user: Option<&str>) -> String {
    let base = base_url();
    let (scheme, rest) = base.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let query = path.split_once('?').map(|(_, q)| format!("?{q}"));
    let authority = match user {
        Some(u) => format!(
            "{u}@{}",
            authority.rsplit_once('@').map_or(authority, |(_, h)| h)
        ),
        None => authority.to_owned(),
    };
    format!("{scheme}://{authority}/{db}{}", query.unwrap_or_default())
}

async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL at {url} is needed by this test ({e}); `bash .ci/run` starts it, or point \
             PROVENANT_TEST_POSTGRES at another server"
        )
    });
    tokio::spawn(conn);
    client
}

/// A database of its own, dropped at the end.
struct Db {
    name: String,
}

impl Db {
    async fn create() -> Db {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("provenant_dash_{}_{nanos}", std::process::id());
        connect(&base_url())
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        Db { name }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    connect(&base_url())
                        .await
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await
                })
        })
        .join();
    }
}

/// Rows as column name → text value (NULL as `None`).
type Rows = Vec<BTreeMap<String, Option<String>>>;

async fn query(client: &Client, sql: &str, what: &str) -> Rows {
    let messages = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e:?}\n{sql}"));
    messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                row.columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.name().to_owned(), row.get(i).map(str::to_owned)))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// Expands what Grafana expands in a PostgreSQL query: `$__timeFilter(expr)` (balanced
/// parentheses), `$__timeFrom()`, `$__timeTo()`, and template variables `$name` / `${name}`
/// (a multi-value variable as Grafana formats it for SQL: quoted, comma-separated).
fn expand(sql: &str, vars: &BTreeMap<&str, Vec<String>>, what: &str) -> String {
    let mut out = String::new();
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(args) = after.strip_prefix("__timeFilter(") {
            let mut depth = 1;
            let end = args
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map(|(i, _)| i)
                .unwrap_or_else(|| panic!("{what}: unbalanced $__timeFilter("));
            out.push_str(&format!("{} BETWEEN '{FROM}' AND '{TO}'", &args[..end]));
            rest = &args[end + 1..];
        } else if let Some(r) = after.strip_prefix("__timeFrom()") {
            out.push_str(&format!("'{FROM}'"));
            rest = r;
        } else if let Some(r) = after.strip_prefix("__timeTo()") {
            out.push_str(&format!("'{TO}'"));
            rest = r;
        } else {
            let (name, r) = match after.strip_prefix('{') {
                Some(braced) => braced.split_once('}').unwrap(),
                None => {
                    let end = after
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(after.len());
                    after.split_at(end)
                }
            };
            let values = vars
                .get(name)
                .unwrap_or_else(|| panic!("{what}: unknown macro or variable ${name}"));
            let quoted_by_query = out.ends_with('\'') && r.starts_with('\'');
            if quoted_by_query {
                assert_eq!(values.len(), 1, "{what}: ${name} is quoted but multi-value");
                out.push_str(&values[0].replace('\'', "''"));
            } else {
                let list: Vec<String> = values
                    .iter()
                    .map(|v| format!("'{}'", v.replace('\'', "''")))
                    .collect();
                out.push_str(&list.join(","));
            }
            rest = r;
        }
    }
    out.push_str(rest);
    out
}

/// Every SQL target of a dashboard: (panel title, format, SQL).
fn sql_targets(d: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut panels: Vec<&Value> = d["panels"].as_array().unwrap().iter().collect();
    while let Some(p) = panels.pop() {
        panels.extend(p["panels"].as_array().into_iter().flatten());
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(sql) = t["rawSql"].as_str() {
                out.push((
                    str_of(&p["title"]),
                    t["format"].as_str().unwrap_or("table").to_owned(),
                    sql.to_owned(),
                ));
            }
        }
    }
    out
}

fn col<'a>(row: &'a BTreeMap<String, Option<String>>, name: &str) -> Option<&'a str> {
    row.get(name)
        .unwrap_or_else(|| panic!("no column {name:?} in {row:?}"))
        .as_deref()
}

#[tokio::test]
async fn index_dashboards_run_read_only_and_agree_with_the_index() {
    let db = Db::create().await;
    let admin_url = url_for(&db.name, None);
    // The role, made by the very file the compose stack runs (psql, as the table owner).
    let out = std::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-v"])
        .arg(format!("reader={READER}"))
        .args(["-v", "reader_password=not-checked-by-trust-auth", "-d"])
        .arg(&admin_url)
        .arg("-f")
        .arg(repo().join("ops/postgres/grafana-reader.sql"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run psql ({e}); it comes with PostgreSQL"));
    assert!(
        out.status.success(),
        "grafana-reader.sql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Tables created after the role: its default privileges must cover them.
    let index = PostgresIndex::open(&admin_url).await.unwrap();
    let story = small_story(2).unwrap();
    story.apply_all(&index, 4).await.unwrap();
    let reader = connect(&url_for(&db.name, Some(READER))).await;

    // Read-only: neither a write nor a DDL statement gets through.
    for sql in [
        "DELETE FROM events",
        "UPDATE deployments SET artifact = 'x'",
        "CREATE TABLE grafana_was_here (x INT)",
    ] {
        let err = reader.batch_execute(sql).await.err();
        assert!(err.is_some(), "the Grafana role could run {sql:?}");
    }

    let artifact = EntityKey::artifact_from_digest(&digest(2)).to_string();
    let mut per_panel: BTreeMap<String, Rows> = BTreeMap::new();
    let mut dashboards = 0;
    for name in ["provenant-executive", "provenant-oncall", "provenant-debug"] {
        let d = json(&repo().join(format!("ops/grafana/dashboards/{name}.json")));
        dashboards += 1;
        // Template variables first, in order: each query's answer is the next ones' input.
        let mut vars: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for v in d["templating"]["list"].as_array().unwrap() {
            let var = v["name"].as_str().unwrap();
            if v["datasource"]["uid"] != "provenant-index" {
                continue;
            }
            let what = format!("{name}: variable {var}");
            let rows = query(&reader, &expand(&str_of(&v["query"]), &vars, &what), &what).await;
            let values: Vec<String> = rows
                .iter()
                .map(|r| r.values().next().unwrap().clone().unwrap())
                .collect();
            assert!(!values.is_empty(), "{what}: no value on the story");
            let chosen = if var == "artifact" {
                assert!(values.contains(&artifact), "{what}: {values:?}");
                vec![artifact.clone()]
            } else {
                values
            };
            vars.insert(var, chosen);
        }
        let targets = sql_targets(&d);
        assert!(!targets.is_empty(), "{name}: no SQL panel");
        for (title, format, sql) in targets {
            let what = format!("{name}: {title}");
            let rows = query(&reader, &expand(&sql, &vars, &what), &what).await;
            assert!(!rows.is_empty(), "{what}: no row on the story");
            if format == "time_series" {
                for c in ["time", "value"] {
                    assert!(rows[0].contains_key(c), "{what}: time series without {c}");
                }
            }
            per_panel.insert(what, rows);
        }
    }
    assert_eq!(dashboards, 3);
    let panel = |what: &str| {
        per_panel
            .get(what)
            .unwrap_or_else(|| panic!("no SQL panel {what:?}"))
    };

    // Unproven artifacts running now: exactly `Index::coverage`'s list, with the same reason.
    let coverage = index.coverage().await.unwrap();
    assert!(!coverage.unproven.is_empty());
    let want: BTreeSet<(String, String, String, bool)> = coverage
        .unproven
        .iter()
        .flat_map(|u| {
            u.deployed_as.iter().map(|(s, e)| {
                (
                    u.artifact.clone(),
                    s.clone(),
                    e.clone(),
                    u.reason == provenant_index::Unproven::NoBuild,
                )
            })
        })
        .collect();
    let got: BTreeSet<(String, String, String, bool)> =
        panel("provenant-executive: Unproven artifacts running now")
            .iter()
            .map(|r| {
                (
                    col(r, "Artifact").unwrap().to_owned(),
                    col(r, "Service").unwrap().to_owned(),
                    col(r, "Environment").unwrap().to_owned(),
                    col(r, "Missing").unwrap().starts_with("no build"),
                )
            })
            .collect();
    assert_eq!(got, want);

    // Coverage by environment: per environment, the current artifacts and the proven ones.
    let unproven: BTreeSet<&str> = coverage
        .unproven
        .iter()
        .map(|u| u.artifact.as_str())
        .collect();
    let mut by_env: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for dep in index.deployments(None).await.unwrap() {
        by_env
            .entry(dep.environment)
            .or_default()
            .insert(dep.artifact);
    }
    let got: BTreeMap<String, (u64, u64)> = panel("provenant-executive: Coverage by environment")
        .iter()
        .map(|r| {
            (
                col(r, "Environment").unwrap().to_owned(),
                (
                    col(r, "Deployed artifacts").unwrap().parse().unwrap(),
                    col(r, "Proven").unwrap().parse().unwrap(),
                ),
            )
        })
        .collect();
    let want: BTreeMap<String, (u64, u64)> = by_env
        .iter()
        .map(|(env, arts)| {
            let proven = arts
                .iter()
                .filter(|a| !unproven.contains(a.as_str()))
                .count();
            (env.clone(), (arts.len() as u64, proven as u64))
        })
        .collect();
    assert_eq!(got, want);

    // Rollback targets: what `provenant query rollback` answers, for every service and env.
    for r in panel("provenant-oncall: Rollback targets") {
        let (service, env) = (col(r, "Service").unwrap(), col(r, "Environment").unwrap());
        let target = index.rollback_target(service, env).await.unwrap();
        assert_eq!(
            col(r, "Roll back to"),
            target.as_ref().map(|t| t.artifact.as_str()),
            "{service} in {env}"
        );
    }

    // Recent deployments: every deployment of the story (all inside the range).
    let all = query(&reader, "SELECT COUNT(*) AS n FROM deployments", "count").await;
    assert_eq!(
        panel("provenant-oncall: Deployments in the time range")
            .len()
            .to_string(),
        col(&all[0], "n").unwrap()
    );

    // Lineage, both ways: the nodes and depths `Index::lineage` returns at depth 6.
    let key = EntityKey::parse(&artifact).unwrap();
    for (dir, title) in [
        (Direction::Up, "Upstream: what it came from (depth 6)"),
        (Direction::Down, "Downstream: what uses it (depth 6)"),
    ] {
        let lineage = index.lineage(&key, dir, 6).await.unwrap();
        let want: BTreeSet<(String, u32)> = lineage
            .nodes
            .iter()
            .map(|n| (n.key.clone(), n.depth))
            .collect();
        let got: BTreeSet<(String, u32)> = panel(&format!("provenant-debug: {title}"))
            .iter()
            .map(|r| {
                (
                    col(r, "Entity").unwrap().to_owned(),
                    col(r, "Depth").unwrap().parse().unwrap(),
                )
            })
            .collect();
        assert!(want.len() > 1, "{title}: the story reaches past the root");
        assert_eq!(got, want, "{title}");
        if dir == Direction::Up {
            let want: BTreeSet<(String, String, String)> = lineage
                .edges
                .iter()
                .map(|e| (e.from.clone(), e.relation.clone(), e.to.clone()))
                .collect();
            let rows = panel("provenant-debug: Upstream links and the records behind them");
            let got: BTreeSet<(String, String, String)> = rows
                .iter()
                .map(|r| {
                    (
                        col(r, "From").unwrap().to_owned(),
                        col(r, "Relation").unwrap().to_owned(),
                        col(r, "To").unwrap().to_owned(),
                    )
                })
                .collect();
            assert_eq!(got, want, "upstream links");
            let events: u64 = lineage.edges.iter().map(|e| e.event_count).sum();
            assert_eq!(rows.len() as u64, events, "one row per asserting record");
            assert!(
                rows.iter()
                    .all(|r| col(r, "Record hash").unwrap().len() == 64)
            );
        }
    }

    // Chain status: the partitions of the artifact's records, each indexed past them.
    let records = panel("provenant-debug: Ledger records about it");
    let chain = panel("provenant-debug: Chain of its partitions, as indexed");
    for r in records {
        let p = col(r, "Partition").unwrap();
        let seq: i64 = col(r, "Seq").unwrap().parse().unwrap();
        let state = chain
            .iter()
            .find(|c| col(c, "Partition") == Some(p))
            .unwrap_or_else(|| panic!("partition {p} of a record is not in the chain table"));
        let next: i64 = col(state, "Next seq").unwrap().parse().unwrap();
        assert!(
            seq < next,
            "seq {seq} of partition {p} is not indexed (next {next})"
        );
        let want = story.state(p.parse().unwrap());
        assert_eq!(next, want.head.next_seq, "partition {p}");
    }
}
