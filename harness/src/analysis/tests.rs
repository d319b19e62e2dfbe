//! `analyse` on synthetic runs, one finding at a time.

use super::fixtures::{message, Run, MS};
use crate::report::{ThroughputSample, Window};

#[test]
fn a_clean_run_finds_nothing() {
    let mut run = Run::new();
    for sequence in 0..10 {
        run.deliver(
            message(0, sequence),
            (sequence % 2) as i32,
            (sequence / 2) as i64,
            100 + sequence as i64 * 50,
        );
    }
    let findings = run.analyse(1_000);
    let counts = &findings.counts;
    assert_eq!(
        (
            counts.sent,
            counts.acknowledged,
            counts.failed,
            counts.consumed
        ),
        (10, 10, 0, 10)
    );
    assert_eq!(
        (
            counts.lost,
            counts.duplicates,
            counts.reordered,
            counts.inconsistent_offsets,
            counts.redelivered
        ),
        (0, 0, 0, 0, 0)
    );
    assert_eq!(findings.undelivered, 0);
    assert_eq!((findings.foreign_consumed, findings.foreign_stored), (0, 0));
    assert_eq!(findings.unresolved, 0);
    assert!(findings.final_read_complete);
    assert_eq!(findings.examples, Default::default());
    assert_eq!(findings.groups.len(), 1);
    assert_eq!(findings.groups[0].consumed, 10);
}

#[test]
fn an_acknowledged_message_nobody_read_is_lost() {
    let mut run = Run::new();
    run.deliver(message(0, 0), 0, 0, 100);
    run.acknowledge(message(0, 1), 0, 1, 150, 160);
    let findings = run.analyse(1_000);
    assert_eq!(findings.counts.lost, 1);
    assert_eq!(
        findings.undelivered, 1,
        "a lost message was not delivered either"
    );
    assert_eq!(findings.counts.inconsistent_offsets, 0);
    assert_eq!(
        findings.examples.lost.0,
        ["p0#1 acknowledged at events/0@1, read by no consumer and not in the final read"]
    );
}

#[test]
fn a_message_the_final_read_found_but_a_group_missed_is_undelivered_not_lost() {
    let mut run = Run::new();
    let others = run.add_group("auditor", "events", 1);
    run.deliver(message(0, 0), 0, 0, 100);
    run.consume(others[0], 0, 0, Some(message(0, 0)), 120);
    run.acknowledge(message(0, 1), 0, 1, 150, 160)
        .consume(others[0], 0, 1, Some(message(0, 1)), 170)
        .store("events", 0, 1, Some(message(0, 1)));
    let findings = run.analyse(1_000);
    assert_eq!(findings.counts.lost, 0);
    assert_eq!(findings.undelivered, 1);
    assert_eq!(findings.groups[0].undelivered, 1, "verifier missed p0#1");
    assert_eq!(findings.groups[1].undelivered, 0, "auditor got everything");
    assert_eq!(
        findings.examples.undelivered.0,
        ["group verifier never received p0#1 (acknowledged at events/0@1)"]
    );
}

#[test]
fn a_message_stored_twice_is_a_duplicate() {
    let mut run = Run::new();
    run.deliver(message(0, 0), 0, 0, 100);
    run.deliver(message(0, 1), 0, 1, 110);
    // A retry wrote p0#1 again at offset 2; the consumer read both copies.
    run.consume(0, 0, 2, Some(message(0, 1)), 130)
        .store("events", 0, 2, Some(message(0, 1)));
    let findings = run.analyse(1_000);
    assert_eq!(findings.counts.duplicates, 1);
    assert_eq!(
        findings.counts.redelivered, 0,
        "the group got each offset once"
    );
    assert_eq!(
        findings.counts.reordered, 0,
        "a second copy is not a reordering"
    );
    assert_eq!(findings.counts.inconsistent_offsets, 0);
    assert_eq!(findings.counts.lost, 0);
    assert_eq!(
        findings.examples.duplicates.0,
        ["p0#1 stored at events/0@1 and events/0@2"]
    );
}

#[test]
fn a_lower_sequence_after_a_higher_one_is_reordered() {
    let mut run = Run::new();
    run.deliver(message(0, 0), 0, 0, 100);
    run.deliver(message(0, 2), 0, 1, 110);
    run.deliver(message(0, 1), 0, 2, 120);
    // Another producer's order is its own.
    let other = run.add_producer("events", 100);
    run.deliver(message(other, 0), 0, 3, 130);
    let findings = run.analyse(1_000);
    assert_eq!(findings.counts.reordered, 1);
    assert_eq!(
        findings.examples.reordered.0,
        ["events/0@2: p0#1 after p0#2"]
    );
    assert_eq!(findings.counts.duplicates, 0);
}

