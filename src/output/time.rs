//! Event-time formatting: RFC 3339 UTC with microseconds, as EVE does.

use std::cell::RefCell;

/// Seconds remembered with their formatted prefix (see [`LAST_SECONDS`]).
const CACHED: usize = 4;

/// Formatted seconds, newest replacing the oldest.
#[derive(Clone, Copy)]
struct Seconds {
    secs: [i64; CACHED],
    prefix: [[u8; 20]; CACHED],
    next: usize,
}

thread_local! {
    /// The last seconds formatted, and their `2024-03-01T10:00:00.` prefix:
    /// the calendar arithmetic cost more than the rest of the timestamp, and
    /// an event's three timestamps fall in two seconds or so (a probe's, and
    /// its timeout's a few seconds later), shared by the events around it.
    static LAST_SECONDS: RefCell<Seconds> = const {
        RefCell::new(Seconds {
            secs: [i64::MIN; CACHED],
            prefix: [[0; 20]; CACHED],
            next: 0,
        })
    };
}

/// Append `ns` (nanoseconds since the Unix epoch) as `2024-03-01T10:00:00.123456Z`.
pub fn rfc3339(ns: i64, out: &mut String) {
    let secs = ns.div_euclid(1_000_000_000);
    let micros = ns.rem_euclid(1_000_000_000) / 1000;
    let mut b = *b"0000-00-00T00:00:00.000000Z";
    // Borrowed in place: a `Cell`'s get and set copied the whole cache
    // twice per timestamp.
    LAST_SECONDS.with_borrow_mut(|c| {
        // `i64::MIN` marks an empty entry: no instant is in that second.
        match c.secs.iter().position(|&s| s == secs) {
            Some(i) => b[..20].copy_from_slice(&c.prefix[i]),
            None => {
                second_prefix(secs, &mut b);
                let i = c.next;
                c.secs[i] = secs;
                c.prefix[i] = *b.first_chunk().expect("27 bytes");
                c.next = (i + 1) % CACHED;
            }
        }
    });
    put(&mut b, 20, 6, micros as u32);
    // SAFETY: `b` is the ASCII template above with ASCII digits written in
    // (`put`, `second_prefix`, the cached prefixes they made).
    unsafe { super::push_ascii(out, &b) };
}

/// Write `v` in `width` decimal digits at `b[at..]`, digit by digit: three
/// timestamps per event, and `write!` cost more than the rest of an event's
/// line.
fn put(b: &mut [u8; 27], at: usize, width: usize, mut v: u32) {
    for i in (at..at + width).rev() {
        b[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// The date and time of day of `secs` into `b[..19]`. Nanoseconds in an i64
/// span the years 1677 to 2262: always four digits.
fn second_prefix(secs: i64, b: &mut [u8; 27]) {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    put(b, 0, 4, y as u32);
    put(b, 5, 2, m);
    put(b, 8, 2, d);
    put(b, 11, 2, (sod / 3600) as u32);
    put(b, 14, 2, (sod % 3600 / 60) as u32);
    put(b, 17, 2, (sod % 60) as u32);
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(ns: i64) -> String {
        let mut s = String::new();
        rfc3339(ns, &mut s);
        s
    }

    #[test]
    fn known_instants() {
        assert_eq!(f(0), "1970-01-01T00:00:00.000000Z");
        // date -u -d @1272497999 → 2010-04-28 23:39:59 (first packet of puzzle 6)
        assert_eq!(f(1_272_497_999_311_284_000), "2010-04-28T23:39:59.311284Z");
        assert_eq!(f(951_782_400_000_000_000), "2000-02-29T00:00:00.000000Z");
        assert_eq!(f(4_107_542_399_999_999_999), "2100-02-28T23:59:59.999999Z");
        assert_eq!(f(-1_000), "1969-12-31T23:59:59.999999Z");
        assert_eq!(f(i64::MAX), "2262-04-11T23:47:16.854775Z");
        assert_eq!(f(i64::MIN), "1677-09-21T00:12:43.145224Z");
    }

    /// The cached second must never leak into a timestamp of another second:
    /// each instant, formatted after any other, reads as it does on its own.
    #[test]
    fn cached_second_matches_a_fresh_one() {
        let instants = [
            0,
            999_999_999,
            1_000_000_000,
            -1,
            1_272_497_999_311_284_000,
            1_272_497_999_999_999_999,
            1_272_498_000_000_000_000,
            1_272_497_999_000_000_000 + 86_400_000_000_000,
            i64::MAX,
            i64::MIN,
        ];
        let fresh: Vec<String> = instants
            .iter()
            .map(|&ns| {
                forget_seconds();
                f(ns)
            })
            .collect();
        for (i, &a) in instants.iter().enumerate() {
            for (j, &b) in instants.iter().enumerate() {
                forget_seconds();
                f(a);
                assert_eq!(f(b), fresh[j], "{b} after {a}");
                assert_eq!(f(a), fresh[i], "{a} after {b}");
            }
        }
        // More seconds than the cache holds, round and round.
        for _ in 0..3 {
            for (i, &a) in instants.iter().enumerate() {
                assert_eq!(f(a), fresh[i], "{a} in a cycle");
            }
        }
    }

    fn forget_seconds() {
        LAST_SECONDS.with_borrow_mut(|c| c.secs = [i64::MIN; CACHED]);
    }
}
