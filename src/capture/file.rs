//! Streaming reader for capture files: classic pcap and pcapng.
//!
//! # Formats
//!
//! * Classic pcap, magics `a1b2c3d4` (microsecond) and `a1b23c4d` (nanosecond), in
//!   either byte order. The link type is the low 16 bits of the header's network
//!   field; the FCS bits above it are ignored.
//! * pcapng: Section Header Blocks (each one sets the byte order of its section and
//!   starts a new interface list), Interface Description Blocks (`if_tsresol` in
//!   powers of 10 or 2, `if_tsoffset` in seconds), Enhanced Packet Blocks, Simple
//!   Packet Blocks and the obsolete Packet Block. Every other block type is skipped
//!   by its length.
//!
//! # Determinism
//!
//! [`CaptureReader::fill`] appends whole records to a [`Block`] and stops after the
//! first record (or pcapng block) that takes the block to `target_bytes` or more.
//! That decision looks only at how many file bytes the parsed records span, never at
//! how many bytes have been read ahead, so which records land in which block depends
//! only on the file's content and `target_bytes`, not on how the operating system
//! split the reads. Bytes read past the last whole record are carried into the next
//! block; that partial record is the only data ever copied twice.
//!
//! # No panics on hostile input
//!
//! Every length read from the file is checked before it is used to index: against
//! [`MAX_RECORD`] before anything is allocated or read for it, against the enclosing
//! block before a packet is sliced out of it, and against the bytes actually present
//! before a header is decoded. Timestamps are converted in 128-bit arithmetic and
//! saturated to the `i64` range.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use super::{Block, RecordMeta, linktype};

/// The largest record (pcap) or block (pcapng) accepted, in bytes. Anything larger is
/// a corrupt length field, reported as [`ErrorKind::RecordTooLarge`] rather than
/// trusted with an allocation.
pub const MAX_RECORD: usize = 16 << 20;

/// Blocks are capped so that every `RecordMeta::off` fits in a `u32`, whatever
/// target the caller asks for.
const MAX_TARGET: usize = 1 << 30;

/// How far past what a fill strictly needs each read goes. Big enough that a block
/// usually completes without a second small read for its last record; small enough
/// that the carried tail stays a minor cost next to the block.
const READ_SLACK: usize = 32 << 10;

const PCAP_FILE_HEADER: usize = 24;
const PCAP_RECORD_HEADER: usize = 16;
/// Block type, total length and (for a section header) the byte-order magic: enough
/// to know the length of any pcapng block, and no valid block is shorter.
const NG_BLOCK_HEADER: usize = 12;

const BT_SHB: u32 = 0x0A0D_0D0A;
const BT_IDB: u32 = 1;
const BT_PB: u32 = 2;
const BT_SPB: u32 = 3;
const BT_EPB: u32 = 6;

const OPT_ENDOFOPT: u16 = 0;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_IF_TSOFFSET: u16 = 14;

/// What one [`CaptureReader::fill`] call ended with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fill {
    /// The block reached its target; the input may hold more.
    More,
    /// The input ended cleanly after the records in the block (which may be none).
    Eof,
    /// The input ends part way through a record or pcapng block (or its header). The
    /// block holds every complete record before it; `offset` is where the incomplete record starts. A warning
    /// for the caller, not an error: captures cut off by a full disk or a killed
    /// tcpdump look like this.
    Truncated { offset: u64, reason: String },
}

/// Why a capture could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read capture '{path}': {}", Located(.kind, .offset))]
pub struct CaptureError {
    /// The file as the user named it (`<stdin>` for "-").
    pub path: String,
    /// Byte offset in the file where the problem was found (0 where none applies).
    pub offset: u64,
    pub kind: ErrorKind,
}

impl CaptureError {
    fn new(path: &str, offset: u64, kind: ErrorKind) -> Self {
        Self {
            path: path.to_owned(),
            offset,
            kind,
        }
    }

    /// Whether the file is merely cut short (its own header is incomplete), as
    /// opposed to unreadable or not a capture at all.
    pub fn is_truncation(&self) -> bool {
        matches!(self.kind, ErrorKind::TruncatedHeader { .. })
    }
}

/// The kinds of [`CaptureError`]. Messages start lowercase; the offset, where one
/// applies, is added by [`CaptureError`]'s `Display`.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// The file could not be opened.
    #[error("{}", Lowercase(.0))]
    Open(io::Error),
    #[error("is a directory")]
    IsDirectory,
    /// A read failed part way through.
    #[error("read error: {}", Lowercase(.0))]
    Io(io::Error),
    #[error("the file is empty")]
    Empty,
    /// `magic` is the first four bytes, read big-endian, so it shows them in file order.
    #[error("not a pcap or pcapng file (magic {magic:#010x})")]
    NotCapture { magic: u32 },
    /// The file ends before its own header does.
    #[error("the file ends inside its {what} ({need} bytes)")]
    TruncatedHeader { what: &'static str, need: u64 },
    #[error(
        "unsupported link type {0} (supported: NULL 0, EN10MB 1, RAW 12/14/101, LOOP 108, \
         LINUX_SLL 113, IPV4 228, IPV6 229, LINUX_SLL2 276)"
    )]
    UnknownLinkType(u32),
    /// A pcapng block that breaks the format's rules.
    #[error("{detail}")]
    BadBlock { detail: String },
    #[error("record length {len} exceeds the {} MiB limit; the file is corrupt", MAX_RECORD >> 20)]
    RecordTooLarge { len: u64 },
}

impl ErrorKind {
    fn bad(detail: impl Into<String>) -> Self {
        Self::BadBlock {
            detail: detail.into(),
        }
    }
}

/// Prefixes "at offset N: " for the kinds that are about a place in the file.
struct Located<'a>(&'a ErrorKind, &'a u64);

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ErrorKind::Open(_)
            | ErrorKind::IsDirectory
            | ErrorKind::Empty
            | ErrorKind::NotCapture { .. } => write!(f, "{}", self.0),
            ErrorKind::TruncatedHeader { what, need } => write!(
                f,
                "the file ends after {} bytes, inside its {what} ({need} bytes)",
                self.1
            ),
            _ => write!(f, "at offset {}: {}", self.1, self.0),
        }
    }
}

/// OS messages start with a capital ("No such file or directory"); ours continue a
/// sentence.
struct Lowercase<'a>(&'a io::Error);

impl fmt::Display for Lowercase<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.to_string();
        let mut chars = s.chars();
        match chars.next() {
            Some(c) => write!(f, "{}{}", c.to_lowercase(), chars.as_str()),
            None => Ok(()),
        }
    }
}

/// Reads pcap or pcapng records into [`Block`]s. See the module documentation.
pub struct CaptureReader {
    name: String,
    input: Input,
    format: Format,
    /// File offset of the first byte not yet delivered in a block.
    consumed: u64,
    file_size: Option<u64>,
    oversize: u64,
    /// Records whose fraction of a second was a second or more.
    bad_fraction: u64,
    /// An error found after some records of a block; those are delivered first.
    deferred: Option<CaptureError>,
    done: bool,
    /// A block also ends after the record that takes its timestamps this far
    /// (ns) from its first record's: see [`CaptureReader::set_max_span`].
    max_span: Option<u64>,
}

enum Format {
    Pcap(PcapParams),
    PcapNg(NgState),
}

#[derive(Clone, Copy)]
struct PcapParams {
    be: bool,
    /// 1000 for microsecond files, 1 for nanosecond ones.
    frac_to_ns: i64,
    link: u16,
    snaplen: u32,
}

/// Interfaces one pcapng section may define. Real captures have a few; each
/// is kept for the section's life (~48 bytes against a block's 20), so a
/// stream of interface blocks would otherwise grow memory without bound.
const MAX_INTERFACES: usize = 1 << 16;

struct NgState {
    be: bool,
    ifaces: Vec<Iface>,
    /// The timestamp of the file's last packet block, of any interface: a
    /// simple packet block (no time of its own) on an interface with none
    /// yet takes it, rather than 1970.
    last_ts: Option<i64>,
}

#[derive(Clone, Copy)]
struct Iface {
    link: u16,
    snaplen: u32,
    scale: Scale,
    offset_ns: i128,
    /// For Simple Packet Blocks, which carry no timestamp of their own.
    last_ts: Option<i64>,
}

/// Timestamp units to nanoseconds, worked out once per interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scale {
    Mul(u64),
    Div(u64),
    /// 2^-n seconds: ns = units * 10^9 >> n.
    Shr(u32),
    /// A resolution so fine that every 64-bit count is below one nanosecond.
    Zero,
}

impl Scale {
    fn from_tsresol(v: u8) -> Self {
        let n = u32::from(v & 0x7f);
        if v & 0x80 != 0 {
            return Scale::Shr(n);
        }
        if n <= 9 {
            Scale::Mul(10u64.pow(9 - n))
        } else {
            // 10^19 is the largest power of ten in a u64; past it the quotient is 0.
            10u64.checked_pow(n - 9).map_or(Scale::Zero, Scale::Div)
        }
    }

    fn to_ns(self, units: u64) -> i128 {
        match self {
            Scale::Mul(m) => i128::from(units) * i128::from(m),
            Scale::Div(d) => i128::from(units / d),
            // units * 10^9 < 2^94 and n <= 127, so neither the product nor the shift overflows.
            Scale::Shr(n) => ((u128::from(units) * 1_000_000_000) >> n) as i128,
            Scale::Zero => 0,
        }
    }
}

