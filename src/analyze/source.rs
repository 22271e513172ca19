//! What the analytics remembers of one source: the current test window's
//! failures, its sequential test, its history of windows, its last alert.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Failure;
use super::tiny::{Bag, Tiny};
use crate::config::DetectorSection;
use crate::decode::{Addr, FlowKey, Proto};
use crate::inventory::TargetState;
use crate::track::{Probe, Reason};

/// Small sets of a window (subnets, ports) stop growing here; they only feed
/// the mixture rule (which needs 2) and the alert's lists.
const SMALL_CAP: usize = 256;
/// Active hosts whose failed ports are counted for the vertical-scan rule.
const ACTIVE_HOSTS_CAP: usize = 64;

/// ahash with fixed seeds `S..S+3`, as a zero-sized type: a source holds
/// five hash sets, and `ahash::RandomState` would add 32 bytes to each of
/// them in every source (a flood's table holds hundreds of thousands). Fixed
/// seeds keep iteration orders the same from run to run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Seeded<const S: u64>;

impl<const S: u64> std::hash::BuildHasher for Seeded<S> {
    type Hasher = ahash::AHasher;
    #[inline]
    fn build_hasher(&self) -> ahash::AHasher {
        ahash::RandomState::with_seeds(S, S + 1, S + 2, S + 3).build_hasher()
    }
}

/// A hash set holding its first element inline (see [`Tiny`]).
type Set<T> = Tiny<T, HashSet<T, Seeded<9>>>;

/// A sorted set holding its first element inline.
type Ordered<T> = Tiny<T, BTreeSet<T>>;

fn no_window() -> i64 {
    i64::MIN
}

/// The /24 (IPv4) or /64 (IPv6) of an address.
pub fn subnet(a: &Addr) -> Addr {
    let mut b = a.0;
    if a.is_v4() {
        b[15] = 0;
    } else {
        b[8..].fill(0);
    }
    Addr(b)
}

pub fn subnet_str(n: &Addr) -> String {
    format!("{n}/{}", if n.is_v4() { 24 } else { 64 })
}

/// Evidence items all sources may still add (`detector.max_evidence_items`
/// less what they hold): the per-source caps alone would let 200,000 sources
/// of 10,000 targets each hold billions of set entries.
#[derive(Clone, Copy, Debug)]
pub struct Room(pub usize);

/// Which cap stopped a set growing during one failure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capped {
    /// `max_targets_per_source`.
    pub per_source: bool,
    /// The total, `max_evidence_items`.
    pub total: bool,
}

/// Insert `v` into `set` unless its per-source `cap` or the total `room`
/// stops it. Returns whether it was added; a refusal is noted in `capped`
/// (the per-source cap counts whenever the set is full, as it always did; the
/// total only when `v` would have been new).
fn grow<T: Copy + Eq, C: Bag<T>>(
    set: &mut Tiny<T, C>,
    v: T,
    cap: usize,
    room: &mut Room,
    capped: &mut Capped,
) -> Grew {
    if set.len() >= cap {
        capped.per_source = true;
        return Grew::Refused;
    }
    if room.0 == 0 {
        if set.contains(&v) {
            return Grew::Held;
        }
        capped.total = true;
        return Grew::Refused;
    }
    if set.insert(v) {
        room.0 -= 1;
        Grew::Added
    } else {
        Grew::Held
    }
}

/// What [`grow`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Grew {
    Added,
    Held,
    Refused,
}

/// Failed (protocol, port) pairs of each active host a source failed on, at
/// most [`ACTIVE_HOSTS_CAP`] hosts: a short list searched in order. (A hash
/// map allocated a four-bucket table for every source of a SYN flood aimed
/// at one live server, a fifth of the heap.) Saved as a map, as it was.
#[derive(Clone, Debug, Default)]
pub struct ActivePorts(Vec<(Addr, Set<(Proto, u16)>)>);

impl ActivePorts {
    fn len(&self) -> usize {
        self.0.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Addr, &Set<(Proto, u16)>)> {
        self.0.iter().map(|(a, p)| (a, p))
    }

    pub fn values(&self) -> impl Iterator<Item = &Set<(Proto, u16)>> {
        self.0.iter().map(|(_, p)| p)
    }

    fn get_mut(&mut self, a: &Addr) -> Option<&mut Set<(Proto, u16)>> {
        self.0.iter_mut().find(|(x, _)| x == a).map(|(_, p)| p)
    }

