//! Resuming when the ledger's beginning is gone (DESIGN.md, "Exactly once without Kafka
//! transactions", rule 3: "reads the ledger from the newest reader state it trusts (an archive
//! checkpoint, else offset 0)").
//!
//! Retention deletes the front of `prov.ledger` once the archive holds it. A new owner of the
//! partition (and every entity-state tailer) then rebuilds what the deleted records taught it —
//! chain head, dedup window, pending links, entities — from a [`History`] (the archive), and
//! reads the ledger on from the reader state stored with the newest archived segment.
//!
//! Invariants:
//! * Without retention (the ledger starts at offset 0) the history is never read.
//! * The replayed records must chain from seq 0 (each `seq` one more than the last, each
//!   `prev_hash` the previous `hash`) to exactly the head in the archived reader state;
//!   otherwise the takeover fails and writes nothing. Hashes are not recomputed here, as for
//!   the ledger tailer: `provenant verify` proves the archive's contents.
//! * The archived reader state must lie inside what the ledger still holds
//!   (`start <= ledger_offset <= end`): if retention deleted records the archive does not
//!   have, the processor stops with an alarm and never skips (rule 7).

use std::future::Future;
use std::pin::Pin;

use provenant_log::Watermarks;
use provenant_schemas::canonical::ChainHead;
use provenant_schemas::ledger::LedgerRecord;
use provenant_schemas::validity::ReaderState;

use crate::ProcessorError;

/// A progress line every this many replayed records (a takeover replays the partition's
/// whole archive: its cost grows with history once retention has started deleting).
const PROGRESS_EVERY: i64 = 1_000_000;

/// What [`History::replay`] returns.
pub type ReplayFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<ReaderState>, HistoryError>> + Send + 'a>>;

/// Why the history could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct HistoryError {
    pub message: String,
    /// Whether trying again later may help (an unreachable store, not a corrupt object).
    pub retryable: bool,
}

/// Where a ledger partition's records before the log's start can be read back: the archive
/// (`provenant-archive`'s `replay_partition`, wired by the CLI).
pub trait History: Send + Sync + 'static {
    /// Calls `each` with every record of ledger partition `partition` that the history holds,
    /// seq 0 upward, and returns the reader state after the last of them (`None` when it holds
    /// nothing for the partition). An error of `each` stops the replay.
    fn replay<'a>(
        &'a self,
        partition: u32,
        each: &'a mut (dyn FnMut(LedgerRecord) -> Result<(), String> + Send),
    ) -> ReplayFuture<'a>;
}

