//! The Failed Connections analytics: sources that make an abnormally large
//! number, or an abnormal mixture, of failed connections to inactive or
//! never-seen hosts (MITRE ATT&CK TA0007 Discovery, T1018 Remote System
//! Discovery).
//!
//! # Order
//! Records are analysed in the order things happened on the wire (a failure
//! at its first probe), after a reorder delay as long as the slowest decision
//! (the SYN timeout): see [`Analytics::set_delay`].
//!
//! # What is counted
//! For each source and test window (`test_period`, default 1 day, aligned to
//! the epoch), the distinct **failed targets**: (host, protocol, port) of
//! failed attempts whose host was `inactive` or `never_seen` at that moment
//! (see [`crate::inventory`]). Counting distinct targets, not attempts, is what
//! keeps repeated failures to the *same* dead host (a monitoring check, the
//! clients of a decommissioned server) from ever looking like a scan.
//!
//! # Rules (every threshold is a `[detector]` tunable)
//! * **Sequential test** (Threshold Random Walk, Jung et al. 2004): each first
//!   contact of the source with a host in the window is an observation: a
//!   success (a completed handshake) moves the walk down by
//!   ln(θ₁/θ₀), a failure to an inactive or never-seen host up by
//!   ln((1−θ₁)/(1−θ₀)); the walk decides "scanner" at ln(P_D/P_F) and never
//!   goes below ln((1−P_D)/(1−P_F)), so past good behaviour buys no unlimited
//!   credit. With θ₀ = 0.8, θ₁ = 0.2, P_F = 0.01, P_D = 0.99, four failed first
//!   contacts in a row decide: a fast sweep is caught within a handful of
//!   probes, and a slow one (a probe every few minutes) within the same
//!   number, because the walk keeps its state for the whole window.
//! * **Count**: failed targets ≥ max(`min_failed_targets`,
//!   `own_baseline_factor` × the source's largest daily count in training,
//!   `population_factor` × the median over training days of the daily 99th
//!   percentile of all sources; learned scanners and allowlisted sources are
//!   left out of the population).
//! * **Mixture**: at least two of: ≥ `mixture_min_hosts` distinct inactive or
//!   never-seen hosts; ≥ 2 subnets (/24, /64) among them; ≥ 2 failure reasons;
//!   never-seen hosts from a source that had none in any training window.
//! * **Vertical scan of a live host**: ≥ `vertical_min_ports` distinct failed
//!   ports on one active host.
//!
//! # Severity and variations
//! | variation | rule | severity |
//! |---|---|---|
//! | `sequential_test` | the sequential test decided | `low` |
//! | `count_and_mixture` | count and mixture | `low` |
//! | `count` | count without mixture (a vertical scan of one never-seen host, say) | `informational` |
//! | `vertical_scan` | many failed ports on one active host | `informational` |
//!
//! # Suppression and dedup
//! No alert before `activation_period` of event time has been observed;
//! never for `allowlist` sources; by default never for sources outside
//! `home_net`; never for *learned sanctioned scanners*: sources that looked
//! like scanners (any rule above, without baselines) on at least
//! `scanner_min_share` of the windows observed in the training period and on
//! at least `scanner_min_days` of them. One alert per source per
//! `dedup_period`: the next alert after it reports the failures since, and the
//! subnets and ports not in the previous alert.

mod alert;
mod piles;
mod source;
mod sources;
mod tiny;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::config::{DetectorSection, in_any};
use crate::decode::{Addr, FlowKey};
use crate::inventory::{Host, Inventory, TargetState};
use crate::track::{Alive, Carried, Contact, Event, Order, Probe, Reason, Seen};

pub use alert::{Alert, Severity};
use piles::Piles;
use source::{Room, Source};
use sources::Sources;

/// What the analytics consumes, in canonical order (see [`sort_records`]).
#[derive(Clone, Copy, Debug)]
pub enum Record {
    Failed(Event),
    Contact(Contact),
    Alive(Alive),
}

impl Record {
    fn order(&self) -> Order {
        match self {
            Record::Failed(e) => e.order,
            Record::Contact(c) => c.order,
            Record::Alive(a) => a.order,
        }
    }
    /// Within one packet: failures first, so that the state of a target is
    /// read before the packet's own liveness updates the inventory.
    fn rank(&self) -> u8 {
        match self {
            Record::Failed(_) => 0,
            Record::Contact(_) => 1,
            Record::Alive(_) => 2,
        }
    }
    /// When the sensor learned it (a failure is known at its decision).
    fn known_at(&self) -> i64 {
        match self {
            Record::Failed(e) => e.decided_ts,
            Record::Contact(c) => c.ts,
            Record::Alive(a) => a.ts,
        }
    }
    /// When it happened on the wire: a failure at its first probe.
    fn happened_at(&self) -> i64 {
        match self {
            Record::Failed(e) => e.first_ts,
            Record::Contact(c) => c.ts,
            Record::Alive(a) => a.ts,
        }
    }
}

/// What the rules read of a failed attempt: 56 of the event's 120 bytes (its
/// ICMP details, VLANs, flags and canonical order are the event log's).
#[derive(Clone, Copy, Debug)]
pub struct Failure {
    pub key: FlowKey,
    pub reason: Reason,
    pub probe: Probe,
    /// The first probe's time, and when the outcome was decided.
    pub first_ts: i64,
    pub decided_ts: i64,
}

/// A record as the reorder buffer holds it: only what the analysis reads.
/// Under a flood the buffer holds half a million of them; at 56 bytes
/// instead of 120, filling it takes (and makes the kernel zero) half the
/// pages, and every move copies half the bytes.
#[derive(Clone, Copy, Debug)]
enum Held {
    Failed(Failure),
    Contact { src: Addr, dst: Addr },
    Alive { addr: Addr, ts: i64, how: Seen },
}

// The niche of `Reason` tags the enum: no padding word.
const _: () = assert!(std::mem::size_of::<Held>() == 56);

impl From<&Record> for Held {
    #[inline]
    fn from(r: &Record) -> Held {
        match r {
            Record::Failed(e) => Held::Failed(Failure {
                key: e.key,
                reason: e.reason,
                probe: e.probe,
                first_ts: e.first_ts,
                decided_ts: e.decided_ts,
            }),
            Record::Contact(c) => Held::Contact {
                src: c.src,
                dst: c.dst,
            },
            Record::Alive(a) => Held::Alive {
                addr: a.addr,
                ts: a.ts,
                how: a.how,
            },
        }
    }
}