fn saturate_i64(v: i128) -> i64 {
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// How a pass over the input stopped; `fill` turns this into its result.
enum Stop {
    Full,
    Eof,
    Truncated(String),
    /// The error and its offset in the block.
    Fail(ErrorKind, usize),
}

/// The byte source plus the bytes read past the end of the last block.
struct Input {
    src: Box<dyn Read + Send>,
    carry: Vec<u8>,
    carry_pos: usize,
    eof: bool,
    /// A read error that came after some bytes of the same read. Those bytes may
    /// complete records, so the error waits until more input is actually needed.
    pending: Option<io::Error>,
}

impl Input {
    /// Appends input to `data` until it holds `need` bytes; false if the input ends
    /// first. Reads aim to bring `data` to `target` plus some slack, so a block costs
    /// a couple of large reads, but only `need` decides success, which is what keeps
    /// block contents independent of read sizes.
    fn ensure(&mut self, data: &mut Vec<u8>, need: usize, target: usize) -> io::Result<bool> {
        while data.len() < need {
            let want = (need - data.len()).max(target.saturating_sub(data.len()));
            let carried = self.carry.len() - self.carry_pos;
            if carried > 0 {
                // Take only what the next record needs: the carry may hold many future
                // blocks (small targets, or blocks cut by time), and copying a whole
                // target's worth for each would be quadratic.
                let n = (need - data.len()).min(carried);
                data.extend_from_slice(&self.carry[self.carry_pos..self.carry_pos + n]);
                self.carry_pos += n;
                continue;
            }
            if self.eof {
                return Ok(false);
            }
            self.read_src(data, want + READ_SLACK)?;
        }
        Ok(true)
    }

    /// One `read_to_end` on a `Take`: it reads straight into the vector's spare
    /// capacity (no zero-filling for files), retries on EINTR, and only comes back
    /// short at end of input.
    fn read_src(&mut self, data: &mut Vec<u8>, want: usize) -> io::Result<()> {
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        data.try_reserve(want)
            .map_err(|e| io::Error::new(io::ErrorKind::OutOfMemory, e))?;
        let before = data.len();
        match (&mut self.src).take(want as u64).read_to_end(data) {
            Ok(_) if data.len() - before < want => self.eof = true,
            Ok(_) => {}
            // read_to_end keeps what it read before failing.
            Err(e) if data.len() > before => self.pending = Some(e),
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Keeps `data[pos..]` (read ahead, not yet part of a whole record) for the next block.
    fn keep_tail(&mut self, data: &[u8], pos: usize) {
        let tail = data.get(pos..).unwrap_or_default();
        if self.carry_pos < self.carry.len() {
            // The carry was not used up, so no read happened in this fill and the tail
            // is the last bytes taken from the carry: give them back.
            self.carry_pos -= tail.len();
        } else {
            self.carry.clear();
            self.carry_pos = 0;
            self.carry.extend_from_slice(tail);
        }
    }
}

/// Whether a block's records, from timestamp `first` to `last`, span
/// `max_span` ns or more (the block ends there).
#[inline]
fn span_reached(max_span: Option<u64>, first: i64, last: i64) -> bool {
    max_span.is_some_and(|m| last.abs_diff(first) >= m)
}

/// Reads a `u16`/`u32`/`u64` at `at`. Callers check lengths first; the fallback to 0
/// keeps a mistake there from becoming a panic.
fn rd<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    debug_assert!(
        at + N <= b.len(),
        "read of {N} bytes at {at} past {}",
        b.len()
    );
    b.get(at..)
        .and_then(|s| s.first_chunk::<N>())
        .copied()
        .unwrap_or([0; N])
}

fn rd16(b: &[u8], at: usize, be: bool) -> u16 {
    let v = rd::<2>(b, at);
    if be {
        u16::from_be_bytes(v)
    } else {
        u16::from_le_bytes(v)
    }
}

fn rd32(b: &[u8], at: usize, be: bool) -> u32 {
    let v = rd::<4>(b, at);
    if be {
        u32::from_be_bytes(v)
    } else {
        u32::from_le_bytes(v)
    }
}

fn rd64(b: &[u8], at: usize, be: bool) -> u64 {
    let v = rd::<8>(b, at);
    if be {
        u64::from_be_bytes(v)
    } else {
        u64::from_le_bytes(v)
    }
}

fn block_name(btype: u32) -> &'static str {
    match btype {
        BT_SHB => "section header block",
        BT_IDB => "interface description block",
        BT_PB => "packet block",
        BT_SPB => "simple packet block",
        BT_EPB => "enhanced packet block",
        _ => "block",
    }
}

/// Decodes a pcapng block header: type, total length (validated) and the byte order
/// the block is in (a section header block declares its own).
fn ng_header(h: &[u8], be: bool) -> Result<(u32, usize, bool), ErrorKind> {
    // The section header type reads the same in both byte orders.
    let btype = rd32(h, 0, be);
    let be = if btype == BT_SHB {
        match rd::<4>(h, 8) {
            [0x1A, 0x2B, 0x3C, 0x4D] => true,
            [0x4D, 0x3C, 0x2B, 0x1A] => false,
            m => {
                return Err(ErrorKind::bad(format!(
                    "section header block has no byte-order magic (found 0x{:08x})",
                    u32::from_be_bytes(m)
                )));
            }
        }
    } else {
        be
    };
    let total = rd32(h, 4, be);
    if (total as usize) < NG_BLOCK_HEADER {
        return Err(ErrorKind::bad(format!(
            "block total length {total} is less than the 12-byte minimum"
        )));
    }
    if !total.is_multiple_of(4) {
        return Err(ErrorKind::bad(format!(
            "block total length {total} is not a multiple of 4"
        )));
    }
    if total as usize > MAX_RECORD {
        return Err(ErrorKind::RecordTooLarge {
            len: u64::from(total),
        });
    }
    Ok((btype, total as usize, be))
}

/// Applies one whole pcapng block `b` (header and trailer included, length already
/// checked to be at least 12 and equal to its trailer), found at `base` in the block
/// data. Packet blocks become records; interface and section blocks change `ng`.
fn ng_block(
    ng: &mut NgState,
    btype: u32,
    be: bool,
    b: &[u8],
    base: usize,
    recs: &mut Vec<RecordMeta>,
    oversize: &mut u64,
) -> Result<(), ErrorKind> {
    let len = b.len();
    let body_end = len - 4;
    let too_short = |min: usize| {
        ErrorKind::bad(format!(
            "{} is {len} bytes, shorter than its {min}-byte minimum",
            block_name(btype)
        ))
    };
    match btype {
        BT_SHB => {
            if len < 28 {
                return Err(too_short(28));
            }
            let (major, minor) = (rd16(b, 12, be), rd16(b, 14, be));
            if major != 1 {
                return Err(ErrorKind::bad(format!(
                    "unsupported pcapng version {major}.{minor}"
                )));
            }
            ng.be = be;
            ng.ifaces.clear();
        }
        BT_IDB => {
            if len < 20 {
                return Err(too_short(20));
            }
            let link = rd16(b, 8, be);
            if !linktype::is_supported(u32::from(link)) {
                return Err(ErrorKind::UnknownLinkType(u32::from(link)));
            }
            let snaplen = rd32(b, 12, be);
            let mut scale = Scale::Mul(1000);
            let mut offset_s: i64 = 0;
            let mut o = 16;
            while o + 4 <= body_end {
                let code = rd16(b, o, be);
                let olen = usize::from(rd16(b, o + 2, be));
                let v = o + 4;
                if v + olen > body_end {
                    return Err(ErrorKind::bad(format!(
                        "interface description option {code} ({olen} bytes) overruns its block"
                    )));
                }
                match code {
                    OPT_ENDOFOPT => break,
                    OPT_IF_TSRESOL if olen >= 1 => scale = Scale::from_tsresol(rd::<1>(b, v)[0]),
                    OPT_IF_TSOFFSET if olen >= 8 => offset_s = rd64(b, v, be) as i64,
                    _ => {}
                }
                o = v + olen.next_multiple_of(4);
            }
            if ng.ifaces.len() >= MAX_INTERFACES {
                return Err(ErrorKind::bad(format!(
                    "more than {MAX_INTERFACES} interfaces in one section"
                )));
            }
            ng.ifaces.push(Iface {
                link,
                snaplen,
                scale,
                offset_ns: i128::from(offset_s) * 1_000_000_000,
                last_ts: None,
            });
        }
        BT_EPB | BT_PB => {
            if len < 32 {
                return Err(too_short(32));
            }
            let id = if btype == BT_EPB {
                rd32(b, 8, be)
            } else {
                u32::from(rd16(b, 8, be))
            };
            let units = (u64::from(rd32(b, 12, be)) << 32) | u64::from(rd32(b, 16, be));
            let caplen = rd32(b, 20, be);
            let origlen = rd32(b, 24, be);
            if 28 + caplen as u64 > body_end as u64 {
                return Err(ErrorKind::bad(format!(
                    "{} claims {caplen} captured bytes but has room for {}",
                    block_name(btype),
                    body_end - 28
                )));
            }
            let n_ifaces = ng.ifaces.len();
            let Some(iface) = ng.ifaces.get_mut(id as usize) else {
                return Err(ErrorKind::bad(format!(
                    "{} refers to interface {id}, but its section defines {n_ifaces}",
                    block_name(btype)
                )));
            };
            if iface.snaplen != 0 && caplen > iface.snaplen {
                *oversize += 1;
            }
            let ts = saturate_i64(iface.scale.to_ns(units) + iface.offset_ns);
            iface.last_ts = Some(ts);
            ng.last_ts = Some(ts);
            recs.push(RecordMeta {
                ts,
                off: (base + 28) as u32,
                caplen,
                origlen,
                link: iface.link,
            });
        }
        BT_SPB => {
            if len < 16 {
                return Err(too_short(16));
            }
            let Some(iface) = ng.ifaces.first() else {
                return Err(ErrorKind::bad(
                    "simple packet block before any interface description block",
                ));
            };
            let origlen = rd32(b, 8, be);
            // The block has no captured-length field: the packet is what fits, cut
            // to the interface's snaplen and to the original length (the rest is padding).
            let body = u32::try_from(body_end - 12).unwrap_or(u32::MAX);
            let mut caplen = origlen.min(body);
            if iface.snaplen != 0 {
                caplen = caplen.min(iface.snaplen);
            }
            recs.push(RecordMeta {
                ts: iface.last_ts.or(ng.last_ts).unwrap_or(0),
                off: (base + 12) as u32,
                caplen,
                origlen,
                link: iface.link,
            });
        }
        // Name resolution, statistics, decryption secrets, custom and future blocks
        // carry nothing the decoder needs.
        _ => {}
    }
    Ok(())
}

impl CaptureReader {
    /// Opens a file (or standard input when `path` is "-"), reads the file header and
    /// detects the format by its magic.
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        if path.as_os_str() == "-" {
            return Self::open_stdin();
        }
        let name = path.display().to_string();
        let open_err = |e| CaptureError::new(&name, 0, ErrorKind::Open(e));
        let file = File::open(path).map_err(open_err)?;
        let meta = file.metadata().map_err(open_err)?;
        // Linux lets a directory be opened; only the first read would fail.
        if meta.is_dir() {
            return Err(CaptureError::new(&name, 0, ErrorKind::IsDirectory));
        }
        let size = meta.is_file().then_some(meta.len());
        let mut r = Self::from_reader(&name, Box::new(file))?;
        r.file_size = size;
        Ok(r)
    }

    fn open_stdin() -> Result<Self, CaptureError> {
        const NAME: &str = "<stdin>";
        // A duplicate of fd 0 as a File reads without Stdin's lock and buffer, and
        // gives a size for the progress bar when stdin is redirected from a file.
        #[cfg(unix)]
        {
            use std::os::fd::AsFd;
            if let Ok(fd) = io::stdin().as_fd().try_clone_to_owned() {
                let file = File::from(fd);
                let size = file
                    .metadata()
                    .ok()
                    .filter(|m| m.is_file())
                    .map(|m| m.len());
                let mut r = Self::from_reader(NAME, Box::new(file))?;
                r.file_size = size;
                return Ok(r);
            }
        }
        Self::from_reader(NAME, Box::new(io::stdin()))
    }

    /// Like [`open`](Self::open) over any reader; `name` is used in messages.
    pub fn from_reader(name: &str, r: Box<dyn Read + Send>) -> Result<Self, CaptureError> {
        let mut input = Input {
            src: r,
            carry: Vec::new(),
            carry_pos: 0,
            eof: false,
            pending: None,
        };
        let mut head = Vec::new();
        let err = |offset: usize, kind| CaptureError::new(name, offset as u64, kind);
        let fetch = |input: &mut Input, head: &mut Vec<u8>, need: usize| {
            input
                .ensure(head, need, 0)
                .map_err(|e| err(head.len(), ErrorKind::Io(e)))
        };
        let truncated = |head: &Vec<u8>, what, need: usize| {
            err(
                head.len(),
                ErrorKind::TruncatedHeader {
                    what,
                    need: need as u64,
                },
            )
        };

        if !fetch(&mut input, &mut head, 4)? {
            return Err(if head.is_empty() {
                err(0, ErrorKind::Empty)
            } else {
                truncated(&head, "magic number", 4)
            });
        }
        let magic = rd::<4>(&head, 0);
        let (format, header_len) = match magic {
            [0x0A, 0x0D, 0x0D, 0x0A] => {
                if !fetch(&mut input, &mut head, NG_BLOCK_HEADER)? {
                    return Err(truncated(&head, "section header block", NG_BLOCK_HEADER));
                }
                let (btype, total, be) = ng_header(&head, false).map_err(|k| err(0, k))?;
                if !fetch(&mut input, &mut head, total)? {
                    return Err(truncated(&head, "section header block", total));
                }
                let b = &head[..total];
                let trailer = rd32(b, total - 4, be);
                if trailer as usize != total {
                    return Err(err(
                        0,
                        ErrorKind::bad(format!(
                            "trailing block length {trailer} differs from the leading {total}"
                        )),
                    ));
                }
                let mut ng = NgState {
                    be,
                    ifaces: Vec::new(),
                    last_ts: None,
                };
                ng_block(&mut ng, btype, be, b, 0, &mut Vec::new(), &mut 0)
                    .map_err(|k| err(0, k))?;
                (Format::PcapNg(ng), total)
            }
            [0xA1, 0xB2, 0xC3, 0xD4]
            | [0xD4, 0xC3, 0xB2, 0xA1]
            | [0xA1, 0xB2, 0x3C, 0x4D]
            | [0x4D, 0x3C, 0xB2, 0xA1] => {
                if !fetch(&mut input, &mut head, PCAP_FILE_HEADER)? {
                    return Err(truncated(&head, "pcap file header", PCAP_FILE_HEADER));
                }
                let be = magic[0] == 0xA1;
                let nanos = magic[2] == 0x3C || magic[1] == 0x3C;
                let snaplen = rd32(&head, 16, be);
                // The upper bits of the network field hold FCS information, not the type.
                let link = (rd32(&head, 20, be) & 0xFFFF) as u16;
                if !linktype::is_supported(u32::from(link)) {
                    return Err(err(20, ErrorKind::UnknownLinkType(u32::from(link))));
                }
                let frac_to_ns = if nanos { 1 } else { 1000 };
                (
                    Format::Pcap(PcapParams {
                        be,
                        frac_to_ns,
                        link,
                        snaplen,
                    }),
                    PCAP_FILE_HEADER,
                )
            }
            m => {
                return Err(err(
                    0,
                    ErrorKind::NotCapture {
                        magic: u32::from_be_bytes(m),
                    },
                ));
            }
        };
        // The header's read-ahead becomes the first block's carry.
        input.carry = head;
        input.carry_pos = header_len;
        Ok(Self {
            name: name.to_owned(),
            input,
            format,
            consumed: header_len as u64,
            file_size: None,
            oversize: 0,
            bad_fraction: 0,
            max_span: None,
            deferred: None,
            done: false,
        })
    }

    /// Clears `blk`, then appends whole records until `blk.data.len() >= target_bytes`
    /// or the input ends. See [`Fill`] for the outcomes. A block may hold no records
    /// when the file has only metadata blocks in that span.
    ///
    /// After an error, `Truncated` or `Eof`, every further call returns `Ok(Fill::Eof)`
    /// with an empty block. An error found after some records of this block returns
    /// those records with `More` and the error from the next call.
    pub fn fill(&mut self, blk: &mut Block, target_bytes: usize) -> Result<Fill, CaptureError> {
        blk.clear();
        if let Some(e) = self.deferred.take() {
            self.done = true;
            return Err(e);
        }
        if self.done {
            return Ok(Fill::Eof);
        }
        let target = target_bytes.clamp(1, MAX_TARGET);
        let (pos, stop) = match self.format {
            Format::Pcap(p) => self.fill_pcap(blk, target, p),
            Format::PcapNg(_) => self.fill_pcapng(blk, target),
        };
        self.input.keep_tail(&blk.data, pos);
        blk.data.truncate(pos);
        let start = self.consumed;
        self.consumed += pos as u64;
        match stop {
            Stop::Full => Ok(Fill::More),
            Stop::Eof => {
                self.done = true;
                Ok(Fill::Eof)
            }
            Stop::Truncated(reason) => {
                self.done = true;
                Ok(Fill::Truncated {
                    offset: self.consumed,
                    reason,
                })
            }
            Stop::Fail(kind, at) => {
                let e = CaptureError::new(&self.name, start + at as u64, kind);
                if blk.recs.is_empty() {
                    self.done = true;
                    Err(e)
                } else {
                    self.deferred = Some(e);
                    Ok(Fill::More)
                }
            }
        }
    }

    /// Reads more input for a header or record of `need` bytes from `pos`: `None` when
    /// it is there, otherwise how the fill stops.
    fn need(
        input: &mut Input,
        data: &mut Vec<u8>,
        pos: usize,
        need: usize,
        target: usize,
        what: impl FnOnce() -> String,
    ) -> Option<Stop> {
        match input.ensure(data, pos + need, target) {
            Ok(true) => None,
            Ok(false) if data.len() == pos => Some(Stop::Eof),
            Ok(false) => Some(Stop::Truncated(format!(
                "the file ends inside {} ({} of {need} bytes present)",
                what(),
                data.len() - pos
            ))),
            Err(e) => Some(Stop::Fail(ErrorKind::Io(e), data.len())),
        }
    }

    fn fill_pcap(&mut self, blk: &mut Block, target: usize, p: PcapParams) -> (usize, Stop) {
        // The byte order as a constant: the record loop is the reader's whole
        // work, and a byte-order test on each of four fields per record was a
        // measurable part of it.
        if p.be {
            self.fill_pcap_as::<true>(blk, target, p)
        } else {
            self.fill_pcap_as::<false>(blk, target, p)
        }
    }

    fn fill_pcap_as<const BE: bool>(
        &mut self,
        blk: &mut Block,
        target: usize,
        p: PcapParams,
    ) -> (usize, Stop) {
        let Block { data, recs } = blk;
        let max_span = self.max_span;
        // The block's first timestamp, for the time cut, kept here rather
        // than read back from the records.
        let mut first_ts = None;
        let mut pos = 0;
        loop {
            if pos >= target {
                return (pos, Stop::Full);
            }
            let Some(h) = data
                .get(pos..)
                .and_then(|s| s.first_chunk::<PCAP_RECORD_HEADER>())
            else {
                let what = || "a packet record header".to_owned();
                match Self::need(&mut self.input, data, pos, PCAP_RECORD_HEADER, target, what) {
                    None => continue,
                    Some(stop) => return (pos, stop),
                }
            };
            let sec = rd32(h, 0, BE);
            let frac = rd32(h, 4, BE);
            let caplen = rd32(h, 8, BE);
            let origlen = rd32(h, 12, BE);
            if caplen as usize > MAX_RECORD {
                return (
                    pos,
                    Stop::Fail(
                        ErrorKind::RecordTooLarge {
                            len: u64::from(caplen),
                        },
                        pos,
                    ),
                );
            }
            let len = PCAP_RECORD_HEADER + caplen as usize;
            if pos + len > data.len() {
                let what = || format!("a {caplen}-byte packet record");
                if let Some(stop) = Self::need(&mut self.input, data, pos, len, target, what) {
                    // A clean end is impossible here: the record header is present.
                    return (pos, stop);
                }
            }
            if p.snaplen != 0 && caplen > p.snaplen {
                self.oversize += 1;
            }
            let mut frac_ns = i64::from(frac) * p.frac_to_ns;
            if frac_ns >= 1_000_000_000 {
                // A fraction of a second that is a second or more: a broken
                // writer. Taken as it stands it would move the clock up to
                // 71 minutes ahead (u32::MAX microseconds) and time out every
                // pending attempt; the record keeps its second instead.
                self.bad_fraction += 1;
                frac_ns = 1_000_000_000 - p.frac_to_ns;
            }
            // u32::MAX seconds plus a second in ns is below i64::MAX.
            let ts = i64::from(sec) * 1_000_000_000 + frac_ns;
            recs.push(RecordMeta {
                ts,
                off: (pos + PCAP_RECORD_HEADER) as u32,
                caplen,
                origlen,
                link: p.link,
            });
            pos += len;
            let first = *first_ts.get_or_insert(ts);
            if span_reached(max_span, first, ts) {
                return (pos, Stop::Full);
            }
        }
    }

    fn fill_pcapng(&mut self, blk: &mut Block, target: usize) -> (usize, Stop) {
        let Format::PcapNg(ng) = &mut self.format else {
            return (0, Stop::Eof);
        };
        let Block { data, recs } = blk;
        let mut pos = 0;
        loop {
            if pos >= target {
                return (pos, Stop::Full);
            }
            let Some(h) = data
                .get(pos..)
                .and_then(|s| s.first_chunk::<NG_BLOCK_HEADER>())
            else {
                let what = || "a block header".to_owned();
                match Self::need(&mut self.input, data, pos, NG_BLOCK_HEADER, target, what) {
                    None => continue,
                    Some(stop) => return (pos, stop),
                }
            };
            let (btype, total, be) = match ng_header(h, ng.be) {
                Ok(v) => v,
                Err(k) => return (pos, Stop::Fail(k, pos)),
            };
            if pos + total > data.len() {
                let what = || format!("a {total}-byte {}", block_name(btype));
                if let Some(stop) = Self::need(&mut self.input, data, pos, total, target, what) {
                    return (pos, stop);
                }
            }
            let b = &data[pos..pos + total];
            let trailer = rd32(b, total - 4, be);
            if trailer as usize != total {
                let k = ErrorKind::bad(format!(
                    "trailing block length {trailer} differs from the leading {total}"
                ));
                return (pos, Stop::Fail(k, pos));
            }
            if let Err(k) = ng_block(ng, btype, be, b, pos, recs, &mut self.oversize) {
                return (pos, Stop::Fail(k, pos));
            }
            pos += total;
            if let (Some(a), Some(b)) = (recs.first(), recs.last())
                && span_reached(self.max_span, a.ts, b.ts)
            {
                return (pos, Stop::Full);
            }
        }
    }

    /// File offset reached: the end of the last record delivered.
    pub fn bytes_consumed(&self) -> u64 {
        self.consumed
    }

    /// The input's size when it is a regular file.
    pub fn file_size(&self) -> Option<u64> {
        self.file_size
    }

    /// "pcap" or "pcapng".
    pub fn format(&self) -> &'static str {
        match self.format {
            Format::Pcap(_) => "pcap",
            Format::PcapNg(_) => "pcapng",
        }
    }

    /// The name used in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// End each block once its records span `ns` of capture time, as well as
    /// at `target_bytes`. Timers downstream fire at block boundaries, so in a
    /// sparse capture (a packet a minute) a byte-sized block could hold days and
    /// delay them by as much. The cut depends only on the timestamps: blocks stay
    /// a function of the file's content.
    pub fn set_max_span(&mut self, ns: i64) {
        self.max_span = Some(ns.max(1) as u64);
    }

    /// Records whose captured length exceeds the snaplen of their file or interface.
    /// They are delivered whole (some writers produce them); the count is for a
    /// diagnostic.
    pub fn oversize_records(&self) -> u64 {
        self.oversize
    }

    /// Classic pcap records whose fraction of a second was a second or more
    /// (read as the last instant of their second).
    pub fn bad_fractions(&self) -> u64 {
        self.bad_fraction
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    const ETH: u16 = linktype::ETHERNET;

    // ---- writers for test captures ----

    fn put16(buf: &mut Vec<u8>, v: u16, be: bool) {
        buf.extend_from_slice(&if be { v.to_be_bytes() } else { v.to_le_bytes() });
    }
    fn put32(buf: &mut Vec<u8>, v: u32, be: bool) {
        buf.extend_from_slice(&if be { v.to_be_bytes() } else { v.to_le_bytes() });
    }
    fn put64(buf: &mut Vec<u8>, v: u64, be: bool) {
        buf.extend_from_slice(&if be { v.to_be_bytes() } else { v.to_le_bytes() });
    }

    /// A classic pcap file; records are (ts_sec, ts_frac, data, orig_len).
    fn pcap(
        be: bool,
        nanos: bool,
        network: u32,
        snaplen: u32,
        recs: &[(u32, u32, &[u8], u32)],
    ) -> Vec<u8> {
        let mut b = Vec::new();
        put32(&mut b, if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }, be);
        put16(&mut b, 2, be);
        put16(&mut b, 4, be);
        put32(&mut b, 0, be);
        put32(&mut b, 0, be);
        put32(&mut b, snaplen, be);
        put32(&mut b, network, be);
        for &(s, f, d, o) in recs {
            put32(&mut b, s, be);
            put32(&mut b, f, be);
            put32(&mut b, d.len() as u32, be);
            put32(&mut b, o, be);
            b.extend_from_slice(d);
        }
        b
    }

    /// A pcapng writer; each method appends one block in the current section's order.
    struct Ng {
        buf: Vec<u8>,
        be: bool,
    }

    impl Ng {
        fn new(be: bool) -> Self {
            let mut w = Ng {
                buf: Vec::new(),
                be,
            };
            w.shb(be);
            w
        }
        fn shb(&mut self, be: bool) {
            self.be = be;
            let mut body = Vec::new();
            put32(&mut body, 0x1A2B_3C4D, be);
            put16(&mut body, 1, be);
            put16(&mut body, 0, be);
            put64(&mut body, u64::MAX, be);
            self.block(BT_SHB, &body);
        }
        fn block(&mut self, btype: u32, body: &[u8]) {
            let total = 12 + body.len().next_multiple_of(4) as u32;
            let be = self.be;
            put32(&mut self.buf, btype, be);
            put32(&mut self.buf, total, be);
            self.buf.extend_from_slice(body);
            self.buf.resize(
                self.buf.len() + body.len().next_multiple_of(4) - body.len(),
                0,
            );
            put32(&mut self.buf, total, be);
        }
        fn idb(&mut self, link: u16, snaplen: u32, opts: &[(u16, Vec<u8>)]) {
            let be = self.be;
            let mut body = Vec::new();
            put16(&mut body, link, be);
            put16(&mut body, 0, be);
            put32(&mut body, snaplen, be);
            for (code, v) in opts {
                put16(&mut body, *code, be);
                put16(&mut body, v.len() as u16, be);
                body.extend_from_slice(v);
                body.resize(body.len().next_multiple_of(4), 0);
            }
            if !opts.is_empty() {
                put32(&mut body, 0, be);
            }
            self.block(BT_IDB, &body);
        }
        fn tsoffset(&self, secs: i64) -> (u16, Vec<u8>) {
            let mut v = Vec::new();
            put64(&mut v, secs as u64, self.be);
            (OPT_IF_TSOFFSET, v)
        }
        fn pkt(&mut self, btype: u32, iface: u32, units: u64, data: &[u8], orig: u32) {
            let be = self.be;
            let mut body = Vec::new();
            if btype == BT_EPB {
                put32(&mut body, iface, be);
            } else {
                put16(&mut body, iface as u16, be);
                put16(&mut body, 0, be);
            }
            put32(&mut body, (units >> 32) as u32, be);
            put32(&mut body, units as u32, be);
            put32(&mut body, data.len() as u32, be);
            put32(&mut body, orig, be);
            body.extend_from_slice(data);
            self.block(btype, &body);
        }
        fn epb(&mut self, iface: u32, units: u64, data: &[u8]) {
            self.pkt(BT_EPB, iface, units, data, data.len() as u32);
        }
        fn spb(&mut self, orig: u32, data: &[u8]) {
            let mut body = Vec::new();
            put32(&mut body, orig, self.be);
            body.extend_from_slice(data);
            self.block(BT_SPB, &body);
        }
    }

    /// Returns 1 to 7 bytes per call, to show block contents do not depend on read sizes.
    struct Dribble {
        data: Vec<u8>,
        pos: usize,
        rng: u32,
    }

    impl Read for Dribble {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 17;
            self.rng ^= self.rng << 5;
            let n = (1 + self.rng as usize % 7)
                .min(buf.len())
                .min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    fn reader(bytes: &[u8]) -> Result<CaptureReader, CaptureError> {
        CaptureReader::from_reader("t.pcap", Box::new(Cursor::new(bytes.to_vec())))
    }

    /// Each fill's (data, recs, outcome), checking the invariants every block must keep.
    type Fills = Vec<(Vec<u8>, Vec<RecordMeta>, Result<Fill, String>)>;

    fn fills(r: &mut CaptureReader, target: usize) -> Fills {
        let mut out: Fills = Vec::new();
        let mut blk = Block::default();
        loop {
            let res = r.fill(&mut blk, target);
            for m in &blk.recs {
                assert!(m.off as usize + m.caplen as usize <= blk.data.len());
            }
            // A block short of its target only comes before an error (with the
            // records that precede the error).
            if let Some((data, _, Ok(Fill::More))) = out.last()
                && data.len() < target
            {
                assert!(res.is_err(), "short More not followed by an error");
            }
            let last = !matches!(res, Ok(Fill::More));
            out.push((
                blk.data.clone(),
                blk.recs.clone(),
                res.map_err(|e| e.to_string()),
            ));
            if last {
                // Everything after the end is an empty Eof.
                assert_eq!(r.fill(&mut blk, target).unwrap(), Fill::Eof);
                assert!(blk.data.is_empty() && blk.recs.is_empty());
                return out;
            }
        }
    }

    /// Every packet as (meta, bytes) and the final outcome.
    type Packets = Vec<(RecordMeta, Vec<u8>)>;

    fn packets(bytes: &[u8]) -> (Packets, Result<Fill, String>) {
        let mut r = reader(bytes).unwrap();
        let mut pk = Vec::new();
        let mut end = Ok(Fill::Eof);
        for (data, recs, res) in fills(&mut r, 1 << 20) {
            let blk = Block { data, recs };
            pk.extend(blk.recs.iter().map(|m| (*m, blk.packet(m).to_vec())));
            end = res;
        }
        (pk, end)
    }

    fn err_of(bytes: &[u8]) -> CaptureError {
        match reader(bytes) {
            Err(e) => e,
            Ok(_) => panic!("expected an error"),
        }
    }

    // ---- classic pcap ----

    #[test]
    fn pcap_all_magics() {
        let d1: &[u8] = &[1, 2, 3, 4, 5];
        let d2: &[u8] = &[9; 60];
        for be in [false, true] {
            for nanos in [false, true] {
                let bytes = pcap(
                    be,
                    nanos,
                    1,
                    65535,
                    &[(1_700_000_000, 123_456, d1, 70), (0, 7, d2, 60)],
                );
                let r = reader(&bytes).unwrap();
                assert_eq!(r.format(), "pcap");
                assert_eq!(r.bytes_consumed(), 24);
                let (pk, end) = packets(&bytes);
                assert_eq!(end, Ok(Fill::Eof));
                assert_eq!(pk.len(), 2);
                let mul = if nanos { 1 } else { 1000 };
                assert_eq!(
                    pk[0].0.ts,
                    1_700_000_000 * 1_000_000_000 + 123_456 * mul,
                    "be={be} ns={nanos}"
                );
                assert_eq!(
                    (pk[0].0.caplen, pk[0].0.origlen, pk[0].0.link),
                    (5, 70, ETH)
                );
                assert_eq!(pk[0].1, d1);
                assert_eq!(pk[1].0.ts, 7 * mul);
                assert_eq!(pk[1].1, d2);
            }
        }
    }

    #[test]
    fn pcap_link_type_ignores_fcs_bits_and_extremes_do_not_overflow() {
        // FCS present, 4 bytes: bits 26-31 set on top of LINUX_SLL.
        let net = (0b1_0010 << 26) | u32::from(linktype::LINUX_SLL);
        let bytes = pcap(false, false, net, 0, &[(u32::MAX, u32::MAX, &[], 0)]);
        let (pk, _) = packets(&bytes);
        assert_eq!(pk[0].0.link, linktype::LINUX_SLL);
        // The fraction, 71 minutes of microseconds, is a broken one.
        assert_eq!(pk[0].0.ts, 4_294_967_295_000_000_000 + 999_999_000);
        assert_eq!(pk[0].0.caplen, 0);
    }

    /// A fraction of a second of a second or more would move the clock
    /// ahead (up to 71 minutes in microseconds) and time out every pending
    /// attempt: such a record keeps its second and is counted.
    #[test]
    fn fractions_of_a_second_past_a_second_are_clamped_and_counted() {
        for (nanos, unit) in [(false, 1000), (true, 1)] {
            let top = 1_000_000_000 / unit;
            let recs: &[(u32, u32, &[u8], u32)] = &[
                (10, top - 1, b"a", 1),
                (10, top, b"b", 1),
                (10, u32::MAX, b"c", 1),
                (11, 0, b"d", 1),
            ];
            let bytes = pcap(false, nanos, 1, 0, recs);
            let mut r = reader(&bytes).unwrap();
            let f = fills(&mut r, 1 << 20);
            let ts: Vec<i64> = f[0].1.iter().map(|m| m.ts).collect();
            let last = 10_000_000_000 + i64::from(top - 1) * i64::from(unit);
            assert_eq!(ts, [last, last, last, 11_000_000_000], "nanos {nanos}");
            assert_eq!(r.bad_fractions(), 2, "nanos {nanos}");
        }
    }

    #[test]
    fn oversize_records_are_delivered_and_counted() {
        let big = vec![7u8; 100];
        let bytes = pcap(
            false,
            false,
            1,
            64,
            &[(1, 0, &big, 100), (2, 0, &big[..10], 10)],
        );
        let mut r = reader(&bytes).unwrap();
        let f = fills(&mut r, 1 << 20);
        assert_eq!(f[0].1.len(), 2);
        assert_eq!(f[0].1[0].caplen, 100);
        assert_eq!(r.oversize_records(), 1);
    }

    // ---- pcapng ----

    /// A section may define `MAX_INTERFACES` interfaces; one more is
    /// damage (memory would otherwise grow with a stream of them), and
    /// the packets before it are kept.
    #[test]
    fn pcapng_interfaces_are_capped() {
        let mut w = Ng::new(false);
        for _ in 0..MAX_INTERFACES {
            w.idb(ETH, 0, &[]);
        }
        w.epb(MAX_INTERFACES as u32 - 1, 1_600_000_000_000_000, b"abc");
        let (pk, end) = packets(&w.buf);
        assert_eq!((pk.len(), end), (1, Ok(Fill::Eof)));
        w.idb(ETH, 0, &[]);
        w.epb(0, 1_600_000_000_000_001, b"def");
        let (pk, end) = packets(&w.buf);
        assert_eq!(pk.len(), 1);
        let e = end.unwrap_err();
        assert!(e.contains("more than 65536 interfaces"), "{e}");
    }

    #[test]
    fn pcapng_interfaces_with_their_own_resolution_and_offset() {
        for be in [false, true] {
            let mut w = Ng::new(be);
            w.idb(ETH, 0, &[(OPT_IF_TSRESOL, vec![9])]);
            let off = w.tsoffset(100);
            w.idb(linktype::RAW, 0, &[(OPT_IF_TSRESOL, vec![0x80 | 20]), off]);
            w.idb(ETH, 0, &[]); // default: microseconds
            w.epb(0, 1_600_000_000_123_456_789, b"abc");
            // 2^-20 s units: 1_600_000_000.5 s, plus 100 s of offset.
            w.epb(1, (1_600_000_000u64 << 20) | (1 << 19), b"defgh");
            w.epb(2, 1_600_000_000_000_001, b"");
            let (pk, end) = packets(&w.buf);
            assert_eq!(end, Ok(Fill::Eof));
            assert_eq!(pk.len(), 3);
            assert_eq!(
                (pk[0].0.ts, pk[0].0.link, &pk[0].1[..]),
                (1_600_000_000_123_456_789, ETH, &b"abc"[..])
            );
            assert_eq!(pk[1].0.ts, 1_600_000_100_500_000_000);
            assert_eq!((pk[1].0.link, &pk[1].1[..]), (linktype::RAW, &b"defgh"[..]));
            assert_eq!((pk[2].0.ts, pk[2].0.caplen), (1_600_000_000_000_001_000, 0));
        }
    }

    #[test]
    fn pcapng_sections_in_both_byte_orders_reset_interfaces() {
        let mut w = Ng::new(false);
        w.idb(ETH, 0, &[]);
        w.idb(linktype::RAW, 0, &[]);
        w.epb(1, 5, b"le");
        w.shb(true);
        w.idb(linktype::LINUX_SLL2, 0, &[(OPT_IF_TSRESOL, vec![9])]);
        w.epb(0, 6, b"be!");
        let ok = w.buf.clone();
        let (pk, end) = packets(&ok);
        assert_eq!(end, Ok(Fill::Eof));
        assert_eq!(pk.len(), 2);
        assert_eq!(
            (pk[0].0.ts, pk[0].0.link, &pk[0].1[..]),
            (5000, linktype::RAW, &b"le"[..])
        );
        assert_eq!(
            (pk[1].0.ts, pk[1].0.link, &pk[1].1[..]),
            (6, linktype::LINUX_SLL2, &b"be!"[..])
        );

        // Interface 1 belonged to the first section only.
        w.epb(1, 7, b"x");
        let (pk, end) = packets(&w.buf);
        assert_eq!(pk.len(), 2);
        let e = end.unwrap_err();
        assert!(
            e.contains("refers to interface 1, but its section defines 1"),
            "{e}"
        );
        assert!(e.contains(&format!("at offset {}", ok.len())), "{e}");
    }

    #[test]
    fn pcapng_simple_and_obsolete_packet_blocks() {
        let mut w = Ng::new(false);
        w.idb(ETH, 8, &[]);
        w.spb(5, b"12345"); // before any timestamp: 0
        w.pkt(BT_PB, 0, 42, b"pb-data", 99);
        w.spb(20, b"0123456789abcdef"); // cut to snaplen 8
        w.spb(3, b"abcdefgh"); // orig 3: the rest is padding
        let (pk, end) = packets(&w.buf);
        assert_eq!(end, Ok(Fill::Eof));
        let got: Vec<_> = pk
            .iter()
            .map(|(m, d)| (m.ts, m.caplen, m.origlen, d.clone()))
            .collect();
        assert_eq!(
            got,
            [
                (0, 5, 5, b"12345".to_vec()),
                (42_000, 7, 99, b"pb-data".to_vec()),
                (42_000, 8, 20, b"01234567".to_vec()),
                (42_000, 3, 3, b"abc".to_vec()),
            ]
        );
    }

    /// A simple packet block (interface 0, no time of its own) after packets
    /// of another interface takes the last one's time, not 1970.
    #[test]
    fn pcapng_simple_packet_block_takes_the_last_time_of_the_file() {
        let mut w = Ng::new(false);
        w.idb(ETH, 0, &[]);
        w.idb(ETH, 0, &[]);
        w.epb(1, 1_600_000_000_000_000, b"abc");
        w.spb(3, b"def");
        w.epb(0, 1_600_000_001_000_000, b"ghi");
        w.epb(1, 1_600_000_002_000_000, b"jkl");
        w.spb(3, b"mno"); // its own interface's last time
        let (pk, end) = packets(&w.buf);
        assert_eq!(end, Ok(Fill::Eof));
        let ts: Vec<i64> = pk.iter().map(|(m, _)| m.ts).collect();
        assert_eq!(
            ts,
            [
                1_600_000_000_000_000_000,
                1_600_000_000_000_000_000,
                1_600_000_001_000_000_000,
                1_600_000_002_000_000_000,
                1_600_000_001_000_000_000,
            ]
        );
    }

    #[test]
    fn pcapng_skips_other_blocks() {
        let mut w = Ng::new(true);
        w.block(4, &[0; 20]); // name resolution
        w.idb(ETH, 0, &[(2, b"eth0".to_vec()), (OPT_IF_TSRESOL, vec![6])]);
        w.block(5, &[0; 28]); // interface statistics
        w.epb(0, 1, b"p1");
        w.block(0x0000_000A, &[1; 13]); // decryption secrets
        w.block(0x4000_0BAD, &[]); // custom
        w.block(0x8000_1234, &[2; 4]); // local use
        w.epb(0, 2, b"p2");
        let (pk, end) = packets(&w.buf);
        assert_eq!(end, Ok(Fill::Eof));
        assert_eq!(
            pk.iter().map(|p| p.1.clone()).collect::<Vec<_>>(),
            [b"p1".to_vec(), b"p2".to_vec()]
        );
    }

    #[test]
    fn extreme_timestamp_options_saturate() {
        let mut w = Ng::new(false);
        let hi = w.tsoffset(i64::MAX);
        let lo = w.tsoffset(i64::MIN);
        w.idb(ETH, 0, &[hi]);
        w.idb(ETH, 0, &[lo]);
        w.idb(ETH, 0, &[(OPT_IF_TSRESOL, vec![127])]);
        w.idb(ETH, 0, &[(OPT_IF_TSRESOL, vec![0xFF])]);
        w.idb(ETH, 0, &[(OPT_IF_TSRESOL, vec![0x80])]);
        for i in 0..5 {
            w.epb(i, u64::MAX, b"");
        }
        let (pk, _) = packets(&w.buf);
        let ts: Vec<i64> = pk.iter().map(|p| p.0.ts).collect();
        assert_eq!(ts, [i64::MAX, i64::MIN, 0, 0, i64::MAX]);
        assert_eq!(Scale::from_tsresol(28), Scale::Div(10u64.pow(19)));
        assert_eq!(Scale::from_tsresol(29), Scale::Zero);
    }

    // ---- block boundaries ----

    fn mixed_captures() -> Vec<Vec<u8>> {
        let sizes = [0usize, 1, 60, 1514, 3, 0, 200, 9000, 64, 65, 66, 67, 1, 2];
        let payload: Vec<u8> = (0..9000u32).map(|i| (i * 7) as u8).collect();
        let recs: Vec<(u32, u32, &[u8], u32)> = (0..60)
            .map(|i| {
                let n = sizes[i % sizes.len()];
                (i as u32, i as u32, &payload[..n], n as u32)
            })
            .collect();
        let mut w = Ng::new(false);
        w.idb(ETH, 0, &[]);
        for (i, r) in recs.iter().enumerate() {
            match i % 9 {
                3 => w.block(5, &[0; 24]),
                7 => w.spb(r.3, r.2),
                _ => w.epb(0, i as u64, r.2),
            }
        }
        w.shb(true);
        w.idb(ETH, 0, &[(OPT_IF_TSRESOL, vec![0x80 | 20])]);
        for r in &recs[..10] {
            w.epb(0, u64::from(r.0) << 20, r.2);
        }
        vec![
            pcap(false, false, 1, 65535, &recs),
            pcap(true, true, 1, 0, &recs),
            w.buf,
        ]
    }

    #[test]
    fn blocks_do_not_depend_on_read_sizes() {
        for (i, bytes) in mixed_captures().into_iter().enumerate() {
            for target in [1, 100, 1 << 20] {
                let big = fills(&mut reader(&bytes).unwrap(), target);
                for seed in [1u32, 77, 0xdead_beef] {
                    let src = Dribble {
                        data: bytes.clone(),
                        pos: 0,
                        rng: seed,
                    };
                    let mut r = CaptureReader::from_reader("dribble", Box::new(src)).unwrap();
                    assert_eq!(
                        fills(&mut r, target),
                        big,
                        "capture {i} target {target} seed {seed}"
                    );
                    assert_eq!(r.bytes_consumed(), bytes.len() as u64);
                }
                let n: usize = big.iter().map(|f| f.1.len()).sum();
                assert_eq!(
                    n,
                    if i < 2 { 60 } else { 63 },
                    "capture {i} target {target}"
                );
                assert_eq!(big.last().unwrap().2, Ok(Fill::Eof));
                if target == 1 {
                    assert!(big.iter().all(|f| f.1.len() <= 1));
                }
                if target == 1 << 20 {
                    assert_eq!(big.len(), 1);
                    assert_eq!(big[0].0.len() + r_header_len(&bytes), bytes.len());
                }
            }
        }
    }

    fn r_header_len(bytes: &[u8]) -> usize {
        reader(bytes).unwrap().bytes_consumed() as usize
    }

    #[test]
    fn blocks_stop_at_the_first_record_that_reaches_the_target() {
        let d = [0u8; 84]; // 100 bytes per record with its header
        let bytes = pcap(false, false, 1, 0, &[(0, 0, &d[..], 84); 5]);
        let f = fills(&mut reader(&bytes).unwrap(), 150);
        let shape: Vec<(usize, usize)> = f.iter().map(|f| (f.0.len(), f.1.len())).collect();
        assert_eq!(shape, [(200, 2), (200, 2), (100, 1)]);
        assert_eq!(f[2].2, Ok(Fill::Eof));
        let f = fills(&mut reader(&bytes).unwrap(), 250);
        assert_eq!(f.iter().map(|f| f.1.len()).collect::<Vec<_>>(), [3, 2]);
        // Ending exactly at a boundary: More, then an empty Eof.
        let f = fills(&mut reader(&bytes).unwrap(), 500);
        assert_eq!(
            f.iter()
                .map(|f| (f.1.len(), f.2.clone()))
                .collect::<Vec<_>>(),
            [(5, Ok(Fill::More)), (0, Ok(Fill::Eof))]
        );
    }

    // ---- truncation and errors ----

    #[test]
    fn truncated_record_keeps_complete_ones() {
        let d = [5u8; 50];
        let full = pcap(
            false,
            false,
            1,
            0,
            &[(1, 0, &d, 50), (2, 0, &d, 50), (3, 0, &d, 50)],
        );
        let third = (24 + 2 * 66) as u64;
        for cut in [
            full.len() - 1,
            full.len() - 50,
            third as usize + 15,
            third as usize + 1,
        ] {
            for target in [1, 1 << 20] {
                let mut r = reader(&full[..cut]).unwrap();
                let f = fills(&mut r, target);
                let n: usize = f.iter().map(|f| f.1.len()).sum();
                assert_eq!(n, 2, "cut {cut}");
                match &f.last().unwrap().2 {
                    Ok(Fill::Truncated { offset, reason }) => {
                        assert_eq!(*offset, third);
                        assert!(reason.starts_with("the file ends inside a"), "{reason}");
                    }
                    other => panic!("cut {cut}: {other:?}"),
                }
                assert_eq!(r.bytes_consumed(), third);
            }
        }

        let mut w = Ng::new(false);
        w.idb(ETH, 0, &[]);
        w.epb(0, 1, &d);
        let at = w.buf.len() as u64;
        w.epb(0, 2, &d);
        for cut in [w.buf.len() - 4, at as usize + 11] {
            let (pk, end) = packets(&w.buf[..cut]);
            assert_eq!(pk.len(), 1);
            assert!(
                matches!(end, Ok(Fill::Truncated { offset, .. }) if offset == at),
                "{end:?}"
            );
        }
    }

    #[test]
    fn not_a_capture() {
        let e = err_of(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
        assert!(matches!(
            e.kind,
            ErrorKind::NotCapture { magic: 0x7f45_4c46 }
        ));
        assert_eq!(
            e.to_string(),
            "cannot read capture 't.pcap': not a pcap or pcapng file (magic 0x7f454c46)"
        );
        assert!(!e.is_truncation());
    }

    #[test]
    fn empty_and_short_files() {
        let e = err_of(b"");
        assert!(matches!(e.kind, ErrorKind::Empty));
        assert_eq!(
            e.to_string(),
            "cannot read capture 't.pcap': the file is empty"
        );

        let e = err_of(&[0xd4, 0xc3]);
        assert!(e.is_truncation());
        let full = pcap(false, false, 1, 0, &[]);
        let e = err_of(&full[..20]);
        assert!(e.is_truncation());
        assert_eq!(
            e.to_string(),
            "cannot read capture 't.pcap': the file ends after 20 bytes, inside its pcap file header (24 bytes)"
        );
        let w = Ng::new(false);
        assert!(err_of(&w.buf[..10]).is_truncation());
        assert!(err_of(&w.buf[..20]).is_truncation());
        // A header and nothing else is a capture with no packets.
        assert_eq!(packets(&full), (vec![], Ok(Fill::Eof)));
        assert_eq!(packets(&w.buf), (vec![], Ok(Fill::Eof)));
    }

    #[test]
    fn unknown_link_types() {
        let e = err_of(&pcap(true, false, 105, 0, &[]));
        assert!(matches!(e.kind, ErrorKind::UnknownLinkType(105)));
        assert_eq!(e.offset, 20);
        assert!(e.to_string().starts_with(
            "cannot read capture 't.pcap': at offset 20: unsupported link type 105 ("
        ));

        // pcapng: packets before the bad interface are delivered, then the error.
        let mut w = Ng::new(false);
        w.idb(ETH, 0, &[]);
        w.epb(0, 1, b"first");
        let at = w.buf.len() as u64;
        w.idb(127, 0, &[]);
        w.epb(0, 2, b"second");
        let mut r = reader(&w.buf).unwrap();
        let mut blk = Block::default();
        assert_eq!(r.fill(&mut blk, 1 << 20).unwrap(), Fill::More);
        assert_eq!(blk.recs.len(), 1);
        let e = r.fill(&mut blk, 1 << 20).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::UnknownLinkType(127)));
        assert_eq!(e.offset, at);
        assert!(blk.recs.is_empty());
        assert_eq!(r.fill(&mut blk, 1 << 20).unwrap(), Fill::Eof);
    }

    #[test]
    fn bad_block_lengths() {
        let mut w = Ng::new(false);
        w.idb(ETH, 0, &[]);
        let at = w.buf.len();
        w.epb(0, 1, b"abcd");
        let set_len = |buf: &mut Vec<u8>, pos: usize, v: u32| {
            buf[pos..pos + 4].copy_from_slice(&v.to_le_bytes())
        };
        let cases: [(usize, u32, &str); 5] = [
            (at + 4, 13, "block total length 13 is not a multiple of 4"),
            (
                at + 4,
                8,
                "block total length 8 is less than the 12-byte minimum",
            ),
            (
                at + 4,
                0x7FFF_FFFC,
                "record length 2147483644 exceeds the 16 MiB limit",
            ),
            (
                w.buf.len() - 4,
                40,
                "trailing block length 40 differs from the leading 36",
            ),
            (
                at + 20,
                9,
                "enhanced packet block claims 9 captured bytes but has room for 4",
            ),
        ];
        for (pos, v, msg) in cases {
            let mut b = w.buf.clone();
            set_len(&mut b, pos, v);
            let (pk, end) = packets(&b);
            assert!(pk.is_empty());
            let e = end.unwrap_err();
            let prefix = format!("cannot read capture 't.pcap': at offset {at}: {msg}");
            assert!(e.starts_with(&prefix), "{e}");
        }
        // A first block with a broken length is caught when opening.
        let mut b = w.buf.clone();
        set_len(&mut b, 4, 30);
        assert!(
            err_of(&b)
                .to_string()
                .ends_with("at offset 0: block total length 30 is not a multiple of 4")
        );
    }

    #[test]
    fn huge_caplen_is_an_error_not_an_allocation() {
        let mut bytes = pcap(false, false, 1, 0, &[(1, 0, b"ok", 2)]);
        for v in [1u32, 0, (16 << 20) + 1, 0] {
            put32(&mut bytes, v, false);
        }
        let (pk, end) = packets(&bytes);
        assert_eq!(pk.len(), 1);
        let e = end.unwrap_err();
        assert!(
            e.contains("at offset 42: record length 16777217 exceeds the 16 MiB limit"),
            "{e}"
        );
        // Exactly at the limit is a length we accept (and here, a truncated record).
        let mut bytes = pcap(false, false, 1, 0, &[]);
        for v in [1u32, 0, 16 << 20, 0] {
            put32(&mut bytes, v, false);
        }
        assert!(matches!(
            packets(&bytes).1,
            Ok(Fill::Truncated { offset: 24, .. })
        ));
    }

    #[test]
    fn read_errors_name_the_offset() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let head = pcap(false, false, 1, 0, &[(1, 0, &[0; 10], 10)]);
                if self.0 >= head.len() {
                    return Err(io::Error::other("Device on fire"));
                }
                let n = buf.len().min(head.len() - self.0);
                buf[..n].copy_from_slice(&head[self.0..self.0 + n]);
                self.0 += n;
                Ok(n)
            }
        }
        let mut r = CaptureReader::from_reader("f", Box::new(Failing(0))).unwrap();
        let mut blk = Block::default();
        assert_eq!(r.fill(&mut blk, 1 << 20).unwrap(), Fill::More);
        assert_eq!(blk.recs.len(), 1);
        let e = r.fill(&mut blk, 1 << 20).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot read capture 'f': at offset 50: read error: device on fire"
        );
        assert_eq!(r.fill(&mut blk, 1 << 20).unwrap(), Fill::Eof);
    }

    #[test]
    fn paths() {
        let dir = std::env::temp_dir();
        let e = CaptureReader::open(&dir).err().unwrap();
        assert!(matches!(e.kind, ErrorKind::IsDirectory));
        assert!(e.to_string().ends_with("': is a directory"), "{e}");
        let e = CaptureReader::open(Path::new("/nonexistent/x.pcap"))
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "cannot read capture '/nonexistent/x.pcap': no such file or directory (os error 2)"
        );

        let path = dir.join(format!("scanwatch-file-test-{}.pcap", std::process::id()));
        let bytes = pcap(false, false, 1, 0, &[(1, 0, b"xyz", 3)]);
        std::fs::write(&path, &bytes).unwrap();
        let mut r = CaptureReader::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(r.file_size(), Some(bytes.len() as u64));
        let f = fills(&mut r, 1 << 20);
        assert_eq!(f[0].1.len(), 1);
        assert_eq!(r.bytes_consumed(), bytes.len() as u64);
    }

    #[test]
    fn reader_is_send() {
        fn send<T: Send>() {}
        send::<CaptureReader>();
        send::<CaptureError>();
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]

        /// Damaged captures never panic, every record stays inside its block, and the
        /// outcome still does not depend on read sizes.
        #[test]
        fn damaged_captures_are_handled(
            which in 0usize..5,
            edits in proptest::collection::vec((0usize..usize::MAX, 0u8..=255), 1..6),
            cut in proptest::option::of(0usize..usize::MAX),
            target in proptest::sample::select(vec![1usize, 100, 4096, 1 << 20]),
        ) {
            // Small captures too, so that edits land in headers often.
            let mut all = mixed_captures();
            let tiny: Vec<(u32, u32, &[u8], u32)> = vec![(1, 2, b"ab", 2), (3, 4, b"", 0), (5, 6, b"xyz", 9)];
            all.push(pcap(true, false, 1, 2, &tiny));
            let mut w = Ng::new(false);
            w.idb(ETH, 2, &[(OPT_IF_TSRESOL, vec![3])]);
            w.epb(0, 1, b"abc");
            w.spb(4, b"wxyz");
            w.shb(true);
            w.idb(linktype::RAW, 0, &[]);
            w.pkt(BT_PB, 0, 5, b"q", 1);
            all.push(w.buf);
            let mut bytes = all.swap_remove(which);
            for (at, v) in edits {
                let i = at % bytes.len();
                bytes[i] = v;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut % (bytes.len() + 1));
            }
            let mut big = match reader(&bytes) {
                Ok(r) => r,
                Err(_) => return Ok(()),
            };
            let expect = fills(&mut big, target);
            let src = Dribble { data: bytes, pos: 0, rng: 3 };
            let mut r = CaptureReader::from_reader("t.pcap", Box::new(src)).unwrap();
            proptest::prop_assert_eq!(fills(&mut r, target), expect);
        }
    }

    // ---- real captures ----

    /// (file, packets, first timestamp in ns, sum of captured lengths, link type), all
    /// measured with tshark 4.0 (`tshark -r F -T fields -e frame.number | wc -l`,
    /// `-e frame.time_epoch`, `-e frame.cap_len`) and `capinfos -E` for the link type.
    const REAL: &[(&str, usize, i64, u64, u16)] = &[
        (
            "benign-alexa-app-ndpi.pcapng",
            3103,
            1490976022526783000,
            1171135,
            1,
        ),
        (
            "benign-appletv-browsing-forensicscontest-puzzle3.pcap",
            1778,
            1261973281139183000,
            1508750,
            1,
        ),
        (
            "benign-http-bro-org-browsing-zeek.pcap",
            751,
            1389719041819644000,
            494493,
            1,
        ),
        (
            "benign-http-espn-browsing-chrissanders.pcapng",
            956,
            1270661369782934000,
            652181,
            1,
        ),
        (
            "benign-linux-sll-kakaotalk-ndpi.pcap",
            3203,
            1430069140120551000,
            435792,
            113,
        ),
        (
            "benign-linux-sll2-http-suricata-verify.pcap",
            159,
            1736381483613927000,
            2610421,
            276,
        ),
        (
            "benign-p2p-gnutella-many-failed-peers-ndpi.pcap",
            3905,
            22000,
            578418,
            1,
        ),
        (
            "benign-quic-interop-icmp-icmpv6-unreach-ndpi.pcapng",
            246,
            1603816434507204968,
            242924,
            1,
        ),
        (
            "benign-teams-call-ndpi.pcap",
            1540,
            1587041672419153000,
            679515,
            1,
        ),
        (
            "benign-vlan-icmp-dot1q-zeek.pcap",
            15,
            1213957237965649000,
            1446,
            1,
        ),
        (
            "benign-vlan-syn-retransmit-suricata-verify.pcap",
            254,
            1540604430000524000,
            229244,
            1,
        ),
        (
            "benign-webrtc-stun-icmp-port-unreach-ndpi.pcapng",
            460,
            1636901936040353967,
            48496,
            1,
        ),
        (
            "benign-wikipedia-browsing-zeek.pcap",
            136,
            1300475167096535000,
            25260,
            1,
        ),
        (
            "icmp-host-unreachable-ppa1e.pcap",
            6,
            978435539677000000,
            456,
            1,
        ),
        (
            "icmp-ping-sweep-host-unreachable-sgr.pcap",
            769,
            1655136693384194000,
            39454,
            1,
        ),
        (
            "ip-protocol-scan-icmp-proto-unreach-sgr.pcap",
            252,
            1655136561474463000,
            15664,
            1,
        ),
        (
            "ipv6-syn-icmpv6-no-route-suricata-verify.pcap",
            21,
            1538130792559099000,
            2318,
            1,
        ),
        (
            "masscan-tcp-0-1000-vlan-esnet.pcap",
            1005,
            1566411407841604000,
            64320,
            1,
        ),
        (
            "masscan-udp-0-1000-vlan-esnet.pcap",
            1001,
            1566411437834338000,
            64180,
            1,
        ),
        (
            "nmap-A-port80-icmp-admin-prohibited-esnet.pcap",
            431,
            1596347378734373000,
            110495,
            1,
        ),
        (
            "nmap-ack-scan-evilfingers.pcap",
            2000,
            1231046157858354000,
            114000,
            1,
        ),
        (
            "nmap-connect-scan-evilfingers.pcap",
            9924,
            1231010435577706000,
            605544,
            1,
        ),
        (
            "nmap-fin-scan-evilfingers.pcap",
            2000,
            1231011572401749000,
            114000,
            1,
        ),
        (
            "nmap-ftp-bounce-scan-evilfingers.pcap",
            11115,
            1231050858399993000,
            726240,
            1,
        ),
        (
            "nmap-ip-protocol-scan-icmp-proto-unreach-evilfingers.pcap",
            513,
            1231045346857883000,
            26670,
            1,
        ),
        (
            "nmap-syn-scan-1000ports-mostly-filtered-chrissanders.pcapng",
            2011,
            1278275056274870000,
            116672,
            1,
        ),
        (
            "nmap-syn-scan-3hosts-forensicscontest-puzzle4.pcap",
            13625,
            1265153646956656000,
            875841,
            1,
        ),
        (
            "nmap-syn-scan-evilfingers.pcap",
            2020,
            1231009114958375000,
            119996,
            1,
        ),
        (
            "nmap-udp-scan-icmp-port-unreach-evilfingers.pcap",
            2028,
            1231042114960241000,
            113586,
            1,
        ),
        (
            "nmap-version-scan-7hosts-zeek.pcap",
            547,
            1317146840497541000,
            24420,
            1,
        ),
        (
            "portscan-29syn-unanswered-ppa1e.pcap",
            29,
            1156430125417872000,
            1740,
            1,
        ),
        (
            "repeated-rst-to-one-port-forensicscontest-puzzle6.pcap",
            2554,
            1272497999311284000,
            2330820,
            1,
        ),
        (
            "syn-flood-spoofed-sources-stopddos.pcap",
            37841,
            1619605821099510000,
            2270460,
            1,
        ),
        (
            "syn-portscan-1-10000-scanner-side-only-sgr.pcapng",
            10009,
            1592551774886931000,
            580528,
            1,
        ),
        (
            "synack-reflection-backscatter-stopddos.pcap",
            8000,
            1622865525551136000,
            515475,
            1,
        ),
        (
            "tcp-syn-ping-sweep-256hosts-unanswered-sgr.pcap",
            513,
            1655140427391936000,
            29746,
            1,
        ),
        (
            "tcp-syn-refused-rst-chrissanders.pcapng",
            2,
            1246561549394749000,
            122,
            1,
        ),
        (
            "udp-host-sweep-unanswered-sgr.pcap",
            512,
            1657163103258780000,
            21504,
            1,
        ),
        (
            "xprobe2-tcp-scan-evilfingers.pcap",
            328,
            1234105738774758000,
            19252,
            1,
        ),
        (
            "xprobe2-udp-scan-icmp-port-unreach-evilfingers.pcap",
            304,
            1234105937779581000,
            17404,
            1,
        ),
        (
            "xscan-vuln-scanner-evilfingers.pcap",
            12014,
            1232120502195265000,
            1586926,
            1,
        ),
    ];

    #[test]
    fn real_captures_match_tshark() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/pcaps/real"));
        // CI checks the project out beside ../shared: a missing folder is a
        // broken setup, not a reason to pass.
        let listing = std::fs::read_dir(dir).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (the real captures must sit beside the repo)",
                dir.display()
            )
        });
        let mut names: Vec<String> = listing
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".pcap") || n.ends_with(".pcapng"))
            .collect();
        names.sort();
        let mut table: Vec<&str> = REAL.iter().map(|r| r.0).collect();
        table.sort();
        assert_eq!(
            names,
            table,
            "every capture in {} needs a row in REAL",
            dir.display()
        );

        for &(name, count, first_ts, bytes, link) in REAL {
            let path = dir.join(name);
            let mut r = CaptureReader::open(&path).unwrap();
            assert_eq!(
                r.format(),
                if name.ends_with(".pcapng") {
                    "pcapng"
                } else {
                    "pcap"
                }
            );
            let (mut n, mut sum, mut first) = (0, 0u64, None);
            let mut blk = Block::default();
            loop {
                let res = r.fill(&mut blk, 64 << 10).unwrap();
                for m in &blk.recs {
                    assert!(m.off as usize + m.caplen as usize <= blk.data.len());
                    assert_eq!(m.link, link, "{name}");
                    first.get_or_insert(m.ts);
                    sum += u64::from(m.caplen);
                }
                n += blk.recs.len();
                match res {
                    Fill::More => {}
                    Fill::Eof => break,
                    Fill::Truncated { .. } => panic!("{name}: {res:?}"),
                }
            }
            assert_eq!((n, first, sum), (count, Some(first_ts), bytes), "{name}");
            assert_eq!(Some(r.bytes_consumed()), r.file_size(), "{name}");
        }
    }
}

#[cfg(test)]
mod span_tests {
    use super::*;
    use std::io::Cursor;

    /// Classic pcap, one record per second for 10 s.
    fn ten_seconds() -> Vec<u8> {
        let mut b = vec![
            0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0,
            0,
        ];
        for s in 0..10u32 {
            for v in [s, 0, 20, 20] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            b.extend_from_slice(&[0u8; 20]);
        }
        b
    }

    #[test]
    fn blocks_end_at_the_time_span_whatever_the_byte_target() {
        for target in [1usize << 20, 1000] {
            let mut r =
                CaptureReader::from_reader("t", Box::new(Cursor::new(ten_seconds()))).unwrap();
            r.set_max_span(3_000_000_000);
            let mut blk = Block::default();
            let mut sizes = Vec::new();
            loop {
                let f = r.fill(&mut blk, target).unwrap();
                sizes.push(blk.recs.len());
                if f != Fill::More {
                    break;
                }
            }
            // Records at 0..3 s, 4..7 s, 8..9 s: each block ends with the
            // record 3 s after its first.
            assert_eq!(sizes, vec![4, 4, 2], "target {target}");
        }
    }
}
