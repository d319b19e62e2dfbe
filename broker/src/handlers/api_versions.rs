use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use crate::broker::Broker;
use crate::wire::versions::SUPPORTED_APIS;

pub async fn handle(
    _broker: &Broker,
    _version: i16,
    _request: ApiVersionsRequest,
) -> ApiVersionsResponse {
    supported_versions_response()
}

/// The answer built from the one version table.
pub fn supported_versions_response() -> ApiVersionsResponse {
    let api_keys = SUPPORTED_APIS
        .iter()
        .map(|(api_key, min, max)| {
            ApiVersion::default()
                .with_api_key(*api_key as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_api_keys(api_keys)
        .with_finalized_features_epoch(-1)
}
