//! A small deterministic PRNG (splitmix64) and keyed bijections.
//!
//! We do not use `rand`: the generator's output must be byte-identical for the
//! same seed across crate versions and platforms, so the algorithm is fixed here.
//! splitmix64 passes BigCrush, needs one add and two multiplies per draw, and any
//! 64-bit seed (including 0) is a good state.

/// splitmix64 (Steele, Lea, Flood 2014), as used to seed xoshiro.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

/// The splitmix64 output function: a strong 64-bit mixer, also used on its own
/// to hash (seed, stream) pairs and addresses into decisions.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator for `seed`. Different `stream` values give independent
    /// sequences, so adding a consumer of randomness to one part of a profile
    /// does not shift the numbers every other part sees.
    pub fn new(seed: u64, stream: u64) -> Self {
        Rng {
            state: mix64(seed ^ mix64(stream.wrapping_add(0x5851_f42d_4c95_7f2d))),
        }
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.state)
    }

    /// The next 32 random bits.
    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform in `0..n` (Lemire's multiply-high; the bias is below 2^-64 * n,
    /// irrelevant here, and it avoids a division).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `lo..hi` (`hi` exclusive); `lo` when the range is empty.
    #[inline]
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo))
    }

    /// Uniform float in `[0, 1)` with 53 bits of precision.
    #[inline]
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p`.
    #[inline]
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Pick one element of a non-empty slice.
    #[inline]
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// A keyed bijection on `bits`-bit integers (`bits` in 2..=64).
///
/// Scanners such as masscan visit their target space in a pseudo-random order
/// without repeating; flood sources must be distinct. Both need a permutation of a
/// power-of-two domain that is cheap to evaluate at any index. Each step below
/// (xor with a key, multiply by an odd constant, xor-shift right) is invertible
/// modulo 2^bits, so the composition is a permutation.
#[derive(Clone, Copy, Debug)]
pub struct Permutation {
    bits: u32,
    mask: u64,
    keys: [u64; 3],
}

impl Permutation {
    /// A permutation of `0..2^bits` chosen by `key`.
    pub fn new(bits: u32, key: u64) -> Self {
        assert!(
            (2..=64).contains(&bits),
            "permutation width {bits} out of range"
        );
        let mask = if bits == 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        };
        let mut r = Rng::new(key, 0x7065_726d);
        Permutation {
            bits,
            mask,
            keys: [r.next_u64(), r.next_u64(), r.next_u64()],
        }
    }

    /// The image of `x` (only the low `bits` bits of `x` are used).
    #[inline]
    pub fn apply(&self, x: u64) -> u64 {
        let m = self.mask;
        let half = self.bits.div_ceil(2);
        let mut v = x & m;
        for k in self.keys {
            v = (v ^ k) & m;
            v = v.wrapping_mul(k | 1) & m;
            v ^= v >> half;
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_stream_separated() {
        let a: Vec<u64> = (0..5)
            .map({
                let mut r = Rng::new(42, 1);
                move |_| r.next_u64()
            })
            .collect();
        let mut r = Rng::new(42, 1);
        let b: Vec<u64> = (0..5).map(|_| r.next_u64()).collect();
        assert_eq!(a, b);
        let mut r2 = Rng::new(42, 2);
        assert_ne!(a[0], r2.next_u64());
    }

    #[test]
    fn below_stays_in_range() {
        let mut r = Rng::new(1, 0);
        for n in [1u64, 2, 3, 10, 1000, u64::MAX] {
            for _ in 0..1000 {
                assert!(r.below(n) < n);
            }
        }
    }

    #[test]
    fn permutation_is_bijective() {
        for bits in [2u32, 5, 12, 17] {
            let p = Permutation::new(bits, 99);
            let n = 1usize << bits;
            let mut seen = vec![false; n];
            for x in 0..n as u64 {
                let y = p.apply(x) as usize;
                assert!(!seen[y], "bits {bits}: {x} collides");
                seen[y] = true;
            }
        }
    }
}