/// A record waiting in the reorder buffer: released by the time it happened,
/// then by arrival (itself canonical), so the order is deterministic.
pub(crate) struct Pending(i64, u64, Held);

#[cfg(test)]
impl Pending {
    /// (time, arrival): what orders releases.
    pub(crate) fn key(&self) -> (i64, u64) {
        (self.0, self.1)
    }
}

/// The reorder buffer: one priority queue by (happened, arrival), built for
/// the common case. Records arrive almost in the order they happened (block
/// by block); failures decided by a timer arrive late, but in the order of
/// their deadlines. So a record goes to the sorted FIFO run it extends (the
/// one with the latest tail not after it, as in patience sorting), and only
/// one that extends none goes to the late keys ([`LateRuns`]): under a
/// flood, the attempts decided early to make room (`evicted`), late by a lag
/// that differs a little from partition to partition. Those are ordered as
/// 24-byte keys (in piles, else in merged runs); the records wait in a
/// slab, so that sorting moves keys, not 56-byte records. Popping the
/// smallest of the heads gives exactly the order of one heap. (A heap of
/// everything held, ~46 s of records, cost a
/// third of the run; a heap of records, half the analytics thread's time
/// under a flood.)
#[derive(Default)]
struct Reorder {
    runs: [VecDeque<Pending>; RUNS],
    late: LateRuns,
    slab: Vec<Held>,
    free: Vec<u32>,
}

/// Sorted runs of the reorder buffer: the live stream, timer-decided failures.
const RUNS: usize = 2;

/// A late record's key: (time, arrival) and its slab slot.
#[derive(Clone, Copy, Debug)]
struct Late(i64, u64, u32);

impl Late {
    fn key(&self) -> (i64, u64) {
        (self.0, self.1)
    }
}

/// The late records' keys: in sorted piles ([`Piles`]) when at most
/// [`piles::MAX_PILES`] suffice, as for a flood's 64 streams of evictions;
/// the others in sorted runs. Those wait unsorted in a small staging area
/// (whose smallest key is tracked) until it holds
/// [`STAGING`] of them; they are then sorted into one run, and the two
/// newest runs merge while the older is at most twice the newer's size, so
/// there are O(log n) runs, every key moves sequentially, and a pop compares
/// a few run heads. (A binary heap of these keys, half a million under a
/// flood, missed the cache at every level of every pop: a sixth of the
/// flood's run time. Sealing the staging area at every pop instead made
/// runs of one or two keys while a full buffer pops one record per push,
/// and the merges that followed cost a tenth of the flood's run time.)
#[derive(Default)]
struct LateRuns {
    /// Where a late key goes first: sorted piles ([`piles`]), enough for a
    /// flood's evictions; the rest is staged and merged.
    piles: Piles,
    staging: Vec<Late>,
    /// Index of the smallest key in `staging`.
    staging_min: usize,
    /// Oldest first; each sorted by key from `at` on.
    runs: Vec<(Vec<Late>, usize)>,
    len: usize,
    /// [`LateRuns::head`]'s answer until the next push or pop: a release
    /// asks for the head twice (its time, then the record).
    head: Option<(usize, Late)>,
    /// Emptied run vectors, for the next merges (at most [`SPARE_RUNS`]).
    /// Fresh ones of a few MiB were taken from the kernel and given back at
    /// every merge of a flood: faulting and zeroing their pages was a tenth
    /// of the analytics thread.
    spare: Vec<Vec<Late>>,
}

/// Emptied run vectors kept: a merge frees two and needs one, and the
/// cascade of merges is a few levels deep. Their capacity is at most what
/// the runs held at their largest.
const SPARE_RUNS: usize = 4;

/// Keys staged before they are sorted into a run.
const STAGING: usize = 64;

/// `LateRuns::head`'s run index for the staging area.
const STAGED: usize = usize::MAX;

/// `LateRuns::head`'s run index for the piles.
const PILED: usize = usize::MAX - 1;

/// How many keys ahead in its run a popped late record's successor's slab
/// slot is prefetched: pops mostly walk one run in order, and each slab
/// slot, reused last-in first-out, is a cache miss.
const SLAB_PREFETCH: usize = 8;

impl LateRuns {
    fn push(&mut self, l: Late) {
        self.len += 1;
        self.head = None;
        let Err(l) = self.piles.push(l) else {
            return;
        };
        if self.staging.len() == STAGING {
            self.seal();
        }
        if self
            .staging
            .get(self.staging_min)
            .is_none_or(|m| l.key() < m.key())
        {
            self.staging_min = self.staging.len();
        }
        self.staging.push(l);
    }

    fn seal(&mut self) {
        if self.staging.is_empty() {
            return;
        }
        let next = self.take_spare(STAGING);
        let mut run = std::mem::replace(&mut self.staging, next);
        self.staging_min = 0;
        run.sort_unstable_by_key(Late::key);
        self.runs.push((run, 0));
        while let [.., (a, i), (b, j)] = self.runs.as_slice()
            && a.len() - i <= 2 * (b.len() - j)
        {
            let (b, j) = self.runs.pop().expect("two runs");
            let (a, i) = self.runs.pop().expect("two runs");
            let mut m = self.take_spare(a.len() - i + b.len() - j);
            let (mut x, mut y) = (a[i..].iter().peekable(), b[j..].iter().peekable());
            while let (Some(p), Some(q)) = (x.peek(), y.peek()) {
                if p.key() <= q.key() {
                    m.push(**p);
                    x.next();
                } else {
                    m.push(**q);
                    y.next();
                }
            }
            m.extend(x.copied());
            m.extend(y.copied());
            self.runs.push((m, 0));
            self.give_spare(a);
            self.give_spare(b);
        }
    }

    /// An empty vector for `n` keys: the smallest spare that holds them,
    /// else the largest spare grown, else a new one.
    fn take_spare(&mut self, n: usize) -> Vec<Late> {
        let cap = |i: &usize| self.spare[*i].capacity();
        let fits = (0..self.spare.len())
            .filter(|i| cap(i) >= n)
            .min_by_key(cap);
        let mut v = match fits.or_else(|| (0..self.spare.len()).max_by_key(cap)) {
            Some(i) => self.spare.swap_remove(i),
            None => Vec::new(),
        };
        v.reserve(n);
        v
    }

