//! Reading one fault: `kind` decides which keys the fault may have, so the fault's mapping is
//! walked by hand (serde's internally tagged enums lose both positions and unknown keys).

use std::time::Duration;

use serde_yaml_ng::Value;

use super::duration;
use super::fault::{Action, Fault, FaultKind, Scope, Split, Stream, Toxic, ToxicFault, TOXIC_KEYS};
use super::issues::{describe, Issues};
use super::model::MAX_NODES;
use super::path::KeyPath;
use super::reader::{self, Fields};
use super::target::{Link, Target, TARGET_FORMS};

const KIND_EXPECTED: &str = "kill, stop, pause, resume, restart, wipe, partition, heal, latency, \
                             bandwidth, timeout, reset_peer, slow_close, slicer or limit_data";

pub(crate) fn read_fault(issues: &mut Issues, value: &Value, path: &KeyPath) -> Option<Fault> {
    let fields = Fields::open(
        issues,
        value,
        path,
        "a fault: a mapping with `at` and `kind`",
    )?;
    let at = fields.required(
        issues,
        "at",
        "when the fault fires, from the start of the measured window, like 20s",
        &reader::duration,
    );
    let kind = fields.required(
        issues,
        "kind",
        KIND_EXPECTED,
        &reader::choice(&FaultKind::ALL),
    )?;
    let what = format!("a `{}` fault", kind.name());
    fields.allow_only(issues, &what, &kind.keys(), &misplaced);
    let action = if kind.is_process() {
        let target = fields.required(
            issues,
            "target",
            TARGET_FORMS,
            &reader::parsed(Target::parse, "a target"),
        );
        target.map(|target| Action::Process { kind, target })
    } else if kind == FaultKind::Partition {
        read_partition(issues, &fields)
    } else if kind == FaultKind::Heal {
        Some(Action::Heal)
    } else {
        read_toxic(issues, &fields, kind).map(Action::Toxic)
    };
    Some(Fault {
        at: at?,
        action: action?,
    })
}

/// Explains a key that belongs to other kinds of fault.
fn misplaced(key: &str) -> Option<String> {
    let owners: Vec<&str> = FaultKind::ALL
        .iter()
        .filter(|(_, other)| other.keys().contains(&key))
        .map(|(name, _)| *name)
        .collect();
    if owners.is_empty() {
        return None;
    }
    if key == "duration" {
        return Some("only network faults (partition and the toxics) take it".into());
    }
    if TOXIC_KEYS.contains(&key) {
        return Some("only toxics take it".into());
    }
    Some(format!("it belongs to {} faults", owners.join(", ")))
}

fn read_partition(issues: &mut Issues, fields: &Fields) -> Option<Action> {
    let path = fields.path();
    let split = match (fields.has("groups"), fields.has("mode")) {
        (true, true) => {
            issues.at_key(
                &path.key("mode"),
                "a partition takes `groups` or `mode`, not both",
            );
            None
        }
        (false, false) => {
            issues.at_value(
                path,
                "a partition needs `groups` (lists of node ids, like [[1], [2, 3]]) or `mode` \
                 (isolate-leader(topic/partition), majorities-ring or bridge)",
            );
            None
        }
        (true, false) => fields
            .required(issues, "groups", "lists of node ids", &read_groups)
            .map(Split::Groups),
        (false, true) => fields.required(
            issues,
            "mode",
            "a partition mode",
            &reader::parsed(Split::parse_mode, "a partition mode"),
        ),
    };
    let duration = fields.optional(issues, "duration", &reader::positive_duration);
    Some(Action::Partition {
        split: split?,
        duration: duration?,
    })
}

/// `[[1], [2, 3]]`: at least two groups, none empty. (Whether the ids exist, overlap and cover
/// every node depends on the cluster; `validate` checks it.)
fn read_groups(issues: &mut Issues, value: &Value, path: &KeyPath) -> Option<Vec<Vec<u32>>> {
    let node_id = reader::whole(1..=u64::from(MAX_NODES), "a node id");
    let node_id = |issues: &mut Issues, value: &Value, path: &KeyPath| {
        node_id(issues, value, path).and_then(|id| u32::try_from(id).ok())
    };
    let group = reader::list("node ids", &node_id);
    let groups = reader::list("groups of node ids", &group)(issues, value, path)?;
    if groups.len() < 2 {
        issues.at_value(path, "expected at least two groups, like [[1], [2, 3]]");
        return None;
    }
    if let Some(empty) = groups.iter().position(Vec::is_empty) {
        issues.at_value(&path.index(empty), "a group needs at least one node");
        return None;
    }
    Some(groups)
}

