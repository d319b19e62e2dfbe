//! Which links a `partition` cuts. Pure: the nodes, the split and the seeded generator in, the
//! directed links to cut out. A cut link is a disabled proxy, so one direction can be cut
//! without the other; a partition between groups cuts both directions.

use rand::seq::SliceRandom;
use rand::Rng;

use crate::scenario::{Link, NodeId};

/// Nodes that may talk to each other: `connected[i]` lists who node `nodes[i]` can reach.
/// Every ordered pair of distinct nodes not connected is cut.
fn cut_between(nodes: &[NodeId], connected: impl Fn(NodeId, NodeId) -> bool) -> Vec<Link> {
    let mut cut = Vec::new();
    for &from in nodes {
        for &to in nodes {
            if from != to && !connected(from, to) {
                cut.push(Link::Peer { from, to });
            }
        }
    }
    cut
}

/// Nodes talk only within their group.
pub fn groups(nodes: &[NodeId], groups: &[Vec<NodeId>]) -> Vec<Link> {
    let group_of = |node: NodeId| groups.iter().position(|group| group.contains(&node));
    cut_between(nodes, |from, to| group_of(from) == group_of(to))
}

/// The nodes on a ring in a seeded order; each sees the nodes within `reach` places of it on
/// either side, where `reach` is the smallest that makes what it sees (itself included) a
/// majority. Every node sees a majority, and no two see the same one. Returns the cut links
/// and the ring order.
pub fn majorities_ring(nodes: &[NodeId], random: &mut impl Rng) -> (Vec<Link>, Vec<NodeId>) {
    let mut ring = nodes.to_vec();
    ring.shuffle(random);
    let count = ring.len();
    let majority = count / 2 + 1;
    let reach = (majority - 1).div_ceil(2);
    let position = |node: NodeId| ring.iter().position(|other| *other == node).unwrap_or(0);
    let cut = cut_between(nodes, |from, to| {
        let distance = position(from).abs_diff(position(to));
        distance.min(count - distance) <= reach
    });
    (cut, ring)
}

/// Two halves that share one node, the bridge, chosen from the seed: the bridge talks to
/// everyone, the halves only among themselves. Returns the cut links and the halves (the
/// bridge in both).
pub fn bridge(
    nodes: &[NodeId],
    random: &mut impl Rng,
) -> (Vec<Link>, Vec<NodeId>, Vec<NodeId>, NodeId) {
    let mut order = nodes.to_vec();
    order.shuffle(random);
    let bridge = order.remove(0);
    let half = order.len() / 2;
    let mut first: Vec<NodeId> = order[..half].to_vec();
    let mut second: Vec<NodeId> = order[half..].to_vec();
    first.sort_unstable();
    second.sort_unstable();
    let cut = cut_between(nodes, |from, to| {
        from == bridge || to == bridge || (first.contains(&from) == first.contains(&to))
    });
    first.push(bridge);
    second.push(bridge);
    (cut, first, second, bridge)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::collections::BTreeSet;

    fn reachable(nodes: &[NodeId], cut: &[Link], from: NodeId) -> BTreeSet<NodeId> {
        nodes
            .iter()
            .copied()
            .filter(|to| *to == from || !cut.contains(&Link::Peer { from, to: *to }))
            .collect()
    }

    #[test]
    fn groups_cut_both_directions_between_groups_only() {
        let cut = groups(&[1, 2, 3], &[vec![1], vec![2, 3]]);
        let mut expected = vec![
            Link::Peer { from: 1, to: 2 },
            Link::Peer { from: 1, to: 3 },
            Link::Peer { from: 2, to: 1 },
            Link::Peer { from: 3, to: 1 },
        ];
        let mut cut_sorted = cut.clone();
        let key = |link: &Link| link.to_string();
        cut_sorted.sort_by_key(key);
        expected.sort_by_key(key);
        assert_eq!(cut_sorted, expected);
    }

    #[test]
    fn every_node_of_a_majorities_ring_sees_its_own_majority() {
        for count in 4..=7u32 {
            for seed in 0..5 {
                let nodes: Vec<NodeId> = (1..=count).collect();
                let mut random = ChaCha8Rng::seed_from_u64(seed);
                let (cut, _) = majorities_ring(&nodes, &mut random);
                let mut seen = BTreeSet::new();
                for &node in &nodes {
                    let view = reachable(&nodes, &cut, node);
                    assert!(view.len() > nodes.len() / 2, "{count} nodes: {view:?}");
                    assert!(view.len() < nodes.len(), "{count} nodes: nothing cut");
                    assert!(
                        seen.insert(view),
                        "{count} nodes: two nodes share a majority"
                    );
                }
                for link in &cut {
                    let Link::Peer { from, to } = *link else {
                        unreachable!()
                    };
                    assert!(
                        cut.contains(&Link::Peer { from: to, to: from }),
                        "symmetric"
                    );
                }
            }
        }
    }

    #[test]
    fn a_bridge_reaches_both_halves_which_do_not_reach_each_other() {
        let nodes = [1, 2, 3, 4, 5];
        let mut random = ChaCha8Rng::seed_from_u64(3);
        let (cut, first, second, bridge) = bridge(&nodes, &mut random);
        assert_eq!(reachable(&nodes, &cut, bridge).len(), 5);
        for &node in first.iter().filter(|node| **node != bridge) {
            let view = reachable(&nodes, &cut, node);
            assert_eq!(view, first.iter().copied().collect());
        }
        for &node in second.iter().filter(|node| **node != bridge) {
            assert_eq!(
                reachable(&nodes, &cut, node),
                second.iter().copied().collect()
            );
        }
    }

    #[test]
    fn the_same_seed_makes_the_same_ring() {
        let nodes = [1, 2, 3, 4, 5];
        let ring = |seed| majorities_ring(&nodes, &mut ChaCha8Rng::seed_from_u64(seed)).1;
        assert_eq!(ring(11), ring(11));
    }
}
