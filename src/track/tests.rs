//! Tracker tests: each inference rule on hand-made packet sequences, and the
//! same events for 1 or N shards.

use super::*;
use crate::decode::{FlowKey, Proto, Summary, What};

const S: i64 = 1_000_000_000;

/// One input item: an interesting packet or an ACK/data segment.
#[derive(Clone, Copy, Debug)]
enum In {
    Pkt(Summary),
    /// An ACK without payload.
    Est(FlowKey, i64),
    /// An ACK/data segment with payload.
    Data(FlowKey, i64),
}

fn a4(x: u8) -> Addr {
    Addr::v4([10, 0, 0, x])
}

fn key(s: u8, d: u8, sp: u16, dp: u16, proto: Proto) -> FlowKey {
    FlowKey {
        src: a4(s),
        dst: a4(d),
        sport: sp,
        dport: dp,
        proto,
    }
}

fn tcp(ts: i64, k: FlowKey, flags: u8, seq: u32) -> In {
    In::Pkt(tcp_summary(ts, k, flags, seq))
}

fn tcp_summary(ts: i64, k: FlowKey, flags: u8, seq: u32) -> Summary {
    Summary {
        ts,
        key: k,
        vlan: [0, 0],
        what: What::Tcp { flags, seq, ack: 0 },
    }
}

/// Liveness reports (address, how) and contacts (source, destination).
type Reported = (Vec<(Addr, Seen)>, Vec<(Addr, Addr)>);

/// What `t` reported since the last call: (address, how) of each liveness
/// report and (source, destination) of each contact.
fn evidence(t: &mut Tracker) -> Reported {
    let (mut alive, mut contacts) = (Vec::new(), Vec::new());
    t.drain_evidence(&mut alive, &mut contacts);
    (
        alive.iter().map(|a| (a.addr, a.how)).collect(),
        contacts.iter().map(|c| (c.src, c.dst)).collect(),
    )
}

/// The order of packet `at` of block 0.
fn order_at(at: i64) -> Order {
    Order {
        block: 0,
        phase: 1,
        at,
    }
}

fn unreach(ts: i64, quoted: FlowKey, code: u8, seq: Option<u32>) -> In {
    In::Pkt(Summary {
        ts,
        key: quoted,
        vlan: [0, 0],
        what: What::Unreach {
            icmp_type: 3,
            code,
            sender: a4(254),
            quoted_seq: seq,
            quoted_flags: None,
        },
    })
}

fn arp(ts: i64, sender: u8, target: u8, reply: bool) -> In {
    In::Pkt(Summary {
        ts,
        key: key(sender, target, 0, 0, Proto::Arp),
        vlan: [0, 0],
        what: What::Arp { reply },
    })
}

/// Feed `input` in blocks of `block_len` items through `shards` trackers the way
/// the pipeline does, and return all events in canonical order.
fn run_with(
    cfg: TrackConfig,
    shards: usize,
    block_len: usize,
    input: &[In],
) -> (Vec<Event>, TrackStats) {
    let mut t: Vec<Tracker> = (0..shards)
        .map(|i| Tracker::new(cfg.clone(), i, shards))
        .collect();
    let mut events = Vec::new();
    let mut wm = i64::MIN;
    for (b, chunk) in input.chunks(block_len).enumerate() {
        let b = b as u64;
        let mut block_ev = Vec::new();
        for tr in t.iter_mut() {
            tr.begin_block(b, wm);
        }
        for (i, item) in chunk.iter().enumerate() {
            let idx = b * block_len as u64 + i as u64;
            match *item {
                In::Pkt(s) => {
                    let p = partition_of(&s.key);
                    t[p % shards].packet(&s, b, idx);
                    wm = wm.max(s.ts);
                }
                In::Est(k, ts) | In::Data(k, ts) => {
                    let p = partition_of(&k);
                    let order = Order {
                        block: b,
                        phase: 1,
                        at: idx as i64,
                    };
                    t[p % shards].established(
                        p,
                        k.src,
                        flow_hash(&k),
                        ts,
                        matches!(item, In::Data(..)),
                        order,
                    );
                    wm = wm.max(ts);
                }
            }
        }
        for tr in t.iter_mut() {
            tr.end_block();
            tr.drain_events(&mut block_ev);
        }
        sort_events(&mut block_ev);
        events.extend(block_ev);
    }
    let mut last = Vec::new();
    let mut stats = TrackStats::default();
    for tr in t.iter_mut() {
        tr.flush(wm);
        tr.drain_events(&mut last);
        stats.add(&tr.stats);
    }
    sort_events(&mut last);
    events.extend(last);
    (events, stats)
}

fn run(input: &[In]) -> (Vec<Event>, TrackStats) {
    run_with(TrackConfig::default(), 1, 4, input)
}

#[test]
fn syn_ack_is_success() {
    let k = key(1, 2, 40000, 80, Proto::Tcp);
    let (ev, st) = run(&[tcp(0, k, SYN, 7), tcp(S / 100, k.reversed(), SYN | ACK, 99)]);
    assert!(ev.is_empty(), "{ev:?}");
    assert_eq!((st.syn_attempts, st.successes, st.capture_gaps), (1, 1, 0));
}

#[test]
fn retransmitted_syn_unanswered_is_one_attempt() {
    let k = key(1, 2, 40000, 80, Proto::Tcp);
    // Linux: SYN at 0, then after 1, 2, 4 s; then a long silence.
    let mut input = vec![
        tcp(0, k, SYN, 7),
        tcp(S, k, SYN, 7),
        tcp(3 * S, k, SYN, 7),
        tcp(7 * S, k, SYN, 7),
    ];
    // Unrelated traffic moves the watermark past the deadline and tolerance.
    for i in 0..8 {
        input.push(tcp(
            60 * S + i,
            key(3, 4, 1000 + i as u16, 22, Proto::Tcp),
            SYN | ACK,
            1,
        ));
    }
    let (ev, st) = run(&input);
    assert_eq!(ev.len(), 1, "{ev:?}");
    let e = ev[0];
    assert_eq!(
        (e.reason, e.probe, e.retransmissions),
        (Reason::Unanswered, Probe::Syn, 3)
    );
    assert_eq!((e.first_ts, e.last_ts), (0, 7 * S));
    // Decided when syn_timeout ran out after the last SYN, not at capture end.
    assert_eq!(e.decided_ts, 7 * S + 40 * S);
    assert!(!e.at_capture_end);
    assert_eq!(e.order.phase, 0);
    assert_eq!((st.syn_attempts, st.retransmissions), (1, 3));
}

#[test]
fn a_timer_is_12_bytes() {
    assert_eq!(std::mem::size_of::<Timer>(), 12);
}

