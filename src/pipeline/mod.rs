//! The replay pipeline: threads, channels, and the ordered merge.
//!
//! ```text
//!             blocks (round robin)          per-shard batches              events per block
//! reader ───────────────────────▶ decode worker i ───────────────▶ tracker shard j ───────────▶ output
//!   ▲      bounded, N channels     (fast reject,      N×N bounded    (partitions          N bounded   (merge, sort
//!   └──── free block buffers ────   route by          channels        p % N == j)          channels    by Order,
//!                                  partition)                                                          write)
//! ```
//!
//! * The reader cuts the input into blocks whose boundaries depend only on the
//!   bytes, numbers them, and sends block `b` to worker `b % N`.
//! * A worker decodes a whole block and sends each shard one batch for it, empty
//!   or not, in block order: the interesting packets of that shard's partitions,
//!   and the ACK/data segments (deduplicated per flow within the block).
//! * Shard `j` reads block `b` from worker `b % N`, so it sees its packets in
//!   capture order whatever the worker timing. It starts each block by firing
//!   timers against the watermark (latest timestamp of all earlier blocks),
//!   which the reader computed over every packet, so all shards agree.
//! * The output reads block `b` from every shard, merges the events (each
//!   shard sends its own in canonical order: [`Order`], then flow key), and
//!   writes them. Same input, same lines, same order, for any number of
//!   threads.
//! * With analytics, the output merges each block's events, contacts and
//!   liveness into records in canonical order for the `reorder` thread,
//!   which passes them on to the `analytics` thread in the order they
//!   happened, once the reorder delay has passed. One sequence in, one
//!   sequence out: both threads are deterministic.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::analyze::{Alert, Analytics, Pending, Record, Reorderer, merge_records, sort_records};
use crate::capture::{Block, CaptureError, CaptureReader, Fill};
use crate::output::event_json;
use crate::track::{
    Alive, Carried, Contact, Event, PARTITIONS, TrackConfig, TrackStats, Tracker, merge_events,
    order_shard_events,
};

pub mod route;
use route::{Routed, Router, WorkerStats, track_block};

/// Bytes of capture per block. Fixed: block boundaries must not depend on the
/// thread count. 1 MiB holds a few thousand records, enough to amortise the
/// channel hand-offs, small enough to stay in L2/L3 while it is decoded.
pub const BLOCK_BYTES: usize = 1 << 20;

/// A block also ends once it spans this much capture time (ns). Timers fire
/// at block boundaries: in a sparse capture a 1 MiB block could span days,
/// and every `unanswered` decision in it would reach the analytics days late,
/// after later packets. With 1 s, a timer fires at most ~1 s plus the reorder
/// tolerance after its deadline.
pub const BLOCK_SPAN: i64 = 1_000_000_000;

/// Blocks in flight per worker (queued plus being decoded).
const QUEUE_DEPTH: usize = 4;

/// Largest vector (in elements) kept in a pool for reuse: a normal block's
/// fit; a burst's (a flood's block of timeouts) is freed instead of held.
const POOLED_CAPACITY: usize = 1 << 16;

/// Settings of one replay run.
#[derive(Clone, Debug)]
pub struct ReplayConfig {
    /// Decode workers, and as many tracker shards (1..=64).
    pub threads: usize,
    pub track: TrackConfig,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig {
            threads: 1,
            track: TrackConfig::default(),
        }
    }
}

/// What a run did: the numbers of the summary printed at the end.
#[derive(Clone, Debug, Default)]
pub struct RunStats {
    pub files: usize,
    /// The decode workers' counts, summed: packets, bytes, kept, skipped.
    pub decode: WorkerStats,
    pub track: TrackStats,
    pub events: u64,
    /// Failures and successful contacts of sources the rules do not judge
    /// (outside `home_net`, without `detector.alert_external_sources`), left
    /// out of the analytics (see `analyze::SourceScope`).
    pub external: External,
    pub wall: Duration,
    /// Records whose captured length exceeds the file's snaplen (accepted).
    pub oversize_records: u64,
    /// Timestamps the replay could not trust.
    pub time: TimeCheck,
    /// CPU time of each pipeline thread, in pipeline order (reader, decode
    /// workers, tracker shards, reorder, analytics, output). With every thread on
    /// its own core the busiest one sets the pace: the run cannot go
    /// faster than its packets in that thread's CPU time, whatever the
    /// core count.
    pub cpu: Vec<(String, Duration)>,
}

/// See [`RunStats::external`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct External {
    pub failures: u64,
    pub contacts: u64,
}

impl RunStats {
    /// The thread with the most CPU time.
    pub fn busiest(&self) -> Option<&(String, Duration)> {
        self.cpu.iter().max_by_key(|(_, d)| *d)
    }
}

/// Records stamped at or after 2200-01-01 (ns): no capture holds them; a
/// garbage record, or a pcapng offset or resolution that ran past what an
/// i64 of nanoseconds holds (saturated at 2262), which would otherwise move
/// every clock to the end of time.
pub const LATEST_TS: i64 = 7_258_118_400_000_000_000;

/// Timestamps a replay cannot trust, counted by the reader (in file order,
/// so the same for any number of threads).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeCheck {
    /// Records dropped for a time at or after [`LATEST_TS`].
    pub beyond: u64,
    /// Records more than the reorder tolerance earlier than a packet before
    /// them: an attempt they start has timed out already by the capture's
    /// clock, and an answer of theirs can find its attempt decided.
    pub late: u64,
    /// The most one of them was behind (ns).
    pub max_lag: i64,
    /// Records whose fraction of a second was a second or more, read as
    /// the last instant of their second (counted by the file reader).
    pub bad_fraction: u64,
}

impl TimeCheck {
    /// Drop `blk`'s records stamped beyond [`LATEST_TS`]; count those more
    /// than `tolerance` before `clock` (the latest time before each) and
    /// advance `clock`. Returns the latest time in the block (one pass: the
    /// reader walks every record's time once).
    fn check(&mut self, blk: &mut Block, clock: &mut i64, tolerance: i64) -> i64 {
        let mut beyond = 0;
        let mut latest = i64::MIN;
        for r in &blk.recs {
            if r.ts >= LATEST_TS {
                beyond += 1;
                continue;
            }
            let lag = clock.saturating_sub(r.ts);
            if lag > tolerance {
                self.late += 1;
                self.max_lag = self.max_lag.max(lag);
            }
            latest = latest.max(r.ts);
            *clock = (*clock).max(r.ts);
        }
        if beyond > 0 {
            blk.recs.retain(|r| r.ts < LATEST_TS);
            self.beyond += beyond;
        }
        latest
    }
}

/// What the reader thread reports at the end.
#[derive(Default)]
struct ReaderOut {
    problems: Vec<InputProblem>,
    files: usize,
    oversize: u64,
    time: TimeCheck,
}

/// CPU time the calling thread has used so far.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock is the calling
    // thread's own, which every Linux has.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// Where each pipeline thread leaves its CPU time as it ends.
type CpuLog = std::sync::Mutex<Vec<(u32, String, Duration)>>;

