//! What a fault acts on: targets (`node:2`, `leader(events/0)`, `follower(events/0)`, `random`,
//! `killed`, `paused`), network links (`1->2`, `clients->3`) and partitions (`events/0`).
//! Each parses from and displays as its scenario text, so `parse(x.to_string()) == x`.
//! Whether a node, topic or partition exists is checked later, against the whole scenario.

use std::fmt;
use std::str::FromStr;

use super::model::NodeId;

/// The longest topic name Kafka accepts.
pub const MAX_TOPIC_NAME_LENGTH: usize = 249;

/// Kafka's topic-name rules: 1 to 249 of ASCII letters, digits, `.`, `_`, `-`; not `.` or `..`.
pub fn check_topic_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > MAX_TOPIC_NAME_LENGTH || name == "." || name == ".." {
        return Err(format!(
            "`{name}` is not a topic name: expected 1 to {MAX_TOPIC_NAME_LENGTH} characters, not `.` or `..`"
        ));
    }
    match name.chars().find(|c| !allowed(*c)) {
        Some(c) => Err(format!(
            "`{name}` is not a topic name: `{c}` is not allowed (letters, digits, `.`, `_`, `-`)"
        )),
        None => Ok(()),
    }
}

/// A node id as written in targets and links: a whole number from 1.
fn parse_node_id(text: &str, whole: &str) -> Result<NodeId, String> {
    match text.parse::<NodeId>() {
        Ok(0) => Err(format!("`{whole}`: node ids start at 1")),
        Ok(id) if text.chars().all(|c| c.is_ascii_digit()) => Ok(id),
        _ => Err(format!("`{whole}`: `{text}` is not a node id (1, 2, ...)")),
    }
}

/// One partition of one topic: `events/0`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PartitionRef {
    pub topic: String,
    pub partition: u32,
}

impl PartitionRef {
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some((topic, partition)) = text.rsplit_once('/') else {
            return Err(format!(
                "`{text}` is not a partition: expected topic/partition, like events/0"
            ));
        };
        check_topic_name(topic)?;
        let partition = partition
            .parse::<u32>()
            .ok()
            .filter(|_| partition.chars().all(|c| c.is_ascii_digit()))
            .ok_or_else(|| {
                format!("`{text}`: `{partition}` is not a partition number (0, 1, ...)")
            })?;
        Ok(Self {
            topic: topic.to_string(),
            partition,
        })
    }
}

impl fmt::Display for PartitionRef {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.topic, self.partition)
    }
}

/// The node a process fault (or a toxic's `node`) acts on, resolved when the fault fires.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// `node:N`
    Node(NodeId),
    /// `leader(topic/p)`: the partition's leader at that moment.
    Leader(PartitionRef),
    /// `follower(topic/p)`: one of the partition's followers (chosen from the seed).
    Follower(PartitionRef),
    /// `random`: any node (chosen from the seed).
    Random,
    /// `killed`: the node most recently killed, stopped or wiped.
    Killed,
    /// `paused`: the node most recently paused.
    Paused,
}

/// What a target error ends with.
pub const TARGET_FORMS: &str =
    "node:N, leader(topic/partition), follower(topic/partition), random, killed or paused";

impl Target {
    pub fn parse(text: &str) -> Result<Self, String> {
        let inside = |prefix: &str| {
            text.strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(')'))
        };
        match text {
            "random" => return Ok(Self::Random),
            "killed" => return Ok(Self::Killed),
            "paused" => return Ok(Self::Paused),
            _ => {}
        }
        if let Some(id) = text.strip_prefix("node:") {
            return parse_node_id(id, text).map(Self::Node);
        }
        if let Some(partition) = inside("leader(") {
            return PartitionRef::parse(partition).map(Self::Leader);
        }
        if let Some(partition) = inside("follower(") {
            return PartitionRef::parse(partition).map(Self::Follower);
        }
        Err(format!("`{text}` is not a target: expected {TARGET_FORMS}"))
    }
}