/// Hours of capture: the partitions' bases move on (packed timestamps and
/// timers counted from a later time) and every attempt is still decided at
/// its own deadline, to the nanosecond, in the first block whose due time is
/// past it, whatever the shard count: with a 2-hour timeout (beyond the 71
/// minutes a timer holds, so that timers are clipped until a rebase brings
/// them in reach), a SYN on a nanosecond timestamp and one on a whole
/// microsecond (both packed, then moved out by a rebase), and a SYN
/// rejected just after a rebase.
#[test]
fn attempts_keep_their_times_across_rebases() {
    let cfg = TrackConfig {
        syn_timeout: 2 * 3600 * S,
        ..TrackConfig::default()
    };
    let t0 = 1_700_000_000 * S;
    let k1 = key(1, 2, 40000, 80, Proto::Tcp);
    let k2 = key(1, 3, 40001, 80, Proto::Tcp);
    let k3 = key(1, 4, 40002, 445, Proto::Tcp);
    let mut input = vec![tcp(t0 + 7, k1, SYN, 1), tcp(t0 + 3000, k2, SYN, 2)];
    // Unanswered SYN-ACKs from elsewhere every 5 minutes for 3 hours move
    // the watermark.
    for i in 1..=36u16 {
        let at = t0 + i64::from(i) * 300 * S;
        input.push(tcp(at, key(9, 8, 1000 + i, 22, Proto::Tcp), SYN | ACK, 1));
        if i == 10 {
            // 50 minutes in, past the first rebase (36 minutes).
            input.push(tcp(at + S / 1000, k3, SYN, 3));
            input.push(tcp(at + S / 100, k3.reversed(), RST | ACK, 0));
        }
    }
    let (ev, st) = run_with(cfg.clone(), 1, 4, &input);
    assert!(st.rebases > 0, "{st:?}");
    let mut want = Vec::new();
    for (k, first) in [(k1, t0 + 7), (k2, t0 + 3000)] {
        let deadline = first + cfg.syn_timeout;
        // The first block whose watermark, less the tolerance, passes it.
        let mut wm = i64::MIN;
        let mut block = None;
        for (b, chunk) in input.chunks(4).enumerate() {
            if wm.saturating_sub(cfg.reorder_tolerance) > deadline {
                block = Some(b as u64);
                break;
            }
            for x in chunk {
                if let In::Pkt(s) = x {
                    wm = wm.max(s.ts);
                }
            }
        }
        want.push((k, Reason::Unanswered, first, deadline, block, false));
    }
    let at = t0 + 3000 * S;
    want.push((
        k3,
        Reason::Rejected,
        at + S / 1000,
        at + S / 100,
        None,
        false,
    ));
    let mut got: Vec<_> = ev
        .iter()
        .map(|e| {
            let block = (e.reason == Reason::Unanswered).then_some(e.order.block);
            (
                e.key,
                e.reason,
                e.first_ts,
                e.decided_ts,
                block,
                e.at_capture_end,
            )
        })
        .collect();
    got.sort_by_key(|x| x.2);
    want.sort_by_key(|x| x.2);
    assert_eq!(got, want);
    assert_eq!(run_with(cfg, 3, 4, &input).0, ev);
}

/// A capture of nanoseconds: a block whose due time falls inside the
/// microsecond a timer keeps, 2 ns before the attempt's deadline, does not
/// decide it; the next block, 1 ns after the deadline, does.
#[test]
fn a_timer_fires_to_the_nanosecond() {
    let cfg = TrackConfig::default();
    let t0 = 1_700_000_000 * S + 123_456_789;
    let k = key(1, 2, 40000, 80, Proto::Tcp);
    let deadline = t0 + cfg.syn_timeout;
    let other = |ts, port| tcp(ts, key(9, 8, port, 22, Proto::Tcp), SYN | ACK, 1);
    // One packet a block: block 2 starts at due = deadline - 2 ns, block 3
    // at deadline + 1 ns.
    let input = [
        tcp(t0, k, SYN, 1),
        other(deadline + cfg.reorder_tolerance - 2, 1000),
        other(deadline + cfg.reorder_tolerance + 1, 1001),
        other(deadline + cfg.reorder_tolerance + 2, 1002),
    ];
    let (ev, _) = run_with(cfg, 1, 1, &input);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(
        (ev[0].reason, ev[0].decided_ts),
        (Reason::Unanswered, deadline)
    );
    assert_eq!((ev[0].order.block, ev[0].at_capture_end), (3, false));
}

/// Timestamps near the start of `i64` time (a pcapng interface's time
/// offset can put them there): the base cannot go before them, and a SYN
/// re-sent every 30 s for 80 minutes, past what a timer holds, is one
/// attempt decided at its deadline. (The base used to come out equal to
/// "no base yet", and the re-sent SYN's timer was queued again forever.)
#[test]
fn time_near_the_start_of_i64_does_not_hang_the_tracker() {
    let k = key(1, 2, 40000, 80, Proto::Tcp);
    let t0 = i64::MIN + S;
    let mut input: Vec<In> = (0..160).map(|i| tcp(t0 + i * 30 * S, k, SYN, 5)).collect();
    let last = t0 + 159 * 30 * S;
    for i in 0..8u16 {
        input.push(tcp(
            last + 60 * S + i64::from(i),
            key(9, 8, 1000 + i, 22, Proto::Tcp),
            SYN | ACK,
            1,
        ));
    }
    let (ev, st) = run(&input);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(
        (ev[0].reason, ev[0].retransmissions),
        (Reason::Unanswered, 159)
    );
    assert_eq!((ev[0].first_ts, ev[0].decided_ts), (t0, last + 40 * S));
    assert!(!ev[0].at_capture_end);
    assert_eq!(st.syn_attempts, 1);
}

#[test]
fn syn_retransmitted_across_32s_gap_stays_one_attempt() {
    let k = key(1, 2, 40000, 80, Proto::Tcp);
    let t = [0, 1, 3, 7, 15, 31, 63];
    let input: Vec<In> = t.iter().map(|&x| tcp(x * S, k, SYN, 5)).collect();
    let (ev, st) = run(&input);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].retransmissions, 6);
    assert_eq!(st.syn_attempts, 1);
    // The capture ended 0 s after the last SYN: reported, and marked as such.
    assert!(ev[0].at_capture_end);
}

#[test]
fn rst_rejects_and_resent_syns_do_not_repeat() {
    let k = key(1, 2, 40000, 445, Proto::Tcp);
    let r = k.reversed();
    let input = [
        tcp(0, k, SYN, 9),
        tcp(1, r, RST | ACK, 0),
        tcp(S / 2, k, SYN, 9),
        tcp(S / 2 + 1, r, RST | ACK, 0),
        tcp(S, k, SYN, 9),
        tcp(S + 1, r, RST | ACK, 0),
    ];
    let (ev, st) = run(&input);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(
        (ev[0].reason, ev[0].decided_ts, ev[0].order.at),
        (Reason::Rejected, 1, 1)
    );
    assert_eq!(st.syn_attempts, 1);
}

