//! Decoder tests: real frames from ../shared/pcaps/real (bytes copied with tshark -x,
//! file and frame number above each) and frames built with etherparse for cases
//! no real capture holds (QinQ, IPv6 extension headers, fragments, stealth probes).

use super::*;
use crate::capture::linktype;

// nmap-syn-scan-evilfingers.pcap frame 1 (eth:ethertype:ip:tcp), 58 bytes
const SYN_NMAP: [u8; 58] = [
    0x00, 0x0c, 0x29, 0x86, 0xc8, 0x36, 0x00, 0x1a, 0x4b, 0x6a, 0xce, 0xfe, 0x08, 0x00, 0x45, 0x00,
    0x00, 0x2c, 0x25, 0x95, 0x00, 0x00, 0x39, 0x06, 0xd8, 0xc3, 0xc0, 0xa8, 0x01, 0x0a, 0xc0, 0xa8,
    0x01, 0x19, 0x8a, 0xaf, 0x06, 0xbb, 0x19, 0x6f, 0x41, 0x98, 0x00, 0x00, 0x00, 0x00, 0x60, 0x02,
    0x08, 0x00, 0x20, 0x41, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4,
];

// nmap-syn-scan-evilfingers.pcap frame 10 (eth:ethertype:ip:tcp), 60 bytes
const RSTACK_NMAP: [u8; 60] = [
    0x00, 0x1a, 0x4b, 0x6a, 0xce, 0xfe, 0x00, 0x0c, 0x29, 0x86, 0xc8, 0x36, 0x08, 0x00, 0x45, 0x00,
    0x00, 0x28, 0x32, 0xd0, 0x00, 0x00, 0x80, 0x06, 0x84, 0x8c, 0xc0, 0xa8, 0x01, 0x19, 0xc0, 0xa8,
    0x01, 0x0a, 0x06, 0xbb, 0x8a, 0xaf, 0x00, 0x00, 0x00, 0x00, 0x19, 0x6f, 0x41, 0x99, 0x50, 0x14,
    0x00, 0x00, 0x3f, 0xea, 0x00, 0x00, 0x00, 0x00, 0x01, 0x07, 0xff, 0x53,
];

// ipv6-syn-icmpv6-no-route-suricata-verify.pcap frame 2 (eth:ethertype:ipv6:icmpv6:ipv6:tcp), 146 bytes
const ICMPV6_NOROUTE: [u8; 146] = [
    0x0c, 0x4d, 0xe9, 0xc5, 0x74, 0xdc, 0x64, 0x00, 0x6a, 0x5b, 0x8e, 0xb3, 0x86, 0xdd, 0x60, 0x08,
    0xc0, 0x4f, 0x00, 0x5c, 0x3a, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00, 0x30, 0x6e,
    0x73, 0x9d, 0xde, 0xa6, 0x99, 0xa4, 0x01, 0x00, 0x2b, 0x0d, 0x00, 0x00, 0x00, 0x00, 0x60, 0x01,
    0xf5, 0x52, 0x00, 0x2c, 0x06, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00, 0x30, 0x6e,
    0x73, 0x9d, 0xde, 0xa6, 0x99, 0xa4, 0x20, 0x01, 0x16, 0xb8, 0x47, 0x00, 0xeb, 0x60, 0x3a, 0x10,
    0xd5, 0xff, 0xfe, 0x4e, 0xab, 0xe6, 0xd3, 0x60, 0x01, 0xbb, 0xc3, 0xef, 0x9f, 0x6b, 0x00, 0x00,
    0x00, 0x00, 0xb0, 0x02, 0xff, 0xff, 0x08, 0x44, 0x00, 0x00, 0x02, 0x04, 0x05, 0xa0, 0x01, 0x03,
    0x03, 0x06, 0x01, 0x01, 0x08, 0x0a, 0x26, 0x3f, 0x62, 0xa5, 0x00, 0x00, 0x00, 0x00, 0x04, 0x02,
    0x00, 0x00,
];

// nmap-udp-scan-icmp-port-unreach-evilfingers.pcap frame 11 (eth:ethertype:ip:icmp:ip:udp), 70 bytes
const ICMP_PORT_UNREACH: [u8; 70] = [
    0x00, 0x1a, 0x4b, 0x6a, 0xce, 0xfe, 0x00, 0x0c, 0x29, 0x86, 0xc8, 0x36, 0x08, 0x00, 0x45, 0x00,
    0x00, 0x38, 0x6d, 0x95, 0x00, 0x00, 0x80, 0x01, 0x49, 0xbc, 0xc0, 0xa8, 0x01, 0x19, 0xc0, 0xa8,
    0x01, 0x0a, 0x03, 0x03, 0x80, 0x8a, 0x00, 0x00, 0x00, 0x00, 0x45, 0x00, 0x00, 0x1c, 0xea, 0xf8,
    0x00, 0x00, 0x3a, 0x11, 0x12, 0x65, 0xc0, 0xa8, 0x01, 0x0a, 0xc0, 0xa8, 0x01, 0x19, 0xf2, 0x49,
    0x6e, 0xd1, 0x00, 0x08, 0x1b, 0x4f,
];

