//! Host inventory: which addresses of `home_net` are alive, and since when.
//!
//! # What proves a host alive
//! An address is alive when it is the *source* of traffic that only a real
//! host sends:
//! * a SYN-ACK (it accepted a connection);
//! * an ACK or data segment, or a FIN, of a connection (it holds state);
//! * an ARP request or reply with its address as sender (it is on the link).
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

use std::collections::HashMap;

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

/// What the inventory knows of one address (32 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Host {
    /// Minute (start, ns) it was first seen alive.
    pub first_alive: i64,
    /// Minute (start, ns) it was last seen alive.
    pub last_alive: i64,
    /// `Seen` kinds ever observed.
    pub seen: u8,
}

/// The inventory, bounded by `max_hosts` (`hosts_cap_dropped` counts refusals).
pub struct Inventory {
    hosts: HashMap<Addr, Host, ahash::RandomState>,
    home_net: Vec<Cidr>,
    inactive_after: i64,
    max_hosts: usize,
    pub hosts_cap_dropped: u64,
}

impl Inventory {
    pub fn new(home_net: Vec<Cidr>, inactive_after: i64, max_hosts: usize) -> Inventory {
        Inventory {
            // Fixed seeds: iteration order must not vary between runs (the
            // state file and `scanwatch hosts` list hosts in a stable order).
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
        let minute = ts.div_euclid(GRANULARITY) * GRANULARITY;
        if let Some(h) = self.hosts.get_mut(&a) {
            h.last_alive = h.last_alive.max(minute);
            h.first_alive = h.first_alive.min(minute);
            h.seen |= how as u8;
            return;
        }
        if self.hosts.len() >= self.max_hosts {
            self.hosts_cap_dropped += 1;
            return;
        }
        self.hosts.insert(
            a,
            Host {
                first_alive: minute,
                last_alive: minute,
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
            Some(h) if ts.saturating_sub(h.last_alive + GRANULARITY) <= self.inactive_after => {
                TargetState::Active
            }
            Some(_) => TargetState::Inactive,
        }
    }

    pub fn get(&self, a: &Addr) -> Option<&Host> {
        self.hosts.get(a)
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Every host, sorted by address.
    pub fn sorted(&self) -> Vec<(Addr, Host)> {
        let mut v: Vec<(Addr, Host)> = self.hosts.iter().map(|(a, h)| (*a, *h)).collect();
        v.sort_by_key(|(a, _)| *a);
        v
    }

    /// Restore a host (from the state database).
    pub fn restore(&mut self, a: Addr, h: Host) {
        self.hosts.insert(a, h);
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
        let first = *i.get(&a).unwrap();
        i.alive(a, 59_000_000_000, Seen::Data);
        assert_eq!(*i.get(&a).unwrap(), first);
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