#[test]
fn new_isn_on_same_tuple_is_a_new_attempt() {
    let k = key(1, 2, 40000, 445, Proto::Tcp);
    let r = k.reversed();
    let input = [
        tcp(0, k, SYN, 9),
        tcp(1, r, RST | ACK, 0),
        tcp(2 * S, k, SYN, 10),
        tcp(2 * S + 1, r, RST | ACK, 0),
    ];
    let (ev, st) = run(&input);
    assert_eq!(ev.len(), 2);
    assert_eq!(st.syn_attempts, 2);
}

#[test]
fn icmp_matches_by_tuple_and_isn() {
    let k = key(1, 2, 40000, 80, Proto::Tcp);
    let (ev, _) = run(&[tcp(0, k, SYN, 9), unreach(5, k, 1, Some(9))]);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].reason, Reason::Unreachable);
    assert_eq!(
        ev[0].icmp,
        Some(IcmpInfo {
            icmp_type: 3,
            code: 1,
            sender: a4(254)
        })
    );
    // Wrong ISN in the quote: not this attempt's error (it then times out).
    let (ev, st) = run(&[tcp(0, k, SYN, 9), unreach(5, k, 1, Some(1234))]);
    assert_eq!(st.icmp_seq_mismatch, 1);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].reason, Reason::Unanswered);
    // No attempt at all: counted, not reported.
    let (ev, st) = run(&[unreach(5, k, 1, Some(9))]);
    assert!(ev.is_empty());
    assert_eq!(st.icmp_unmatched, 1);
}

#[test]
fn capture_gap_ack_from_initiator_is_success() {
    let k = key(1, 2, 40000, 80, Proto::Tcp);
    let (ev, st) = run(&[tcp(0, k, SYN, 9), In::Est(k, S / 10), In::Est(k, S / 5)]);
    assert!(ev.is_empty(), "{ev:?}");
    assert_eq!((st.successes, st.capture_gaps), (1, 1));
    // FIN+ACK from the initiator proves it too.
    let (ev, st) = run(&[tcp(0, k, SYN, 9), tcp(S, k, FIN | ACK, 10)]);
    assert!(ev.is_empty());
    assert_eq!(st.capture_gaps, 1);
    // ACK/data from the *responder* alone is not the initiator's proof.
    let (ev, _) = run(&[tcp(0, k, SYN, 9), In::Est(k.reversed(), S / 10)]);
    assert_eq!(ev.len(), 1);
}

/// A capture gap (the initiator's ACK after its SYN, no SYN-ACK captured)
/// proves the initiator alive and is a success, but not the responder:
/// any source can send a SYN and then an ACK, and a scanner that did so
/// for each target first would have its real probes' failures counted on
/// "active" hosts.
#[test]
fn a_capture_gap_is_no_proof_of_the_responder() {
    let k = key(1, 2, 40000, 80, Proto::Tcp);
    let mut t = Tracker::new(TrackConfig::default(), 0, 1);
    t.begin_block(0, i64::MIN);
    t.packet(&tcp_summary(0, k, SYN, 9), 0, 0);
    t.established(
        partition_of(&k),
        k.src,
        flow_hash(&k),
        S / 10,
        true,
        order_at(1),
    );
    t.end_block();
    let (alive, contacts) = evidence(&mut t);
    assert_eq!(alive, vec![(a4(1), Seen::Data)]);
    assert_eq!(contacts, vec![(a4(1), a4(2))]);
    assert_eq!(t.stats.capture_gaps, 1);
}

#[test]
fn initiator_reset_is_rstos0() {
    let k = key(1, 2, 40000, 80, Proto::Tcp);
    let (ev, _) = run(&[tcp(0, k, SYN, 9), tcp(S, k, RST, 10)]);
    assert_eq!(ev.len(), 1);
    assert!(ev[0].initiator_reset);
    assert_eq!(ev[0].reason, Reason::Unanswered);
}

#[test]
fn stealth_probes() {
    for (flags, probe) in [
        (FIN, Probe::Fin),
        (0, Probe::Null),
        (FIN | PSH | URG, Probe::Xmas),
    ] {
        let k = key(1, 2, 50000, 25, Proto::Tcp);
        let (ev, _) = run(&[tcp(0, k, flags, 1), tcp(1, k.reversed(), RST | ACK, 0)]);
        assert_eq!(ev.len(), 1, "{flags:#x}");
        assert_eq!((ev[0].reason, ev[0].probe), (Reason::Rejected, probe));
        // Unanswered stealth probe: open|filtered, no failure.
        let (ev, st) = run(&[tcp(0, k, flags, 1)]);
        assert!(ev.is_empty());
        assert_eq!(st.stealth_probes, 1);
    }
}

#[test]
fn ack_probe_inferred_from_bare_rst_but_not_abort() {
    let k = key(1, 2, 50000, 22, Proto::Tcp);
    // The ACK probe (an "established" segment), then the target's bare RST.
    let (ev, _) = run(&[In::Est(k, 0), tcp(1, k.reversed(), RST, 0)]);
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].probe, ev[0].key), (Probe::Ack, k));
    // A connection both sides spoke on, then one side aborts: not a probe.
    let (ev, st) = run(&[
        In::Est(k, 0),
        In::Est(k.reversed(), 1),
        tcp(2, k.reversed(), RST, 0),
    ]);
    assert!(ev.is_empty(), "{ev:?}");
    assert_eq!(st.rst_unmatched, 1);
    // A bare RST with no ACK seen before it: nothing to attribute.
    let (ev, _) = run(&[tcp(2, k.reversed(), RST, 0)]);
    assert!(ev.is_empty());
    // The RST's sender only sent a FIN-ACK before (benign-linux-sll-kakaotalk):
    // it spoke on the flow, so this is a teardown.
    let (ev, _) = run(&[
        tcp(0, k.reversed(), FIN | ACK, 0),
        In::Est(k, 1),
        tcp(2, k.reversed(), RST, 0),
    ]);
    assert!(ev.is_empty(), "{ev:?}");
    // The other side sent data, not a payload-less probe (benign-teams-call).
    let (ev, _) = run(&[In::Data(k, 0), tcp(1, k.reversed(), RST, 0)]);
    assert!(ev.is_empty(), "{ev:?}");
}

