//! Flow tracker: connection attempts, their outcomes, event-time timers.
//!
//! # Attempts and outcomes (Zeek's vocabulary)
//! An *attempt* is a chain of SYNs from the initiator with one 5-tuple and one
//! initial sequence number (ISN). Retransmissions, and a SYN re-sent after a RST
//! with the same ISN, belong to the same attempt; a new source port or a new ISN
//! starts a new one. An attempt ends as:
//!
//! * **success**: a SYN-ACK from the responder (Zeek S1 and later states). When the
//!   reply direction is not captured, an ACK/data segment or a FIN from the
//!   initiator proves the handshake completed: success, counted as a capture gap.
//! * **rejected**: a RST from the responder before any SYN-ACK (Zeek REJ).
//! * **unreachable**: an ICMP/ICMPv6 destination-unreachable whose quote matches the
//!   attempt's 5-tuple (and ISN, when the quote holds it).
//! * **unanswered**: nothing from the responder within `syn_timeout` after the
//!   attempt's last SYN (Zeek S0; RSTOS0 when the initiator itself sent a RST).
//!
//! Beyond TCP SYNs:
//! * a UDP datagram (or ICMP echo, or any IP protocol) that draws an ICMP
//!   destination-unreachable is an *unreachable* attempt; a UDP datagram without a
//!   reply is no failure, so UDP itself is not tracked, only the errors;
//! * stealth probes (FIN, NULL, Xmas: no SYN and no ACK) answered by a RST are
//!   *rejected* attempts with their probe kind; an ACK probe (ACK without a
//!   prior SYN) is not decoded (it looks like any established segment), so it is
//!   inferred from the bare RST (no ACK flag, RFC 793) that answers it, when the
//!   ACK-probe direction was seen and the RST's sender never sent an ACK/data
//!   segment on that flow (a per-partition Bloom sketch);
//! * an ARP request that no reply answers within `arp_timeout` is an *unresolved*
//!   attempt: on-link targets that do not exist produce nothing but ARP.
//!
//! # Determinism
//! Attempts live in [`PARTITIONS`] partitions chosen by a symmetric hash of the
//! address pair; every table and cap is per partition. A tracker shard owns the
//! partitions `p` with `p % shards == shard`, so what happens to a flow depends
//! only on the packets of its partition, whatever the number of shards. Timers
//! fire at block boundaries against a watermark computed over all packets, so
//! they fire at the same points too. Events carry an [`Order`] key; sorting a
//! block's events by it gives the same sequence for any number of shards.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::decode::{Addr, FlowKey, Proto, Summary, What, tcp_flags::*};

mod hash;
mod huge;
mod table;
pub use hash::{flow_hash, flow_hash_and_partition, partition_of};
use huge::TableAlloc;
pub(crate) use table::PREFETCH_SLOTS;
use table::{Attempts, NO_BASE, RETRANS_MAX};

/// Number of partitions of the attempt table. Fixed (not derived from the thread
/// count) so that caps and evictions are the same for any number of threads.
pub const PARTITIONS: usize = 64;

const NS: i64 = 1_000_000_000;

/// Tunables of the tracker. Durations are nanoseconds of event time.
#[derive(Clone, Debug)]
pub struct TrackConfig {
    /// How long after an attempt's last SYN a reply is still awaited; longer, the
    /// attempt is `unanswered`. Default 40 s: Linux retransmits a SYN after 1, 2,
    /// 4, 8, 16 and 32 s (macOS and Windows use no longer gaps), so a window above
    /// the largest gap, 32 s, keeps a whole retransmission chain one attempt; 8 s
    /// of margin absorb timer slack. Longer windows hold more state in a SYN flood
    /// and delay `unanswered` events by as much.
    pub syn_timeout: i64,
    /// How long after the last ARP request a reply is awaited. Default 5 s: Linux
    /// gives up after 3 requests 1 s apart.
    pub arp_timeout: i64,
    /// Disorder tolerated between packets: timers fire only once the watermark
    /// (the latest timestamp seen) is this far past their deadline. Default 5 s.
    pub reorder_tolerance: i64,
    /// Cap on attempts held at once, all partitions together. A full
    /// partition decides its oldest attempt early, marked `evicted`
    /// (`scanwatch_pending_evicted_total`). Default 786,432: 64 partitions
    /// of 12,288 entries, in tables of 2^14 buckets (the cap plus 1/6 of
    /// slack is 7/8 of that, the most such a table holds). An IPv4 attempt
    /// is packed in 40 bytes (see [`table`]), plus one control byte a
    /// bucket: 43 MB when full (55 bytes an attempt; 108 for IPv6, whose
    /// entries are 80 bytes), and 16 bytes of timer each (21 at the cap: the
    /// timer queue grows by doubling, to 16,384 slots). A busy network has far fewer
    /// attempts waiting (answers come in milliseconds); only unanswered
    /// probes stay for `syn_timeout`, so the default holds 20k unanswered
    /// SYN/s before it evicts.
    pub max_pending: usize,
    /// Addresses whose liveness and successful contacts are reported
    /// ([`Alive`], [`Contact`]): the analytics' `home_net`, the only hosts its
    /// inventory keeps. `None` reports every address. On a SPAN port most
    /// addresses are on the internet: filtering here, once per address and
    /// minute, spares the output sort and the analytics' reorder buffer
    /// hundreds of thousands of records they would drop.
    pub evidence_nets: Option<Vec<crate::config::Cidr>>,
}

impl Default for TrackConfig {
    fn default() -> Self {
        TrackConfig {
            syn_timeout: 40 * NS,
            arp_timeout: 5 * NS,
            reorder_tolerance: 5 * NS,
            max_pending: 786_432,
            evidence_nets: None,
        }
    }
}

/// Why an attempt failed.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Reason {
    Rejected,
    Unanswered,
    Unreachable,
    Unresolved,
}

impl Reason {
    pub const ALL: [Reason; 4] = [
        Reason::Rejected,
        Reason::Unanswered,
        Reason::Unreachable,
        Reason::Unresolved,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Reason::Rejected => "rejected",
            Reason::Unanswered => "unanswered",
            Reason::Unreachable => "unreachable",
            Reason::Unresolved => "unresolved",
        }
    }
}

/// What the initiator sent.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Probe {
    /// TCP SYN (a connection attempt or a SYN scan).
    Syn,
    /// TCP FIN without ACK (nmap -sF).
    Fin,
    /// TCP segment with no flags (nmap -sN).
    Null,
    /// TCP FIN+PSH+URG (nmap -sX).
    Xmas,
    /// Any other flag set without SYN, ACK or RST.
    OtherFlags,
    /// TCP ACK without a prior SYN (nmap -sA), inferred from the RST answering it.
    Ack,
    /// A UDP datagram, known through the ICMP error that quotes it.
    Udp,
    /// An ICMP/ICMPv6 message (ping sweep), known through the error quoting it.
    Icmp,
    /// A datagram of another IP protocol (IP protocol scan).
    IpProto,
    /// An ARP request.
    Arp,
}

impl Probe {
    pub fn name(self) -> &'static str {
        match self {
            Probe::Syn => "syn",
            Probe::Fin => "fin",
            Probe::Null => "null",
            Probe::Xmas => "xmas",
            Probe::OtherFlags => "other_flags",
            Probe::Ack => "ack",
            Probe::Udp => "udp",
            Probe::Icmp => "icmp",
            Probe::IpProto => "ip_proto",
            Probe::Arp => "arp",
        }
    }

    fn stealth(flags: u8) -> Probe {
        match flags {
            0 => Probe::Null,
            FIN => Probe::Fin,
            f if f == FIN | PSH | URG => Probe::Xmas,
            _ => Probe::OtherFlags,
        }
    }

    fn datagram(proto: Proto) -> Probe {
        match proto {
            Proto::Udp => Probe::Udp,
            Proto::Icmp | Proto::Icmpv6 => Probe::Icmp,
            _ => Probe::IpProto,
        }
    }
}

/// How an address was seen alive (a bit set); see [`crate::inventory`] for
/// why these and only these prove a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Seen {
    SynAck = 1,
    Data = 2,
    Fin = 4,
    Arp = 8,
}

impl Seen {
    pub const ALL: [Seen; 4] = [Seen::SynAck, Seen::Data, Seen::Fin, Seen::Arp];
    pub fn name(self) -> &'static str {
        match self {
            Seen::SynAck => "syn_ack",
            Seen::Data => "data",
            Seen::Fin => "fin",
            Seen::Arp => "arp",
        }
    }
    /// Names of the kinds set in `mask`.
    pub fn names(mask: u8) -> Vec<&'static str> {
        Seen::ALL
            .iter()
            .filter(|k| mask & **k as u8 != 0)
            .map(|k| k.name())
            .collect()
    }
}

/// `addr` proved alive at `ts`. Reported at most once per minute and kind
/// per shard (the inventory keeps minutes, so repeats would change nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Alive {
    pub addr: Addr,
    pub ts: i64,
    pub how: Seen,
    pub order: Order,
}

/// A successful connection from `src` to `dst` (SYN-ACK, or a capture gap):
/// the sequential test's evidence of benign behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contact {
    pub src: Addr,
    pub dst: Addr,
    pub ts: i64,
    pub order: Order,
}

