//! Capture file writers: classic pcap (microsecond or nanosecond magic) and
//! pcapng (one section, one Ethernet interface with `if_tsresol` = 9).
//!
//! Records are assembled in a private 1 MiB buffer and handed to the underlying
//! writer in large chunks: per packet this is a bounds check and two small
//! copies, which keeps the writer well below the cost of building the frame.
//! Files are written little-endian (readers accept both byte orders).

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::str::FromStr;

/// Where generated packets go: a capture writer, or a test's in-memory checker.
pub trait Sink {
    /// One packet: capture timestamp (ns since the Unix epoch), the captured
    /// bytes, and the length on the wire (`>= data.len()`).
    fn packet(&mut self, ts_ns: i64, data: &[u8], wire_len: usize) -> io::Result<()>;
}

/// Capture file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Classic pcap, microsecond timestamps (magic 0xa1b2c3d4).
    Pcap,
    /// Classic pcap, nanosecond timestamps (magic 0xa1b23c4d).
    PcapNs,
    /// pcapng with nanosecond timestamps.
    PcapNg,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "pcap" | "pcap-us" => Ok(Format::Pcap),
            "pcap-ns" | "pcapns" | "nspcap" => Ok(Format::PcapNs),
            "pcapng" => Ok(Format::PcapNg),
            _ => Err(format!(
                "unknown capture format {s:?} (pcap, pcap-ns, pcapng)"
            )),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Pcap => "pcap",
            Format::PcapNs => "pcap-ns",
            Format::PcapNg => "pcapng",
        })
    }
}

/// pcap magic for microsecond timestamps.
pub const PCAP_MAGIC_US: u32 = 0xa1b2_c3d4;
/// pcap magic for nanosecond timestamps.
pub const PCAP_MAGIC_NS: u32 = 0xa1b2_3c4d;
/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u16 = 1;

const BUF_SIZE: usize = 1 << 20;

/// A buffered pcap / pcapng writer.
pub struct CaptureWriter<W: Write> {
    out: Option<W>,
    buf: Vec<u8>,
    format: Format,
    snaplen: u32,
    packets: u64,
    bytes: u64,
}

impl CaptureWriter<File> {
    /// Create (truncate) `path` and write the file header.
    pub fn create(path: &Path, format: Format, snaplen: u32) -> io::Result<Self> {
        CaptureWriter::new(File::create(path)?, format, snaplen, LINKTYPE_ETHERNET)
    }
}

impl<W: Write> CaptureWriter<W> {
    /// Start a capture on `out`: writes the pcap file header, or the pcapng
    /// section header and interface description. Records longer than `snaplen`
    /// are cut to it (their original length is kept).
    pub fn new(out: W, format: Format, snaplen: u32, linktype: u16) -> io::Result<Self> {
        assert!(snaplen > 0, "snaplen must be positive");
        let mut w = CaptureWriter {
            out: Some(out),
            buf: Vec::with_capacity(BUF_SIZE),
            format,
            snaplen,
            packets: 0,
            bytes: 0,
        };
        match format {
            Format::Pcap | Format::PcapNs => {
                let magic = if format == Format::Pcap {
                    PCAP_MAGIC_US
                } else {
                    PCAP_MAGIC_NS
                };
                let b = &mut w.buf;
                b.extend_from_slice(&magic.to_le_bytes());
                b.extend_from_slice(&2u16.to_le_bytes()); // version 2.4
                b.extend_from_slice(&4u16.to_le_bytes());
                b.extend_from_slice(&0i32.to_le_bytes()); // thiszone
                b.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
                b.extend_from_slice(&snaplen.to_le_bytes());
                b.extend_from_slice(&(linktype as u32).to_le_bytes());
            }
            Format::PcapNg => {
                // Section header block, with shb_userappl naming the generator.
                let app = b"scanwatch-synth";
                let app_pad = app.len().div_ceil(4) * 4;
                let len = 28 + 4 + app_pad + 4;
                let b = &mut w.buf;
                b.extend_from_slice(&0x0a0d_0d0au32.to_le_bytes());
                b.extend_from_slice(&(len as u32).to_le_bytes());
                b.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
                b.extend_from_slice(&1u16.to_le_bytes());
                b.extend_from_slice(&0u16.to_le_bytes());
                b.extend_from_slice(&(-1i64).to_le_bytes()); // section length unknown
                b.extend_from_slice(&4u16.to_le_bytes()); // shb_userappl
                b.extend_from_slice(&(app.len() as u16).to_le_bytes());
                b.extend_from_slice(app);
                b.resize(b.len() + app_pad - app.len(), 0);
                b.extend_from_slice(&[0; 4]); // opt_endofopt
                b.extend_from_slice(&(len as u32).to_le_bytes());

                // Interface description block: link type, snaplen, if_tsresol=9
                // (timestamps in nanoseconds).
                let len = 20 + 8 + 4;
                b.extend_from_slice(&1u32.to_le_bytes());
                b.extend_from_slice(&(len as u32).to_le_bytes());
                b.extend_from_slice(&linktype.to_le_bytes());
                b.extend_from_slice(&0u16.to_le_bytes());
                b.extend_from_slice(&snaplen.to_le_bytes());
                b.extend_from_slice(&9u16.to_le_bytes()); // if_tsresol
                b.extend_from_slice(&1u16.to_le_bytes());
                b.extend_from_slice(&[9, 0, 0, 0]);
                b.extend_from_slice(&[0; 4]); // opt_endofopt
                b.extend_from_slice(&(len as u32).to_le_bytes());
            }
        }
        Ok(w)
    }

