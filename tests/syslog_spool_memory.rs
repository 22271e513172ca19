//! The syslog spool's memory does not grow with the spool: a spool of
//! 50 MB is opened, compacted at close and sent, with the heap of this
//! process (a counting allocator: this test has its own binary, and is its
//! only test) never more than a few MiB above where it started. Until
//! 2026-12-07 the spool was read whole at start and compacted through two
//! copies in memory: a 1.05 GB spool took 1.04 GB at start and 2.06 GB at
//! the compaction.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use scanwatch::config::{Dur, Size};
use scanwatch::output::syslog::{
    Message, MsgKind, SyslogAddr, SyslogConfig, SyslogSeverity, SyslogSink,
};

/// The system allocator, counting the bytes held now and the most held
/// since the last `reset_peak`.
struct Counting;

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call goes to the system allocator unchanged; the counters
// only watch.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = NOW.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        NOW.fetch_sub(l.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            if new >= l.size() {
                let now = NOW.fetch_add(new - l.size(), Ordering::Relaxed) + new - l.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                NOW.fetch_sub(l.size() - new, Ordering::Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Start watching: the heap now.
fn reset_peak() -> usize {
    let now = NOW.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

/// The most the heap grew above `base` since `reset_peak`.
fn grew(base: usize) -> usize {
    PEAK.load(Ordering::Relaxed).saturating_sub(base)
}

/// Far below the 50 MB spool, far above what the sink holds itself (a
/// 4096-slot queue, 64 KiB pieces, one message).
const BOUND: usize = 8 << 20;
const LINES: u64 = 100_000;
const PAD: usize = 480;
const SENT_BEFORE: u64 = 10_000;

fn line(seq: u64) -> String {
    format!(
        "<132>1 2024-03-16T10:00:00.034000Z sensor1 scanwatch 4242 alert - {{\"seq\":{seq},\"pad\":\"{}\"}}",
        "p".repeat(PAD)
    )
}

/// The sequence number in a message, without allocating.
fn seq_of(m: &[u8]) -> Option<u64> {
    let at = m.windows(6).position(|w| w == b"\"seq\":")? + 6;
    let digits = m[at..].iter().take_while(|b| b.is_ascii_digit());
    Some(digits.fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

#[test]
fn a_large_spool_is_opened_compacted_and_sent_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("log.sock");
    let spool = dir.path().join("spool");
    fs::create_dir(&spool).unwrap();
    // 100,000 messages of ~570 bytes (57 MB), the first 10,000 sent before
    // a restart (the sent offset in its older form: a bare number).
    let mut sent_to = 0u64;
    {
        let mut f = std::io::BufWriter::new(fs::File::create(spool.join("syslog.spool")).unwrap());
        for seq in 0..LINES {
            let l = line(seq);
            f.write_all(l.as_bytes()).unwrap();
            f.write_all(b"\n").unwrap();
            if seq < SENT_BEFORE {
                sent_to += l.len() as u64 + 1;
            }
        }
    }
    fs::write(spool.join("syslog.spool.sent"), format!("{sent_to}\n")).unwrap();
    let size = fs::metadata(spool.join("syslog.spool")).unwrap().len();
    assert!(size > 50_000_000, "{size}");
    let cfg = SyslogConfig {
        address: SyslogAddr::Unix(sock.clone()),
        reconnect_min: Dur(Duration::from_millis(10)),
        reconnect_max: Dur(Duration::from_millis(100)),
        timeout: Dur(Duration::from_secs(1)),
        flush_timeout: Dur(Duration::from_millis(200)),
        // Above the spool; and what is sent passes half of it while it is
        // sent, so the spool is compacted then too.
        spool_max: Size(64 << 20),
        ..SyslogConfig::default()
    };

    // 1. The server is away: open the spool, add 5, close (a compaction:
    //    the sent part goes).
    let base = reset_peak();
    let sink = SyslogSink::start(&cfg, Some(&spool)).unwrap();
    assert_eq!(sink.stats().snapshot().backlog, LINES - SENT_BEFORE);
    for seq in LINES..LINES + 5 {
        let json = format!("{{\"seq\":{seq}}}");
        sink.send(&Message {
            kind: MsgKind::Alert,
            ts_ns: 0,
            severity: SyslogSeverity::Warning,
            sd: &[],
            json: &json,
        });
    }
    let s = sink.close();
    let opened_and_compacted = grew(base);
    assert_eq!(
        (s.sent, s.backlog, s.dropped),
        (0, LINES - SENT_BEFORE + 5, 0)
    );
    assert!(
        opened_and_compacted < BOUND,
        "opening and compacting a {size}-byte spool took {opened_and_compacted} bytes of heap"
    );
    // What is left: the unsent lines and the 5, in order.
    let mut want = SENT_BEFORE;
    for l in BufReader::new(fs::File::open(spool.join("syslog.spool")).unwrap()).lines() {
        assert_eq!(seq_of(l.unwrap().as_bytes()), Some(want));
        want += 1;
    }
    assert_eq!(want, LINES + 5);

    // 2. The server is back: everything is sent, once, in order.
    let rx = UnixDatagram::bind(&sock).unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let next = Arc::new(AtomicU64::new(SENT_BEFORE));
    let wrong = Arc::new(AtomicBool::new(false));
    let receiver = {
        let (next, wrong) = (Arc::clone(&next), Arc::clone(&wrong));
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            let deadline = Instant::now() + Duration::from_secs(120);
            while next.load(Ordering::Relaxed) < LINES + 5 && Instant::now() < deadline {
                if let Ok(n) = rx.recv(&mut buf) {
                    if seq_of(&buf[..n]) != Some(next.load(Ordering::Relaxed)) {
                        wrong.store(true, Ordering::Relaxed);
                    }
                    next.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let base = reset_peak();
    let sink = SyslogSink::start(&cfg, Some(&spool)).unwrap();
    receiver.join().unwrap();
    let s = sink.close();
    let sent = grew(base);
    eprintln!(
        "spool of {size} bytes: heap grew {opened_and_compacted} bytes to open and compact it, {sent} to send it"
    );
    assert_eq!(next.load(Ordering::Relaxed), LINES + 5);
    assert!(!wrong.load(Ordering::Relaxed), "a message out of order");
    assert_eq!(
        (s.sent, s.backlog, s.dropped),
        (LINES - SENT_BEFORE + 5, 0, 0)
    );
    assert!(
        sent < BOUND,
        "sending a {size}-byte spool took {sent} bytes of heap"
    );
    assert_eq!(fs::metadata(spool.join("syslog.spool")).unwrap().len(), 0);
}