/// The ICMP error that made an attempt unreachable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpInfo {
    pub icmp_type: u8,
    pub code: u8,
    /// The router (or host) that sent the error.
    pub sender: Addr,
}

/// Where an event sits in the canonical output order (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Order {
    /// Block the event was emitted in (`u64::MAX` for the end-of-input flush).
    pub block: u64,
    /// 0: timers fired at the block's start; 1: decided by a packet of the block.
    pub phase: u8,
    /// The deadline (phase 0, flush) or the global packet index (phase 1).
    pub at: i64,
}

/// One failed connection attempt: what `--events` writes, one JSON line each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// Initiator → target (`src` is always the initiator).
    pub key: FlowKey,
    pub reason: Reason,
    pub probe: Probe,
    /// Time of the first probe (of the answer, when the probe is not tracked).
    pub first_ts: i64,
    /// Time of the last probe before the outcome.
    pub last_ts: i64,
    /// When the outcome was decided: the answer's time, or the timer deadline.
    pub decided_ts: i64,
    /// Probes re-sent before the outcome (SYN retransmissions, repeated ARP
    /// requests); it stops at 65,535.
    pub retransmissions: u32,
    pub icmp: Option<IcmpInfo>,
    pub vlan: [u16; 2],
    /// The initiator reset its own unanswered attempt (Zeek RSTOS0).
    pub initiator_reset: bool,
    /// The input ended before the attempt's timeout ran out.
    pub at_capture_end: bool,
    /// Decided before its timeout to make room: the pending table was full
    /// (see [`TrackConfig::max_pending`]).
    pub evicted: bool,
    pub order: Order,
}

#[cfg(test)]
impl Event {
    /// For tests: a failed SYN of `key`, probed and decided at `ts`.
    pub(crate) fn syn_failure(key: FlowKey, reason: Reason, ts: i64, order: Order) -> Event {
        Event {
            key,
            reason,
            probe: Probe::Syn,
            first_ts: ts,
            last_ts: ts,
            decided_ts: ts,
            retransmissions: 0,
            icmp: None,
            vlan: [0, 0],
            initiator_reset: false,
            at_capture_end: false,
            evicted: false,
            order,
        }
    }
}

/// Counters of one tracker shard; summed over shards for the run summary.
#[derive(Clone, Debug, Default)]
pub struct TrackStats {
    /// TCP SYN attempts (retransmissions excluded).
    pub syn_attempts: u64,
    /// Stealth probes (FIN/NULL/Xmas/other) seen.
    pub stealth_probes: u64,
    /// Attempts answered by SYN-ACK.
    pub successes: u64,
    /// Successes proven by the initiator's ACK/data/FIN (SYN-ACK not captured).
    pub capture_gaps: u64,
    pub failed: [u64; 4],
    pub retransmissions: u64,
    /// SYN-ACKs matching no attempt (backscatter, or the SYN was not captured).
    pub synack_unmatched: u64,
    /// RSTs matching no attempt and not inferred as answers to ACK probes.
    pub rst_unmatched: u64,
    /// ICMP errors quoting a TCP segment that matches no attempt.
    pub icmp_unmatched: u64,
    /// ICMP errors whose quoted sequence number is not the attempt's ISN.
    pub icmp_seq_mismatch: u64,
    /// Attempts refused because their partition was full.
    pub pending_cap_dropped: u64,
    /// Attempts decided early (as `evicted`) to make room in a full table.
    pub pending_evicted: u64,
    /// Partition tables rebuilt at their own size to clear deleted slots
    /// (see `Tracker::store`): a cost of churn at the cap, not a loss.
    pub table_rebuilds: u64,
    /// Timer queues cleared of the timers of removed entries (see
    /// [`TIMERS_PER_ENTRY`]): housekeeping of busy or flooded links.
    pub timer_compactions: u64,
    /// Partitions whose base (what packed timestamps and timers count
    /// from) moved on with event time: one per partition about every 18
    /// minutes of capture, and at a gap of more than 36 minutes.
    pub rebases: u64,
    /// Attempts reported `rejected` whose re-sent SYN was later answered by a SYN-ACK.
    pub rejected_then_answered: u64,
    /// ICMP errors that arrived before the probe they quote and were matched.
    pub icmp_reordered: u64,
    /// Largest number of table entries held at once, summed at each block end.
    pub peak_pending: u64,
    /// Attempts taken up from the state directory at the start (see
    /// [`Carried`]).
    pub carried_in: u64,
    /// Attempts still undecided at the end, left to the next run through
    /// the state directory instead of decided `at_capture_end`.
    pub carried_out: u64,
    /// Attempts of the run before not taken up (see [`Tracker::restore`]).
    pub carried_refused: u64,
    /// Attempts of the run before whose timeout ran out before this run's
    /// first packet, decided at once `unanswered` (in `carried_in`).
    pub carried_expired: u64,
}

impl TrackStats {
    pub fn add(&mut self, o: &TrackStats) {
        self.syn_attempts += o.syn_attempts;
        self.stealth_probes += o.stealth_probes;
        self.successes += o.successes;
        self.capture_gaps += o.capture_gaps;
        for i in 0..4 {
            self.failed[i] += o.failed[i];
        }
        self.retransmissions += o.retransmissions;
        self.synack_unmatched += o.synack_unmatched;
        self.rst_unmatched += o.rst_unmatched;
        self.icmp_unmatched += o.icmp_unmatched;
        self.icmp_seq_mismatch += o.icmp_seq_mismatch;
        self.pending_cap_dropped += o.pending_cap_dropped;
        self.pending_evicted += o.pending_evicted;
        self.table_rebuilds += o.table_rebuilds;
        self.timer_compactions += o.timer_compactions;
        self.rebases += o.rebases;
        self.rejected_then_answered += o.rejected_then_answered;
        self.icmp_reordered += o.icmp_reordered;
        // Shards peak at different moments: the sum bounds the true peak from above.
        self.peak_pending += o.peak_pending;
        self.carried_in += o.carried_in;
        self.carried_out += o.carried_out;
        self.carried_refused += o.carried_refused;
        self.carried_expired += o.carried_expired;
    }

    pub fn failed(&self, r: Reason) -> u64 {
        self.failed[r as usize]
    }
}

/// The life of a table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// SYN(s) sent, no answer yet (Zeek S0 so far).
    SynPending,
    /// Stealth probe sent, waiting for a RST.
    StealthPending,
    /// ARP request(s) sent, no reply yet.
    ArpPending,
    /// Failure already reported; the entry stays until its deadline so that
    /// re-sent probes (same ISN) and repeated errors are not reported again.
    Reported,
}

/// One entry of the attempt table (stored packed when it can be: see
/// [`table`]).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Attempt {
    key: FlowKey,
    hash: u64,
    first_ts: i64,
    last_ts: i64,
    isn: u32,
    retrans: u32,
    vlan: [u16; 2],
    state: State,
    probe: Probe,
    initiator_reset: bool,
}

impl Attempt {
    /// A new entry for a first probe seen at `ts`.
    fn new(
        key: FlowKey,
        hash: u64,
        ts: i64,
        isn: u32,
        vlan: [u16; 2],
        state: State,
        probe: Probe,
    ) -> Attempt {
        Attempt {
            key,
            hash,
            first_ts: ts,
            last_ts: ts,
            isn,
            retrans: 0,
            vlan,
            state,
            probe,
            initiator_reset: false,
        }
    }
}

/// An attempt still undecided when a run with a state directory ends, as
/// the state keeps it: the next run takes it up where this one left it
/// ([`Tracker::restore`]), so that a restart (or a capture replayed in
/// pieces) does not decide a handshake that spans it as a failure. Plain
/// fields for storage; [`Carried::is_valid`] tells what no tracker makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Carried {
    pub key: FlowKey,
    pub first_ts: i64,
    pub last_ts: i64,
    pub isn: u32,
    pub retrans: u32,
    pub vlan: [u16; 2],
    /// 0 SYN sent, 1 stealth probe sent, 2 ARP request sent, 3 failure
    /// already reported (kept to its deadline to absorb re-sent probes).
    pub state: u8,
    /// [`Probe`] by its position in the order of its variants.
    pub probe: u8,
    pub initiator_reset: bool,
}

impl Carried {
    fn of(a: &Attempt) -> Carried {
        Carried {
            key: a.key,
            first_ts: a.first_ts,
            last_ts: a.last_ts,
            isn: a.isn,
            retrans: a.retrans,
            vlan: a.vlan,
            state: table::STATES
                .iter()
                .position(|&x| x == a.state)
                .expect("a state") as u8,
            probe: table::PROBES
                .iter()
                .position(|&x| x == a.probe)
                .expect("a probe") as u8,
            initiator_reset: a.initiator_reset,
        }
    }

    /// Whether its fields are ones a tracker makes (a state file can be
    /// damaged or written by hand).
    pub fn is_valid(&self) -> bool {
        self.attempt().is_some()
    }

