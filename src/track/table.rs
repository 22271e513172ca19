//! A partition's attempt table: IPv4 attempts packed into 32 bytes, the rest
//! (IPv6, and what does not fit) whole.
//!
//! A flood fills the table with IPv4 SYNs, and the bytes of an entry decide
//! both the table's memory at its cap and how many entries a cache line
//! holds. An [`Attempt`] takes 80 bytes, mostly for two 16-byte addresses;
//! [`Packed4`] keeps the same facts in 32, so that at the cap (3/4 of the
//! buckets used, one control byte each) an IPv4 attempt costs 44 bytes
//! instead of 108. Its two timestamps count from the table's
//! [`base`](Attempts::base) (microseconds, and nanoseconds past them), which
//! the tracker moves on as event time goes (see [`Attempts::rebase`]); an
//! attempt whose times lie before the base or 71 minutes or more after it,
//! or that has two VLAN tags, is kept whole (so are attempts, some from
//! ~36 minutes and all from ~54, when `tracker.reorder_tolerance` is set
//! that long: the base stays that much more behind the packets). The tracker sees only
//! [`Attempt`]s: packing is this module's business.

use allocator_api2::alloc::Allocator;
use hashbrown::HashTable;

use super::hash::flow_hash_v4;
use super::huge::TableAlloc;
use super::{Attempt, Probe, State, prefetch_addr};
use crate::decode::{Addr, FlowKey, Proto};

/// Slots of a probe, from its home bucket on, that [`Attempts::prefetch`]
/// loads. A full table (3/4 of its buckets used, churned as a flood churns
/// it) keeps ~96% of its entries within six slots of home, 82% within two
/// (`the_prefetch_covers_where_a_full_table_keeps_entries`); prefetching
/// only the first two slots left the other 18% to miss: 9% of the tracker's
/// time on the 5M flood.
pub(crate) const PREFETCH_SLOTS: usize = 6;

/// Retransmissions an attempt counts at most (what [`Packed4`] can hold):
/// real stacks resend a SYN a handful of times, so only a sender repeating
/// one probe 65,535 times within its timeout sees the count stop.
pub(super) const RETRANS_MAX: u32 = u16::MAX as u32;

/// An attempt between two IPv4 addresses, with at most one VLAN tag. The
/// flow hash is not stored (it is recomputed from the key when a rebuild
/// moves the entry or a lookup by hash alone checks a candidate); each
/// timestamp is microseconds after the table's base plus the nanoseconds
/// past that microsecond, which share a word with the VLAN id.
#[derive(Clone, Copy, Debug)]
pub(super) struct Packed4 {
    first_us: u32,
    last_us: u32,
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    isn: u32,
    /// vlan[0] in bits 0–11, first_ts's nanoseconds (0–999) in 12–21,
    /// last_ts's in 22–31.
    bits: u32,
    retrans: u16,
    /// The IP protocol number (0 with the ARP bit for ARP).
    proto: u8,
    /// state in bits 0–1, probe 2–5, initiator_reset 6, ARP 7.
    flags: u8,
}

pub(super) const STATES: [State; 4] = [
    State::SynPending,
    State::StealthPending,
    State::ArpPending,
    State::Reported,
];

pub(super) const PROBES: [Probe; 10] = [
    Probe::Syn,
    Probe::Fin,
    Probe::Null,
    Probe::Xmas,
    Probe::OtherFlags,
    Probe::Ack,
    Probe::Udp,
    Probe::Icmp,
    Probe::IpProto,
    Probe::Arp,
];

fn v4_of(a: &Addr) -> Option<[u8; 4]> {
    a.is_v4().then(|| [a.0[12], a.0[13], a.0[14], a.0[15]])
}

/// `ts` as (microseconds, nanoseconds past them) after `base`, when it is
/// not before it and less than 2^32 microseconds (71 minutes) after it.
#[inline]
fn micros_after(ts: i64, base: i64) -> Option<(u32, u32)> {
    let d = ts.checked_sub(base)?;
    if d < 0 {
        return None;
    }
    Some((u32::try_from(d / 1000).ok()?, (d % 1000) as u32))
}

/// The time `us` microseconds and `ns` nanoseconds after `base` (which
/// [`micros_after`] gave: no overflow).
#[inline]
fn at_micros(us: u32, ns: u32, base: i64) -> i64 {
    base + i64::from(us) * 1000 + i64::from(ns)
}

