//! Reading query rows into the [`crate::model`] types, once for both backends: each backend
//! implements [`Cols`] for its row type, and the functions here do the rest.

use std::collections::BTreeMap;

use crate::model::{
    Coverage, Deployment, Direction, Edge, EdgeEvent, EdgeStatus, IndexedEvent, Lineage, LinkView,
    Node, RedactionView, Stats, Unproven, UnprovenArtifact, position, relation_target_is_upstream,
};
use crate::{IndexError, MAX_EVENTS_PER_EDGE};

/// Typed access to one result row's columns (by index).
pub(crate) trait Cols {
    fn opt_int(&self, i: usize) -> Result<Option<i64>, IndexError>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, IndexError>;
    fn opt_blob(&self, i: usize) -> Result<Option<Vec<u8>>, IndexError>;
    fn opt_flag(&self, i: usize) -> Result<Option<bool>, IndexError>;

    fn int(&self, i: usize) -> Result<i64, IndexError> {
        self.opt_int(i)?
            .ok_or_else(|| IndexError::Corrupt(format!("column {i} is null")))
    }
    fn text(&self, i: usize) -> Result<String, IndexError> {
        self.opt_text(i)?
            .ok_or_else(|| IndexError::Corrupt(format!("column {i} is null")))
    }
    fn blob(&self, i: usize) -> Result<Vec<u8>, IndexError> {
        self.opt_blob(i)?
            .ok_or_else(|| IndexError::Corrupt(format!("column {i} is null")))
    }
    fn flag(&self, i: usize) -> Result<bool, IndexError> {
        self.opt_flag(i)?
            .ok_or_else(|| IndexError::Corrupt(format!("column {i} is null")))
    }
    fn count(&self, i: usize) -> Result<u64, IndexError> {
        u64::try_from(self.int(i)?)
            .map_err(|_| IndexError::Corrupt(format!("column {i}: negative count")))
    }
    fn partition(&self, i: usize) -> Result<u32, IndexError> {
        u32::try_from(self.int(i)?)
            .map_err(|_| IndexError::Corrupt(format!("column {i}: negative partition")))
    }
}

/// Assembles a lineage answer from the rows of [`crate::sql::lineage`].
#[derive(Debug)]
pub(crate) struct LineageBuilder {
    root: String,
    direction: Direction,
    depth: u32,
    cap: i64,
    walked: i64,
    nodes: Vec<Node>,
    root_known: bool,
    /// (down, relation, up) → (near depth, events).
    edges: BTreeMap<(String, String, String), (u32, Vec<EdgeEvent>)>,
}

impl LineageBuilder {
    pub(crate) fn new(root: String, direction: Direction, depth: u32, cap: i64) -> Self {
        Self {
            root,
            direction,
            depth,
            cap,
            walked: 0,
            nodes: Vec::new(),
            root_known: false,
            edges: BTreeMap::new(),
        }
    }

