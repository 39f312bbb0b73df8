//! The ledger records this process wrote and learned itself, so that the entity-state tailer
//! of a partition this process writes need not decode them a second time.
//!
//! A worker marks its partition with its epoch once its fence counted, and after every
//! append it has learned into the entity state with the seq it learned through
//! ([`OwnWrites::mark`]). The tailer of that partition reads each entry's head only
//! ([`LedgerEntry::peek_record_head`]); a record of the marked epoch was written by this
//! process's worker (only the writer whose fence counted writes records of its epoch), so its
//! head is the record as far as the validity rule goes ([`Validator::observe_own_head`]).
//! An event record taken that way waits in [`Deferred`] until the worker has learned through
//! its seq, and is then dropped undecoded; if the worker moves to another epoch or does not
//! get there within [`DEFER_LIMIT`] (an append that failed after its records became durable),
//! the tailer decodes and learns the record itself.
//!
//! Invariants: the entity state learns every valid event record of the partition, from the
//! worker or from the tailer (learning is first-wins and idempotent, so both may); a record
//! of any other epoch, and every entry of a partition this process does not write, is
//! decoded in full as before.
//!
//! [`Validator::observe_own_head`]: provenant_schemas::validity::Validator::observe_own_head

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use provenant_schemas::ledger::LedgerEntry;

use crate::entities::FastMap;

/// How long the tailer waits for the worker to learn one of its records before it decodes
/// the record itself.
pub(crate) const DEFER_LIMIT: Duration = Duration::from_secs(2);

/// A worker's mark on its partition: its epoch and the last seq whose records it learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mark {
    pub(crate) epoch: i64,
    pub(crate) learned_through: i64,
}

/// The marks of the partitions this process writes.
#[derive(Debug, Default)]
pub(crate) struct OwnWrites {
    marks: Mutex<FastMap<u32, Mark>>,
}

impl OwnWrites {
    /// Partition `p` is written by this process at `epoch`, and every record before
    /// `next_seq` is learned.
    pub(crate) fn mark(&self, p: u32, epoch: i64, next_seq: i64) {
        if let Ok(mut m) = self.marks.lock() {
            m.insert(
                p,
                Mark {
                    epoch,
                    learned_through: next_seq.saturating_sub(1),
                },
            );
        }
    }

    /// This process no longer writes partition `p`.
    pub(crate) fn clear(&self, p: u32) {
        if let Ok(mut m) = self.marks.lock() {
            m.remove(&p);
        }
    }

    /// The mark on partition `p`, if this process writes it.
    pub(crate) fn get(&self, p: u32) -> Option<Mark> {
        self.marks.lock().ok().and_then(|m| m.get(&p).copied())
    }
}

/// Event records of this process's own epoch that the tailer has validated by their head and
/// not decoded, in log order.
#[derive(Debug, Default)]
pub(crate) struct Deferred {
    entries: VecDeque<Waiting>,
}

#[derive(Debug)]
struct Waiting {
    epoch: i64,
    seq: i64,
    since: Instant,
    value: Bytes,
}

impl Deferred {
    /// Holds the valid event record `value` (epoch, seq) until the worker has learned it.
    pub(crate) fn push(&mut self, epoch: i64, seq: i64, value: Bytes) {
        self.entries.push_back(Waiting {
            epoch,
            seq,
            since: Instant::now(),
            value,
        });
    }

