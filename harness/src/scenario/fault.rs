//! Faults: what a scenario does to the cluster, and when.
//!
//! Process faults act on one `target`. Network faults go through the Toxiproxy API: a
//! `partition` cuts node-to-node links (clients keep reaching every node; cut those with a toxic
//! on `clients->i`), `heal` removes every partition and toxic, and a toxic degrades the links it
//! names. Toxic attributes keep Toxiproxy's names; its durations are written with units and must
//! be whole milliseconds, except the slicer's `delay` (whole microseconds), as Toxiproxy takes.
//! A network fault without `duration` lasts until a `heal` (or the end of the run).

use std::time::Duration;

use super::model::NodeId;
use super::target::{Link, PartitionRef, Target};

/// One fault: at `at` (from the start of the measured window), do `action`.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    pub at: Duration,
    pub action: Action,
}

impl Fault {
    pub fn kind(&self) -> FaultKind {
        match &self.action {
            Action::Process { kind, .. } => *kind,
            Action::Partition { .. } => FaultKind::Partition,
            Action::Heal => FaultKind::Heal,
            Action::Toxic(toxic) => toxic.toxic.kind(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// `kill`, `stop`, `pause`, `resume`, `restart` or `wipe` (`kind` is one of these).
    Process { kind: FaultKind, target: Target },
    /// `partition`: cut the links between the groups; `duration` as for toxics.
    Partition {
        split: Split,
        duration: Option<Duration>,
    },
    /// `heal`: remove every partition and toxic.
    Heal,
    /// `latency`, `bandwidth`, `timeout`, `reset_peer`, `slow_close`, `slicer`, `limit_data`.
    Toxic(ToxicFault),
}

/// How a `partition` splits the nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Split {
    /// `groups: [[1], [2, 3]]`: nodes talk only within their group. Every node is in exactly
    /// one group, and there are at least two groups.
    Groups(Vec<Vec<NodeId>>),
    /// `mode: isolate-leader(topic/p)`: the partition's leader (at that moment) alone.
    IsolateLeader(PartitionRef),
    /// `mode: majorities-ring`: every node sees a majority, no two see the same one
    /// (at least 4 nodes; on 3 every majority ring is the full mesh).
    MajoritiesRing,
    /// `mode: bridge`: two halves that one node (the bridge) belongs to both of (at least 3 nodes).
    Bridge,
}

impl Split {
    /// The text of a `mode` (`None` for `groups`).
    pub fn mode(&self) -> Option<String> {
        match self {
            Self::Groups(_) => None,
            Self::IsolateLeader(partition) => Some(format!("isolate-leader({partition})")),
            Self::MajoritiesRing => Some("majorities-ring".to_string()),
            Self::Bridge => Some("bridge".to_string()),
        }
    }

    /// Reads a `mode`.
    pub fn parse_mode(text: &str) -> Result<Self, String> {
        match text {
            "majorities-ring" => return Ok(Self::MajoritiesRing),
            "bridge" => return Ok(Self::Bridge),
            _ => {}
        }
        if let Some(partition) = text
            .strip_prefix("isolate-leader(")
            .and_then(|rest| rest.strip_suffix(')'))
        {
            return PartitionRef::parse(partition).map(Self::IsolateLeader);
        }
        Err(format!(
            "`{text}` is not a partition mode: expected isolate-leader(topic/partition), majorities-ring or bridge"
        ))
    }
}

/// A Toxiproxy toxic on some links, for a while.
#[derive(Clone, Debug, PartialEq)]
pub struct ToxicFault {
    pub toxic: Toxic,
    /// `links` or `node`; exactly one of them.
    pub scope: Scope,
    /// Default: `Stream::Upstream`, the direction the link's arrow points.
    pub stream: Stream,
    /// The share of connections affected, 0.0 to 1.0. Default: 1.0.
    pub toxicity: f64,
    /// Default (`None`): until `heal`.
    pub duration: Option<Duration>,
}

/// Which links a toxic is on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// `links: ["1->2", "clients->3"]`
    Links(Vec<Link>),
    /// `node: 2` or `node: leader(events/0)`: every link to and from the node, clients' too.
    Node(Target),
}

/// Which way through a link's proxy. Toxiproxy's `upstream` is what the dialing side sends
/// (for `1->2`, what 1 sends to 2; for `clients->3`, the clients' requests); `downstream` is
/// what comes back on that connection (responses to clients). Toxiproxy's own default is
/// `downstream`; the bench defaults to `upstream` because a node sends only on the
/// connections it dialed, so `downstream` on `i->j` carries next to nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Upstream,
    Downstream,
}

