//! scanwatch: find network reconnaissance through failed connections.
//!
//! The pipeline, one module per stage:
//!
//! ```text
//! capture  ->  decode  ->  track  ->  analyze  ->  output
//! (pcap,       (frame ->   (attempts,  (inventory,   (JSON events and
//!  pcapng,      Summary)    outcomes)   detector,     alerts, syslog)
//!  live)                                alerts)
//! ```
//!
//! [`pipeline`] runs the stages on threads; [`state`] persists the analytics;
//! [`config`] reads the settings; [`synth`] generates the captures the tests
//! and benchmarks use.
pub mod analyze;
pub mod capture;
pub mod config;
pub mod daemon;
pub mod decode;
pub mod inventory;
pub mod output;
pub mod pipeline;
pub mod state;
pub mod synth;
pub mod track;
