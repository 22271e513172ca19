//! Host inventory: which addresses of `home_net` are alive, and since when.
//!
//! # What proves a host alive
//! An address is alive when it is the *source* of traffic that only a real
//! host sends:
//! * a SYN-ACK (it accepted a connection);
//! * an ACK or data segment, or a FIN, of a connection (it holds state);
//! * an ARP request or reply with its address as sender (it is on the link).
//!
//! Not proof either: the initiator going on with a connection whose SYN-ACK
//! was not captured (a capture gap). It proves the initiator, but any source
//! can send a SYN and then an ACK, so a scanner could mark its targets alive.
//!
//! Not proof: a SYN (anyone can send one, with any source address: SYN floods
//! spoof millions), a RST (firewalls reset on behalf of addresses that do not
//! exist), and an ICMP error, which proves the router that sent it, not the
//! probed target.
//!
//! # States at the moment of a failed attempt
//! `active` (alive within `inactive_after`), `inactive` (alive once, not
//! since), `never_seen` (never alive since the sensor started: modelled
//! explicitly, as bro-is-darknet does). The state is read before the probe's
//! own answer updates the inventory.
//!
//! Liveness is kept to the minute ([`GRANULARITY`]): the tracker reports an
//! address at most once per minute and kind, whatever the thread count, so
//! the inventory is the same for any `--threads`.
//!
//! # Forgetting
//! The table holds `detector.max_hosts` at most. A new live host is always
//! admitted: when the table is full, one sweep forgets the eighth of the
//! hosts last seen alive longest ago ([`SWEEP_SHARE`]), so the new host and
//! the next `max_hosts / 8 - 1` get in without another sweep. A forgotten
//! host is `never_seen` again, which the rules count exactly as `inactive`
//! (both are dead targets), so forgetting the stalest costs the least. The
//! sweep reads the table twice and selects on 8-byte keys (linear time):
//! amortised over the hosts it makes room for, a few dozen sequential
//! bucket visits a new host, never a scan per packet. What is forgotten is counted
//! (`hosts_forgotten`), and apart those still `active` when forgotten
//! (`hosts_forgotten_active`): a table flooded with forged liveness faster
//! than `inactive_after` (or too small for the network). Before this, a
//! full table refused every new host for ever, across restarts.
//!
//! [`Inventory::forget_idle`] forgets, below the cap too, the hosts not seen
//! alive for longer than an age (`detector.forget_hosts_after`), once per
//! test window.

use hashbrown::HashMap;

use crate::config::{Cidr, in_any};
use crate::decode::Addr;
pub use crate::track::Seen;

/// Liveness is recorded to this granularity (ns): one minute.
pub const GRANULARITY: i64 = 60_000_000_000;

/// A full table forgets `1/SWEEP_SHARE` of its hosts, the stalest, in one
/// sweep, which makes room for as many new ones. A sweep costs the same
/// linear pass whatever it forgets: a smaller value sweeps less often
/// (cheaper in all) but forgets hosts that were seen more recently. With 8,
/// a sweep of the default table (1,000,000 hosts) took ~33 ms on the 2-vCPU
/// development VM: ~0.26 µs a new host, half of what inserting it cost.
pub const SWEEP_SHARE: usize = 8;

/// A target's state when a failed attempt reaches it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum TargetState {
    Active,
    Inactive,
    NeverSeen,
    /// Outside `home_net`: not tracked.
    Untracked,
}

impl TargetState {
    pub fn name(self) -> &'static str {
        match self {
            TargetState::Active => "active",
            TargetState::Inactive => "inactive",
            TargetState::NeverSeen => "never_seen",
            TargetState::Untracked => "untracked",
        }
    }
    /// Inactive or never seen: what the Failed Connections analytics counts.
    pub fn is_dead(self) -> bool {
        matches!(self, TargetState::Inactive | TargetState::NeverSeen)
    }
}

/// What the inventory knows of one address, as the state database and
/// `scanwatch hosts` see it (held as a [`Minutes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Host {
    /// Minute (start, ns) it was first seen alive.
    pub first_alive: i64,
    /// Minute (start, ns) it was last seen alive.
    pub last_alive: i64,
    /// `Seen` kinds ever observed.
    pub seen: u8,
}