#[test]
fn udp_unreachable_repeats_are_one_attempt() {
    let k = key(1, 2, 5000, 161, Proto::Udp);
    let (ev, _) = run(&[
        unreach(0, k, 3, None),
        unreach(S, k, 3, None),
        unreach(2 * S, k, 3, None),
    ]);
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (ev[0].reason, ev[0].probe),
        (Reason::Unreachable, Probe::Udp)
    );
    // Past syn_timeout since the last error: a new attempt.
    let (ev, _) = run(&[unreach(0, k, 3, None), unreach(100 * S, k, 3, None)]);
    assert_eq!(ev.len(), 2);
}

#[test]
fn arp_unanswered_and_answered() {
    let (ev, _) = run(&[
        arp(0, 1, 77, false),
        arp(S, 1, 77, false),
        arp(2 * S, 1, 77, false),
    ]);
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (ev[0].reason, ev[0].retransmissions),
        (Reason::Unresolved, 2)
    );
    assert_eq!(ev[0].key.dst, a4(77));
    let (ev, _) = run(&[arp(0, 1, 77, false), arp(S / 1000, 77, 1, true)]);
    assert!(ev.is_empty());
}

#[test]
fn timers_wait_for_reorder_tolerance() {
    let k = key(1, 2, 40000, 80, Proto::Tcp);
    let other = |t: i64, i: u16| tcp(t, key(5, 6, i, 22, Proto::Tcp), SYN | ACK, 0);
    // Watermark 43 s: past the deadline (40 s) but within the 5 s tolerance, so
    // the late SYN-ACK at 39 s (out of order) still answers the attempt.
    let input = [
        tcp(0, k, SYN, 1),
        other(43 * S, 1),
        other(43 * S, 2),
        other(43 * S, 3),
        tcp(39 * S, k.reversed(), SYN | ACK, 0),
    ];
    let (ev, st) = run_with(TrackConfig::default(), 1, 1, &input);
    assert!(ev.is_empty(), "{ev:?}");
    assert_eq!(st.successes, 1);
}

#[test]
fn full_table_decides_its_oldest_attempt_early() {
    let cfg = TrackConfig {
        max_pending: PARTITIONS,
        ..TrackConfig::default()
    };
    // One entry per partition: every SYN here shares the address pair and
    // thus one partition. The last one is answered.
    let mut input: Vec<In> = (0..1000u16)
        .map(|i| {
            tcp(
                i64::from(i) * S,
                key(1, 2, 1000 + i, 80, Proto::Tcp),
                SYN,
                1,
            )
        })
        .collect();
    input.push(tcp(
        999 * S + 1,
        key(1, 2, 1999, 80, Proto::Tcp).reversed(),
        SYN | ACK,
        0,
    ));
    let (ev, st) = run_with(cfg, 1, 64, &input);
    // Each new SYN made room by deciding the one before it, at its own time.
    assert_eq!(ev.len(), 999);
    for (i, e) in ev.iter().enumerate() {
        assert_eq!(e.reason, Reason::Unanswered);
        assert!(e.evicted);
        assert_eq!(e.key.sport, 1000 + i as u16);
        assert_eq!(e.decided_ts, (i as i64 + 1) * S);
    }
    assert_eq!(st.pending_evicted, 999);
    assert_eq!(st.pending_cap_dropped, 0);
    assert_eq!((st.syn_attempts, st.successes), (1000, 1));
}

#[test]
fn timers_of_answered_attempts_do_not_pile_up() {
    let mut t = Tracker::new(TrackConfig::default(), 0, 1);
    let lone = key(1, 2, 1, 81, Proto::Tcp);
    let part = partition_of(&lone);
    t.begin_block(0, i64::MIN);
    t.packet(&tcp_summary(0, lone, SYN, 5), 0, 0);
    // 20,000 handshakes of the same address pair (one partition), all
    // answered within 20 s: each left a timer for `syn_timeout` (40 s).
    for i in 0..20_000u16 {
        let k = key(1, 2, 1024 + i, 80, Proto::Tcp);
        let ts = i64::from(i) * (S / 1000);
        let idx = 1 + 2 * u64::from(i);
        t.packet(&tcp_summary(ts, k, SYN, 7), 0, idx);
        t.packet(&tcp_summary(ts + 1, k.reversed(), SYN | ACK, 9), 0, idx + 1);
    }
    let p = t.parts[part].as_ref().expect("owned");
    assert_eq!(p.table.len(), 1, "only the unanswered probe is held");
    assert!(
        p.timers.len() <= TIMERS_PER_ENTRY * TIMERS_MIN + 1,
        "{} timers for 1 entry",
        p.timers.len()
    );
    assert!(t.stats.timer_compactions > 0);
    // The unanswered probe kept its timer: it times out at 40 s.
    t.end_block();
    t.begin_block(1, 60 * S);
    t.end_block();
    let mut ev = Vec::new();
    t.drain_events(&mut ev);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(
        (ev[0].key, ev[0].reason, ev[0].decided_ts),
        (lone, Reason::Unanswered, 40 * S)
    );
    assert_eq!(t.stats.successes, 20_000);
}

/// A deterministic mix of everything above over many hosts.
fn mixed_input(n: usize) -> Vec<In> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut v = Vec::new();
    let mut ts = 0i64;
    for _ in 0..n {
        let r = next();
        ts += (r % 3_000_000_000) as i64;
        // Some disorder: up to 1 s back.
        let t = ts - (r >> 20) as i64 % S;
        // Few enough keys that answers often meet their probes.
        let k = key(
            (r >> 8) as u8 % 6,
            (r >> 16) as u8 % 6,
            40000 + (r >> 24) as u16 % 4,
            [22, 80, 445][(r >> 32) as usize % 3],
            Proto::Tcp,
        );
        let item = match (r >> 40) % 12 {
            0..=3 => tcp(t, k, SYN, (r >> 50) as u32 % 3),
            4 => tcp(t, k.reversed(), RST | ACK, 0),
            5 => tcp(t, k.reversed(), SYN | ACK, 0),
            6 => In::Est(k, t),
            11 => In::Data(k, t),
            7 => unreach(t, k, 1, Some((r >> 50) as u32 % 3)),
            8 => arp(t, (r >> 8) as u8 % 16, (r >> 16) as u8 % 32, r & 1 == 0),
            _ => tcp(t, k.reversed(), RST, 0),
        };
        v.push(item);
    }
    v
}

#[test]
fn same_events_for_any_shard_count() {
    let input = mixed_input(20_000);
    let (base, st) = run_with(TrackConfig::default(), 1, 97, &input);
    assert!(
        base.len() > 1000,
        "the mix should produce many events: {}",
        base.len()
    );
    assert!(
        st.failed.iter().all(|&n| n > 0),
        "every reason occurs: {:?}",
        st.failed
    );
    for shards in [2, 3, 4, 7, 64] {
        let (ev, _) = run_with(TrackConfig::default(), shards, 97, &input);
        assert_eq!(ev, base, "{shards} shards");
    }
}

