//! The workload against one real broker: two throttled idempotent producers and a group of two
//! consumers for a 1 s warmup and a 3 s window, then the final read and the analysis. A healthy
//! broker loses, duplicates and reorders nothing, and every message intended in the window is
//! acknowledged and measured.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chronik_bench::analysis::analyse;
use chronik_bench::broker_process::{bootstrap, find_broker_binary, start_cluster};
use chronik_bench::scenario::{Acks, Compression, Consumer, Keys, Producer, Workload};
use chronik_bench::throughput::create_topic;
use chronik_bench::workload::{self, final_read, RunClock};

const TOPIC: &str = "events";
const PARTITIONS: u32 = 4;

/// `CHRONIK_SERVER_BIN`, else `chronik-server` in the target directory this test was built in.
fn broker_binary() -> PathBuf {
    if let Ok(found) = find_broker_binary(None) {
        return found;
    }
    let test_binary = std::env::current_exe().expect("the test binary's path");
    let target_directory = test_binary
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in <target>/<profile>/deps");
    let binary = target_directory.join("chronik-server");
    assert!(
        binary.exists(),
        "{} missing: cargo build -p chronik-server, or set CHRONIK_SERVER_BIN",
        binary.display()
    );
    binary
}

fn scenario_workload() -> Workload {
    Workload {
        duration: Duration::from_secs(3),
        warmup: Duration::from_secs(1),
        producers: vec![Producer {
            topic: TOPIC.to_string(),
            count: 2,
            rate: 500,
            message_size: 256,
            keys: Keys::RoundRobin,
            acks: Acks::All,
            idempotent: true,
            compression: Compression::None,
            config: BTreeMap::from([("linger.ms".to_string(), "5".to_string())]),
            stop_after: None,
        }],
        consumers: vec![Consumer {
            topic: TOPIC.to_string(),
            group: "verifier".to_string(),
            count: 2,
        }],
    }
}

#[test]
fn a_healthy_broker_loses_duplicates_and_reorders_nothing() {
    let directory = tempfile::tempdir().unwrap();
    let mut brokers = start_cluster(&broker_binary(), directory.path(), 1, &[]).unwrap();
    let bootstrap = bootstrap(&brokers);
    create_topic(&bootstrap, TOPIC, PARTITIONS as i32, 1).unwrap();

    let workload = scenario_workload();
    let clock = RunClock::with_warmup(workload.warmup);
    let running = workload::start(&bootstrap, &workload, 7, clock).unwrap();
    let window_end = clock.measured_start + workload.duration;
    std::thread::sleep(window_end.saturating_duration_since(Instant::now()));
    let live = running.progress();
    // 2 x 500 msg/s over 4 s is 4,000; each producer's schedule starts once its client is
    // ready and has the topic's metadata, which on a loaded machine (a debug build, tests in
    // parallel) took 0.1 s (3,899 sent). A producer that stalls or runs at the wrong rate
    // still falls far below this.
    assert!(live.sent >= 3_700, "{live:?}");
    running.stop_producers();
    assert!(
        running.drain_consumers(Duration::from_secs(30)),
        "the group received everything acknowledged: {:?}",
        running.progress()
    );
    let records = running.finish().unwrap();
    let stored = final_read(
        &bootstrap,
        &[(TOPIC.to_string(), PARTITIONS)],
        Duration::from_secs(30),
    )
    .unwrap();
    for broker in &mut brokers {
        broker.stop().unwrap();
    }

    assert!(stored.is_complete(), "{:?}", stored.partitions);
    let findings = analyse(&records, &stored, workload.duration);
    let counts = &findings.counts;
    let summary = format!("{counts:?}\n{:?}", findings.examples);
    assert_eq!(counts.lost, 0, "{summary}");
    assert_eq!(counts.duplicates, 0, "{summary}");
    assert_eq!(counts.reordered, 0, "{summary}");
    assert_eq!(counts.inconsistent_offsets, 0, "{summary}");
    assert_eq!(findings.undelivered, 0, "{summary}");
    assert_eq!((counts.failed, findings.unresolved), (0, 0), "{summary}");
    assert_eq!((findings.foreign_consumed, findings.foreign_stored), (0, 0));
    assert_eq!(counts.acknowledged, counts.sent);
    // 2 producers x 500 messages/s x 3 s, scheduled exactly: all acknowledged and measured.
    assert!(
        (2_990..=3_010).contains(&findings.measured_acknowledged),
        "{}",
        findings.measured_acknowledged
    );
    assert_eq!(findings.latency.count, findings.measured_acknowledged);
    // Everything sent, with the same late-start allowance as `live.sent` above.
    assert!((3_700..=4_100).contains(&counts.acknowledged), "{summary}");
    assert_eq!(
        stored.records.len() as u64,
        counts.acknowledged,
        "the log holds exactly what was acknowledged"
    );
    // Every partition got its share (round-robin keys).
    for partition in 0..PARTITIONS as i32 {
        let share = stored
            .records
            .iter()
            .filter(|record| record.partition == partition)
            .count();
        assert!(share >= 900, "partition {partition}: {share}");
    }
    assert!(counts.max_unavailability_ms < 2_000, "{summary}");
    assert!(counts.throughput_per_second > 900.0, "{summary}");
    let window_seconds: Vec<i64> = findings
        .throughput
        .iter()
        .map(|sample| sample.second)
        .filter(|second| (0..3).contains(second))
        .collect();
    assert_eq!(window_seconds, [0, 1, 2]);
    assert!(
        findings.throughput.first().unwrap().second < 0,
        "the warmup shows"
    );
}