    /// How many records wait.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Drops the records the worker has learned (by `mark`); decodes and hands to `learn`
    /// those it will not learn: another epoch, no mark, or waiting longer than `limit`.
    /// Leaves the rest waiting, in order. Returns how many it decoded.
    pub(crate) fn settle(
        &mut self,
        mark: Option<Mark>,
        limit: Duration,
        mut learn: impl FnMut(&LedgerEntry),
    ) -> usize {
        let mut decoded = 0;
        while let Some(w) = self.entries.front() {
            let ours = mark.filter(|m| m.epoch == w.epoch);
            match ours {
                Some(m) if m.learned_through >= w.seq => {}
                Some(_) if w.since.elapsed() < limit => break,
                _ => {
                    // The head said valid; bytes of this process's own writer decode.
                    if let Ok(entry) = LedgerEntry::from_avro(&w.value) {
                        learn(&entry);
                    }
                    decoded += 1;
                }
            }
            self.entries.pop_front();
        }
        decoded
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use provenant_schemas::canonical::{ChainHead, chain_next};
    use provenant_schemas::ledger::{EventRecord, LedgerRecord, RecordBody};
    use provenant_schemas::{Event, EventData, Runtime};

    fn record(seq: i64, epoch: i64) -> Bytes {
        let event = Event::new(
            "src",
            format!("e{seq}"),
            EventData::Runtime(Runtime {
                instance_id: format!("i{seq}"),
                service: "svc".into(),
                environment: "prod".into(),
                deploy_id: None,
                artifact_digest: None,
                trace_id: None,
                message: None,
                annotations: Default::default(),
            }),
        );
        let head = ChainHead {
            next_seq: seq,
            head_hash: [1; 32],
        };
        let r: LedgerRecord = chain_next(
            &head,
            seq,
            epoch,
            RecordBody::Event(EventRecord {
                event,
                redactions: vec![],
                links: vec![],
            }),
        )
        .unwrap();
        LedgerEntry::Record(r).to_avro().into()
    }

    fn seqs(learned: &[LedgerEntry]) -> Vec<i64> {
        learned
            .iter()
            .map(|e| match e {
                LedgerEntry::Record(r) => r.seq,
                LedgerEntry::Fence(_) => -1,
            })
            .collect()
    }

    #[test]
    fn records_the_worker_learned_are_dropped_undecoded_and_the_rest_wait_in_order() {
        let mut d = Deferred::default();
        for seq in 0..5 {
            d.push(3, seq, record(seq, 3));
        }
        let mut learned = Vec::new();
        let mark = Some(Mark {
            epoch: 3,
            learned_through: 2,
        });
        let n = d.settle(mark, DEFER_LIMIT, |e| learned.push(e.clone()));
        assert_eq!((n, d.len()), (0, 2));
        assert!(learned.is_empty());
        // The worker learns the rest.
        let mark = Some(Mark {
            epoch: 3,
            learned_through: 4,
        });
        assert_eq!(d.settle(mark, DEFER_LIMIT, |e| learned.push(e.clone())), 0);
        assert_eq!(d.len(), 0);
    }

    #[test]
    fn records_the_worker_will_not_learn_are_decoded_and_learned() {
        // The worker moved to another epoch (its append failed after the records became
        // durable, and it took the partition over again).
        let mut d = Deferred::default();
        d.push(3, 0, record(0, 3));
        d.push(3, 1, record(1, 3));
        let mut learned = Vec::new();
        let moved = Some(Mark {
            epoch: 4,
            learned_through: 1,
        });
        assert_eq!(d.settle(moved, DEFER_LIMIT, |e| learned.push(e.clone())), 2);
        assert_eq!(seqs(&learned), vec![0, 1]);
        // The partition was given up: no mark.
        learned.clear();
        d.push(3, 2, record(2, 3));
        assert_eq!(d.settle(None, DEFER_LIMIT, |e| learned.push(e.clone())), 1);
        assert_eq!(seqs(&learned), vec![2]);
        // Same epoch, but the worker never got to learn it in time.
        learned.clear();
        d.push(3, 3, record(3, 3));
        let stuck = Some(Mark {
            epoch: 3,
            learned_through: 2,
        });
        assert_eq!(d.settle(stuck, DEFER_LIMIT, |_| unreachable!()), 0);
        assert_eq!(d.len(), 1);
        assert_eq!(
            d.settle(stuck, Duration::ZERO, |e| learned.push(e.clone())),
            1
        );
        assert_eq!(seqs(&learned), vec![3]);
        assert_eq!(d.len(), 0);
    }

    #[test]
    fn marks_are_per_partition_and_cleared() {
        let own = OwnWrites::default();
        assert_eq!(own.get(0), None);
        own.mark(0, 2, 10);
        own.mark(1, 5, 0);
        assert_eq!(
            own.get(0),
            Some(Mark {
                epoch: 2,
                learned_through: 9
            })
        );
        assert_eq!(own.get(1).map(|m| m.learned_through), Some(-1));
        own.clear(0);
        assert_eq!(own.get(0), None);
        assert!(own.get(1).is_some());
    }
}