/// A host as the inventory holds it: minute numbers (`ts.div_euclid(GRANULARITY)`),
/// not nanoseconds. Every `i64` time has its minute in an `i32` (±2^63 ns is
/// ±153.7 million minutes), so nothing is lost (but the start of the minute
/// holding `i64::MIN`, which saturates), and a table entry with its
/// address is 28 bytes instead of 40: 29 bytes a bucket with hashbrown's
/// control byte, 33 to 66 bytes a host as the load goes from 7/8 to 7/16
/// between doublings (47 to 94 with nanoseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Minutes {
    first: i32,
    last: i32,
    seen: u8,
}

const _: () = assert!(std::mem::size_of::<(Addr, Minutes)>() == 28);

/// A host last seen alive in minute `last` is active at `ts` (ns) when `ts`
/// is at most `inactive_after` (ns) after that minute's end: the minute
/// counts in full.
#[inline]
fn is_active(last: i32, ts: i64, inactive_after: i64) -> bool {
    ts.saturating_sub(start_of(last).saturating_add(GRANULARITY)) <= inactive_after
}

/// `ts`'s minute number (see [`Minutes`]).
#[inline]
fn minute_of(ts: i64) -> i32 {
    // In range for every i64: the clamp is never used.
    ts.div_euclid(GRANULARITY)
        .clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// The first nanosecond of minute `m` (saturating at the ends of `i64`).
#[inline]
fn start_of(m: i32) -> i64 {
    i64::from(m).saturating_mul(GRANULARITY)
}

impl Minutes {
    fn host(self) -> Host {
        Host {
            first_alive: start_of(self.first),
            last_alive: start_of(self.last),
            seen: self.seen,
        }
    }
    /// A stored host's minutes: its times are minute starts, as written; any
    /// other time counts as the minute that holds it.
    fn of(h: &Host) -> Minutes {
        Minutes {
            first: minute_of(h.first_alive),
            last: minute_of(h.last_alive),
            seen: h.seen,
        }
    }
}

/// The sweep's key of a host: its last minute, then 32 bits of its address
/// (the whole of an IPv4 one; a fixed fold of all 128 bits of an IPv6 one,
/// since a flood's addresses can share their low bits and a cut through a
/// run of equal keys would forget them all), so the hosts forgotten depend
/// only on what the table holds, not on its layout: the same after a
/// restart, for any thread count, on any machine.
#[inline]
fn sweep_key(a: &Addr, m: &Minutes) -> u64 {
    let last = (i64::from(m.last) - i64::from(i32::MIN)) as u64;
    let low = if a.is_v4() {
        u32::from_be_bytes([a.0[12], a.0[13], a.0[14], a.0[15]])
    } else {
        let x = u128::from_be_bytes(a.0);
        let folded = (x as u64 ^ (x >> 64) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (folded >> 32) as u32
    };
    (last << 32) | u64::from(low)
}

/// The `keep` hosts of `hosts` last seen alive most recently (ties: as
/// [`sweep_key`], then by address), and how many others were dropped.
/// Linear time.
pub fn most_recent(mut hosts: Vec<(Addr, Host)>, keep: usize) -> (Vec<(Addr, Host)>, usize) {
    if hosts.len() <= keep {
        return (hosts, 0);
    }
    let dropped = hosts.len() - keep;
    let key = |(a, h): &(Addr, Host)| std::cmp::Reverse((sweep_key(a, &Minutes::of(h)), *a));
    if keep > 0 {
        hosts.select_nth_unstable_by_key(keep - 1, key);
    }
    hosts.truncate(keep);
    (hosts, dropped)
}

/// The inventory, bounded by `max_hosts`: a full table forgets its stalest
/// hosts (see the module's docs).
pub struct Inventory {
    hosts: HashMap<Addr, Minutes, ahash::RandomState>,
    home_net: Vec<Cidr>,
    inactive_after: i64,
    max_hosts: usize,
    /// Hosts forgotten, by a full table's sweeps, [`Inventory::forget_idle`]
    /// and a load into a smaller cap ([`Inventory::restore_all`]), this run.
    pub hosts_forgotten: u64,
    /// Those of them still `active` at the time (alive within
    /// `inactive_after`): only a full table's sweeps forget those.
    pub hosts_forgotten_active: u64,
    /// Sweeps of a full table, this run.
    sweeps: u64,
    /// Tables emptied and refilled in place ([`Inventory::compact_if_blocked`]).
    compactions: u64,
}

impl Inventory {
    pub fn new(home_net: Vec<Cidr>, inactive_after: i64, max_hosts: usize) -> Inventory {
        Inventory {
            // Fixed seeds: a run's table does not depend on the process
            // (nothing iterates it unsorted: the state file and `scanwatch
            // hosts` list hosts by address).
            hosts: HashMap::with_hasher(ahash::RandomState::with_seeds(1, 2, 3, 4)),
            home_net,
            inactive_after,
            max_hosts,
            hosts_forgotten: 0,
            hosts_forgotten_active: 0,
            sweeps: 0,
            compactions: 0,
        }
    }

    /// Sweeps of a full table so far (see [`SWEEP_SHARE`]).
    pub fn sweeps(&self) -> u64 {
        self.sweeps
    }

    /// Full tables emptied and refilled in place to clear their tombstones.
    pub fn compactions(&self) -> u64 {
        self.compactions
    }

    pub fn home_net(&self) -> &[Cidr] {
        &self.home_net
    }

    pub fn in_home_net(&self, a: &Addr) -> bool {
        in_any(&self.home_net, a)
    }

    /// `a` was seen alive at `ts` (ns), as `how`. Idempotent per minute, so
    /// repeated reports change nothing.
    pub fn alive(&mut self, a: Addr, ts: i64, how: Seen) {
        if !self.in_home_net(&a) {
            return;
        }
        let minute = minute_of(ts);
        if let Some(h) = self.hosts.get_mut(&a) {
            h.last = h.last.max(minute);
            h.first = h.first.min(minute);
            h.seen |= how as u8;
            return;
        }
        if self.hosts.len() >= self.max_hosts {
            if self.max_hosts == 0 {
                // Only a caller that did not validate its config: the config
                // refuses 0 (every host would be `never_seen`).
                return;
            }
            self.sweep(ts);
        }
        self.hosts.insert(
            a,
            Minutes {
                first: minute,
                last: minute,
                seen: how as u8,
            },
        );
    }

    /// A full table: forget the `len / SWEEP_SHARE` hosts (at least one)
    /// last seen alive longest ago, as [`sweep_key`] orders them (a few more
    /// only where hosts share the 32 bits of their key's address part and their
    /// last minute, at the cut). `ts` (ns): now, to tell the still active.
    fn sweep(&mut self, ts: i64) {
        let n = self.hosts.len();
        let k = (n / SWEEP_SHARE).max(1);
        self.sweeps += 1;
        // 8 bytes a host for the moment of the sweep: 8 MB at the default
        // cap, beside the table's ~61.
        let mut keys: Vec<u64> = self.hosts.iter().map(|(a, m)| sweep_key(a, m)).collect();
        let cut = *keys.select_nth_unstable(k - 1).1;
        drop(keys);
        let (inactive_after, mut gone, mut active) = (self.inactive_after, 0u64, 0u64);
        self.hosts.retain(|a, m| {
            if sweep_key(a, m) > cut {
                return true;
            }
            gone += 1;
            active += u64::from(is_active(m.last, ts, inactive_after));
            false
        });
        self.hosts_forgotten += gone;
        self.hosts_forgotten_active += active;
        self.compact_if_blocked();
    }

    /// Erasing leaves tombstones where a probe sequence ran through full
    /// slots, and they beget more (a tombstone counts as full); once they
    /// eat the room between the hosts held and the cap, hashbrown would
    /// double a table already sized for the cap (seen in
    /// `sweeping_does_not_grow_the_table` after ~240 sweeps at the default
    /// load). Instead, once the table has been full (so it is at its final
    /// size), such a table is emptied in place and its hosts put back: no
    /// tombstone left, the same allocation. Meanwhile the hosts wait in a
    /// vector, 28 bytes each (~25 MB at the default cap, beside the table's
    /// ~61). Rare: every few hundred sweeps at the default load.
    fn compact_if_blocked(&mut self) {
        if self.sweeps == 0 || self.hosts.capacity() >= self.max_hosts {
            return;
        }
        self.compactions += 1;
        let held: Vec<(Addr, Minutes)> = self.hosts.drain().collect();
        self.hosts.extend(held);
    }

    /// Forget the hosts not seen alive for longer than `age` (ns) at `now`
    /// (ns), as `inactive_after` measures it: their last minute counts in
    /// full. `age <= 0` forgets nothing. Returns how many. One pass over the
    /// table: meant for once a test window (`detector.forget_hosts_after`).
    pub fn forget_idle(&mut self, now: i64, age: i64) -> usize {
        if age <= 0 {
            return 0;
        }
        let before = self.hosts.len();
        self.hosts.retain(|_, m| is_active(m.last, now, age));
        let gone = before - self.hosts.len();
        self.hosts_forgotten += gone as u64;
        if gone > 0 {
            self.compact_if_blocked();
        }
        gone
    }

    /// The state of target `a` at `ts`.
    pub fn state(&self, a: &Addr, ts: i64) -> TargetState {
        if !self.in_home_net(a) {
            return TargetState::Untracked;
        }
        match self.hosts.get(a) {
            None => TargetState::NeverSeen,
            Some(h) if is_active(h.last, ts, self.inactive_after) => TargetState::Active,
            Some(_) => TargetState::Inactive,
        }
    }

    pub fn get(&self, a: &Addr) -> Option<Host> {
        self.hosts.get(a).map(|m| m.host())
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Every host, sorted by address.
    pub fn sorted(&self) -> Vec<(Addr, Host)> {
        let mut v: Vec<(Addr, Host)> = self.hosts.iter().map(|(a, m)| (*a, m.host())).collect();
        v.sort_by_key(|(a, _)| *a);
        v
    }

    /// Restore a host (from the state database). Beyond the cap only for
    /// tests: a load restores with [`Inventory::restore_all`].
    pub fn restore(&mut self, a: Addr, h: Host) {
        self.hosts.insert(a, Minutes::of(&h));
    }

    /// Restore the hosts of a state, within `max_hosts`: those last seen
    /// alive most recently are kept (see [`most_recent`]); the rest are
    /// forgotten and counted in `hosts_forgotten`. Returns how many were.
    pub fn restore_all(&mut self, hosts: Vec<(Addr, Host)>) -> usize {
        let room = self.max_hosts.saturating_sub(self.hosts.len());
        let (keep, dropped) = most_recent(hosts, room);
        self.hosts.reserve(keep.len());
        for (a, h) in keep {
            self.restore(a, h);
        }
        self.hosts_forgotten += dropped as u64;
        dropped
    }

    /// Bytes the host table has allocated.
    #[cfg(test)]
    fn allocation_size(&self) -> usize {
        self.hosts.allocation_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000_000_000;

    fn inv() -> Inventory {
        Inventory::new(vec!["10.0.0.0/8".parse().unwrap()], 24 * H, 3)
    }

    #[test]
    fn never_seen_active_inactive() {
        let mut i = inv();
        let a = Addr::v4([10, 0, 0, 1]);
        assert_eq!(i.state(&a, 0), TargetState::NeverSeen);
        i.alive(a, 10 * H, Seen::SynAck);
        assert_eq!(i.state(&a, 10 * H), TargetState::Active);
        assert_eq!(
            i.state(&a, 34 * H),
            TargetState::Active,
            "exactly 24 h later is still active"
        );
        assert_eq!(i.state(&a, 35 * H), TargetState::Inactive);
        // The minute it was last seen counts in full: active until 24 h
        // after that minute's end, not a nanosecond more.
        let end = 10 * H + GRANULARITY + 24 * H;
        assert_eq!(i.state(&a, end), TargetState::Active);
        assert_eq!(i.state(&a, end + 1), TargetState::Inactive);
        i.alive(a, 40 * H, Seen::Arp);
        assert_eq!(i.state(&a, 41 * H), TargetState::Active);
        let h = i.get(&a).unwrap();
        assert_eq!(Seen::names(h.seen), vec!["syn_ack", "arp"]);
        assert_eq!(h.first_alive, 10 * H);
    }

    #[test]
    fn outside_home_net_is_untracked_and_not_stored() {
        let mut i = inv();
        let ext = Addr::v4([8, 8, 8, 8]);
        i.alive(ext, 0, Seen::SynAck);
        assert!(i.is_empty());
        assert_eq!(i.state(&ext, 0), TargetState::Untracked);
    }

    #[test]
    fn reports_within_a_minute_are_idempotent() {
        let mut i = inv();
        let a = Addr::v4([10, 0, 0, 1]);
        i.alive(a, 5, Seen::Data);
        let first = i.get(&a).unwrap();
        i.alive(a, 59_000_000_000, Seen::Data);
        assert_eq!(i.get(&a).unwrap(), first);
    }

    /// ARCHITECTURE.md documents 33 to 66 bytes a host (the aim:
    /// at most 96), whatever the table's load between doublings.
    #[test]
    fn bytes_per_host_stay_within_the_documented_bound() {
        let mut i = Inventory::new(vec!["10.0.0.0/8".parse().unwrap()], 24 * H, 1 << 20);
        let (mut lo, mut hi) = (f64::MAX, 0f64);
        for n in 1..=300_000u32 {
            let [_, b, c, d] = n.to_be_bytes();
            i.alive(Addr::v4([10, b, c, d]), i64::from(n) * H, Seen::Data);
            if n >= 1024 {
                let per = i.allocation_size() as f64 / f64::from(n);
                (lo, hi) = (lo.min(per), hi.max(per));
            }
        }
        assert_eq!(i.len(), 300_000);
        assert!(hi <= 67.0 && lo >= 33.0, "{lo:.1} to {hi:.1} bytes a host");
        // Times come back as stored: minute starts.
        let h = i.get(&Addr::v4([10, 0, 0, 7])).unwrap();
        assert_eq!((h.first_alive, h.last_alive), (7 * H, 7 * H));
    }

    #[test]
    fn times_before_1970_floor_to_their_minute() {
        let mut i = inv();
        let a = Addr::v4([10, 0, 0, 1]);
        i.alive(a, -1, Seen::Data);
        i.alive(a, -GRANULARITY - 1, Seen::Data);
        let h = i.get(&a).unwrap();
        assert_eq!(
            (h.first_alive, h.last_alive),
            (-2 * GRANULARITY, -GRANULARITY)
        );
        assert_eq!(i.state(&a, 24 * H), TargetState::Active);
        assert_eq!(i.state(&a, 24 * H + 1), TargetState::Inactive);
    }

    #[test]
    fn times_far_from_1970_keep_their_minute() {
        let mut i = inv();
        let a = Addr::v4([10, 0, 0, 1]);
        let m = i64::MAX.div_euclid(GRANULARITY) * GRANULARITY;
        i.alive(a, i64::MAX, Seen::Data);
        assert_eq!(i.get(&a).unwrap().last_alive, m);
        assert_eq!(i.state(&a, i64::MAX), TargetState::Active);
        i.alive(a, i64::MIN, Seen::Data);
        // Saturates at i64::MIN: the minute's start is before it.
        assert_eq!(i.get(&a).unwrap().first_alive, i64::MIN);
        // A stored time that is not a minute start counts as its minute.
        i.restore(
            a,
            Host {
                first_alive: 90_000_000_000,
                last_alive: 150_000_000_000,
                seen: 1,
            },
        );
        let h = i.get(&a).unwrap();
        assert_eq!(
            (h.first_alive, h.last_alive),
            (60_000_000_000, 120_000_000_000)
        );
    }

    fn v6(n: u32) -> Addr {
        let mut b = [0u8; 16];
        b[0] = 0xfd;
        b[12..].copy_from_slice(&n.to_be_bytes());
        Addr(b)
    }

    fn v6_inv(max_hosts: usize) -> Inventory {
        Inventory::new(
            vec!["10.0.0.0/8".parse().unwrap(), "fc00::/7".parse().unwrap()],
            24 * H,
            max_hosts,
        )
    }

    /// Before: a full table refused every new host (`hosts_cap_dropped`).
    #[test]
    fn a_full_inventory_admits_a_new_host_and_forgets_the_stalest() {
        let mut i = Inventory::new(vec!["10.0.0.0/8".parse().unwrap()], 24 * H, 8);
        for x in 1..=8u8 {
            i.alive(Addr::v4([10, 0, 0, x]), i64::from(x) * H, Seen::Data);
        }
        // Host 1 is seen again: host 2 is now the stalest.
        i.alive(Addr::v4([10, 0, 0, 1]), 20 * H, Seen::Data);
        let new = Addr::v4([10, 0, 0, 9]);
        i.alive(new, 21 * H, Seen::Fin);
        assert_eq!(i.len(), 8);
        assert_eq!(i.state(&new, 21 * H), TargetState::Active);
        assert_eq!(
            i.state(&Addr::v4([10, 0, 0, 2]), 21 * H),
            TargetState::NeverSeen
        );
        for x in [1, 3, 4, 5, 6, 7, 8] {
            assert!(i.get(&Addr::v4([10, 0, 0, x])).is_some(), "10.0.0.{x}");
        }
        // 10.0.0.2, last seen 19 h before: still active when forgotten.
        assert_eq!((i.hosts_forgotten, i.hosts_forgotten_active), (1, 1));
        assert_eq!(i.sweeps(), 1);
    }

    /// The audit's reproduction, scaled down: spoofed IPv6 FIN+ACKs fill the
    /// table; 60 days later a genuinely new host is admitted and active.
    #[test]
    fn a_new_host_gets_in_after_a_flood_filled_the_table() {
        let mut i = v6_inv(1000);
        let mut n = 0;
        while n < 1100 || i.len() < 1000 {
            i.alive(v6(n), 0, Seen::Fin);
            n += 1;
        }
        let flood = i.hosts_forgotten;
        assert_eq!(flood, u64::from(n) - 1000);
        assert!(flood >= 100, "{flood}");
        // All in the same minute: all active when forgotten.
        assert_eq!(i.hosts_forgotten_active, flood);
        let day60 = 60 * 24 * H;
        let new = Addr::v4([10, 50, 0, 0]);
        assert_eq!(i.state(&new, day60), TargetState::NeverSeen);
        i.alive(new, day60, Seen::Fin);
        assert_eq!(i.state(&new, day60 + H), TargetState::Active);
        assert!(i.len() <= 1000);
        // The flood's hosts forgotten now were inactive.
        assert!(i.hosts_forgotten > flood);
        assert_eq!(i.hosts_forgotten_active, flood);
    }

    /// A full table sweeps once for every eighth of the cap admitted, not
    /// once a host: the work is amortised.
    #[test]
    fn sweeps_are_few_and_the_table_stays_within_the_cap() {
        let cap = 1024;
        let mut i = v6_inv(cap);
        let inserts = 100 * cap as u32;
        for n in 0..inserts {
            i.alive(v6(n), i64::from(n) * GRANULARITY, Seen::Fin);
            assert!(i.len() <= cap);
        }
        let beyond = u64::from(inserts) - cap as u64;
        let per_sweep = (cap / SWEEP_SHARE) as u64;
        assert!(
            i.sweeps() <= beyond.div_ceil(per_sweep),
            "{} sweeps for {beyond} hosts beyond the cap",
            i.sweeps()
        );
        assert!(i.sweeps() >= beyond / per_sweep);
        assert_eq!(i.hosts_forgotten, u64::from(inserts) - i.len() as u64);
        // The newest are those kept.
        let oldest_kept = i.sorted().iter().map(|(_, h)| h.last_alive).min().unwrap();
        assert!(oldest_kept >= i64::from(inserts - cap as u32) * GRANULARITY);
    }

    /// Sweeping does not grow the table: at the default cap's load (1,000,000
    /// hosts in 2^21 buckets, 48%), erasing leaves no tombstones that would
    /// make hashbrown double it.
    #[test]
    fn sweeping_does_not_grow_the_table() {
        let cap = 1_000_000 / 16;
        let mut i = v6_inv(cap);
        let mut n = 0u32;
        while i.len() < cap {
            i.alive(v6(n), i64::from(n) * GRANULARITY, Seen::Fin);
            n += 1;
        }
        let full = i.allocation_size();
        for _ in 0..30 * cap {
            i.alive(v6(n), i64::from(n) * GRANULARITY, Seen::Fin);
            n += 1;
        }
        assert!(i.sweeps() > 200);
        assert_eq!(i.allocation_size(), full);
        // Tombstones were cleared, rarely.
        assert!(
            (1..=i.sweeps() / 20).contains(&i.compactions()),
            "{} compactions in {} sweeps",
            i.compactions(),
            i.sweeps()
        );
    }

    /// Which hosts a sweep forgets depends on what the table holds, not on
    /// the order they came in (a restart rebuilds the table by address).
    #[test]
    fn a_sweep_forgets_the_same_hosts_whatever_the_order() {
        let (mut a, mut b) = (v6_inv(64), v6_inv(64));
        // Four hosts a minute: ties at the cut.
        let host = |n: u32| (v6(n * 7919), i64::from(n / 4) * GRANULARITY);
        for n in 0..64 {
            let (x, t) = host(n);
            a.alive(x, t, Seen::Data);
            let (y, u) = host(63 - n);
            b.alive(y, u, Seen::Data);
        }
        let late = 100 * GRANULARITY;
        a.alive(v6(1 << 30), late, Seen::Data);
        b.alive(v6(1 << 30), late, Seen::Data);
        assert_eq!(a.sorted(), b.sorted());
        assert_eq!(a.len(), 64 - 8 + 1);
    }

    /// IPv6 hosts that share their low 32 bits, all seen in one minute (a
    /// flood's forged sources): a sweep forgets about an eighth of them,
    /// not every host tied at the cut.
    #[test]
    fn a_sweep_of_hosts_alike_in_their_low_bits_forgets_an_eighth() {
        let mut i = v6_inv(64);
        let alike = |n: u8| {
            let mut b = [0u8; 16];
            b[0] = 0xfd;
            b[1] = n;
            b[12..].copy_from_slice(&[1, 2, 3, 4]);
            Addr(b)
        };
        for n in 0..65u8 {
            i.alive(alike(n), 0, Seen::Data);
        }
        assert!((56..=58).contains(&i.len()), "{} held", i.len());
    }

    #[test]
    fn forget_idle_forgets_the_hosts_not_seen_for_longer() {
        let mut i = inv();
        let (old, recent) = (Addr::v4([10, 0, 0, 1]), Addr::v4([10, 0, 0, 2]));
        i.alive(old, 0, Seen::Data);
        i.alive(recent, 50 * H, Seen::Data);
        assert_eq!(i.forget_idle(60 * H, 0), 0, "0 forgets nothing");
        // Exactly 48 h after the end of its minute: kept.
        assert_eq!(i.forget_idle(48 * H + GRANULARITY, 48 * H), 0);
        assert_eq!(i.forget_idle(48 * H + GRANULARITY + 1, 48 * H), 1);
        assert_eq!(i.state(&old, 60 * H), TargetState::NeverSeen);
        assert_eq!(i.state(&recent, 60 * H), TargetState::Active);
        assert_eq!((i.hosts_forgotten, i.hosts_forgotten_active), (1, 0));
    }

    #[test]
    fn restore_all_keeps_the_most_recently_seen_within_the_cap() {
        let mut i = inv();
        let host = |m: i64| Host {
            first_alive: 0,
            last_alive: m * GRANULARITY,
            seen: 1,
        };
        let saved: Vec<(Addr, Host)> = (1..=10u8)
            .map(|x| (Addr::v4([10, 0, 0, x]), host(i64::from(x % 5))))
            .collect();
        // Last minutes 1,2,3,4,0,1,2,3,4,0: keep the two 4s and a 3, the
        // 3 of the higher address.
        assert_eq!(i.restore_all(saved), 7);
        let kept: Vec<Addr> = i.sorted().into_iter().map(|(a, _)| a).collect();
        assert_eq!(
            kept,
            vec![
                Addr::v4([10, 0, 0, 4]),
                Addr::v4([10, 0, 0, 8]),
                Addr::v4([10, 0, 0, 9])
            ]
        );
        assert_eq!(i.hosts_forgotten, 7);
        assert_eq!(most_recent(Vec::new(), 0), (Vec::new(), 0));
    }
}