    /// Keep an emptied run vector, dropping the smallest past [`SPARE_RUNS`].
    fn give_spare(&mut self, mut v: Vec<Late>) {
        v.clear();
        self.spare.push(v);
        if self.spare.len() > SPARE_RUNS
            && let Some(i) = (0..self.spare.len()).min_by_key(|&i| self.spare[i].capacity())
        {
            self.spare.swap_remove(i);
        }
    }

    /// The run holding the smallest key, and that key.
    fn head(&mut self) -> Option<(usize, Late)> {
        if self.head.is_some() {
            return self.head;
        }
        let mut best: Option<(usize, Late)> = self.piles.peek().map(|k| (PILED, k));
        if let Some(&k) = self.staging.get(self.staging_min)
            && best.is_none_or(|(_, b)| k.key() < b.key())
        {
            best = Some((STAGED, k));
        }
        for (r, (keys, at)) in self.runs.iter().enumerate() {
            if let Some(&k) = keys.get(*at)
                && best.is_none_or(|(_, b)| k.key() < b.key())
            {
                best = Some((r, k));
            }
        }
        self.head = best;
        best
    }

    fn peek(&mut self) -> Option<Late> {
        if self.only_piles() {
            return self.piles.peek();
        }
        self.head().map(|(_, k)| k)
    }

    /// Every key is in the piles (a flood's case): they alone know the head.
    fn only_piles(&self) -> bool {
        self.staging.is_empty() && self.runs.is_empty()
    }

    /// The smallest key, and the slab slot of the key `SLAB_PREFETCH` after
    /// it in its run (likely to pop soon) to prefetch.
    fn pop(&mut self) -> Option<(Late, Option<u32>)> {
        if self.only_piles() {
            self.head = None;
            let popped = self.piles.pop();
            self.len -= usize::from(popped.is_some());
            return popped;
        }
        let (r, k) = self.head()?;
        self.head = None;
        self.len -= 1;
        if r == PILED {
            return self.piles.pop();
        }
        if r == STAGED {
            self.staging.swap_remove(self.staging_min);
            self.staging_min = (0..self.staging.len())
                .min_by_key(|&i| self.staging[i].key())
                .unwrap_or(0);
            return Some((k, None));
        }
        let (keys, at) = &mut self.runs[r];
        *at += 1;
        let ahead = keys.get(*at + SLAB_PREFETCH).map(|l| l.2);
        if *at == keys.len() {
            let (keys, _) = self.runs.remove(r);
            self.give_spare(keys);
        }
        Some((k, ahead))
    }

    fn len(&self) -> usize {
        self.len
    }
}

impl Reorder {
    fn push(&mut self, p: Pending) {
        // Arrival numbers only grow, so a run whose tail is not later than
        // `p` stays sorted by (time, arrival) with `p` appended.
        let mut best: Option<(usize, i64)> = None;
        for (i, r) in self.runs.iter().enumerate() {
            let tail = r.back().map_or(i64::MIN, |b| b.0);
            if tail <= p.0 && best.is_none_or(|(_, t)| tail > t) {
                best = Some((i, tail));
            }
        }
        if let Some((i, _)) = best {
            self.runs[i].push_back(p);
            return;
        }
        let slot = match self.free.pop() {
            Some(s) => {
                self.slab[s as usize] = p.2;
                s
            }
            None => {
                self.slab.push(p.2);
                (self.slab.len() - 1) as u32
            }
        };
        self.late.push(Late(p.0, p.1, slot));
    }

    /// The time of the record that pops next.
    fn first(&mut self) -> Option<i64> {
        self.head().map(|(t, _)| t)
    }

    /// The head that pops next: its time, and the run it is in (`RUNS` for
    /// the late runs).
    fn head(&mut self) -> Option<(i64, usize)> {
        let mut best: Option<((i64, u64), usize)> = self.late.peek().map(|l| (l.key(), RUNS));
        for (i, r) in self.runs.iter().enumerate() {
            if let Some(f) = r.front()
                && best.is_none_or(|(k, _)| (f.0, f.1) < k)
            {
                best = Some(((f.0, f.1), i));
            }
        }
        best.map(|((t, _), i)| (t, i))
    }

    fn pop(&mut self) -> Option<Pending> {
        match self.head()?.1 {
            RUNS => {
                let (Late(t, n, slot), ahead) = self.late.pop()?;
                if let Some(a) = ahead.and_then(|a| self.slab.get(a as usize)) {
                    crate::track::prefetch_lines(a);
                }
                self.free.push(slot);
                Some(Pending(t, n, self.slab[slot as usize]))
            }
            i => self.runs[i].pop_front(),
        }
    }

    fn len(&self) -> usize {
        self.runs.iter().map(VecDeque::len).sum::<usize>() + self.late.len()
    }
}

pub(crate) fn population_median(p: &VecDeque<PopWindow>) -> Option<u32> {
    let mut v: Vec<u32> = p.iter().map(|w| w.p99).collect();
    v.sort_unstable();
    v.get(v.len().saturating_sub(1) / 2).copied()
}

/// Records held for reordering at most (`reorder_overflow` counts early
/// releases): 72 bytes each in the live runs, 80 as a late record (a 24-byte
/// key and a 56-byte slab slot), at most ~42 MB when full. Normal traffic holds far
/// fewer (the 15M-packet enterprise capture: 131k at most); a SYN flood's
/// `unanswered` events reach the cap, and are then analysed before their
/// reorder delay ran out.
const MAX_BUFFERED: usize = 1 << 19;