// masscan-tcp-0-1000-vlan-esnet.pcap frame 1 (eth:ethertype:vlan:ethertype:ip:tcp), 64 bytes
const SYN_VLAN_MASSCAN: [u8; 64] = [
    0x40, 0x7c, 0x7d, 0xb1, 0xe9, 0xb7, 0x00, 0x24, 0x38, 0x98, 0xcb, 0x00, 0x81, 0x00, 0x03, 0xaf,
    0x08, 0x00, 0x45, 0x00, 0x00, 0x28, 0x9c, 0x44, 0x00, 0x00, 0xfc, 0x06, 0x08, 0x7a, 0xac, 0x1f,
    0x0f, 0x66, 0xc6, 0x7c, 0x98, 0x0f, 0xc8, 0xce, 0x02, 0xb9, 0x7d, 0xba, 0x06, 0xf2, 0x00, 0x00,
    0x00, 0x00, 0x50, 0x02, 0x04, 0x00, 0x41, 0x9d, 0x00, 0x00, 0x00, 0x00, 0x16, 0x31, 0xee, 0xb5,
];

// benign-linux-sll2-http-suricata-verify.pcap frame 1 (sll:ethertype:ip:tcp), 80 bytes
const SYN_SLL2: [u8; 80] = [
    0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 0x04, 0x06, 0xaa, 0x76, 0x30, 0x71,
    0xb0, 0xe7, 0x00, 0x00, 0x45, 0x00, 0x00, 0x3c, 0x45, 0xa9, 0x40, 0x00, 0x40, 0x06, 0x70, 0xb0,
    0xc0, 0xa8, 0x01, 0xfd, 0xc0, 0xa8, 0x01, 0x15, 0xdc, 0x9e, 0x00, 0x50, 0x8b, 0x0b, 0x43, 0x93,
    0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa, 0xf0, 0xd7, 0x0c, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4,
    0x04, 0x02, 0x08, 0x0a, 0xc5, 0xbe, 0x80, 0x53, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
];

// benign-linux-sll-kakaotalk-ndpi.pcap frame 17 (sll:ethertype:ip:tcp), 76 bytes
const SYN_SLL: [u8; 76] = [
    0x00, 0x04, 0x02, 0x12, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00,
    0x45, 0x00, 0x00, 0x3c, 0xd4, 0xbd, 0x40, 0x00, 0x3f, 0x06, 0xaa, 0x85, 0x0a, 0x18, 0x52, 0xbc,
    0xcb, 0xcd, 0x93, 0xd7, 0xbd, 0x69, 0x00, 0x50, 0x8f, 0x12, 0xe9, 0x9e, 0x00, 0x00, 0x00, 0x00,
    0xa0, 0x02, 0x36, 0xb0, 0xe1, 0x79, 0x00, 0x00, 0x02, 0x04, 0x05, 0x78, 0x04, 0x02, 0x08, 0x0a,
    0x00, 0x0b, 0x3d, 0x23, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
];

// icmp-ping-sweep-host-unreachable-sgr.pcap frame 125 (eth:ethertype:ip:icmp:ip:icmp), 70 bytes
const ICMP_HOST_UNREACH_ECHO: [u8; 70] = [
    0x00, 0x0c, 0x29, 0x20, 0xa8, 0x7f, 0x00, 0x50, 0x56, 0xf0, 0x9d, 0xfe, 0x08, 0x00, 0x45, 0x00,
    0x00, 0x38, 0x4f, 0xfc, 0x00, 0x00, 0x80, 0x01, 0xd6, 0x46, 0x0a, 0x00, 0x00, 0x03, 0x0a, 0x00,
    0x00, 0x80, 0x03, 0x01, 0xfc, 0xfe, 0x00, 0x00, 0x00, 0x00, 0x45, 0x00, 0x00, 0x1c, 0xcb, 0x50,
    0x00, 0x00, 0x35, 0x01, 0x50, 0xb1, 0xc0, 0xa8, 0xe7, 0x80, 0xc0, 0xa8, 0x01, 0x0e, 0x08, 0x00,
    0xf6, 0x3b, 0x01, 0xc4, 0x00, 0x00,
];
fn ip(s: &str) -> Addr {
    Addr::from(s.parse::<std::net::IpAddr>().unwrap())
}

fn interesting(d: Decoded) -> Summary {
    match d {
        Decoded::Interesting(s) => s,
        other => panic!("expected an interesting packet, got {other:?}"),
    }
}

#[test]
fn real_syn() {
    let s = interesting(decode(linktype::ETHERNET, 7, &SYN_NMAP));
    assert_eq!(s.ts, 7);
    assert_eq!(s.key.src, ip("192.168.1.10"));
    assert_eq!(s.key.dst, ip("192.168.1.25"));
    assert_eq!(
        (s.key.sport, s.key.dport, s.key.proto),
        (35503, 1723, Proto::Tcp)
    );
    assert_eq!(
        s.what,
        What::Tcp {
            flags: SYN,
            seq: 426721688,
            ack: 0
        }
    );
    assert_eq!(s.vlan, [0, 0]);
}