    /// Add host `a` (not yet in the list) with no ports.
    fn push(&mut self, a: Addr) -> &mut Set<(Proto, u16)> {
        if self.0.capacity() == 0 {
            // Most sources fail on one active host at most.
            self.0.reserve_exact(1);
        }
        self.0.push((a, Set::default()));
        &mut self.0.last_mut().expect("just pushed").1
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

impl Serialize for ActivePorts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for ActivePorts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = HashMap::<Addr, Set<(Proto, u16)>>::deserialize(d)?;
        let mut v: Vec<_> = m.into_iter().collect();
        v.sort_unstable_by_key(|(a, _)| *a);
        Ok(ActivePorts(v))
    }
}

/// One failed attempt kept as evidence.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Sample {
    pub ts: i64,
    pub key: FlowKey,
    pub reason: Reason,
    pub probe: Probe,
    pub state: TargetState,
}

/// One closed window of history.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct WinStat {
    pub win: i64,
    pub failed_targets: u32,
    pub never_hosts: u32,
    /// Looked like a scanner this window (any rule, no baselines).
    pub scanning: bool,
    /// The source was alerted in this window: its count is no baseline
    /// of what is normal for it (a source that swept 100 hosts once would
    /// otherwise need 300 to be alerted again for a training period).
    #[serde(default)]
    pub alerted: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LastAlert {
    /// When it was decided (the dedup period runs from here).
    pub ts: i64,
    /// Its `timestamp` (the probe that completed the evidence); absent in
    /// states saved before it was kept.
    #[serde(default)]
    pub at: Option<i64>,
    /// The window it was raised in: a later window's evidence is new, for
    /// the dedup's deferral (absent in states saved before: every window is
    /// new then).
    #[serde(default = "no_window")]
    pub win: i64,
    /// A judgement at the end of its dedup period is queued (once an
    /// alert: the queue holds one entry a source at most).
    #[serde(default)]
    pub owed_queued: bool,
    pub subnets: Vec<Addr>,
    pub ports: Vec<u16>,
}

/// The rules' verdict for a source right now.
#[derive(Clone, Debug, Default)]
pub struct Verdict {
    pub trw: bool,
    pub count: bool,
    pub mixture: Vec<&'static str>,
    pub vertical: bool,
}

