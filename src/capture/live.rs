//! Live capture from a network interface (a SPAN or TAP port) with libpcap.
//!
//! * Several handles on one interface, joined in one `PACKET_FANOUT` group in
//!   hash mode: the kernel spreads flows over them (both directions of a flow
//!   to one handle). ICMP errors land wherever the kernel puts them; the
//!   decoder routes them by the tuple they quote, so that does not matter.
//! * TPACKET_V3 with a large kernel buffer; **not** immediate mode, which makes
//!   libpcap fall back to TPACKET_V2 and costs most of the throughput.
//! * A kernel BPF filter passes only what the tracker needs (see
//!   [`default_filter`]).
//! * Non-blocking reads driven by `poll(2)`: a blocking `next_packet` never
//!   returns on an idle link in libpcap 1.10, and the pipeline's timers must
//!   advance on an idle link too.
//! * Capture never blocks: a block the pipeline cannot take is dropped and
//!   counted (`scanwatch_queue_dropped_total`).

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};

use super::{Block, RecordMeta, linktype};

/// What [`default_filter`] matches, for one encapsulation level: TCP segments
/// with SYN, FIN or RST, or without ACK (stealth probes); ICMP destination
/// unreachable; IPv6 TCP with those flags (when no extension header sits in
/// between: BPF cannot walk them); ICMPv6 destination unreachable; ARP.
const FILTER_BASE: &str = "(tcp[tcpflags] & (tcp-syn|tcp-fin|tcp-rst) != 0) \
     or (tcp[tcpflags] & tcp-ack == 0) \
     or (icmp[icmptype] == icmp-unreach) \
     or (ip6 and ip6[6] == 6 and (ip6[53] & 0x07 != 0 or ip6[53] & 0x10 == 0)) \
     or (ip6 and ip6[6] == 58 and ip6[40] == 1) \
     or arp";

/// The kernel filter used unless `--bpf` replaces it: `FILTER_BASE` untagged,
/// under one 802.1Q/802.1ad tag, and under two (QinQ).
///
/// It removes the mid-connection data and ACKs (most of a SPAN port's
/// traffic). The price: without ACK/data segments the tracker cannot prove a
/// handshake whose SYN-ACK was not captured (it still can with the FIN), nor
/// infer ACK probes, and hosts are seen alive only through SYN-ACK, FIN and
/// ARP. `--bpf ""` captures everything.
pub fn default_filter() -> String {
    format!("{FILTER_BASE} or (vlan and ({FILTER_BASE})) or (vlan and vlan and ({FILTER_BASE}))")
}

/// The built-in filter for a handle of link type `link`: [`default_filter`]
/// on Ethernet; elsewhere (`any`'s Linux cooked header, tun's raw IP) there
/// are no VLAN tags for BPF to see and libpcap refuses `vlan`, and raw IP
/// carries no ARP.
pub fn default_filter_for(link: i32) -> String {
    match link as u16 {
        linktype::ETHERNET => default_filter(),
        linktype::LINUX_SLL | linktype::LINUX_SLL2 => FILTER_BASE.to_string(),
        _ => FILTER_BASE
            .strip_suffix(" or arp")
            .expect("FILTER_BASE ends with arp")
            .to_string(),
    }
}

/// Settings of a live capture.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    pub interface: String,
    /// Capture handles (fanout members).
    pub handles: usize,
    pub snaplen: i32,
    /// Kernel ring buffer per handle, bytes.
    pub buffer_size: i32,
    /// BPF program; empty captures everything; `None`, the built-in one for
    /// the interface's link type ([`default_filter_for`]).
    pub filter: Option<String>,
    pub promisc: bool,
}

/// Why a live capture could not start. Messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(
        "cannot capture on '{interface}': {detail}. Capturing needs the CAP_NET_RAW capability: run as root, or grant it (setcap cap_net_raw+ep on the binary, or AmbientCapabilities=CAP_NET_RAW in the systemd unit)"
    )]
    Permission { interface: String, detail: String },
    #[error("cannot capture on '{interface}': {detail}")]
    Open { interface: String, detail: String },
    #[error("cannot capture on '{interface}': the BPF filter does not compile: {detail}")]
    Filter { interface: String, detail: String },
    #[error("cannot capture on '{interface}': link type {link} is not one scanwatch decodes")]
    Link { interface: String, link: i32 },
    #[error("cannot join the PACKET_FANOUT group on '{interface}': {source}")]
    Fanout {
        interface: String,
        source: std::io::Error,
    },
}