#[test]
fn real_rst_ack() {
    let s = interesting(decode(linktype::ETHERNET, 0, &RSTACK_NMAP));
    assert_eq!(s.key.src, ip("192.168.1.25"));
    assert_eq!((s.key.sport, s.key.dport), (1723, 35503));
    // RFC 793: the RST answering a SYN acknowledges ISN + 1.
    assert_eq!(
        s.what,
        What::Tcp {
            flags: RST | ACK,
            seq: 0,
            ack: 426721689
        }
    );
}

#[test]
fn real_icmpv6_no_route_full_quote() {
    let s = interesting(decode(linktype::ETHERNET, 0, &ICMPV6_NOROUTE));
    // Keyed by the quoted SYN, prober first.
    assert_eq!(s.key.src, ip("2001:db8:1:0:306e:739d:dea6:99a4"));
    assert_eq!(s.key.dst, ip("2001:16b8:4700:eb60:3a10:d5ff:fe4e:abe6"));
    assert_eq!(
        (s.key.sport, s.key.dport, s.key.proto),
        (54112, 443, Proto::Tcp)
    );
    assert_eq!(
        s.what,
        What::Unreach {
            icmp_type: 1,
            code: 0,
            sender: ip("2001:db8:1::3"),
            quoted_seq: Some(3287261035),
            quoted_flags: Some(SYN),
        }
    );
}

#[test]
fn real_icmp_port_unreachable_udp() {
    let s = interesting(decode(linktype::ETHERNET, 0, &ICMP_PORT_UNREACH));
    assert_eq!(s.key.src, ip("192.168.1.10"));
    assert_eq!(s.key.dst, ip("192.168.1.25"));
    assert_eq!(
        (s.key.sport, s.key.dport, s.key.proto),
        (62025, 28369, Proto::Udp)
    );
    match s.what {
        What::Unreach {
            icmp_type: 3,
            code: 3,
            sender,
            quoted_seq: None,
            ..
        } => assert_eq!(sender, ip("192.168.1.25")),
        w => panic!("{w:?}"),
    }
}

#[test]
fn real_icmp_host_unreachable_quoting_echo() {
    let s = interesting(decode(linktype::ETHERNET, 0, &ICMP_HOST_UNREACH_ECHO));
    assert_eq!(s.key.src, ip("192.168.231.128"));
    assert_eq!(s.key.dst, ip("192.168.1.14"));
    assert_eq!(s.key.proto, Proto::Icmp);
    assert!(matches!(
        s.what,
        What::Unreach {
            icmp_type: 3,
            code: 1,
            ..
        }
    ));
}

#[test]
fn real_vlan_syn() {
    let s = interesting(decode(linktype::ETHERNET, 0, &SYN_VLAN_MASSCAN));
    assert_eq!(s.vlan, [943, 0]);
    assert_eq!(s.key.src, ip("172.31.15.102"));
    assert_eq!((s.key.sport, s.key.dport), (51406, 697));
}

#[test]
fn real_linux_cooked_v1_and_v2() {
    let s = interesting(decode(linktype::LINUX_SLL2, 0, &SYN_SLL2));
    assert_eq!(s.key.src, ip("192.168.1.253"));
    assert_eq!((s.key.sport, s.key.dport), (56478, 80));
    let s = interesting(decode(linktype::LINUX_SLL, 0, &SYN_SLL));
    assert_eq!(s.key.src, ip("10.24.82.188"));
    assert_eq!(s.key.dst, ip("203.205.147.215"));
    assert_eq!((s.key.sport, s.key.dport), (48489, 80));
}

#[test]
fn truncated_tcp_keeps_flags_with_14_bytes() {
    // Ethernet 14 + IPv4 20 + 14 TCP bytes: just enough for the flags.
    let s = interesting(decode(linktype::ETHERNET, 0, &SYN_NMAP[..48]));
    assert!(matches!(s.what, What::Tcp { flags: SYN, .. }));
    // One byte fewer and the flags are gone.
    assert_eq!(
        decode(linktype::ETHERNET, 0, &SYN_NMAP[..47]),
        Decoded::Skip(Skip::Truncated)
    );
}

#[test]
fn every_prefix_of_real_frames_is_safe() {
    let frames: [&[u8]; 8] = [
        &SYN_NMAP,
        &RSTACK_NMAP,
        &ICMPV6_NOROUTE,
        &ICMP_PORT_UNREACH,
        &SYN_VLAN_MASSCAN,
        &SYN_SLL2,
        &SYN_SLL,
        &ICMP_HOST_UNREACH_ECHO,
    ];
    for f in frames {
        for n in 0..f.len() {
            for lt in [0u16, 1, 12, 101, 108, 113, 228, 229, 276, 999] {
                let _ = decode(lt, 0, &f[..n]);
            }
        }
    }
}

// ---- frames built with etherparse ----

use etherparse::PacketBuilder;

fn build_tcp_v4(flags: u8, seq: u32, ack: u32) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(40000, 22, seq, 1024);
    if flags & SYN != 0 {
        b = b.syn();
    }
    if flags & ACK != 0 {
        b = b.ack(ack);
    }
    if flags & RST != 0 {
        b = b.rst();
    }
    if flags & FIN != 0 {
        b = b.fin();
    }
    if flags & PSH != 0 {
        b = b.psh();
    }
    if flags & URG != 0 {
        b = b.urg(0);
    }
    let mut out = Vec::new();
    b.write(&mut out, &[]).unwrap();
    out
}

