//! The format as a contract: what a scenario reads as, and exactly how a bad one is refused.

use std::path::Path;
use std::time::Duration;

use super::*;

/// A valid scenario. Bad cases change one line of it, so line numbers stay put.
const BASE: &str = r#"name: table
cluster:
  nodes: 3
topics:
  - { name: events, partitions: 6, replication_factor: 3 }
workload:
  duration: 60s
  producers:
    - { topic: events, rate: 100, message_size: 512 }
faults:
  - { at: 10s, kind: kill, target: "node:1" }
  - { at: 20s, kind: restart, target: killed }
"#;

/// `BASE` with `from` replaced by `to` (which must be there), or with `to` appended if `from`
/// is empty.
fn with(from: &str, to: &str) -> String {
    if from.is_empty() {
        return format!("{BASE}{to}\n");
    }
    assert!(BASE.contains(from), "BASE has no {from:?}");
    BASE.replacen(from, to, 1)
}

fn error_of(text: &str) -> ScenarioError {
    match parse(text, "table.yaml") {
        Ok(scenario) => panic!("accepted:\n{text}\nas {scenario:#?}"),
        Err(error) => error,
    }
}

#[test]
fn unquoted_numbers_and_booleans_in_config_are_their_text() {
    let text = with(
        "message_size: 512 }",
        "message_size: 512, config: { linger.ms: 5, enable.gapless.guarantee: true } }",
    );
    let scenario = parse(&text, "table.yaml").unwrap();
    let config = &scenario.workload.producers[0].config;
    assert_eq!(config["linger.ms"], "5");
    assert_eq!(config["enable.gapless.guarantee"], "true");
}

#[test]
fn the_base_is_valid() {
    let scenario = parse(BASE, "table.yaml").unwrap();
    assert_eq!(scenario.faults.len(), 2);
}