/// Run `f`, then note this thread's CPU time under `name` (`rank` orders
/// the summary: pipeline stage, then index).
fn with_cpu<T>(log: &CpuLog, rank: u32, name: String, f: impl FnOnce() -> T) -> T {
    let r = f();
    let cpu = thread_cpu();
    if let Ok(mut v) = log.lock() {
        v.push((rank, name, cpu));
    }
    r
}

/// A capture that could not be (fully) read. The run still processed every
/// packet before the problem.
#[derive(Debug)]
pub enum InputProblem {
    /// The file ends inside a record: a warning; everything before it was read.
    Truncated {
        path: String,
        offset: u64,
        reason: String,
    },
    /// The file is damaged or unreadable from `error.offset` on.
    Error(CaptureError),
}

impl InputProblem {
    pub fn is_error(&self) -> bool {
        matches!(self, InputProblem::Error(_))
    }
}

impl std::fmt::Display for InputProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputProblem::Truncated {
                path,
                offset,
                reason,
            } => {
                write!(
                    f,
                    "capture '{path}' is truncated at offset {offset} ({reason}); every packet before it was processed"
                )
            }
            InputProblem::Error(e) => write!(f, "{e}; every packet before it was processed"),
        }
    }
}

/// Result of [`replay`].
#[derive(Default)]
pub struct RunOutcome {
    pub stats: RunStats,
    /// Warnings and errors met while reading, in file order.
    pub problems: Vec<InputProblem>,
    /// The detector's state at the end (to save, or to inspect).
    pub analytics: Option<Analytics>,
    pub alerts_written: u64,
    /// A checkpoint that failed (the run went on; alerts were not lost).
    pub checkpoint_errors: Vec<String>,
}

/// Errors that stop a run before or while it writes.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("cannot write events or alerts")]
    Output(#[from] std::io::Error),
    #[error("--threads must be between 1 and {PARTITIONS}, not {0}")]
    Threads(usize),
}

/// Progress as the reader goes: bytes of input consumed so far, all files.
#[derive(Default, Debug)]
pub struct Progress {
    pub bytes: AtomicU64,
}

/// One decoded block's packets for one shard.
struct ShardBatch {
    block: u64,
    base_idx: u64,
    /// Latest timestamp of all blocks before this one.
    watermark: i64,
    /// The block's first record's timestamp, `i64::MIN` for a live
    /// sensor's idle tick (no record): for the first block with records,
    /// when this run's input starts (see `Tracker::restore`).
    first_ts: i64,
    routed: Routed,
}

enum ToWorker {
    Block {
        block: u64,
        base_idx: u64,
        watermark: i64,
        data: Block,
    },
    End {
        watermark: i64,
    },
}

enum ToShard {
    Batch(ShardBatch),
    End { watermark: i64 },
}

/// What a shard hands the output for one block.
#[derive(Default)]
struct ShardOut {
    events: Vec<Event>,
    alive: Vec<Alive>,
    contacts: Vec<Contact>,
    /// The block's watermark: on an idle live link, the wall clock, which
    /// lets the reorder thread release what it holds.
    watermark: i64,
}

enum ToOutput {
    Block(ShardOut),
    End(ShardOut, TrackStats),
}

/// The analytics stage of a run: the detector's state (fresh, or loaded from a
/// state directory), where alerts go, and how to checkpoint.
pub struct Analysis {
    pub analytics: Analytics,
    /// JSON lines (a file or stdout).
    pub alerts: Option<Box<dyn Write + Send>>,
    /// Further alert outputs (syslog).
    pub sinks: Vec<Box<dyn AlertSink>>,
    /// Further outputs of the failed-connection events (syslog with
    /// `output.syslog.events`), fed by the output thread as it writes them.
    pub event_sinks: Vec<Box<dyn EventSink>>,
    /// Called every `checkpoint_interval` of event time and at the end.
    pub checkpoint: Option<Checkpoint>,
}

/// Saves the analytics' state; the error is for the log.
pub type SaveFn = Box<dyn FnMut(&Analytics) -> Result<(), String> + Send>;

/// An alert output that wants the alert, not just its line (syslog needs the
/// severity and source for its header and structured data). Must not block.
pub trait AlertSink: Send {
    fn alert(&mut self, a: &Alert);
    /// The run is ending: start delivering what is left, without waiting
    /// (every sink is asked first, then each is closed).
    fn request_stop(&mut self) {}
    /// End of the run: deliver what can be delivered.
    fn close(&mut self) {}
}

/// An output of failed-connection events that wants the event with its
/// JSON line (no newline). Must not block.
pub trait EventSink: Send {
    fn event(&mut self, e: &Event, line: &str);
    /// As [`AlertSink::request_stop`].
    fn request_stop(&mut self) {}
    /// End of the run: deliver what can be delivered.
    fn close(&mut self) {}
}

/// A checkpoint hook: every `interval` ns of event time, and at the end.
pub struct Checkpoint {
    pub interval: i64,
    pub save: SaveFn,
    /// Whether the attempts still undecided at the end go into the final
    /// checkpoint for the next run (`track::Carried`) instead of being
    /// decided `at_capture_end`: only for a state that can be written (a
    /// read-only one would lose them).
    pub carry: bool,
}

/// Open every capture once to check it before any packet is processed: a typo
/// in the fifth file name should not cost the analyst a replay of the first four.
pub fn check_inputs(paths: &[PathBuf]) -> Result<(), CaptureError> {
    use std::os::unix::fs::FileTypeExt;
    for p in paths {
        // A FIFO, a device or standard input can be read once only: opening
        // it here would eat its header (and wait for a writer). It is checked
        // when its turn comes.
        if p.as_os_str() == "-"
            || std::fs::metadata(p).is_ok_and(|m| {
                let t = m.file_type();
                t.is_fifo() || t.is_char_device() || t.is_socket()
            })
        {
            continue;
        }
        CaptureReader::open(p)?;
    }
    Ok(())
}

/// Replay `paths` in order (state carried across files), writing failed-connection
/// events to `events` when given.
pub fn replay(
    paths: &[PathBuf],
    cfg: &ReplayConfig,
    events: Option<Box<dyn Write + Send>>,
    analysis: Option<Analysis>,
    progress: Arc<Progress>,
) -> Result<RunOutcome, RunError> {
    check_inputs(paths)?;
    run(
        Source::Files { paths, progress },
        cfg,
        events,
        analysis,
        Arc::default(),
    )
}

/// Where a run's packets come from.
pub enum Source<'a> {
    /// Capture files, read in order.
    Files {
        paths: &'a [PathBuf],
        progress: Arc<Progress>,
    },
    /// Blocks from live capture threads, until `stop` is set and they hang up.
    /// On an idle link a tick with the wall clock advances the timers.
    Live {
        blocks: Receiver<Block>,
        stop: Arc<AtomicBool>,
    },
}