impl Packed4 {
    /// `a` packed, when it fits: both addresses IPv4, one VLAN tag of 12
    /// bits at most (802.1ad's inner tag keeps the attempt whole), a
    /// protocol its number gives back (`Proto::Ip(6)` would come back as
    /// `Proto::Tcp`; the decoder never makes one, but the check is cheap),
    /// both timestamps within 2^32 microseconds after `base`.
    #[inline]
    fn pack(a: &Attempt, base: i64) -> Option<Packed4> {
        let (src, dst) = (v4_of(&a.key.src)?, v4_of(&a.key.dst)?);
        let (first_us, first_ns) = micros_after(a.first_ts, base)?;
        let (last_us, last_ns) = micros_after(a.last_ts, base)?;
        let arp = a.key.proto == Proto::Arp;
        let proto = a.key.proto.number();
        if !arp && Proto::from_ip_number(proto) != a.key.proto {
            return None;
        }
        if a.vlan[0] > 0x0fff || a.vlan[1] != 0 {
            return None;
        }
        let state = STATES.iter().position(|&s| s == a.state)? as u8;
        let probe = PROBES.iter().position(|&p| p == a.probe)? as u8;
        Some(Packed4 {
            first_us,
            last_us,
            src,
            dst,
            sport: a.key.sport,
            dport: a.key.dport,
            isn: a.isn,
            bits: u32::from(a.vlan[0]) | first_ns << 12 | last_ns << 22,
            retrans: a.retrans.min(RETRANS_MAX) as u16,
            proto,
            flags: state | probe << 2 | u8::from(a.initiator_reset) << 6 | u8::from(arp) << 7,
        })
    }

    fn first_ns(&self) -> u32 {
        self.bits >> 12 & 0x3ff
    }

    fn last_ns(&self) -> u32 {
        self.bits >> 22
    }

    /// The timestamps again, counted from `base` instead of `old` (false,
    /// and nothing changed, when they do not fit).
    fn recount(&mut self, old: i64, base: i64) -> bool {
        let shift = |us: u32, ns: u32| {
            let d = i128::from(old) + i128::from(us) * 1000 + i128::from(ns) - i128::from(base);
            if d < 0 {
                return None;
            }
            Some((u32::try_from(d / 1000).ok()?, (d % 1000) as u32))
        };
        let (Some((fu, fns)), Some((lu, lns))) = (
            shift(self.first_us, self.first_ns()),
            shift(self.last_us, self.last_ns()),
        ) else {
            return false;
        };
        self.first_us = fu;
        self.last_us = lu;
        self.bits = self.bits & 0x0fff | fns << 12 | lns << 22;
        true
    }

    fn proto(&self) -> Proto {
        if self.flags >> 7 != 0 {
            Proto::Arp
        } else {
            Proto::from_ip_number(self.proto)
        }
    }

    fn key(&self) -> FlowKey {
        FlowKey {
            src: Addr::v4(self.src),
            dst: Addr::v4(self.dst),
            sport: self.sport,
            dport: self.dport,
            proto: self.proto(),
        }
    }

    /// [`flow_hash`](super::flow_hash) of the key, without building it.
    fn hash(&self) -> u64 {
        let arp = self.flags >> 7 != 0;
        flow_hash_v4(self.src, self.dst, self.sport, self.dport, self.proto, arp)
    }

    /// The attempt, whose flow hash is `hash` (the caller's lookup knew it).
    fn unpack(&self, base: i64, hash: u64) -> Attempt {
        debug_assert_eq!(hash, self.hash());
        Attempt {
            key: self.key(),
            hash,
            first_ts: at_micros(self.first_us, self.first_ns(), base),
            last_ts: at_micros(self.last_us, self.last_ns(), base),
            isn: self.isn,
            retrans: u32::from(self.retrans),
            vlan: [(self.bits & 0x0fff) as u16, 0],
            state: STATES[usize::from(self.flags & 3)],
            probe: PROBES[usize::from(self.flags >> 2 & 0xf)],
            initiator_reset: self.flags >> 6 & 1 != 0,
        }
    }

    fn is(&self, key: &FlowKey) -> bool {
        v4_of(&key.src) == Some(self.src)
            && v4_of(&key.dst) == Some(self.dst)
            && self.sport == key.sport
            && self.dport == key.dport
            && self.proto() == key.proto
    }
}

