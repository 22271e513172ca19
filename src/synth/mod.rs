//! `synth`: a deterministic generator of test and benchmark captures.
//!
//! The same arguments always give a byte-identical file, so tests and
//! benchmarks generate their captures at run time and only small ones are
//! committed (in `pcaps/`).
//!
//! * [`frame`]: builds Ethernet / VLAN / IPv4 / IPv6 / TCP / UDP / ICMP / ARP
//!   frames with valid checksums into one reused buffer.
//! * [`writer`]: buffered pcap (µs or ns) and pcapng writers.
//! * [`profile`]: the traffic scenarios (`golden`, `enterprise`, `flood`,
//!   `multiday`) and the truth they report.
//! * [`rng`]: the seeded PRNG everything draws from.
//!
//! ```no_run
//! use scanwatch::synth::{profile, writer};
//! let mut w = writer::CaptureWriter::create("e.pcap".as_ref(), writer::Format::Pcap, 256)?;
//! let opts = profile::GenOptions { packets: 100_000, seed: 7, snaplen: 256, ..Default::default() };
//! let truth = profile::generate(profile::Profile::Enterprise, &opts, &mut w)?;
//! w.finish()?;
//! println!("{}", serde_json::to_string_pretty(&truth).unwrap());
//! # Ok::<(), std::io::Error>(())
//! ```

pub mod frame;
pub mod profile;
pub mod rng;
pub mod writer;

pub use profile::{GenOptions, Profile, Truth, generate};
pub use writer::{CaptureWriter, Format, Sink};