/// Gauges a running pipeline publishes for the stats line.
#[derive(Debug, Default)]
pub struct Gauges {
    /// Attempts held by the trackers (sum of the shards' last reports).
    pub pending: AtomicU64,
    pub events: AtomicU64,
    pub alerts: AtomicU64,
    /// Hosts in the inventory, sources with state.
    pub hosts: AtomicU64,
    pub sources: AtomicU64,
    /// Attempts decided early because the pending table was full.
    pub evicted: AtomicU64,
    /// Records analysed more than a test period older than the detector's
    /// clock, this run (see `AnalyticsStats::behind_clock`).
    pub behind_clock: AtomicU64,
    /// New attempts refused: the pending table was full and nothing could
    /// be decided early (`TrackStats::pending_cap_dropped`).
    pub pending_refused: AtomicU64,
    /// Messages the analytics thread has taken, the last stage: a live
    /// pipeline passes at least one every 100 ms even on an idle link (the
    /// sequencer's empty blocks), so a count that stands still means a
    /// stage hangs (what systemd's watchdog is fed by).
    pub progress: AtomicU64,
    /// Failures of sources outside `home_net` left out of the analytics
    /// (`RunStats::external`).
    pub external_failures: AtomicU64,
    /// The analytics' cap hits this run, so that a live sensor shows them
    /// while it runs, not only in the summary at exit.
    pub caps: AnalyticsCaps,
}

/// The analytics' cap counters of [`Gauges`] (this run's, see
/// `AnalyticsStats`).
#[derive(Debug, Default)]
pub struct AnalyticsCaps {
    pub sources_refused: AtomicU64,
    pub sources_evicted: AtomicU64,
    pub target_sets_full: AtomicU64,
    pub evidence_cap_hits: AtomicU64,
    pub reorder_overflow: AtomicU64,
    /// Hosts the inventory forgot this run, and those of them still active
    /// (`Inventory::hosts_forgotten`, `hosts_forgotten_active`: not saved
    /// with the state, so this run's already).
    pub hosts_forgotten: AtomicU64,
    pub hosts_forgotten_active: AtomicU64,
}

impl AnalyticsCaps {
    fn store(&self, a: &Analytics, at_start: &crate::analyze::AnalyticsStats) {
        let st = a.stats.since(at_start);
        let o = Ordering::Relaxed;
        self.sources_refused.store(st.sources_cap_dropped, o);
        self.sources_evicted.store(st.sources_evicted, o);
        self.target_sets_full.store(st.targets_cap_hit, o);
        self.evidence_cap_hits.store(st.evidence_cap_hit, o);
        self.reorder_overflow.store(st.reorder_overflow, o);
        let inv = a.inventory();
        self.hosts_forgotten.store(inv.hosts_forgotten, o);
        self.hosts_forgotten_active
            .store(inv.hosts_forgotten_active, o);
    }
}