/// The canonical order of one block's records: by packet order, failures
/// before contacts before liveness, then by content.
fn cmp_records(a: &Record, b: &Record) -> std::cmp::Ordering {
    a.order()
        .cmp(&b.order())
        .then(a.rank().cmp(&b.rank()))
        .then_with(|| match (a, b) {
            // As `sort_events`, reason included: a SYN with a new ISN ends
            // the old attempt (`unanswered`) and a waiting ICMP error can
            // end the new one (`unreachable`) with the same order, key and
            // first probe; without the reason their order was the sort's
            // whim.
            (Record::Failed(x), Record::Failed(y)) => x
                .key
                .cmp(&y.key)
                .then(x.first_ts.cmp(&y.first_ts))
                .then(x.reason.cmp(&y.reason)),
            (Record::Contact(x), Record::Contact(y)) => (x.src, x.dst).cmp(&(y.src, y.dst)),
            (Record::Alive(x), Record::Alive(y)) => (x.addr, x.how).cmp(&(y.addr, y.how)),
            _ => std::cmp::Ordering::Equal,
        })
}

/// Sort one block's records canonically (see [`cmp_records`]).
pub fn sort_records(v: &mut [Record]) {
    v.sort_unstable_by(cmp_records);
}

/// Append to `into`, in canonical order, `sorted` (sorted by
/// [`sort_records`]) merged with a block's `failed` events in
/// [`crate::track::sort_events`] order, which the canonical order agrees
/// with (order, then flow key, first probe and reason). The events come
/// sorted from the output already; sorting them again with the block's
/// contacts and liveness, 120 bytes a record, was 3% of all samples on a
/// flood.
///
/// Only the failures `keep` accepts are merged; returns how many it left out.
pub fn merge_records(
    sorted: &[Record],
    failed: &[Event],
    keep: impl Fn(&Event) -> bool,
    into: &mut Vec<Record>,
) -> u64 {
    debug_assert!(sorted.is_sorted_by(|a, b| cmp_records(a, b).is_le()));
    into.reserve(sorted.len() + failed.len());
    let mut left_out = 0;
    let mut i = 0;
    for e in failed {
        if !keep(e) {
            left_out += 1;
            continue;
        }
        let f = Record::Failed(*e);
        // Never equal: a failure ranks before a contact or liveness of its
        // packet.
        while i < sorted.len() && cmp_records(&sorted[i], &f).is_lt() {
            into.push(sorted[i]);
            i += 1;
        }
        into.push(f);
    }
    into.extend_from_slice(&sorted[i..]);
    debug_assert!(into.is_sorted_by(|a, b| cmp_records(a, b).is_le()));
    left_out
}

/// The sources the rules judge: those in `home_net`, or every source with
/// `detector.alert_external_sources`. The pipeline leaves the failures and
/// successful contacts of the others out before the reorder buffer (they
/// stay in the event log): no rule may alert on them, and a spoofed-source
/// flood from the internet, a new source a packet, would otherwise fill the
/// reorder buffer and the source table, evict the home network's one-off
/// sources, and cost more than a third of the CPU the flood takes (the
/// generated flood's 5M packets: 3.7 s of CPU with them, 2.4 s without;
/// benches/HISTORY.md).
#[derive(Clone, Debug)]
pub struct SourceScope {
    home_net: Vec<crate::config::Cidr>,
    all: bool,
}

impl SourceScope {
    pub fn new(cfg: &DetectorSection) -> SourceScope {
        SourceScope {
            home_net: cfg.home_net.clone(),
            all: cfg.alert_external_sources,
        }
    }

    /// Whether the rules judge source `a`.
    #[inline]
    pub fn judges(&self, a: &Addr) -> bool {
        self.all || in_any(&self.home_net, a)
    }
}

/// Counters of the analytics, for the summary and stats.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AnalyticsStats {
    pub alerts: u64,
    pub alerts_low: u64,
    pub alerts_informational: u64,
    /// Would-be alerts not sent, by reason.
    pub suppressed_activation: u64,
    pub suppressed_allowlist: u64,
    pub suppressed_external: u64,
    pub suppressed_learned_scanner: u64,
    pub suppressed_dedup: u64,
    /// Failed attempts whose target is outside home_net.
    pub failed_untracked: u64,
    /// Cap hits.
    pub sources_cap_dropped: u64,
    /// Records analysed before their reorder delay ran out (buffer full).
    #[serde(default)]
    pub reorder_overflow: u64,
    pub targets_cap_hit: u64,
    /// Sources with one piece of evidence, forgotten to make room for a new
    /// source in a full table (see [`Analytics::source`]) or for evidence
    /// within `max_evidence_items`.
    #[serde(default)]
    pub sources_evicted: u64,
    /// Failures and successful contacts that could not add their evidence:
    /// all sources together held `max_evidence_items`.
    #[serde(default)]
    pub evidence_cap_hit: u64,
    /// Records more than a test period older than the detector's clock: a
    /// state whose clock is later than the capture (a far-future timestamp
    /// learned before, or captures replayed out of order). Windows, dedup
    /// and activation follow the later clock.
    #[serde(default)]
    pub behind_clock: u64,
}

impl AnalyticsStats {
    /// What was counted since `before` (a state's counters at load): the
    /// counters are saved with the state and keep growing across runs.
    pub fn since(&self, before: &AnalyticsStats) -> AnalyticsStats {
        let d = |a: u64, b: u64| a.saturating_sub(b);
        AnalyticsStats {
            alerts: d(self.alerts, before.alerts),
            alerts_low: d(self.alerts_low, before.alerts_low),
            alerts_informational: d(self.alerts_informational, before.alerts_informational),
            suppressed_activation: d(self.suppressed_activation, before.suppressed_activation),
            suppressed_allowlist: d(self.suppressed_allowlist, before.suppressed_allowlist),
            suppressed_external: d(self.suppressed_external, before.suppressed_external),
            suppressed_learned_scanner: d(
                self.suppressed_learned_scanner,
                before.suppressed_learned_scanner,
            ),
            suppressed_dedup: d(self.suppressed_dedup, before.suppressed_dedup),
            failed_untracked: d(self.failed_untracked, before.failed_untracked),
            sources_cap_dropped: d(self.sources_cap_dropped, before.sources_cap_dropped),
            reorder_overflow: d(self.reorder_overflow, before.reorder_overflow),
            targets_cap_hit: d(self.targets_cap_hit, before.targets_cap_hit),
            sources_evicted: d(self.sources_evicted, before.sources_evicted),
            evidence_cap_hit: d(self.evidence_cap_hit, before.evidence_cap_hit),
            behind_clock: d(self.behind_clock, before.behind_clock),
        }
    }
}