#[test]
fn fast_reject_established_segments() {
    let ack = build_tcp_v4(ACK, 5, 6);
    match decode(linktype::ETHERNET, 0, &ack) {
        Decoded::Established(k, false) => {
            assert_eq!(
                (k.src, k.dst, k.sport, k.dport),
                (ip("10.0.0.1"), ip("10.0.0.2"), 40000, 22)
            )
        }
        d => panic!("{d:?}"),
    }
    let psh_ack = build_tcp_v4(PSH | ACK, 5, 6);
    assert!(matches!(
        decode(linktype::ETHERNET, 0, &psh_ack),
        Decoded::Established(_, false)
    ));
    // With payload, even when snaplen cut it off: the IP length tells.
    let mut data = Vec::new();
    PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(40000, 22, 5, 1024)
        .ack(6)
        .write(&mut data, &[7; 100])
        .unwrap();
    assert!(matches!(
        decode(linktype::ETHERNET, 0, &data),
        Decoded::Established(_, true)
    ));
    assert!(matches!(
        decode(linktype::ETHERNET, 0, &data[..60]),
        Decoded::Established(_, true)
    ));
    // FIN+ACK closes a connection: kept (it proves the flow was established).
    let fin_ack = build_tcp_v4(FIN | ACK, 5, 6);
    assert!(matches!(
        decode(linktype::ETHERNET, 0, &fin_ack),
        Decoded::Interesting(_)
    ));
}

#[test]
fn stealth_probes_are_kept() {
    for flags in [0, FIN, FIN | PSH | URG] {
        let f = build_tcp_v4(flags, 9, 0);
        let s = interesting(decode(linktype::ETHERNET, 0, &f));
        assert!(matches!(s.what, What::Tcp { flags: fl, .. } if fl == flags));
    }
}

#[test]
fn qinq_both_tags_recorded() {
    let syn = build_tcp_v4(SYN, 1, 0);
    // Insert an outer 802.1ad tag (VLAN 200) and an inner 802.1Q tag (VLAN 300).
    let mut f = syn[..12].to_vec();
    f.extend_from_slice(&[0x88, 0xa8, 0x00, 200, 0x81, 0x00, 0x01, 0x2c]);
    f.extend_from_slice(&syn[12..]);
    let s = interesting(decode(linktype::ETHERNET, 0, &f));
    assert_eq!(s.vlan, [200, 300]);
    assert_eq!(s.key.dport, 22);
    // The old 0x9100 QinQ ethertype too.
    f[12] = 0x91;
    f[13] = 0x00;
    assert_eq!(
        interesting(decode(linktype::ETHERNET, 0, &f)).vlan,
        [200, 300]
    );
}

#[test]
fn too_many_tags_is_malformed() {
    let syn = build_tcp_v4(SYN, 1, 0);
    let mut f = syn[..12].to_vec();
    for _ in 0..5 {
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x01]);
    }
    f.extend_from_slice(&syn[12..]);
    assert_eq!(
        decode(linktype::ETHERNET, 0, &f),
        Decoded::Skip(Skip::Malformed)
    );
}

#[test]
fn ipv4_options_are_skipped() {
    let syn = build_tcp_v4(SYN, 1, 0);
    // Rebuild the IPv4 header with IHL 6 (4 bytes of NOP options).
    let mut f = syn[..14].to_vec();
    let mut iph = syn[14..34].to_vec();
    iph[0] = 0x46;
    let total = u16::from_be_bytes([iph[2], iph[3]]) + 4;
    iph[2..4].copy_from_slice(&total.to_be_bytes());
    iph.extend_from_slice(&[1, 1, 1, 0]);
    f.extend_from_slice(&iph);
    f.extend_from_slice(&syn[34..]);
    let s = interesting(decode(linktype::ETHERNET, 0, &f));
    assert_eq!((s.key.sport, s.key.dport), (40000, 22));
    assert!(matches!(
        s.what,
        What::Tcp {
            flags: SYN,
            seq: 1,
            ..
        }
    ));
}

#[test]
fn ipv4_fragments() {
    let syn = build_tcp_v4(SYN, 1, 0);
    let mut first = syn.clone();
    first[20] = 0x20; // MF set, offset 0: the transport header is here
    assert!(matches!(
        decode(linktype::ETHERNET, 0, &first),
        Decoded::Interesting(_)
    ));
    let mut later = syn.clone();
    later[20] = 0x00;
    later[21] = 0x10; // offset 16 * 8 bytes
    assert_eq!(
        decode(linktype::ETHERNET, 0, &later),
        Decoded::Skip(Skip::Fragment)
    );
}

