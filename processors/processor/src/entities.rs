//! Entity state: which ledger record introduced each entity (DESIGN.md, "Causal linking").
//!
//! Fed only from validated ledger records (the tailers apply the validity rule to every
//! ledger partition) and from the writer's own acknowledged records. The first record that
//! introduces a key wins and is never replaced, so a link, once resolved, points at a record
//! that stays valid. Read by every partition worker to resolve links.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use provenant_schemas::ledger::{LedgerHash, LedgerRecord, RecordBody};
use provenant_schemas::{EntityKey, Event};

/// The hash map of the processor's per-event lookups (entity state, dedup window, a batch's
/// identities and new entities): foldhash's `quality` hasher, randomly seeded per map, in
/// place of std's SipHash, which a profile showed at about a tenth of the per-batch CPU. The
/// keys come from producers (event `source`/`id`, entity keys), so the hasher keeps a random
/// per-process seed rather than a fixed one.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::quality::RandomState>;

/// Where an entity's record is: its ledger partition, seq and hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub partition: u32,
    pub seq: i64,
    pub hash: LedgerHash,
}

/// Entity key (string form) → the record that introduced it. Shared by every worker.
#[derive(Debug, Default)]
pub struct EntityState {
    map: RwLock<FastMap<String, Target>>,
    generation: AtomicU64,
}

/// Whether a reference to this entity can be linked to a ledger record. Commits and
/// environments are named by events but no event introduces them: references to them are
/// edges in the index, not links.
pub fn linkable(key: &EntityKey) -> bool {
    !matches!(key, EntityKey::Commit(_) | EntityKey::Env(_))
}

/// The entities an event record introduces: its subject and, for a data run, its outputs.
pub fn introduced(event: &Event) -> Vec<String> {
    let mut keys = vec![event.subject_key().to_string()];
    keys.extend(event.produces().iter().map(ToString::to_string));
    keys
}

impl EntityState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// The record that introduced `key`, if known.
    pub fn get(&self, key: &str) -> Option<Target> {
        self.map.read().ok().and_then(|m| m.get(key).copied())
    }

    /// Learns the entities a valid record of `partition` introduces (event records only).
    pub fn learn(&self, partition: u32, record: &LedgerRecord) {
        let RecordBody::Event(er) = &record.body else {
            return;
        };
        let target = Target {
            partition,
            seq: record.seq,
            hash: record.hash,
        };
        self.insert_absent(introduced(&er.event).into_iter().map(|k| (k, target)));
    }

    /// Learns entities introduced by this writer's own acknowledged records.
    pub fn learn_targets(&self, targets: impl IntoIterator<Item = (String, Target)>) {
        let mut targets = targets.into_iter().peekable();
        if targets.peek().is_some() {
            self.insert_absent(targets);
        }
    }

    /// Inserts the keys not known yet (first wins) and bumps the generation if any was new.
    fn insert_absent(&self, entries: impl IntoIterator<Item = (String, Target)>) {
        let Ok(mut map) = self.map.write() else {
            return;
        };
        let mut added = false;
        for (key, target) in entries {
            if let std::collections::hash_map::Entry::Vacant(slot) = map.entry(key) {
                slot.insert(target);
                added = true;
            }
        }
        if added {
            self.generation.fetch_add(1, Ordering::Release);
        }
    }

    /// Grows whenever a new entity is learned.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// How many entities are known.
    pub fn len(&self) -> usize {
        self.map.read().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether no entity is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