    /// Append one record. `data` longer than the snaplen is cut; `orig_len` is
    /// the length on the wire (raised to `data.len()` if smaller).
    #[inline]
    pub fn write_packet(&mut self, ts_ns: i64, data: &[u8], orig_len: usize) -> io::Result<()> {
        debug_assert!(ts_ns >= 0, "timestamps before 1970 are not representable");
        let data = &data[..data.len().min(self.snaplen as usize)];
        let orig = orig_len.max(data.len()) as u32;
        let caplen = data.len() as u32;
        if self.buf.len() + data.len() + 36 > BUF_SIZE {
            self.flush_buf()?;
        }
        let ts = ts_ns as u64;
        let b = &mut self.buf;
        match self.format {
            Format::Pcap | Format::PcapNs => {
                let sec = (ts / 1_000_000_000) as u32;
                let frac = (ts % 1_000_000_000) as u32;
                let frac = if self.format == Format::Pcap {
                    frac / 1000
                } else {
                    frac
                };
                let mut h = [0u8; 16];
                h[0..4].copy_from_slice(&sec.to_le_bytes());
                h[4..8].copy_from_slice(&frac.to_le_bytes());
                h[8..12].copy_from_slice(&caplen.to_le_bytes());
                h[12..16].copy_from_slice(&orig.to_le_bytes());
                b.extend_from_slice(&h);
                b.extend_from_slice(data);
            }
            Format::PcapNg => {
                let pad = (4 - data.len() % 4) % 4;
                let len = (32 + data.len() + pad) as u32;
                let mut h = [0u8; 28];
                h[0..4].copy_from_slice(&6u32.to_le_bytes()); // enhanced packet block
                h[4..8].copy_from_slice(&len.to_le_bytes());
                // h[8..12]: interface 0
                h[12..16].copy_from_slice(&((ts >> 32) as u32).to_le_bytes());
                h[16..20].copy_from_slice(&(ts as u32).to_le_bytes());
                h[20..24].copy_from_slice(&caplen.to_le_bytes());
                h[24..28].copy_from_slice(&orig.to_le_bytes());
                b.extend_from_slice(&h);
                b.extend_from_slice(data);
                b.extend_from_slice(&[0u8; 3][..pad]);
                b.extend_from_slice(&len.to_le_bytes());
            }
        }
        self.packets += 1;
        Ok(())
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        if let Some(out) = self.out.as_mut() {
            out.write_all(&self.buf)?;
        }
        self.bytes += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Packets written so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Bytes written so far (file header included).
    pub fn bytes(&self) -> u64 {
        self.bytes + self.buf.len() as u64
    }

    /// Flush everything and return the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.flush_buf()?;
        let mut out = self.out.take().expect("writer present until finish");
        out.flush()?;
        Ok(out)
    }
}

impl<W: Write> Drop for CaptureWriter<W> {
    /// Best-effort flush when `finish` was not called (errors are lost then).
    fn drop(&mut self) {
        if self.out.is_some() {
            let _ = self.flush_buf();
            if let Some(out) = self.out.as_mut() {
                let _ = out.flush();
            }
        }
    }
}