/// The attempts of one partition. Every key is in one table only: the
/// packed one when [`Packed4::pack`] took it when it came, and as long as
/// each update and [`rebase`](Attempts::rebase) keeps it packable.
pub(super) struct Attempts {
    /// In the shard's arena of huge pages once large ([`TableAlloc`]).
    v4: HashTable<Packed4, TableAlloc>,
    other: HashTable<Attempt>,
    /// The time `v4`'s timestamps count from (a whole microsecond);
    /// [`NO_BASE`] until the first insertion sets it.
    base: i64,
    /// Where `v4`'s buckets end and its control bytes begin (an address, 0
    /// before the first insertion), for [`Attempts::prefetch`]. Taken from
    /// the entry each insertion returns: only an insertion can move the
    /// table (see [`insert_bounded`]).
    v4_end: usize,
}

/// [`Attempts::base`] before anything was inserted.
pub(super) const NO_BASE: i64 = i64::MIN;

impl Default for Attempts {
    fn default() -> Attempts {
        Attempts::new(TableAlloc::default())
    }
}

/// Insert into a table that never outgrows `room`: hashbrown would double a
/// table more than half full even when what used its growth up is deleted
/// slots (attempts answered or evicted): under a flood, with the partition
/// at its cap, that doubles the memory for nothing. A table with no growth
/// left is rebuilt at the size the cap needs instead (one partition's table
/// at a time: 1/64 of the memory). Returns whether it was rebuilt, and
/// where the table's buckets end (see [`Attempts::prefetch`]).
fn insert_bounded<T, A: Allocator + Clone>(
    t: &mut HashTable<T, A>,
    hash: u64,
    x: T,
    room: usize,
    rehash: impl Fn(&T) -> u64,
) -> (bool, usize) {
    let rebuilt = t.len() == t.capacity();
    if rebuilt {
        let len = t.len();
        let want = (2 * (len + 1)).min(room).max(len + 1);
        let mut fresh = HashTable::with_capacity_in(want, t.allocator().clone());
        for y in t.drain() {
            fresh.insert_unique(rehash(&y), y, &rehash);
        }
        *t = fresh;
    }
    let e = t.insert_unique(hash, x, rehash);
    // hashbrown lays bucket i out at `end - (i + 1) * size`, its control
    // bytes from `end` on.
    let end = (e.get() as *const T as usize)
        .wrapping_add((e.bucket_index() + 1) * std::mem::size_of::<T>());
    (rebuilt, end)
}