    fn attempt(&self) -> Option<Attempt> {
        let state = *table::STATES.get(usize::from(self.state))?;
        let probe = *table::PROBES.get(usize::from(self.probe))?;
        let arp = self.key.proto == Proto::Arp;
        // What the tracker pairs: a SYN attempt with a SYN, a stealth probe
        // with its flags, an ARP request with ARP (IPv4 on both sides).
        let paired = match state {
            State::SynPending => probe == Probe::Syn,
            State::StealthPending => {
                matches!(
                    probe,
                    Probe::Fin | Probe::Null | Probe::Xmas | Probe::OtherFlags
                )
            }
            State::ArpPending => probe == Probe::Arp,
            State::Reported => true,
        };
        if !paired
            || arp != (probe == Probe::Arp)
            || (arp && !(self.key.src.is_v4() && self.key.dst.is_v4()))
            || self.retrans > table::RETRANS_MAX
            || self.first_ts > self.last_ts
            || self.vlan.iter().any(|&v| v > 0x0fff)
        {
            return None;
        }
        Some(Attempt {
            key: self.key,
            hash: flow_hash(&self.key),
            first_ts: self.first_ts,
            last_ts: self.last_ts,
            isn: self.isn,
            retrans: self.retrans,
            vlan: self.vlan,
            state,
            probe,
            initiator_reset: self.initiator_reset,
        })
    }
}

/// A sketch of which flow directions sent ACK/data segments recently: a
/// blocked Bloom filter in two generations, the older cleared at each
/// rotation. It tells a RST answering an ACK probe (the RST's sender never
/// spoke on the flow) from a connection abort (it did).
///
/// Blocked: a direction's bits, for both facts kept about it ([`Fact`]) and
/// in both generations, lie in one 16-byte pair of words, so recording an
/// ACK/data segment (94% of a SPAN port) costs one cache miss, not four, and
/// [`Sketch::prefetch`] can start that miss ahead of time.
///
/// Sized for a scan concentrated on one address pair, which lands in a single
/// partition: 2^14 pairs of words, three bits per fact, keep the
/// false-positive rate near 0.01% with 10,000 directions in a generation (a
/// false positive loses one ACK probe, never invents one). 256 KiB per
/// partition, 16 MiB in all. One sketch holds the partitions of a shard, in
/// one buffer of huge pages ([`huge`]: a lookup in 4 KiB pages was a TLB
/// miss as well as a cache miss); a partition's words are the `n`th
/// [`SKETCH_WORDS`] of it, `n` its rank among the shard's partitions.
struct Sketch {
    /// `[generation 0, generation 1]` words; `cur` is the one being written.
    words: huge::HugeBuf<[u64; 2]>,
    cur: usize,
    /// Whether each partition's generations have a bit set: an untouched one
    /// needs no clearing (a sparse capture rotates often and sets few bits).
    dirty: Vec<[bool; 2]>,
}

/// What the sketch records about a flow direction.
#[derive(Clone, Copy)]
enum Fact {
    /// It sent an ACK or data segment (or a SYN-ACK, FIN-ACK, RST-ACK).
    Spoke,
    /// It sent an ACK without payload.
    PureAck,
}

const SKETCH_WORDS: usize = 1 << 14;

impl Sketch {
    /// The sketch of `parts` partitions.
    fn new(parts: usize) -> Sketch {
        Sketch {
            words: huge::HugeBuf::zeroed(parts * SKETCH_WORDS),
            cur: 0,
            dirty: vec![[false; 2]; parts],
        }
    }
    /// The index of direction `h`'s word pair in the `n`th partition's words
    /// (bits 44.. of the hash) and the fact's three bits in it (bits 20..38,
    /// salted per fact): disjoint hash bits.
    #[inline]
    fn slot(n: usize, h: u64, fact: Fact) -> (usize, u64) {
        let w = n * SKETCH_WORDS + ((h >> 44) as usize & (SKETCH_WORDS - 1));
        let b = match fact {
            Fact::Spoke => h,
            Fact::PureAck => h ^ 0x9e37_79b9_7f4a_7c15u64.rotate_left(20),
        } >> 20;
        (
            w,
            1 << (b & 63) | 1 << ((b >> 6) & 63) | 1 << ((b >> 12) & 63),
        )
    }
    /// Record `fact` about direction `h` in the `n`th partition.
    #[inline]
    fn set(&mut self, n: usize, h: u64, fact: Fact) {
        let (w, m) = Sketch::slot(n, h, fact);
        self.dirty[n][self.cur] = true;
        self.words[w][self.cur] |= m;
    }
    fn contains(&self, n: usize, h: u64, fact: Fact) -> bool {
        let (w, m) = Sketch::slot(n, h, fact);
        let pair = self.words[w];
        pair[0] & m == m || pair[1] & m == m
    }
    /// Start loading direction `h`'s words into the cache.
    #[inline]
    fn prefetch(&self, n: usize, h: u64) {
        let (w, _) = Sketch::slot(n, h, Fact::Spoke);
        prefetch(&self.words[w]);
    }
    /// Every partition's older generation becomes the one written, cleared.
    fn rotate(&mut self) {
        self.cur ^= 1;
        let c = self.cur;
        for (n, dirty) in self.dirty.iter_mut().enumerate() {
            if dirty[c] {
                for pair in &mut self.words[n * SKETCH_WORDS..(n + 1) * SKETCH_WORDS] {
                    pair[c] = 0;
                }
                dirty[c] = false;
            }
        }
    }
}

/// Ask the CPU to start loading the cache line holding `x`: lookups into
/// tables far larger than the cache, known a few packets ahead, overlap
/// their misses instead of waiting for each in turn.
#[inline(always)]
pub(crate) fn prefetch<T: ?Sized>(x: &T) {
    prefetch_addr((x as *const T).cast::<u8>());
}

/// [`prefetch`] every cache line `x` spans (a 120-byte record spans two or
/// three).
#[inline(always)]
pub(crate) fn prefetch_lines<T>(x: &T) {
    let start = (x as *const T).cast::<u8>();
    let size = std::mem::size_of::<T>();
    let mut off = 0;
    while off < size {
        prefetch_addr(start.wrapping_add(off));
        off += 64;
    }
    if size > 0 {
        prefetch_addr(start.wrapping_add(size - 1));
    }
}

/// [`prefetch`] the cache lines of the `size` bytes at address `at`, an
/// address kept only for this (see `Analytics::source_queue`): a prefetch
/// never faults, even where nothing lives any more.
#[inline(always)]
pub(crate) fn prefetch_span(at: usize, size: usize) {
    if size == 0 {
        return;
    }
    // Each line the bytes touch, once, whether or not `at` starts one.
    let last = at.wrapping_add(size - 1) & !63;
    let mut line = at & !63;
    loop {
        prefetch_addr(line as *const u8);
        if line == last {
            break;
        }
        line = line.wrapping_add(64);
    }
}