/// Run the pipeline over `source`.
pub fn run(
    source: Source<'_>,
    cfg: &ReplayConfig,
    mut events: Option<Box<dyn Write + Send>>,
    analysis: Option<Analysis>,
    gauges: Arc<Gauges>,
) -> Result<RunOutcome, RunError> {
    let n = cfg.threads;
    if !(1..=PARTITIONS).contains(&n) {
        return Err(RunError::Threads(n));
    }
    let start = Instant::now();

    let (free_tx, free_rx) = bounded::<Block>(n * (QUEUE_DEPTH + 2) + 2);
    let worker_ch: Vec<(Sender<ToWorker>, Receiver<ToWorker>)> =
        (0..n).map(|_| bounded(QUEUE_DEPTH)).collect();
    // shard_ch[i][j]: worker i → shard j
    let shard_ch: Vec<Vec<(Sender<ToShard>, Receiver<ToShard>)>> = (0..n)
        .map(|_| (0..n).map(|_| bounded(QUEUE_DEPTH * 2)).collect())
        .collect();
    let out_ch: Vec<(Sender<ToOutput>, Receiver<ToOutput>)> =
        (0..n).map(|_| bounded(QUEUE_DEPTH * 2)).collect();
    // Emptied per-block vectors go back to where they are filled, so that the
    // steady state allocates nothing: fresh allocations of a few hundred KiB
    // per block cost page faults and the kernel zeroing huge pages (a fifth
    // of the CPU time before). Each pool holds at most what is in flight; a
    // full pool drops the vector.
    let batch_pool: Vec<(Sender<ShardBatch>, Receiver<ShardBatch>)> =
        (0..n).map(|_| bounded(n * (QUEUE_DEPTH * 2 + 2))).collect();
    let out_pool: Vec<(Sender<ShardOut>, Receiver<ShardOut>)> =
        (0..n).map(|_| bounded(QUEUE_DEPTH * 2 + 2)).collect();
    let (rec_pool_tx, rec_pool_rx) = bounded::<Vec<Record>>(QUEUE_DEPTH * 2 + 2);

    // With a state directory, the attempts still undecided at the end go
    // to the next run through it (`track::Carried`), and each shard takes
    // up those the run before left with its first block that has packets.
    let mut analysis = analysis;
    let carry = analysis
        .as_ref()
        .and_then(|a| a.checkpoint.as_ref())
        .is_some_and(|c| c.carry);
    // By partition (in the order they were saved in each): a shard takes
    // its own when its input starts, and the saved order is the same for
    // any number of shards.
    let mut by_part: Vec<Vec<Carried>> = vec![Vec::new(); PARTITIONS];
    let carried_until = analysis
        .as_ref()
        .map_or(i64::MIN, |a| a.analytics.carried_until);
    for c in analysis
        .as_mut()
        .map(|a| std::mem::take(&mut a.analytics.carried))
        .unwrap_or_default()
    {
        by_part[crate::track::partition_of(&c.key)].push(c);
    }
    let carried_in = std::sync::Mutex::new(by_part);
    let carried_out = std::sync::Mutex::new(CarriedOut {
        by_part: vec![Vec::new(); PARTITIONS],
        until: i64::MIN,
    });

    let mut outcome = RunOutcome::default();
    let mut wstats = Vec::new();
    let mut events_written = 0u64;
    let mut external = External::default();
    let mut track = TrackStats::default();
    let mut oversize = 0u64;
    let cpu_log = CpuLog::default();
    let output_cpu_start = thread_cpu();

    thread::scope(|sc| -> Result<(), RunError> {
        // Reader.
        let to_workers: Vec<Sender<ToWorker>> = worker_ch.iter().map(|c| c.0.clone()).collect();
        let reader = thread::Builder::new()
            .name("reader".into())
            .spawn_scoped(sc, || {
                with_cpu(&cpu_log, 0, "reader".into(), move || match source {
                    Source::Files { paths, progress } => read_all(
                        paths,
                        &to_workers,
                        &free_rx,
                        &progress,
                        cfg.track.reorder_tolerance,
                    ),
                    Source::Live { blocks, stop } => sequence(&blocks, &to_workers, &stop),
                })
            })
            .expect("spawn reader");

        // Decode workers.
        let mut workers = Vec::new();
        for (i, (_, rx)) in worker_ch.iter().enumerate() {
            let rx = rx.clone();
            let txs: Vec<Sender<ToShard>> = shard_ch[i].iter().map(|c| c.0.clone()).collect();
            let free = free_tx.clone();
            let pool = batch_pool[i].1.clone();
            workers.push(
                thread::Builder::new()
                    .name(format!("decode-{i}"))
                    .spawn_scoped(sc, {
                        let log = &cpu_log;
                        move || {
                            with_cpu(log, 1 << 8 | i as u32, format!("decode-{i}"), || {
                                decode_worker(rx, txs, free, pool)
                            })
                        }
                    })
                    .expect("spawn worker"),
            );
        }
        drop(free_tx);

        // Tracker shards. Liveness and contacts are only wanted for the
        // analytics' home_net, and not at all without analytics.
        let mut track_cfg = cfg.track.clone();
        track_cfg.evidence_nets = Some(
            analysis
                .as_ref()
                .map(|a| a.analytics.inventory().home_net().to_vec())
                .unwrap_or_default(),
        );
        for j in 0..n {
            let rxs: Vec<Receiver<ToShard>> = (0..n).map(|i| shard_ch[i][j].1.clone()).collect();
            let tx = out_ch[j].0.clone();
            let tcfg = track_cfg.clone();
            let pools = Pools {
                batches: batch_pool.iter().map(|c| c.0.clone()).collect(),
                outs: out_pool[j].1.clone(),
            };
            thread::Builder::new()
                .name(format!("track-{j}"))
                .spawn_scoped(sc, {
                    let (g, log) = (gauges.clone(), &cpu_log);
                    let (carried_in, carried_out) = (&carried_in, &carried_out);
                    move || {
                        with_cpu(log, 2 << 8 | j as u32, format!("track-{j}"), || {
                            let t = Tracker::new(tcfg, j, n);
                            let carry = carry.then_some(carried_out);
                            let carried = (carried_in, carried_until);
                            shard(t, rxs, tx, pools, &g, carried, carry)
                        })
                    }
                })
                .expect("spawn shard");
        }
        drop(worker_ch);
        drop(shard_ch);
        drop(batch_pool);

        // Analytics.
        let (rec_tx, rec_rx) = bounded::<ToReorder>(QUEUE_DEPTH * 2);
        // The longest a failure is known after its probe: a SYN timeout, the
        // reorder tolerance, and a block's span before its timers run.
        let delay = cfg.track.syn_timeout.max(cfg.track.arp_timeout)
            + cfg.track.reorder_tolerance
            + BLOCK_SPAN;
        // The reorder buffer runs in a thread of its own ahead of the
        // analytics: under a flood it was a third of the analytics thread,
        // the one thread more cores cannot split.
        let (rel_tx, rel_rx) = bounded::<Released>(QUEUE_DEPTH * 2);
        let (rel_pool_tx, rel_pool_rx) = bounded::<Vec<Pending>>(QUEUE_DEPTH * 2 + 2);
        let scope = analysis.as_ref().map(|a| a.analytics.source_scope());
        let mut event_sinks = analysis
            .as_mut()
            .map(|a| std::mem::take(&mut a.event_sinks))
            .unwrap_or_default();
        let analytics = analysis.map(|a| {
            let reorder = thread::Builder::new()
                .name("reorder".into())
                .spawn_scoped(sc, {
                    let log = &cpu_log;
                    move || {
                        with_cpu(log, 3 << 8, "reorder".into(), || {
                            reorder(
                                Reorderer::new(delay),
                                rec_rx,
                                rec_pool_tx,
                                rel_tx,
                                rel_pool_rx,
                            )
                        })
                    }
                })
                .expect("spawn reorder");
            let analytics = thread::Builder::new()
                .name("analytics".into())
                .spawn_scoped(sc, {
                    let (g, log, carried) = (gauges.clone(), &cpu_log, &carried_out);
                    move || {
                        with_cpu(log, 3 << 8 | 1, "analytics".into(), || {
                            analyze(a, rel_rx, rel_pool_tx, &g, carried)
                        })
                    }
                })
                .expect("spawn analytics");
            (reorder, analytics)
        });
        let rec_tx = analytics.is_some().then_some(rec_tx);

        // Output: this thread.
        let out_rx: Vec<Receiver<ToOutput>> = out_ch.iter().map(|c| c.1.clone()).collect();
        drop(out_ch);
        let mut records = Vec::new();
        let mut line = String::with_capacity(LINES_BYTES + 4096);
        let mut block_events = Vec::new();
        let mut outs: Vec<ShardOut> = Vec::with_capacity(out_rx.len());
        let mut ended = 0;
        let mut write_err = None;
        let mut write = |ev: &[Event], line: &mut String, written: &mut u64| {
            let mut file = events.as_mut().filter(|_| write_err.is_none());
            if file.is_some() || !event_sinks.is_empty() {
                // The block's lines are written together, up to LINES_BYTES at
                // a time: a write per line copied each into the writer's
                // buffer, through a dynamic call, millions of times under a
                // flood. Each line is made once, for the file and the sinks.
                line.clear();
                let mut wrote = Ok(());
                for (i, e) in ev.iter().enumerate() {
                    let at = line.len();
                    event_json(e, line);
                    if !event_sinks.is_empty() {
                        let l = &line[at..line.len() - 1];
                        for s in event_sinks.iter_mut() {
                            s.event(e, l);
                        }
                    }
                    if line.len() < LINES_BYTES && i + 1 < ev.len() {
                        continue;
                    }
                    if let Some(w) = file.as_mut()
                        && wrote.is_ok()
                    {
                        wrote = w.write_all(line.as_bytes());
                    }
                    line.clear();
                }
                // Each block's events leave at once (a live sensor's reader
                // should not wait for 64 KiB of them).
                if let Some(w) = file
                    && wrote.is_ok()
                    && !ev.is_empty()
                {
                    wrote = w.flush();
                }
                if let Err(err) = wrote {
                    // Said now, not only at exit: a live sensor runs for weeks.
                    tracing::error!("cannot write events: {err}; no more events will be written");
                    write_err = Some(err);
                }
            }
            *written += ev.len() as u64;
        };
        'blocks: loop {
            let mut watermark = i64::MIN;
            for rx in &out_rx {
                let mut out = match rx.recv() {
                    Ok(ToOutput::Block(o)) => o,
                    Ok(ToOutput::End(o, st)) => {
                        track.add(&st);
                        ended += 1;
                        o
                    }
                    // A shard died (it panicked): stop; the join below reports it.
                    Err(_) => break 'blocks,
                };
                watermark = watermark.max(out.watermark);
                if let Some(scope) = &scope {
                    for c in out.contacts.drain(..) {
                        if scope.judges(&c.src) {
                            records.push(Record::Contact(c));
                        } else {
                            external.contacts += 1;
                        }
                    }
                    records.extend(out.alive.drain(..).map(Record::Alive));
                }
                out.alive.clear();
                out.contacts.clear();
                outs.push(out);
            }
            // Each shard's events come in canonical order: merged, not sorted.
            // One shard's list is the merge: swapped in, not copied
            // (block_events is empty here, and the shard gets block_events'
            // emptied vector in exchange; a burst's large one stays in
            // block_events, which lets it go below).
            debug_assert!(block_events.is_empty());
            if let [only] = outs.as_mut_slice() {
                std::mem::swap(&mut only.events, &mut block_events);
            } else {
                let lists: Vec<&[Event]> = outs.iter().map(|o| o.events.as_slice()).collect();
                merge_events(&lists, &mut block_events);
            }
            for (j, mut out) in outs.drain(..).enumerate() {
                out.events.clear();
                // A burst's vectors are dropped, not kept for reuse.
                if [
                    out.events.capacity(),
                    out.alive.capacity(),
                    out.contacts.capacity(),
                ]
                .iter()
                .all(|&c| c <= POOLED_CAPACITY)
                {
                    let _ = out_pool[j].0.try_send(out);
                }
            }
            gauges
                .events
                .fetch_add(block_events.len() as u64, Ordering::Relaxed);
            write(&block_events, &mut line, &mut events_written);
            if let Some(tx) = &rec_tx {
                // The block's contacts and liveness are sorted, then merged
                // with its failures (sorted above).
                sort_records(&mut records);
                let mut merged = rec_pool_rx.try_recv().unwrap_or_default();
                let scope = scope.as_ref().expect("analytics on");
                let left_out = merge_records(
                    &records,
                    &block_events,
                    |e| scope.judges(&e.key.src),
                    &mut merged,
                );
                external.failures += left_out;
                gauges
                    .external_failures
                    .fetch_add(left_out, Ordering::Relaxed);
                records.clear();
                if records.capacity() > POOLED_CAPACITY {
                    records = Vec::new();
                }
                if tx.send(ToReorder::Block(merged, watermark)).is_err() {
                    break 'blocks;
                }
            }
            block_events.clear();
            // A burst (the end-of-input flush) must not keep its memory.
            if block_events.capacity() > POOLED_CAPACITY {
                block_events = Vec::new();
            }
            if ended == out_rx.len() {
                // The only place the input is known to have ended: a
                // closed channel may also be a dead shard's cut-short run.
                if let Some(tx) = &rec_tx {
                    let _ = tx.send(ToReorder::End);
                }
                break;
            }
        }
        drop(rec_tx);
        for s in event_sinks.iter_mut() {
            s.request_stop();
        }
        for s in event_sinks.iter_mut() {
            s.close();
        }
        // After a shard died, the others may be blocked sending to this
        // thread: let their sends fail so that the joins below return.
        drop(out_rx);
        if let Some((r, h)) = analytics {
            // Joined first: a dead reorder thread must fail the run here,
            // not leave the shards waiting for an output that waits for it.
            r.join().expect("reorder thread panicked");
            let (a, written, err, cp) = h.join().expect("analytics thread panicked");
            outcome.analytics = Some(a);
            outcome.alerts_written = written;
            outcome.checkpoint_errors = cp;
            if let Some(e) = err
                && write_err.is_none()
            {
                write_err = Some(e);
            }
        }
        if let Some(w) = events.as_mut()
            && write_err.is_none()
            && let Err(e) = w.flush()
        {
            write_err = Some(e);
        }
        let r = reader.join().expect("reader thread panicked");
        outcome.problems = r.problems;
        outcome.stats.files = r.files;
        outcome.stats.time = r.time;
        oversize = r.oversize;
        for w in workers {
            wstats.push(w.join().expect("decode worker panicked"));
        }
        match write_err {
            Some(e) => Err(RunError::Output(e)),
            None => Ok(()),
        }
    })?;

    let s = &mut outcome.stats;
    for w in &wstats {
        s.decode.add(w);
    }
    s.track = track;
    s.events = events_written;
    s.external = external;
    s.oversize_records = oversize;
    s.wall = start.elapsed();
    let mut cpu = cpu_log.into_inner().unwrap_or_default();
    cpu.push((
        4 << 8,
        "output".into(),
        thread_cpu().saturating_sub(output_cpu_start),
    ));
    cpu.sort_unstable_by_key(|c| c.0);
    s.cpu = cpu.into_iter().map(|(_, n, d)| (n, d)).collect();
    Ok(outcome)
}