/// Where a reader of ledger partition `p` whose watermarks are `wm` starts: the start of the
/// partition when it still holds offset 0; otherwise the reader state of the history, after
/// passing every historic record to `absorb` (checked to chain from seq 0 to that state).
pub(crate) async fn resume_point(
    history: Option<&dyn History>,
    p: u32,
    wm: Watermarks,
    mut absorb: impl FnMut(&LedgerRecord) + Send,
) -> Result<ReaderState, ProcessorError> {
    if wm.start == 0 {
        return Ok(ReaderState::START);
    }
    let Some(history) = history else {
        return Err(ProcessorError::LedgerTruncated {
            partition: p,
            start: wm.start,
        });
    };
    let fail = |message: String, retryable: bool| ProcessorError::History {
        partition: p,
        message,
        retryable,
    };
    let mut head = ChainHead::GENESIS;
    let mut each = |r: LedgerRecord| {
        if r.seq != head.next_seq || r.prev_hash != head.head_hash {
            return Err(format!(
                "archived record seq {} does not extend the chain at seq {} (a record is missing, reordered or altered: run provenant verify on the archive)",
                r.seq, head.next_seq
            ));
        }
        head = ChainHead {
            next_seq: r.seq.saturating_add(1),
            head_hash: r.hash,
        };
        absorb(&r);
        if head.next_seq % PROGRESS_EVERY == 0 {
            tracing::info!(
                partition = p,
                records = head.next_seq,
                "replaying the archive"
            );
        }
        Ok(())
    };
    let state = history
        .replay(p, &mut each)
        .await
        .map_err(|e| fail(format!("reading the archive: {}", e.message), e.retryable))?;
    let Some(state) = state else {
        return Err(fail(
            format!(
                "the ledger starts at offset {} (its beginning was deleted by retention) and the archive holds nothing for this partition; refusing to guess the chain head",
                wm.start
            ),
            false,
        ));
    };
    if state.head != head {
        return Err(fail(
            format!(
                "the archive's records end at seq {} but its newest reader state says seq {}: run provenant verify on the archive",
                head.next_seq.saturating_sub(1),
                state.head.next_seq.saturating_sub(1)
            ),
            false,
        ));
    }
    if state.ledger_offset < wm.start {
        return Err(fail(
            format!(
                "the archive reaches ledger offset {} but the ledger starts at {}: retention deleted records the archive does not hold (ledger retention must exceed archive lag); refusing to skip them",
                state.ledger_offset, wm.start
            ),
            false,
        ));
    }
    if state.ledger_offset > wm.end {
        // The ledger may have grown while the archive was read (a previous owner still
        // writing): trying again reads fresh watermarks. If it persists, the archive belongs
        // to another ledger.
        return Err(fail(
            format!(
                "the archive reaches ledger offset {} but the ledger ended at {} when the takeover began (if this persists, the archive belongs to another ledger)",
                state.ledger_offset, wm.end
            ),
            true,
        ));
    }
    tracing::info!(
        partition = p,
        ledger_start = wm.start,
        resume_offset = state.ledger_offset,
        records = head.next_seq,
        "resumed from the archive: the ledger's beginning was deleted by retention"
    );
    Ok(state)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use provenant_schemas::canonical::chain_next;
    use provenant_schemas::ledger::{DuplicateMarker, RecordBody};

    use super::*;

    /// A history: these records, then this stored state.
    struct Fixed {
        records: Vec<LedgerRecord>,
        state: Option<ReaderState>,
    }

    impl History for Fixed {
        fn replay<'a>(
            &'a self,
            _partition: u32,
            each: &'a mut (dyn FnMut(LedgerRecord) -> Result<(), String> + Send),
        ) -> ReplayFuture<'a> {
            Box::pin(async move {
                for r in &self.records {
                    each(r.clone()).map_err(|message| HistoryError {
                        message,
                        retryable: false,
                    })?;
                }
                Ok(self.state)
            })
        }
    }

    fn chain(n: i64) -> Vec<LedgerRecord> {
        let mut head = ChainHead::GENESIS;
        (0..n)
            .map(|i| {
                let r = chain_next(
                    &head,
                    i,
                    0,
                    RecordBody::Duplicate(DuplicateMarker {
                        original_partition: 0,
                        original_seq: 0,
                        source: "s".into(),
                        id: i.to_string(),
                    }),
                )
                .unwrap();
                head = ChainHead::after(&r);
                r
            })
            .collect()
    }

    fn state_after(records: &[LedgerRecord], ledger_offset: u64) -> ReaderState {
        let last = records.last().unwrap();
        ReaderState {
            ledger_offset,
            head: ChainHead::after(last),
            fence: Some((0, [0; 16])),
            raw_offset: Some(last.raw_offset),
        }
    }

    fn wm(start: u64, end: u64) -> Watermarks {
        Watermarks { start, end }
    }

    async fn resume(
        h: Option<&Fixed>,
        w: Watermarks,
    ) -> Result<(ReaderState, i64), ProcessorError> {
        let mut n = 0;
        let state = resume_point(h.map(|h| h as &dyn History), 3, w, |_| n += 1).await?;
        Ok((state, n))
    }

    #[tokio::test]
    async fn the_start_of_the_ledger_needs_no_history() {
        let (state, n) = resume(None, wm(0, 10)).await.unwrap();
        assert_eq!((state, n), (ReaderState::START, 0));
    }

    #[tokio::test]
    async fn a_truncated_ledger_resumes_at_the_archived_state() {
        let records = chain(5);
        let state = state_after(&records, 7);
        let h = Fixed {
            records,
            state: Some(state),
        };
        assert_eq!(resume(Some(&h), wm(4, 9)).await.unwrap(), (state, 5));
        // Exactly at the ledger's start and exactly at its end are fine too.
        assert!(resume(Some(&h), wm(7, 7)).await.is_ok());
    }

    #[tokio::test]
    async fn every_unsafe_resume_is_refused() {
        let records = chain(5);
        let state = state_after(&records, 7);
        let err = |e: ProcessorError| (e.to_string(), e.is_retryable());
        // No archive.
        let (m, retry) = err(resume(None, wm(4, 9)).await.unwrap_err());
        assert!(m.contains("no archive was given"), "{m}");
        assert!(!retry);
        // The archive stops before the ledger's start: records in between are gone.
        let h = Fixed {
            records: records.clone(),
            state: Some(state),
        };
        let (m, retry) = err(resume(Some(&h), wm(8, 20)).await.unwrap_err());
        assert!(
            m.contains("retention deleted records the archive does not hold"),
            "{m}"
        );
        assert!(!retry);
        // The archive is past the ledger's end: maybe the ledger grew meanwhile (retried).
        let (m, retry) = err(resume(Some(&h), wm(4, 6)).await.unwrap_err());
        assert!(m.contains("belongs to another ledger"), "{m}");
        assert!(retry);
        // Nothing archived.
        let empty = Fixed {
            records: Vec::new(),
            state: None,
        };
        let (m, _) = err(resume(Some(&empty), wm(4, 9)).await.unwrap_err());
        assert!(m.contains("holds nothing for this partition"), "{m}");
        // A record missing from the archive.
        let mut gap = records.clone();
        gap.remove(2);
        let h = Fixed {
            records: gap,
            state: Some(state),
        };
        let (m, retry) = err(resume(Some(&h), wm(4, 9)).await.unwrap_err());
        assert!(
            m.contains("seq 3 does not extend the chain at seq 2"),
            "{m}"
        );
        assert!(!retry);
        // Records that stop short of the stored state.
        let h = Fixed {
            records: records[..4].to_vec(),
            state: Some(state),
        };
        let (m, _) = err(resume(Some(&h), wm(4, 9)).await.unwrap_err());
        assert!(
            m.contains("end at seq 3 but its newest reader state says seq 4"),
            "{m}"
        );
    }
}
