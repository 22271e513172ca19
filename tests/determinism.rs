//! The same captures give the same events, byte for byte, whatever the number
//! of threads: per capture, and for all of them replayed as one run.

mod common;
use common::*;

#[test]
fn one_and_four_threads_give_identical_events_on_every_real_capture() {
    for p in all_real() {
        let one = run(std::slice::from_ref(&p), 1).1;
        let four = run(std::slice::from_ref(&p), 4).1;
        assert!(
            one == four,
            "{}: events differ between 1 and 4 threads",
            p.display()
        );
    }
}

#[test]
fn all_captures_as_one_run_for_1_2_3_and_7_threads() {
    let all = all_real();
    let base = run(&all, 1).1;
    assert!(
        base.len() > 1_000_000,
        "the real captures hold tens of thousands of events"
    );
    for n in [2, 3, 7] {
        assert!(run(&all, n).1 == base, "{n} threads");
    }
}