/// Live: number the capture threads' blocks in arrival order and deal them
/// round robin; on an idle link, send an empty block every 100 ms whose
/// watermark is the wall clock, so timers fire without traffic.
fn sequence(
    blocks: &Receiver<Block>,
    to_workers: &[Sender<ToWorker>],
    stop: &AtomicBool,
) -> ReaderOut {
    let n = to_workers.len() as u64;
    let (mut block_no, mut base_idx, mut watermark) = (0u64, 0u64, i64::MIN);
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0)
    };
    loop {
        let (data, max_ts) = match blocks.recv_timeout(Duration::from_millis(100)) {
            Ok(b) => {
                let m = b.recs.iter().map(|r| r.ts).max().unwrap_or(i64::MIN);
                (b, m)
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) if !stop.load(Ordering::Relaxed) => {
                (Block::default(), now())
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        };
        let count = data.recs.len() as u64;
        let msg = ToWorker::Block {
            block: block_no,
            base_idx,
            watermark,
            data,
        };
        if to_workers[(block_no % n) as usize].send(msg).is_err() {
            break;
        }
        block_no += 1;
        base_idx += count;
        watermark = watermark.max(max_ts);
    }
    for tx in to_workers {
        let _ = tx.send(ToWorker::End { watermark });
    }
    ReaderOut::default()
}

/// The reader thread: every file in order, cut into blocks, round robin.
fn read_all(
    paths: &[PathBuf],
    to_workers: &[Sender<ToWorker>],
    free: &Receiver<Block>,
    progress: &Progress,
    tolerance: i64,
) -> ReaderOut {
    let n = to_workers.len();
    let mut problems = Vec::new();
    let mut block_no = 0u64;
    let mut base_idx = 0u64;
    let mut watermark = i64::MIN;
    let mut allocated = 0usize;
    let mut done_bytes = 0u64;
    let mut oversize = 0u64;
    let mut files = 0;
    let mut time = TimeCheck::default();
    let mut clock = i64::MIN;
    // A block that came back empty (a header-only file, the end of a file,
    // a stretch of pcapng blocks without packets) is filled again: dropped,
    // it would be lost to the pool, and once the pool's last buffer was
    // lost the reader would wait for a free one forever.
    let mut unused: Option<Block> = None;
    'files: for path in paths {
        let mut r = match CaptureReader::open(path) {
            Ok(mut r) => {
                r.set_max_span(BLOCK_SPAN);
                r
            }
            Err(error) => {
                problems.push(InputProblem::Error(error));
                continue;
            }
        };
        files += 1;
        loop {
            // Reuse a buffer the workers are done with; allocate while the
            // pipeline is filling up; past that, wait (back-pressure).
            let mut blk = match unused.take().map_or_else(|| free.try_recv(), Ok) {
                Ok(b) => b,
                Err(_) if allocated < n * (QUEUE_DEPTH + 2) => {
                    allocated += 1;
                    Block::default()
                }
                Err(_) => match free.recv() {
                    Ok(b) => b,
                    Err(_) => break 'files,
                },
            };
            let fill = r.fill(&mut blk, BLOCK_BYTES);
            progress
                .bytes
                .store(done_bytes + r.bytes_consumed(), Ordering::Relaxed);
            let (last, problem) = match fill {
                Ok(Fill::More) => (false, None),
                Ok(Fill::Eof) => (true, None),
                Ok(Fill::Truncated { offset, reason }) => (
                    true,
                    Some(InputProblem::Truncated {
                        path: r.name().to_owned(),
                        offset,
                        reason,
                    }),
                ),
                Err(error) => (true, Some(InputProblem::Error(error))),
            };
            let max_ts = time.check(&mut blk, &mut clock, tolerance);
            if !blk.recs.is_empty() {
                let count = blk.recs.len() as u64;
                let msg = ToWorker::Block {
                    block: block_no,
                    base_idx,
                    watermark,
                    data: blk,
                };
                if to_workers[(block_no % n as u64) as usize]
                    .send(msg)
                    .is_err()
                {
                    break 'files;
                }
                block_no += 1;
                base_idx += count;
                watermark = watermark.max(max_ts);
            } else {
                unused = Some(blk);
            }
            if last {
                done_bytes += r.bytes_consumed();
                oversize += r.oversize_records();
                time.bad_fraction += r.bad_fractions();
                problems.extend(problem);
                break;
            }
        }
    }
    for tx in to_workers {
        let _ = tx.send(ToWorker::End { watermark });
    }
    ReaderOut {
        problems,
        files,
        oversize,
        time,
    }
}

