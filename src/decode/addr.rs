//! A compact IP address: 16 bytes, IPv4 stored as IPv4-mapped IPv6.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IPv4 or IPv6 address in 16 bytes (IPv4 as `::ffff:a.b.c.d`).
///
/// One fixed-size type keeps flow keys `Copy`, cheap to hash and to compare,
/// where `std::net::IpAddr` would add a discriminant and a branch to each.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Addr(pub [u8; 16]);

const V4_PREFIX: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

impl Addr {
    /// Built in a vector register and stored whole. Written byte by byte (the
    /// prefix, then the four bytes), the address was read back at once as
    /// 16 bytes by the next step (a struct copy, the flow hash) and missed
    /// store forwarding: a stall of ~10 cycles on every IPv4 packet decoded
    /// (`cargo bench --bench decode`: decode+route +39% enterprise, +44%
    /// flood, with `ipv4` inlined).
    #[inline]
    pub fn v4(a: [u8; 4]) -> Addr {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{
                __m128i, _mm_cvtsi32_si128, _mm_or_si128, _mm_set_epi32, _mm_slli_si128,
            };
            // SAFETY: SSE2 is part of x86_64; the intrinsics only move bits,
            // and any 16 bytes are a valid [u8; 16].
            unsafe {
                let v = _mm_slli_si128::<12>(_mm_cvtsi32_si128(i32::from_ne_bytes(a)));
                let prefix = _mm_set_epi32(0, 0xffff_0000_u32 as i32, 0, 0);
                Addr(std::mem::transmute::<__m128i, [u8; 16]>(_mm_or_si128(
                    v, prefix,
                )))
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let mut b = [0u8; 16];
            b[10] = 0xff;
            b[11] = 0xff;
            b[12..].copy_from_slice(&a);
            Addr(b)
        }
    }

    #[inline]
    pub fn v6(a: [u8; 16]) -> Addr {
        Addr(a)
    }

    /// Whether this is an IPv4 address.
    #[inline]
    pub fn is_v4(&self) -> bool {
        self.0[..12] == V4_PREFIX
    }

    /// The address as the standard library's type.
    pub fn ip(&self) -> IpAddr {
        if self.is_v4() {
            IpAddr::V4(Ipv4Addr::new(
                self.0[12], self.0[13], self.0[14], self.0[15],
            ))
        } else {
            IpAddr::V6(Ipv6Addr::from(self.0))
        }
    }

    /// The bytes as they appear on the wire: 4 for IPv4, 16 for IPv6.
    pub fn wire_bytes(&self) -> &[u8] {
        if self.is_v4() { &self.0[12..] } else { &self.0 }
    }
}

impl From<IpAddr> for Addr {
    fn from(ip: IpAddr) -> Addr {
        match ip {
            IpAddr::V4(a) => Addr::v4(a.octets()),
            IpAddr::V6(a) => Addr::v6(a.octets()),
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.ip().fmt(f)
    }
}

impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.ip().fmt(f)
    }
}

impl serde::Serialize for Addr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Addr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Addr, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse::<IpAddr>()
            .map(Addr::from)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The SSE2 construction gives the IPv4-mapped bytes, byte for byte.
        #[test]
        fn v4_is_the_ipv4_mapped_address(a: [u8; 4]) {
            let mut want = [0u8; 16];
            want[10] = 0xff;
            want[11] = 0xff;
            want[12..].copy_from_slice(&a);
            let got = Addr::v4(a);
            prop_assert_eq!(got.0, want);
            prop_assert!(got.is_v4());
            prop_assert_eq!(got.ip(), IpAddr::V4(Ipv4Addr::from(a)));
        }
    }
}
