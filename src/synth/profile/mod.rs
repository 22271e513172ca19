//! Traffic profiles: functions of (seed, size) that stream frames, in timestamp
//! order, to a [`Sink`], and return a [`Truth`] describing what they generated.
//!
//! * [`golden()`]: a small hand-written capture, one instance of each case a
//!   tracker must get right, each on its own addresses.
//! * [`enterprise()`]: a realistic SPAN-port mix with a few scanners, for
//!   throughput benchmarks and for checking the tracker on realistic noise.
//! * [`flood()`]: the worst case for state: masscan-style scanners over 10/8 and
//!   a spoofed-source SYN flood, almost every frame a new 5-tuple.
//! * [`multiday`](mod@multiday): days to weeks of a small enterprise network,
//!   compact, with benign failures, a sanctioned nightly scanner and new
//!   scanners, for the baseline and alerting analytics; every day is a
//!   function of (seed, day).
//!
//! Determinism: all randomness comes from [`crate::synth::rng::Rng`] streams
//! derived from the seed, every collection that influences output is a `Vec` or
//! a heap ordered by (time, insertion number), so the same arguments produce the
//! same bytes on every platform.

use std::io;
use std::net::IpAddr;

use serde::Serialize;

use super::frame::{ArpOp, Frame, Ip, L4, Vlan, tcp_flags};
use super::writer::Sink;

pub mod enterprise;
pub mod flood;
pub mod golden;
pub mod multiday;
mod sim;

pub use enterprise::enterprise;
pub use flood::flood;
pub use golden::golden;
pub use multiday::multiday;

/// 2024-03-01T10:00:00Z in nanoseconds since the Unix epoch: the golden,
/// enterprise and flood captures start here (multiday starts at midnight,
/// [`multiday::DAY0_NS`]).
pub const START_NS: i64 = 1_709_287_200 * 1_000_000_000;

/// Nanoseconds per second.
pub const SEC: i64 = 1_000_000_000;
/// Nanoseconds per millisecond.
pub const MS: i64 = 1_000_000;
/// Nanoseconds per microsecond.
pub const US: i64 = 1_000;

/// Which profile to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Profile {
    /// Small hand-designed scenario capture (< 200 packets), one instance of
    /// each tracker test case; ignores --packets and --seed.
    Golden,
    /// Realistic enterprise SPAN-port mix with a few scanners (benchmark).
    Enterprise,
    /// Worst case: masscan-style scanners over 10/8 plus a spoofed SYN flood,
    /// 60-byte frames, ~71% SYN (benchmark).
    Flood,
    /// Compact multi-day capture of a small enterprise network (--days,
    /// --from-day/--to-day; ignores --packets): benign failures, a sanctioned
    /// nightly scanner, and new scanners from day 15.
    Multiday,
}

impl Profile {
    /// The profile's name as used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Golden => "golden",
            Profile::Enterprise => "enterprise",
            Profile::Flood => "flood",
            Profile::Multiday => "multiday",
        }
    }

    /// Snaplen used when none is given: golden frames are kept whole, the
    /// benchmark profiles are cut like a sensor would cut them, and multiday
    /// keeps headers only (96 bytes: every header, a little payload) so weeks
    /// of traffic stay small.
    pub fn default_snaplen(self) -> u32 {
        match self {
            Profile::Golden => 65535,
            Profile::Enterprise | Profile::Flood => 256,
            Profile::Multiday => 96,
        }
    }
}

/// Generation parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenOptions {
    /// Number of frames to generate (benchmark profiles generate exactly this many).
    pub packets: u64,
    /// PRNG seed.
    pub seed: u64,
    /// Bytes of each frame to materialise; the writer's snaplen.
    pub snaplen: u32,
    /// Multiday: number of days, generated as days `0..days` unless
    /// `day_range` is set.
    pub days: u32,
    /// Multiday: generate only days `a..b` (`b` exclusive) of the scenario.
    /// Each day depends only on (seed, day index), so the captures of `0..k`
    /// and `k..n` concatenated are exactly the capture of `0..n`.
    pub day_range: Option<(u32, u32)>,
}