fn decode_worker(
    rx: Receiver<ToWorker>,
    to_shards: Vec<Sender<ToShard>>,
    free: Sender<Block>,
    pool: Receiver<ShardBatch>,
) -> WorkerStats {
    let n = to_shards.len();
    let mut router = Router::new(n);
    let mut batches: Vec<ShardBatch> = Vec::new();
    let mut routed: Vec<Routed> = Vec::new();
    while let Ok(msg) = rx.recv() {
        let (block, base_idx, watermark, data) = match msg {
            ToWorker::Block {
                block,
                base_idx,
                watermark,
                data,
            } => (block, base_idx, watermark, data),
            ToWorker::End { watermark } => {
                for tx in &to_shards {
                    let _ = tx.send(ToShard::End { watermark });
                }
                break;
            }
        };
        batches.clear();
        let first_ts = data.recs.first().map_or(i64::MIN, |r| r.ts);
        batches.extend((0..n).map(|_| {
            let mut b = pool.try_recv().unwrap_or_else(|_| ShardBatch {
                block,
                base_idx,
                watermark,
                first_ts,
                routed: Routed::default(),
            });
            (b.block, b.base_idx, b.watermark, b.first_ts) = (block, base_idx, watermark, first_ts);
            b
        }));
        routed.clear();
        routed.extend(batches.iter_mut().map(|b| std::mem::take(&mut b.routed)));
        router.route(&data, &data.recs, &mut routed);
        for (b, r) in batches.iter_mut().zip(routed.drain(..)) {
            b.routed = r;
        }
        // Never blocks: replay allocates no more blocks than this channel
        // holds, and live capture does not recycle (a full channel drops).
        let _ = free.try_send(recycle(data));
        for (tx, b) in to_shards.iter().zip(batches.drain(..)) {
            if tx.send(ToShard::Batch(b)).is_err() {
                return router.stats;
            }
        }
    }
    router.stats
}

fn recycle(mut b: Block) -> Block {
    b.clear();
    b
}

/// Records the reorder thread released, in release order: the watermark of
/// the block they came with, and how many were released early.
struct Released {
    records: Vec<Pending>,
    watermark: i64,
    overflow: u64,
    /// The last piece of a block: checkpoints are considered here only, as
    /// when the analytics took whole blocks.
    block_end: bool,
    /// The last piece of all: the input ended ([`ToReorder::End`]) and
    /// everything held was released. Without it (the reorder thread died,
    /// or a thread before it did and the input never ended) there is no
    /// final checkpoint, which would pass a cut-short analysis for a clean
    /// stop.
    input_end: bool,
}

/// Event lines the output thread gathers before a write (see `run`).
const LINES_BYTES: usize = 64 << 10;

/// Records per message from the reorder thread to the analytics: a flood's
/// block, or the end of input, releases far more, sent in pieces of this
/// size, so the two threads overlap and memory stays bounded.
const RELEASE_CHUNK: usize = 4096;

/// From the output thread to the reorder thread.
enum ToReorder {
    /// A block's records in canonical order, and its watermark.
    Block(Vec<Record>, i64),
    /// Every shard ended its input. Without it (a shard, worker or the
    /// output thread died and the channel closed) the held records are not
    /// released and no piece says `input_end`, so a cut-short run writes no
    /// final checkpoint.
    End,
}

/// The reorder thread: each block's records in canonical order in, the
/// records in the order they happened out (at least one message a block, so
/// that the analytics sees every watermark).
fn reorder(
    mut r: Reorderer,
    rx: Receiver<ToReorder>,
    pool: Sender<Vec<Record>>,
    tx: Sender<Released>,
    free: Receiver<Vec<Pending>>,
) {
    let fresh = || {
        free.try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(RELEASE_CHUNK))
    };
    let mut out = fresh();
    // The analytics thread is gone (it panicked): stop; its join reports it.
    let mut gone = false;
    let mut watermark = i64::MIN;
    let piece = |records, watermark| Released {
        records,
        watermark,
        overflow: 0,
        block_end: false,
        input_end: false,
    };
    let mut ended = false;
    while let Ok(msg) = rx.recv() {
        let (mut records, wm) = match msg {
            ToReorder::Block(records, wm) => (records, wm),
            ToReorder::End => {
                ended = true;
                break;
            }
        };
        watermark = wm;
        // A full piece leaves at once; the early releases are counted with
        // the block's last piece.
        r.push(&records, wm, |p| {
            keep(p, &mut out, &fresh, |full| {
                ship(&tx, piece(full, wm), &mut gone)
            });
        });
        records.clear();
        if records.capacity() <= POOLED_CAPACITY {
            let _ = pool.try_send(records);
        }
        let last = Released {
            overflow: r.take_overflow(),
            block_end: true,
            ..piece(std::mem::replace(&mut out, fresh()), wm)
        };
        ship(&tx, last, &mut gone);
        if gone {
            return;
        }
    }
    if !ended {
        return;
    }
    r.finish(|p| {
        keep(p, &mut out, &fresh, |full| {
            ship(&tx, piece(full, watermark), &mut gone)
        });
    });
    let last = Released {
        input_end: true,
        ..piece(out, watermark)
    };
    ship(&tx, last, &mut gone);
}

/// Add `p` to the piece being filled; a full piece goes to `send`, and a
/// fresh one takes its place.
fn keep(
    p: Pending,
    out: &mut Vec<Pending>,
    fresh: &impl Fn() -> Vec<Pending>,
    send: impl FnOnce(Vec<Pending>),
) {
    out.push(p);
    if out.len() == RELEASE_CHUNK {
        send(std::mem::replace(out, fresh()));
    }
}

/// Send `m` to the analytics, unless it is gone.
fn ship(tx: &Sender<Released>, m: Released, gone: &mut bool) {
    if !*gone && tx.send(m).is_err() {
        *gone = true;
    }
}