#[test]
fn bad_scenarios_name_the_key_its_line_and_what_was_expected() {
    let append = "";
    // (text, where: `file:line:column: path:`, what the message says)
    let cases: Vec<(String, &str, &str)> = vec![
        (
            with("name: table\n", "name: table\ndescripton: x\n"),
            "table.yaml:2:1: descripton:",
            "unknown key `descripton` in a scenario (did you mean `description`?); expected one of: name, description, seed, cluster, topics, workload, faults, checks",
        ),
        (
            with("message_size: 512 }", "message_size: 512, lingr: 5 }"),
            "table.yaml:9:54: workload.producers[0].lingr:",
            "unknown key `lingr` in a producer; expected one of: topic, count, rate",
        ),
        (
            with("message_size: 512 }", "message_size: 512, linger.ms: 5 }"),
            "table.yaml:9:54: workload.producers[0][\"linger.ms\"]:",
            "unknown key `linger.ms` in a producer: librdkafka properties go under `config`",
        ),
        (
            with("kind: kill", "kind: explode"),
            "table.yaml:11:22: faults[0].kind:",
            "expected one of: kill, stop, pause, resume, restart, wipe, partition, heal, latency, bandwidth, timeout, reset_peer, slow_close, slicer, limit_data; found `explode`",
        ),
        (
            with(append, r#"  - { at: 30s, kind: timeout, links: ["1->2"], timeout: 0s, latency: 200ms }"#),
            "table.yaml:13:61: faults[2].latency:",
            "unknown key `latency` in a `timeout` fault: it belongs to latency faults; expected one of: at, kind, timeout, links, node, stream, toxicity, duration",
        ),
        (
            with("duration: 60s", "duration: 5 parsecs"),
            "table.yaml:7:13: workload.duration:",
            "`5 parsecs` has an unknown unit `parsecs`; expected a duration: a whole number and a unit (us, ms, s, m) like 500ms or 60s",
        ),
        (
            with("nodes: 3", "nodes: 9"),
            "table.yaml:3:10: cluster.nodes:",
            "expected a whole number from 1 to 7 (nodes in the cluster), found the number 9",
        ),
        (
            with(append, r#"  - { at: 30s, kind: latency, links: ["1->5"], latency: 10ms }"#),
            "table.yaml:13:39: faults[2].links[0]:",
            "`1->5`: node 5 does not exist: the cluster has 3 nodes (1 to 3)",
        ),
        (
            with(r#""node:1""#, r#""leader(events/9)""#),
            "table.yaml:11:36: faults[0].target:",
            "partition 9 does not exist: topic `events` has 6 partitions (0 to 5)",
        ),
        (
            with(append, "  - { at: 30s, kind: partition, groups: [[1], [2, 3]], mode: bridge }"),
            "table.yaml:13:56: faults[2].mode:",
            "a partition takes `groups` or `mode`, not both",
        ),
        (
            with("at: 20s", "at: 70s"),
            "table.yaml:12:11: faults[1].at:",
            "70s is not within workload.duration (1m): faults fire inside the measured window",
        ),
        (
            with("nodes: 3", "nodes: 2"),
            "table.yaml:5:56: topics[0].replication_factor:",
            "replication_factor 3 is above cluster.nodes (2)",
        ),
        (
            with("topic: events", "topic: orders"),
            "table.yaml:9:16: workload.producers[0].topic:",
            "topic `orders` is not declared in `topics` (declared: events)",
        ),
        (
            with("rate: 100", "rate: -5"),
            "table.yaml:9:30: workload.producers[0].rate:",
            "expected a whole number of at least 0 (messages per second per instance; 0 = as fast as it can), found the number -5",
        ),
        // Missing keys point at the mapping that lacks them.
        (
            with("name: table\n", ""),
            "table.yaml:1:1: name:",
            "missing key `name`: expected the scenario's name",
        ),
        (
            with("rate: 100, ", ""),
            "table.yaml:9:7: workload.producers[0].rate:",
            "missing key `rate`: expected messages per second per instance",
        ),
        // Wrong types.
        (
            with("duration: 60s", "duration: 60"),
            "table.yaml:7:13: workload.duration:",
            "found the number 60: add a unit, like 60ms",
        ),
        (
            with("name: table", "name: table\nseed:"),
            "table.yaml:2:6: seed:",
            "found nothing (null)",
        ),
        (
            with("message_size: 512 }", "message_size: 512, acks: 2 }"),
            "table.yaml:9:60: workload.producers[0].acks:",
            "expected one of: all, 1, 0; found the number 2\n",
        ),
        (
            with("message_size: 512 }", "message_size: 512, config: { linger.ms: [5] } }"),
            "table.yaml:9:75: workload.producers[0].config[\"linger.ms\"]:",
            "expected a string, number or boolean, found a list",
        ),
        (
            with("message_size: 512 }", "message_size: 512, idempotent: yes }"),
            "table.yaml:9:66: workload.producers[0].idempotent:",
            "expected true or false, found `yes`",
        ),
        // Fault attributes.
        (
            with(append, r#"  - { at: 30s, kind: latency, node: 2, latency: 1500us }"#),
            "table.yaml:13:49: faults[2].latency:",
            "Toxiproxy takes this attribute in whole milliseconds; 1500us is not",
        ),
        (
            with(append, r#"  - { at: 30s, kind: limit_data, node: 2, bytes: 10, toxicity: 1.5 }"#),
            "table.yaml:13:64: faults[2].toxicity:",
            "expected a number from 0 to 1 (the share of connections affected), found the number 1.5",
        ),
        (
            with(append, r#"  - { at: 30s, kind: kill, target: "node:2", duration: 5s }"#),
            "table.yaml:13:46: faults[2].duration:",
            "unknown key `duration` in a `kill` fault: only network faults (partition and the toxics) take it; expected one of: at, kind, target\n",
        ),
        (
            with(append, r#"  - { at: 30s, kind: latency, latency: 5ms }"#),
            "table.yaml:13:5: faults[2]:",
            "a toxic needs `links`",
        ),
        (
            with(append, r#"  - { at: 30s, kind: slicer, node: 1, average_size: 64, size_variation: 64 }"#),
            "table.yaml:13:73: faults[2].size_variation:",
            "expected less than average_size (64), found 64",
        ),
        // Across fields.
        (
            with("kind: kill", "kind: pause"),
            "table.yaml:12:39: faults[1].target:",
            "`killed` is the node most recently killed, stopped or wiped, and no earlier fault does that",
        ),
        (
            with("at: 20s", "at: 5s"),
            "table.yaml:12:11: faults[1].at:",
            "faults are listed in time order: 5s is before faults[0].at (10s)",
        ),
        (
            with(append, "  - { at: 30s, kind: partition, groups: [[1, 2], [2, 3]] }"),
            "table.yaml:13:51: faults[2].groups[1][0]:",
            "node 2 is in more than one group",
        ),
        (
            with(append, "  - { at: 30s, kind: partition, groups: [[1], [2]] }"),
            "table.yaml:13:41: faults[2].groups:",
            "node 3 is in no group; list every node in exactly one group",
        ),
        (
            with(append, "  - { at: 30s, kind: partition, mode: majorities-ring }"),
            "table.yaml:13:39: faults[2].mode:",
            "a majorities ring (on 3 it is the full mesh) needs at least 4 nodes; the cluster has 3",
        ),
        (
            with(append, "  - { at: 50s, kind: partition, groups: [[1], [2, 3]], duration: 20s }"),
            "table.yaml:13:66: faults[2].duration:",
            "the fault would last until 70s, past workload.duration (1m)",
        ),
        (
            with("message_size: 512 }", "message_size: 512, stop_after: 61s }"),
            "table.yaml:9:66: workload.producers[0].stop_after:",
            "producers stop within the measured window; 61s is past workload.duration (1m)",
        ),
        (
            with("target: \"node:1\"", "target: \"follower(events/0)\"")
                .replace("replication_factor: 3", "replication_factor: 1"),
            "table.yaml:11:36: faults[0].target:",
            "topic `events` has replication_factor 1: its partitions have no followers",
        ),
        (
            with("message_size: 512 }", "message_size: 512, config: { acks: \"1\" } }"),
            "table.yaml:9:64: workload.producers[0].config.acks:",
            "`acks` is set by acks; leave it out of `config`",
        ),
        (
            with("nodes: 3", "nodes: 3\n  env: { CHRONIK_NODE_ID: \"4\" }"),
            "table.yaml:4:10: cluster.env.CHRONIK_NODE_ID:",
            "`CHRONIK_NODE_ID` is set by the bench for each node; leave it out",
        ),
        // Not YAML at all.
        (
            with("nodes: 3", "nodes: [3"),
            "table.yaml:4:7: ",
            "not valid YAML: did not find expected ',' or ']', while parsing a flow sequence at line 3 column 10",
        ),
        (
            with("nodes: 3", "nodes: 3\n  nodes: 4"),
            "table.yaml:3:3: ",
            "duplicate entry with key \"nodes\"",
        ),
    ];
    let mut failures = Vec::new();
    for (text, place, says) in &cases {
        let error = error_of(text).to_string();
        // A `says` ending in "\n" must end the message.
        let first = format!("{}\n", error.lines().next().unwrap_or_default());
        if !first.starts_with(place) || !first.contains(says) {
            failures.push(format!("expected {place} ... {says}\n     got {error}\n"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = BASE
        .replace("nodes: 3", "nodes: 0")
        .replace("rate: 100", "rate: fast")
        .replace("kind: kill", "kind: kill, jitter: 5ms");
    let error = error_of(&text);
    let places: Vec<(String, usize)> = error
        .problems()
        .iter()
        .map(|problem| (problem.path.clone(), problem.line))
        .collect();
    assert_eq!(
        places,
        [
            ("cluster.nodes".to_string(), 3),
            ("workload.producers[0].rate".to_string(), 9),
            ("faults[0].jitter".to_string(), 11),
        ]
    );
    assert_eq!(error.to_string().lines().count(), 3);
}

#[test]
fn unknown_keys_are_refused_everywhere() {
    // One misspelt key in each mapping the format defines.
    let cases = [
        ("nodes: 3", "nodes: 3\n  node: 3", "cluster.node"),
        (
            "partitions: 6",
            "partitions: 6, replicas: 3",
            "topics[0].replicas",
        ),
        (
            "duration: 60s",
            "duration: 60s\n  warmpu: 5s",
            "workload.warmpu",
        ),
        (
            "faults:",
            "checks: { lost: 0, lsot: 0 }\nfaults:",
            "checks.lsot",
        ),
        (
            "faults:",
            "checks: {}\nfaults:\n  - { at: 1s, kind: heal, links: [\"1->2\"] }",
            "faults[0].links",
        ),
        (
            "message_size: 512 }",
            "message_size: 512 }\n  consumers: [{ topic: events, group: g, groups: 2 }]",
            "workload.consumers[0].groups",
        ),
    ];
    for (from, to, path) in cases {
        let error = error_of(&with(from, to));
        let paths: Vec<&str> = error.problems().iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, [path], "{error}");
        assert!(error.to_string().contains("unknown key"), "{error}");
    }
}

/// The example in the design brief, as written there.
const DESIGN_EXAMPLE: &str = r#"
name: leader-kill                 # report folder and verdict use it
description: Kill a partition leader under acks=all load.
seed: 7                           # optional; default random; always printed with a rerun command
cluster:
  nodes: 3                        # 1..7
  runtime: process                # process (default) | docker
  election_timeout: 500ms         # optional broker tuning passed through
  object_store: local             # local (default) | memory | s3://bucket/prefix
  env: { CHRONIK_SNAPSHOT_LOG_THRESHOLD: "10000" }   # extra broker env, every node
topics:
  - { name: events, partitions: 6, replication_factor: 3 }
workload:
  duration: 60s                   # measured window, after warmup
  warmup: 5s
  producers:
    - topic: events
      count: 2                    # producer instances
      rate: 2000                  # messages/s per instance; 0 = as fast as it can
      message_size: 512           # bytes
      keys: round_robin           # none | round_robin | random
      acks: all                   # all | 1 | 0
      idempotent: true
      compression: zstd           # none | gzip | snappy | lz4 | zstd
      config: { linger.ms: "5" }  # extra librdkafka properties
  consumers:
    - { topic: events, group: verifier, count: 2 }
faults:                           # times are from the start of the measured window
  - { at: 20s, kind: kill, target: "leader(events/0)" }
  - { at: 30s, kind: restart, target: killed }
  - { at: 35s, kind: partition, groups: [[1], [2, 3]], duration: 10s }
  - { at: 50s, kind: latency, links: ["1->2", "2->1"], latency: 200ms, jitter: 50ms, duration: 5s }
checks:
  lost: 0                         # acknowledged, never consumed
  duplicates: 0
  reordered: 0
  max_unavailability: 2s          # longest gap without a successful acknowledgement
  min_throughput: 1000            # acknowledged messages/s over the window
  max_p99_latency: 50ms
  max_recovery: 10s               # a restarted or wiped node is fully caught up
"#;

#[test]
fn the_design_example_reads_as_written() {
    let scenario = parse(DESIGN_EXAMPLE, "design.yaml").unwrap();
    assert_eq!(scenario.name, "leader-kill");
    assert_eq!(scenario.seed, Some(7));
    assert_eq!(scenario.cluster.nodes, 3);
    assert_eq!(
        scenario.cluster.election_timeout,
        Some(Duration::from_millis(500))
    );
    assert_eq!(
        scenario.cluster.env["CHRONIK_SNAPSHOT_LOG_THRESHOLD"],
        "10000"
    );
    let producer = &scenario.workload.producers[0];
    assert_eq!(
        (producer.count, producer.rate, producer.message_size),
        (2, 2000, 512)
    );
    assert_eq!(
        (producer.keys, producer.acks),
        (Keys::RoundRobin, Acks::All)
    );
    assert_eq!(producer.compression, Compression::Zstd);
    assert_eq!(producer.config["linger.ms"], "5");
    assert_eq!(scenario.workload.consumers[0].group, "verifier");
    let faults = &scenario.faults;
    assert_eq!(faults[0].at, Duration::from_secs(20));
    assert_eq!(
        faults[0].action,
        Action::Process {
            kind: FaultKind::Kill,
            target: Target::parse("leader(events/0)").unwrap(),
        }
    );
    assert_eq!(
        faults[2].action,
        Action::Partition {
            split: Split::Groups(vec![vec![1], vec![2, 3]]),
            duration: Some(Duration::from_secs(10)),
        }
    );
    let Action::Toxic(toxic) = &faults[3].action else {
        panic!("{:?}", faults[3]);
    };
    assert_eq!(
        toxic.toxic,
        Toxic::Latency {
            latency: Duration::from_millis(200),
            jitter: Duration::from_millis(50)
        }
    );
    assert_eq!(
        toxic.scope,
        Scope::Links(vec![
            Link::Peer { from: 1, to: 2 },
            Link::Peer { from: 2, to: 1 }
        ])
    );
    assert_eq!((toxic.stream, toxic.toxicity), (Stream::Upstream, 1.0));
    assert_eq!(
        scenario.checks.max_p99_latency,
        Some(Duration::from_millis(50))
    );
    assert_eq!(scenario.checks.min_throughput, Some(1000));
}

#[test]
fn left_out_keys_take_their_documented_defaults() {
    let minimal = "name: m\ncluster: { nodes: 1 }\ntopics: [{ name: t, partitions: 1, replication_factor: 1 }]\n\
                   workload: { duration: 1s, producers: [{ topic: t, rate: 0, message_size: 16 }] }\n";
    let scenario = parse(minimal, "m.yaml").unwrap();
    assert_eq!(scenario.description, "");
    assert_eq!(scenario.seed, None);
    assert_eq!(scenario.cluster.runtime, Runtime::Process);
    assert_eq!(scenario.cluster.election_timeout, None);
    assert_eq!(scenario.cluster.object_store, ObjectStore::Local);
    assert!(scenario.cluster.env.is_empty());
    assert_eq!(scenario.workload.warmup, Duration::ZERO);
    assert!(scenario.workload.consumers.is_empty());
    let producer = &scenario.workload.producers[0];
    assert_eq!(producer.count, 1);
    assert_eq!(producer.stop_after, None);
    assert_eq!(scenario.workload.sending_window(), Duration::from_secs(1));
    assert_eq!((producer.keys, producer.acks), (Keys::None, Acks::All));
    assert_eq!(
        (producer.idempotent, producer.compression),
        (false, Compression::None)
    );
    assert!(scenario.faults.is_empty());
    assert_eq!(scenario.checks, Checks::default());
    assert_eq!(
        (scenario.checks.lost, scenario.checks.max_recovery),
        (0, None)
    );

    let toxic = with(
        "",
        "  - { at: 30s, kind: reset_peer, node: \"leader(events/1)\" }",
    );
    let scenario = parse(&toxic, "t.yaml").unwrap();
    let Action::Toxic(toxic) = &scenario.faults[2].action else {
        panic!("{:?}", scenario.faults[2]);
    };
    assert_eq!(
        toxic.toxic,
        Toxic::ResetPeer {
            timeout: Duration::ZERO
        }
    );
    assert_eq!(
        (toxic.stream, toxic.toxicity, toxic.duration),
        (Stream::Upstream, 1.0, None)
    );
}

#[test]
fn producers_that_stop_early_shorten_the_judged_window_to_the_last_of_them() {
    let text = BASE.replace(
        "    - { topic: events, rate: 100, message_size: 512 }",
        "    - { topic: events, rate: 100, message_size: 512, stop_after: 20s }\n    - { topic: events, rate: 100, message_size: 512, stop_after: 35s }",
    );
    let scenario = parse(&text, "early.yaml").unwrap();
    assert_eq!(
        scenario.workload.producers[1].stop_after,
        Some(Duration::from_secs(35))
    );
    assert_eq!(scenario.workload.sending_window(), Duration::from_secs(35));
    let mixed = BASE.replace(
        "    - { topic: events, rate: 100, message_size: 512 }",
        "    - { topic: events, rate: 100, message_size: 512, stop_after: 20s }\n    - { topic: events, rate: 100, message_size: 512 }",
    );
    let scenario = parse(&mixed, "mixed.yaml").unwrap();
    assert_eq!(scenario.workload.sending_window(), Duration::from_secs(60));
}

#[test]
fn every_fault_kind_reads() {
    let faults = r#"  - { at: 21s, kind: stop, target: random }
  - { at: 22s, kind: pause, target: "follower(events/2)" }
  - { at: 23s, kind: resume, target: paused }
  - { at: 24s, kind: wipe, target: killed }
  - { at: 25s, kind: partition, mode: bridge }
  - { at: 26s, kind: partition, mode: "isolate-leader(events/5)", duration: 1s }
  - { at: 27s, kind: heal }
  - { at: 28s, kind: bandwidth, node: 3, rate: 100, stream: downstream, toxicity: 0.5 }
  - { at: 29s, kind: slow_close, links: ["clients->2"], delay: 1s }
  - { at: 30s, kind: slicer, node: 2, average_size: 64, size_variation: 8, delay: 100us }
  - { at: 31s, kind: limit_data, links: ["3->1"], bytes: 4096 }"#;
    let scenario = parse(&with("", faults), "all.yaml").unwrap();
    let kinds: Vec<&str> = scenario.faults.iter().map(|f| f.kind().name()).collect();
    assert_eq!(
        kinds,
        [
            "kill",
            "restart",
            "stop",
            "pause",
            "resume",
            "wipe",
            "partition",
            "partition",
            "heal",
            "bandwidth",
            "slow_close",
            "slicer",
            "limit_data"
        ]
    );
    let Action::Toxic(slicer) = &scenario.faults[11].action else {
        panic!();
    };
    assert_eq!(
        slicer.toxic,
        Toxic::Slicer {
            average_size: 64,
            size_variation: 8,
            delay: Duration::from_micros(100)
        }
    );
}

#[test]
fn anchors_and_merge_keys_work() {
    let text = BASE.replace(
        "  producers:\n    - { topic: events, rate: 100, message_size: 512 }",
        "  producers:\n    - &base { topic: events, rate: 100, message_size: 512 }\n    - { <<: *base, rate: 5 }",
    );
    let scenario = parse(&text, "anchors.yaml").unwrap();
    let rates: Vec<u64> = scenario.workload.producers.iter().map(|p| p.rate).collect();
    assert_eq!(rates, [100, 5]);
}

#[test]
fn load_names_the_file() {
    let missing = Path::new("/nonexistent/scenario.yaml");
    let error = load(missing).unwrap_err();
    assert!(matches!(error, ScenarioError::Read { .. }));
    assert!(error
        .to_string()
        .starts_with("/nonexistent/scenario.yaml: cannot read"));

    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("bad.yaml");
    std::fs::write(&file, with("nodes: 3", "nodes: 9")).unwrap();
    let error = load(&file).unwrap_err().to_string();
    assert!(
        error.starts_with(&format!("{}:3:10: cluster.nodes: ", file.display())),
        "{error}"
    );
}

#[test]
fn every_workload_parses_and_validates() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workloads");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&folder).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let scenario = load(&path).unwrap_or_else(|error| panic!("{error}"));
        let stem = path.file_stem().unwrap().to_str().unwrap();
        assert_eq!(scenario.name, stem, "a workload's name is its file name");
        let total = scenario.workload.warmup + scenario.workload.duration;
        assert!(total <= Duration::from_secs(90), "{stem} runs {total:?}");
        names.push(scenario.name);
    }
    names.sort();
    for expected in [
        "bandwidth",
        "follower-kill-restart",
        "isolate-leader",
        "latency",
        "leader-kill",
        "majorities-ring",
        "max-throughput",
        "minority-partition",
        "one-way-partition",
        "pause-leader",
        "reset-peer",
        "rolling-restart",
        "smoke",
        "wipe-and-recover",
    ] {
        assert!(
            names.iter().any(|name| name == expected),
            "no workloads/{expected}.yaml"
        );
    }
}

#[test]
fn targets_links_and_modes_survive_a_round_trip_through_a_scenario() {
    let scenario = parse(DESIGN_EXAMPLE, "design.yaml").unwrap();
    for fault in &scenario.faults {
        match &fault.action {
            Action::Process { target, .. } => {
                assert_eq!(&Target::parse(&target.to_string()).unwrap(), target);
            }
            Action::Toxic(toxic) => {
                let Scope::Links(links) = &toxic.scope else {
                    panic!()
                };
                for link in links {
                    assert_eq!(&Link::parse(&link.to_string()).unwrap(), link);
                }
            }
            _ => {}
        }
    }
    for mode in ["isolate-leader(events/0)", "majorities-ring", "bridge"] {
        assert_eq!(
            Split::parse_mode(mode).unwrap().mode().as_deref(),
            Some(mode)
        );
    }
    assert!(Split::parse_mode("ring").is_err());
    for store in ["local", "memory", "s3://bucket-1/runs/x"] {
        assert_eq!(ObjectStore::parse(store).unwrap().to_string(), store);
    }
    assert!(ObjectStore::parse("gs://bucket").is_err());
    assert!(ObjectStore::parse("s3://B").is_err());
}

#[test]
fn documents_that_are_not_a_scenario() {
    for (text, says) in [
        ("", "table.yaml:1:1: expected a scenario: a mapping"),
        (
            "- a\n- b\n",
            "table.yaml:1:1: expected a scenario: a mapping with name",
        ),
        (
            "name: a\n---\nname: b\n",
            "table.yaml:1:1: a scenario is one YAML document",
        ),
        ("name: [\n", "table.yaml:2:1: not valid YAML"),
        ("name: a\n\tcluster: {}\n", "table.yaml:2:1: not valid YAML"),
    ] {
        let error = error_of(text).to_string();
        assert!(error.starts_with(says), "{text:?}: {error}");
    }
}
