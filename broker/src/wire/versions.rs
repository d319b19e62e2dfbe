//! The one table of supported API versions. ApiVersions answers from it, the codec refuses
//! anything outside it, and a test checks that every entry has a handler and lies inside what
//! the `kafka-protocol` crate can decode.

use kafka_protocol::messages::ApiKey;

/// (API, lowest version, highest version) for every API the broker implements.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    // Record batch v2 (magic 2) starts at Produce v3 and Fetch v4; older message formats are
    // not stored, so older versions are not offered.
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 8),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeCluster, 0, 1),
];

/// The supported version range of `api_key`, if it is implemented.
pub fn supported_range(api_key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .find(|(key, _, _)| *key == api_key)
        .map(|(_, min, max)| (*min, *max))
}

pub fn is_supported(api_key: ApiKey, version: i16) -> bool {
    supported_range(api_key).is_some_and(|(min, max)| (min..=max).contains(&version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_range_is_decodable_by_the_codec_crate() {
        for (api_key, min, max) in SUPPORTED_APIS {
            let valid = api_key.valid_versions();
            assert!(
                valid.min <= *min && *max <= valid.max && min <= max,
                "{api_key:?} {min}..{max} is outside kafka-protocol's {valid}"
            );
        }
    }

    #[test]
    fn each_api_is_listed_once() {
        let mut keys: Vec<i16> = SUPPORTED_APIS
            .iter()
            .map(|(key, _, _)| *key as i16)
            .collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), SUPPORTED_APIS.len());
    }
}