/// Population baseline of one closed window.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct PopWindow {
    pub window: i64,
    /// 99th percentile of failed targets over sources with any.
    pub p99: u32,
}

/// The analytics' state, all of it persisted by [`crate::state`].
pub struct Analytics {
    pub(crate) cfg: DetectorSection,
    pub(crate) inv: Inventory,
    /// Boxed: the table's entries stay 25 bytes, so that growing (or
    /// rebuilding) it under a flood of sources moves and briefly doubles
    /// little, and an evicted source's memory goes back at once.
    pub(crate) sources: Sources,
    /// Event time of the first record ever (the activation clock).
    pub(crate) first_ts: Option<i64>,
    /// Latest event time seen.
    pub(crate) clock: i64,
    /// Current test window index.
    pub(crate) window: i64,
    pub(crate) population: VecDeque<PopWindow>,
    /// The typical day's 99th percentile: the median over the training
    /// windows, robust to the few days before a sanctioned scanner was learned
    /// or to one noisy day. Recomputed when a window closes.
    pub(crate) pop_median: Option<u32>,
    pub stats: AnalyticsStats,
    trw_up: f64,
    trw_down: f64,
    trw_decide: f64,
    trw_floor: f64,
    out: Vec<Alert>,
    /// Sources in the order they were created, for eviction (see
    /// [`Analytics::source`]); rebuilt after a load.
    ///
    /// With each address, where its `Source` lives (the box's address, which
    /// does not move while the source is in the table): only to prefetch the
    /// source a few evictions ahead, never read through.
    source_queue: VecDeque<(Addr, usize)>,
    /// The last source evicted, reused (see [`Source::reset`]) by the one
    /// created next.
    spare_source: Option<Box<Source>>,
    /// Evidence items all sources hold ([`Source::items`]), kept within
    /// `cfg.max_evidence_items`; recounted after a load.
    pub(crate) evidence: usize,
    /// The reorder buffer of [`Analytics::process_until`]; the pipeline
    /// runs its own [`Reorderer`] in a thread of its own instead.
    reorder: Reorderer,
    /// Sources whose window fired a rule on new evidence during the dedup
    /// period of their last alert ([`Source::owed`]), by when that period
    /// ends: judged again then. At most one entry a source and alert
    /// (`LastAlert::owed_queued`); rebuilt after a load.
    owed: BinaryHeap<Reverse<(i64, Addr)>>,
    /// The windows of the training period that had records (the sensor
    /// observed them), oldest first; `None` until the first window closes
    /// or a state saved before they were kept is loaded (then the calendar
    /// since the first record stands in for them).
    pub(crate) data_windows: Option<VecDeque<i64>>,
    /// The tracker's attempts still undecided when the last run with this
    /// state ended, in partition order: loaded with the state for the
    /// pipeline to hand to the tracker, and filled by the pipeline just
    /// before the final checkpoint (see [`crate::track::Carried`]). Empty
    /// in every other checkpoint: the attempts are the tracker's then.
    pub(crate) carried: Vec<Carried>,
    /// The latest packet time of the run that left `carried`: the next
    /// input must not start before it (see `Tracker::restore`).
    pub(crate) carried_until: i64,
}

/// The reorder buffer with its clock: records in as they are decided,
/// released in the order they happened once `delay` of event time has
/// passed (see [`Analytics::set_delay`]). A thread of its own in the
/// pipeline (a flood's half million held records cost a third of the
/// analytics' time), the same code inside [`Analytics::process_until`].
#[derive(Default)]
pub struct Reorderer {
    buffer: Reorder,
    arrivals: u64,
    known_clock: i64,
    delay: i64,
    /// Records released before their delay ran out (the buffer was full),
    /// since the last [`Reorderer::take_overflow`].
    overflow: u64,
}

impl Reorderer {
    pub fn new(delay: i64) -> Reorderer {
        Reorderer {
            known_clock: i64::MIN,
            delay: delay.max(0),
            ..Reorderer::default()
        }
    }

    /// Take one block's records (in canonical order; event time has reached
    /// `watermark`) and hand those released to `release`, in release order.
    pub(crate) fn push(
        &mut self,
        records: &[Record],
        watermark: i64,
        mut release: impl FnMut(Pending),
    ) {
        self.known_clock = self.known_clock.max(watermark);
        for r in records {
            self.known_clock = self.known_clock.max(r.known_at());
            self.arrivals += 1;
            self.buffer
                .push(Pending(r.happened_at(), self.arrivals, Held::from(r)));
            // Full (a flood's burst of timeouts): release the earliest now,
            // so the buffer never holds more than its cap.
            if self.buffer.len() > MAX_BUFFERED {
                self.overflow += 1;
                release(self.buffer.pop().expect("not empty"));
            }
        }
        let horizon = self.known_clock.saturating_sub(self.delay);
        while let Some(first) = self.buffer.first() {
            if first > horizon && self.buffer.len() <= MAX_BUFFERED {
                break;
            }
            if first > horizon {
                self.overflow += 1;
            }
            release(self.buffer.pop().expect("not empty"));
        }
    }

    /// End of input: release everything still held.
    pub(crate) fn finish(&mut self, mut release: impl FnMut(Pending)) {
        while let Some(p) = self.buffer.pop() {
            release(p);
        }
    }

    /// Early releases since the last call (for `reorder_overflow`).
    pub fn take_overflow(&mut self) -> u64 {
        std::mem::take(&mut self.overflow)
    }
}

impl Analytics {
    pub fn new(cfg: DetectorSection) -> Analytics {
        let d = &cfg;
        let inv = Inventory::new(d.home_net.clone(), d.inactive_after.ns(), d.max_hosts);
        Analytics {
            trw_up: ((1.0 - d.trw_scanner_success) / (1.0 - d.trw_benign_success)).ln(),
            trw_down: (d.trw_scanner_success / d.trw_benign_success).ln(),
            trw_decide: (d.trw_detection / d.trw_false_positive).ln(),
            trw_floor: ((1.0 - d.trw_detection) / (1.0 - d.trw_false_positive)).ln(),
            cfg,
            inv,
            sources: Sources::default(),
            first_ts: None,
            clock: i64::MIN,
            window: i64::MIN,
            population: VecDeque::new(),
            pop_median: None,
            stats: AnalyticsStats::default(),
            out: Vec::new(),
            source_queue: VecDeque::new(),
            spare_source: None,
            evidence: 0,
            reorder: Reorderer::new(0),
            owed: BinaryHeap::new(),
            data_windows: Some(VecDeque::new()),
            carried: Vec::new(),
            carried_until: i64::MIN,
        }
    }