fn build_tcp_v6_with_ext(ext: u8, ext_body: &[u8]) -> Vec<u8> {
    // IPv6 header with next header = ext, then the extension header, then a SYN.
    let mut tcp = Vec::new();
    PacketBuilder::ipv6(
        [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
        64,
    )
    .tcp(1234, 443, 77, 1024)
    .syn()
    .write(&mut tcp, &[])
    .unwrap();
    let tcp_seg = &tcp[40..];
    let mut f = vec![2u8; 12];
    f.extend_from_slice(&[0x86, 0xdd]);
    let mut ip6 = tcp[..40].to_vec();
    ip6[6] = ext;
    let plen = (ext_body.len() + 2 + tcp_seg.len()) as u16;
    ip6[4..6].copy_from_slice(&plen.to_be_bytes());
    f.extend_from_slice(&ip6);
    f.push(6); // next header: TCP
    f.extend_from_slice(ext_body);
    f.extend_from_slice(tcp_seg);
    f
}

/// A chain of `n` destination-options headers (8 bytes each) before a SYN.
fn build_tcp_v6_with_ext_chain(n: usize) -> Vec<u8> {
    let one = build_tcp_v6_with_ext(60, &[0, 1, 4, 0, 0, 0, 0]);
    let (head, rest) = one.split_at(14 + 40);
    let (ext, tcp) = rest.split_at(8);
    let mut f = head.to_vec();
    for i in 0..n {
        let mut e = ext.to_vec();
        e[0] = if i + 1 == n { 6 } else { 60 };
        f.extend_from_slice(&e);
    }
    f.extend_from_slice(tcp);
    let plen = (f.len() - 14 - 40) as u16;
    f[18..20].copy_from_slice(&plen.to_be_bytes());
    f
}

/// Up to `MAX_IPV6_EXTENSIONS` (8) extension headers are walked; one more
/// makes the packet malformed (SECURITY.md says 8).
#[test]
fn ipv6_extension_chain_limit() {
    for n in 1..=MAX_IPV6_EXTENSIONS {
        let s = interesting(decode(
            linktype::ETHERNET,
            0,
            &build_tcp_v6_with_ext_chain(n),
        ));
        assert_eq!((s.key.sport, s.key.dport), (1234, 443), "{n} headers");
    }
    assert_eq!(
        decode(
            linktype::ETHERNET,
            0,
            &build_tcp_v6_with_ext_chain(MAX_IPV6_EXTENSIONS + 1)
        ),
        Decoded::Skip(Skip::Malformed)
    );
}

#[test]
fn ipv6_extension_headers() {
    // Hop-by-hop: length 0 → 8 bytes in all (next header, length, 6 bytes of padding).
    let f = build_tcp_v6_with_ext(0, &[0, 1, 4, 0, 0, 0, 0]);
    let s = interesting(decode(linktype::ETHERNET, 0, &f));
    assert_eq!((s.key.sport, s.key.dport), (1234, 443));
    assert!(matches!(
        s.what,
        What::Tcp {
            flags: SYN,
            seq: 77,
            ..
        }
    ));
    // Fragment header with offset 0 (first fragment): decoded.
    let f = build_tcp_v6_with_ext(44, &[0, 0, 1, 0, 0, 0, 1]);
    assert!(matches!(
        decode(linktype::ETHERNET, 0, &f),
        Decoded::Interesting(_)
    ));
    // Fragment header with a nonzero offset: a later fragment.
    let f = build_tcp_v6_with_ext(44, &[0, 0, 0x10, 0, 0, 0, 1]);
    assert_eq!(
        decode(linktype::ETHERNET, 0, &f),
        Decoded::Skip(Skip::Fragment)
    );
}

#[test]
fn icmp_with_8_byte_tcp_quote() {
    // A router's host-unreachable quoting the IPv4 header and exactly 8 TCP bytes.
    let syn = build_tcp_v4(SYN, 0xdeadbeef, 0);
    let quote = &syn[14..14 + 20 + 8];
    let mut f = Vec::new();
    PacketBuilder::ethernet2([3; 6], [1; 6])
        .ipv4([10, 9, 9, 1], [10, 0, 0, 1], 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Host,
        ))
        .write(&mut f, quote)
        .unwrap();
    let s = interesting(decode(linktype::ETHERNET, 0, &f));
    assert_eq!((s.key.src, s.key.dst), (ip("10.0.0.1"), ip("10.0.0.2")));
    assert_eq!((s.key.sport, s.key.dport), (40000, 22));
    assert_eq!(
        s.what,
        What::Unreach {
            icmp_type: 3,
            code: 1,
            sender: ip("10.9.9.1"),
            quoted_seq: Some(0xdeadbeef),
            quoted_flags: None,
        }
    );
    // Seven quoted transport bytes are not enough to key the probe.
    let mut f7 = Vec::new();
    PacketBuilder::ethernet2([3; 6], [1; 6])
        .ipv4([10, 9, 9, 1], [10, 0, 0, 1], 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Host,
        ))
        .write(&mut f7, &syn[14..14 + 27])
        .unwrap();
    assert_eq!(
        decode(linktype::ETHERNET, 0, &f7),
        Decoded::Skip(Skip::IcmpBadQuote)
    );
}

#[test]
fn icmp_frag_needed_is_not_a_failure() {
    let syn = build_tcp_v4(ACK, 1, 1);
    let mut f = Vec::new();
    PacketBuilder::ethernet2([3; 6], [1; 6])
        .ipv4([10, 9, 9, 1], [10, 0, 0, 1], 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
        ))
        .write(&mut f, &syn[14..])
        .unwrap();
    assert_eq!(
        decode(linktype::ETHERNET, 0, &f),
        Decoded::Skip(Skip::IcmpPmtu)
    );
}