#[test]
fn a_producer_with_stop_after_stops_sending_there_and_the_judged_window_ends_with_it() {
    let directory = tempfile::tempdir().unwrap();
    let mut brokers = start_cluster(&broker_binary(), directory.path(), 1, &[]).unwrap();
    let bootstrap = bootstrap(&brokers);
    create_topic(&bootstrap, TOPIC, PARTITIONS as i32, 1).unwrap();

    let mut workload = scenario_workload();
    workload.consumers.clear();
    workload.producers[0].count = 1;
    workload.producers[0].stop_after = Some(Duration::from_secs(1));
    assert_eq!(workload.sending_window(), Duration::from_secs(1));
    let clock = RunClock::with_warmup(workload.warmup);
    let running = workload::start(&bootstrap, &workload, 7, clock).unwrap();
    let window_end = clock.measured_start + workload.duration;
    std::thread::sleep(window_end.saturating_duration_since(Instant::now()));
    running.stop_producers();
    let records = running.finish().unwrap();
    let stored = final_read(
        &bootstrap,
        &[(TOPIC.to_string(), PARTITIONS)],
        Duration::from_secs(30),
    )
    .unwrap();
    for broker in &mut brokers {
        broker.stop().unwrap();
    }

    let findings = analyse(&records, &stored, workload.sending_window());
    let counts = &findings.counts;
    let summary = format!("{counts:?}");
    assert_eq!(counts.acknowledged, counts.sent, "{summary}");
    assert_eq!(counts.lost, 0, "{summary}");
    // 500 messages/s from the first, sent in the warmup, up to the stop 1 s into the window:
    // every message scheduled before the stop, however late the thread started.
    let intended_ns: Vec<i64> = records
        .acknowledgements
        .iter()
        .map(|acknowledgement| acknowledgement.intended_ns)
        .collect();
    let first_intended_ns = *intended_ns.iter().min().unwrap();
    assert!(
        first_intended_ns < 0,
        "first sent at {first_intended_ns} ns"
    );
    let interval_ns: u64 = 1_000_000_000 / 500;
    let scheduled_before_stop = (1_000_000_000 - first_intended_ns) as u64;
    assert_eq!(
        counts.sent,
        scheduled_before_stop.div_ceil(interval_ns),
        "{summary}"
    );
    let last_intended_ns = *intended_ns.iter().max().unwrap();
    assert!(last_intended_ns < 1_000_000_000, "{last_intended_ns} ns");
    // Judged up to the stop, the 2 s without load after it are no unavailability.
    assert!(counts.max_unavailability_ms < 500, "{summary}");
}
