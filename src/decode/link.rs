//! Link layers: find where the network layer starts and which one it is.

use super::{ETH_IPV4, ETH_IPV6, ETH_QINQ, ETH_QINQ_OLD, ETH_VLAN, Skip, be16};
use crate::capture::linktype;

/// At most this many stacked VLAN tags are walked; deeper stacks are garbage or
/// an attempt to hide traffic behind tags, and are counted as malformed.
const MAX_TAGS: usize = 4;

/// Returns (ethertype, offset of the network header). The first two VLAN ids
/// (outer first) are written to `vlan`.
#[inline(always)]
pub(super) fn l3_start(link: u16, pkt: &[u8], vlan: &mut [u16; 2]) -> Result<(u16, usize), Skip> {
    match link {
        linktype::ETHERNET => ethernet(pkt, 12, vlan),
        // Linux cooked v1: packet type, ARPHRD, address length, 8 address bytes, protocol.
        linktype::LINUX_SLL => ethernet(pkt, 14, vlan),
        // Linux cooked v2: protocol comes first, then a 18-byte rest of header.
        linktype::LINUX_SLL2 => {
            let et = be16(pkt, 0).ok_or(Skip::Truncated)?;
            if pkt.len() < 20 {
                return Err(Skip::Truncated);
            }
            tags(pkt, et, 20, vlan)
        }
        linktype::RAW | linktype::RAW_BSD | linktype::RAW_OPENBSD => raw_ip(pkt, 0),
        linktype::IPV4 => Ok((ETH_IPV4, 0)),
        linktype::IPV6 => Ok((ETH_IPV6, 0)),
        // BSD loopback: the address family in the capturing host's byte order,
        // which the file does not record; AF_INET is 2 everywhere and AF_INET6 is
        // 10, 24, 28 or 30 depending on the OS, so both orders are tried.
        linktype::NULL => {
            let f = pkt.get(..4).ok_or(Skip::Truncated)?;
            let le = u32::from_le_bytes([f[0], f[1], f[2], f[3]]);
            let be = u32::from_be_bytes([f[0], f[1], f[2], f[3]]);
            family(if le < 256 { le } else { be })
        }
        // OpenBSD loopback: the family in network byte order.
        linktype::LOOP => {
            let f = pkt.get(..4).ok_or(Skip::Truncated)?;
            family(u32::from_be_bytes([f[0], f[1], f[2], f[3]]))
        }
        _ => Err(Skip::NotIp),
    }
}

fn family(af: u32) -> Result<(u16, usize), Skip> {
    match af {
        2 => Ok((ETH_IPV4, 4)),
        10 | 24 | 28 | 30 => Ok((ETH_IPV6, 4)),
        _ => Err(Skip::NotIp),
    }
}

fn raw_ip(pkt: &[u8], off: usize) -> Result<(u16, usize), Skip> {
    match pkt.get(off).ok_or(Skip::Truncated)? >> 4 {
        4 => Ok((ETH_IPV4, off)),
        6 => Ok((ETH_IPV6, off)),
        _ => Err(Skip::Malformed),
    }
}

/// An Ethernet-like header whose ethertype sits at `et_off`.
#[inline(always)]
fn ethernet(pkt: &[u8], et_off: usize, vlan: &mut [u16; 2]) -> Result<(u16, usize), Skip> {
    let et = be16(pkt, et_off).ok_or(Skip::Truncated)?;
    tags(pkt, et, et_off + 2, vlan)
}

/// Walk 802.1Q / 802.1ad (QinQ) tags: each is 2 bytes TCI + 2 bytes ethertype.
#[inline(always)]
fn tags(
    pkt: &[u8],
    mut et: u16,
    mut off: usize,
    vlan: &mut [u16; 2],
) -> Result<(u16, usize), Skip> {
    let mut n = 0;
    while matches!(et, ETH_VLAN | ETH_QINQ | ETH_QINQ_OLD) {
        if n == MAX_TAGS {
            return Err(Skip::Malformed);
        }
        let tci = be16(pkt, off).ok_or(Skip::Truncated)?;
        if n < 2 {
            vlan[n] = tci & 0x0fff;
        }
        et = be16(pkt, off + 2).ok_or(Skip::Truncated)?;
        off += 4;
        n += 1;
    }
    Ok((et, off))
}
