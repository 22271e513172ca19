//! The per-source table: address → boxed [`Source`], with a prefetch.
//!
//! A map like `std`'s, over hashbrown's `HashTable` so that the analytics
//! can start loading an entry's control bytes and bucket before it looks
//! the address up. Under a spoofed-source flood every failure creates a
//! source and evicts the oldest; the evicted sources are known a few queue
//! places ahead, and without the prefetch each eviction waited for two
//! misses in the table (and a third for the source itself, see
//! `Analytics::source_queue`).

use hashbrown::HashTable;

use super::Source;
use crate::decode::Addr;

pub(crate) struct Sources {
    t: HashTable<(Addr, Box<Source>)>,
    /// ahash with fixed seeds, as the `HashMap` before it: iteration order
    /// reaches no output, but a fixed one keeps runs comparable.
    hasher: ahash::RandomState,
    /// Where the table's buckets end (an address, 0 before the first
    /// insertion), for [`Sources::prefetch`]; taken from the entry each
    /// insertion returns, since only an insertion can move the table.
    end: usize,
}

impl Default for Sources {
    fn default() -> Sources {
        Sources {
            t: HashTable::new(),
            hasher: ahash::RandomState::with_seeds(5, 6, 7, 8),
            end: 0,
        }
    }
}

impl Sources {
    fn hash(&self, a: &Addr) -> u64 {
        self.hasher.hash_one(a)
    }

    pub(crate) fn len(&self) -> usize {
        self.t.len()
    }

    pub(crate) fn contains_key(&self, a: &Addr) -> bool {
        self.get(a).is_some()
    }

    pub(crate) fn get(&self, a: &Addr) -> Option<&Source> {
        self.t.find(self.hash(a), |e| e.0 == *a).map(|e| &*e.1)
    }

    pub(crate) fn get_mut(&mut self, a: &Addr) -> Option<&mut Source> {
        let h = self.hash(a);
        self.t.find_mut(h, |e| e.0 == *a).map(|e| &mut *e.1)
    }

    /// Add or replace `a`'s source; the one replaced.
    pub(crate) fn insert(&mut self, a: Addr, s: Box<Source>) -> Option<Box<Source>> {
        let h = self.hash(&a);
        if let Some(old) = self.t.find_mut(h, |e| e.0 == a) {
            return Some(std::mem::replace(&mut old.1, s));
        }
        self.insert_unique(h, a, s);
        None
    }

    /// Add the source of `a`, which has none (the caller just looked), and
    /// return it: one probe of the table instead of three.
    pub(crate) fn insert_new(&mut self, a: Addr, s: Box<Source>) -> &mut Source {
        debug_assert!(!self.contains_key(&a));
        let h = self.hash(&a);
        self.insert_unique(h, a, s)
    }

    fn insert_unique(&mut self, h: u64, a: Addr, s: Box<Source>) -> &mut Source {
        let hasher = &self.hasher;
        let e = self.t.insert_unique(h, (a, s), |e| hasher.hash_one(e.0));
        // hashbrown lays bucket i out at `end - (i + 1) * size`, its control
        // bytes from `end` on.
        self.end = (e.get() as *const (Addr, Box<Source>) as usize)
            .wrapping_add((e.bucket_index() + 1) * std::mem::size_of::<(Addr, Box<Source>)>());
        &mut e.into_mut().1
    }

    pub(crate) fn remove(&mut self, a: &Addr) -> Option<Box<Source>> {
        let e = self.t.find_entry(self.hash(a), |e| e.0 == *a).ok()?;
        Some(e.remove().0.1)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Addr, &Source)> {
        self.t.iter().map(|(a, s)| (a, &**s))
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&Addr, &mut Source)> {
        self.t.iter_mut().map(|(a, s)| (&*a, &mut **s))
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &Source> {
        self.t.iter().map(|(_, s)| &**s)
    }

    /// Start loading the control bytes where a lookup of `a` starts and the
    /// buckets of the probe's first slots (see the tracker's
    /// `PREFETCH_SLOTS`: in a full table many entries sit a few past their
    /// home; prefetching the home bucket alone left the analytics 8–13%
    /// slower on the 5M flood with every source judged). Computed from
    /// hashbrown's layout, which it does not promise: a wrong guess only
    /// wastes the prefetch.
    #[inline]
    pub(crate) fn prefetch(&self, a: &Addr) {
        if let Some((ctrl, bucket)) = self.home(a) {
            crate::track::prefetch_span(ctrl, 1);
            // The first slots of the probe (buckets go down in memory as
            // their index goes up): an entry is often a few past its home.
            let size = std::mem::size_of::<(Addr, Box<Source>)>();
            let slots = crate::track::PREFETCH_SLOTS;
            crate::track::prefetch_span(bucket.wrapping_sub((slots - 1) * size), slots * size);
        }
    }

    /// The addresses of the control byte and the bucket where a probe for
    /// `a` starts.
    #[inline]
    fn home(&self, a: &Addr) -> Option<(usize, usize)> {
        let buckets = self.t.num_buckets();
        if self.end == 0 || buckets == 0 {
            return None;
        }
        let i = (self.hash(a) as usize) & (buckets - 1);
        let size = std::mem::size_of::<(Addr, Box<Source>)>();
        Some((
            self.end.wrapping_add(i),
            self.end.wrapping_sub((i + 1) * size),
        ))
    }
}

impl std::ops::Index<&Addr> for Sources {
    type Output = Source;
    fn index(&self, a: &Addr) -> &Source {
        self.get(a).expect("source exists")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As in the tracker's table (`the_prefetch_looks_where_hashbrown_keeps_
    /// entries`): bucket i at `end - (i + 1) * size`, entries of a roomy
    /// table in their home buckets.
    #[test]
    fn the_prefetch_looks_where_hashbrown_keeps_sources() {
        let size = std::mem::size_of::<(Addr, Box<Source>)>();
        let mut t = Sources::default();
        t.t.reserve(1 << 12, |e| t.hasher.hash_one(e.0));
        for x in 0..8u8 {
            let a = Addr::v4([10, 1, x, 7]);
            assert!(t.insert(a, Box::new(Source::new(0))).is_none());
            let at = t.t.find(t.hash(&a), |e| e.0 == a).expect("inserted") as *const _;
            assert_eq!(t.home(&a).map(|h| h.1), Some(at as usize));
        }
        // Grown from nothing: `end` follows every move of the table.
        let mut t = Sources::default();
        for x in 0..200u8 {
            let a = Addr::v4([10, 1, x, 7]);
            assert!(t.insert(a, Box::new(Source::new(0))).is_none());
            for b in t.t.iter_buckets() {
                let at = t.t.get_bucket(b).expect("occupied") as *const _ as usize;
                assert_eq!(at, t.end.wrapping_sub((b + 1) * size));
            }
        }
        assert_eq!(t.len(), 200);
        for x in 0..200u8 {
            let a = Addr::v4([10, 1, x, 7]);
            assert!(t.contains_key(&a));
            assert!(t.remove(&a).is_some());
            assert!(t.get(&a).is_none());
        }
    }
}