#[test]
fn raw_and_loopback_links() {
    let syn = build_tcp_v4(SYN, 1, 0);
    let ipv4 = &syn[14..];
    for lt in [linktype::RAW, linktype::RAW_BSD, linktype::IPV4] {
        assert_eq!(interesting(decode(lt, 0, ipv4)).key.dport, 22, "link {lt}");
    }
    // NULL: AF_INET in either byte order; LOOP: network order.
    for hdr in [[2u8, 0, 0, 0], [0, 0, 0, 2]] {
        let mut f = hdr.to_vec();
        f.extend_from_slice(ipv4);
        assert_eq!(interesting(decode(linktype::NULL, 0, &f)).key.dport, 22);
    }
    let mut f = vec![0, 0, 0, 2];
    f.extend_from_slice(ipv4);
    assert_eq!(interesting(decode(linktype::LOOP, 0, &f)).key.dport, 22);
    // A raw-IP frame whose version nibble is neither 4 nor 6.
    assert_eq!(
        decode(linktype::RAW, 0, &[0x55; 40]),
        Decoded::Skip(Skip::Malformed)
    );
}

#[test]
fn arp_request_reply_and_gratuitous() {
    let mut req = vec![0xffu8; 6];
    req.extend_from_slice(&[1; 6]);
    req.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    req.extend_from_slice(&[1; 6]);
    req.extend_from_slice(&[10, 0, 0, 1]);
    req.extend_from_slice(&[0; 6]);
    req.extend_from_slice(&[10, 0, 0, 77]);
    let s = interesting(decode(linktype::ETHERNET, 0, &req));
    assert_eq!(
        (s.key.src, s.key.dst, s.key.proto),
        (ip("10.0.0.1"), ip("10.0.0.77"), Proto::Arp)
    );
    assert_eq!(s.what, What::Arp { reply: false });
    let mut reply = req.clone();
    reply[21] = 2;
    assert_eq!(
        interesting(decode(linktype::ETHERNET, 0, &reply)).what,
        What::Arp { reply: true }
    );
    let mut grat = req.clone();
    grat[38..42].copy_from_slice(&[10, 0, 0, 1]);
    assert_eq!(
        decode(linktype::ETHERNET, 0, &grat),
        Decoded::Skip(Skip::ArpOther)
    );
}

#[test]
fn udp_and_other_ethertypes_skipped() {
    let mut f = Vec::new();
    PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(5353, 53)
        .write(&mut f, &[0; 12])
        .unwrap();
    assert_eq!(decode(linktype::ETHERNET, 0, &f), Decoded::Skip(Skip::Udp));
    f[12] = 0x88;
    f[13] = 0xcc; // LLDP
    assert_eq!(
        decode(linktype::ETHERNET, 0, &f),
        Decoded::Skip(Skip::NotIp)
    );
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    const LINKS: [u16; 11] = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 999];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Arbitrary bytes never panic the decoder, whatever the link type.
        #[test]
        fn arbitrary_bytes_never_panic(link in prop::sample::select(LINKS.to_vec()), bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(link, 0, &bytes);
        }

        /// A plausible Ethernet/IPv4 or IPv6 header with arbitrary fields and
        /// payload reaches the deeper parsers (ICMP quotes, extension headers).
        #[test]
        fn arbitrary_ip_headers_never_panic(v6 in any::<bool>(), proto in prop::sample::select(vec![1u8, 6, 17, 58, 0, 43, 44, 51, 60]), rest in prop::collection::vec(any::<u8>(), 0..200)) {
            let mut f = vec![0u8; 12];
            if v6 {
                f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
                f.extend_from_slice(&(rest.len() as u16).to_be_bytes());
                f.extend_from_slice(&[proto, 64]);
                f.extend_from_slice(&[0x20; 32]);
            } else {
                f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
                f.extend_from_slice(&((20 + rest.len()) as u16).to_be_bytes());
                f.extend_from_slice(&[0, 0, 0, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
            }
            f.extend_from_slice(&rest);
            let _ = decode(linktype::ETHERNET, 0, &f);
        }
    }
}

/// Found by `cargo fuzz run decode` (fuzz/fuzz_targets/decode.rs): the first
/// byte picks the link type (107 mod 11 = 8: LINUX_SLL), the rest is the
/// frame. It reached a panic inside etherparse's IPv6 extension iterator
/// through an ICMPv6 error's quote.
const FUZZ_CRASH_ICMPV6_QUOTE_EXT: [u8; 119] = [
    107, 107, 107, 4, 0, 0, 209, 1, 0, 107, 107, 107, 114, 107, 0, 0, 0, 107, 107, 168, 107, 3, 0,
    0, 49, 255, 209, 107, 0, 255, 138, 107, 0, 17, 0, 0, 204, 107, 107, 171, 107, 3, 0, 0, 107, 0,
    0, 0, 107, 107, 168, 107, 3, 253, 0, 0, 49, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 209, 107, 0, 255, 138, 107, 0, 17, 0, 0, 204, 107, 107, 171, 107,
    3, 0, 0, 0, 0, 155, 0, 0, 75, 75, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45,
    45, 45, 45, 47, 75, 75,
];