    /// Analyse records in the order things happened on the wire, not the
    /// order they were decided: an unanswered SYN is known `syn_timeout` after
    /// it was sent, a refused one at once, an unresolved ARP after
    /// `arp_timeout`. Holding records for `delay` (the longest such lag) lets a
    /// fast sweep of silent hosts be judged on its first probes, and states be
    /// read at the moment of each probe. 0 (the default) processes records as
    /// they come. For [`Analytics::process_until`]; the pipeline's reorder
    /// thread has a [`Reorderer`] of its own, made with the same delay.
    pub fn set_delay(&mut self, delay: i64) {
        self.reorder.delay = delay.max(0);
    }

    /// The sources its rules judge (see [`SourceScope`]).
    pub fn source_scope(&self) -> SourceScope {
        SourceScope::new(&self.cfg)
    }

    pub fn inventory(&self) -> &Inventory {
        &self.inv
    }

    /// Sources with state.
    pub fn sources_len(&self) -> usize {
        self.sources.len()
    }

    /// Evidence items all sources' current windows hold (within
    /// `detector.max_evidence_items`; see [`Source::items`]).
    pub fn evidence_items(&self) -> usize {
        self.evidence
    }

    /// Count the sources' evidence again (after a load).
    pub(crate) fn recount_evidence(&mut self) {
        self.evidence = self.sources.values().map(|s| s.items()).sum();
        let dedup = self.cfg.dedup_period.ns();
        self.owed = self
            .sources
            .iter()
            .filter_map(|(a, s)| {
                let l = s.last_alert.as_ref().filter(|l| l.owed_queued)?;
                Some(Reverse((l.ts.saturating_add(dedup), *a)))
            })
            .collect();
    }

    /// Latest event time processed.
    pub fn clock(&self) -> i64 {
        self.clock
    }

    /// The population baseline: one entry per closed test window with failures.
    pub fn population(&self) -> impl Iterator<Item = &PopWindow> {
        self.population.iter()
    }

    /// Process one block's records (already in canonical order).
    pub fn process(&mut self, records: &[Record]) {
        self.process_until(records, i64::MIN);
    }

    /// Like [`Analytics::process`], also knowing that event time has reached
    /// `watermark` (a block's; on an idle live link, the wall clock), so held
    /// records are released even when no new record comes.
    pub fn process_until(&mut self, records: &[Record], watermark: i64) {
        // Out for the call: it hands each record it releases to `handle`.
        let mut reorder = std::mem::take(&mut self.reorder);
        reorder.push(records, watermark, |p| self.handle(p));
        self.stats.reorder_overflow += reorder.take_overflow();
        self.reorder = reorder;
    }

    /// End of input: analyse everything still held.
    pub fn finish(&mut self) {
        let mut reorder = std::mem::take(&mut self.reorder);
        reorder.finish(|p| self.handle(p));
        self.reorder = reorder;
    }

    /// Analyse records a [`Reorderer`] of the pipeline released (in release
    /// order), `overflow` of them early; empties `released`.
    pub(crate) fn analyse(&mut self, released: &mut Vec<Pending>, overflow: u64) {
        self.stats.reorder_overflow += overflow;
        for p in released.drain(..) {
            self.handle(p);
        }
    }

    /// Analyse a record released by the reorder buffer (at `p.0`, the time
    /// it happened).
    fn handle(&mut self, p: Pending) {
        self.advance(p.0);
        match p.2 {
            Held::Alive { addr, ts, how } => self.inv.alive(addr, ts, how),
            Held::Contact { src, dst } => self.contact(src, dst),
            Held::Failed(e) => self.failed(&e),
        }
    }

    /// Take the alerts raised so far.
    pub fn drain_alerts(&mut self, into: &mut Vec<Alert>) {
        into.append(&mut self.out);
    }

    fn window_of(&self, ts: i64) -> i64 {
        ts.div_euclid(self.cfg.test_period.ns())
    }

    /// Windows of history the training period holds.
    fn training_windows(&self) -> i64 {
        self.cfg.training_period.ns() / self.cfg.test_period.ns()
    }

    /// Move the clock; close the test window when `ts` is past it.
    fn advance(&mut self, ts: i64) {
        if self.first_ts.is_none() {
            self.first_ts = Some(ts);
            self.window = self.window_of(ts);
        }
        if ts <= self.clock {
            if ts < self.clock.saturating_sub(self.cfg.test_period.ns()) {
                self.stats.behind_clock += 1;
            }
            return;
        }
        self.clock = ts;
        self.settle_owed(ts);
        let w = self.window_of(ts);
        if w > self.window {
            self.close_window(w);
        }
    }

    /// Judge again the sources whose dedup period ended by `ts` while the
    /// window that fired during it is still open. (A window that closed
    /// first is gone: its failures are counted in the next alert's
    /// `previous_alert.failed_attempts_since`.)
    fn settle_owed(&mut self, ts: i64) {
        let dedup = self.cfg.dedup_period.ns();
        while let Some(&Reverse((expiry, a))) = self.owed.peek() {
            if expiry > ts {
                break;
            }
            self.owed.pop();
            let window = self.window;
            let still = self.sources.get(&a).is_some_and(|s| {
                s.owed
                    && s.win == window
                    && self.window_of(expiry) == window
                    && s.last_alert
                        .as_ref()
                        .is_some_and(|l| l.ts.saturating_add(dedup) == expiry)
            });
            if still {
                self.evaluate(a, (expiry, expiry), true);
            }
        }
    }

