//! The validity rule: which entries of a ledger partition count. Every reader of the ledger
//! (the processor taking a partition, entity state, the sinks, `verify`) applies this one
//! function, so every reader decides the same way (DESIGN.md, "Exactly once without Kafka
//! transactions", rule 4).
//!
//! A [`Validator`] is fed one partition's entries in log order ([`Validator::observe`]) and
//! says of each whether it counts:
//!
//! * a **fence** counts only if its epoch is higher than every earlier counted fence's;
//! * a **record** counts only if a fence counts before it, its `writer_epoch` is the epoch of
//!   the newest counted fence, it extends the head (`seq` is the next seq, `prev_hash` the
//!   head's hash) and, when hashes are checked, its `hash` is the hash of its contents;
//! * everything else — a stale writer's late appends, a losing fence, a record that does not
//!   extend the head — is ignored and counted by [`IgnoreReason`], never chained.
//!
//! Log order decides. The rule reads nothing but the entries and their offsets, so a reader
//! that starts from a saved [`ReaderState`] decides exactly as one that read from offset 0.
//!
//! Invariants: `observe` never panics; the head only moves by a valid record; the state after
//! an entry depends only on the state before it and the entry.

use crate::canonical::ChainHead;
use crate::ledger::{BodyKind, Fence, LedgerEntry, LedgerRecord, RecordHead, WriterId};

/// Where a reader of one ledger partition stands (DESIGN.md rule 6). Sinks store it with
/// their output and resume from it; the processor rebuilds it on takeover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReaderState {
    /// The ledger offset of the next entry to read.
    pub ledger_offset: u64,
    /// The chain head after the last valid record.
    pub head: ChainHead,
    /// The newest counted fence, if any: its epoch and writer.
    pub fence: Option<(i64, WriterId)>,
    /// The highest raw offset accounted for by a valid record, if any.
    pub raw_offset: Option<i64>,
}

impl ReaderState {
    /// A reader at the start of an empty partition.
    pub const START: ReaderState = ReaderState {
        ledger_offset: 0,
        head: ChainHead::GENESIS,
        fence: None,
        raw_offset: None,
    };

    /// The epoch of the newest counted fence.
    pub fn epoch(&self) -> Option<i64> {
        self.fence.map(|(e, _)| e)
    }

    /// The raw offset the partition's owner resumes from.
    pub fn next_raw_offset(&self) -> u64 {
        self.raw_offset
            .map_or(0, |o| u64::try_from(o).unwrap_or(0).saturating_add(1))
    }
}

impl Default for ReaderState {
    fn default() -> Self {
        Self::START
    }
}

/// Why an entry does not count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IgnoreReason {
    /// A fence whose epoch is not higher than the newest counted fence's.
    StaleFence,
    /// A record before any counted fence.
    NoFence,
    /// A record whose writer epoch is not the newest counted fence's (a zombie's late write).
    StaleEpoch,
    /// A record whose seq is not the head's next seq.
    SeqMismatch,
    /// A record whose `prev_hash` is not the head's hash.
    PrevHashMismatch,
    /// A record whose `hash` is not the hash of its contents.
    HashMismatch,
    /// Bytes that are not a ledger entry.
    Undecodable,
}

impl IgnoreReason {
    /// Every reason, in a fixed order.
    pub const ALL: [IgnoreReason; 7] = [
        IgnoreReason::StaleFence,
        IgnoreReason::NoFence,
        IgnoreReason::StaleEpoch,
        IgnoreReason::SeqMismatch,
        IgnoreReason::PrevHashMismatch,
        IgnoreReason::HashMismatch,
        IgnoreReason::Undecodable,
    ];

    /// A stable snake_case name (a metric label value).
    pub fn as_str(self) -> &'static str {
        match self {
            IgnoreReason::StaleFence => "stale_fence",
            IgnoreReason::NoFence => "no_fence",
            IgnoreReason::StaleEpoch => "stale_epoch",
            IgnoreReason::SeqMismatch => "seq_mismatch",
            IgnoreReason::PrevHashMismatch => "prev_hash_mismatch",
            IgnoreReason::HashMismatch => "hash_mismatch",
            IgnoreReason::Undecodable => "undecodable",
        }
    }
}

