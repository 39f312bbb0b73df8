//! A delivery-pipeline workload for lineage benchmarks (`cargo bench -p provenant-index
//! --bench lineage` and `provenant bench`): real chained ledger records from [`crate::story`]
//! in the shape of a real delivery pipeline, and the queries that sample it.
//!
//! Per commit: a build, an artifact (1 % of them before their build: pending links, later link
//! resolutions), a staging and a production deploy (each replacing the previous deploy of its
//! service there), three running instances, and an approval of every fifth production deploy;
//! 200 services; `partitions` partitions. The generator is deterministic (a fixed seed), so two
//! runs load the same ledger.

use std::time::{Duration, Instant};

use provenant_schemas::ledger::InvalidRecord;
use provenant_schemas::validity::ReaderState;
use provenant_schemas::{EntityKey, LedgerRecord};

use crate::story::{self, Ledger, digest, sha};
use crate::{Direction, Index, IndexError};

const SERVICES: u64 = 200;

/// xorshift64*: a small deterministic generator (no rand dependency).
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// What the queries sample from: commits `sha(1..=commits)`, about 2 % of the running
/// instances, and about 1 % of the ledger positions.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    /// How many commits were emitted.
    pub commits: u64,
    /// Entity keys (`instance:…`) of sampled running instances.
    pub instances: Vec<String>,
    /// Sampled (partition, seq) positions.
    pub positions: Vec<(u32, i64)>,
}

/// Records of one partition ready to apply, with the reader state after them.
#[derive(Debug)]
pub struct Batch {
    /// The ledger partition.
    pub partition: u32,
    /// The records, in seq order.
    pub records: Vec<LedgerRecord>,
    /// The reader state after them.
    pub state: ReaderState,
}

/// The generator: call [`Workload::step`] until [`Workload::emitted`] is what you want, apply
/// what it returns, then apply [`Workload::finish`].
#[derive(Debug)]
pub struct Workload {
    ledger: Ledger,
    rng: Rng,
    catalog: Catalog,
    emitted: u64,
    last_deploy: Vec<[Option<String>; 2]>,
    batch: usize,
}

impl Workload {
    /// A workload over `partitions` partitions that hands out batches of `batch` records.
    pub fn new(partitions: u32, batch: usize) -> Self {
        Self {
            ledger: Ledger::new(partitions),
            rng: Rng(0x9e37_79b9_7f4a_7c15),
            catalog: Catalog::default(),
            emitted: 0,
            last_deploy: vec![[None, None]; SERVICES as usize],
            batch: batch.max(1),
        }
    }

    /// Events emitted so far (link resolutions not counted).
    pub fn emitted(&self) -> u64 {
        self.emitted
    }

    /// What the queries sample from.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Emits one commit's events; returns the partitions that reached the batch size.
    pub fn step(&mut self) -> Result<Vec<Batch>, InvalidRecord> {
        self.catalog.commits += 1;
        let c = self.catalog.commits;
        let service = self.rng.below(SERVICES);
        let svc = format!("svc-{service}");
        let build_id = format!("github:acme/{svc}/{c}/1");
        let build = story::build(&format!("b-{c}"), &build_id, &sha(c));
        let art = story::artifact(
            &format!("a-{c}"),
            &digest(c),
            Some(&build_id),
            Some(&sha(c)),
        );
        if self.rng.below(100) == 0 {
            // Out of order: the artifact before its build.
            self.ledger.emit(art)?;
            self.ledger.emit(build)?;
        } else {
            self.ledger.emit(build)?;
            self.ledger.emit(art)?;
        }
        self.emitted += 2;
        for (e, env) in ["staging", "production"].into_iter().enumerate() {
            let deploy_id = format!("{svc}-{env}-{c}");
            let previous = self
                .last_deploy
                .get_mut(service as usize)
                .and_then(|d| d.get_mut(e))
                .and_then(|d| d.replace(deploy_id.clone()));
            self.ledger.emit(story::deploy(
                &format!("d-{env}-{c}"),
                &deploy_id,
                &digest(c),
                &svc,
                env,
                c,
                previous.as_deref(),
            ))?;
            self.emitted += 1;
            let instances = if env == "production" { 2 } else { 1 };
            for i in 0..instances {
                let instance = format!("{svc}-{env}-{c}-{i}");
                self.ledger.emit(story::runtime(
                    &format!("r-{env}-{c}-{i}"),
                    &instance,
                    &svc,
                    env,
                    &deploy_id,
                    &digest(c),
                ))?;
                self.emitted += 1;
                if self.rng.below(50) == 0 {
                    self.catalog.instances.push(format!("instance:{instance}"));
                }
            }
            if env == "production" && c.is_multiple_of(5) {
                self.ledger.emit(story::approval(
                    &format!("ap-{c}"),
                    &format!("ap-{c}"),
                    &deploy_id,
                    env,
                ))?;
                self.emitted += 1;
            }
        }
        if c.is_multiple_of(500) {
            self.ledger.resolve_pending()?;
        }
        Ok(self.take(false))
    }