impl GenOptions {
    /// The days a multiday capture covers, `first..end`.
    pub fn days_covered(&self) -> std::ops::Range<u32> {
        let (a, b) = self.day_range.unwrap_or((0, self.days));
        a..b
    }
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            packets: 1_000_000,
            seed: 1,
            snaplen: 256,
            days: 16,
            day_range: None,
        }
    }
}

/// Generate `profile` into `sink`.
pub fn generate<S: Sink>(profile: Profile, opts: &GenOptions, sink: &mut S) -> io::Result<Truth> {
    match profile {
        Profile::Golden => golden(sink, opts),
        Profile::Enterprise => enterprise(sink, opts),
        Profile::Flood => flood(sink, opts),
        Profile::Multiday => multiday(sink, opts),
    }
}

/// What a profile generated, written by `--truth` as JSON so tests can check a
/// tracker's findings without hard-coding them.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Truth {
    /// Profile name.
    pub profile: String,
    /// Seed used.
    pub seed: u64,
    /// Snaplen used.
    pub snaplen: u32,
    /// First frame timestamp, ns since the epoch.
    pub first_ts_ns: i64,
    /// Last frame timestamp, ns since the epoch.
    pub last_ts_ns: i64,
    /// Frames by class, counted as they were generated (same classes as a
    /// tracker's decoder would see).
    pub frames: FrameCounts,
    /// Distinct conversations started (TCP connections and attempts, DNS and
    /// other UDP exchanges, echo and ARP exchanges, scanner probes, flood SYNs),
    /// including those already in progress at capture start.
    pub conversations: u64,
    /// TCP connections already established at capture start (no handshake in
    /// the capture).
    pub tcp_in_progress_at_start: u64,
    /// TCP connection attempts by the background population (scanners and
    /// floods are counted in their own entries), by outcome as visible in the
    /// capture.
    pub tcp_attempts: AttemptCounts,
    /// UDP and ICMP activity of the background population.
    pub udp: UdpCounts,
    /// ICMP "fragmentation needed" messages about established connections
    /// (PMTU discovery; not failures).
    pub pmtu_frag_needed: u64,
    /// Scanners hidden in the traffic.
    pub scanners: Vec<ScannerTruth>,
    /// SYN floods.
    pub floods: Vec<FloodTruth>,
    /// Golden profile: the scenario cases, in capture order.
    pub cases: Vec<CaseTruth>,
    /// Multiday profile: the days covered, the benign actors, the alerts
    /// expected and per-day facts (absent for the other profiles).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multiday: Option<MultidayTruth>,
    /// Free-form remarks on how to read the numbers.
    pub notes: Vec<String>,
}

/// Frames by class. Precedence for TCP: RST, then SYN+ACK, SYN, FIN, other.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FrameCounts {
    /// All frames.
    pub total: u64,
    /// Frames with at least one 802.1Q/802.1ad tag.
    pub vlan: u64,
    /// IPv6 frames.
    pub ipv6: u64,
    /// TCP with SYN and without ACK (initial and retransmitted SYNs, probes).
    pub tcp_syn: u64,
    /// TCP SYN+ACK.
    pub tcp_syn_ack: u64,
    /// TCP with RST (with or without ACK).
    pub tcp_rst: u64,
    /// TCP with FIN (and no SYN/RST).
    pub tcp_fin: u64,
    /// Other TCP: data and pure ACKs ("mid-connection"), and stealth probes
    /// without SYN/FIN/RST.
    pub tcp_other: u64,
    /// UDP to or from port 53.
    pub udp_dns: u64,
    /// Other UDP.
    pub udp_other: u64,
    /// ICMPv4 type 3 / ICMPv6 type 1.
    pub icmp_unreach: u64,
    /// Other ICMP (echo).
    pub icmp_other: u64,
    /// ARP.
    pub arp: u64,
    /// IP fragments whose transport header cannot be read on its own.
    pub ip_fragment: u64,
}