#[test]
fn entry_sizes_stay_small() {
    // ARCHITECTURE.md quotes these; the performance issue shrinks them.
    assert_eq!(std::mem::size_of::<FlowKey>(), 38);
    assert_eq!(std::mem::size_of::<Attempt>(), 80);
    assert!(
        std::mem::size_of::<Summary>() <= 96,
        "{}",
        std::mem::size_of::<Summary>()
    );
}

#[test]
fn liveness_and_contacts_are_reported() {
    let mut t = Tracker::new(TrackConfig::default(), 0, 1);
    let k = key(1, 2, 40000, 80, Proto::Tcp);
    let o = order_at;
    let pkt = |ts, k, flags| tcp_summary(ts, k, flags, 5);
    t.packet(&pkt(0, k, SYN), 0, 0);
    t.packet(&pkt(1, k.reversed(), SYN | ACK), 0, 1);
    t.established(partition_of(&k), k.src, flow_hash(&k), 2, true, o(2));
    t.packet(&pkt(3, k.reversed(), FIN | ACK), 0, 3);
    // A RST proves nothing (firewalls reset for absent hosts), nor does a SYN.
    let k2 = key(3, 4, 40000, 80, Proto::Tcp);
    t.packet(&pkt(4, k2, SYN), 0, 4);
    t.packet(&pkt(5, k2.reversed(), RST | ACK), 0, 5);
    let arp = Summary {
        ts: 6,
        key: key(7, 8, 0, 0, Proto::Arp),
        vlan: [0, 0],
        what: What::Arp { reply: true },
    };
    t.packet(&arp, 0, 6);
    let (alive, contacts) = evidence(&mut t);
    assert_eq!(
        alive,
        vec![
            (a4(2), Seen::SynAck),
            (a4(1), Seen::Data),
            (a4(2), Seen::Fin),
            (a4(7), Seen::Arp)
        ]
    );
    assert_eq!(contacts, vec![(a4(1), a4(2))]);
    // Reported once per minute and kind.
    t.packet(&pkt(7, k.reversed(), FIN | ACK), 0, 7);
    assert!(evidence(&mut t).0.is_empty());
}

#[test]
fn evidence_is_reported_for_the_networks_asked_only() {
    // 10.0.0.0/30 holds .1 to .3; .7 and .8 are outside.
    let net: crate::config::Cidr = "10.0.0.0/30".parse().unwrap();
    let cfg = TrackConfig {
        evidence_nets: Some(vec![net]),
        ..TrackConfig::default()
    };
    let mut t = Tracker::new(cfg, 0, 1);
    let o = order_at;
    let syn = |ts, k, flags| tcp_summary(ts, k, flags, 5);
    // Outside to inside, and inside to outside: one contact each way.
    let inbound = key(7, 2, 40000, 80, Proto::Tcp);
    let outbound = key(1, 8, 40000, 80, Proto::Tcp);
    for (i, k) in [inbound, outbound].into_iter().enumerate() {
        let at = 10 * i as u64;
        t.packet(&syn(at as i64, k, SYN), 0, at);
        t.packet(&syn(at as i64 + 1, k.reversed(), SYN | ACK), 0, at + 1);
        for j in 0..3 {
            let x = k.reversed();
            t.established(
                partition_of(&x),
                x.src,
                flow_hash(&x),
                at as i64 + 2,
                true,
                o(at as i64 + 2 + j),
            );
            t.established(
                partition_of(&k),
                k.src,
                flow_hash(&k),
                at as i64 + 2,
                true,
                o(at as i64 + 2 + j),
            );
        }
    }
    let (alive, contacts) = evidence(&mut t);
    assert_eq!(
        alive,
        vec![
            (a4(2), Seen::SynAck),
            (a4(2), Seen::Data),
            (a4(1), Seen::Data)
        ]
    );
    assert_eq!(
        contacts,
        vec![(a4(7), a4(2))],
        "a contact counts for its target"
    );
    // And with an empty list, nothing at all (a run without analytics).
    let cfg = TrackConfig {
        evidence_nets: Some(Vec::new()),
        ..TrackConfig::default()
    };
    let mut t = Tracker::new(cfg, 0, 1);
    t.packet(&syn(0, inbound, SYN), 0, 0);
    t.packet(&syn(1, inbound.reversed(), SYN | ACK), 0, 1);
    assert_eq!(evidence(&mut t), (vec![], vec![]));
}

#[test]
fn hosts_sharing_a_liveness_slot_are_reported_once_a_minute() {
    // Two busy hosts whose addresses hash to the same set alternate: each is
    // reported once per minute, not at every packet.
    let mut t = Tracker::new(TrackConfig::default(), 0, 1);
    let first = a4(1);
    let set = hash::addr_slot(&first) & (ALIVE_SETS - 1);
    let other = (0..=u32::MAX)
        .map(|i| Addr::v4((0x0a01_0000 + i).to_be_bytes()))
        .find(|a| hash::addr_slot(a) & (ALIVE_SETS - 1) == set)
        .unwrap();
    let o = Order {
        block: 0,
        phase: 1,
        at: 0,
    };
    for i in 0..100 {
        for a in [first, other] {
            let k = FlowKey {
                src: a,
                dst: a4(9),
                sport: 1000,
                dport: 80,
                proto: Proto::Tcp,
            };
            t.established(partition_of(&k), a, flow_hash(&k), i * 100_000_000, true, o);
        }
    }
    let (alive, _) = evidence(&mut t);
    assert_eq!(alive, vec![(first, Seen::Data), (other, Seen::Data)]);
}

#[test]
fn icmp_error_before_its_syn_is_held_and_claimed() {
    // Live capture with several fanout handles can deliver the error first.
    let k = key(1, 2, 40000, 80, Proto::Tcp);
    let (ev, st) = run(&[unreach(S + 1, k, 13, Some(9)), tcp(S, k, SYN, 9)]);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].reason, Reason::Unreachable);
    assert_eq!(ev[0].decided_ts, S + 1);
    assert_eq!((st.icmp_reordered, st.icmp_unmatched), (1, 0));
    // An error no probe claims within the tolerance is unmatched; a later SYN
    // of the same tuple is its own attempt.
    let mut input = vec![unreach(0, k, 13, Some(9))];
    for i in 0..8 {
        input.push(tcp(
            20 * S + i,
            key(5, 6, 1000 + i as u16, 22, Proto::Tcp),
            SYN | ACK,
            0,
        ));
    }
    input.push(tcp(21 * S, k, SYN, 9));
    let (ev, st) = run(&input);
    assert_eq!(st.icmp_unmatched, 1);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].reason, Reason::Unanswered);
}

