//! `scanwatch-synth`: write deterministic synthetic captures for scanwatch's
//! tests and benchmarks.

use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use scanwatch::synth::{CaptureWriter, Format, GenOptions, Profile, generate};

/// Generate a synthetic capture (same arguments, byte-identical file).
///
/// Profiles:
///   golden      ~110 hand-written frames, one instance of each tracker test case
///               (cases a..aa, see --truth); --packets and --seed are ignored.
///   enterprise  realistic SPAN-port mix (94% mid-connection TCP, 1.3% SYN, 8% IPv6,
///               14% 802.1Q, DNS, failures) with an SMB sweep, a vertical port scan,
///               an IPv6 sweep and a low-and-slow scanner hidden in it.
///   flood       worst case: 60-byte frames, ~71% SYN to distinct 5-tuples from
///               masscan-style scanners over 10/8 and a spoofed SYN flood.
///   multiday    days of a small enterprise network (10.10.0.0/16) from
///               2024-03-01T00:00:00Z: diurnal connections, benign failures
///               (dead-host monitoring, a decommissioned server, DHCP churn), a
///               sanctioned nightly scanner and new scanners on days 15, 25 and
///               40; --days N or --from-day A --to-day B (B exclusive), snaplen
///               96; --packets is ignored. Each day depends only on (seed, day):
///               day ranges generated apart concatenate into the whole.
///
/// Examples:
///   scanwatch-synth enterprise --out ent.pcap --packets 15000000 --truth ent.json
///   scanwatch-synth multiday --days 16 --out pcaps/demo-16d.pcap --truth pcaps/demo-16d.json
#[derive(Parser, Debug)]
#[command(
    version,
    verbatim_doc_comment,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Args {
    #[command(subcommand)]
    tool: Option<Tool>,

    /// Traffic profile to generate.
    #[arg(value_enum, required = true)]
    profile: Option<Profile>,

    /// Output capture file.
    #[arg(short, long, required = true)]
    out: Option<PathBuf>,

    /// Number of frames (enterprise and flood produce exactly this many).
    #[arg(short = 'n', long, default_value_t = 1_000_000)]
    packets: u64,

    /// File format: pcap (µs timestamps), pcap-ns (ns timestamps) or pcapng.
    #[arg(short, long, default_value = "pcap")]
    format: Format,

    /// Bytes kept per frame [default: 65535 for golden, 256 otherwise].
    #[arg(short, long)]
    snaplen: Option<u32>,

    /// PRNG seed: different seeds give different (equally shaped) captures.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Also write a JSON description of what the capture contains (scanner
    /// addresses and kinds, attempt counts by outcome, golden cases, multiday
    /// actors and expected alerts).
    #[arg(short, long)]
    truth: Option<PathBuf>,

    /// Multiday: generate days 0..N.
    #[arg(long, default_value_t = 16)]
    days: u32,

    /// Multiday: first day to generate [default: 0].
    #[arg(long)]
    from_day: Option<u32>,

    /// Multiday: day to stop before (exclusive) [default: --days].
    #[arg(long)]
    to_day: Option<u32>,
}

/// Benchmark helpers, not shown in --help.
#[derive(Subcommand, Debug)]
enum Tool {
    /// Walk the record headers of a classic pcap file with read(2) in 1 MiB
    /// chunks, nothing else, and print `packets=N bytes=B seconds=S` (S: the
    /// walk, reads included, process start excluded). The floor that
    /// `benches/compare.sh` measures every tool against.
    #[command(hide = true)]
    Walk {
        /// A classic pcap file (either byte order, µs or ns).
        file: PathBuf,
    },
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(Tool::Walk { file }) = &args.tool {
        return walk(file);
    }
    let (Some(profile), Some(out)) = (args.profile, args.out.clone()) else {
        unreachable!("clap requires a profile and --out without a subcommand");
    };
    let snaplen = args.snaplen.unwrap_or(profile.default_snaplen());
    anyhow::ensure!(
        snaplen >= 14,
        "--snaplen must be at least 14 (an Ethernet header)"
    );
    let max = scanwatch::synth::profile::multiday::MAX_DAYS;
    let day_range = match (args.from_day, args.to_day) {
        (None, None) => None,
        (a, b) => Some((a.unwrap_or(0), b.unwrap_or(args.days))),
    };
    let (first, end) = day_range.unwrap_or((0, args.days));
    anyhow::ensure!(
        first <= end && end <= max,
        "days {first}..{end}: --from-day must not exceed --to-day, and the last day is {}",
        max - 1
    );
    let opts = GenOptions {
        packets: args.packets,
        seed: args.seed,
        snaplen,
        days: args.days,
        day_range,
    };
    let file = File::create(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut w = CaptureWriter::new(
        file,
        args.format,
        snaplen,
        scanwatch::synth::writer::LINKTYPE_ETHERNET,
    )?;
    let started = Instant::now();
    let truth =
        generate(profile, &opts, &mut w).with_context(|| format!("writing {}", out.display()))?;
    let (packets, bytes) = (w.packets(), w.bytes());
    w.finish()
        .with_context(|| format!("writing {}", out.display()))?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{}: {} packets, {:.1} MB in {:.2} s ({:.2} M packets/s)",
        out.display(),
        packets,
        bytes as f64 / 1e6,
        secs,
        packets as f64 / secs.max(1e-9) / 1e6
    );
    if let Some(path) = &args.truth {
        let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        serde_json::to_writer_pretty(BufWriter::new(f), &truth)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// `walk FILE`: count the records of a classic pcap file by walking their
/// headers, reading the file in 1 MiB chunks (a record header may straddle two).
fn walk(path: &Path) -> Result<()> {
    let what = || format!("cannot read capture '{}'", path.display());
    let mut f = File::open(path).with_context(what)?;
    let started = Instant::now();
    let mut head = [0u8; 24];
    f.read_exact(&mut head).with_context(what)?;
    let magic = u32::from_le_bytes(head[0..4].try_into().expect("4 bytes"));
    let little = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        m => anyhow::bail!(
            "cannot walk '{}': not a classic pcap file (magic 0x{m:08x}; pcapng is not supported)",
            path.display()
        ),
    };
    let caplen = |h: &[u8]| {
        let b: [u8; 4] = h[8..12].try_into().expect("4 bytes");
        u64::from(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let mut buf = vec![0u8; 1 << 20];
    let (mut packets, mut bytes) = (0u64, 24u64);
    // Record data still to skip; a record header cut by the chunk end.
    let (mut skip, mut part, mut have) = (0u64, [0u8; 16], 0usize);
    loop {
        let n = f.read(&mut buf).with_context(what)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        let chunk = &buf[..n];
        let mut p = 0;
        while p < n {
            if skip > 0 {
                let k = skip.min((n - p) as u64);
                p += k as usize;
                skip -= k;
            } else if have == 0 && p + 16 <= n {
                skip = caplen(&chunk[p..p + 16]);
                p += 16;
                packets += 1;
            } else {
                let k = (16 - have).min(n - p);
                part[have..have + k].copy_from_slice(&chunk[p..p + k]);
                have += k;
                p += k;
                if have == 16 {
                    skip = caplen(&part);
                    have = 0;
                    packets += 1;
                }
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    if skip > 0 || have > 0 {
        eprintln!("warning: '{}' ends inside its last record", path.display());
    }
    println!("packets={packets} bytes={bytes} seconds={secs:.6}");
    Ok(())
}