#[test]
fn fuzz_regression_icmpv6_quote_with_truncated_extension() {
    let (sel, frame) = FUZZ_CRASH_ICMPV6_QUOTE_EXT.split_first().unwrap();
    let links = [0u16, 1, 12, 14, 101, 108, 113, 228, 229, 276, 999];
    let _ = decode(links[*sel as usize % links.len()], 0, frame);
}

/// `::ffff:a.b.c.d` is how `Addr` holds IPv4: an IPv6 packet carrying one
/// must not be read as the IPv4 host's (a forged "proof" that it is alive,
/// or a scan charged to it), whether in the packet's own header or in the
/// header an ICMPv6 error quotes.
#[test]
fn ipv6_with_ipv4_mapped_addresses_is_skipped() {
    let mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1];
    // Offsets in ICMPV6_NOROUTE: IPv6 header at 14 (source 22, destination
    // 38), ICMPv6 at 54, the quoted IPv6 header at 62 (source 70,
    // destination 86).
    for (at, want) in [
        (22, Skip::V4Mapped),
        (38, Skip::V4Mapped),
        (70, Skip::IcmpBadQuote),
        (86, Skip::IcmpBadQuote),
    ] {
        let mut f = ICMPV6_NOROUTE;
        // Unchanged, the frame decodes (the test below it would pass for a
        // frame that never did).
        assert!(matches!(
            decode(linktype::ETHERNET, 0, &f),
            Decoded::Interesting(_)
        ));
        f[at..at + 16].copy_from_slice(&mapped);
        assert_eq!(
            decode(linktype::ETHERNET, 0, &f),
            Decoded::Skip(want),
            "mapped address at {at}"
        );
    }
    // A SYN and an ACK from ::ffff:10.0.0.1 with the well-known
    // IPv4-compatible neighbours (`::a00:1`, `::ffff:0:a00:1`) decoding as
    // the IPv6 addresses they are.
    let frame = |src: [u8; 16], flags: u8| {
        let mut f = build_tcp_v6_with_ext(60, &[0, 1, 4, 0, 0, 0, 0]);
        f[22..38].copy_from_slice(&src);
        f[14 + 40 + 8 + 13] = flags;
        f
    };
    for flags in [SYN, ACK] {
        assert_eq!(
            decode(linktype::ETHERNET, 0, &frame(mapped, flags)),
            Decoded::Skip(Skip::V4Mapped)
        );
    }
    let mut compat = mapped;
    compat[10..12].copy_from_slice(&[0, 0]);
    let mut translated = mapped;
    translated[8..10].copy_from_slice(&[0xff, 0xff]);
    translated[10..12].copy_from_slice(&[0, 0]);
    for a in [compat, translated] {
        let s = interesting(decode(linktype::ETHERNET, 0, &frame(a, SYN)));
        assert_eq!(s.key.src, Addr::v6(a));
        assert!(!s.key.src.is_v4());
    }
}

/// An ICMP error quotes a packet of its own family and travels in it
/// (RFC 792, RFC 4443). A quote of the other family, or ICMPv6 carried by
/// IPv4 (ICMP by IPv6), would charge a flow to hosts of a family the error
/// never came from: a bad quote, as the IPv4-mapped addresses above.
#[test]
fn icmp_errors_of_the_other_family_are_bad_quotes() {
    // The real frames decode (the checks below would pass for frames that
    // never did).
    for f in [&ICMP_PORT_UNREACH[..], &ICMPV6_NOROUTE[..]] {
        assert!(matches!(
            decode(linktype::ETHERNET, 0, f),
            Decoded::Interesting(_)
        ));
    }
    // ICMPv4 (IPv4 at 14, ICMP at 34) quoting the IPv6 packet of the
    // ICMPv6 frame (its quote at 62), the IPv4 total length mended.
    let mut v4_quoting_v6 = ICMP_PORT_UNREACH[..42].to_vec();
    v4_quoting_v6.extend_from_slice(&ICMPV6_NOROUTE[62..]);
    let total = (v4_quoting_v6.len() - 14) as u16;
    v4_quoting_v6[16..18].copy_from_slice(&total.to_be_bytes());
    // ICMPv6 (IPv6 at 14, ICMPv6 at 54) quoting the IPv4 packet of the
    // ICMP frame (its quote at 42), the IPv6 payload length mended.
    let mut v6_quoting_v4 = ICMPV6_NOROUTE[..62].to_vec();
    v6_quoting_v4.extend_from_slice(&ICMP_PORT_UNREACH[42..]);
    let payload = (v6_quoting_v4.len() - 54) as u16;
    v6_quoting_v4[18..20].copy_from_slice(&payload.to_be_bytes());
    // ICMPv6 in IPv4 (protocol 58, type 1) and ICMP in IPv6 (next header
    // 1, type 3), each quoting its own family's packet.
    let mut icmpv6_in_v4 = ICMP_PORT_UNREACH.to_vec();
    (icmpv6_in_v4[23], icmpv6_in_v4[34]) = (58, 1);
    let mut icmp_in_v6 = ICMPV6_NOROUTE.to_vec();
    (icmp_in_v6[20], icmp_in_v6[54]) = (1, 3);
    for (name, f) in [
        ("ICMPv4 quoting IPv6", &v4_quoting_v6),
        ("ICMPv6 quoting IPv4", &v6_quoting_v4),
        ("ICMPv6 in IPv4", &icmpv6_in_v4),
        ("ICMPv4 in IPv6", &icmp_in_v6),
    ] {
        assert_eq!(
            decode(linktype::ETHERNET, 0, f),
            Decoded::Skip(Skip::IcmpBadQuote),
            "{name}"
        );
    }
}