/// Counters of the capture, shared with the stats reporter.
#[derive(Debug, Default)]
pub struct LiveStats {
    /// Packets handed to scanwatch by libpcap.
    pub packets: AtomicU64,
    /// libpcap's counters, summed over handles (updated every second).
    pub received: AtomicU64,
    pub kernel_dropped: AtomicU64,
    pub if_dropped: AtomicU64,
    /// Packets dropped because the pipeline was full.
    pub queue_dropped: AtomicU64,
    /// A capture handle failed (the interface disappeared, a driver
    /// reset): the sensor stops, and must not exit as if asked to, or
    /// systemd's `Restart=on-failure` would leave it stopped.
    pub failed: AtomicBool,
}

/// Open handles, ready to run.
pub struct LiveCapture {
    handles: Vec<pcap::Capture<pcap::Active>>,
    link: u16,
    interface: String,
}

/// Packet blocks are handed on after this long even when not full, so an
/// attempt's packets reach the tracker promptly on a quiet link.
const FLUSH_AFTER: Duration = Duration::from_millis(100);
/// ... or when this full.
const BLOCK_BYTES: usize = 1 << 20;

impl LiveCapture {
    /// Open `cfg.handles` handles on the interface and join them in a fanout
    /// group. Needs CAP_NET_RAW; everything after this runs without it.
    pub fn open(cfg: &LiveConfig) -> Result<LiveCapture, LiveError> {
        let iface = cfg.interface.clone();
        let mut handles = Vec::new();
        // One fanout group id per process: two sensors on one box stay apart.
        let group = (std::process::id() & 0xffff) as u32;
        for _ in 0..cfg.handles.max(1) {
            let cap = pcap::Capture::from_device(iface.as_str())
                .map_err(|e| open_error(&iface, e))?
                .promisc(cfg.promisc)
                .snaplen(cfg.snaplen)
                .buffer_size(cfg.buffer_size)
                .timeout(100)
                .immediate_mode(false)
                .precision(pcap::Precision::Nano)
                .open()
                .map_err(|e| open_error(&iface, e))?;
            let mut cap = cap.setnonblock().map_err(|e| open_error(&iface, e))?;
            let link = cap.get_datalink().0;
            let filter = cfg
                .filter
                .clone()
                .unwrap_or_else(|| default_filter_for(link));
            if !filter.trim().is_empty() {
                cap.filter(&filter, true).map_err(|e| LiveError::Filter {
                    interface: iface.clone(),
                    detail: e.to_string(),
                })?;
            }
            if !linktype::is_supported(link as u32) {
                return Err(LiveError::Link {
                    interface: iface,
                    link,
                });
            }
            if cfg.handles > 1 {
                join_fanout(cap.as_raw_fd(), group).map_err(|source| LiveError::Fanout {
                    interface: iface.clone(),
                    source,
                })?;
            }
            handles.push(cap);
        }
        let link = handles[0].get_datalink().0 as u16;
        Ok(LiveCapture {
            handles,
            link,
            interface: iface,
        })
    }

    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Start one thread per handle. Each sends packet blocks to `out` until
    /// `stop` is set; a block `out` cannot take is dropped and counted.
    pub fn start(
        self,
        out: Sender<Block>,
        stop: Arc<AtomicBool>,
        stats: Arc<LiveStats>,
    ) -> Vec<std::thread::JoinHandle<()>> {
        let link = self.link;
        self.handles
            .into_iter()
            .enumerate()
            .map(|(i, cap)| {
                let (out, stop, stats) = (out.clone(), stop.clone(), stats.clone());
                std::thread::Builder::new()
                    .name(format!("capture-{i}"))
                    .spawn(move || capture_loop(cap, link, out, stop, stats))
                    .expect("spawn capture thread")
            })
            .collect()
    }
}

fn open_error(iface: &str, e: pcap::Error) -> LiveError {
    let detail = e.to_string();
    let l = detail.to_lowercase();
    if l.contains("permission") || l.contains("not permitted") || l.contains("eperm") {
        LiveError::Permission {
            interface: iface.to_string(),
            detail,
        }
    } else {
        LiveError::Open {
            interface: iface.to_string(),
            detail,
        }
    }
}