impl Attempts {
    /// An empty table whose packed entries `alloc` keeps.
    pub(super) fn new(alloc: TableAlloc) -> Attempts {
        Attempts {
            v4: HashTable::new_in(alloc),
            other: HashTable::new(),
            base: NO_BASE,
            v4_end: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.v4.len() + self.other.len()
    }

    /// The entry for `key` (whose flow hash is `hash`).
    pub(super) fn get(&self, hash: u64, key: &FlowKey) -> Option<Attempt> {
        if is_v4_key(key)
            && let Some(p) = self.v4.find(hash, |p| p.is(key))
        {
            return Some(p.unpack(self.base, hash));
        }
        if self.other.is_empty() {
            return None;
        }
        self.other.find(hash, |a| a.key == *key).copied()
    }

    /// The entry whose flow hash is `hash` (timers and ACK/data segments know
    /// only the hash; 64 bits tell a partition's entries apart).
    pub(super) fn get_by_hash(&self, hash: u64) -> Option<Attempt> {
        if let Some(p) = self.v4.find(hash, |p| p.hash() == hash) {
            return Some(p.unpack(self.base, hash));
        }
        if self.other.is_empty() {
            return None;
        }
        self.other.find(hash, |a| a.hash == hash).copied()
    }

    /// Remove the entry for `key` and hand it back.
    pub(super) fn take(&mut self, hash: u64, key: &FlowKey) -> Option<Attempt> {
        if is_v4_key(key)
            && let Ok(e) = self.v4.find_entry(hash, |p| p.is(key))
        {
            return Some(e.remove().0.unpack(self.base, hash));
        }
        if self.other.is_empty() {
            return None;
        }
        let e = self.other.find_entry(hash, |a| a.key == *key).ok()?;
        Some(e.remove().0)
    }

    /// The flow hashes of all entries.
    #[cfg(test)]
    pub(super) fn hashes(&self) -> Vec<u64> {
        let v4 = self.v4.iter().map(Packed4::hash);
        v4.chain(self.other.iter().map(|a| a.hash)).collect()
    }

    /// Whether an entry has flow hash `hash`.
    pub(super) fn has_hash(&self, hash: u64) -> bool {
        self.v4.find(hash, |p| p.hash() == hash).is_some()
            || (!self.other.is_empty() && self.other.find(hash, |a| a.hash == hash).is_some())
    }

    /// Remove the entry whose flow hash is `hash` and hand it back.
    pub(super) fn take_by_hash(&mut self, hash: u64) -> Option<Attempt> {
        if let Ok(e) = self.v4.find_entry(hash, |p| p.hash() == hash) {
            return Some(e.remove().0.unpack(self.base, hash));
        }
        if self.other.is_empty() {
            return None;
        }
        let e = self.other.find_entry(hash, |a| a.hash == hash).ok()?;
        Some(e.remove().0)
    }

    /// Overwrite the entry with `a`'s key; false when there is none. A
    /// packed entry that `a` no longer fits (a timestamp beyond the base's
    /// reach) moves to the other table, within `room`.
    pub(super) fn replace(&mut self, a: &Attempt, room: usize) -> bool {
        if is_v4_key(&a.key)
            && let Ok(mut e) = self.v4.find_entry(a.hash, |p| p.is(&a.key))
        {
            match Packed4::pack(a, self.base) {
                Some(p) => *e.get_mut() = p,
                None => {
                    e.remove();
                    insert_bounded(&mut self.other, a.hash, *a, room, |x| x.hash);
                }
            }
            return true;
        }
        if self.other.is_empty() {
            return false;
        }
        match self.other.find_mut(a.hash, |x| x.key == a.key) {
            Some(x) => {
                *x = *a;
                true
            }
            None => false,
        }
    }

    /// Add `a`, whose key is not in the table; no table grows past `room`
    /// entries' worth of buckets. Returns whether a table was rebuilt.
    pub(super) fn insert_new(&mut self, a: Attempt, room: usize) -> bool {
        match Packed4::pack(&a, self.base) {
            Some(p) => {
                let (rebuilt, end) = insert_bounded(&mut self.v4, a.hash, p, room, Packed4::hash);
                self.v4_end = end;
                rebuilt
            }
            None => insert_bounded(&mut self.other, a.hash, a, room, |x| x.hash).0,
        }
    }

    /// Start loading what a lookup of `hash` in the packed table touches
    /// first: the control bytes where its probe starts, and the buckets of
    /// the first [`PREFETCH_SLOTS`] slots of the probe. Under a flood every
    /// lookup misses the cache twice; started a few packets or timers
    /// ahead, the misses overlap. Computed from hashbrown's layout, which
    /// it does not promise: a wrong guess only wastes the prefetch.
    #[inline]
    pub(super) fn prefetch(&self, hash: u64) {
        if let Some((ctrl, bucket)) = self.home(hash) {
            prefetch_addr(ctrl as *const u8);
            // Buckets go down in memory as their index goes up; two share a
            // line, so slots 0, 1, 3, 5… reach every line of the first ones.
            for k in std::iter::once(0).chain((1..PREFETCH_SLOTS).step_by(2)) {
                prefetch_addr(bucket.wrapping_sub(k * std::mem::size_of::<Packed4>()) as *const u8);
            }
        }
    }

    /// The addresses of the control byte and the bucket where a probe for
    /// `hash` in the packed table starts.
    #[inline]
    fn home(&self, hash: u64) -> Option<(usize, usize)> {
        let buckets = self.v4.num_buckets();
        if self.v4_end == 0 || buckets == 0 {
            return None;
        }
        let i = (hash as usize) & (buckets - 1);
        let bucket = self
            .v4_end
            .wrapping_sub((i + 1) * std::mem::size_of::<Packed4>());
        Some((self.v4_end.wrapping_add(i), bucket))
    }

    /// Every entry, in no particular order (the caller sorts what it emits).
    pub(super) fn into_attempts(self) -> impl Iterator<Item = Attempt> {
        let base = self.base;
        let v4 = self.v4.into_iter().map(move |p| p.unpack(base, p.hash()));
        v4.chain(self.other)
    }

    /// The time the packed entries' timestamps count from ([`NO_BASE`]
    /// before it is set).
    pub(super) fn base(&self) -> i64 {
        self.base
    }

    /// Count the packed entries' timestamps from `base` from now on: those
    /// before it, or 2^32 microseconds or more after it, move to the other
    /// table, within `room`.
    /// Nothing an entry says changes. O(entries): the tracker calls it
    /// when event time has gone half the packed range past the base, about
    /// once every 18 minutes of event time.
    pub(super) fn rebase(&mut self, base: i64, room: usize) {
        let old = self.base;
        // An entry that fits is recounted in place and stays; one that does
        // not is left as it was (counted from `old`) and taken out.
        let moved: Vec<Packed4> = self.v4.extract_if(|p| !p.recount(old, base)).collect();
        for p in moved {
            let a = p.unpack(old, p.hash());
            insert_bounded(&mut self.other, a.hash, a, room, |x| x.hash);
        }
        self.base = base;
    }
}

/// The bytes of a packed table with buckets for `room` entries, as
/// hashbrown lays it out: a power of two of buckets at 7/8 load at most,
/// each with a control byte, plus a group's worth of control bytes. For
/// sizing [`TableAlloc`]'s arena, so an estimate: a wrong one only sends
/// tables to the global allocator sooner, or leaves some of the arena unused.
/// `None` when that does not fit in a `usize` (a cap of ~10^17 and more).
pub(super) fn packed_table_bytes(room: usize) -> Option<usize> {
    let buckets = match room {
        0..4 => 4,
        4..8 => 8,
        _ => room
            .checked_mul(8)?
            .div_ceil(7)
            .checked_next_power_of_two()?,
    };
    buckets
        .checked_mul(std::mem::size_of::<Packed4>() + 1)?
        .checked_add(16)
}

/// Whether `key` can be in the packed table (its addresses are IPv4; the
/// rest of [`Packed4::pack`]'s conditions are checked by finding it there).
fn is_v4_key(key: &FlowKey) -> bool {
    key.src.is_v4() && key.dst.is_v4()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::track::flow_hash;
    use proptest::prelude::*;

    fn attempt(
        src: [u8; 16],
        dst: [u8; 16],
        ports: (u16, u16),
        proto: Proto,
        ts: (i64, i64),
        rest: (u32, u32, [u16; 2], usize, usize, bool),
    ) -> Attempt {
        let key = FlowKey {
            src: Addr(src),
            dst: Addr(dst),
            sport: ports.0,
            dport: ports.1,
            proto,
        };
        let (isn, retrans, vlan, state, probe, reset) = rest;
        Attempt {
            key,
            hash: flow_hash(&key),
            first_ts: ts.0,
            last_ts: ts.1,
            isn,
            retrans,
            vlan,
            state: STATES[state],
            probe: PROBES[probe],
            initiator_reset: reset,
        }
    }

    fn addr(v4: bool, b: [u8; 16]) -> [u8; 16] {
        if v4 {
            Addr::v4([b[0], b[1], b[2], b[3]]).0
        } else {
            b
        }
    }

    /// The prefetch relies on hashbrown's layout, which it does not
    /// promise: bucket i at `end - (i + 1) * size`, a probe for `hash`
    /// starting at bucket `hash & (buckets - 1)`. If a new hashbrown lays
    /// tables out otherwise, this fails (the tracker would still be right,
    /// only slower under a flood). The control bytes' address (`end + i`)
    /// is not checked: that would take reading hashbrown's internals.
    #[test]
    fn the_prefetch_looks_where_hashbrown_keeps_entries() {
        let rest = (1, 0, [0, 0], 0, 0, false);
        let v4 = |x| Addr::v4([10, 0, 0, x]).0;
        let size = std::mem::size_of::<Packed4>();
        // A roomy table: entries sit in their home buckets.
        let mut t = Attempts {
            v4: HashTable::with_capacity_in(1 << 12, TableAlloc::default()),
            base: 0,
            ..Attempts::default()
        };
        for x in 1..=8u8 {
            let a = attempt(v4(x), v4(200), (1, 2), Proto::Tcp, (5000, 5000), rest);
            t.insert_new(a, 1 << 13);
            let at = t.v4.find(a.hash, |p| p.is(&a.key)).expect("inserted") as *const _;
            assert_eq!(t.home(a.hash).map(|h| h.1), Some(at as usize));
        }
        // A table grown and rebuilt as the tracker grows it: every entry
        // where its bucket index says.
        let mut t = Attempts::default();
        t.rebase(0, 1 << 12);
        for x in 1..=200u8 {
            let a = attempt(v4(x), v4(201), (1, 2), Proto::Tcp, (5000, 5000), rest);
            t.insert_new(a, 1 << 12);
            for b in t.v4.iter_buckets() {
                let at = t.v4.get_bucket(b).expect("occupied") as *const _ as usize;
                assert_eq!(at, t.v4_end.wrapping_sub((b + 1) * size));
            }
        }
    }

    /// Under a flood every new SYN evicts a partition's oldest attempt, and
    /// the table stays at its cap (3/4 of its buckets) while entries come
    /// and go in every bucket. Entries then sit past their home bucket more
    /// often than in a roomy table; [`PREFETCH_SLOTS`] must still cover
    /// nearly all of them, or evictions and answers miss the cache again.
    #[test]
    fn the_prefetch_covers_where_a_full_table_keeps_entries() {
        // The default cap, and the room the tracker gives a partition.
        let cap = crate::track::TrackConfig::default()
            .max_pending
            .div_ceil(crate::track::PARTITIONS);
        let room = cap + cap.div_ceil(6);
        let mut t = Attempts::default();
        t.rebase(0, room);
        let mut fifo = std::collections::VecDeque::new();
        let (mut x, mut near, mut all) = (0x9e37_79b9_7f4a_7c15_u64, 0, 0);
        for n in 0..20 * cap {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let [a, b, c, d, e, f, g, h] = x.to_le_bytes();
            let rest = (1, 0, [0, 0], 0, 0, false);
            let (src, dst) = (Addr::v4([a, b, c, d]).0, Addr::v4([e, f, g, h]).0);
            let new = attempt(src, dst, (1, 80), Proto::Tcp, (5000, 5000), rest);
            if t.len() == cap {
                let old: u64 = fifo.pop_front().expect("a full table");
                // Once the first cap's worth has been churned out.
                if n >= 2 * cap {
                    let (_, home) = t.home(old).expect("a packed table");
                    let at = t.v4.find(old, |p| p.hash() == old).expect("held") as *const _;
                    let slots = home.wrapping_sub(at as usize) / std::mem::size_of::<Packed4>();
                    near += usize::from(slots % t.v4.num_buckets() < PREFETCH_SLOTS);
                    all += 1;
                }
                t.take_by_hash(old).expect("held");
            }
            t.insert_new(new, room);
            fifo.push_back(new.hash);
        }
        assert_eq!(t.len(), cap);
        let share = near as f64 / all as f64;
        assert!(
            share > 0.93,
            "{near} of {all} entries within {PREFETCH_SLOTS} slots"
        );
    }

    #[test]
    fn a_packed_attempt_is_32_bytes() {
        assert_eq!(std::mem::size_of::<Packed4>(), 32);
    }

    /// A timestamp: anything, or a whole number of microseconds after `base`
    /// (within what a packed entry holds, or just beyond).
    fn ts_near(base: i64) -> impl Strategy<Value = i64> {
        prop_oneof![
            any::<i64>(),
            (0u64..=(1 << 32) + 2).prop_map(move |us| base.saturating_add(us as i64 * 1000)),
            (-5i64..5).prop_map(move |ns| base.saturating_add(ns)),
        ]
    }

    proptest! {
        /// Whatever goes in comes back out unchanged, through the packed
        /// table or the other: every field, any protocol, state and probe,
        /// IPv4 or IPv6 on either side, VLAN ids and retransmission counts
        /// up to what the tracker makes.
        #[test]
        fn attempts_come_back_as_they_went_in(
            v4 in any::<(bool, bool)>(),
            src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(),
            ports in any::<(u16, u16)>(),
            proto in prop::sample::select(vec![
                Proto::Tcp, Proto::Udp, Proto::Icmp, Proto::Icmpv6, Proto::Arp,
                Proto::Ip(0), Proto::Ip(132), Proto::Ip(255), Proto::Ip(6),
            ]),
            (base, ts) in any::<i64>().prop_flat_map(|b| (Just(b), (ts_near(b), ts_near(b)))),
            (rebase, later) in (any::<i64>(), ts_near(0)),
            isn in any::<u32>(), retrans in 0..=RETRANS_MAX,
            vlan in any::<[u16; 2]>().prop_map(|v| v.map(|x| x & 0x0fff)),
            state in 0usize..4, probe in 0usize..10, reset in any::<bool>(),
        ) {
            let a = attempt(
                addr(v4.0, src), addr(v4.1, dst), ports, proto, ts,
                (isn, retrans, vlan, state, probe, reset),
            );
            let mut t = Attempts::default();
            t.rebase(base, 16);
            t.insert_new(a, 16);
            prop_assert_eq!(t.len(), 1);
            prop_assert_eq!(t.get(a.hash, &a.key), Some(a));
            prop_assert_eq!(t.get_by_hash(a.hash), Some(a));
            let mut b = a;
            b.retrans = retrans / 2;
            b.state = State::Reported;
            // A later time that may no longer fit the packed entry.
            b.last_ts = later;
            prop_assert!(t.replace(&b, 16));
            prop_assert_eq!(t.len(), 1);
            prop_assert_eq!(t.get(a.hash, &a.key), Some(b));
            // A new base (close to the old one, or anything): the entry
            // stays or moves, unchanged.
            let rebase = if rebase % 2 == 0 { base.saturating_add(rebase % 4_000_000_000_000) } else { rebase };
            t.rebase(rebase, 16);
            prop_assert_eq!(t.len(), 1);
            prop_assert_eq!(t.get(a.hash, &a.key), Some(b));
            prop_assert_eq!(t.get_by_hash(a.hash), Some(b));
            prop_assert_eq!(t.take(a.hash, &a.key), Some(b));
            prop_assert_eq!(t.len(), 0);
            prop_assert!(!t.replace(&b, 16));
            t.insert_new(a, 16);
            prop_assert_eq!(t.take_by_hash(a.hash), Some(a));
            prop_assert!(t.get_by_hash(a.hash).is_none());
        }
    }

    /// The base: IPv4 attempts whose times lie within 2^32 microseconds
    /// after it (to the nanosecond) and that have at most one VLAN tag are
    /// packed; a rebase moves those that no longer fit to the other table,
    /// an update that no longer fits moves its entry, and every entry stays
    /// as it was.
    #[test]
    fn packing_follows_the_base() {
        // A TCP attempt from 10.0.0.x to 10.0.0.9 at `ts`, with `vlan`.
        let tcp4 = |x, ts, vlan| {
            let (src, dst) = (Addr::v4([10, 0, 0, x]).0, Addr::v4([10, 0, 0, 9]).0);
            attempt(src, dst, (1, 2), Proto::Tcp, ts, (1, 0, vlan, 0, 0, false))
        };
        let base = 1_700_000_000_000_000_000;
        let us = |n: i64| base + n * 1000;
        let mut t = Attempts::default();
        // Before a base is set nothing packs.
        let early = tcp4(1, (us(0), us(0)), [0, 0]);
        t.insert_new(early, 64);
        assert_eq!((t.v4.len(), t.other.len()), (0, 1));
        t.rebase(base, 64);
        let a = tcp4(2, (us(10), us(20)), [0, 0]);
        let ns = tcp4(3, (us(10) + 999, us(20) + 1), [0, 0]);
        let far = tcp4(4, (us(10), us(1 << 32)), [0, 0]);
        let old = tcp4(5, (us(-1), us(5)), [0, 0]);
        let young = tcp4(6, (us(5_000_000) + 3, us(6_000_000)), [0, 0]);
        let qinq = tcp4(7, (us(10), us(10)), [5, 7]);
        let tagged = tcp4(8, (us(10), us(10)), [4095, 0]);
        for x in [a, ns, far, old, young, qinq, tagged] {
            t.insert_new(x, 64);
        }
        // Packed: a, ns, young, tagged; whole: early, far, old, qinq.
        assert_eq!((t.v4.len(), t.other.len()), (4, 4));
        // Four seconds on: a, ns and tagged no longer fit, young does.
        t.rebase(us(4_000_000), 64);
        assert_eq!((t.v4.len(), t.other.len()), (1, 7));
        for x in [early, a, ns, far, old, young, qinq, tagged] {
            assert_eq!(t.get(x.hash, &x.key), Some(x));
        }
        // An update within reach stays packed; one beyond it moves, once.
        let mut y = young;
        y.last_ts = us(4_000_000) + 7;
        assert!(t.replace(&y, 64));
        assert_eq!((t.v4.len(), t.other.len()), (1, 7));
        y.last_ts = us(4_000_000 + (1 << 32));
        assert!(t.replace(&y, 64));
        assert_eq!((t.v4.len(), t.other.len()), (0, 8));
        assert_eq!(t.get(y.hash, &y.key), Some(y));
    }

    #[test]
    fn ipv4_attempts_go_to_the_packed_table() {
        let v4 = |x| Addr::v4([10, 0, 0, x]).0;
        let mut v6 = [0u8; 16];
        v6[0] = 0xfd;
        let mut t = Attempts::default();
        t.rebase(0, 16);
        let rest = (1, 0, [0, 0], 0, 0, false);
        let tcp4 = attempt(v4(1), v4(2), (1, 2), Proto::Tcp, (5000, 5000), rest);
        let arp4 = attempt(v4(1), v4(3), (0, 0), Proto::Arp, (5000, 5000), rest);
        let mixed = attempt(v4(1), v6, (1, 2), Proto::Tcp, (5000, 5000), rest);
        for a in [tcp4, arp4, mixed] {
            t.insert_new(a, 16);
        }
        assert_eq!((t.v4.len(), t.other.len()), (2, 1));
        let mut all: Vec<_> = t.into_attempts().map(|a| a.key).collect();
        all.sort();
        let mut want = vec![tcp4.key, arp4.key, mixed.key];
        want.sort();
        assert_eq!(all, want);
    }

    #[test]
    fn a_table_at_its_room_is_rebuilt_not_doubled() {
        let mut t = Attempts::default();
        t.rebase(0, 100);
        let rest = (1, 0, [0, 0], 0, 0, false);
        let mk = |i: u32| {
            let b = i.to_be_bytes();
            attempt(
                Addr::v4([10, b[1], b[2], b[3]]).0,
                Addr::v4([10, 9, 9, 9]).0,
                (1, 2),
                Proto::Tcp,
                (5000, 5000),
                rest,
            )
        };
        let room = 100;
        let mut rebuilds = 0;
        // Churn at a steady 90 entries: deleted slots use the growth up.
        for i in 0..5000u32 {
            rebuilds += u32::from(t.insert_new(mk(i), room));
            if i >= 90 {
                let old = mk(i - 90);
                assert!(t.take(old.hash, &old.key).is_some());
            }
        }
        assert!(rebuilds > 10, "{rebuilds} rebuilds");
        assert_eq!(t.len(), 90);
        assert!(t.v4.capacity() <= 2 * room, "{}", t.v4.capacity());
    }

    /// Under a flood every partition's table sits at its cap: those tables
    /// share the shard's arena of huge pages, and churn rebuilds them
    /// within its blocks (a rebuild takes the block the previous one freed).
    #[test]
    fn tables_at_their_cap_share_the_arena_and_reuse_its_blocks() {
        let room = 14_336; // the default cap's
        let bytes = packed_table_bytes(room).expect("a small table");
        assert_eq!(packed_table_bytes(usize::MAX / 4), None);
        // A block for each of three tables and one for a rebuild: over a
        // huge page, so the arena is made.
        assert!(4 * bytes >= super::super::huge::HUGE, "{bytes}");
        let alloc = TableAlloc::with_arena(bytes, 4);
        let rest = (1, 0, [0, 0], 0, 0, false);
        let mk = |t: u8, i: u32| {
            let b = i.to_be_bytes();
            attempt(
                Addr::v4([t, b[1], b[2], b[3]]).0,
                Addr::v4([10, 9, 9, 9]).0,
                (1, 2),
                Proto::Tcp,
                (5000, 5000),
                rest,
            )
        };
        let in_arena = |t: &Attempts| alloc.in_arena((t.v4_end - 1) as *const u8);
        let mut tables: Vec<Attempts> = (0..3).map(|_| Attempts::new(alloc.clone())).collect();
        for t in &mut tables {
            t.rebase(0, room);
        }
        let steady = 12_000;
        let mut rebuilds = [0u32; 3];
        for i in 0..60_000u32 {
            for (n, t) in tables.iter_mut().enumerate() {
                rebuilds[n] += u32::from(t.insert_new(mk(n as u8 + 1, i), room));
                if i >= steady {
                    let old = mk(n as u8 + 1, i - steady);
                    assert!(t.take(old.hash, &old.key).is_some());
                }
            }
            if i == 100 {
                assert!(!tables.iter().any(in_arena), "a small table left the heap");
            }
        }
        assert!(rebuilds.iter().all(|&r| r > 5), "{rebuilds:?}");
        // Each rebuild took the block the one before it freed.
        assert!(tables.iter().all(in_arena));
        for (n, t) in tables.iter().enumerate() {
            assert_eq!(t.len(), steady as usize);
            for i in 60_000 - steady..60_000 {
                let a = mk(n as u8 + 1, i);
                assert_eq!(t.get(a.hash, &a.key).map(|g| g.key), Some(a.key));
            }
            let gone = mk(n as u8 + 1, 60_000 - steady - 1);
            assert!(t.get(gone.hash, &gone.key).is_none());
        }
    }
}