/// The workers count skips in an array indexed by `Skip as usize` and the
/// summary names them through `Skip::ALL`: the two orders must agree, and
/// every reason have its own name.
#[test]
fn skip_reasons_index_their_counters() {
    for (i, s) in Skip::ALL.iter().enumerate() {
        assert_eq!(*s as usize, i, "{s:?}");
    }
    let names: std::collections::HashSet<&str> = Skip::ALL.iter().map(|s| s.name()).collect();
    assert_eq!(names.len(), Skip::ALL.len());
}

/// An ICMP error about an ICMP error or an answer is no probe: RFC 1122
/// §3.2.2 and RFC 4443 §2.4 forbid errors about errors, and a host
/// unreachable quoting an echo reply (a server answering pings from
/// spoofed sources) would otherwise frame that server as a scanner. Errors
/// about requests (a ping sweep's echo requests) remain probes. Built from
/// the real frames: ICMP_PORT_UNREACH quotes IPv4 at 42 (protocol at 51,
/// transport at 62); ICMPV6_NOROUTE quotes IPv6 at 62 (next header at 68,
/// transport at 102).
#[test]
fn icmp_errors_about_errors_or_answers_are_not_probes() {
    let v4 = |ty: u8| {
        let mut f = ICMP_PORT_UNREACH.to_vec();
        (f[51], f[62]) = (1, ty);
        decode(linktype::ETHERNET, 0, &f)
    };
    let v6 = |ty: u8| {
        let mut f = ICMPV6_NOROUTE.to_vec();
        (f[68], f[102]) = (58, ty);
        decode(linktype::ETHERNET, 0, &f)
    };
    // Echo reply, unreachable, source quench, redirect, time exceeded,
    // parameter problem, timestamp reply, router advertisement.
    for ty in [0, 3, 4, 5, 11, 12, 14, 9] {
        assert_eq!(v4(ty), Decoded::Skip(Skip::IcmpNotProbe), "ICMP type {ty}");
    }
    // Echo, timestamp, information and address mask requests, router
    // solicitation, extended echo request, a type unknown here: probes.
    for ty in [8, 13, 15, 17, 10, 42, 50] {
        let s = interesting(v4(ty));
        assert_eq!(s.key.proto, Proto::Icmp, "ICMP type {ty}");
        assert_eq!(s.key.dst, ip("192.168.1.25"), "ICMP type {ty}");
    }
    // ICMPv6 errors (1-4), echo reply, neighbour advertisement, MLDv2
    // report, extended echo reply.
    for ty in [1, 2, 3, 4, 129, 136, 143, 161] {
        assert_eq!(
            v6(ty),
            Decoded::Skip(Skip::IcmpNotProbe),
            "ICMPv6 type {ty}"
        );
    }
    // Echo request, node information query, neighbour solicitation,
    // extended echo request, a type unknown here.
    for ty in [128, 139, 135, 160, 200] {
        assert!(
            matches!(v6(ty), Decoded::Interesting(_)),
            "ICMPv6 type {ty}"
        );
    }
}

/// A quoted IPv6 packet whose walk stops inside an extension header is a
/// probe of that protocol: an IP protocol scan (`nmap -6 -sO`) sends such
/// bare headers, and an ICMPv6 error quotes as much of its probe as fits.
/// A whole quote of a protocol the parser does not walk (Mobility, 135) is
/// a probe of that protocol too.
#[test]
fn icmpv6_quote_of_an_extension_protocol_is_a_protocol_probe() {
    let mut mobility = ICMPV6_NOROUTE.to_vec();
    mobility[68] = 135;
    let s = interesting(decode(linktype::ETHERNET, 0, &mobility));
    assert_eq!(s.key.proto, Proto::from_ip_number(135));
    let mut f = ICMPV6_NOROUTE.to_vec();
    // Destination options, next header TCP, 8 × (1 + 200) bytes long: far
    // past the end of the quote.
    (f[68], f[102], f[103]) = (60, 6, 200);
    let s = interesting(decode(linktype::ETHERNET, 0, &f));
    assert_eq!(s.key.proto, Proto::from_ip_number(60));
    // Whole (8 bytes), the same header is walked and the TCP probe keyed.
    let mut whole = ICMPV6_NOROUTE[..102].to_vec();
    whole.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
    whole.extend_from_slice(&ICMPV6_NOROUTE[102..]);
    let payload = (whole.len() - 54) as u16;
    whole[18..20].copy_from_slice(&payload.to_be_bytes());
    whole[68] = 60;
    let s = interesting(decode(linktype::ETHERNET, 0, &whole));
    assert_eq!(s.key.proto, Proto::Tcp);
}