/// Held ICMP errors stay within their cap and their queue within twice
/// it, and each error is held or counted unmatched, whatever the stream:
/// one error repeated at one time (nothing expires), errors for many
/// probes at one time, one error whose time goes back and forth.
#[test]
fn held_icmp_errors_stay_within_their_cap() {
    type Errors = Box<dyn Fn(u32) -> In>;
    let cases: [(&str, Errors); 3] = [
        (
            "one error repeated",
            Box::new(|_| unreach(S, key(1, 2, 40000, 80, Proto::Tcp), 1, Some(9))),
        ),
        (
            "many probes",
            Box::new(|i| {
                unreach(
                    S,
                    key(1, 2, 1 + (i % 60000) as u16, 80, Proto::Tcp),
                    1,
                    None,
                )
            }),
        ),
        (
            "times back and forth",
            Box::new(|i| {
                unreach(
                    S + i64::from(i % 2),
                    key(1, 2, 40000, 80, Proto::Tcp),
                    1,
                    None,
                )
            }),
        ),
    ];
    for (name, err) in cases {
        let mut t = Tracker::new(TrackConfig::default(), 0, 1);
        let n = 200_000u32;
        t.begin_block(0, i64::MIN);
        for i in 0..n {
            let In::Pkt(s) = err(i) else { unreachable!() };
            t.packet(&s, 0, u64::from(i));
        }
        t.end_block();
        let mut held = 0;
        for p in t.parts.iter().flatten() {
            assert!(p.orphans.len() <= ORPHAN_CAP, "{name}: {}", p.orphans.len());
            assert!(
                p.orphan_queue.len() <= 2 * ORPHAN_CAP,
                "{name}: queue {}",
                p.orphan_queue.len()
            );
            held += p.orphans.len() as u64;
        }
        assert_eq!(t.stats.icmp_unmatched + held, u64::from(n), "{name}");
    }
}

