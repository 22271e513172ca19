//! Placeholder: the pcap / pcapng reader lands here.