impl Verdict {
    pub fn mixture(&self) -> bool {
        self.mixture.len() >= 2
    }
    pub fn variation(&self) -> Option<&'static str> {
        if self.trw {
            Some("sequential_test")
        } else if self.count && self.mixture() {
            Some("count_and_mixture")
        } else if self.count {
            Some("count")
        } else if self.vertical {
            Some("vertical_scan")
        } else {
            None
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Source {
    /// The window the counts below belong to.
    pub win: i64,
    /// Failed attempts to inactive/never-seen targets, and all failed attempts.
    pub attempts: u32,
    pub attempts_all: u32,
    /// Distinct failed (host, protocol, port) to inactive/never-seen hosts.
    pub targets: Set<(Addr, Proto, u16)>,
    pub targets_full: bool,
    /// Distinct inactive/never-seen hosts, and how many of each.
    pub hosts: Set<Addr>,
    pub never_hosts: u32,
    pub inactive_hosts: u32,
    pub subnets: Ordered<Addr>,
    pub ports: Ordered<u16>,
    /// Failed attempts to inactive/never-seen targets by reason (rejected,
    /// unanswered, unreachable, unresolved), and all by target state
    /// (active, inactive, never seen).
    pub by_reason: [u32; 4],
    pub by_state: [u32; 3],
    /// Failed (protocol, port) pairs on active hosts (vertical scans of live
    /// hosts; an IP protocol scan counts each protocol).
    pub active_ports: ActivePorts,
    pub max_active_ports: u32,
    pub first_ts: i64,
    pub last_ts: i64,
    pub sample: Vec<Sample>,
    /// Sequential test: walk, its highest point, hosts already contacted,
    /// first-contact failures and successes.
    pub trw: f64,
    pub trw_max: f64,
    pub contacted: Set<Addr>,
    pub trw_fail: u32,
    pub trw_succ: u32,
    pub history: VecDeque<WinStat>,
    pub learned: bool,
    /// Boxed: few sources ever alert, and 48 bytes less puts a source in
    /// mimalloc's 384-byte size class instead of 448 (a flood's table
    /// holds 200,000 of them).
    pub last_alert: Option<Box<LastAlert>>,
    /// Failed attempts since the last alert.
    pub since_alert: u32,
    /// A suppressed alert of this window was counted already.
    pub suppressed_noted: bool,
    /// This window's evidence fired a rule while the dedup period of the
    /// last alert ran: it is judged again when that period ends (if the
    /// window is still open), so a new attack is not lost to the dedup.
    #[serde(default)]
    pub owed: bool,
    /// Alerted in this window (see [`WinStat::alerted`]).
    #[serde(default)]
    pub alerted_in_window: bool,
}

// See `last_alert`: within mimalloc's 384-byte size class.
const _: () = assert!(std::mem::size_of::<Source>() <= 384);

impl Source {
    /// Holds one piece of evidence at most: one failure or one successful
    /// first contact, nothing remembered from earlier windows, no alert, not
    /// a learned scanner. The first to go when the table is full.
    pub fn is_cheap(&self) -> bool {
        self.attempts_all + self.trw_succ <= 1
            && self.history.is_empty()
            && self.last_alert.is_none()
            && !self.learned
    }

    pub fn new(win: i64) -> Source {
        Source {
            win,
            attempts: 0,
            attempts_all: 0,
            targets: Set::default(),
            targets_full: false,
            hosts: Set::default(),
            never_hosts: 0,
            inactive_hosts: 0,
            subnets: Ordered::default(),
            ports: Ordered::default(),
            by_reason: [0; 4],
            by_state: [0; 3],
            active_ports: ActivePorts::default(),
            max_active_ports: 0,
            first_ts: i64::MAX,
            last_ts: i64::MIN,
            sample: Vec::new(),
            trw: 0.0,
            trw_max: 0.0,
            contacted: Set::default(),
            trw_fail: 0,
            trw_succ: 0,
            history: VecDeque::new(),
            learned: false,
            last_alert: None,
            since_alert: 0,
            suppressed_noted: false,
            owed: false,
            alerted_in_window: false,
        }
    }

    /// Become `Source::new(win)` again, keeping the allocations of the hash
    /// sets and the sample: under a spoofed-source flood, one-off sources
    /// are evicted and created by the million, and allocating a fresh one
    /// (a ~600-byte copy into a new box, page faults, five small tables)
    /// was a sixth of the analytics thread. Every field is named, so a new
    /// one cannot be forgotten here.
    pub fn reset(&mut self, win: i64) {
        let Source {
            win: w,
            attempts,
            attempts_all,
            targets,
            targets_full,
            hosts,
            never_hosts,
            inactive_hosts,
            subnets,
            ports,
            by_reason,
            by_state,
            active_ports,
            max_active_ports,
            first_ts,
            last_ts,
            sample,
            trw,
            trw_max,
            contacted,
            trw_fail,
            trw_succ,
            history,
            learned,
            last_alert,
            since_alert,
            suppressed_noted,
            owed,
            alerted_in_window,
        } = self;
        *w = win;
        (*attempts, *attempts_all, *never_hosts, *inactive_hosts) = (0, 0, 0, 0);
        targets.clear();
        *targets_full = false;
        hosts.clear();
        subnets.clear();
        ports.clear();
        (*by_reason, *by_state) = ([0; 4], [0; 3]);
        active_ports.clear();
        *max_active_ports = 0;
        (*first_ts, *last_ts) = (i64::MAX, i64::MIN);
        sample.clear();
        (*trw, *trw_max) = (0.0, 0.0);
        contacted.clear();
        (*trw_fail, *trw_succ) = (0, 0);
        history.clear();
        *learned = false;
        *last_alert = None;
        *since_alert = 0;
        *suppressed_noted = false;
        *owed = false;
        *alerted_in_window = false;
    }

    /// Evidence items the current window holds: entries of its sets,
    /// samples, active hosts and their ports. What
    /// `detector.max_evidence_items` bounds in all; a proxy for memory (24–37
    /// bytes an item measured, with the tables' slack). Not counted: the
    /// history (at most a training period of 24-byte windows a source) and
    /// the last alert's lists (at most 2 × 256): bounded per source, and
    /// counting them would let days of history, which no eviction frees,
    /// starve every window of room.
    pub fn items(&self) -> usize {
        self.targets.len()
            + self.hosts.len()
            + self.contacted.len()
            + self.subnets.len()
            + self.ports.len()
            + self.sample.len()
            + self
                .active_ports
                .values()
                .map(|p| 1 + p.len())
                .sum::<usize>()
    }

    fn window_is_empty(&self) -> bool {
        self.attempts_all == 0 && self.contacted.is_empty()
    }

    /// Make `win` the current window (a source idle across a boundary).
    pub fn roll_to(&mut self, win: i64) {
        if self.win < win {
            self.close_window(i64::MAX, win, false);
        }
    }

    /// Close the current window into history (keeping `keep` windows before
    /// `next`); returns its failed-target count when it had any.
    pub fn close_window(&mut self, keep: i64, next: i64, scanning: bool) -> Option<u32> {
        if self.win >= next {
            return None;
        }
        let count = self.targets.len() as u32;
        // A cheap window (one failure, nothing else known of the source)
        // is kept out of the history: it says
        // nothing of a baseline, and a history would make the source
        // neither cheap nor forgettable for a training period, so that one
        // day of spoofed one-off sources (a SYN flood, the internet's
        // background scanners on an exposed home_net) would fill the
        // source table for 30 days and refuse every new source, scanners
        // included.
        if self.attempts_all > 0 && !self.is_cheap() {
            self.history.push_back(WinStat {
                win: self.win,
                failed_targets: count,
                never_hosts: self.never_hosts,
                scanning,
                alerted: self.alerted_in_window,
            });
        }
        while self
            .history
            .front()
            .is_some_and(|h| h.win < next.saturating_sub(keep))
        {
            self.history.pop_front();
        }
        let keep_fields = (
            std::mem::take(&mut self.history),
            self.learned,
            self.last_alert.take(),
            self.since_alert,
        );
        *self = Source::new(next);
        (
            self.history,
            self.learned,
            self.last_alert,
            self.since_alert,
        ) = keep_fields;
        (count > 0).then_some(count)
    }

    /// Nothing worth keeping: no history, no current activity, not learned,
    /// no alert younger than `alert_memory`.
    pub fn is_forgettable(&self, clock: i64, alert_memory: i64) -> bool {
        self.history.is_empty()
            && self.window_is_empty()
            && !self.learned
            && self
                .last_alert
                .as_ref()
                .is_none_or(|l| clock >= l.ts.saturating_add(alert_memory))
    }

    /// Windows marked scanning since window `from`.
    pub fn scanning_windows(&self, from: i64) -> usize {
        self.history
            .iter()
            .filter(|h| h.win >= from && h.scanning)
            .count()
    }

    /// The most failed targets of a window of history, leaving out the
    /// windows it was alerted in.
    pub fn history_max(&self) -> Option<u32> {
        self.history
            .iter()
            .filter(|h| !h.alerted)
            .map(|h| h.failed_targets)
            .max()
    }

    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    /// A successful first contact with `dst`. Returns what stopped the
    /// contacted set growing, if anything did.
    pub fn first_contact_success(
        &mut self,
        dst: Addr,
        down: f64,
        floor: f64,
        cap: usize,
        room: &mut Room,
    ) -> Capped {
        let mut capped = Capped::default();
        // A full contacted set was never counted as a cap hit here.
        if self.contacted.len() < cap
            && grow(&mut self.contacted, dst, cap, room, &mut capped) == Grew::Added
        {
            self.trw_succ += 1;
            self.trw = (self.trw + down).max(floor);
        }
        // The alert's counts may now be lower bounds.
        self.targets_full |= capped.total;
        capped
    }

    /// Count a failed attempt, adding at most `room.0` evidence items (taken
    /// from it). Returns which caps stopped a set growing.
    pub fn record_failure(
        &mut self,
        e: &Failure,
        state: TargetState,
        up: f64,
        cap: usize,
        sample: usize,
        room: &mut Room,
    ) -> Capped {
        let k = &e.key;
        let mut capped = Capped::default();
        self.attempts_all += 1;
        self.since_alert += 1;
        let first_contact = grow(&mut self.contacted, k.dst, cap, room, &mut capped) == Grew::Added;
        match state {
            TargetState::Active => {
                self.by_state[0] += 1;
                if k.proto != Proto::Arp {
                    let n = self.active_ports.len();
                    let ports = match self.active_ports.get_mut(&k.dst) {
                        Some(p) => Some(p),
                        // A new active host is an item too.
                        None if n < ACTIVE_HOSTS_CAP && room.0 > 0 => {
                            room.0 -= 1;
                            Some(self.active_ports.push(k.dst))
                        }
                        None if n < ACTIVE_HOSTS_CAP => {
                            capped.total = true;
                            None
                        }
                        None => None,
                    };
                    // The vertical rule's sets stop silently at the
                    // per-source cap, as they always did.
                    if let Some(ports) = ports
                        && ports.len() < cap
                    {
                        let mut ignored = Capped::default();
                        if grow(ports, (k.proto, k.dport), cap, room, &mut ignored) == Grew::Added {
                            self.max_active_ports = self.max_active_ports.max(ports.len() as u32);
                        }
                        capped.total |= ignored.total;
                    }
                }
            }
            TargetState::Inactive | TargetState::NeverSeen => {
                self.by_state[if state == TargetState::Inactive { 1 } else { 2 }] += 1;
                self.attempts += 1;
                // Reasons of failures to absent hosts only: one refused
                // connection to a live server is no second failure mode
                // of a sweep (the mixture rule's `several_reasons`).
                self.by_reason[e.reason as usize] += 1;
                self.first_ts = self.first_ts.min(e.first_ts);
                self.last_ts = self.last_ts.max(e.first_ts);
                if first_contact {
                    self.trw_fail += 1;
                    self.trw += up;
                    self.trw_max = self.trw_max.max(self.trw);
                }
                if grow(
                    &mut self.targets,
                    (k.dst, k.proto, k.dport),
                    cap,
                    room,
                    &mut capped,
                ) == Grew::Refused
                {
                    // The count rule's number is a lower bound now.
                    self.targets_full = true;
                }
                if grow(&mut self.hosts, k.dst, cap, room, &mut capped) == Grew::Added {
                    if state == TargetState::NeverSeen {
                        self.never_hosts += 1;
                    } else {
                        self.inactive_hosts += 1;
                    }
                }
                // Subnets, ports and samples only feed the mixture rule and
                // the alert's lists: without room they stop silently.
                if self.subnets.len() < SMALL_CAP
                    && room.0 > 0
                    && self.subnets.insert(subnet(&k.dst))
                {
                    room.0 -= 1;
                }
                if self.ports.len() < SMALL_CAP
                    && room.0 > 0
                    && matches!(k.proto, Proto::Tcp | Proto::Udp)
                    && self.ports.insert(k.dport)
                {
                    room.0 -= 1;
                }
                if self.sample.len() < sample && room.0 > 0 {
                    room.0 -= 1;
                    // Most sources of a flood keep one sample: no room for
                    // four (Vec's first growth).
                    if self.sample.capacity() == 0 {
                        self.sample.reserve_exact(1);
                    }
                    self.sample.push(Sample {
                        ts: e.first_ts,
                        key: *k,
                        reason: e.reason,
                        probe: e.probe,
                        state,
                    });
                }
            }
            TargetState::Untracked => {}
        }
        // Any set refused for the total (a host, a contacted address, not
        // only a target): the alert's counts may be lower bounds.
        self.targets_full |= capped.total;
        capped
    }

    /// Which rules fire now (`threshold`: the count rule's bar for this source).
    pub fn verdict(&self, cfg: &DetectorSection, threshold: u32, trw_decide: f64) -> Verdict {
        let mut mixture = Vec::new();
        if self.hosts.len() as u32 >= cfg.mixture_min_hosts {
            mixture.push("many_hosts");
        }
        if self.subnets.len() >= 2 {
            mixture.push("several_subnets");
        }
        if self.by_reason.iter().filter(|&&n| n > 0).count() >= 2 {
            mixture.push("several_reasons");
        }
        if self.never_hosts > 0
            && !self.history.is_empty()
            && self.history.iter().all(|h| h.never_hosts == 0)
        {
            mixture.push("never_seen_is_new");
        }
        Verdict {
            trw: self.trw >= trw_decide,
            count: self.targets.len() as u32 >= threshold,
            mixture,
            vertical: self.max_active_ports >= cfg.vertical_min_ports,
        }
    }

    /// Looked like a scanner this window, by the rules without baselines.
    pub fn scanning(&self, cfg: &DetectorSection, trw_decide: f64) -> bool {
        self.trw_max >= trw_decide
            || self.targets.len() as u32 >= cfg.min_failed_targets
            || self.max_active_ports >= cfg.vertical_min_ports
    }

    /// Evidence beyond what the last alert reported: a later window, or a
    /// new subnet or port (more hosts of the subnets and ports it named are
    /// the rest of the sweep it was raised on, not a new attack: the
    /// sequential test alerts on a sweep's fourth probe).
    pub fn new_since_alert(&self) -> bool {
        let Some(l) = &self.last_alert else {
            return true;
        };
        l.win != self.win
            || self.subnets.iter().any(|n| !l.subnets.contains(n))
            || self.ports.iter().any(|p| !l.ports.contains(p))
    }

    /// Alerted with `timestamp` `at`, decided at `ts`.
    pub fn alerted(&mut self, at: i64, ts: i64) {
        self.alerted_in_window = true;
        self.owed = false;
        self.last_alert = Some(Box::new(LastAlert {
            ts,
            at: Some(at),
            win: self.win,
            owed_queued: false,
            subnets: self.subnets.iter().copied().collect(),
            ports: self.ports.iter().copied().collect(),
        }));
        self.since_alert = 0;
    }

    /// Reasons in display order with their counts.
    pub fn reasons(&self) -> Vec<(Reason, u32)> {
        Reason::ALL
            .iter()
            .map(|r| (*r, self.by_reason[*r as usize]))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}