/// The analytics thread: released records in, alerts out.
fn analyze(
    mut a: Analysis,
    rx: Receiver<Released>,
    pool: Sender<Vec<Pending>>,
    gauges: &Gauges,
    carried: &std::sync::Mutex<CarriedOut>,
) -> (Analytics, u64, Option<std::io::Error>, Vec<String>) {
    let mut alerts = Vec::new();
    let mut written = 0u64;
    let mut err = None;
    let mut cp_errors = Vec::new();
    // Saved with the state: this run's counts are what it adds.
    let stats_at_start = a.analytics.stats.clone();
    let mut schedule = a
        .checkpoint
        .as_ref()
        .map(|cp| crate::state::CheckpointSchedule::new(cp.interval, a.analytics.clock()));
    let mut write = |alerts: &mut Vec<Alert>,
                     sink: &mut Option<Box<dyn Write + Send>>,
                     sinks: &mut Vec<Box<dyn AlertSink>>,
                     err: &mut Option<std::io::Error>| {
        for al in alerts.drain(..) {
            written += 1;
            gauges.alerts.fetch_add(1, Ordering::Relaxed);
            for s in sinks.iter_mut() {
                s.alert(&al);
            }
            // One write a line: a live output file writes whole lines.
            let mut line = al.json.into_bytes();
            line.push(b'\n');
            if let Some(w) = sink.as_mut()
                && err.is_none()
                && let Err(e) = w.write_all(&line)
            {
                tracing::error!("cannot write alerts: {e}; alerts still go to the other outputs");
                *err = Some(e);
            }
        }
    };
    let (mut complete, mut had_records) = (false, false);
    while let Ok(Released {
        mut records,
        watermark,
        overflow,
        block_end,
        input_end,
    }) = rx.recv()
    {
        gauges.progress.fetch_add(1, Ordering::Relaxed);
        complete |= input_end;
        // Any piece of the block with records counts as a change.
        had_records |= !records.is_empty();
        a.analytics.analyse(&mut records, overflow);
        if records.capacity() <= POOLED_CAPACITY {
            let _ = pool.try_send(records);
        }
        gauges
            .hosts
            .store(a.analytics.inventory().len() as u64, Ordering::Relaxed);
        gauges
            .sources
            .store(a.analytics.sources_len() as u64, Ordering::Relaxed);
        gauges.caps.store(&a.analytics, &stats_at_start);
        let behind = a.analytics.stats.behind_clock - stats_at_start.behind_clock;
        // Said when it starts, not only at exit: a live sensor whose clock
        // was set back would run for weeks with its windows, dedup and
        // activation stuck at the later time.
        if behind > 0 && gauges.behind_clock.swap(behind, Ordering::Relaxed) == 0 {
            let mut clock = String::new();
            crate::output::time::rfc3339(a.analytics.clock(), &mut clock);
            tracing::warn!(
                "records more than a test period older than the detector's clock ({clock}): windows, dedup and activation follow that clock. A state that learned a far-future timestamp, captures replayed older than the state's, or a system clock set back do this: consider a fresh --state (counted in scanwatch_records_behind_clock_total)"
            );
        }
        a.analytics.drain_alerts(&mut alerts);
        let wrote = !alerts.is_empty();
        write(&mut alerts, &mut a.alerts, &mut a.sinks, &mut err);
        // An alert must not wait in a buffer for the next one (live).
        if wrote
            && let Some(w) = a.alerts.as_mut()
            && err.is_none()
            && let Err(e) = w.flush()
        {
            err = Some(e);
        }
        // Due every interval of event time: the later of the clock and the
        // watermark, which on an idle live link is the wall clock, so that
        // an idle sensor saves what it learned (see `CheckpointSchedule`).
        if !block_end {
            continue;
        }
        let changed = std::mem::take(&mut had_records);
        if let (Some(cp), Some(sch)) = (a.checkpoint.as_mut(), schedule.as_mut()) {
            let clock = a.analytics.clock();
            if sch.due(clock, watermark, changed) {
                // Alerts are written before the state that marks them sent.
                if let Some(w) = a.alerts.as_mut() {
                    let _ = w.flush();
                }
                let saved = match (cp.save)(&a.analytics) {
                    Ok(()) => true,
                    Err(e) => {
                        // Said now (a live sensor runs for weeks); capture and
                        // alerts go on, and the next checkpoint tries again.
                        tracing::error!("checkpoint failed: {e}; capture and alerts go on");
                        cp_errors.push(e);
                        false
                    }
                };
                sch.done(clock, watermark, saved);
            }
        }
    }
    a.analytics.finish();
    a.analytics.drain_alerts(&mut alerts);
    write(&mut alerts, &mut a.alerts, &mut a.sinks, &mut err);
    // Closed after the last alerts went to them (closed before, a sink
    // would have taken them with no sender left to send them).
    for s in a.sinks.iter_mut() {
        s.request_stop();
    }
    for s in a.sinks.iter_mut() {
        s.close();
    }
    if let Some(w) = a.alerts.as_mut()
        && err.is_none()
        && let Err(e) = w.flush()
    {
        err = Some(e);
    }
    if !complete {
        tracing::error!("the reorder thread stopped before the end of input: no final checkpoint");
    } else if let Some(cp) = a.checkpoint.as_mut() {
        // Every shard put its undecided attempts there before its last
        // message, which came before the end of input did.
        let out = std::mem::take(&mut *carried.lock().unwrap_or_else(|p| p.into_inner()));
        a.analytics.carried = out.by_part.into_iter().flatten().collect();
        a.analytics.carried_until = out.until;
        if let Err(e) = (cp.save)(&a.analytics) {
            if !a.analytics.carried.is_empty() {
                tracing::error!(
                    "{} attempts still undecided at the end were neither reported nor saved: the final checkpoint failed",
                    a.analytics.carried.len()
                );
            }
            cp_errors.push(e);
        }
        a.analytics.carried = Vec::new();
    }
    (a.analytics, written, err, cp_errors)
}

/// The attempts still undecided at the end, by partition, and the latest
/// packet time of the input ([`Analytics::carried_until`]).
#[derive(Default)]
struct CarriedOut {
    by_part: Vec<Vec<Carried>>,
    until: i64,
}

/// Where a shard returns emptied vectors: batches to the worker that filled
/// them, and it takes its own output vectors back from the output thread.
struct Pools {
    batches: Vec<Sender<ShardBatch>>,
    outs: Receiver<ShardOut>,
}