    /// The window `self.window` ends; `next` begins. Roll every source's
    /// counts into its history, learn scanners, compute the population
    /// baseline, forget sources with nothing left to remember.
    fn close_window(&mut self, next: i64) {
        let closing = self.window;
        let keep = self.training_windows();
        // Windows the sensor has observed within the training period: those
        // with records, so that days the sensor was down (or a capture's
        // gap) do not count as days a sanctioned scanner was not seen.
        // A window becomes current only with a record in it, so the one
        // closing had records; windows skipped over had none.
        let first_window = self.window_of(self.first_ts.unwrap_or(0));
        let data = self.data_windows.get_or_insert_with(|| {
            // A state from before: every window since the first record.
            (first_window.max(closing.saturating_sub(keep))..closing).collect()
        });
        data.push_back(closing);
        while data.front().is_some_and(|&w| w < next.saturating_sub(keep)) {
            data.pop_front();
        }
        let observed = (data.len() as i64).clamp(0, keep.max(0)) as u32;
        let mut counts: Vec<u32> = Vec::new();
        let min_days = self.cfg.scanner_min_days;
        let share = self.cfg.scanner_min_share;
        // Remember an alert long enough for the next one to say what is new.
        let alert_memory = self
            .cfg
            .training_period
            .ns()
            .max(self.cfg.dedup_period.ns().saturating_mul(7));
        let clock = self.clock;
        self.inv
            .forget_idle(clock, self.cfg.forget_hosts_after.ns());
        let mut forget = Vec::new();
        let (cfg, decide) = (&self.cfg, self.trw_decide);
        for (addr, s) in self.sources.iter_mut() {
            let scanning = s.scanning(cfg, decide);
            let count = s.close_window(keep, next, scanning);
            let scanning = s.scanning_windows(next - keep) as u32;
            s.learned = observed > 0
                && scanning >= min_days
                && f64::from(scanning) >= share * f64::from(observed);
            // The population baseline describes ordinary sources: a sanctioned
            // scanner would otherwise raise the bar for everyone.
            if let Some(c) = count
                && !s.learned
                && !in_any(&cfg.allowlist, addr)
            {
                counts.push(c);
            }
            if s.is_forgettable(clock, alert_memory) {
                forget.push(*addr);
            }
        }
        // Every window's sets start empty: the total is the windows' only.
        self.evidence = 0;
        debug_assert!(self.sources.values().all(|s| s.items() == 0));
        for a in forget {
            self.sources.remove(&a);
        }
        let sources = &self.sources;
        self.source_queue.retain(|(a, _)| sources.contains_key(a));
        if !counts.is_empty() {
            counts.sort_unstable();
            let p99 =
                counts[((counts.len() as f64 * 0.99).ceil() as usize).clamp(1, counts.len()) - 1];
            self.population.push_back(PopWindow {
                window: closing,
                p99,
            });
        }
        while self
            .population
            .front()
            .is_some_and(|p| p.window < next - keep)
        {
            self.population.pop_front();
        }
        self.pop_median = population_median(&self.population);
        self.window = next;
    }

    /// The state of source `a`, created if there is room. A full table makes
    /// room by forgetting a source that holds a single piece of evidence (one
    /// failure or one success, no history, never alerted, not learned): a
    /// spoofed-source SYN flood creates millions of those, and they must not
    /// crowd out a real scanner, whose state grows with every probe. Sources
    /// are examined oldest first, each with more evidence goes to the back
    /// (CLOCK's second chance); when none of the few examined is cheap, the
    /// new source is refused and counted.
    fn source(&mut self, a: Addr) -> Option<&mut Source> {
        if !self.sources.contains_key(&a) {
            if self.sources.len() >= self.cfg.max_sources && !self.evict_cheap_source(None) {
                self.stats.sources_cap_dropped += 1;
                return None;
            }
            let fresh = match self.spare_source.take() {
                Some(mut s) => {
                    s.reset(self.window);
                    s
                }
                None => Box::new(Source::new(self.window)),
            };
            self.source_queue
                .push_back((a, &*fresh as *const Source as usize));
            return Some(self.sources.insert_new(a, fresh));
        }
        self.sources.get_mut(&a)
    }

    /// Forget a cheap source (see [`Analytics::source`]), never `keep`.
    fn evict_cheap_source(&mut self, keep: Option<Addr>) -> bool {
        /// How many queue places ahead a source is prefetched.
        const EVICT_AHEAD: usize = 4;
        /// Sources looked at per new source at most: bounds the cost of a
        /// table full of real evidence.
        const EXAMINE: usize = 32;
        if self.source_queue.len() < self.sources.len() {
            // Loaded from a state directory: the queue is not saved.
            let mut all: Vec<(Addr, usize)> = self
                .sources
                .iter()
                .map(|(a, s)| (*a, s as *const Source as usize))
                .collect();
            all.sort_unstable();
            self.source_queue = all.into();
        }
        for _ in 0..EXAMINE {
            let Some((a, at)) = self.source_queue.pop_front() else {
                return false;
            };
            // Under a flood each new source evicts the oldest: the sources
            // examined next are those a few places on in the queue. Each is
            // a cold 352 bytes that this eviction reads and the source
            // replacing it rewrites.
            if let Some(&(a, ahead)) = self.source_queue.get(EVICT_AHEAD) {
                self.sources.prefetch(&a);
                crate::track::prefetch_span(ahead, std::mem::size_of::<Source>());
            }
            match self.sources.get(&a) {
                Some(s) if s.is_cheap() && keep != Some(a) => {
                    // Kept for the source about to be created.
                    self.spare_source = self.sources.remove(&a);
                    self.evidence -= self.spare_source.as_ref().map_or(0, |s| s.items());
                    self.stats.sources_evicted += 1;
                    return true;
                }
                Some(_) => self.source_queue.push_back((a, at)),
                None => {}
            }
        }
        false
    }

    fn contact(&mut self, src: Addr, dst: Addr) {
        if !self.inv.in_home_net(&dst) {
            return;
        }
        let (down, floor, cap) = (
            self.trw_down,
            self.trw_floor,
            self.cfg.max_targets_per_source,
        );
        let window = self.window;
        self.make_evidence_room(src);
        let mut room = self.room();
        let Some(s) = self.source(src) else {
            return;
        };
        let released = roll(s, window);
        // What rolling released is not room for this contact: simpler, and
        // rare (a source idle across a window boundary).
        let left = room.0;
        let capped = s.first_contact_success(dst, down, floor, cap, &mut room);
        self.account(released, left - room.0, capped.total);
    }

    /// Items the next failure or contact may add.
    fn room(&self) -> Room {
        Room(self.cfg.max_evidence_items.saturating_sub(self.evidence))
    }