impl FromStr for Target {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::parse(text)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Node(id) => write!(formatter, "node:{id}"),
            Self::Leader(partition) => write!(formatter, "leader({partition})"),
            Self::Follower(partition) => write!(formatter, "follower({partition})"),
            Self::Random => formatter.write_str("random"),
            Self::Killed => formatter.write_str("killed"),
            Self::Paused => formatter.write_str("paused"),
        }
    }
}

/// One direction of traffic, which the bench proxies separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Link {
    /// `i->j`: what node `from` sends to node `to` (on the connection `from` dialed).
    Peer { from: NodeId, to: NodeId },
    /// `clients->i`: the bench's Kafka clients' connections to node `to`.
    Clients { to: NodeId },
}

impl Link {
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some((from, to)) = text.split_once("->") else {
            return Err(format!(
                "`{text}` is not a link: expected i->j (node i to node j) or clients->i"
            ));
        };
        let to = parse_node_id(to, text)?;
        if from == "clients" {
            return Ok(Self::Clients { to });
        }
        let from = parse_node_id(from, text)?;
        if from == to {
            return Err(format!("`{text}`: a link joins two different nodes"));
        }
        Ok(Self::Peer { from, to })
    }

    /// The nodes the link names.
    pub fn nodes(&self) -> Vec<NodeId> {
        match *self {
            Self::Peer { from, to } => vec![from, to],
            Self::Clients { to } => vec![to],
        }
    }
}

impl FromStr for Link {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::parse(text)
    }
}

impl fmt::Display for Link {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Peer { from, to } => write!(formatter, "{from}->{to}"),
            Self::Clients { to } => write!(formatter, "clients->{to}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_round_trip() {
        for text in [
            "node:1",
            "node:7",
            "leader(events/0)",
            "follower(my.topic-v2_x/11)",
            "random",
            "killed",
            "paused",
        ] {
            let target = Target::parse(text).unwrap();
            assert_eq!(target.to_string(), text);
            assert_eq!(text.parse::<Target>(), Ok(target));
        }
        assert_eq!(
            Target::parse("leader(events/3)"),
            Ok(Target::Leader(PartitionRef {
                topic: "events".into(),
                partition: 3
            }))
        );
    }

    #[test]
    fn bad_targets_say_what_was_expected() {
        for (text, says) in [
            ("node:0", "start at 1"),
            ("node:x", "not a node id"),
            ("node:+1", "not a node id"),
            ("node: 1", "not a node id"),
            ("leader(events)", "expected topic/partition"),
            ("leader(events/-1)", "not a partition number"),
            ("leader(ev ents/1)", "not allowed"),
            ("leader(events/1", "not a target"),
            ("Leader(events/1)", "not a target"),
            ("any", TARGET_FORMS),
            ("", TARGET_FORMS),
        ] {
            let error = Target::parse(text).expect_err(text);
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn links_round_trip() {
        for text in ["1->2", "3->1", "clients->3"] {
            let link = Link::parse(text).unwrap();
            assert_eq!(link.to_string(), text);
            assert_eq!(text.parse::<Link>(), Ok(link));
        }
        assert_eq!(Link::parse("2->3"), Ok(Link::Peer { from: 2, to: 3 }));
        for (text, says) in [
            ("1-2", "expected i->j"),
            ("2->2", "two different nodes"),
            ("1 -> 2", "not a node id"),
            ("3->clients", "not a node id"),
            ("0->1", "start at 1"),
        ] {
            let error = Link::parse(text).expect_err(text);
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn topic_names_follow_kafka() {
        assert!(check_topic_name("events").is_ok());
        assert!(check_topic_name("a.b_c-D9").is_ok());
        assert!(check_topic_name("").is_err());
        assert!(check_topic_name("..").is_err());
        assert!(check_topic_name("a/b").is_err());
        assert!(check_topic_name(&"x".repeat(250)).is_err());
    }
}