impl FrameCounts {
    fn add(&mut self, vlan: Vlan, ip: &Ip, l4: &L4) {
        self.total += 1;
        self.vlan += (vlan != Vlan::None) as u64;
        self.ipv6 += ip.is_v6() as u64;
        match l4 {
            L4::Tcp(t, _) => {
                let f = t.flags;
                if f & tcp_flags::RST != 0 {
                    self.tcp_rst += 1;
                } else if f & tcp_flags::SYN != 0 && f & tcp_flags::ACK != 0 {
                    self.tcp_syn_ack += 1;
                } else if f & tcp_flags::SYN != 0 {
                    self.tcp_syn += 1;
                } else if f & tcp_flags::FIN != 0 {
                    self.tcp_fin += 1;
                } else {
                    self.tcp_other += 1;
                }
            }
            L4::Udp { sport, dport, .. } => {
                if *sport == 53 || *dport == 53 {
                    self.udp_dns += 1;
                } else {
                    self.udp_other += 1;
                }
            }
            L4::Unreach { .. } => self.icmp_unreach += 1,
            L4::Echo { .. } => self.icmp_other += 1,
            L4::Raw { .. } => self.ip_fragment += 1,
        }
    }
}

/// TCP attempts by outcome. An attempt is one SYN (and its retransmissions
/// with the same ISN); its outcome is what the capture shows before it ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AttemptCounts {
    /// Attempts whose first SYN is in the capture.
    pub started: u64,
    /// Answered by SYN+ACK.
    pub success: u64,
    /// Answered by RST.
    pub rejected: u64,
    /// Answered by an ICMP destination unreachable.
    pub icmp_unreachable: u64,
    /// No answer before the end of the capture (includes attempts still
    /// waiting for their SYN+ACK at the end).
    pub unanswered: u64,
    /// SYN retransmissions (same ISN) in the capture.
    pub syn_retransmissions: u64,
}

/// UDP exchanges of the background population.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UdpCounts {
    /// DNS queries sent.
    pub dns_queries: u64,
    /// DNS responses sent.
    pub dns_responses: u64,
    /// DNS responses that arrived after the client closed its socket and were
    /// answered with ICMP port unreachable by the client (a failed "attempt"
    /// of the DNS server's, a common false-positive source).
    pub dns_late_port_unreachable: u64,
    /// Datagrams to closed ports answered with ICMP port unreachable.
    pub closed_port_unreachable: u64,
    /// Other UDP request/response exchanges (NTP, syslog is one-way).
    pub other_exchanges: u64,
    /// ICMP echo request/reply pairs.
    pub echo_exchanges: u64,
    /// ARP request/reply pairs.
    pub arp_exchanges: u64,
}

/// One scanner: where it is, what it did, and how its probes were answered.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ScannerTruth {
    /// Scanner source address.
    pub ip: String,
    /// "tcp_sweep" (one port, many hosts), "tcp_vertical" (one host, many
    /// ports), "tcp_slow" (low-and-slow), "masscan" (many hosts and ports),
    /// "arp_sweep" (ARP requests for local addresses), "icmp_sweep" (echo
    /// requests to many hosts).
    pub kind: String,
    /// Destination ports probed.
    pub ports: Vec<u16>,
    /// Target range, in words.
    pub targets: String,
    /// Distinct targets probed (SYNs sent) in the capture.
    pub probes: u64,
    /// Probes answered by SYN+ACK (the scanner then sends RST).
    pub syn_ack: u64,
    /// Probes answered by RST.
    pub rst: u64,
    /// Probes answered by ICMP unreachable.
    pub icmp: u64,
    /// Probes with no answer in the capture.
    pub unanswered: u64,
    /// First probe time.
    pub first_ts_ns: i64,
    /// Last probe time.
    pub last_ts_ns: i64,
    /// Multiday: a sanctioned scanner (a scheduled vulnerability scan, to be
    /// learned and never alerted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sanctioned: Option<bool>,
    /// Multiday: the day index of its first scan in the scenario (it may lie
    /// before the capture's first day).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_day: Option<u32>,
    /// Multiday: whether a correct analytics alerts on this source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect_alert: Option<bool>,
}

