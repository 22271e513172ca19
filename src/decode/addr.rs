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
    #[inline]
    pub fn v4(a: [u8; 4]) -> Addr {
        let mut b = [0u8; 16];
        b[10] = 0xff;
        b[11] = 0xff;
        b[12..].copy_from_slice(&a);
        Addr(b)
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