/// `carried`: the attempts the run before left undecided, by partition;
/// the shard takes its own when its input starts (`Tracker::restore`).
/// `carry`: where the attempts still undecided at the end go, by
/// partition, for the next run (with a state directory that can be
/// written); without it they are decided `at_capture_end`.
fn shard(
    mut t: Tracker,
    from_workers: Vec<Receiver<ToShard>>,
    out: Sender<ToOutput>,
    pools: Pools,
    gauges: &Gauges,
    (carried, until): (&std::sync::Mutex<Vec<Vec<Carried>>>, i64),
    carry: Option<&std::sync::Mutex<CarriedOut>>,
) {
    // Taken up with the first block that has packets (a live sensor's
    // idle ticks have none, and no time to place them in).
    let mut restored = false;
    let take_carried = |t: &Tracker| {
        let mut all = carried.lock().unwrap_or_else(|p| p.into_inner());
        (0..PARTITIONS)
            .filter(|&p| t.owns(p))
            .flat_map(|p| std::mem::take(&mut all[p]))
            .collect::<Vec<Carried>>()
    };
    let (mut reported, mut evicted, mut refused) = (0u64, 0u64, 0u64);
    let n = from_workers.len();
    let mut o = ShardOut::default();
    for b in 0u64.. {
        let Ok(msg) = from_workers[(b % n as u64) as usize].recv() else {
            return;
        };
        match msg {
            ToShard::Batch(mut batch) => {
                debug_assert_eq!(batch.block, b);
                if !restored && batch.first_ts != i64::MIN {
                    t.restore(&take_carried(&t), Some((batch.first_ts, until)), b);
                    restored = true;
                }
                track_block(&mut t, b, batch.base_idx, batch.watermark, &batch.routed);
                o.watermark = batch.watermark;
                batch.routed.clear();
                let _ = pools.batches[(b % n as u64) as usize].try_send(batch);
                let len = t.len() as u64;
                if len >= reported {
                    gauges.pending.fetch_add(len - reported, Ordering::Relaxed);
                } else {
                    gauges.pending.fetch_sub(reported - len, Ordering::Relaxed);
                }
                reported = len;
                let ev = t.stats.pending_evicted;
                gauges.evicted.fetch_add(ev - evicted, Ordering::Relaxed);
                evicted = ev;
                let rf = t.stats.pending_cap_dropped;
                gauges
                    .pending_refused
                    .fetch_add(rf - refused, Ordering::Relaxed);
                refused = rf;
                t.drain_events(&mut o.events);
                order_shard_events(&mut o.events);
                t.drain_evidence(&mut o.alive, &mut o.contacts);
                let next = pools.outs.try_recv().unwrap_or_default();
                if out
                    .send(ToOutput::Block(std::mem::replace(&mut o, next)))
                    .is_err()
                {
                    return;
                }
            }
            ToShard::End { watermark } => {
                if !restored && carry.is_some() {
                    // No packet at all: the attempts stay as they were, for
                    // the next run. (A read-only state keeps them on disk:
                    // with no time to decide them in, they are left there.)
                    t.restore(&take_carried(&t), None, b);
                }
                // One round per partition, every shard taking part in each
                // (with nothing, for partitions it does not own): the output
                // thread merges a round at a time, so the end of a flood
                // holds one partition's events (1/64 of `max_pending`), not
                // all of them, and the order is the same for any number of
                // shards.
                if let Some(c) = carry {
                    // What the next run's input must not start before (the
                    // same for every shard).
                    c.lock().unwrap_or_else(|p| p.into_inner()).until = if restored {
                        watermark
                    } else {
                        watermark.max(until)
                    };
                }
                for part in 0..PARTITIONS {
                    match carry {
                        Some(c) => {
                            let mut held = Vec::new();
                            t.carry_partition(part, &mut held);
                            if !held.is_empty() {
                                c.lock().unwrap_or_else(|p| p.into_inner()).by_part[part] = held;
                            }
                        }
                        None => t.flush_partition(part, watermark),
                    }
                    o.watermark = watermark;
                    t.drain_events(&mut o.events);
                    order_shard_events(&mut o.events);
                    t.drain_evidence(&mut o.alive, &mut o.contacts);
                    if part + 1 == PARTITIONS {
                        // Every attempt is decided (or carried) now: the
                        // last stats line must not show them pending.
                        gauges.pending.fetch_sub(reported, Ordering::Relaxed);
                        let _ = out.send(ToOutput::End(o, t.stats.clone()));
                        return;
                    }
                    let next = pools.outs.try_recv().unwrap_or_default();
                    if out
                        .send(ToOutput::Block(std::mem::replace(&mut o, next)))
                        .is_err()
                    {
                        return;
                    }
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Addr;
    use crate::track::{Order, Seen};

    fn alive(ts: i64, at: i64) -> Record {
        Record::Alive(Alive {
            addr: Addr::v4([10, 0, 0, 1]),
            ts,
            how: Seen::SynAck,
            order: Order {
                block: 0,
                phase: 0,
                at,
            },
        })
    }

    /// What the analytics receives from the reorder thread: the records a
    /// [`Reorderer`] releases, in its order, in pieces of at most
    /// [`RELEASE_CHUNK`], one piece marked as each block's last (even an
    /// empty one: the watermark alone matters on an idle link), and a last
    /// piece marked as the end of input after everything held.
    #[test]
    fn the_reorder_thread_sends_each_block_in_pieces_in_release_order() {
        const DELAY: i64 = 10;
        let blocks: Vec<(Vec<Record>, i64)> = vec![
            // 10,000 records; 9,991 are past the delay at the watermark.
            ((0..10_000).map(|t| alive(t, t)).collect(), 10_000),
            // No records, a later watermark (an idle link): releases one.
            (Vec::new(), 10_001),
            // Nothing to release: an empty piece, for the watermark.
            (Vec::new(), 10_001),
            // Later records release the rest; these 5 stay held to the end.
            (
                (0..5).map(|i| alive(20_000 + i, 10_000 + i)).collect(),
                20_004,
            ),
        ];
        let mut reference = Reorderer::new(DELAY);
        let mut expected = Vec::new();
        for (records, wm) in &blocks {
            reference.push(records, *wm, |p| expected.push(p.key()));
        }
        reference.finish(|p| expected.push(p.key()));
        assert_eq!(expected.len(), 10_005);

        let messages = run_reorder(DELAY, blocks.clone(), true);
        assert_eq!(
            shape(&messages),
            [
                (4096, 10_000, false, false),
                (4096, 10_000, false, false),
                (1799, 10_000, true, false),
                (1, 10_001, true, false),
                (0, 10_001, true, false),
                (8, 20_004, true, false),
                (5, 20_004, false, true),
            ]
        );
        let got: Vec<(i64, u64)> = messages
            .iter()
            .flat_map(|m| m.records.iter().map(Pending::key))
            .collect();
        assert_eq!(got, expected);

        // The channel closes without the end marker (a shard died and the
        // output thread stopped): the blocks' releases as before, but the
        // held records stay held and no piece claims the input ended, so the
        // analytics writes no final checkpoint for a cut-short run.
        let cut = run_reorder(DELAY, blocks, false);
        assert_eq!(shape(&cut), shape(&messages)[..6]);
        assert!(cut.iter().all(|m| !m.input_end));
        assert_eq!(
            cut.iter().map(|m| m.records.len()).sum::<usize>(),
            10_000,
            "the 5 held records are not released"
        );
    }

    /// Run the reorder thread over `blocks`, then the end marker if `end`,
    /// then close its input; everything it sends.
    fn run_reorder(delay: i64, blocks: Vec<(Vec<Record>, i64)>, end: bool) -> Vec<Released> {
        let (rec_tx, rec_rx) = bounded(1);
        let (pool_tx, _pool_rx) = bounded(1);
        let (rel_tx, rel_rx) = bounded(1);
        let (_free_tx, free_rx) = bounded::<Vec<Pending>>(1);
        thread::scope(|sc| {
            sc.spawn(|| reorder(Reorderer::new(delay), rec_rx, pool_tx, rel_tx, free_rx));
            let reader = sc.spawn(|| rel_rx.iter().collect::<Vec<Released>>());
            for (records, wm) in blocks {
                rec_tx
                    .send(ToReorder::Block(records, wm))
                    .expect("reorder thread alive");
            }
            if end {
                rec_tx.send(ToReorder::End).expect("reorder thread alive");
            }
            drop(rec_tx);
            reader.join().expect("collector")
        })
    }

    fn shape(messages: &[Released]) -> Vec<(usize, i64, bool, bool)> {
        messages
            .iter()
            .map(|m| (m.records.len(), m.watermark, m.block_end, m.input_end))
            .collect()
    }
}