#[test]
fn a_retried_batch_written_twice_is_duplicates_not_reordering() {
    let mut run = Run::new();
    for (offset, sequence) in [0, 1, 2, 1, 2].into_iter().enumerate() {
        run.store("events", 0, offset as i64, Some(message(0, sequence)));
    }
    for sequence in 0..3 {
        run.acknowledge(message(0, sequence), 0, sequence as i64, 100, 110)
            .consume(0, 0, sequence as i64, Some(message(0, sequence)), 120);
    }
    let findings = run.analyse(1_000);
    assert_eq!(findings.counts.reordered, 0);
    assert_eq!(findings.counts.duplicates, 2);
}

#[test]
fn order_is_judged_per_partition() {
    let mut run = Run::new();
    run.deliver(message(0, 1), 0, 0, 100);
    run.deliver(message(0, 0), 1, 0, 110);
    assert_eq!(run.analyse(1_000).counts.reordered, 0);
}

#[test]
fn an_acknowledged_offset_the_final_read_contradicts_is_inconsistent() {
    let mut run = Run::new();
    // The broker acknowledged p0#1 at offset 5, but offset 5 holds p0#2 and p0#1 is at 6.
    run.acknowledge(message(0, 1), 0, 5, 100, 110)
        .acknowledge(message(0, 2), 0, 5, 105, 115)
        .store("events", 0, 5, Some(message(0, 2)))
        .store("events", 0, 6, Some(message(0, 1)))
        .consume(0, 0, 5, Some(message(0, 2)), 120)
        .consume(0, 0, 6, Some(message(0, 1)), 121);
    let findings = run.analyse(1_000);
    assert_eq!(findings.counts.inconsistent_offsets, 1);
    assert_eq!(
        findings.examples.inconsistent_offsets.0,
        ["events/0@5: the final read has p0#2, an acknowledgement has p0#1"]
    );
    assert_eq!(findings.counts.duplicates, 0, "each message is stored once");
    assert_eq!(findings.counts.lost, 0);
}

#[test]
fn a_consumer_read_the_final_read_contradicts_is_inconsistent() {
    let mut run = Run::new();
    // The consumer saw p0#0 at offset 0 before the log was truncated and rewritten.
    run.acknowledge(message(0, 0), 0, 0, 100, 110)
        .consume(0, 0, 0, Some(message(0, 0)), 120)
        .acknowledge(message(0, 1), 0, 0, 200, 210)
        .consume(0, 0, 0, Some(message(0, 1)), 220)
        .store("events", 0, 0, Some(message(0, 1)));
    let findings = run.analyse(1_000);
    assert_eq!(
        findings.counts.inconsistent_offsets, 1,
        "one position, however many claims"
    );
    assert_eq!(findings.counts.lost, 0, "a consumer did read p0#0");
}

#[test]
fn a_redelivery_is_not_a_duplicate() {
    let mut run = Run::new();
    let second = run.add_group("verifier-2", "events", 0);
    assert!(second.is_empty());
    // Consumer 0 reads offsets 0..3; after a rebalance consumer 1 of the same group resumes
    // from the committed offset 1.
    let members = run.add_group("shared", "events", 2);
    for offset in 0..3 {
        run.deliver(message(0, offset as u64), 0, offset, 100 + offset * 10);
        run.consume(members[0], 0, offset, Some(message(0, offset as u64)), 200);
    }
    for offset in 1..3 {
        run.consume(members[1], 0, offset, Some(message(0, offset as u64)), 300);
    }
    let findings = run.analyse(1_000);
    assert_eq!(findings.counts.redelivered, 2);
    assert_eq!(findings.groups[2].redelivered, 2);
    assert_eq!(findings.groups[2].consumed, 5);
    assert_eq!(
        findings.groups[0].redelivered, 0,
        "the other group got each once"
    );
    assert_eq!(findings.counts.duplicates, 0);
    assert_eq!(findings.counts.consumed, 8);
    assert_eq!(
        findings.groups[1].undelivered, 3,
        "a group without members gets nothing"
    );
}

