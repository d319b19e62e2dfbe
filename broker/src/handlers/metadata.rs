use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

use crate::broker::Broker;
use crate::catalog::{CatalogError, TopicSpec};
use crate::cluster::replicas::GroupView;
use crate::cluster::MetadataError;

/// The cluster id reported to clients.
pub const CLUSTER_ID: &str = "chronik";

pub async fn handle(broker: &Broker, version: i16, request: MetadataRequest) -> MetadataResponse {
    let brokers = broker
        .catalog
        .brokers()
        .into_iter()
        .map(|address| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(address.node_id))
                .with_host(StrBytes::from_string(address.host))
                .with_port(address.port)
        })
        .collect();
    // v0-3 always allow auto-creation; v4+ ask for it explicitly.
    let may_create =
        broker.config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
    let lookups = match request.topics {
        // v0 has no null: an empty list means all topics; v1+ null means all.
        None => all_topics(broker),
        Some(requested) if requested.is_empty() && version == 0 => all_topics(broker),
        Some(requested) => {
            let mut lookups = Vec::with_capacity(requested.len());
            for topic in requested {
                lookups.push(match topic.name {
                    Some(name) => describe_or_create(broker, name.0.as_str(), may_create).await,
                    None => broker
                        .catalog
                        .topic_by_id(topic.topic_id)
                        .ok_or((String::new(), ResponseError::UnknownTopicId.code())),
                });
            }
            lookups
        }
    };
    let topics = lookups
        .into_iter()
        .map(|topic| match topic {
            Ok(spec) => describe_topic(broker, &spec),
            Err((name, error_code)) => MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(name))))
                .with_error_code(error_code),
        })
        .collect();
    let controller = broker.cluster.metadata_leader().unwrap_or(-1);
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_static_str(CLUSTER_ID)))
        .with_controller_id(BrokerId(controller))
        .with_topics(topics)
        .with_cluster_authorized_operations(i32::MIN)
}

type TopicLookup = Result<TopicSpec, (String, i16)>;

fn all_topics(broker: &Broker) -> Vec<TopicLookup> {
    broker.catalog.topics().into_iter().map(Ok).collect()
}

async fn describe_or_create(broker: &Broker, name: &str, may_create: bool) -> TopicLookup {
    if let Some(spec) = broker.catalog.topic(name) {
        return Ok(spec);
    }
    if !may_create {
        return Err((
            name.to_string(),
            ResponseError::UnknownTopicOrPartition.code(),
        ));
    }
    let replication_factor = (broker.catalog.nodes().len() as i16).min(3);
    let created = broker
        .create_topic(
            name,
            broker.config.default_partitions,
            replication_factor,
            BTreeMap::new(),
        )
        .await;
    match created {
        Ok(spec) => Ok(spec),
        // Created by a concurrent request in the meantime.
        Err(MetadataError::Refused(CatalogError::AlreadyExists(_))) => {
            broker.catalog.topic(name).ok_or((
                name.to_string(),
                ResponseError::UnknownTopicOrPartition.code(),
            ))
        }
        Err(MetadataError::Refused(CatalogError::InvalidName { .. })) => Err((
            name.to_string(),
            ResponseError::InvalidTopicException.code(),
        )),
        // Not created yet: the client retries its metadata request.
        Err(_) => Err((name.to_string(), ResponseError::LeaderNotAvailable.code())),
    }
}

fn describe_topic(broker: &Broker, spec: &TopicSpec) -> MetadataResponseTopic {
    let partitions = spec
        .assignments
        .iter()
        .enumerate()
        .map(|(index, assignment)| {
            let replicas: Vec<BrokerId> =
                assignment.replicas.iter().map(|id| BrokerId(*id)).collect();
            let view = broker.cluster.view(assignment.group_id);
            // The leader knows who is in sync and tells the others (`cluster::leadership`);
            // until a node has heard, it reports every replica.
            let in_sync: Vec<BrokerId> = if view.is_leader || !view.in_sync.is_empty() {
                view.in_sync.iter().map(|id| BrokerId(*id)).collect()
            } else {
                replicas.clone()
            };
            let partition = MetadataResponsePartition::default()
                .with_partition_index(index as i32)
                .with_replica_nodes(replicas)
                .with_isr_nodes(in_sync)
                .with_leader_epoch(view.term.min(i32::MAX as u64) as i32);
            let transport = broker.cluster.transport();
            match named_leader(
                &view,
                broker.cluster.node_id,
                |node| transport.is_connected(node),
                transport.reaches_majority(),
            ) {
                Some(leader) => partition.with_leader_id(BrokerId(leader as i32)),
                None => partition
                    .with_error_code(ResponseError::LeaderNotAvailable.code())
                    .with_leader_id(BrokerId(-1)),
            }
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(spec.name.clone()))))
        .with_topic_id(spec.topic_id)
        .with_partitions(partitions)
        .with_topic_authorized_operations(i32::MIN)
}

/// The leader Metadata names for a group; `None` says "no leader" (LEADER_NOT_AVAILABLE), so
/// the client asks again soon.
/// - The leader this node follows, when that is this node or one it has a connection to.
/// - Otherwise, when this node reaches a majority of the cluster, no leader: its view is
///   current, so a leader it cannot reach is probably gone, and a client should not wait on a
///   dead node.
/// - Otherwise this node is the one cut off, and its view is stale (a node that starts an
///   election forgets its leader): it names the last leader it knew, unless that was itself.
///   The client then tries that leader directly, which usually still leads. Saying "no
///   leader" here would leave every partition leaderless for a client that keeps asking this
///   node, and librdkafka keeps asking the broker it heard from last.
fn named_leader(
    view: &GroupView,
    this_node: u64,
    is_connected: impl Fn(u64) -> bool,
    reaches_majority: bool,
) -> Option<u64> {
    if view.leader != 0 && (view.leader == this_node || is_connected(view.leader)) {
        return Some(view.leader);
    }
    if reaches_majority || view.last_leader == 0 || view.last_leader == this_node {
        return None;
    }
    Some(view.last_leader)
}

#[cfg(test)]
mod tests {
    use super::*;

    const THIS_NODE: u64 = 1;

    fn view(leader: u64, last_leader: u64) -> GroupView {
        GroupView {
            leader,
            last_leader,
            ..GroupView::default()
        }
    }

    #[test]
    fn a_leader_this_node_is_or_reaches_is_named() {
        let nobody = |_| false;
        assert_eq!(named_leader(&view(1, 1), THIS_NODE, nobody, false), Some(1));
        assert_eq!(
            named_leader(&view(2, 2), THIS_NODE, |node| node == 2, true),
            Some(2)
        );
    }

    #[test]
    fn a_node_in_the_majority_names_no_leader_it_cannot_reach() {
        let only_node_3 = |node| node == 3;
        assert_eq!(
            named_leader(&view(2, 2), THIS_NODE, only_node_3, true),
            None
        );
        assert_eq!(
            named_leader(&view(0, 2), THIS_NODE, only_node_3, true),
            None
        );
    }

    #[test]
    fn a_cut_off_node_names_the_last_leader_it_knew_other_than_itself() {
        let nobody = |_| false;
        assert_eq!(named_leader(&view(2, 2), THIS_NODE, nobody, false), Some(2));
        assert_eq!(named_leader(&view(0, 3), THIS_NODE, nobody, false), Some(3));
        assert_eq!(
            named_leader(&view(0, 1), THIS_NODE, nobody, false),
            None,
            "itself"
        );
        assert_eq!(
            named_leader(&view(0, 0), THIS_NODE, nobody, false),
            None,
            "never knew"
        );
    }
}