impl<W: Write> Sink for CaptureWriter<W> {
    #[inline]
    fn packet(&mut self, ts_ns: i64, data: &[u8], wire_len: usize) -> io::Result<()> {
        self.write_packet(ts_ns, data, wire_len)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One record read back by hand: (timestamp ns, captured bytes, orig_len).
    pub(crate) type Rec = (i64, Vec<u8>, u32);

    fn u16le(b: &[u8], o: usize) -> u16 {
        u16::from_le_bytes([b[o], b[o + 1]])
    }
    fn u32le(b: &[u8], o: usize) -> u32 {
        u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
    }

    /// Parse a little-endian pcap or pcapng file as written above, checking the
    /// structure strictly. Returns (snaplen, records).
    pub(crate) fn read_capture(b: &[u8]) -> (u32, Vec<Rec>) {
        let magic = u32le(b, 0);
        let mut recs = Vec::new();
        if magic == PCAP_MAGIC_US || magic == PCAP_MAGIC_NS {
            assert_eq!((u16le(b, 4), u16le(b, 6)), (2, 4));
            let snaplen = u32le(b, 16);
            assert_eq!(u32le(b, 20), 1, "linktype");
            let mut o = 24;
            while o < b.len() {
                let sec = u32le(b, o) as i64;
                let frac = u32le(b, o + 4) as i64;
                let cap = u32le(b, o + 8) as usize;
                let orig = u32le(b, o + 12);
                assert!(cap <= snaplen as usize && cap as u32 <= orig);
                let ts = sec * 1_000_000_000
                    + if magic == PCAP_MAGIC_US {
                        frac * 1000
                    } else {
                        frac
                    };
                recs.push((ts, b[o + 16..o + 16 + cap].to_vec(), orig));
                o += 16 + cap;
            }
            assert_eq!(o, b.len(), "trailing bytes");
            (snaplen, recs)
        } else {
            assert_eq!(magic, 0x0a0d_0d0a, "not pcap or pcapng");
            let mut o = 0;
            let mut snaplen = 0;
            let mut tsresol = 6;
            while o < b.len() {
                let ty = u32le(b, o);
                let len = u32le(b, o + 4) as usize;
                assert!(len.is_multiple_of(4) && len >= 12, "block length {len}");
                assert_eq!(u32le(b, o + len - 4) as usize, len, "trailing length");
                match ty {
                    0x0a0d_0d0a => assert_eq!(u32le(b, o + 8), 0x1a2b_3c4d),
                    1 => {
                        assert_eq!(u16le(b, o + 8), 1);
                        snaplen = u32le(b, o + 12);
                        let mut p = o + 16;
                        while p < o + len - 4 {
                            let (code, olen) = (u16le(b, p), u16le(b, p + 2) as usize);
                            if code == 9 {
                                tsresol = b[p + 4];
                            }
                            if code == 0 {
                                break;
                            }
                            p += 4 + olen.div_ceil(4) * 4;
                        }
                    }
                    6 => {
                        assert_eq!(tsresol, 9);
                        let ts = ((u32le(b, o + 12) as u64) << 32) | u32le(b, o + 16) as u64;
                        let cap = u32le(b, o + 20) as usize;
                        let orig = u32le(b, o + 24);
                        assert!(cap <= snaplen as usize && cap as u32 <= orig);
                        assert!(28 + cap.div_ceil(4) * 4 + 4 == len);
                        recs.push((ts as i64, b[o + 28..o + 28 + cap].to_vec(), orig));
                    }
                    other => panic!("unexpected block type {other:#x}"),
                }
                o += len;
            }
            (snaplen, recs)
        }
    }

    fn sample(format: Format, snaplen: u32) -> Vec<u8> {
        let mut w = CaptureWriter::new(Vec::new(), format, snaplen, LINKTYPE_ETHERNET).unwrap();
        w.write_packet(1_709_287_200_123_456_789, &[1u8; 60], 60)
            .unwrap();
        w.write_packet(1_709_287_201_000_000_001, &[2u8; 101], 1514)
            .unwrap();
        w.write_packet(1_709_287_202_999_999_999, &[3u8; 300], 300)
            .unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn pcap_and_pcapng_read_back() {
        for format in [Format::Pcap, Format::PcapNs, Format::PcapNg] {
            let bytes = sample(format, 256);
            let (snaplen, recs) = read_capture(&bytes);
            assert_eq!(snaplen, 256);
            assert_eq!(recs.len(), 3);
            let us = format == Format::Pcap;
            assert_eq!(
                recs[0].0,
                if us {
                    1_709_287_200_123_456_000
                } else {
                    1_709_287_200_123_456_789
                }
            );
            assert_eq!((recs[0].1.len(), recs[0].2), (60, 60));
            assert_eq!((recs[1].1.len(), recs[1].2), (101, 1514));
            // Cut at the snaplen, original length kept.
            assert_eq!((recs[2].1.len(), recs[2].2), (256, 300));
            assert!(recs[2].1.iter().all(|&b| b == 3));
        }
    }

    #[test]
    fn large_output_crosses_buffer_boundaries() {
        let mut w =
            CaptureWriter::new(Vec::new(), Format::PcapNg, 1600, LINKTYPE_ETHERNET).unwrap();
        let n = 3 * BUF_SIZE / 1000;
        for i in 0..n {
            w.write_packet(i as i64 * 1000, &vec![i as u8; 997], 997)
                .unwrap();
        }
        let bytes = w.finish().unwrap();
        let (_, recs) = read_capture(&bytes);
        assert_eq!(recs.len(), n);
        assert!(
            recs.iter()
                .enumerate()
                .all(|(i, r)| r.1.len() == 997 && r.1[0] == i as u8)
        );
    }

    #[test]
    fn format_names() {
        assert_eq!("pcapng".parse::<Format>().unwrap(), Format::PcapNg);
        assert_eq!("pcap".parse::<Format>().unwrap(), Format::Pcap);
        assert_eq!("pcap-ns".parse::<Format>().unwrap(), Format::PcapNs);
        assert!("cap".parse::<Format>().is_err());
    }
}
