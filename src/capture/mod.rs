//! Packet sources: capture files (pcap, pcapng) read into record-aligned blocks.
//!
//! A [`Block`] is a run of raw records copied from the file in one piece, plus an
//! index ([`RecordMeta`]) of where each packet's bytes start, its timestamp and its
//! link type. Blocks are the unit of work that flows to the decode workers; the
//! records in a block depend only on the file's content and the block size, never
//! on how many bytes a `read(2)` call happened to return, so replay is deterministic.

pub mod file;
pub mod live;

pub use file::{CaptureError, CaptureReader, Fill};

/// Link-layer header types we decode (LINKTYPE_* values from tcpdump.org).
pub mod linktype {
    /// BSD loopback: 4-byte address family in the byte order of the capturing host.
    pub const NULL: u16 = 0;
    /// Ethernet (DLT_EN10MB).
    pub const ETHERNET: u16 = 1;
    /// Raw IP as written by some BSDs (DLT_RAW = 12 on most, 14 on OpenBSD).
    pub const RAW_BSD: u16 = 12;
    /// Raw IP, OpenBSD's DLT_RAW value.
    pub const RAW_OPENBSD: u16 = 14;
    /// Raw IP (LINKTYPE_RAW).
    pub const RAW: u16 = 101;
    /// OpenBSD loopback: 4-byte address family in network byte order.
    pub const LOOP: u16 = 108;
    /// Linux cooked capture v1 (16-byte header).
    pub const LINUX_SLL: u16 = 113;
    /// Raw IPv4.
    pub const IPV4: u16 = 228;
    /// Raw IPv6.
    pub const IPV6: u16 = 229;
    /// Linux cooked capture v2 (20-byte header).
    pub const LINUX_SLL2: u16 = 276;

    /// Whether the decoder understands this link type.
    pub fn is_supported(lt: u32) -> bool {
        matches!(lt, 0 | 1 | 12 | 14 | 101 | 108 | 113 | 228 | 229 | 276)
    }

    /// A short name for messages ("EN10MB", "LINUX_SLL2", ...).
    pub fn name(lt: u32) -> &'static str {
        match lt {
            0 => "NULL",
            1 => "EN10MB",
            12 | 14 | 101 => "RAW",
            108 => "LOOP",
            113 => "LINUX_SLL",
            228 => "IPV4",
            229 => "IPV6",
            276 => "LINUX_SLL2",
            _ => "unknown",
        }
    }
}

/// Where one packet lies inside a [`Block`]'s data, and when it was captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordMeta {
    /// Capture timestamp, nanoseconds since the Unix epoch (UTC).
    pub ts: i64,
    /// Offset of the first packet byte (the link-layer header) in `Block::data`.
    pub off: u32,
    /// Bytes captured (present in `Block::data`).
    pub caplen: u32,
    /// Length of the packet on the wire (may exceed `caplen` after snaplen truncation).
    pub origlen: u32,
    /// Link-layer header type of this packet (pcapng interfaces may differ).
    pub link: u16,
}

/// A run of records read from one capture file.
#[derive(Debug, Default)]
pub struct Block {
    /// Raw bytes as read from the file; `recs` point into it.
    pub data: Vec<u8>,
    /// One entry per packet, in file order.
    pub recs: Vec<RecordMeta>,
}

impl Block {
    /// The captured bytes of record `i`.
    ///
    /// # Panics
    /// Never for records produced by the reader: it checks that every record lies
    /// inside `data` before indexing it.
    #[inline]
    pub fn packet(&self, r: &RecordMeta) -> &[u8] {
        &self.data[r.off as usize..(r.off + r.caplen) as usize]
    }

    /// Empty the block for reuse, keeping its allocations.
    pub fn clear(&mut self) {
        self.data.clear();
        self.recs.clear();
    }
}
