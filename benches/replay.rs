//! End-to-end replay throughput against the hardware floor, in one run.
//!
//!     cargo bench --bench replay                      # 5 M packets, 5 runs each
//!     cargo bench --bench replay -- 20000000 7        # packets, runs
//!     cargo bench --bench replay -- 3000000 3 65535   # ... full-size frames
//!
//! Generates (once, cached in target/bench/) an "enterprise" capture with
//! `scanwatch-synth`'s generator: 94% mid-connection data/ACK, ~1.3% SYN, RST,
//! FIN, ICMP errors, DNS, IPv6, 802.1Q, a few scanners; records cut at snaplen
//! 256 (or the third number), classic pcap. The page cache is warmed first.
//! Then, each the median of the runs:
//!
//! * floor: walk the record headers of the memory-mapped file, nothing else;
//!   and the same with the whole mapping populated at `mmap` (`MAP_POPULATE`:
//!   no page fault during the walk, the page tables built in one call);
//! * the same walk over the file read with read(2) in 1 MiB blocks, the way
//!   scanwatch's reader reads (which of the two is faster depends on the
//!   frame size and the machine: the issue found read(2) ahead on full-size
//!   frames, mmap on small ones);
//! * libpcap: the pcap crate's file loop (`next_packet`), no parsing;
//! * `scanwatch replay` with events written (to a discarding sink), for
//!   1 and 2 threads, without and with the analytics (alerts written).
//!
//! Reported as packets/s and as a ratio to the floor measured in the same run.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use scanwatch::pipeline::{Progress, ReplayConfig, replay};
use scanwatch::synth::profile::{GenOptions, Profile, generate};
use scanwatch::synth::writer::{CaptureWriter, Format};

fn capture(packets: u64, snaplen: u32) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(if snaplen == 256 {
        format!("enterprise-{packets}.pcap")
    } else {
        format!("enterprise-{packets}-snap{snaplen}.pcap")
    });
    if !path.exists() {
        eprintln!("generating {} ...", path.display());
        let tmp = path.with_extension("tmp");
        let mut w = CaptureWriter::create(&tmp, Format::Pcap, snaplen).unwrap();
        let opts = GenOptions {
            packets,
            seed: 1,
            snaplen,
            ..GenOptions::default()
        };
        generate(Profile::Enterprise, &opts, &mut w).unwrap();
        w.finish().unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }
    path
}

/// Walk the classic-pcap record headers of the mapped file: the floor any
/// replay must pay (page cache to CPU, one header per packet).
fn floor(path: &Path, populate: bool) -> u64 {
    let f = std::fs::File::open(path).unwrap();
    let mut opts = memmap2::MmapOptions::new();
    if populate {
        opts.populate();
    }
    // SAFETY: the benchmark's own file, not modified while mapped.
    let m = unsafe { opts.map(&f).unwrap() };
    let mut off = 24;
    let (mut n, mut sum) = (0u64, 0u64);
    while off + 16 <= m.len() {
        let incl = u32::from_le_bytes(m[off + 8..off + 12].try_into().unwrap()) as usize;
        sum = sum.wrapping_add(u64::from(m[off + 8]));
        off += 16 + incl;
        n += 1;
    }
    black_box(sum);
    n
}

/// The same walk over the file read in 1 MiB blocks with read(2): a copy out
/// of the page cache instead of page faults on the mapping. A record header
/// may straddle two blocks.
fn read_floor(path: &Path) -> u64 {
    use std::io::Read;
    let mut f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    f.read_exact(&mut buf[..24]).unwrap();
    let (mut n, mut skip, mut part, mut have) = (0u64, 0usize, [0u8; 16], 0usize);
    loop {
        let len = f.read(&mut buf).unwrap();
        if len == 0 {
            break;
        }
        let mut p = 0;
        while p < len {
            if skip > 0 {
                let k = skip.min(len - p);
                p += k;
                skip -= k;
            } else if have == 0 && p + 16 <= len {
                skip = u32::from_le_bytes(buf[p + 8..p + 12].try_into().unwrap()) as usize;
                p += 16;
                n += 1;
            } else {
                let k = (16 - have).min(len - p);
                part[have..have + k].copy_from_slice(&buf[p..p + k]);
                (have, p) = (have + k, p + k);
                if have == 16 {
                    skip = u32::from_le_bytes(part[8..12].try_into().unwrap()) as usize;
                    (have, n) = (0, n + 1);
                }
            }
        }
    }
    n
}

