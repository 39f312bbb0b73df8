//! Pending links of one ledger partition: links written as pending whose target is not known
//! yet, kept so that a link-resolution record can be written when the target arrives.
//!
//! At most `cap` are kept (`[processor] max_pending_links` per partition): past it the oldest
//! (lowest seq) are dropped from memory. A dropped link stays pending in the ledger for good
//! (the index still has the reference as an edge by entity key) and is counted in
//! [`Pending::untracked`], so memory stays bounded however many links never resolve (events
//! that refer to deployments or artifacts no producer reports).
//!
//! Invariants: links are added in seq order (while processing and while replaying the ledger
//! on takeover), and the state after a sequence of `add`/`remove` calls depends only on that
//! sequence and `cap`, so a takeover rebuilds exactly the set the previous writer held (with
//! the same cap). Adding and removing cost O(log n) amortized; nothing is O(n) per link. An
//! event may hold the same link twice (a data run listing one input twice): each is kept and
//! resolved on its own, as the ledger counts them.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use provenant_schemas::event::Relation;

use crate::entities::FastMap;

/// See the module doc.
#[derive(Default)]
pub(crate) struct Pending {
    /// Target entity key → waiting links (seq of the record holding the link, relation, and
    /// which of the record's identical links it is).
    by_target: FastMap<Arc<str>, BTreeSet<Waiter>>,
    /// Every kept link in the order added (seq order); links resolved since stay until they
    /// reach the front or the queue is compacted.
    order: VecDeque<(Waiter, Arc<str>)>,
    kept: usize,
    untracked: u64,
    cap: usize,
}

impl Pending {
    /// Keeps at most `cap` links (at least one).
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            ..Self::default()
        }
    }

    /// A pending link of record `seq` to `target`.
    pub(crate) fn add(&mut self, target: String, seq: i64, relation: Relation) {
        let key = match self.by_target.get_key_value(target.as_str()) {
            Some((k, _)) => k.clone(),
            None => Arc::from(target),
        };
        let waiters = self.by_target.entry(key.clone()).or_default();
        // Nearly always the record's only link to this target with this relation.
        let mut waiter = (seq, relation, 0);
        if !waiters.insert(waiter) {
            // One more after the highest of them: unique.
            let last = waiters
                .range(same(seq, relation))
                .next_back()
                .map_or(0, |w| w.2);
            waiter.2 = last.saturating_add(1);
            waiters.insert(waiter);
        }
        self.kept += 1;
        self.order.push_back((waiter, key));
        while self.kept > self.cap {
            self.drop_oldest();
        }
        if self.order.len() > 2 * self.kept + 1024 {
            let by_target = &self.by_target;
            self.order
                .retain(|(w, k)| by_target.get(k).is_some_and(|ws| ws.contains(w)));
        }
    }

    /// A link of record `seq` to `target` is resolved (one of them, if the record holds the
    /// same link more than once). Whether it was kept.
    pub(crate) fn remove(&mut self, target: &str, seq: i64, relation: Relation) -> bool {
        let first = self
            .by_target
            .get(target)
            .and_then(|w| w.range(same(seq, relation)).next().copied());
        first.is_some_and(|w| self.remove_exact(target, &w))
    }

    fn remove_exact(&mut self, target: &str, w: &Waiter) -> bool {
        let Some(waiters) = self.by_target.get_mut(target) else {
            return false;
        };
        let removed = waiters.remove(w);
        if waiters.is_empty() {
            self.by_target.remove(target);
        }
        if removed {
            self.kept -= 1;
        }
        removed
    }

    fn drop_oldest(&mut self) {
        while let Some((w, key)) = self.order.pop_front() {
            if self.remove_exact(&key, &w) {
                self.untracked += 1;
                return;
            }
        }
    }

    /// Links kept in memory, waiting for their target.
    pub(crate) fn kept(&self) -> usize {
        self.kept
    }

    /// Links dropped over the cap: pending in the ledger for good.
    pub(crate) fn untracked(&self) -> u64 {
        self.untracked
    }

    /// Kept links by target, each target's as (seq, relation) in seq order, a link held
    /// twice by one record appearing twice.
    pub(crate) fn by_target(
        &self,
    ) -> impl Iterator<Item = (&str, impl Iterator<Item = (i64, Relation)> + '_)> {
        self.by_target
            .iter()
            .map(|(k, w)| (&**k, w.iter().map(|(s, r, _)| (*s, *r))))
    }
}

/// A kept link: seq of the record holding it, relation, and which of the record's identical
/// links (same target and relation) it is.
type Waiter = (i64, Relation, u32);