    /// A source released `released` items (its window closed), then added
    /// `added`.
    fn account(&mut self, released: usize, added: usize, total_capped: bool) {
        self.evidence = (self.evidence + added).saturating_sub(released);
        if total_capped {
            self.stats.evidence_cap_hit += 1;
        }
    }

    /// Near the total, forget a cheap source (a spoofed one-off, oldest
    /// first; never `src`, whose evidence is about to grow) so that the
    /// evidence budget goes to sources that keep probing.
    fn make_evidence_room(&mut self, src: Addr) {
        /// Items one failure adds at most: contacted, target, host, subnet,
        /// port, sample; or contacted, active host and its port.
        const FAILURE_ITEMS: usize = 6;
        if self.evidence + FAILURE_ITEMS > self.cfg.max_evidence_items {
            self.evict_cheap_source(Some(src));
        }
    }

    fn failed(&mut self, e: &Failure) {
        // The target's state when the probe was sent.
        let state = self.inv.state(&e.key.dst, e.first_ts);
        if state == TargetState::Untracked {
            self.stats.failed_untracked += 1;
            return;
        }
        let cfg = &self.cfg;
        let (up, cap, sample) = (self.trw_up, cfg.max_targets_per_source, cfg.alert_sample);
        let window = self.window;
        self.make_evidence_room(e.key.src);
        let mut room = self.room();
        let Some(s) = self.source(e.key.src) else {
            return;
        };
        let released = roll(s, window);
        // Counted by what was taken from the room: `items` costs ten
        // lengths, at every failure of a flood.
        let left = room.0;
        let capped = s.record_failure(e, state, up, cap, sample, &mut room);
        if capped.per_source {
            self.stats.targets_cap_hit += 1;
        }
        self.account(released, left - room.0, capped.total);
        self.evaluate(e.key.src, (e.first_ts, e.decided_ts), false);
    }

    /// After a failure of `src` (its probe at `ts`, decided at `decided`),
    /// or when the dedup period that held back a verdict of its window ends
    /// (`deferred`, both times the end): does any rule fire, and may it
    /// alert?
    fn evaluate(&mut self, src: Addr, (ts, decided): (i64, i64), deferred: bool) {
        // One lookup for all of it: under a flood this runs at every
        // failure, and each lookup of the source hashed its address again.
        let Analytics {
            cfg,
            inv,
            sources,
            first_ts,
            clock,
            pop_median,
            stats,
            trw_decide,
            out,
            owed,
            ..
        } = self;
        let s = sources.get_mut(&src).expect("source exists");
        let own_max = s.history_max();
        let pop_p99 = *pop_median;
        let threshold = [
            f64::from(cfg.min_failed_targets),
            own_max.map_or(0.0, |m| (f64::from(m) * cfg.own_baseline_factor).ceil()),
            pop_p99.map_or(0.0, |p| (f64::from(p) * cfg.population_factor).ceil()),
        ]
        .into_iter()
        .fold(0.0, f64::max) as u32;
        let verdict = s.verdict(cfg, threshold, *trw_decide);
        let Some(variation) = verdict.variation() else {
            return;
        };
        // Suppression, in the order an analyst would ask about it.
        let activated =
            first_ts.is_some_and(|f| clock.saturating_sub(f) >= cfg.activation_period.ns());
        let reason_suppressed = if !activated {
            Some(&mut stats.suppressed_activation)
        } else if in_any(&cfg.allowlist, &src) {
            Some(&mut stats.suppressed_allowlist)
        } else if !cfg.alert_external_sources && !inv.in_home_net(&src) {
            Some(&mut stats.suppressed_external)
        } else if s.learned {
            Some(&mut stats.suppressed_learned_scanner)
        } else if s
            .last_alert
            .as_ref()
            .is_some_and(|l| decided < l.ts.saturating_add(cfg.dedup_period.ns()))
        {
            // Judged again when the period ends, if there is more than the
            // last alert said (with a dedup period shorter than the window,
            // the rest of the same sweep would otherwise be alerted again).
            if !s.owed && s.new_since_alert() {
                s.owed = true;
                let l = s.last_alert.as_mut().expect("checked");
                if !l.owed_queued {
                    l.owed_queued = true;
                    owed.push(Reverse((l.ts.saturating_add(cfg.dedup_period.ns()), src)));
                }
            }
            Some(&mut stats.suppressed_dedup)
        } else {
            None
        };
        if let Some(counter) = reason_suppressed {
            // Count each source once per window, not once per failure.
            if !s.suppressed_noted {
                s.suppressed_noted = true;
                *counter += 1;
            }
            return;
        }
        let baseline = alert::Baseline {
            own_max,
            population_p99: pop_p99,
            threshold,
            training_windows: s.history_len(),
            trw_decide: *trw_decide,
            window_start: s.win.saturating_mul(cfg.test_period.ns()),
        };
        let a = Alert::new(
            src,
            (ts, decided),
            variation,
            &verdict,
            s,
            &baseline,
            deferred,
        );
        s.alerted(ts, decided);
        stats.alerts += 1;
        match a.severity {
            alert::Severity::Low => stats.alerts_low += 1,
            alert::Severity::Informational => stats.alerts_informational += 1,
        }
        out.push(a);
    }

    /// Sources currently learned as sanctioned scanners.
    pub fn learned_scanners(&self) -> Vec<(Addr, usize)> {
        let mut v: Vec<(Addr, usize)> = self
            .sources
            .iter()
            .filter(|(_, s)| s.learned)
            .map(|(a, s)| (*a, s.scanning_windows(i64::MIN)))
            .collect();
        v.sort();
        v
    }

    /// What the inventory knows of `a`.
    pub fn host(&self, a: &Addr) -> Option<Host> {
        self.inv.get(a)
    }

    /// Reason names, for summaries.
    pub fn reason_name(r: Reason) -> &'static str {
        r.name()
    }
}

/// Make `win` the source's current window; the items it released (a new
/// window holds none).
fn roll(s: &mut Source, win: i64) -> usize {
    if s.win >= win {
        return 0;
    }
    let released = s.items();
    s.roll_to(win);
    debug_assert_eq!(s.items(), 0);
    released
}

#[cfg(test)]
mod tests;
