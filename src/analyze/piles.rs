//! Sorted piles of late keys: the first stop of a record that extends no
//! live run of the reorder buffer.
//!
//! Under a flood nearly every record is late: the tracker decides the
//! oldest attempt of a full partition early to make room, and each of the
//! 64 partitions does so in its own order. Their failures, by the time they
//! happened, are 64 sorted streams interleaved, late by a lag that differs
//! from partition to partition (measured on the 5M flood: 2.55 million
//! evicted failures, 1.25 million of them earlier than the one before, and
//! exactly 64 piles in patience sorting). The merged runs of
//! [`super::LateRuns`] sorted them anyway: each key was copied once per
//! level of merges, about 13 times, a tenth of the flood's run time.
//!
//! Here a key goes to the pile with the latest tail not after it (patience
//! sorting: the tails stay sorted, so a binary search finds it), and a heap
//! of the piles' heads gives the smallest. A key moves twice, in and out;
//! pushes and pops cost a few comparisons among at most [`MAX_PILES`]
//! piles. A key that would need a pile more than that is refused, and goes
//! to the merged runs: keys in no order at all cost what they cost before.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque, binary_heap::PeekMut};

use super::Late;

/// Piles at most: four times the tracker's partitions, room for the
/// timer-decided stream's few strays beside the 64 evicted streams.
pub(super) const MAX_PILES: usize = 256;

/// A pile keeps room for this many keys (24 bytes each) whatever it holds.
/// Beyond that, a pile that holds less than a quarter of its room is
/// shrunk to twice what it holds, so all piles
/// together take at most 6 MiB plus four times the keys they hold: the
/// keys' share of one pile can grow and move to another without each
/// keeping the room of its largest moment.
const KEEP_CAPACITY: usize = 1 << 10;

type Key = (i64, u64);

pub(super) struct Piles {
    /// By slot; each sorted by key, popped at the front.
    piles: Vec<VecDeque<Late>>,
    /// (tail key, slot) of every non-empty pile, ascending by tail key.
    tails: Vec<(Key, u16)>,
    /// (head key, slot) of every non-empty pile, smallest on top.
    heads: BinaryHeap<Reverse<(Key, u16)>>,
    /// Slots of emptied piles.
    free: Vec<u16>,
    /// Piles at most ([`MAX_PILES`]; tests use fewer).
    max: usize,
}

impl Default for Piles {
    fn default() -> Piles {
        Piles::with_max(MAX_PILES)
    }
}

impl Piles {
    pub(super) fn with_max(max: usize) -> Piles {
        Piles {
            piles: Vec::new(),
            tails: Vec::new(),
            heads: BinaryHeap::new(),
            free: Vec::new(),
            max: max.min(usize::from(u16::MAX) + 1),
        }
    }