fn read_toxic(issues: &mut Issues, fields: &Fields, kind: FaultKind) -> Option<ToxicFault> {
    let path = fields.path();
    let scope = match (fields.has("links"), fields.has("node")) {
        (true, true) => {
            issues.at_key(
                &path.key("node"),
                "a toxic takes `links` or `node`, not both",
            );
            None
        }
        (false, false) => {
            issues.at_value(
                path,
                "a toxic needs `links` (like [\"1->2\", \"clients->3\"]) or `node` (all its links)",
            );
            None
        }
        (true, false) => fields
            .required(issues, "links", "links", &read_links)
            .map(Scope::Links),
        (false, true) => fields
            .required(issues, "node", "a node", &read_node)
            .map(Scope::Node),
    };
    let streams = [
        ("upstream", Stream::Upstream),
        ("downstream", Stream::Downstream),
    ];
    let stream = fields.or(
        issues,
        "stream",
        Stream::Upstream,
        &reader::choice(&streams),
    );
    let share = reader::fraction(0.0..=1.0, "the share of connections affected");
    let toxicity = fields.or(issues, "toxicity", 1.0, &share);
    let duration = fields.optional(issues, "duration", &reader::positive_duration);
    let toxic = read_attributes(issues, fields, kind);
    Some(ToxicFault {
        toxic: toxic?,
        scope: scope?,
        stream: stream?,
        toxicity: toxicity?,
        duration: duration?,
    })
}

fn read_attributes(issues: &mut Issues, fields: &Fields, kind: FaultKind) -> Option<Toxic> {
    let millis = &whole_milliseconds;
    let bytes = reader::whole(0..=u64::MAX, "bytes");
    match kind {
        FaultKind::Latency => {
            let latency = fields.required(issues, "latency", "a duration, like 200ms", millis);
            let jitter = fields.or(issues, "jitter", Duration::ZERO, millis);
            Some(Toxic::Latency {
                latency: latency?,
                jitter: jitter?,
            })
        }
        FaultKind::Bandwidth => {
            let kilobytes = reader::whole(1..=u64::MAX, "KB/s");
            let rate = fields.required(issues, "rate", "KB/s, like 100", &kilobytes)?;
            Some(Toxic::Bandwidth { rate })
        }
        FaultKind::Timeout => {
            let expected = "a duration (0s: never close, drop data until healed)";
            let timeout = fields.required(issues, "timeout", expected, millis)?;
            Some(Toxic::Timeout { timeout })
        }
        FaultKind::ResetPeer => {
            let timeout = fields.or(issues, "timeout", Duration::ZERO, millis)?;
            Some(Toxic::ResetPeer { timeout })
        }
        FaultKind::SlowClose => {
            let delay = fields.required(issues, "delay", "a duration, like 1s", millis)?;
            Some(Toxic::SlowClose { delay })
        }
        FaultKind::Slicer => {
            let size = reader::whole(1..=u64::MAX, "bytes");
            let average_size = fields.required(issues, "average_size", "bytes", &size);
            let size_variation = fields.or(issues, "size_variation", 0, &bytes);
            let delay = fields.or(issues, "delay", Duration::ZERO, &reader::duration);
            let (average_size, size_variation) = (average_size?, size_variation?);
            if size_variation >= average_size {
                let message = format!(
                    "expected less than average_size ({average_size}), found {size_variation}"
                );
                issues.at_value(&fields.path().key("size_variation"), message);
                return None;
            }
            Some(Toxic::Slicer {
                average_size,
                size_variation,
                delay: delay?,
            })
        }
        FaultKind::LimitData => {
            let bytes = fields.required(issues, "bytes", "bytes", &bytes)?;
            Some(Toxic::LimitData { bytes })
        }
        _ => None,
    }
}

/// A duration Toxiproxy can take: it counts these attributes in whole milliseconds.
fn whole_milliseconds(issues: &mut Issues, value: &Value, path: &KeyPath) -> Option<Duration> {
    let duration = reader::duration(issues, value, path)?;
    if duration::is_whole_milliseconds(duration) {
        return Some(duration);
    }
    let message = format!(
        "Toxiproxy takes this attribute in whole milliseconds; {} is not",
        duration::format(duration)
    );
    issues.at_value(path, message);
    None
}

fn read_links(issues: &mut Issues, value: &Value, path: &KeyPath) -> Option<Vec<Link>> {
    let link = reader::parsed(Link::parse, "a link, like \"1->2\" or \"clients->3\"");
    let links = reader::list("links, like [\"1->2\", \"clients->3\"]", &link)(issues, value, path)?;
    if links.is_empty() {
        issues.at_value(path, "expected at least one link, like [\"1->2\"]");
        return None;
    }
    for (index, link) in links.iter().enumerate() {
        if links[..index].contains(link) {
            issues.at_value(&path.index(index), format!("`{link}` is listed twice"));
            return None;
        }
    }
    Some(links)
}

/// `node: 2` or any target, `node: leader(events/0)`.
fn read_node(issues: &mut Issues, value: &Value, path: &KeyPath) -> Option<Target> {
    match value {
        Value::Number(_) => {
            let node_id = reader::whole(1..=u64::from(MAX_NODES), "a node id");
            let id = node_id(issues, value, path)?;
            Some(Target::Node(u32::try_from(id).ok()?))
        }
        Value::String(_) => reader::parsed(Target::parse, "a target")(issues, value, path),
        other => {
            let message = format!(
                "expected a node id or a target ({TARGET_FORMS}), found {}",
                describe(other)
            );
            issues.at_value(path, message);
            None
        }
    }
}