/// What the rule says of one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A record that counts: it is now the head.
    Valid,
    /// A fence that counts: from here on only records of its epoch count.
    CountedFence { epoch: i64, writer_id: WriterId },
    /// Ignored, and why.
    Ignored(IgnoreReason),
}

impl Verdict {
    /// Whether the entry counts (a valid record or a counted fence).
    pub fn counts(&self) -> bool {
        !matches!(self, Verdict::Ignored(_))
    }
}

/// Applies the validity rule to one partition, entry by entry. See the module doc.
#[derive(Clone, Debug)]
pub struct Validator {
    state: ReaderState,
    check_hashes: bool,
    ignored: [u64; IgnoreReason::ALL.len()],
}

impl Validator {
    /// A validator at `state` that recomputes every record's hash.
    pub fn new(state: ReaderState) -> Self {
        Self {
            state,
            check_hashes: true,
            ignored: [0; IgnoreReason::ALL.len()],
        }
    }

    /// Whether to recompute record hashes (default on). A reader of entries it wrote itself
    /// may turn it off; every other reader keeps it on.
    #[must_use]
    pub fn check_hashes(mut self, on: bool) -> Self {
        self.check_hashes = on;
        self
    }

    /// The state after the entries observed so far.
    pub fn state(&self) -> &ReaderState {
        &self.state
    }

    /// How many entries were ignored for `reason`.
    pub fn ignored(&self, reason: IgnoreReason) -> u64 {
        IgnoreReason::ALL
            .iter()
            .position(|r| *r == reason)
            .and_then(|i| self.ignored.get(i).copied())
            .unwrap_or(0)
    }

    /// How many entries were ignored in all.
    pub fn ignored_total(&self) -> u64 {
        self.ignored.iter().sum()
    }

    /// Applies the rule to the entry at `offset` (entries must come in log order; an offset
    /// below the state's is a caller error and is treated like the next one).
    pub fn observe(&mut self, offset: u64, entry: &LedgerEntry) -> Verdict {
        let verdict = match entry {
            LedgerEntry::Fence(f) => self.fence(f),
            LedgerEntry::Record(r) => self.record(r),
        };
        self.settle(offset, verdict)
    }

    /// Moves past the entry at `offset` and counts it if ignored.
    fn settle(&mut self, offset: u64, verdict: Verdict) -> Verdict {
        self.state.ledger_offset = offset.saturating_add(1).max(self.state.ledger_offset);
        if let Verdict::Ignored(reason) = verdict {
            self.count(reason);
        }
        verdict
    }

    /// Decodes the value at `offset` and applies the rule. Bytes that do not decode are
    /// ignored ([`IgnoreReason::Undecodable`]).
    pub fn observe_bytes(&mut self, offset: u64, value: &[u8]) -> (Verdict, Option<LedgerEntry>) {
        match LedgerEntry::from_avro(value) {
            Ok(entry) => (self.observe(offset, &entry), Some(entry)),
            Err(_) => {
                self.state.ledger_offset = offset.saturating_add(1).max(self.state.ledger_offset);
                self.count(IgnoreReason::Undecodable);
                (Verdict::Ignored(IgnoreReason::Undecodable), None)
            }
        }
    }

    fn count(&mut self, reason: IgnoreReason) {
        if let Some(i) = IgnoreReason::ALL.iter().position(|r| *r == reason)
            && let Some(n) = self.ignored.get_mut(i)
        {
            *n += 1;
        }
    }

    fn fence(&mut self, f: &Fence) -> Verdict {
        if self.state.epoch().is_some_and(|e| f.writer_epoch <= e) {
            return Verdict::Ignored(IgnoreReason::StaleFence);
        }
        self.state.fence = Some((f.writer_epoch, f.writer_id));
        Verdict::CountedFence {
            epoch: f.writer_epoch,
            writer_id: f.writer_id,
        }
    }

