//! InitProducerId for idempotent (non-transactional) producers: a fresh producer id with
//! epoch 0. A producer re-initialising with its current id and epoch gets the next epoch.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use tracing::warn;

use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    _version: i16,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if request.transactional_id.is_some() {
        // No transaction coordinator: refuse clearly instead of pretending.
        return response.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    if request.producer_id.0 >= 0 && request.producer_epoch >= 0 {
        if request.producer_epoch == i16::MAX {
            // Epoch exhausted: a new id below.
        } else {
            return response
                .with_producer_id(request.producer_id)
                .with_producer_epoch(request.producer_epoch + 1);
        }
    }
    match broker.producer_ids.allocate() {
        Ok(id) => response
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(error) => {
            warn!(%error, "could not reserve producer ids");
            response.with_error_code(ResponseError::KafkaStorageError.code())
        }
    }
}