/// The waiters of record `seq` with `relation`.
fn same(seq: i64, relation: Relation) -> std::ops::RangeInclusive<Waiter> {
    (seq, relation, 0)..=(seq, relation, u32::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const R: Relation = Relation::Runs;

    fn waiting(p: &Pending) -> Vec<(String, i64)> {
        let mut v: Vec<(String, i64)> = p
            .by_target()
            .flat_map(|(t, w)| w.map(move |(s, _)| (t.to_owned(), s)))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn links_wait_until_resolved() {
        let mut p = Pending::new(10);
        p.add("artifact:a".into(), 1, R);
        p.add("artifact:a".into(), 2, R);
        p.add("deploy:d".into(), 2, Relation::StartedBy);
        assert_eq!(p.kept(), 3);
        assert!(p.remove("artifact:a", 1, R));
        assert!(!p.remove("artifact:a", 1, R));
        assert!(!p.remove("artifact:zzz", 1, R));
        assert_eq!(
            waiting(&p),
            vec![("artifact:a".into(), 2), ("deploy:d".into(), 2)]
        );
        assert_eq!((p.kept(), p.untracked()), (2, 0));
    }

    #[test]
    fn a_link_held_twice_by_one_record_waits_and_resolves_twice() {
        let mut p = Pending::new(10);
        p.add("dataset:db/t".into(), 4, Relation::Reads);
        p.add("dataset:db/t".into(), 4, Relation::Reads);
        assert_eq!(p.kept(), 2);
        assert_eq!(
            waiting(&p),
            vec![("dataset:db/t".into(), 4), ("dataset:db/t".into(), 4)]
        );
        assert!(p.remove("dataset:db/t", 4, Relation::Reads));
        assert!(p.remove("dataset:db/t", 4, Relation::Reads));
        assert!(!p.remove("dataset:db/t", 4, Relation::Reads));
        assert_eq!(p.kept(), 0);
        // Over the cap, each is dropped on its own.
        let mut p = Pending::new(1);
        p.add("dataset:db/t".into(), 4, Relation::Reads);
        p.add("dataset:db/t".into(), 4, Relation::Reads);
        assert_eq!((p.kept(), p.untracked()), (1, 1));
    }

    #[test]
    fn over_the_cap_the_oldest_kept_links_are_dropped_and_counted() {
        let mut p = Pending::new(3);
        for seq in 0..3 {
            p.add(format!("artifact:{seq}"), seq, R);
        }
        // Resolving seq 0 makes room: nothing is dropped when 3 arrives.
        assert!(p.remove("artifact:0", 0, R));
        p.add("artifact:3".into(), 3, R);
        assert_eq!((p.kept(), p.untracked()), (3, 0));
        // Now 4 pushes out the oldest kept link (seq 1), skipping the resolved seq 0.
        p.add("artifact:4".into(), 4, R);
        assert_eq!((p.kept(), p.untracked()), (3, 1));
        assert_eq!(
            waiting(&p),
            vec![
                ("artifact:2".into(), 2),
                ("artifact:3".into(), 3),
                ("artifact:4".into(), 4)
            ]
        );
        // A resolution for a dropped link changes nothing.
        assert!(!p.remove("artifact:1", 1, R));
        assert_eq!((p.kept(), p.untracked()), (3, 1));
    }

    #[test]
    fn memory_stays_bounded_by_the_cap_whatever_resolves() {
        let mut p = Pending::new(1000);
        for seq in 0..200_000 {
            p.add(format!("deploy:{}", seq % 7), seq, R);
            if seq % 3 == 0 {
                p.remove(&format!("deploy:{}", seq % 7), seq, R);
            }
            assert!(p.kept() <= 1000);
            assert!(p.order.len() <= 2 * p.kept() + 1025);
        }
        assert_eq!(p.kept(), 1000);
        // Never resolved: 200,000 − 66,667; all but 1,000 dropped.
        assert_eq!(p.untracked(), 200_000 - 66_667 - 1000);
    }

    #[test]
    fn the_same_calls_give_the_same_state() {
        let run = || {
            let mut p = Pending::new(50);
            for seq in 0..500 {
                p.add(format!("artifact:{}", seq % 13), seq, R);
                if seq % 5 == 0 && seq >= 10 {
                    p.remove(&format!("artifact:{}", (seq - 10) % 13), seq - 10, R);
                }
            }
            (waiting(&p), p.untracked())
        };
        assert_eq!(run(), run());
    }
}