    fn record(&mut self, r: &LedgerRecord) -> Verdict {
        let check_hashes = self.check_hashes;
        self.record_head(&r.head(), || {
            !check_hashes || r.compute_hash().is_ok_and(|h| h == r.hash)
        })
    }

    /// The rule for a record, from its head; `hash_ok` is asked only when everything else
    /// holds.
    fn record_head(&mut self, r: &RecordHead, hash_ok: impl FnOnce() -> bool) -> Verdict {
        let Some(epoch) = self.state.epoch() else {
            return Verdict::Ignored(IgnoreReason::NoFence);
        };
        if r.writer_epoch != epoch {
            return Verdict::Ignored(IgnoreReason::StaleEpoch);
        }
        if r.seq != self.state.head.next_seq {
            return Verdict::Ignored(IgnoreReason::SeqMismatch);
        }
        if r.prev_hash != self.state.head.head_hash {
            return Verdict::Ignored(IgnoreReason::PrevHashMismatch);
        }
        if !hash_ok() {
            return Verdict::Ignored(IgnoreReason::HashMismatch);
        }
        self.state.head = ChainHead {
            next_seq: r.seq.saturating_add(1),
            head_hash: r.hash,
        };
        if r.body != BodyKind::LinkResolution {
            self.state.raw_offset = Some(
                self.state
                    .raw_offset
                    .map_or(r.raw_offset, |o| o.max(r.raw_offset)),
            );
        }
        Verdict::Valid
    }

