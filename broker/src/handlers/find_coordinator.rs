//! FindCoordinator (API key 10), v0-6: the metadata group's leader coordinates every group.
//!
//! Key type 0 (group) → the metadata leader (COORDINATOR_NOT_AVAILABLE while there is none). Key type 1 (transaction) and 2 (share group) →
//! COORDINATOR_NOT_AVAILABLE: there is no transaction or share-group coordinator yet.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::group::codes;

pub async fn handle(
    broker: &Broker,
    version: i16,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let leader = broker
        .cluster
        .metadata_leader()
        .and_then(|id| broker.catalog.broker(id));
    match leader {
        Some(address) => respond(
            address.node_id,
            &address.host,
            address.port,
            version,
            request,
        ),
        None => respond_unavailable(version, request),
    }
}

/// The answer while no coordinator is known: clients retry.
fn respond_unavailable(
    version: i16,
    mut request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    request.key_type = NO_COORDINATOR_YET;
    respond(-1, "", -1, version, request)
}

/// A key type no client sends, used to answer "no coordinator yet" through `respond`.
const NO_COORDINATOR_YET: i8 = i8::MIN;

/// Where coordinators of `key_type` live: Ok for this node, or (error, message).
fn lookup(key_type: i8) -> Result<(), (i16, &'static str)> {
    match key_type {
        0 => Ok(()),
        1 => Err((
            codes::COORDINATOR_NOT_AVAILABLE,
            "transactions are not supported by this broker",
        )),
        2 => Err((
            codes::COORDINATOR_NOT_AVAILABLE,
            "share groups are not supported by this broker",
        )),
        NO_COORDINATOR_YET => Err((
            codes::COORDINATOR_NOT_AVAILABLE,
            "no coordinator elected yet",
        )),
        _ => Err((codes::INVALID_REQUEST, "unknown coordinator key type")),
    }
}

/// The response for a node `node_id` reachable at `host:port`.
pub fn respond(
    node_id: i32,
    host: &str,
    port: i32,
    version: i16,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let mut response = FindCoordinatorResponse::default();
    response.throttle_time_ms = 0;
    let found = lookup(request.key_type);
    if version >= 4 {
        response.coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let mut coordinator = Coordinator::default();
                coordinator.key = key;
                match found {
                    Ok(()) => {
                        coordinator.node_id = BrokerId(node_id);
                        coordinator.host = StrBytes::from_string(host.to_string());
                        coordinator.port = port;
                    }
                    Err((code, message)) => {
                        coordinator.error_code = code;
                        coordinator.error_message = Some(StrBytes::from_static_str(message));
                        coordinator.node_id = BrokerId(-1);
                        coordinator.port = -1;
                    }
                }
                coordinator
            })
            .collect();
        return response;
    }
    match found {
        Ok(()) => {
            response.node_id = BrokerId(node_id);
            response.host = StrBytes::from_string(host.to_string());
            response.port = port;
        }
        Err((code, message)) => {
            response.error_code = code;
            if version >= 1 {
                response.error_message = Some(StrBytes::from_static_str(message));
            }
            response.node_id = BrokerId(-1);
            response.port = -1;
        }
    }
    response
}
