//! The README's demo: `scanwatch replay pcaps/demo-16d.pcap` with the default
//! configuration (14-day activation, 30-day training, 1-day test and dedup
//! periods) alerts on the new scanners of day 15 and on nothing else, as the
//! generator's truth file (`pcaps/demo-16d.json`) says.

mod common;
use common::*;

use std::path::Path;

fn repo(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

#[test]
fn demo_alerts_the_new_scanners_and_nothing_else() {
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo("pcaps/demo-16d.json")).unwrap()).unwrap();
    let (out, bytes) = run_alerts(&[repo("pcaps/demo-16d.pcap")], 2, &[]);
    let alerts = events(&bytes);
    let expected: Vec<(u64, String)> = truth["multiday"]["expected_alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["day"].as_u64().unwrap(),
                a["ip"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(!expected.is_empty());
    let got: Vec<String> = alerts
        .iter()
        .map(|a| a["src_ip"].as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = expected.iter().map(|(_, ip)| ip.clone()).collect();
    assert_eq!(got, want, "one alert per expected scanner, in time order");
    for (a, (day, _)) in alerts.iter().zip(&expected) {
        // 2024-03-01 is day 0.
        let date = a["timestamp"].as_str().unwrap();
        assert_eq!(
            &date[..10],
            format!("2024-03-{:02}", day + 1),
            "alerted on its day"
        );
        assert_eq!(a["alert"]["severity"], "low");
        assert!(a["evidence"]["never_seen_hosts"].as_u64().unwrap() >= 4);
    }
    let a = out.analytics.expect("analytics ran");
    // The sanctioned nightly scanner is learned, not alerted.
    assert_eq!(
        a.learned_scanners()
            .iter()
            .map(|(x, _)| x.to_string())
            .collect::<Vec<_>>(),
        vec!["10.10.9.9"]
    );
    // Every day's failures are counted on their own day (timers fire within
    // seconds of their deadline, even where packets are minutes apart), so
    // the population baseline has a figure for every day, and a small one:
    // only the sanctioned scanner fails on many targets, and it is left out.
    let days: Vec<i64> = a.population().map(|p| p.window).collect();
    assert_eq!(
        days.len(),
        15,
        "one baseline figure per closed day: {days:?}"
    );
    let late: Vec<u32> = a.population().skip(7).map(|p| p.p99).collect();
    assert!(late.iter().all(|&p| p <= 2), "{late:?}");
}
