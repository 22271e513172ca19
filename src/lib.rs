//! scanwatch: find network reconnaissance through failed connections.
//!
//! The pipeline, one module per stage:
//!
//! ```text
//! capture  ->  decode  ->  track  ->  output
//! (pcap,       (frame ->   (attempts,  (JSON events,
//!  pcapng)      Summary)    outcomes)   sinks)
//! ```
//!
//! [`pipeline`] runs the stages on threads; [`synth`] generates the captures
//! the tests and benchmarks use.
pub mod capture;
pub mod decode;
pub mod output;
pub mod pipeline;
pub mod synth;
pub mod track;