#[test]
fn a_gap_at_the_start_of_the_window_reaches_the_start() {
    let mut run = Run::new();
    // Acknowledged during the warmup, then nothing until 700 ms into the window.
    run.deliver(message(0, 0), 0, 0, -100);
    for sequence in 1..=4 {
        run.deliver(
            message(0, sequence),
            0,
            sequence as i64,
            700 + sequence as i64 * 50,
        );
    }
    let findings = run.analyse(1_000);
    assert_eq!(findings.counts.max_unavailability_ms, 750);
    assert_eq!(
        findings.unavailability_windows,
        [Window {
            start_ms: 0,
            end_ms: 750
        }]
    );
}

#[test]
fn a_gap_at_the_end_of_the_window_reaches_the_end() {
    let mut run = Run::new();
    for sequence in 0..4 {
        run.deliver(
            message(0, sequence),
            0,
            sequence as i64,
            sequence as i64 * 100,
        );
    }
    // Acknowledged only after the window.
    run.deliver(message(0, 4), 0, 4, 2_500);
    let findings = run.analyse(2_000);
    assert_eq!(findings.counts.max_unavailability_ms, 1_700);
    assert_eq!(
        findings.unavailability_windows,
        [Window {
            start_ms: 300,
            end_ms: 2_000
        }]
    );
}

#[test]
fn an_empty_run_is_unavailable_for_the_whole_window() {
    let run = Run::new();
    let findings = run.analyse(3_000);
    assert_eq!(findings.counts.max_unavailability_ms, 3_000);
    assert_eq!(
        findings.unavailability_windows,
        [Window {
            start_ms: 0,
            end_ms: 3_000
        }]
    );
    assert_eq!(findings.latency, Default::default());
    assert!(findings.latency_over_time.is_empty());
    assert_eq!(findings.counts.throughput_per_second, 0.0);
    let seconds: Vec<i64> = findings
        .throughput
        .iter()
        .map(|sample| sample.second)
        .collect();
    assert_eq!(seconds, [0, 1, 2], "every second of the window, even empty");
    assert_eq!(findings.counts.lost, 0);
}

#[test]
fn throughput_samples_count_each_second_with_the_warmup_negative() {
    let mut run = Run::new();
    run.deliver(message(0, 0), 0, 0, -1_500);
    run.deliver(message(0, 1), 0, 1, 200);
    run.deliver(message(0, 2), 0, 2, 900);
    run.fail(message(0, 3), 1_100);
    // Consumed during the drain, after the 2 s window.
    run.acknowledge(message(0, 4), 0, 3, 1_900, 1_950)
        .consume(0, 0, 3, Some(message(0, 4)), 3_200)
        .store("events", 0, 3, Some(message(0, 4)));
    let findings = run.analyse(2_000);
    let sample = |second, acknowledged, consumed, failed| ThroughputSample {
        second,
        acknowledged,
        consumed,
        failed,
    };
    assert_eq!(
        findings.throughput,
        [
            sample(-2, 1, 1, 0),
            sample(-1, 0, 0, 0),
            sample(0, 2, 2, 0),
            sample(1, 1, 0, 1),
            sample(2, 0, 0, 0),
            sample(3, 0, 1, 0),
        ]
    );
    assert_eq!(findings.acknowledged_in_window, 3);
    assert_eq!(findings.counts.throughput_per_second, 1.5);
    assert_eq!(findings.counts.throughput_bytes_per_second, 150.0);
    assert_eq!(findings.counts.failed, 1);
    assert_eq!(findings.failures_by_kind.get("MessageTimedOut"), Some(&1));
}

#[test]
fn latency_counts_the_messages_intended_in_the_window() {
    let mut run = Run::new();
    // Intended in the warmup: not measured, even though acknowledged in the window.
    run.acknowledge(message(0, 0), 0, 0, -10, 500);
    for sequence in 1..=100u64 {
        let intended_ms = 10 * sequence as i64;
        let latency_ms = if sequence == 100 { 400 } else { 5 };
        run.acknowledge(
            message(0, sequence),
            0,
            sequence as i64,
            intended_ms,
            intended_ms + latency_ms,
        );
    }
    // Intended in the window, acknowledged after it (a stall at the end): measured.
    run.acknowledge(message(0, 101), 0, 101, 1_990, 3_000);
    let findings = run.analyse(2_000);
    assert_eq!(findings.latency.count, 101);
    assert_eq!(findings.measured_acknowledged, 101);
    assert!(
        (findings.latency.p50_ms - 5.0).abs() < 0.01,
        "{:?}",
        findings.latency
    );
    assert!(findings.latency.p99_ms >= 399.0, "{:?}", findings.latency);
    assert_eq!(findings.latency.max_ms, 1_010.0);
    let seconds: Vec<(i64, f64, f64)> = findings
        .latency_over_time
        .iter()
        .map(|sample| (sample.second, sample.p50_ms, sample.max_ms))
        .collect();
    assert_eq!(seconds, [(0, 5.0, 5.0), (1, 400.0, 1_010.0)]);
}

