//! `lineage_query_p99_ms`: the p99 latency of a depth-6 upstream lineage query (from a running
//! instance back to its commit) over an SQLite index (the default) holding `lineage_events`
//! events of a delivery-pipeline workload ([`provenant_index::workload`]), against the p99 of
//! a primary-key lookup of one event on the same database in the same run. Each latency is
//! one call through the `Index` trait, measured on the client, after 50 warm-up calls.

use anyhow::{Result, bail};
use provenant_index::workload::{Query, Rng, Workload, percentile_ms, time_queries};
use provenant_index::{Index, SqliteIndex};

use super::{Comparison, Plan, progress};

const DEPTH: u32 = 6;

pub(crate) async fn measure(plan: &Plan) -> Result<Comparison> {
    let dir = tempfile::tempdir()?;
    let index = SqliteIndex::open(&dir.path().join("bench.db"))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    progress(&format!(
        "lineage: loading {} events into SQLite",
        plan.lineage_events
    ));
    let mut w = Workload::new(8, 10_000);
    let load = w.load(&index, plan.lineage_events).await?;
    let stats = index.stats().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    if stats.events != w.emitted() {
        bail!(
            "the index holds {} events, {} were loaded",
            stats.events,
            w.emitted()
        );
    }
    let queries = if plan.quick { 300 } else { 1000 };
    let mut rng = Rng(42);
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    let mut nodes = 0.0;
    for round in 0..plan.rounds {
        progress(&format!("lineage: round {}/{}", round + 1, plan.rounds));
        let (t, _) = time_queries(
            &index,
            w.catalog(),
            Query::EventAt,
            queries,
            DEPTH,
            &mut rng,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        base.extend(t);
        let (t, n) = time_queries(
            &index,
            w.catalog(),
            Query::UpFromInstance,
            queries,
            DEPTH,
            &mut rng,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        ours.extend(t);
        nodes = n;
    }
    ours.sort();
    base.sort();
    Ok(
        Comparison::new(percentile_ms(&ours, 0.99), percentile_ms(&base, 0.99), "ms")
            .with("backend", "sqlite")
            .with("events", w.emitted())
            .with("depth", DEPTH)
            .with("queries", ours.len())
            .with("p50_ms", percentile_ms(&ours, 0.5))
            .with("mean_nodes_per_answer", nodes)
            .with(
                "load_events_per_second",
                (w.emitted() as f64 / load.as_secs_f64().max(1e-9)).round(),
            )
            .with("baseline_is", "p99 of event_at (primary-key lookup)"),
    )
}
