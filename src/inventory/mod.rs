//! Host inventory: which addresses of `home_net` are alive, and since when.
//!
//! # What proves a host alive
//! An address is alive when it is the *source* of traffic that only a real
//! host sends:
//! * a SYN-ACK (it accepted a connection);
//! * an ACK or data segment, or a FIN, of a connection (it holds state);
//! * an ARP request or reply with its address as sender (it is on the link);
//! * as the responder of a pending SYN whose initiator goes on with the
//!   connection though no SYN-ACK was captured (it answered).
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

use hashbrown::HashMap;

use crate::config::{Cidr, in_any};
use crate::decode::Addr;
pub use crate::track::Seen;

/// Liveness is recorded to this granularity (ns): one minute.
pub const GRANULARITY: i64 = 60_000_000_000;

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

/// The inventory, bounded by `max_hosts` (`hosts_cap_dropped` counts refusals).
pub struct Inventory {
    hosts: HashMap<Addr, Minutes, ahash::RandomState>,
    home_net: Vec<Cidr>,
    inactive_after: i64,
    max_hosts: usize,
    pub hosts_cap_dropped: u64,
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
            hosts_cap_dropped: 0,
        }
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
            self.hosts_cap_dropped += 1;
            return;
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

    /// The state of target `a` at `ts`.
    pub fn state(&self, a: &Addr, ts: i64) -> TargetState {
        if !self.in_home_net(a) {
            return TargetState::Untracked;
        }
        match self.hosts.get(a) {
            None => TargetState::NeverSeen,
            // The minute it was last seen counts in full.
            Some(h)
                if ts.saturating_sub(start_of(h.last).saturating_add(GRANULARITY))
                    <= self.inactive_after =>
            {
                TargetState::Active
            }
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

    /// Restore a host (from the state database).
    pub fn restore(&mut self, a: Addr, h: Host) {
        self.hosts.insert(a, Minutes::of(&h));
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

    #[test]
    fn cap_refuses_and_counts() {
        let mut i = inv();
        for x in 1..=5 {
            i.alive(Addr::v4([10, 0, 0, x]), 0, Seen::Data);
        }
        assert_eq!(i.len(), 3);
        assert_eq!(i.hosts_cap_dropped, 2);
    }
}