    /// Resolves what is pending and returns every partition's remaining records.
    pub fn finish(&mut self) -> Result<Vec<Batch>, InvalidRecord> {
        self.ledger.resolve_pending()?;
        Ok(self.take(true))
    }

    fn take(&mut self, all: bool) -> Vec<Batch> {
        let mut out = Vec::new();
        for p in 0..self.ledger.partitions() {
            let n = self.ledger.records(p).len();
            if n == 0 || (!all && n < self.batch) {
                continue;
            }
            let (records, state) = self.ledger.take_records(p);
            for r in records.iter().step_by(97) {
                self.catalog.positions.push((p, r.seq));
            }
            out.push(Batch {
                partition: p,
                records,
                state,
            });
        }
        out
    }

    /// Generates `events` events and applies them to `index`; returns the time spent in
    /// [`Index::apply`].
    pub async fn load<I: Index>(&mut self, index: &I, events: u64) -> Result<Duration, LoadError> {
        let mut spent = Duration::ZERO;
        while self.emitted < events {
            for b in self.step()? {
                let t = Instant::now();
                index.apply(b.partition, &b.records, &b.state).await?;
                spent += t.elapsed();
            }
        }
        for b in self.finish()? {
            let t = Instant::now();
            index.apply(b.partition, &b.records, &b.state).await?;
            spent += t.elapsed();
        }
        Ok(spent)
    }
}

/// A failure while loading a workload.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The generator built an invalid record (a bug).
    #[error("building a record: {0}")]
    Record(#[from] InvalidRecord),
    /// The index refused a batch.
    #[error(transparent)]
    Index(#[from] IndexError),
}

/// The query kinds the benchmarks time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Query {
    /// The baseline: `event_at` (primary key) of a sampled position.
    EventAt,
    /// Lineage up from a sampled running instance.
    UpFromInstance,
    /// Lineage down from a random commit.
    DownFromCommit,
}

impl Query {
    /// A label for tables.
    pub fn label(self, depth: u32) -> String {
        match self {
            Query::EventAt => "baseline: event_at (primary key)".to_owned(),
            Query::UpFromInstance => format!("lineage up from instance, depth {depth}"),
            Query::DownFromCommit => format!("lineage down from commit, depth {depth}"),
        }
    }
}

/// Latencies of `queries` calls of `kind` through the trait (after 50 warm-up calls), sorted,
/// and the mean number of nodes (or rows) per answer.
pub async fn time_queries<I: Index>(
    index: &I,
    catalog: &Catalog,
    kind: Query,
    queries: usize,
    depth: u32,
    rng: &mut Rng,
) -> Result<(Vec<Duration>, f64), IndexError> {
    let mut times = Vec::with_capacity(queries);
    let mut nodes = 0usize;
    for i in 0..queries + 50 {
        let t = Instant::now();
        let n = match kind {
            Query::UpFromInstance => {
                let pick = rng.below(catalog.instances.len() as u64) as usize;
                let Some(key) = catalog
                    .instances
                    .get(pick)
                    .and_then(|k| EntityKey::parse(k).ok())
                else {
                    continue;
                };
                index.lineage(&key, Direction::Up, depth).await?.nodes.len()
            }
            Query::DownFromCommit => {
                let key = EntityKey::Commit(sha(1 + rng.below(catalog.commits)));
                index
                    .lineage(&key, Direction::Down, depth)
                    .await?
                    .nodes
                    .len()
            }
            Query::EventAt => {
                let pick = rng.below(catalog.positions.len() as u64) as usize;
                let Some(&(p, s)) = catalog.positions.get(pick) else {
                    continue;
                };
                usize::from(index.event_at(p, s).await?.is_some())
            }
        };
        if i >= 50 {
            times.push(t.elapsed());
            nodes += n;
        }
    }
    times.sort();
    Ok((times, nodes as f64 / queries.max(1) as f64))
}

/// The `p` quantile (0.0–1.0) of sorted latencies, in milliseconds (nearest rank).
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return 0.0;
    };
    let i = ((last as f64) * p).round() as usize;
    sorted
        .get(i.min(last))
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn loads_and_answers() {
        let dir = tempfile::tempdir().unwrap();
        let index = crate::SqliteIndex::open(&dir.path().join("w.db"))
            .await
            .unwrap();
        let mut w = Workload::new(4, 500);
        w.load(&index, 2_000).await.unwrap();
        assert!(w.emitted() >= 2_000);
        let stats = index.stats().await.unwrap();
        assert_eq!(stats.events, w.emitted());
        let mut rng = Rng(1);
        let (times, nodes) =
            time_queries(&index, w.catalog(), Query::UpFromInstance, 10, 6, &mut rng)
                .await
                .unwrap();
        assert_eq!(times.len(), 10);
        // instance → deploy → artifact → build → commit at least.
        assert!(nodes >= 4.0, "{nodes}");
        assert!(percentile_ms(&times, 0.99) >= percentile_ms(&times, 0.5));
    }
}