/// Arbitrary input never panics the tracker, and its table stays within its
/// cap: frames of every link type (arbitrary bytes, and well-formed TCP
/// segments and ICMP errors between a few hosts with bytes overwritten)
/// decoded as the workers do, and summaries made up directly (combinations
/// the decoder can produce, over few addresses and ports so that attempts,
/// answers and errors meet), fed in blocks the way `pipeline::shard` does,
/// with timestamps that go back and forth, jump, and reach the ends of `i64`.
mod never_panics {
    use super::*;
    use crate::decode::{Decoded, decode};
    use crate::synth::frame::{Frame, Ip, L4, Payload, Quote, Tcp as TcpHeader, Vlan};
    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    const LINKS: [u16; 11] = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 999];

    /// 2024-03-01T00:00:00Z: where time starts.
    const BASE: i64 = 1_709_251_200 * S;

    #[derive(Clone, Debug)]
    enum Op {
        /// A frame of `link` holding these bytes.
        Raw(u16, Vec<u8>),
        /// An Ethernet frame: a TCP segment (or, with `code`, an ICMP error
        /// quoting one) between hosts `s` and `d`, then `edits` applied.
        Built {
            v6: bool,
            s: u8,
            d: u8,
            sp: u16,
            dp: u16,
            flags: u8,
            seq: u32,
            code: Option<u8>,
            edits: Vec<(usize, u8)>,
        },
        /// A summary as the decoder makes them (its `ts` is replaced).
        Pkt(Summary),
        /// An ACK/data segment of this flow.
        Est(FlowKey, bool),
    }

    fn ip(v6: bool, h: u8) -> IpAddr {
        if v6 {
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(h % 4)))
        } else {
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, h % 4))
        }
    }

    fn addr(v6: bool, h: u8) -> Addr {
        match ip(v6, h) {
            IpAddr::V4(a) => Addr::v4(a.octets()),
            IpAddr::V6(a) => Addr::v6(a.octets()),
        }
    }

    /// A packet's time: mostly a few seconds after the one before (or a
    /// little before it), sometimes a jump anywhere.
    #[derive(Clone, Copy, Debug)]
    enum Time {
        After(i64),
        At(i64),
    }

    impl Time {
        fn from(self, prev: i64) -> i64 {
            match self {
                Time::After(d) => prev.saturating_add(d),
                Time::At(t) => t,
            }
        }
    }

    fn time() -> impl Strategy<Value = Time> {
        prop_oneof![
            40 => (-3_000i64..5_000).prop_map(|ms| Time::After(ms * 1_000_000)),
            2 => (0i64..120_000).prop_map(|ms| Time::At(BASE + ms * 1_000_000)),
            // Minutes on, some nanoseconds off the microsecond: partitions'
            // bases move on (`Tracker::begin_block`) with entries held.
            2 => (1i64..90, 0i64..3).prop_map(|(min, ns)| Time::After(min * 60_000_000_000 + ns)),
            1 => any::<i64>().prop_map(Time::At),
            1 => prop::sample::select(vec![i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX])
                .prop_map(Time::At),
        ]
    }

    fn key() -> impl Strategy<Value = FlowKey> {
        (
            any::<bool>(),
            any::<u8>(),
            any::<u8>(),
            0u16..2,
            0u16..2,
            prop::sample::select(vec![Proto::Tcp, Proto::Udp, Proto::Ip(132)]),
            any::<bool>(),
        )
            .prop_map(|(v6, s, d, sp, dp, proto, answer)| {
                let k = FlowKey {
                    src: addr(v6, s),
                    dst: addr(v6, d),
                    sport: 40000 + sp,
                    dport: 20 + dp,
                    proto,
                };
                if answer { k.reversed() } else { k }
            })
    }

    /// The flag sets that mean something to the tracker, or any.
    fn flags() -> impl Strategy<Value = u8> {
        prop_oneof![
            6 => prop::sample::select(vec![
                SYN,
                SYN,
                SYN,
                SYN | ACK,
                SYN | ACK,
                RST,
                RST | ACK,
                FIN | ACK,
                FIN,
                ACK,
                0
            ]),
            1 => any::<u8>(),
        ]
    }

    fn summary() -> impl Strategy<Value = Summary> {
        let tcp = (key(), flags(), 0u32..4, 0u32..5).prop_map(|(k, flags, seq, ack)| Summary {
            ts: 0,
            key: FlowKey {
                proto: Proto::Tcp,
                ..k
            },
            vlan: [0, 0],
            what: What::Tcp { flags, seq, ack },
        });
        let unreach = (
            key(),
            0u8..16,
            any::<u8>(),
            prop::option::of(0u32..4),
            prop::option::of(any::<u8>()),
        )
            .prop_map(|(k, code, sender, quoted_seq, quoted_flags)| {
                let v6 = !k.src.is_v4();
                Summary {
                    ts: 0,
                    key: k,
                    vlan: [0, 0],
                    what: What::Unreach {
                        icmp_type: if v6 { 1 } else { 3 },
                        code,
                        sender: addr(v6, sender),
                        quoted_seq,
                        quoted_flags,
                    },
                }
            });
        let arp = (any::<u8>(), any::<u8>(), any::<bool>()).prop_map(|(s, d, reply)| Summary {
            ts: 0,
            key: FlowKey {
                src: addr(false, s),
                dst: addr(false, d),
                sport: 0,
                dport: 0,
                proto: Proto::Arp,
            },
            vlan: [0, 0],
            what: What::Arp { reply },
        });
        prop_oneof![4 => tcp, 2 => unreach, 1 => arp]
    }

    fn op() -> impl Strategy<Value = Op> {
        let raw = (
            prop::sample::select(LINKS.to_vec()),
            prop::collection::vec(any::<u8>(), 0..128),
        )
            .prop_map(|(l, b)| Op::Raw(l, b));
        let built = (
            any::<bool>(),
            any::<(u8, u8)>(),
            (0u16..2, 0u16..2, any::<bool>()),
            flags(),
            0u32..4,
            prop::option::of(0u8..16),
            prop::collection::vec((0usize..200, any::<u8>()), 0..3),
        )
            .prop_map(|(v6, (s, d), (sp, dp, answer), flags, seq, code, edits)| {
                Op::Built {
                    v6,
                    s,
                    d,
                    sp: if answer { 20 + dp } else { 40000 + sp },
                    dp: if answer { 40000 + sp } else { 20 + dp },
                    flags,
                    seq,
                    code,
                    edits,
                }
            });
        prop_oneof![
            2 => raw,
            3 => built,
            4 => summary().prop_map(Op::Pkt),
            2 => (key(), any::<bool>()).prop_map(|(k, p)| Op::Est(k, p)),
        ]
    }

    /// The frame an `Op::Built` describes.
    #[allow(clippy::too_many_arguments)]
    fn build(
        f: &mut Frame,
        v6: bool,
        s: u8,
        d: u8,
        sp: u16,
        dp: u16,
        flags: u8,
        seq: u32,
        code: Option<u8>,
        edits: &[(usize, u8)],
    ) -> Vec<u8> {
        let seg = L4::Tcp(TcpHeader::new(sp, dp, seq, 0, flags, 1024), Payload::EMPTY);
        f.build(Vlan::None, &Ip::new(ip(v6, s), ip(v6, d)), &seg);
        if let Some(code) = code {
            // The error comes back to the prober from a router (host 3).
            let quote = f.quote(Quote::Bytes8).to_vec();
            let err = L4::Unreach {
                code,
                mtu: 0,
                quote: &quote,
            };
            f.build(Vlan::None, &Ip::new(ip(v6, 3), ip(v6, s)), &err);
        }
        let mut bytes = f.bytes().to_vec();
        for &(at, b) in edits {
            if let Some(x) = bytes.get_mut(at) {
                *x = b;
            }
        }
        bytes
    }

    /// What `shard` checks nothing of but must hold: the table within its cap
    /// (all partitions together, and each), the count in step with the
    /// tables, held ICMP errors within theirs.
    fn check_caps(t: &Tracker, cap: usize) -> Result<(), TestCaseError> {
        prop_assert!(t.len() <= cap, "{} held, cap {cap}", t.len());
        let mut held = 0;
        for p in t.parts.iter().flatten() {
            prop_assert!(p.table.len() <= t.cap_per_partition);
            prop_assert!(p.orphans.len() <= ORPHAN_CAP);
            prop_assert!(p.orphan_queue.len() <= 2 * ORPHAN_CAP);
            // Timers of removed entries are dropped before the queue holds
            // twice the entries the partition has held (or TIMERS_MIN),
            // and every entry still has a timer, so none is left pending
            // past its deadline and a full partition can evict.
            prop_assert!(
                p.timers.len() <= TIMERS_PER_ENTRY * t.cap_per_partition.max(TIMERS_MIN) + 1
            );
            let timed: std::collections::HashSet<u64> = p.timers.iter().map(|t| t.hash()).collect();
            for h in p.table.hashes() {
                prop_assert!(timed.contains(&h), "entry {h:x} has no timer");
            }
            held += p.table.len();
        }
        prop_assert_eq!(held, t.len());
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn arbitrary_input_never_panics_the_tracker(
            max_pending in prop::sample::select(vec![64usize, 128, 100, 1000, 2_000_000]),
            blocks in prop::collection::vec(
                (
                    prop::collection::vec((op(), time()), 0..64),
                    // Some blocks start from a watermark of their own, as
                    // the wall clock's on an idle live link.
                    prop::option::of(time()),
                ),
                1..24,
            ),
            end in prop::option::of(time()),
        ) {
            let cfg = TrackConfig { max_pending, ..TrackConfig::default() };
            // What `Tracker::new` rounds the cap to: a whole number per partition.
            let cap = max_pending.div_ceil(PARTITIONS) * PARTITIONS;
            let mut t = Tracker::new(cfg, 0, 1);
            let mut frame = Frame::new();
            let (mut events, mut alive, mut contacts) = (Vec::new(), Vec::new(), Vec::new());
            let mut watermark = i64::MIN;
            let mut idx = 0u64;
            let mut now = BASE;
            for (b, (ops, tick)) in blocks.iter().enumerate() {
                let b = b as u64;
                let wm = tick.map_or(watermark, |x| x.from(watermark));
                t.begin_block(b, wm);
                for (op, time) in ops {
                    now = time.from(now);
                    let ts = now;
                    let order = Order { block: b, phase: 1, at: idx as i64 };
                    let decoded = match op {
                        Op::Raw(link, bytes) => decode(*link, ts, bytes),
                        Op::Built { v6, s, d, sp, dp, flags, seq, code, edits } => {
                            let f = build(&mut frame, *v6, *s, *d, *sp, *dp, *flags, *seq, *code, edits);
                            decode(crate::capture::linktype::ETHERNET, ts, &f)
                        }
                        Op::Pkt(s) => Decoded::Interesting(Summary { ts, ..*s }),
                        Op::Est(k, payload) => Decoded::Established(*k, *payload),
                    };
                    match decoded {
                        Decoded::Interesting(s) => t.packet(&s, b, idx),
                        Decoded::Established(k, payload) => {
                            t.established(partition_of(&k), k.src, flow_hash(&k), ts, payload, order)
                        }
                        Decoded::Skip(_) => {}
                    }
                    idx += 1;
                    watermark = watermark.max(ts);
                    check_caps(&t, cap)?;
                }
                t.end_block();
                check_caps(&t, cap)?;
                prop_assert!(t.stats.peak_pending <= cap as u64);
                t.drain_events(&mut events);
                t.drain_evidence(&mut alive, &mut contacts);
            }
            t.flush(end.map_or(watermark, |x| x.from(watermark)));
            t.drain_events(&mut events);
            prop_assert!(t.is_empty());
            check_caps(&t, cap)?;
            // Every failure counted was reported, once.
            let failed: u64 = Reason::ALL.iter().map(|r| t.stats.failed(*r)).sum();
            prop_assert_eq!(failed, events.len() as u64);
        }
    }
}