#[test]
fn records_that_are_not_bench_messages_are_foreign() {
    let mut run = Run::new();
    run.deliver(message(0, 0), 0, 0, 100);
    run.consume(0, 0, 1, None, 110).store("events", 0, 1, None);
    // A bench message from some other run: producer 9 does not exist here.
    run.consume(0, 0, 2, Some(message(9, 0)), 120)
        .store("events", 0, 2, Some(message(9, 0)));
    let findings = run.analyse(1_000);
    assert_eq!(findings.foreign_consumed, 2);
    assert_eq!(findings.foreign_stored, 2);
    assert_eq!(findings.counts.inconsistent_offsets, 0);
    assert_eq!(findings.counts.consumed, 3);
}

#[test]
fn a_foreign_record_where_an_acknowledgement_points_is_inconsistent() {
    let mut run = Run::new();
    run.acknowledge(message(0, 0), 0, 0, 100, 110)
        .store("events", 0, 0, None);
    let findings = run.analyse(1_000);
    assert_eq!(findings.counts.inconsistent_offsets, 1);
    assert_eq!(findings.counts.lost, 1);
    assert_eq!(
        findings.examples.inconsistent_offsets.0,
        ["events/0@0: the final read has a foreign record, an acknowledgement has p0#0"]
    );
}

#[test]
fn a_failed_delivery_that_was_stored_is_reported_not_owed() {
    let mut run = Run::new();
    run.fail(message(0, 0), 500)
        .consume(0, 0, 0, Some(message(0, 0)), 200)
        .store("events", 0, 0, Some(message(0, 0)));
    run.fail(message(0, 1), 500);
    let findings = run.analyse(1_000);
    assert_eq!(findings.failed_but_stored, 1);
    assert_eq!(findings.counts.lost, 0);
    assert_eq!(findings.undelivered, 0);
    assert_eq!(findings.counts.failed, 2);
}

#[test]
fn topics_are_told_apart_by_name() {
    let mut run = Run::new();
    let orders = run.add_producer("orders", 50);
    let readers = run.add_group("order-readers", "orders", 1);
    // The final read lists the topics in another order than the workload.
    run.store("orders", 0, 0, Some(message(orders, 0)));
    run.deliver(message(0, 0), 0, 0, 100);
    run.acknowledge(message(orders, 0), 0, 0, 100, 110).consume(
        readers[0],
        0,
        0,
        Some(message(orders, 0)),
        120,
    );
    let findings = run.analyse(1_000);
    assert_eq!(
        findings.counts.inconsistent_offsets, 0,
        "events/0@0 and orders/0@0 differ"
    );
    assert_eq!(findings.counts.duplicates, 0);
    assert_eq!(
        findings.undelivered, 0,
        "each group is owed its own topic only"
    );
    assert_eq!(findings.groups[1].topic, "orders");
    assert_eq!(findings.counts.throughput_bytes_per_second, 150.0);
}

#[test]
fn acknowledgements_without_offsets_claim_no_position() {
    let mut run = Run::new();
    run.acknowledge(message(0, 0), 0, -1, 100, 110)
        .consume(0, 0, 0, Some(message(0, 0)), 120)
        .store("events", 0, 0, Some(message(0, 0)));
    let findings = run.analyse(1_000);
    assert_eq!(findings.counts.inconsistent_offsets, 0);
    assert_eq!(findings.counts.lost, 0);
}

#[test]
fn examples_are_capped() {
    let mut run = Run::new();
    for sequence in 0..50 {
        run.acknowledge(message(0, sequence), 0, sequence as i64, 100, 110);
    }
    let findings = run.analyse(1_000);
    assert_eq!(findings.counts.lost, 50);
    assert_eq!(findings.examples.lost.0.len(), super::EXAMPLE_LIMIT);
}

#[test]
fn an_unfinished_final_read_is_reported() {
    let mut run = Run::new();
    run.deliver(message(0, 0), 0, 0, 100);
    run.final_read.partitions[0].high_watermark = 5;
    assert!(!run.analyse(1_000).final_read_complete);
    let _ = MS;
}
