//! scanwatch: find network reconnaissance through failed connections.
//!
//! The pipeline, one module per stage:
//!
//! ```text
//! capture  ->  decode  ->  track  ->  output
//! (pcap,       (frame ->   (attempts,  (JSON events,
//!  pcapng)      Summary)    outcomes)   sinks)
//! ```
pub mod capture;
pub mod synth;
