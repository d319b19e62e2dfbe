//! ListOffsets: earliest (-2), latest (-1), and by timestamp (the first batch at or after it).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::broker::Broker;

pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;

pub async fn handle(
    broker: &Broker,
    version: i16,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .into_iter()
                .map(|wanted| {
                    let response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(wanted.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        // leader_epoch exists from v4; older versions must leave it unset.
                        .with_leader_epoch(if version >= 4 { 0 } else { -1 });
                    let Some(partition) = broker.partition(&topic.name.0, wanted.partition_index)
                    else {
                        return response
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    match wanted.timestamp {
                        LATEST_TIMESTAMP => response.with_offset(partition.high_watermark()),
                        EARLIEST_TIMESTAMP => response.with_offset(partition.log_start_offset()),
                        timestamp_ms => match partition.offset_for_timestamp(timestamp_ms) {
                            Ok(Some((offset, timestamp))) => {
                                response.with_offset(offset).with_timestamp(timestamp)
                            }
                            Ok(None) => response,
                            Err(_) => {
                                response.with_error_code(ResponseError::KafkaStorageError.code())
                            }
                        },
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