/// A toxic and its attributes (Toxiproxy's names; `Duration`s where Toxiproxy takes ms or us).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Toxic {
    /// Delay data by `latency` ± `jitter` (default jitter 0).
    Latency { latency: Duration, jitter: Duration },
    /// Limit to `rate` KB/s (at least 1).
    Bandwidth { rate: u64 },
    /// Stop all data; close the connection after `timeout` (0: never, drop data until removed).
    Timeout { timeout: Duration },
    /// Reset connections (TCP RST) after `timeout` (default 0: at once).
    ResetPeer { timeout: Duration },
    /// Delay the close of a connection by `delay`.
    SlowClose { delay: Duration },
    /// Cut data into packets of `average_size` ± `size_variation` bytes (default variation 0,
    /// below the average), `delay` between them (whole microseconds, default 0).
    Slicer {
        average_size: u64,
        size_variation: u64,
        delay: Duration,
    },
    /// Close a connection once `bytes` have passed through it.
    LimitData { bytes: u64 },
}

impl Toxic {
    pub fn kind(&self) -> FaultKind {
        match self {
            Self::Latency { .. } => FaultKind::Latency,
            Self::Bandwidth { .. } => FaultKind::Bandwidth,
            Self::Timeout { .. } => FaultKind::Timeout,
            Self::ResetPeer { .. } => FaultKind::ResetPeer,
            Self::SlowClose { .. } => FaultKind::SlowClose,
            Self::Slicer { .. } => FaultKind::Slicer,
            Self::LimitData { .. } => FaultKind::LimitData,
        }
    }
}

/// Every `kind` a fault may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    Kill,
    Stop,
    Pause,
    Resume,
    Restart,
    Wipe,
    Partition,
    Heal,
    Latency,
    Bandwidth,
    Timeout,
    ResetPeer,
    SlowClose,
    Slicer,
    LimitData,
}

/// Keys every fault has.
pub const COMMON_KEYS: [&str; 2] = ["at", "kind"];
/// Keys every toxic has, besides its own attributes.
pub const TOXIC_KEYS: [&str; 5] = ["links", "node", "stream", "toxicity", "duration"];

impl FaultKind {
    /// Each kind with its name in the scenario.
    pub const ALL: [(&'static str, FaultKind); 15] = [
        ("kill", Self::Kill),
        ("stop", Self::Stop),
        ("pause", Self::Pause),
        ("resume", Self::Resume),
        ("restart", Self::Restart),
        ("wipe", Self::Wipe),
        ("partition", Self::Partition),
        ("heal", Self::Heal),
        ("latency", Self::Latency),
        ("bandwidth", Self::Bandwidth),
        ("timeout", Self::Timeout),
        ("reset_peer", Self::ResetPeer),
        ("slow_close", Self::SlowClose),
        ("slicer", Self::Slicer),
        ("limit_data", Self::LimitData),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, kind)| *kind == self)
            .map(|(name, _)| *name)
            .unwrap_or("?")
    }

    pub fn is_process(self) -> bool {
        matches!(
            self,
            Self::Kill | Self::Stop | Self::Pause | Self::Resume | Self::Restart | Self::Wipe
        )
    }

    pub fn is_toxic(self) -> bool {
        !self.is_process() && !matches!(self, Self::Partition | Self::Heal)
    }

    /// The keys only this kind has (besides `COMMON_KEYS`, and `TOXIC_KEYS` for a toxic).
    pub fn own_keys(self) -> &'static [&'static str] {
        match self {
            Self::Kill | Self::Stop | Self::Pause | Self::Resume | Self::Restart | Self::Wipe => {
                &["target"]
            }
            Self::Partition => &["groups", "mode", "duration"],
            Self::Heal => &[],
            Self::Latency => &["latency", "jitter"],
            Self::Bandwidth => &["rate"],
            Self::Timeout | Self::ResetPeer => &["timeout"],
            Self::SlowClose => &["delay"],
            Self::Slicer => &["average_size", "size_variation", "delay"],
            Self::LimitData => &["bytes"],
        }
    }

    /// Every key a fault of this kind may have.
    pub fn keys(self) -> Vec<&'static str> {
        let mut keys = COMMON_KEYS.to_vec();
        keys.extend_from_slice(self.own_keys());
        if self.is_toxic() {
            keys.extend_from_slice(&TOXIC_KEYS);
        }
        keys
    }
}