    pub(crate) fn row(&mut self, r: &impl Cols) -> Result<(), IndexError> {
        let depth = u32::try_from(r.int(2)?).unwrap_or(u32::MAX);
        if r.int(0)? == 0 {
            let key = r.text(1)?;
            self.walked = self.walked.max(r.opt_int(16)?.unwrap_or(0));
            let Some(entity_type) = r.opt_text(3)? else {
                // The root is not in the index (only the root can lack an entity row: every
                // edge end has one).
                return Ok(());
            };
            if key == self.root {
                self.root_known = true;
            }
            self.nodes.push(Node {
                key,
                entity_type,
                namespace: r.opt_text(4)?,
                name: r.opt_text(5)?,
                depth,
                observed: r.opt_flag(6)?.unwrap_or(false),
            });
            return Ok(());
        }
        let down = r.text(1)?;
        let relation = r.text(3)?;
        let up = r.text(4)?;
        let partition = r.partition(8)?;
        let target = match (r.opt_int(12)?, r.opt_int(13)?, r.opt_blob(14)?) {
            (Some(p), Some(s), Some(h)) => Some(position(
                u32::try_from(p).map_err(|_| IndexError::Corrupt("negative partition".into()))?,
                s,
                &h,
            )),
            _ => None,
        };
        let event = EdgeEvent {
            source: r.text(5)?,
            id: r.text(7)?,
            position: position(partition, r.int(9)?, &r.blob(10)?),
            status: EdgeStatus::from_stored(r.opt_text(11)?.as_deref()),
            target,
            resolved_by_seq: r.opt_int(15)?,
        };
        let entry = self
            .edges
            .entry((down, relation, up))
            .or_insert((depth, Vec::new()));
        entry.0 = entry.0.min(depth);
        entry.1.push(event);
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Result<Lineage, IndexError> {
        if !self.root_known {
            return Err(IndexError::UnknownEntity(self.root));
        }
        self.nodes
            .sort_by(|a, b| (a.depth, &a.key).cmp(&(b.depth, &b.key)));
        let mut edges: Vec<(u32, Edge)> = self
            .edges
            .into_iter()
            .map(|((down, relation, up), (depth, mut events))| {
                // Newest first.
                events.sort_by(|a, b| {
                    (b.position.partition, b.position.seq)
                        .cmp(&(a.position.partition, a.position.seq))
                });
                let event_count = u64::try_from(events.len()).unwrap_or(u64::MAX);
                events.truncate(MAX_EVENTS_PER_EDGE);
                let (from, to) = if relation_target_is_upstream(&relation) {
                    (down, up)
                } else {
                    (up, down)
                };
                (
                    depth,
                    Edge {
                        from,
                        relation,
                        to,
                        event_count,
                        events,
                    },
                )
            })
            .collect();
        edges.sort_by(|(da, a), (db, b)| {
            (da, &a.from, &a.relation, &a.to).cmp(&(db, &b.from, &b.relation, &b.to))
        });
        Ok(Lineage {
            root: self.root,
            direction: self.direction,
            depth: self.depth,
            nodes: self.nodes,
            edges: edges.into_iter().map(|(_, e)| e).collect(),
            truncated: self.walked >= self.cap,
        })
    }
}

/// An event row of [`crate::sql::events_by_id`] (links filled in later).
pub(crate) fn event(r: &impl Cols) -> Result<IndexedEvent, IndexError> {
    let partition = r.partition(0)?;
    let seq = r.int(1)?;
    let event_json = r.text(9)?;
    let redactions_json = r.text(10)?;
    let event = serde_json::from_str(&event_json)
        .map_err(|e| IndexError::Corrupt(format!("event at {partition}/{seq}: {e}")))?;
    let redactions: Vec<RedactionView> = serde_json::from_str(&redactions_json)
        .map_err(|e| IndexError::Corrupt(format!("redactions at {partition}/{seq}: {e}")))?;
    Ok(IndexedEvent {
        position: position(partition, seq, &r.blob(2)?),
        raw_offset: r.int(3)?,
        writer_epoch: r.int(4)?,
        source: r.text(5)?,
        id: r.text(6)?,
        kind: r.text(7)?,
        subject: r.text(8)?,
        event,
        redactions,
        links: Vec::new(),
    })
}

/// A row of [`crate::sql::LINKS_OF`].
pub(crate) fn link(r: &impl Cols) -> Result<LinkView, IndexError> {
    let down = r.text(0)?;
    let relation = r.text(1)?;
    let up = r.text(2)?;
    let target = if relation_target_is_upstream(&relation) {
        up
    } else {
        down
    };
    let target_position = match (r.opt_int(4)?, r.opt_int(5)?, r.opt_blob(6)?) {
        (Some(p), Some(s), Some(h)) => Some(position(
            u32::try_from(p).map_err(|_| IndexError::Corrupt("negative partition".into()))?,
            s,
            &h,
        )),
        _ => None,
    };
    Ok(LinkView {
        relation,
        target,
        status: EdgeStatus::from_stored(r.opt_text(3)?.as_deref()),
        target_position,
        resolved_by_seq: r.opt_int(7)?,
    })
}

/// A row of the deployment queries.
pub(crate) fn deployment(r: &impl Cols) -> Result<Deployment, IndexError> {
    Ok(Deployment {
        service: r.text(0)?,
        environment: r.text(1)?,
        deploy_id: r.text(2)?,
        artifact: r.text(3)?,
        deployed_at: r.text(4)?,
        actor: r.opt_text(5)?,
        previous_deploy_id: r.opt_text(6)?,
        config_hash: r.opt_text(7)?,
        event_source: r.text(8)?,
        event_id: r.text(9)?,
        position: position(r.partition(10)?, r.int(11)?, &r.blob(12)?),
    })
}

/// What coverage knows of one artifact: has a build, has a commit, deployed as.
type ArtifactFacts = (bool, bool, Vec<(String, String)>);

/// Folds the rows of [`crate::sql::COVERAGE`].
#[derive(Debug, Default)]
pub(crate) struct CoverageBuilder {
    artifacts: BTreeMap<String, ArtifactFacts>,
}

impl CoverageBuilder {
    pub(crate) fn row(&mut self, r: &impl Cols) -> Result<(), IndexError> {
        let entry = self
            .artifacts
            .entry(r.text(0)?)
            .or_insert((false, false, Vec::new()));
        entry.2.push((r.text(1)?, r.text(2)?));
        entry.0 |= r.flag(3)?;
        entry.1 |= r.flag(4)?;
        Ok(())
    }

    pub(crate) fn finish(self) -> Coverage {
        let deployed = u64::try_from(self.artifacts.len()).unwrap_or(u64::MAX);
        let mut unproven = Vec::new();
        for (artifact, (has_build, has_commit, deployed_as)) in self.artifacts {
            let reason = match (has_build, has_commit) {
                (_, true) => continue,
                (false, _) => Unproven::NoBuild,
                (true, false) => Unproven::NoCommit,
            };
            unproven.push(UnprovenArtifact {
                artifact,
                reason,
                deployed_as,
            });
        }
        let proven = deployed.saturating_sub(u64::try_from(unproven.len()).unwrap_or(u64::MAX));
        #[allow(clippy::cast_precision_loss)]
        let ratio = (deployed > 0).then(|| proven as f64 / deployed as f64);
        Coverage {
            deployed_artifacts: deployed,
            proven,
            ratio,
            unproven,
        }
    }
}

/// The row of [`crate::sql::STATS`].
pub(crate) fn stats(r: &impl Cols) -> Result<Stats, IndexError> {
    Ok(Stats {
        partitions: r.count(0)?,
        events: r.count(1)?,
        entities: r.count(2)?,
        edges: r.count(3)?,
        resolved_links: r.count(4)?,
        pending_links: r.count(5)?,
        rejected: r.count(6)?,
        duplicates: r.count(7)?,
        link_resolutions: r.count(8)?,
        unmatched_resolutions: r.count(9)?,
    })
}
