//! The ledger audit: reads `prov.raw`'s end offsets and every `prov.ledger` partition under
//! the validity rule (hashes recomputed) and says whether every raw offset is accounted for
//! exactly once, whether any event identity appears twice, and how many links are pending.
//! The crash tests use it, and so does `provenant audit`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use provenant_log::{LEDGER_TOPIC, Log, LogReader, RAW_TOPIC};
use provenant_schemas::ledger::{LedgerEntry, RecordBody};
use provenant_schemas::validity::{IgnoreReason, ReaderState, Validator, Verdict};
use serde::Serialize;

use crate::ProcessorError;

/// What the audit found in one partition.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct PartitionAudit {
    pub partition: u32,
    /// Raw records in the partition (its end offset; the raw start must be 0).
    pub raw_end: u64,
    /// Valid chained records (the chain's length).
    pub chain_len: u64,
    /// Valid records by body: event, rejected, duplicate, link_resolution.
    pub by_body: HashMap<String, u64>,
    /// Raw offsets below `raw_end` that no valid record accounts for (first 20).
    pub missing: Vec<u64>,
    pub missing_count: u64,
    /// Raw offsets accounted for more than once (first 20).
    pub doubled: Vec<u64>,
    pub doubled_count: u64,
    /// Ledger entries the validity rule ignored, by reason.
    pub ignored: HashMap<String, u64>,
    /// Links still pending at the end of the chain.
    pub pending_links: u64,
    /// Counted fences (takeovers).
    pub fences: u64,
}

/// The audit of every partition.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Audit {
    pub partitions: Vec<PartitionAudit>,
    /// Event identities (source, id) with more than one event record (first 20).
    pub duplicate_events: Vec<(String, String)>,
    pub duplicate_event_count: u64,
    /// Event records in all.
    pub events: u64,
}

impl Audit {
    /// Whether every raw offset is accounted for exactly once and no event is doubled.
    pub fn exactly_once(&self) -> bool {
        self.duplicate_event_count == 0
            && self
                .partitions
                .iter()
                .all(|p| p.missing_count == 0 && p.doubled_count == 0)
    }

    /// Links pending in all partitions.
    pub fn pending_links(&self) -> u64 {
        self.partitions.iter().map(|p| p.pending_links).sum()
    }

    /// Entries ignored by the validity rule in all partitions.
    pub fn ignored(&self) -> u64 {
        self.partitions
            .iter()
            .flat_map(|p| p.ignored.values())
            .sum()
    }
}

/// Audits every partition of `log` (see the module doc).
pub async fn audit<L: Log>(log: &L) -> Result<Audit, ProcessorError> {
    let partitions = log.partition_count(RAW_TOPIC).await?;
    let mut out = Audit::default();
    let mut identities: HashSet<(String, String)> = HashSet::new();
    for p in 0..partitions {
        let raw = log.watermarks(RAW_TOPIC, p).await?;
        let ledger = log.watermarks(LEDGER_TOPIC, p).await?;
        let mut pa = PartitionAudit {
            partition: p,
            raw_end: raw.end,
            ..PartitionAudit::default()
        };
        let mut seen = vec![0u8; usize::try_from(raw.end).unwrap_or(0)];
        let mut pending: HashSet<(i64, String, &'static str)> = HashSet::new();
        let mut v = Validator::new(ReaderState::START);
        let mut reader = log.reader(LEDGER_TOPIC, p, ledger.start).await?;
        let mut idle = 0;
        while reader.position() < ledger.end {
            let batch = reader.next_batch(2000, Duration::from_millis(500)).await?;
            if batch.is_empty() {
                idle += 1;
                if idle > 60 {
                    return Err(ProcessorError::ReadStalled {
                        topic: LEDGER_TOPIC,
                        partition: p,
                        target: ledger.end,
                    });
                }
                continue;
            }
            idle = 0;
            for stored in batch {
                let (verdict, entry) = v.observe_bytes(stored.offset, &stored.record.value);
                let r = match (verdict, entry) {
                    (Verdict::Valid, Some(LedgerEntry::Record(r))) => r,
                    (Verdict::CountedFence { .. }, _) => {
                        pa.fences += 1;
                        continue;
                    }
                    _ => continue,
                };
                pa.chain_len += 1;
                *pa.by_body.entry(r.body.tag().to_owned()).or_default() += 1;
                match &r.body {
                    RecordBody::LinkResolution(lr) => {
                        pending.remove(&(lr.resolves_seq, lr.target.clone(), lr.relation.as_str()));
                        continue;
                    }
                    RecordBody::Event(er) => {
                        out.events += 1;
                        for l in &er.links {
                            if l.status == provenant_schemas::ledger::LinkStatus::Pending {
                                pending.insert((r.seq, l.target.clone(), l.relation.as_str()));
                            }
                        }
                        let ident = (er.event.source.clone(), er.event.id.clone());
                        if !identities.insert(ident.clone()) {
                            out.duplicate_event_count += 1;
                            if out.duplicate_events.len() < 20 {
                                out.duplicate_events.push(ident);
                            }
                        }
                    }
                    RecordBody::Rejected(_) | RecordBody::Duplicate(_) => {}
                }
                match usize::try_from(r.raw_offset)
                    .ok()
                    .and_then(|i| seen.get_mut(i))
                {
                    Some(n) => *n = n.saturating_add(1),
                    None => {
                        // Accounts for an offset past the raw end: impossible unless the raw
                        // topic lost data; report it as doubled so it is not silent.
                        pa.doubled_count += 1;
                    }
                }
            }
        }
        for reason in IgnoreReason::ALL {
            let n = v.ignored(reason);
            if n > 0 {
                pa.ignored.insert(reason.as_str().to_owned(), n);
            }
        }
        for (offset, n) in seen.iter().enumerate() {
            let offset = offset as u64;
            if *n == 0 {
                pa.missing_count += 1;
                if pa.missing.len() < 20 {
                    pa.missing.push(offset);
                }
            } else if *n > 1 {
                pa.doubled_count += 1;
                if pa.doubled.len() < 20 {
                    pa.doubled.push(offset);
                }
            }
        }
        pa.pending_links = pending.len() as u64;
        out.partitions.push(pa);
    }
    Ok(out)
}