    /// Applies the rule to a record this process wrote itself, known only by its head
    /// ([`LedgerEntry::peek_record_head`]): the same decision [`Validator::observe`] makes
    /// on the decoded record, as long as the body decodes, which the writer's own encoding
    /// guarantees. There is no body to hash, so it is for readers that turned
    /// [`Validator::check_hashes`] off; with it on, the record is treated as if its hash
    /// failed to check, so a misuse cannot pass a record unchecked.
    pub fn observe_own_head(&mut self, offset: u64, head: &RecordHead) -> Verdict {
        let checked = !self.check_hashes;
        let verdict = self.record_head(head, || checked);
        self.settle(offset, verdict)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;
    use crate::canonical::chain_next;
    use crate::ledger::{DuplicateMarker, RecordBody};

    fn fence(epoch: i64, id: u8) -> LedgerEntry {
        LedgerEntry::Fence(Fence {
            writer_epoch: epoch,
            writer_id: [id; 16],
        })
    }

    fn body(n: i64) -> RecordBody {
        RecordBody::Duplicate(DuplicateMarker {
            original_partition: 0,
            original_seq: 0,
            source: "s".into(),
            id: format!("e{n}"),
        })
    }

    fn next(head: &ChainHead, raw: i64, epoch: i64) -> LedgerRecord {
        chain_next(head, raw, epoch, body(raw)).unwrap()
    }

    #[test]
    fn a_fresh_writer_chains_from_genesis() {
        let mut v = Validator::new(ReaderState::START);
        assert!(matches!(
            v.observe(0, &fence(0, 1)),
            Verdict::CountedFence { epoch: 0, .. }
        ));
        let r0 = next(&ChainHead::GENESIS, 0, 0);
        assert_eq!(
            v.observe(1, &LedgerEntry::Record(r0.clone())),
            Verdict::Valid
        );
        let r1 = next(&ChainHead::after(&r0), 1, 0);
        assert_eq!(
            v.observe(2, &LedgerEntry::Record(r1.clone())),
            Verdict::Valid
        );
        assert_eq!(v.state().head, ChainHead::after(&r1));
        assert_eq!(v.state().raw_offset, Some(1));
        assert_eq!(v.state().next_raw_offset(), 2);
        assert_eq!(v.state().ledger_offset, 3);
        assert_eq!(v.ignored_total(), 0);
    }

    #[test]
    fn records_before_any_fence_do_not_count() {
        let mut v = Validator::new(ReaderState::START);
        let r0 = next(&ChainHead::GENESIS, 0, 0);
        assert_eq!(
            v.observe(0, &LedgerEntry::Record(r0)),
            Verdict::Ignored(IgnoreReason::NoFence)
        );
        assert_eq!(v.state().head, ChainHead::GENESIS);
    }

    #[test]
    fn a_zombie_after_a_newer_fence_is_ignored_and_counted() {
        let mut v = Validator::new(ReaderState::START);
        v.observe(0, &fence(0, 1));
        let r0 = next(&ChainHead::GENESIS, 0, 0);
        assert_eq!(
            v.observe(1, &LedgerEntry::Record(r0.clone())),
            Verdict::Valid
        );
        // B takes over with epoch 1.
        assert!(v.observe(2, &fence(1, 2)).counts());
        // A, paused, writes its next record late: same head, old epoch.
        let late = next(&ChainHead::after(&r0), 1, 0);
        assert_eq!(
            v.observe(3, &LedgerEntry::Record(late)),
            Verdict::Ignored(IgnoreReason::StaleEpoch)
        );
        // B continues the chain from r0.
        let b1 = next(&ChainHead::after(&r0), 1, 1);
        assert_eq!(v.observe(4, &LedgerEntry::Record(b1)), Verdict::Valid);
        assert_eq!(v.ignored(IgnoreReason::StaleEpoch), 1);
        assert_eq!(v.state().epoch(), Some(1));
    }

    #[test]
    fn a_fence_must_be_higher_than_every_counted_fence() {
        let mut v = Validator::new(ReaderState::START);
        assert!(v.observe(0, &fence(3, 1)).counts());
        assert_eq!(
            v.observe(1, &fence(3, 2)),
            Verdict::Ignored(IgnoreReason::StaleFence)
        );
        assert_eq!(
            v.observe(2, &fence(2, 2)),
            Verdict::Ignored(IgnoreReason::StaleFence)
        );
        assert_eq!(v.state().fence, Some((3, [1; 16])));
        assert!(v.observe(3, &fence(4, 2)).counts());
    }

    #[test]
    fn records_that_do_not_extend_the_head_are_ignored() {
        let mut v = Validator::new(ReaderState::START);
        v.observe(0, &fence(0, 1));
        let r0 = next(&ChainHead::GENESIS, 0, 0);
        v.observe(1, &LedgerEntry::Record(r0.clone()));
        // Same record again (a duplicate append): seq mismatch.
        assert_eq!(
            v.observe(2, &LedgerEntry::Record(r0.clone())),
            Verdict::Ignored(IgnoreReason::SeqMismatch)
        );
        // Right seq, wrong prev_hash.
        let fork = next(
            &ChainHead {
                next_seq: 1,
                head_hash: [9; 32],
            },
            1,
            0,
        );
        assert_eq!(
            v.observe(3, &LedgerEntry::Record(fork)),
            Verdict::Ignored(IgnoreReason::PrevHashMismatch)
        );
        // Altered contents.
        let mut bad = next(&ChainHead::after(&r0), 1, 0);
        bad.raw_offset = 7;
        assert_eq!(
            v.observe(4, &LedgerEntry::Record(bad.clone())),
            Verdict::Ignored(IgnoreReason::HashMismatch)
        );
        // A reader that trusts hashes takes it.
        let mut trusting = Validator::new(*v.state()).check_hashes(false);
        assert_eq!(
            trusting.observe(5, &LedgerEntry::Record(bad)),
            Verdict::Valid
        );
        assert_eq!(
            v.observe_bytes(6, b"junk").0,
            Verdict::Ignored(IgnoreReason::Undecodable)
        );
        assert_eq!(v.ignored_total(), 4);
        assert_eq!(v.state().ledger_offset, 7);
    }

    #[test]
    fn own_heads_are_decided_like_decoded_records() {
        use crate::ledger::LinkResolution;
        // Fences, a zombie, a duplicate append, a fork, a link resolution (which accounts for
        // no raw offset): every kind of verdict a record can get without a hash check.
        let mut entries = vec![fence(0, 1)];
        let mut head = ChainHead::GENESIS;
        for raw in 0..3 {
            let r = next(&head, raw, 0);
            head = ChainHead::after(&r);
            entries.push(LedgerEntry::Record(r));
        }
        let resolution = chain_next(
            &head,
            9,
            0,
            RecordBody::LinkResolution(LinkResolution {
                resolves_seq: 0,
                relation: crate::event::Relation::BuiltFrom,
                target: "build:b".into(),
                target_hash: [3; 32],
                target_partition: 1,
                target_seq: 4,
            }),
        )
        .unwrap();
        head = ChainHead::after(&resolution);
        entries.push(LedgerEntry::Record(resolution.clone()));
        entries.push(LedgerEntry::Record(resolution));
        entries.push(fence(1, 2));
        entries.push(LedgerEntry::Record(next(&head, 3, 0)));
        entries.push(LedgerEntry::Record(next(
            &ChainHead {
                next_seq: head.next_seq,
                head_hash: [9; 32],
            },
            3,
            1,
        )));
        entries.push(LedgerEntry::Record(next(&head, 3, 1)));
        let mut decoded = Validator::new(ReaderState::START).check_hashes(false);
        let mut heads = Validator::new(ReaderState::START).check_hashes(false);
        for (o, e) in entries.iter().enumerate() {
            let o = o as u64;
            let bytes = e.to_avro();
            let want = decoded.observe_bytes(o, &bytes).0;
            let got = match LedgerEntry::peek_record_head(&bytes) {
                Some(h) => {
                    let LedgerEntry::Record(r) = e else {
                        panic!("a fence peeked as a record at {o}")
                    };
                    assert_eq!(h, r.head());
                    heads.observe_own_head(o, &h)
                }
                None => {
                    assert!(matches!(e, LedgerEntry::Fence(_)));
                    heads.observe(o, e)
                }
            };
            assert_eq!(got, want, "offset {o}");
            assert_eq!(heads.state(), decoded.state(), "offset {o}");
        }
        assert_eq!(heads.ignored_total(), 3);
        assert_eq!(heads.state().raw_offset, Some(3));
        // Not a record: junk, a truncated head.
        assert_eq!(LedgerEntry::peek_record_head(b"junk"), None);
        let bytes = entries[1].to_avro();
        assert_eq!(LedgerEntry::peek_record_head(&bytes[..20]), None);
        // A reader that checks hashes never takes a head for a record.
        let mut checking = Validator::new(*decoded.state());
        let LedgerEntry::Record(r) = &entries[1] else {
            unreachable!()
        };
        let mut h = r.head();
        h.seq = checking.state().head.next_seq;
        h.prev_hash = checking.state().head.head_hash;
        h.writer_epoch = 1;
        assert_eq!(
            checking.observe_own_head(99, &h),
            Verdict::Ignored(IgnoreReason::HashMismatch)
        );
    }

    #[test]
    fn resuming_from_a_saved_state_decides_like_reading_from_zero() {
        let mut entries = vec![fence(0, 1)];
        let mut head = ChainHead::GENESIS;
        for raw in 0..5 {
            let r = next(&head, raw, 0);
            head = ChainHead::after(&r);
            entries.push(LedgerEntry::Record(r));
        }
        entries.push(fence(1, 2));
        let zombie = next(&head, 5, 0);
        entries.push(LedgerEntry::Record(zombie));
        for raw in 5..8 {
            let r = next(&head, raw, 1);
            head = ChainHead::after(&r);
            entries.push(LedgerEntry::Record(r));
        }
        let mut whole = Validator::new(ReaderState::START);
        let all: Vec<Verdict> = entries
            .iter()
            .enumerate()
            .map(|(o, e)| whole.observe(o as u64, e))
            .collect();
        for split in 0..entries.len() {
            let mut first = Validator::new(ReaderState::START);
            for (o, e) in entries.iter().enumerate().take(split) {
                first.observe(o as u64, e);
            }
            let mut second = Validator::new(*first.state());
            for (o, e) in entries.iter().enumerate().skip(split) {
                assert_eq!(
                    second.observe(o as u64, e),
                    all[o],
                    "split {split} offset {o}"
                );
            }
            assert_eq!(second.state(), whole.state());
        }
        assert_eq!(whole.state().raw_offset, Some(7));
        assert_eq!(whole.state().head, head);
    }
}