fn libpcap(path: &Path) -> u64 {
    let mut cap = pcap::Capture::from_file(path).unwrap();
    let mut n = 0u64;
    while let Ok(p) = cap.next_packet() {
        black_box(p.data.first());
        n += 1;
    }
    n
}

fn scanwatch(path: &Path, threads: usize) -> u64 {
    let cfg = ReplayConfig {
        threads,
        ..ReplayConfig::default()
    };
    let out = replay(
        &[path.to_path_buf()],
        &cfg,
        Some(Box::new(std::io::sink())),
        None,
        Arc::new(Progress::default()),
    )
    .unwrap();
    black_box(out.stats.events);
    out.stats.decode.packets
}

/// The whole product: events written and the Failed Connections analytics
/// on (default configuration), alerts written.
fn scanwatch_alerts(path: &Path, threads: usize) -> u64 {
    let config = scanwatch::config::Config::default();
    let cfg = ReplayConfig {
        threads,
        track: config.tracker.track_config(),
    };
    let analysis = scanwatch::pipeline::Analysis {
        analytics: scanwatch::analyze::Analytics::new(config.detector),
        alerts: Some(Box::new(std::io::sink())),
        sinks: Vec::new(),
        event_sinks: Vec::new(),
        checkpoint: None,
    };
    let out = replay(
        &[path.to_path_buf()],
        &cfg,
        Some(Box::new(std::io::sink())),
        Some(analysis),
        Arc::new(Progress::default()),
    )
    .unwrap();
    black_box(out.alerts_written);
    out.stats.decode.packets
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes --bench; positional numbers are ours.
    let nums: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let packets = nums.first().copied().unwrap_or(5_000_000);
    let runs = nums.get(1).copied().unwrap_or(5).max(1) as usize;
    let snaplen = nums.get(2).copied().unwrap_or(256).clamp(64, 262_144) as u32;
    let path = capture(packets, snaplen);
    let size = std::fs::metadata(&path).unwrap().len();
    let _ = std::fs::read(&path); // warm the page cache

    type Case<'a> = (&'a str, Box<dyn Fn() -> u64 + 'a>);
    let cases: Vec<Case> = vec![
        (
            "floor: mmap record-header walk",
            Box::new(|| floor(&path, false)),
        ),
        (
            "mmap, MAP_POPULATE, header walk",
            Box::new(|| floor(&path, true)),
        ),
        ("read(2) record-header walk", Box::new(|| read_floor(&path))),
        (
            "libpcap file loop (pcap crate)",
            Box::new(|| libpcap(&path)),
        ),
        (
            "scanwatch replay --threads 1",
            Box::new(|| scanwatch(&path, 1)),
        ),
        (
            "scanwatch replay --threads 2",
            Box::new(|| scanwatch(&path, 2)),
        ),
        (
            "  ... and analytics, --threads 1",
            Box::new(|| scanwatch_alerts(&path, 1)),
        ),
        (
            "  ... and analytics, --threads 2",
            Box::new(|| scanwatch_alerts(&path, 2)),
        ),
    ];
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "enterprise capture: {packets} packets, {:.1} MB, snaplen {snaplen}; {runs} runs each, median; {cpus} CPUs",
        size as f64 / 1e6
    );
    println!(
        "{:<34} {:>10} {:>14} {:>10}",
        "", "seconds", "packets/s", "vs floor"
    );
    let mut floor_pps = 0.0;
    for (name, f) in &cases {
        let mut times = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            let n = f();
            times.push(t.elapsed().as_secs_f64());
            assert_eq!(n, packets, "{name} saw every packet");
        }
        let s = median(times);
        let pps = packets as f64 / s;
        if floor_pps == 0.0 {
            floor_pps = pps;
        }
        println!(
            "{name:<34} {s:>10.3} {:>12.2} M {:>9.1}%",
            pps / 1e6,
            100.0 * pps / floor_pps
        );
    }
}
