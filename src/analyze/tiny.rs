//! Sets that hold their first element inline.
//!
//! Under a spoofed-source SYN flood most sources hold one failure and are
//! forgotten soon after. With plain sets, each of them allocated five small
//! tables and tree nodes: mimalloc taking fresh pages for them, and the
//! kernel zeroing those, was ~4% of all samples on the 5M flood, and
//! inlining the first element took 34 MB (~170 bytes a source) off its
//! 443 MB peak. A [`Tiny`]
//! keeps one element in place and builds the real set, exactly as an empty
//! one would have been built, at the second. Lengths, membership and
//! iteration are those of the wrapped set; the serialised form is the same
//! sequence, so state files do not change.

use std::collections::{BTreeSet, HashSet};
use std::hash::{BuildHasher, Hash};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The set operations a [`Tiny`] needs from the set it wraps.
pub trait Bag<T>: Default {
    type Iter<'a>: Iterator<Item = &'a T>
    where
        Self: 'a,
        T: 'a;
    fn len(&self) -> usize;
    fn contains(&self, v: &T) -> bool;
    fn insert(&mut self, v: T) -> bool;
    fn clear(&mut self);
    fn iter(&self) -> Self::Iter<'_>;
    /// Empty and owning no memory: holding the next element inline costs
    /// nothing then. (A cleared hash set keeps its table, and a source reset
    /// for reuse keeps using it.)
    fn is_bare(&self) -> bool;
}

impl<T: Hash + Eq, S: BuildHasher + Default> Bag<T> for HashSet<T, S> {
    type Iter<'a>
        = std::collections::hash_set::Iter<'a, T>
    where
        Self: 'a,
        T: 'a;
    fn len(&self) -> usize {
        HashSet::len(self)
    }
    fn contains(&self, v: &T) -> bool {
        HashSet::contains(self, v)
    }
    fn insert(&mut self, v: T) -> bool {
        HashSet::insert(self, v)
    }
    fn clear(&mut self) {
        HashSet::clear(self)
    }
    fn iter(&self) -> Self::Iter<'_> {
        HashSet::iter(self)
    }
    fn is_bare(&self) -> bool {
        self.capacity() == 0
    }
}

impl<T: Ord> Bag<T> for BTreeSet<T> {
    type Iter<'a>
        = std::collections::btree_set::Iter<'a, T>
    where
        Self: 'a,
        T: 'a;
    fn len(&self) -> usize {
        BTreeSet::len(self)
    }
    fn contains(&self, v: &T) -> bool {
        BTreeSet::contains(self, v)
    }
    fn insert(&mut self, v: T) -> bool {
        BTreeSet::insert(self, v)
    }
    fn clear(&mut self) {
        BTreeSet::clear(self)
    }
    fn iter(&self) -> Self::Iter<'_> {
        BTreeSet::iter(self)
    }
    fn is_bare(&self) -> bool {
        // An empty tree owns no node.
        self.is_empty()
    }
}

/// A set `C` of `T` whose single element, while it has only one, is held
/// inline.
#[derive(Clone, Debug)]
pub enum Tiny<T, C> {
    One(T),
    Many(C),
}

impl<T, C: Default> Default for Tiny<T, C> {
    fn default() -> Self {
        Tiny::Many(C::default())
    }
}

impl<T: Copy + Eq, C: Bag<T>> Tiny<T, C> {
    pub fn len(&self) -> usize {
        match self {
            Tiny::One(_) => 1,
            Tiny::Many(c) => c.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, v: &T) -> bool {
        match self {
            Tiny::One(x) => x == v,
            Tiny::Many(c) => c.contains(v),
        }
    }

    /// Add `v`; whether it was new.
    pub fn insert(&mut self, v: T) -> bool {
        match self {
            Tiny::One(x) if *x == v => false,
            Tiny::One(x) => {
                // The set an empty one would have become with these two.
                let mut c = C::default();
                c.insert(*x);
                c.insert(v);
                *self = Tiny::Many(c);
                true
            }
            Tiny::Many(c) if c.is_bare() => {
                *self = Tiny::One(v);
                true
            }
            Tiny::Many(c) => c.insert(v),
        }
    }

    /// Empty it, keeping the wrapped set's memory for reuse.
    pub fn clear(&mut self) {
        match self {
            Tiny::One(_) => *self = Tiny::default(),
            Tiny::Many(c) => c.clear(),
        }
    }

    /// The elements, in the wrapped set's order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        let (one, many) = match self {
            Tiny::One(x) => (Some(x), None),
            Tiny::Many(c) => (None, Some(c.iter())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }
}

impl<T: Copy + Eq + Serialize, C: Bag<T>> Serialize for Tiny<T, C> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de, T: Copy + Eq + Deserialize<'de>, C: Bag<T>> Deserialize<'de> for Tiny<T, C> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut t = Tiny::default();
        for v in Vec::<T>::deserialize(d)? {
            t.insert(v);
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type H = HashSet<u16, crate::analyze::source::Seeded<9>>;

    proptest! {
        /// Whatever is inserted, cleared and inserted again, a `Tiny` answers
        /// as the set it wraps would, and iterates in its order.
        #[test]
        fn answers_as_the_set_it_wraps(ops in proptest::collection::vec((0u16..12, 0u8..8), 0..60)) {
            let mut t: Tiny<u16, H> = Tiny::default();
            let mut h = H::default();
            let mut tb: Tiny<u16, BTreeSet<u16>> = Tiny::default();
            let mut b = BTreeSet::new();
            for (v, op) in ops {
                if op == 0 {
                    t.clear();
                    h.clear();
                    tb.clear();
                    b.clear();
                } else {
                    prop_assert_eq!(t.insert(v), h.insert(v));
                    prop_assert_eq!(tb.insert(v), b.insert(v));
                }
                prop_assert_eq!(t.len(), h.len());
                prop_assert_eq!(t.contains(&v), h.contains(&v));
                prop_assert_eq!(tb.iter().collect::<Vec<_>>(), b.iter().collect::<Vec<_>>());
                let mut seen: Vec<u16> = t.iter().copied().collect();
                seen.sort_unstable();
                let mut want: Vec<u16> = h.iter().copied().collect();
                want.sort_unstable();
                prop_assert_eq!(seen, want);
            }
        }
    }

    #[test]
    fn one_element_owns_no_memory_and_serialises_as_a_sequence() {
        let mut t: Tiny<u16, H> = Tiny::default();
        t.insert(445);
        assert!(matches!(t, Tiny::One(445)));
        assert_eq!(serde_json::to_string(&t).unwrap(), "[445]");
        t.insert(22);
        assert!(matches!(&t, Tiny::Many(c) if c.len() == 2));
        let back: Tiny<u16, BTreeSet<u16>> =
            serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back.iter().copied().collect::<Vec<_>>(), vec![22, 445]);
        // Cleared, the table is kept and reused rather than inlining again.
        t.clear();
        assert!(matches!(&t, Tiny::Many(c) if c.capacity() > 0));
        t.insert(80);
        assert!(matches!(&t, Tiny::Many(c) if c.len() == 1));
    }
}