/// What a multiday capture covers and what an analytics should make of it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MultidayTruth {
    /// First day generated (day 0 starts at 2024-03-01T00:00:00Z).
    pub first_day: u32,
    /// One past the last day generated.
    pub end_day: u32,
    /// Start of day 0, ns since the epoch; day d starts d * 86400 s later.
    pub day0_ns: i64,
    /// Days an analytics learns before it may alert (days 0 ..= 13); every
    /// new scanner starts after them.
    pub activation_days: u32,
    /// Actors whose failed connections are benign: never to be alerted.
    pub benign: Vec<ActorTruth>,
    /// The alerts a correct analytics raises, in day order: one per source and
    /// day, only for days the capture covers (the scanners' `expect_alert`).
    pub expected_alerts: Vec<AlertTruth>,
    /// Facts of each day generated, in order.
    pub daily: Vec<DayTruth>,
}

/// A source of benign failed connections (or of a benign change) in the
/// multiday profile.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ActorTruth {
    /// Address.
    pub ip: String,
    /// "monitoring_dead_host", "decommissioned_server_client",
    /// "decommissioned_server", "dhcp_churn_old", "dhcp_churn_new".
    pub role: String,
    /// Always false: these must never be alerted.
    pub expect_alert: bool,
    /// First day of the behaviour in the scenario.
    pub first_day: u32,
    /// Last day of the behaviour in the scenario (None: to the end).
    pub last_day: Option<u32>,
    /// Addresses it fails to reach (or, for churn, what it is), in words.
    pub targets: String,
    /// Destination ports of its failed attempts.
    pub ports: Vec<u16>,
    /// Failed TCP attempts in the capture (one per SYN chain, retransmissions
    /// not counted).
    pub failed_attempts: u64,
    /// SYN retransmissions of those attempts.
    pub syn_retransmissions: u64,
    /// What it is.
    pub description: String,
}

/// An alert a correct analytics raises.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AlertTruth {
    /// Day index of the test window (1 day) that should alert.
    pub day: u32,
    /// Source to alert on.
    pub ip: String,
    /// The scanner kinds it shows that day, comma-separated.
    pub kind: String,
}

/// One day of a multiday capture.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DayTruth {
    /// Day index.
    pub day: u32,
    /// Date, UTC (YYYY-MM-DD).
    pub date: String,
    /// Frames of the day.
    pub frames: u64,
    /// Successful client-server TCP connections (full handshake, data, FIN).
    pub connections: u64,
    /// Benign attempts to a closed port of a live server (rejected by RST).
    pub rejected: u64,
    /// Monitoring attempts to the dead host (each a SYN and one
    /// retransmission, unanswered).
    pub monitor_attempts: u64,
    /// Attempts to the decommissioned server after it went away.
    pub decommissioned_attempts: u64,
    /// DNS query/response exchanges.
    pub dns: u64,
    /// ARP request/reply exchanges with the gateway.
    pub arp: u64,
    /// Scanner probes of the day (sanctioned and new; TCP, ARP and ICMP).
    pub scanner_probes: u64,
    /// Clients seen that day.
    pub clients: u64,
    /// Servers that answered a connection that day.
    pub servers: u64,
}

/// A spoofed-source SYN flood against one service.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FloodTruth {
    /// Victim address.
    pub target: String,
    /// Victim port.
    pub port: u16,
    /// Flood SYNs (each from a distinct spoofed source address and port).
    pub syns: u64,
    /// SYN+ACKs the victim sent back (to addresses that never answer).
    pub syn_acks: u64,
    /// First SYN.
    pub first_ts_ns: i64,
    /// Last SYN.
    pub last_ts_ns: i64,
}

/// One golden case.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CaseTruth {
    /// Case letter(s): "a" .. "aa".
    pub id: String,
    /// What the case is.
    pub title: String,
    /// What a correct tracker reports.
    pub expect: String,
    /// Outcome keyword: success, rejected, unanswered, unreachable,
    /// port_unreachable, none.
    pub outcome: String,
    /// Transport: tcp, udp, arp.
    pub proto: String,
    /// Initiator address.
    pub client: String,
    /// Responder address.
    pub server: String,
    /// Initiator port (0 for ARP).
    pub client_port: u16,
    /// Responder port (0 for ARP).
    pub server_port: u16,
    /// Address of a router / firewall sending the ICMP error, if any.
    pub icmp_from: Option<String>,
    /// Attempts a tracker should count.
    pub attempts: u32,
    /// Retransmissions of the (last) attempt.
    pub retransmissions: u32,
    /// Timestamp of the case's first frame.
    pub first_ts_ns: i64,
    /// Number of frames in the case.
    pub frames: u32,
}