/// The output thread merges its shards' event lists instead of sorting
/// them together: for any number of lists, each put in order by
/// `order_shard_events`, the merge must give what a stable sort of all of
/// them in list order gives. Few distinct orders, keys and times, so that
/// ties happen; the tied events differ in `retransmissions`, which the order
/// ignores, so a tie broken the wrong way shows.
mod merge {
    use super::*;
    use proptest::prelude::*;

    fn event() -> impl Strategy<Value = Event> {
        (
            0u64..3,
            0u8..2,
            0i64..4,
            0u8..3,
            0i64..3,
            0usize..4,
            0u32..1000,
        )
            .prop_map(|(block, phase, at, d, ts, r, tag)| {
                let mut e = Event::syn_failure(
                    key(1, d, 1000, 80, Proto::Tcp),
                    Reason::ALL[r],
                    ts,
                    Order { block, phase, at },
                );
                e.retransmissions = tag;
                e
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn merged_lists_come_out_as_one_stable_sort(
            lists in prop::collection::vec(prop::collection::vec(event(), 0..40), 0..7),
            many in prop::collection::vec(prop::collection::vec(event(), 1..4), PARTITIONS),
            wide in any::<bool>(),
        ) {
            // Or as many lists as there can be shards, none empty: the
            // heap's way with 64 heads.
            let mut lists = if wide { many } else { lists };
            for l in &mut lists {
                order_shard_events(l);
                prop_assert!(l.is_sorted_by(|a, b| cmp_events(a, b).is_le()));
            }
            let mut expected: Vec<Event> = lists.concat();
            expected.sort_by(cmp_events);
            let slices: Vec<&[Event]> = lists.iter().map(Vec::as_slice).collect();
            let mut got = vec![Event::syn_failure(
                key(9, 9, 9, 9, Proto::Tcp),
                Reason::Rejected,
                0,
                Order { block: 0, phase: 0, at: 0 },
            )];
            merge_events(&slices, &mut got);
            // Appended after what was there.
            prop_assert_eq!(got.remove(0).key.src, a4(9));
            prop_assert_eq!(got, expected);
        }
    }
}

/// Attempts carried from a run before: those within their timeout at the
/// new input's start are taken up (a SYN-ACK of this run answers one; an
/// unanswered one times out as in one run), those past it are decided at
/// once as one run would have, those later than the start and those no
/// tracker makes are refused, and all are when the input starts before
/// the run before ended; what a run leaves comes out in its eviction order.
#[test]
fn carried_attempts_are_taken_up_decided_or_refused() {
    let carry = |t: &mut Tracker| {
        let mut v = Vec::new();
        for p in 0..PARTITIONS {
            t.carry_partition(p, &mut v);
        }
        v
    };
    // One address pair: one partition, whose eviction order is checked.
    let (answered, silent, expired, later) = (
        key(1, 2, 40000, 80, Proto::Tcp),
        key(1, 2, 40001, 80, Proto::Tcp),
        key(1, 2, 40002, 80, Proto::Tcp),
        key(1, 2, 40003, 80, Proto::Tcp),
    );
    let mut first = Tracker::new(TrackConfig::default(), 0, 1);
    first.begin_block(0, i64::MIN);
    for (i, (k, ts)) in [
        (expired, 0),
        (silent, 50 * S),
        (answered, 50 * S),
        (later, 200 * S),
    ]
    .into_iter()
    .enumerate()
    {
        first.packet(&tcp_summary(ts, k, SYN, 7), 0, i as u64);
    }
    first.end_block();
    let mut saved = carry(&mut first);
    let mut none = Vec::new();
    first.drain_events(&mut none);
    assert!(none.is_empty(), "carried, not decided: {none:?}");
    assert_eq!((first.len(), first.stats.carried_out), (0, 4));
    // In the order a full partition evicts them: the order they came in
    // (not by deadline and key, which would put `answered` first of two).
    let keys: Vec<FlowKey> = saved.iter().map(|c| c.key).collect();
    assert_eq!(keys, [expired, silent, answered, later]);
    // One no tracker makes: an ARP probe on a TCP flow.
    let mut bad = saved[2];
    bad.key.dport = 81;
    bad.probe = 9;
    saved.push(bad);

    // A capture that starts before the run before ended takes none up.
    let mut again = Tracker::new(TrackConfig::default(), 0, 1);
    again.restore(&saved, Some((0, 200 * S)), 0);
    assert_eq!(
        (again.stats.carried_in, again.stats.carried_refused),
        (0, 5)
    );
    assert!(again.is_empty());
    // The next input starts at 60 s (a hand-made state: the run before
    // ended at 55 s, `later` is from after that start and refused):
    // `expired` timed out at 40 s.
    let mut next = Tracker::new(TrackConfig::default(), 0, 1);
    next.restore(&saved, Some((60 * S, 55 * S)), 0);
    let st = next.stats.clone();
    assert_eq!(
        (
            st.carried_in,
            st.carried_expired,
            st.carried_refused,
            next.len()
        ),
        (3, 1, 2, 2)
    );
    next.begin_block(0, i64::MIN);
    next.packet(
        &tcp_summary(61 * S, answered.reversed(), SYN | ACK, 9),
        0,
        0,
    );
    next.end_block();
    // Past `silent`'s timeout (50 s + 40 s, and the tolerance).
    next.begin_block(1, 100 * S);
    next.end_block();
    let mut ev = Vec::new();
    next.drain_events(&mut ev);
    let got: Vec<(FlowKey, Reason, bool, i64)> = ev
        .iter()
        .map(|e| (e.key, e.reason, e.at_capture_end, e.decided_ts))
        .collect();
    assert_eq!(
        got,
        [
            (expired, Reason::Unanswered, false, 40 * S),
            (silent, Reason::Unanswered, false, 90 * S),
        ]
    );
    assert_eq!(next.stats.successes, 1);
    assert!(next.is_empty());
    // Without a packet the attempts stay as they were, for the run after.
    let mut idle = Tracker::new(TrackConfig::default(), 0, 1);
    idle.restore(&saved[..4], None, 0);
    assert_eq!(carry(&mut idle).as_slice(), &saved[..4]);
}