    /// Add `l` to a pile; `Err(l)` when it would need a pile more than the
    /// maximum.
    pub(super) fn push(&mut self, l: Late) -> Result<(), Late> {
        let k = l.key();
        // The first pile whose tail is after `k`; the one before it has the
        // latest tail not after `k`, and `k` as its tail is still before
        // the next one's: the tails stay sorted.
        let i = self.tails.partition_point(|(t, _)| *t <= k);
        if let Some((tail, slot)) = i.checked_sub(1).map(|i| &mut self.tails[i]) {
            *tail = k;
            self.piles[usize::from(*slot)].push_back(l);
            return Ok(());
        }
        if self.tails.len() >= self.max {
            return Err(l);
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.piles.push(VecDeque::new());
                (self.piles.len() - 1) as u16
            }
        };
        self.piles[usize::from(slot)].push_back(l);
        // Before every tail: the first.
        self.tails.insert(0, (k, slot));
        self.heads.push(Reverse((k, slot)));
        Ok(())
    }

    /// The smallest key.
    pub(super) fn peek(&self) -> Option<Late> {
        let Reverse((_, slot)) = self.heads.peek()?;
        self.piles[usize::from(*slot)].front().copied()
    }

    /// Take the smallest key; with it, the slab slot of the key that its
    /// pile pops next, to prefetch (with 64 piles taking turns, about 64
    /// pops ahead).
    pub(super) fn pop(&mut self) -> Option<(Late, Option<u32>)> {
        let mut top = self.heads.peek_mut()?;
        let slot = top.0.1;
        let pile = &mut self.piles[usize::from(slot)];
        let l = pile.pop_front().expect("a pile in the heap is not empty");
        if pile.capacity() > KEEP_CAPACITY && pile.len() * 4 < pile.capacity() {
            pile.shrink_to(pile.len() * 2);
        }
        if let Some(next) = pile.front() {
            // Dropping `top` moves the pile down the heap.
            top.0.0 = next.key();
            return Some((l, Some(next.2)));
        }
        PeekMut::pop(top);
        // Its last key was its tail.
        let i = self
            .tails
            .binary_search_by(|(t, _)| t.cmp(&l.key()))
            .expect("an emptied pile's tail is listed");
        self.tails.remove(i);
        self.free.push(slot);
        Some((l, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    impl Piles {
        /// What must hold between any two calls.
        fn check(&self) {
            assert!(self.tails.is_sorted_by(|a, b| a.0 < b.0), "tails sorted");
            assert_eq!(self.heads.len(), self.tails.len());
            assert_eq!(self.piles.len(), self.tails.len() + self.free.len());
            assert!(self.tails.len() <= self.max);
            for &(tail, slot) in &self.tails {
                let pile = &self.piles[usize::from(slot)];
                assert_eq!(pile.back().map(Late::key), Some(tail));
                assert!(pile.iter().is_sorted_by(|a, b| a.key() < b.key()));
                assert!(
                    pile.capacity() <= KEEP_CAPACITY.max(4 * pile.len()),
                    "a pile of {} keeps room for {}",
                    pile.len(),
                    pile.capacity()
                );
            }
            for Reverse((head, slot)) in self.heads.iter() {
                assert_eq!(
                    self.piles[usize::from(*slot)].front().map(Late::key),
                    Some(*head)
                );
            }
            for &slot in &self.free {
                assert!(self.piles[usize::from(slot)].is_empty());
            }
        }
    }

    proptest! {
        /// Alone, with any number of piles (0: none, every key refused) and
        /// keys in any order: the piles and the refused keys pop exactly as
        /// one heap would, and the invariants hold after every step.
        #[test]
        fn piles_pop_like_one_heap(
            ops in prop::collection::vec((-50i64..50, 0usize..3), 0..400),
            max in prop::sample::select(vec![0usize, 1, 2, 3, MAX_PILES]),
        ) {
            let mut p = Piles::with_max(max);
            let mut refused = std::collections::BinaryHeap::new();
            let mut heap = std::collections::BinaryHeap::new();
            for (n, (t, pops)) in ops.into_iter().enumerate() {
                let l = Late(t, n as u64, n as u32);
                heap.push(Reverse(l.key()));
                if let Err(l) = p.push(l) {
                    refused.push(Reverse(l.key()));
                }
                p.check();
                for _ in 0..pops {
                    // The smaller of the piles' head and the refused keys'.
                    let piled = p.peek().map(|l| l.key());
                    let got = match (piled, refused.peek()) {
                        (Some(a), Some(Reverse(b))) if *b < a => refused.pop().map(|r| r.0),
                        (Some(_), _) => p.pop().map(|(l, _)| l.key()),
                        (None, _) => refused.pop().map(|r| r.0),
                    };
                    prop_assert_eq!(got, heap.pop().map(|r| r.0));
                    p.check();
                }
            }
        }
    }

    #[test]
    fn a_pile_gives_its_room_back() {
        let mut p = Piles::with_max(2);
        for n in 0..5000u64 {
            assert!(p.push(Late(n as i64, n, 0)).is_ok());
        }
        assert!(p.piles[0].capacity() >= 5000);
        // Drained to a quarter of its room, a pile shrinks to twice its keys.
        while p.piles[0].len() > 1000 {
            p.pop();
            p.check();
        }
        assert!(p.piles[0].capacity() < 5000);
        while p.pop().is_some() {
            p.check();
        }
        assert!(p.piles[0].capacity() <= KEEP_CAPACITY);
        // The slot is reused.
        assert!(p.push(Late(0, 9000, 0)).is_ok());
        assert_eq!((p.piles.len(), p.tails[0].1), (1, 0));
        assert_eq!(Piles::with_max(70_000).max, 65_536);
    }

    #[test]
    fn interleaved_sorted_streams_take_one_pile_each() {
        let mut p = Piles::with_max(4);
        // Four streams, each sorted, interleaved with different lags.
        let mut keys = Vec::new();
        for i in 0..100i64 {
            for s in 0..4i64 {
                keys.push(i * 10 - s * 7);
            }
        }
        for (n, &t) in keys.iter().enumerate() {
            assert!(p.push(Late(t, n as u64, n as u32)).is_ok(), "key {n}");
        }
        assert_eq!(p.tails.len(), 4);
        // A fifth stream that starts before every tail needs a fifth pile.
        assert!(p.push(Late(-100, 1000, 0)).is_err());
        let mut sorted: Vec<(i64, u64)> = keys
            .iter()
            .enumerate()
            .map(|(n, &t)| (t, n as u64))
            .collect();
        sorted.sort_unstable();
        let popped: Vec<(i64, u64)> =
            std::iter::from_fn(|| p.pop().map(|(l, _)| l.key())).collect();
        assert_eq!(popped, sorted);
        assert!(p.tails.is_empty() && p.heads.is_empty());
        assert_eq!(p.free.len(), 4);
    }
}