#[inline(always)]
fn prefetch_addr(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint that never faults and reads nothing into
    // the program, whatever the address: a computed bucket address (see
    // `track::table::Attempts::prefetch`) or a freed source's is fine.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

struct Partition {
    table: Attempts,
    /// This partition's rank among its shard's: where its words are in the
    /// shard's [`Sketch`].
    nth: usize,
    /// A timer for each entry, in insertion order. Deadlines are the packet
    /// time plus a constant, so the queue is sorted but for the capture's
    /// disorder; an entry whose deadline moved on is re-queued when popped, and a
    /// removed entry's timer is dropped when popped. Per partition, so which
    /// timers fire at a block boundary does not depend on the thread count.
    timers: VecDeque<Timer>,
    /// ICMP errors quoting a TCP probe not seen yet, by the probe's flow hash,
    /// kept for `reorder_tolerance`: in live capture with several fanout
    /// handles, the error and the probe it quotes can come through different
    /// handles, the error first. A SYN arriving in time claims its error.
    orphans: HashMap<u64, Orphan, ahash::RandomState>,
    /// (time, hash) of each orphan, oldest first, for expiry.
    orphan_queue: VecDeque<(i64, u64)>,
}

/// How many timers ahead of the one being handled the table entry is
/// prefetched (see [`table::Attempts::prefetch`]).
const TIMERS_AHEAD: usize = 8;

/// A timer: the entry's flow hash and when to look at it, in whole
/// microseconds after the partition's base ([`Attempts::base`]), rounded
/// down, 0 for any time before the base, `u32::MAX` for any time 71 minutes
/// or more after it. 12 bytes instead of 16: a partition at its cap holds
/// one per entry.
///
/// The time a timer was made for lies in the microsecond it keeps (but for
/// the clipping). When a block's due time falls inside that microsecond
/// (a capture of nanoseconds), [`Tracker::fire_timers`] asks the entry: its
/// deadline, if still in that microsecond, is taken for the timer's own
/// (exactly so, unless a duplicate probe a few nanoseconds later moved it:
/// then the timers behind it can wait one block more than they would with
/// exact deadlines; none fires early). A
/// time before the base fires at the next block: the base stays behind
/// every due time (see [`REBASE_KEEP`]). A time clipped to `u32::MAX` is
/// never due: the base moves on before a due time gets 36 minutes past it
/// (see [`REBASE_AFTER`]), and [`Partition::rebase`] takes the entry's
/// deadline again for it. Only a timeout of 35 minutes or more clips a
/// timer when it is made: a new attempt 36 minutes past the base moves the
/// base first ([`Tracker::store_new`]).
#[derive(Clone, Copy, Debug)]
#[repr(C, packed(4))]
struct Timer {
    at: u32,
    hash: u64,
}

impl Timer {
    fn new(deadline: i64, base: i64, hash: u64) -> Timer {
        let d = i128::from(deadline) - i128::from(base);
        let at = if d <= 0 {
            0
        } else {
            u32::try_from(d / 1000).unwrap_or(u32::MAX)
        };
        Timer { at, hash }
    }

    /// The start of the microsecond it keeps.
    fn due(self, base: i64) -> i64 {
        let t = i128::from(base) + i128::from(self.at) * 1000;
        i64::try_from(t).unwrap_or(i64::MAX)
    }

    fn hash(self) -> u64 {
        self.hash
    }
}

/// A partition's base moves on once the due time is this far past it (2^31
/// microseconds, 36 minutes: half of what a packed timestamp or a timer
/// holds), so that every due time a timer is compared with lies within 36
/// minutes of the base and a clipped timer (71 minutes) is never due.
const REBASE_AFTER: i64 = (1 << 31) * 1000;

/// How far before the due time a partition's base moves to (2^30
/// microseconds, 18 minutes): attempts waiting longer than that (a
/// configured timeout beyond it) move to the unpacked table.
const REBASE_KEEP: i64 = (1 << 30) * 1000;

/// A base `keep` before `t`, rounded down to a whole microsecond (so that
/// a capture's microsecond timestamps are whole microseconds after it), and
/// never [`NO_BASE`]: near the start of `i64` time it stays just after it.
fn base_before(t: i64, keep: i64) -> i64 {
    const EARLIEST: i64 = i64::MIN / 1000 * 1000;
    t.saturating_sub(keep)
        .div_euclid(1000)
        .saturating_mul(1000)
        .max(EARLIEST)
}

/// Timers a partition holds before those of removed entries are dropped:
/// this many per entry (or per [`TIMERS_MIN`]). A removed entry's timer is
/// otherwise dropped only when its deadline comes: every answered SYN
/// leaves one for `syn_timeout`, so a busy network (or a SYN/SYN-ACK flood
/// at 1M/s: 40M timers, 640 MB) would grow the queues with its rate,
/// beyond any cap.
const TIMERS_PER_ENTRY: usize = 2;

/// Per partition, the timers a small table may keep regardless: compacting
/// a queue of a few entries at every insertion would cost more than it saves.
/// (Small in tests, so that the arbitrary-input proptest compacts.)
#[cfg(not(test))]
const TIMERS_MIN: usize = 1024;
#[cfg(test)]
const TIMERS_MIN: usize = 4;

impl Partition {
    /// Drop the timers whose entry is gone (answered, replaced, removed),
    /// and all but the newest of an entry's timers (a key removed and
    /// inserted again left the old one behind; the newest is the current
    /// entry's): one a live entry stays, in queue order. Called when the
    /// queue holds more than twice the entries, so each compaction drops
    /// more than half of what it scans, every dropped timer paid for by its
    /// insertion: amortized O(1). Deterministic: it depends on the
    /// partition's own state only. The queue is rebuilt at the size that
    /// triggers the next compaction at today's table size, which gives a
    /// burst's memory back.
    ///
    /// Two timers of different keys with one 64-bit flow hash would keep
    /// one timer between them; lookups by hash (`get_by_hash`) already take
    /// the hash for the key.
    ///
    /// The queue is in insertion order, not deadline order (an ARP request
    /// waits 5 s, a SYN 40 s): an ARP entry whose older timer is dropped
    /// keeps its newer one, which may wait behind a SYN timer pushed in
    /// between, as any ARP timer may today; the event keeps its deadline as
    /// `decided_ts`, only its block can be later.
    fn drop_stale_timers(&mut self) {
        let table = &self.table;
        let mut seen: HashSet<u64, ahash::RandomState> = HashSet::with_capacity_and_hasher(
            table.len(),
            ahash::RandomState::with_seeds(1, 2, 3, 4),
        );
        let mut kept = VecDeque::with_capacity(TIMERS_PER_ENTRY * table.len().max(TIMERS_MIN) + 1);
        for &t in self.timers.iter().rev() {
            if table.has_hash(t.hash()) && seen.insert(t.hash()) {
                kept.push_front(t);
            }
        }
        self.timers = kept;
    }

    /// Move the partition's base to `base` (see [`Attempts::rebase`]): each
    /// timer keeps the time it had (times before the new base become 0,
    /// which is as due as they were); a clipped one takes its entry's
    /// deadline, if the entry is still there.
    fn rebase(&mut self, base: i64, room: usize, cfg: &TrackConfig) {
        let old = self.table.base();
        for t in self.timers.iter_mut() {
            let when = if t.at == u32::MAX {
                self.table
                    .get_by_hash(t.hash())
                    .map_or(t.due(old), |a| deadline_of(cfg, &a))
            } else {
                t.due(old)
            };
            *t = Timer::new(when, base, t.hash());
        }
        self.table.rebase(base, room);
    }
}

/// An ICMP error waiting for the probe it quotes.
#[derive(Clone, Copy, Debug)]
struct Orphan {
    key: FlowKey,
    seq: Option<u32>,
    icmp: IcmpInfo,
    ts: i64,
}

/// ICMP errors held per partition at most (the oldest give way, counted as
/// unmatched): backscatter can bring many that no probe will ever claim.
const ORPHAN_CAP: usize = 1024;

/// One tracker shard: the partitions it owns, their timers, its counters.
pub struct Tracker {
    cfg: TrackConfig,
    shards: usize,
    /// Indexed by partition id; `None` for partitions other shards own.
    parts: Vec<Option<Partition>>,
    cap_per_partition: usize,
    /// Entries a partition's table is sized for: the cap plus 1/6 of slack
    /// for deleted slots, so that a table at its cap is rebuilt (see
    /// [`Tracker::store`]) after thousands of insertions, not after each.
    room: usize,
    /// Counting filter over the hashes of SYN-pending attempts, so that the
    /// many ACK/data segments of established flows skip the table probe.
    filter: Box<[u8]>,
    /// When the ACK/data sketches last rotated (event time).
    sketch_epoch: i64,
    len: usize,
    pub stats: TrackStats,
    out: Vec<Event>,
    alive: Vec<Alive>,
    contacts: Vec<Contact>,
    /// Recent liveness reports, two-way set associative (see [`AliveSet`]).
    alive_cache: huge::HugeBuf<AliveSet>,
    /// The ACK/data sketch of this shard's partitions.
    sketch: Sketch,
}

/// Sets of the liveness cache: 32,768 sets of two entries, 2 MiB.
const ALIVE_SETS: usize = 1 << 15;

/// One set of the liveness cache: (address, minute, kinds reported) for the
/// two addresses last reported among those hashing here, the newer first.
/// Two ways, in one cache line: with one, two busy hosts sharing a slot
/// evicted each other at every packet, and each eviction cost a report (a
/// record through the output sort and the analytics); 400k reports for 8k
/// hosts in 4 minutes of the enterprise capture.
#[derive(Clone, Copy)]
#[repr(align(64))]
struct AliveSet([(Addr, i64, u8); 2]);

impl AliveSet {
    const EMPTY: AliveSet = AliveSet([(Addr([0; 16]), i64::MIN, 0); 2]);
}

/// Whether evidence about `a` is reported (see [`TrackConfig::evidence_nets`]).
#[inline]
fn reported(nets: &Option<Vec<crate::config::Cidr>>, a: &Addr) -> bool {
    nets.as_ref().is_none_or(|n| crate::config::in_any(n, a))
}

const FILTER_SLOTS: usize = 1 << 16;

#[inline]
fn filter_slot(h: u64) -> usize {
    (h >> 48) as usize
}

impl Tracker {
    /// The tracker for `shard` of `shards` (partitions `p % shards == shard`).
    pub fn new(cfg: TrackConfig, shard: usize, shards: usize) -> Tracker {
        assert!((1..=PARTITIONS).contains(&shards) && shard < shards);
        let cap_per_partition = cfg.max_pending.div_ceil(PARTITIONS).max(1);
        let room = cap_per_partition + cap_per_partition.div_ceil(6);
        let owned = (shard..PARTITIONS).step_by(shards).count();
        // Huge pages for each partition's table at its cap, and one more
        // for a rebuild (see `huge::TableArena`): 35 MB at the default cap
        // with one shard, which a flood fills and a quiet network never
        // touches.
        let tables = table::packed_table_bytes(room).map_or_else(TableAlloc::default, |t| {
            TableAlloc::with_arena(t, owned + 1)
        });
        let parts: Vec<Option<Partition>> = (0..PARTITIONS)
            .map(|p| {
                (p % shards == shard).then(|| Partition {
                    table: Attempts::new(tables.clone()),
                    nth: p / shards,
                    timers: VecDeque::new(),
                    orphans: HashMap::with_hasher(ahash::RandomState::with_seeds(1, 2, 3, 4)),
                    orphan_queue: VecDeque::new(),
                })
            })
            .collect();
        Tracker {
            cfg,
            shards,
            parts,
            cap_per_partition,
            room,
            filter: vec![0u8; FILTER_SLOTS].into(),
            sketch_epoch: i64::MIN,
            len: 0,
            stats: TrackStats::default(),
            out: Vec::new(),
            alive: Vec::new(),
            contacts: Vec::new(),
            alive_cache: huge::HugeBuf::new(ALIVE_SETS, AliveSet::EMPTY),
            sketch: Sketch::new(owned),
        }
    }

    /// Number of shards this tracker's partitioning assumes.
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Start of block `block`: `watermark` is the latest timestamp of all packets
    /// before this block (all shards get the same). Fires due timers.
    pub fn begin_block(&mut self, block: u64, watermark: i64) {
        if watermark == i64::MIN {
            return;
        }
        // Rotate the ACK/data sketches once per syn_timeout of event time: a flow
        // direction stays remembered for one to two timeouts.
        if self.sketch_epoch == i64::MIN {
            self.sketch_epoch = watermark;
        } else if watermark.saturating_sub(self.sketch_epoch) >= self.cfg.syn_timeout {
            self.sketch_epoch = watermark;
            self.sketch.rotate();
        }
        let due = watermark.saturating_sub(self.cfg.reorder_tolerance);
        for part in 0..PARTITIONS {
            if let Some(p) = self.parts[part].as_mut() {
                let base = p.table.base();
                if base != NO_BASE && due.saturating_sub(base) > REBASE_AFTER {
                    p.rebase(base_before(due, REBASE_KEEP), self.room, &self.cfg);
                    self.stats.rebases += 1;
                }
            }
            self.fire_timers(part, block, due);
            self.expire_orphans(part, due);
        }
    }

    /// ICMP errors no probe claimed in time are unmatched.
    fn expire_orphans(&mut self, part: usize, due: i64) {
        let Some(p) = self.parts[part].as_mut() else {
            return;
        };
        while let Some(&(t, h)) = p.orphan_queue.front() {
            if t >= due {
                break;
            }
            p.orphan_queue.pop_front();
            if p.orphans.get(&h).is_some_and(|o| o.ts == t) {
                p.orphans.remove(&h);
                self.stats.icmp_unmatched += 1;
            }
        }
    }

    /// A SYN attempt was just stored: did its ICMP error come first?
    fn claim_orphan(
        &mut self,
        part: usize,
        key: &FlowKey,
        hash: u64,
        isn: u32,
        ts: i64,
        order: Order,
    ) {
        let Some(p) = self.parts[part].as_mut() else {
            return;
        };
        if p.orphans.is_empty() {
            return;
        }
        let tolerance = self.cfg.reorder_tolerance;
        let Some(o) = p.orphans.get(&hash).copied() else {
            return;
        };
        if o.key != *key || o.seq.is_some_and(|q| q != isn) || o.ts < ts.saturating_sub(tolerance) {
            return;
        }
        p.orphans.remove(&hash);
        if let Some(p) = self.parts[part].as_ref()
            && let Some(mut a) = p.table.get(hash, key)
        {
            self.filter_dec(hash);
            self.emit(
                &a,
                Reason::Unreachable,
                Some(o.icmp),
                o.ts.max(ts),
                order,
                false,
            );
            a.state = State::Reported;
            self.store(part, a);
            self.stats.icmp_reordered += 1;
        }
    }

    /// Expire the entries of `part` whose deadline is before `due`.
    fn fire_timers(&mut self, part: usize, block: u64, due: i64) {
        let cfg = &self.cfg;
        let mut expired = Vec::new();
        let Some(p) = self.parts[part].as_mut() else {
            return;
        };
        let base = p.table.base();
        // Timers whose entry's deadline moved on go to the back of the
        // queue after this pass (each timer is looked at once a call).
        let mut again = Vec::new();
        while let Some(&timer) = p.timers.front() {
            if timer.due(base) >= due {
                break;
            }
            p.timers.pop_front();
            if let Some(ahead) = p.timers.get(TIMERS_AHEAD) {
                p.table.prefetch(ahead.hash());
            }
            if let Some(far) = p.timers.get(TIMERS_AHEAD * 3) {
                prefetch_addr((far as *const Timer).cast());
            }
            let hash = timer.hash();
            // Gone already (answered, replaced): a stale timer.
            let Some(a) = p.table.get_by_hash(hash) else {
                continue;
            };
            let deadline = deadline_of(cfg, &a);
            if deadline >= due {
                let now = Timer::new(deadline, base, hash);
                if now.at == timer.at {
                    // The entry's own deadline, inside the microsecond the
                    // timer keeps and not due: the first timer not due.
                    p.timers.push_front(timer);
                    break;
                }
                // Retransmissions moved the deadline on.
                again.push(now);
                continue;
            }
            p.table.take_by_hash(hash);
            expired.push(a);
        }
        p.timers.extend(again);
        self.len -= expired.len();
        for a in expired {
            let deadline = deadline_of(&self.cfg, &a);
            let order = Order {
                block,
                phase: 0,
                at: deadline,
            };
            self.finish(a, deadline, order, false);
        }
    }

    /// An entry leaves the table: report it if it was still waiting for an answer.
    fn finish(&mut self, a: Attempt, decided: i64, order: Order, at_end: bool) {
        match a.state {
            State::SynPending => {
                self.filter_dec(a.hash);
                self.emit(&a, Reason::Unanswered, None, decided, order, at_end);
            }
            State::ArpPending => self.emit(&a, Reason::Unresolved, None, decided, order, at_end),
            // An unanswered stealth probe means open|filtered: not a failure.
            State::StealthPending | State::Reported => {}
        }
    }

    fn emit(
        &mut self,
        a: &Attempt,
        reason: Reason,
        icmp: Option<IcmpInfo>,
        decided: i64,
        order: Order,
        at_end: bool,
    ) {
        self.stats.failed[reason as usize] += 1;
        self.out.push(Event {
            key: a.key,
            reason,
            probe: a.probe,
            first_ts: a.first_ts,
            last_ts: a.last_ts,
            decided_ts: decided,
            retransmissions: a.retrans,
            icmp,
            vlan: a.vlan,
            initiator_reset: a.initiator_reset,
            at_capture_end: at_end,
            evicted: false,
            order,
        });
    }

    /// Report `addr` alive, unless this shard reported it already this minute
    /// for the same reason.
    #[inline]
    fn seen_alive(&mut self, addr: Addr, ts: i64, how: Seen, order: Order) {
        let minute = ts.div_euclid(crate::inventory::GRANULARITY);
        let set = &mut self.alive_cache[hash::addr_slot(&addr) & (ALIVE_SETS - 1)].0;
        if let Some(slot) = set.iter_mut().find(|e| e.0 == addr && e.1 == minute) {
            if slot.2 & how as u8 != 0 {
                return;
            }
            slot.2 |= how as u8;
        } else {
            // The newer entry moves to the second way; the older one leaves.
            set[1] = set[0];
            if !reported(&self.cfg.evidence_nets, &addr) {
                // Every kind marked: the address's next packets this minute
                // stop at the cache, not at the network list.
                set[0] = (addr, minute, u8::MAX);
                return;
            }
            set[0] = (addr, minute, how as u8);
        }
        self.alive.push(Alive {
            addr,
            ts,
            how,
            order,
        });
    }

    fn contact(&mut self, initiator: &FlowKey, ts: i64, order: Order) {
        if !reported(&self.cfg.evidence_nets, &initiator.dst) {
            return;
        }
        self.contacts.push(Contact {
            src: initiator.src,
            dst: initiator.dst,
            ts,
            order,
        });
    }

    #[inline]
    fn filter_inc(&mut self, h: u64) {
        let c = &mut self.filter[filter_slot(h)];
        *c = c.saturating_add(1);
    }

    #[inline]
    fn filter_dec(&mut self, h: u64) {
        let c = &mut self.filter[filter_slot(h)];
        // A saturated counter no longer knows its count: it stays set for good
        // (a false positive costs one table probe; a false negative would lose
        // a capture-gap success).
        if *c != u8::MAX {
            *c -= 1;
        }
    }

    /// Look up the live entry for `key`; an entry past its deadline at `now` is
    /// finished first (lazy expiry, so the outcome does not depend on when the
    /// block-boundary timers happen to run).
    fn lookup(
        &mut self,
        part: usize,
        key: &FlowKey,
        hash: u64,
        now: i64,
        order: Order,
    ) -> Option<Attempt> {
        let p = self.parts[part].as_ref()?;
        let a = p.table.get(hash, key)?;
        if deadline_of(&self.cfg, &a) < now {
            self.take(part, key, hash);
            self.finish(a, deadline_of(&self.cfg, &a), order, false);
            return None;
        }
        Some(a)
    }

    /// Insert `a`, or overwrite the entry with its key.
    fn store(&mut self, part: usize, a: Attempt) {
        let p = self.parts[part]
            .as_mut()
            .expect("partition owned by this shard");
        if !p.table.replace(&a, self.room) {
            self.store_new(part, a);
        }
    }

    /// Insert `a`, whose key the partition does not hold (its lookup found
    /// nothing): [`store`](Self::store) without looking for it again.
    fn store_new(&mut self, part: usize, a: Attempt) {
        let deadline = deadline_of(&self.cfg, &a);
        let p = self.parts[part]
            .as_mut()
            .expect("partition owned by this shard");
        debug_assert!(p.table.get(a.hash, &a.key).is_none(), "{a:?} is held");
        // The base goes far enough back that the next blocks' due times
        // (this packet's time less the tolerance, or later) are after it.
        let keep = REBASE_KEEP.saturating_add(self.cfg.reorder_tolerance);
        let base = p.table.base();
        if base == NO_BASE {
            // The first entry.
            let first = a.first_ts.min(a.last_ts);
            p.rebase(base_before(first, keep), self.room, &self.cfg);
        } else if a.last_ts.saturating_sub(base) > REBASE_AFTER {
            // Event time jumped on inside a block (a gap in the capture):
            // move the base now, so that this attempt packs and its timer
            // is not clipped. Timers before the new base become 0, and are
            // due at the next block anyway.
            let to = base_before(a.last_ts, keep);
            if to > base {
                p.rebase(to, self.room, &self.cfg);
                self.stats.rebases += 1;
            }
        }
        // A partition never outgrows `room` (see `table::insert_bounded`).
        if p.table.insert_new(a, self.room) {
            self.stats.table_rebuilds += 1;
        }
        p.timers
            .push_back(Timer::new(deadline, p.table.base(), a.hash));
        if p.timers.len() > TIMERS_PER_ENTRY * p.table.len().max(TIMERS_MIN) {
            p.drop_stale_timers();
            self.stats.timer_compactions += 1;
        }
        self.len += 1;
    }

    /// Remove the entry for `key` and hand it back, leaving the filter alone.
    fn take(&mut self, part: usize, key: &FlowKey, hash: u64) -> Option<Attempt> {
        let p = self.parts[part].as_mut()?;
        let a = p.table.take(hash, key)?;
        self.len -= 1;
        Some(a)
    }

    /// Remove the entry for `key`: its attempt succeeded or is no longer awaited.
    fn remove(&mut self, part: usize, key: &FlowKey, hash: u64) {
        if let Some(a) = self.take(part, key, hash)
            && a.state == State::SynPending
        {
            self.filter_dec(hash);
        }
    }

    /// Make room for a new entry in `part`. A full partition decides its
    /// oldest attempt now, as if its timer had run out, and marks the event
    /// `evicted`. Under a flood the oldest entry has waited longest for an
    /// answer (at 300k SYN/s and the default cap, seconds, against answers
    /// that come in milliseconds), so an early `unanswered` is almost always
    /// the verdict the timer would have given, and the newest probes, those of
    /// a scan going on now, are kept. Refusing new entries instead would blind
    /// the tracker to a scanner that starts during a flood.
    fn make_room(&mut self, part: usize, ts: i64, order: Order) -> bool {
        let Some(p) = self.parts[part].as_mut() else {
            return false;
        };
        if p.table.len() < self.cap_per_partition {
            return true;
        }
        // The oldest live entry is at the front of the timer queue (stale
        // timers of entries gone already are skipped).
        while let Some(timer) = p.timers.pop_front() {
            // Under a flood every new SYN evicts the oldest entry: the next
            // evictions' entries are those of the next timers.
            if let Some(ahead) = p.timers.get(TIMERS_AHEAD) {
                p.table.prefetch(ahead.hash());
            }
            // And the timers themselves, further on: the queue was written
            // a whole partition's worth of attempts ago, long out of cache.
            if let Some(far) = p.timers.get(TIMERS_AHEAD * 3) {
                prefetch_addr((far as *const Timer).cast());
            }
            let Some(a) = p.table.take_by_hash(timer.hash()) else {
                continue;
            };
            self.len -= 1;
            self.stats.pending_evicted += 1;
            let at = self.out.len();
            self.finish(a, ts, order, false);
            if let Some(e) = self.out.get_mut(at) {
                e.evicted = true;
            }
            return true;
        }
        // Not reached: a full partition has a timer for each entry.
        self.stats.pending_cap_dropped += 1;
        false
    }

    /// Process one interesting packet. `idx` is its global packet index.
    pub fn packet(&mut self, s: &Summary, block: u64, idx: u64) {
        let part = partition_of(&s.key);
        debug_assert!(
            self.parts[part].is_some(),
            "packet routed to the wrong shard"
        );
        let order = Order {
            block,
            phase: 1,
            at: idx as i64,
        };
        match s.what {
            What::Tcp { flags, seq, .. } => self.tcp(s, part, flags, seq, order),
            What::Unreach {
                icmp_type,
                code,
                sender,
                quoted_seq,
                ..
            } => {
                let icmp = IcmpInfo {
                    icmp_type,
                    code,
                    sender,
                };
                self.unreach(s, part, icmp, quoted_seq, order)
            }
            What::Arp { reply } => self.arp(s, part, reply, order),
        }
    }

    fn tcp(&mut self, s: &Summary, part: usize, flags: u8, seq: u32, order: Order) {
        // Borrowed, not copied: hashing a fresh stack copy read it back in
        // words across the copy's stores, and the failed store forwarding
        // was two thirds of this function under a flood.
        let fwd = &s.key;
        let fh = flow_hash(fwd);
        if flags & ACK != 0 {
            // SYN-ACK, FIN-ACK, RST-ACK: this direction is part of a conversation.
            let n = self.parts[part].as_ref().expect("owned partition").nth;
            self.sketch.set(n, fh, Fact::Spoke);
            // A SYN-ACK or a FIN-ACK proves a host; a RST does not (firewalls
            // reset on behalf of addresses that do not exist).
            if flags & SYN != 0 {
                self.seen_alive(fwd.src, s.ts, Seen::SynAck, order);
            } else if flags & FIN != 0 && flags & RST == 0 {
                self.seen_alive(fwd.src, s.ts, Seen::Fin, order);
            }
        }
        if flags & RST != 0 {
            return self.rst(s, part, flags, order);
        }
        if flags & SYN != 0 {
            if flags & ACK != 0 {
                let rev = fwd.reversed();
                let rh = flow_hash(&rev);
                // SYN-ACK from the responder: the attempt succeeded.
                match self.lookup(part, &rev, rh, s.ts, order) {
                    Some(a) if a.state == State::SynPending => {
                        self.stats.successes += 1;
                        self.remove(part, &rev, rh);
                        self.contact(&rev, s.ts, order);
                    }
                    // Rejected, then a re-sent SYN (same ISN) found a listener: the
                    // `rejected` event stands (it was emitted when the RST came),
                    // and the attempt counts as a success too.
                    Some(a) if a.state == State::Reported && a.probe == Probe::Syn => {
                        self.stats.successes += 1;
                        self.stats.rejected_then_answered += 1;
                        self.remove(part, &rev, rh);
                        self.contact(&rev, s.ts, order);
                    }
                    Some(_) => {}
                    None => self.stats.synack_unmatched += 1,
                }
                return;
            }
            // A SYN: a new attempt, or a retransmission of a live one.
            match self.lookup(part, fwd, fh, s.ts, order) {
                Some(mut a)
                    if a.isn == seq && matches!(a.state, State::SynPending | State::Reported) =>
                {
                    if a.state == State::SynPending {
                        a.retrans = (a.retrans + 1).min(RETRANS_MAX);
                    }
                    a.last_ts = s.ts;
                    self.stats.retransmissions += 1;
                    self.store(part, a);
                    return;
                }
                Some(old) => {
                    // Same 5-tuple, new ISN: the old attempt is over; if it was
                    // still waiting, nothing answered it.
                    self.take(part, fwd, fh);
                    self.finish(old, s.ts, order, false);
                }
                None => {}
            }
            self.stats.syn_attempts += 1;
            if !self.make_room(part, s.ts, order) {
                return;
            }
            self.filter_inc(fh);
            self.store_new(
                part,
                Attempt::new(*fwd, fh, s.ts, seq, s.vlan, State::SynPending, Probe::Syn),
            );
            self.claim_orphan(part, fwd, fh, seq, s.ts, order);
            return;
        }
        if flags & ACK != 0 {
            // FIN+ACK: either side closing means the handshake completed, even if
            // the SYN-ACK was not captured (Zeek would call the SYN-FIN case SH).
            for (k, h) in [(*fwd, fh), (fwd.reversed(), flow_hash(&fwd.reversed()))] {
                if let Some(a) = self.lookup(part, &k, h, s.ts, order)
                    && a.state == State::SynPending
                {
                    self.stats.successes += 1;
                    self.stats.capture_gaps += 1;
                    self.remove(part, &k, h);
                    self.contact(&k, s.ts, order);
                }
            }
            return;
        }
        // No SYN, no ACK, no RST: a stealth probe (FIN, NULL, Xmas scans).
        match self.lookup(part, fwd, fh, s.ts, order) {
            Some(mut a) if a.state == State::StealthPending || a.probe != Probe::Syn => {
                if a.state == State::StealthPending {
                    a.retrans = (a.retrans + 1).min(RETRANS_MAX);
                }
                a.last_ts = s.ts;
                self.store(part, a);
            }
            Some(_) => {}
            None => {
                self.stats.stealth_probes += 1;
                if self.make_room(part, s.ts, order) {
                    self.store(
                        part,
                        Attempt::new(
                            *fwd,
                            fh,
                            s.ts,
                            seq,
                            s.vlan,
                            State::StealthPending,
                            Probe::stealth(flags),
                        ),
                    );
                }
            }
        }
    }

    fn rst(&mut self, s: &Summary, part: usize, flags: u8, order: Order) {
        // From the responder: the attempt (rev = initiator → responder) is rejected.
        let rev = s.key.reversed();
        let rh = flow_hash(&rev);
        if let Some(mut a) = self.lookup(part, &rev, rh, s.ts, order) {
            match a.state {
                State::SynPending | State::StealthPending => {
                    if a.state == State::SynPending {
                        self.filter_dec(rh);
                    }
                    self.emit(&a, Reason::Rejected, None, s.ts, order, false);
                    a.state = State::Reported;
                    self.store(part, a);
                }
                // A RST for each re-sent SYN of an attempt already rejected.
                State::Reported => {}
                State::ArpPending => {}
            }
            return;
        }
        // From the initiator, on its own unanswered attempt (Zeek RSTOS0).
        let fwd = &s.key;
        let fh = flow_hash(fwd);
        if let Some(mut a) = self.lookup(part, fwd, fh, s.ts, order) {
            if a.state == State::SynPending {
                a.initiator_reset = true;
                self.store(part, a);
            }
            return;
        }
        // A bare RST (no ACK flag) answers a segment that carried ACK (RFC 793).
        // If the other side sent an ACK without payload (the probe) and this side
        // never sent an ACK-bearing segment on the flow, it answers an ACK probe,
        // not an established connection.
        let n = self.parts[part].as_ref().expect("owned partition").nth;
        if flags & ACK == 0
            && self.sketch.contains(n, rh, Fact::PureAck)
            && !self.sketch.contains(n, fh, Fact::Spoke)
        {
            let a = Attempt::new(rev, rh, s.ts, 0, s.vlan, State::Reported, Probe::Ack);
            self.stats.stealth_probes += 1;
            self.emit(&a, Reason::Rejected, None, s.ts, order, false);
            if self.make_room(part, s.ts, order) {
                self.store(part, a);
            }
            return;
        }
        self.stats.rst_unmatched += 1;
    }

    fn unreach(
        &mut self,
        s: &Summary,
        part: usize,
        icmp: IcmpInfo,
        quoted_seq: Option<u32>,
        order: Order,
    ) {
        let key = s.key;
        let h = flow_hash(&key);
        let live = self.lookup(part, &key, h, s.ts, order);
        if key.proto == Proto::Tcp {
            match live {
                Some(mut a) if matches!(a.state, State::SynPending | State::StealthPending) => {
                    if a.state == State::SynPending && quoted_seq.is_some_and(|q| q != a.isn) {
                        // Quotes a segment of another attempt on this 5-tuple.
                        self.stats.icmp_seq_mismatch += 1;
                        return;
                    }
                    if a.state == State::SynPending {
                        self.filter_dec(h);
                    }
                    self.emit(&a, Reason::Unreachable, Some(icmp), s.ts, order, false);
                    a.state = State::Reported;
                    self.store(part, a);
                }
                Some(_) => {}
                None => {
                    // Hold it: its probe may come later (another capture handle).
                    let p = self.parts[part].as_mut().expect("owned partition");
                    let orphan = Orphan {
                        key,
                        seq: quoted_seq,
                        icmp,
                        ts: s.ts,
                    };
                    match p.orphans.get_mut(&h) {
                        Some(held) => {
                            // Another error about the same probe before it
                            // came: the newer is kept, the older is
                            // unmatched. A queue entry only for a new time,
                            // so that a stream of one error at one time
                            // cannot grow the queue.
                            let new_time = held.ts != s.ts;
                            *held = orphan;
                            self.stats.icmp_unmatched += 1;
                            if new_time {
                                p.orphan_queue.push_back((s.ts, h));
                            }
                        }
                        None => {
                            if p.orphans.len() >= ORPHAN_CAP {
                                // The oldest held gives way. Queue entries
                                // of orphans claimed, replaced or expired
                                // are skipped: every orphan held has one, so
                                // this ends on one held.
                                while let Some((t, old)) = p.orphan_queue.pop_front() {
                                    if p.orphans.get(&old).is_some_and(|o| o.ts == t) {
                                        p.orphans.remove(&old);
                                        self.stats.icmp_unmatched += 1;
                                        break;
                                    }
                                }
                            }
                            p.orphans.insert(h, orphan);
                            p.orphan_queue.push_back((s.ts, h));
                        }
                    }
                    // Without time passing, nothing expires: drop the
                    // entries of orphans no longer held, so that the queue
                    // stays within twice the cap.
                    if p.orphan_queue.len() > 2 * ORPHAN_CAP {
                        // One entry an orphan (times can go back and forth).
                        let held = &p.orphans;
                        let mut once = HashSet::with_capacity(held.len());
                        p.orphan_queue.retain(|(t, h)| {
                            held.get(h).is_some_and(|o| o.ts == *t) && once.insert(*h)
                        });
                    }
                }
            }
            return;
        }
        // UDP and other datagrams: the error itself is the only trace of the
        // probe. Repeated errors for one 5-tuple within syn_timeout are one attempt.
        match live {
            Some(mut a) => {
                a.retrans = (a.retrans + 1).min(RETRANS_MAX);
                a.last_ts = s.ts;
                self.store(part, a);
            }
            None => {
                let a = Attempt::new(
                    key,
                    h,
                    s.ts,
                    0,
                    s.vlan,
                    State::Reported,
                    Probe::datagram(key.proto),
                );
                self.emit(&a, Reason::Unreachable, Some(icmp), s.ts, order, false);
                if self.make_room(part, s.ts, order) {
                    self.store(part, a);
                }
            }
        }
    }

    fn arp(&mut self, s: &Summary, part: usize, reply: bool, order: Order) {
        let key = s.key;
        self.seen_alive(key.src, s.ts, Seen::Arp, order);
        // Any ARP from the sender proves it is on the link: a request for it that
        // is still waiting (rev: the asker → this sender) is answered.
        let rev = key.reversed();
        let rh = flow_hash(&rev);
        if let Some(a) = self.lookup(part, &rev, rh, s.ts, order)
            && a.state == State::ArpPending
        {
            self.remove(part, &rev, rh);
        }
        if reply {
            return;
        }
        let h = flow_hash(&key);
        match self.lookup(part, &key, h, s.ts, order) {
            Some(mut a) => {
                a.retrans = (a.retrans + 1).min(RETRANS_MAX);
                a.last_ts = s.ts;
                self.store(part, a);
            }
            None => {
                if self.make_room(part, s.ts, order) {
                    self.store(
                        part,
                        Attempt::new(key, h, s.ts, 0, s.vlan, State::ArpPending, Probe::Arp),
                    );
                }
            }
        }
    }

    /// Start loading the table entry [`Tracker::packet`] will look up first
    /// for `s`: the attempt a SYN (or a stealth probe) would be, the one an
    /// answer answers. Called a few packets ahead of it.
    #[inline]
    pub fn prefetch_packet(&self, s: &Summary) {
        let Some(p) = self.parts[partition_of(&s.key)].as_ref() else {
            return;
        };
        let h = match s.what {
            What::Tcp { flags, .. } if flags & (ACK | RST) == 0 => flow_hash(&s.key),
            What::Tcp { .. } => flow_hash(&s.key.reversed()),
            _ => return,
        };
        p.table.prefetch(h);
    }

    /// Start loading what [`Tracker::established`] will touch for this
    /// segment: called a few segments ahead of it.
    #[inline]
    pub fn prefetch_established(&self, part: usize, src: &Addr, hash: u64) {
        if let Some(p) = self.parts[part].as_ref() {
            self.sketch.prefetch(p.nth, hash);
        }
        prefetch(&self.alive_cache[hash::addr_slot(src) & (ALIVE_SETS - 1)]);
    }

    /// An ACK/data segment of flow `hash` (directional) at `ts`: remember the
    /// direction spoke, and if it is the initiator of an attempt still waiting
    /// for its SYN-ACK, the handshake completed out of the capture's sight.
    #[inline]
    pub fn established(
        &mut self,
        part: usize,
        src: Addr,
        hash: u64,
        ts: i64,
        payload: bool,
        order: Order,
    ) {
        self.seen_alive(src, ts, Seen::Data, order);
        let Some(p) = self.parts[part].as_mut() else {
            return;
        };
        self.sketch.set(p.nth, hash, Fact::Spoke);
        if !payload {
            self.sketch.set(p.nth, hash, Fact::PureAck);
        }
        if self.filter[filter_slot(hash)] == 0 {
            return;
        }
        let cfg = &self.cfg;
        if let Some(a) = p.table.get_by_hash(hash)
            && a.state == State::SynPending
            && ts <= deadline_of(cfg, &a)
        {
            p.table.take_by_hash(hash);
            self.len -= 1;
            self.filter_dec(hash);
            self.stats.successes += 1;
            self.stats.capture_gaps += 1;
            // Not proof that the responder is alive: any source can send
            // a SYN and then an ACK on the same 5-tuple, so a scanner could
            // mark each target alive before its real probes and have their
            // failures counted on "active" hosts (a review found it).
            self.contact(&a.key, ts, order);
        }
    }

    /// End of a block: note the table size.
    pub fn end_block(&mut self) {
        self.stats.peak_pending = self.stats.peak_pending.max(self.len as u64);
    }

    /// End of input: report every attempt still waiting, as of `watermark`.
    pub fn flush(&mut self, watermark: i64) {
        for part in 0..PARTITIONS {
            self.flush_partition(part, watermark);
        }
    }

    /// [`Tracker::flush`] for one partition (nothing if another shard owns
    /// it). The pipeline flushes partition by partition and hands each one's
    /// events on before the next, so that the end of a flood does not hold
    /// `max_pending` events at once.
    pub fn flush_partition(&mut self, part: usize, watermark: i64) {
        let Some((table, _)) = self.empty_partition(part) else {
            return;
        };
        self.out.reserve(table.len());
        let start = self.out.len();
        for a in table.into_attempts() {
            let deadline = deadline_of(&self.cfg, &a);
            let order = Order {
                block: u64::MAX,
                phase: 0,
                at: deadline,
            };
            // Past its deadline by the watermark: an ordinary timeout the
            // block timers had not reached (within the reorder tolerance).
            let at_end = deadline >= watermark;
            self.finish(a, if at_end { watermark } else { deadline }, order, at_end);
        }
        // The table lists its attempts by hash; put them in canonical order
        // here, where no two can be equal in it (one entry per flow key), so
        // an in-place unstable sort gives the stable sort's order without
        // its scratch buffer (a flood's partition: 12k events, ~1.4 MB).
        self.out[start..].sort_unstable_by(cmp_events);
    }

    /// End of input with a state directory: partition `part`'s attempts
    /// (nothing if another shard owns it) go into `into` undecided, in the
    /// order of their timers, for the next run to take up; nothing is
    /// emitted for them. Held ICMP errors are counted unmatched,
    /// as [`Tracker::flush_partition`] counts them.
    pub fn carry_partition(&mut self, part: usize, into: &mut Vec<Carried>) {
        let Some((mut table, timers)) = self.empty_partition(part) else {
            return;
        };
        self.stats.carried_out += table.len() as u64;
        // In the order of their first live timer, the order a full
        // partition evicts them in: restored in it, the next run evicts as
        // one run would have. (Every entry has a timer; the rest, by key,
        // is for safety.)
        for timer in timers {
            if let Some(a) = table.take_by_hash(timer.hash()) {
                into.push(Carried::of(&a));
            }
        }
        // (Two entries whose flow hashes collide: one timer took the
        // other's entry.)
        let mut rest: Vec<Attempt> = table.into_attempts().collect();
        rest.sort_unstable_by_key(|a| a.key);
        into.extend(rest.iter().map(Carried::of));
    }

    /// End of input for partition `part` (`None` if another shard owns
    /// it): its held ICMP errors counted unmatched and dropped, its table
    /// and timers handed back, the partition left empty.
    fn empty_partition(&mut self, part: usize) -> Option<(Attempts, VecDeque<Timer>)> {
        let p = self.parts[part].as_mut()?;
        self.stats.icmp_unmatched += p.orphans.len() as u64;
        p.orphans.clear();
        p.orphans.shrink_to_fit();
        p.orphan_queue = VecDeque::new();
        let timers = std::mem::take(&mut p.timers);
        let table = std::mem::take(&mut p.table);
        self.len -= table.len();
        Some((table, timers))
    }

    /// Whether this shard owns partition `part`.
    pub fn owns(&self, part: usize) -> bool {
        self.parts.get(part).is_some_and(|p| p.is_some())
    }

    /// Take up the attempts a run before left undecided ([`Carried`]):
    /// those of this shard's partitions, before this run's first packet.
    /// `start`: the time of that packet, and the latest packet time of the
    /// run before (`None` when this input has no packet: the attempts are
    /// then kept as they were). Those still within their timeout at the
    /// start are decided as if the runs were one: answered, rejected or
    /// timed out by this run's packets and timers. Those whose timeout ran
    /// out before it are decided now, `unanswered`, as one run would have
    /// (nothing answered them before the next packet). An input that starts
    /// before the run before ended (the same capture replayed again, an
    /// older one, a clock set back) cannot take any up: all are refused, as
    /// are attempts whose fields no tracker makes and those beyond a
    /// partition's cap (a lower `tracker.max_pending` than the run before):
    /// counted in `carried_refused`. Events go in block `block`'s timer
    /// phase. Call it on a new tracker, before any packet.
    pub fn restore(&mut self, carried: &[Carried], start: Option<(i64, i64)>, block: u64) {
        for c in carried {
            let part = partition_of(&c.key);
            if self.parts[part].is_none() {
                continue;
            }
            let Some(a) = c.attempt() else {
                self.stats.carried_refused += 1;
                continue;
            };
            if let Some((start, until)) = start {
                if start < until || a.last_ts > start {
                    self.stats.carried_refused += 1;
                    continue;
                }
                let deadline = deadline_of(&self.cfg, &a);
                if deadline < start {
                    let order = Order {
                        block,
                        phase: 0,
                        at: deadline,
                    };
                    self.stats.carried_in += 1;
                    self.stats.carried_expired += 1;
                    self.finish(a, deadline, order, false);
                    continue;
                }
            }
            let held = self.parts[part].as_ref().is_some_and(|p| {
                p.table.len() >= self.cap_per_partition || p.table.get(a.hash, &a.key).is_some()
            });
            if held {
                self.stats.carried_refused += 1;
                continue;
            }
            if a.state == State::SynPending {
                self.filter_inc(a.hash);
            }
            self.store_new(part, a);
            self.stats.carried_in += 1;
        }
    }

    /// Take the events emitted so far.
    pub fn drain_events(&mut self, into: &mut Vec<Event>) {
        into.append(&mut self.out);
    }

    /// Take the liveness reports and successful contacts so far.
    pub fn drain_evidence(&mut self, alive: &mut Vec<Alive>, contacts: &mut Vec<Contact>) {
        alive.append(&mut self.alive);
        contacts.append(&mut self.contacts);
    }
}

#[inline]
fn deadline_of(cfg: &TrackConfig, a: &Attempt) -> i64 {
    let t = match a.state {
        State::ArpPending => cfg.arp_timeout,
        _ => cfg.syn_timeout,
    };
    a.last_ts.saturating_add(t)
}

/// The canonical output order: by [`Order`], then by flow key (two events can
/// share an `Order` only when timers with one deadline fire together).
pub fn sort_events(ev: &mut [Event]) {
    ev.sort_unstable_by(cmp_events);
}

/// The canonical order of events (see [`sort_events`]). Two events equal in
/// it have the same flow key, so come from the same partition: from one
/// shard, whatever the number of shards.
pub fn cmp_events(a: &Event, b: &Event) -> std::cmp::Ordering {
    a.order
        .cmp(&b.order)
        .then_with(|| a.key.cmp(&b.key))
        .then_with(|| a.first_ts.cmp(&b.first_ts))
        .then_with(|| a.reason.cmp(&b.reason))
}

/// Put one shard's events for a block in canonical order. They nearly
/// always are already (a block's timers fire by deadline, its packets come
/// in capture order); the end-of-input flush lists a partition's attempts
/// by hash. Stable, so that events equal in [`cmp_events`] (one partition's)
/// keep the order the partition emitted them in, which does not depend on
/// which other partitions the shard owns.
pub fn order_shard_events(ev: &mut [Event]) {
    if !ev.is_sorted_by(|a, b| cmp_events(a, b).is_le()) {
        ev.sort_by(cmp_events);
    }
}

/// Append to `into` the events of `lists`, each in canonical order (see
/// [`order_shard_events`]), merged in canonical order; between equal events
/// (never from two lists, see [`cmp_events`]) the lower list first.
///
/// The output thread's way to join its shards' events: sorting them all
/// again cost a flood's output thread a fifth of its time.
pub fn merge_events(lists: &[&[Event]], into: &mut Vec<Event>) {
    let mut live: Vec<&[Event]> = lists.iter().copied().filter(|l| !l.is_empty()).collect();
    into.reserve(live.iter().map(|l| l.len()).sum());
    match live.as_mut_slice() {
        [] => {}
        [one] => into.extend_from_slice(one),
        [a, b] => {
            let (mut i, mut j) = (0, 0);
            while i < a.len() && j < b.len() {
                if cmp_events(&b[j], &a[i]).is_lt() {
                    into.push(b[j]);
                    j += 1;
                } else {
                    into.push(a[i]);
                    i += 1;
                }
            }
            into.extend_from_slice(&a[i..]);
            into.extend_from_slice(&b[j..]);
        }
        many => {
            // A min-heap of list indices by their head event.
            use std::cmp::Reverse;
            struct Head<'a>(&'a [Event], usize);
            impl Ord for Head<'_> {
                fn cmp(&self, o: &Self) -> std::cmp::Ordering {
                    cmp_events(&self.0[0], &o.0[0]).then(self.1.cmp(&o.1))
                }
            }
            impl PartialOrd for Head<'_> {
                fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
                    Some(self.cmp(o))
                }
            }
            impl PartialEq for Head<'_> {
                fn eq(&self, o: &Self) -> bool {
                    self.cmp(o).is_eq()
                }
            }
            impl Eq for Head<'_> {}
            let mut heap: std::collections::BinaryHeap<Reverse<Head>> = many
                .iter()
                .enumerate()
                .map(|(i, l)| Reverse(Head(l, i)))
                .collect();
            while let Some(mut top) = heap.peek_mut() {
                let Reverse(Head(list, _)) = &mut *top;
                into.push(list[0]);
                *list = &list[1..];
                if list.is_empty() {
                    std::collections::binary_heap::PeekMut::pop(top);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