/// The frame-emitting end of a profile: builds each frame into one reused
/// buffer, counts it, hands it to the sink, and stops after `left` frames.
pub(crate) struct Out<'s, S: Sink> {
    sink: &'s mut S,
    pub(crate) frame: Frame,
    left: u64,
    pub(crate) counts: FrameCounts,
    first_ts: Option<i64>,
    last_ts: i64,
    ordered: bool,
}

impl<'s, S: Sink> Out<'s, S> {
    pub(crate) fn new(sink: &'s mut S, snaplen: u32, packets: u64) -> Self {
        Out {
            sink,
            frame: Frame::with_cap(snaplen as usize),
            left: packets,
            counts: FrameCounts::default(),
            first_ts: None,
            last_ts: 0,
            ordered: true,
        }
    }

    /// Accept frames out of timestamp order (the golden profile sorts them).
    pub(crate) fn unordered(mut self) -> Self {
        self.ordered = false;
        self
    }

    /// Whether the requested number of frames has been written.
    #[inline]
    pub(crate) fn done(&self) -> bool {
        self.left == 0
    }

    #[inline]
    fn record(&mut self, ts: i64) -> io::Result<()> {
        debug_assert!(
            !self.ordered || ts >= self.last_ts,
            "timestamps out of order"
        );
        self.first_ts.get_or_insert(ts);
        self.last_ts = ts;
        self.left -= 1;
        self.sink
            .packet(ts, self.frame.bytes(), self.frame.wire_len())
    }

    /// Build and write an IP frame.
    #[inline]
    pub(crate) fn send(&mut self, ts: i64, vlan: Vlan, ip: &Ip, l4: &L4) -> io::Result<()> {
        if self.left == 0 {
            return Ok(());
        }
        self.frame.build(vlan, ip, l4);
        self.counts.add(vlan, ip, l4);
        self.record(ts)
    }

    /// Build an IP frame but record only its first `caplen` bytes (as if cut
    /// by a smaller snaplen), keeping the wire length.
    pub(crate) fn send_truncated(
        &mut self,
        ts: i64,
        vlan: Vlan,
        ip: &Ip,
        l4: &L4,
        caplen: usize,
    ) -> io::Result<()> {
        if self.left == 0 {
            return Ok(());
        }
        self.frame.build(vlan, ip, l4);
        self.counts.add(vlan, ip, l4);
        self.first_ts.get_or_insert(ts);
        self.last_ts = self.last_ts.max(ts);
        self.left -= 1;
        let data = self.frame.bytes();
        self.sink
            .packet(ts, &data[..caplen.min(data.len())], self.frame.wire_len())
    }

    /// Build and write an ARP frame.
    pub(crate) fn arp(
        &mut self,
        ts: i64,
        vlan: Vlan,
        op: ArpOp,
        sender: std::net::Ipv4Addr,
        target: std::net::Ipv4Addr,
    ) -> io::Result<()> {
        if self.left == 0 {
            return Ok(());
        }
        self.frame.arp(vlan, op, sender, target);
        self.counts.total += 1;
        self.counts.vlan += (vlan != Vlan::None) as u64;
        self.counts.arp += 1;
        self.record(ts)
    }

    /// Fill the common fields of a truth record.
    pub(crate) fn truth(&self, profile: Profile, opts: &GenOptions) -> Truth {
        Truth {
            profile: profile.name().to_string(),
            seed: opts.seed,
            snaplen: opts.snaplen,
            first_ts_ns: self.first_ts.unwrap_or(START_NS),
            last_ts_ns: if self.first_ts.is_some() {
                self.last_ts
            } else {
                START_NS
            },
            frames: self.counts,
            ..Truth::default()
        }
    }
}

/// `a.b.c.d` / IPv6 text of an address.
pub(crate) fn ip_str(ip: IpAddr) -> String {
    ip.to_string()
}

#[cfg(test)]
mod tests;