/// `setsockopt(fd, SOL_PACKET, PACKET_FANOUT, group | PACKET_FANOUT_HASH << 16)`.
/// libpcap does not expose fanout; its handle is an AF_PACKET socket.
fn join_fanout(fd: i32, group: u32) -> std::io::Result<()> {
    const PACKET_FANOUT: libc::c_int = 18;
    const PACKET_FANOUT_HASH: u32 = 0;
    // Reassemble IP fragments before hashing, so a flow's fragments meet.
    const PACKET_FANOUT_FLAG_DEFRAG: u32 = 0x8000;
    let arg: u32 = group | ((PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG) << 16);
    // SAFETY: a plain setsockopt on a socket this process owns, with a u32 argument.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            PACKET_FANOUT,
            &arg as *const u32 as *const libc::c_void,
            std::mem::size_of::<u32>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn capture_loop(
    mut cap: pcap::Capture<pcap::Active>,
    link: u16,
    out: Sender<Block>,
    stop: Arc<AtomicBool>,
    stats: Arc<LiveStats>,
) {
    let fd = cap.as_raw_fd();
    let mut blk = Block::default();
    let mut since = Instant::now();
    let mut last_stats = Instant::now();
    let mut prev = pcap::Stat {
        received: 0,
        dropped: 0,
        if_dropped: 0,
    };
    while !stop.load(Ordering::Relaxed) {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        unsafe { libc::poll(&mut pfd, 1, 100) };
        loop {
            match cap.next_packet() {
                Ok(p) => {
                    let ts = p.header.ts.tv_sec * 1_000_000_000 + p.header.ts.tv_usec;
                    let off = blk.data.len() as u32;
                    blk.data.extend_from_slice(p.data);
                    blk.recs.push(RecordMeta {
                        ts,
                        off,
                        caplen: p.header.caplen,
                        origlen: p.header.len,
                        link,
                    });
                    stats.packets.fetch_add(1, Ordering::Relaxed);
                    if blk.data.len() >= BLOCK_BYTES {
                        hand_on(&out, &mut blk, &stats);
                        since = Instant::now();
                    }
                }
                Err(pcap::Error::TimeoutExpired) | Err(pcap::Error::NoMorePackets) => break,
                Err(e) => {
                    tracing::error!("capture stopped: {e}");
                    stats.failed.store(true, Ordering::Relaxed);
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
            }
        }
        if !blk.recs.is_empty() && since.elapsed() >= FLUSH_AFTER {
            hand_on(&out, &mut blk, &stats);
            since = Instant::now();
        }
        if last_stats.elapsed() >= Duration::from_secs(1)
            && let Ok(s) = cap.stats()
        {
            add_deltas(&stats, &prev, &s);
            prev = s;
            last_stats = Instant::now();
        }
    }
    if !blk.recs.is_empty() {
        hand_on(&out, &mut blk, &stats);
    }
    if let Ok(s) = cap.stats() {
        add_deltas(&stats, &prev, &s);
    }
}

/// libpcap's counters are per handle and wrap at 2^32: add what changed
/// since `prev`.
fn add_deltas(stats: &LiveStats, prev: &pcap::Stat, now: &pcap::Stat) {
    let add = |c: &AtomicU64, a: u32, b: u32| {
        c.fetch_add(u64::from(b.wrapping_sub(a)), Ordering::Relaxed)
    };
    add(&stats.received, prev.received, now.received);
    add(&stats.kernel_dropped, prev.dropped, now.dropped);
    add(&stats.if_dropped, prev.if_dropped, now.if_dropped);
}

fn hand_on(out: &Sender<Block>, blk: &mut Block, stats: &LiveStats) {
    let full = std::mem::take(blk);
    let n = full.recs.len() as u64;
    match out.try_send(full) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
            stats.queue_dropped.fetch_add(n, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_filter_compiles_for_ethernet() {
        let cap = pcap::Capture::dead(pcap::Linktype::ETHERNET).unwrap();
        cap.compile(&default_filter(), true)
            .expect("the default filter compiles");
    }

    /// `live -i any` (Linux cooked), a tun (raw IP), loopback: the built-in
    /// filter compiles for every link type a live handle on Linux reports
    /// that scanwatch reads (the VLAN form did not: "no VLAN support for
    /// Linux cooked v1"). Raw IP is DLT 12 on a Linux handle; 14 and 101
    /// are the file formats' numbers for it, not a handle's.
    #[test]
    fn default_filter_compiles_for_every_supported_link_type() {
        for lt in [
            linktype::NULL,
            linktype::ETHERNET,
            linktype::RAW_BSD,
            linktype::LOOP,
            linktype::LINUX_SLL,
            linktype::IPV4,
            linktype::IPV6,
            linktype::LINUX_SLL2,
        ] {
            let cap = pcap::Capture::dead(pcap::Linktype(i32::from(lt))).unwrap();
            cap.compile(&default_filter_for(i32::from(lt)), true)
                .unwrap_or_else(|e| panic!("link type {lt}: {e}"));
        }
    }
}
