//! Request decoding and response encoding over `kafka-protocol`'s generated messages.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

use super::versions;

/// A request frame, decoded.
#[derive(Debug)]
pub struct DecodedRequest {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: RequestKind,
}

/// Why a frame could not become a request. Each carries what is needed to log it clearly;
/// `UnsupportedVersion` of ApiVersions is answered, the rest close the connection (as Kafka
/// brokers do).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("frame of {size_bytes} bytes is too short for a request header")]
    TooShort { size_bytes: usize },
    #[error("unknown API key {api_key} (correlation id {correlation_id})")]
    UnknownApiKey { api_key: i16, correlation_id: i32 },
    #[error("{api_key:?} version {version} is not supported (correlation id {correlation_id})")]
    UnsupportedVersion {
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
    },
    #[error(
        "malformed {api_key:?} v{version} request (correlation id {correlation_id}): {reason}"
    )]
    Malformed {
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        reason: String,
    },
}

/// Decodes one frame (without its size prefix).
pub fn decode_request(mut frame: Bytes) -> Result<DecodedRequest, DecodeError> {
    if frame.len() < 8 {
        return Err(DecodeError::TooShort {
            size_bytes: frame.len(),
        });
    }
    let raw_api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(raw_api_key).map_err(|_| DecodeError::UnknownApiKey {
        api_key: raw_api_key,
        correlation_id,
    })?;
    if !versions::is_supported(api_key, version) {
        return Err(DecodeError::UnsupportedVersion {
            api_key,
            version,
            correlation_id,
        });
    }
    let malformed = |reason: anyhow::Error| DecodeError::Malformed {
        api_key,
        version,
        correlation_id,
        reason: format!("{reason:#}"),
    };
    let header = RequestHeader::decode(&mut frame, api_key.request_header_version(version))
        .map_err(malformed)?;
    let body = RequestKind::decode(api_key, &mut frame, version).map_err(malformed)?;
    Ok(DecodedRequest {
        api_key,
        header,
        body,
    })
}

/// Encodes a response with its size prefix, ready to write.
pub fn encode_response(
    correlation_id: i32,
    version: i16,
    response: &ResponseKind,
) -> anyhow::Result<Bytes> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = response.header_version(version);
    let mut buffer = BytesMut::with_capacity(256);
    buffer.put_i32(0);
    header.encode(&mut buffer, header_version)?;
    response.encode(&mut buffer, version)?;
    let size_bytes = i32::try_from(buffer.len() - 4)?;
    buffer[0..4].copy_from_slice(&size_bytes.to_be_bytes());
    Ok(buffer.freeze())
}

/// The answer to an ApiVersions request at a version the broker does not support: Kafka's
/// rule is to answer in v0 with UNSUPPORTED_VERSION and the full table, so the client can pick.
pub fn unsupported_api_versions_response(correlation_id: i32) -> anyhow::Result<Bytes> {
    let response = crate::handlers::api_versions::supported_versions_response()
        .with_error_code(kafka_protocol::error::ResponseError::UnsupportedVersion.code());
    encode_response(correlation_id, 0, &ResponseKind::ApiVersions(response))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{MetadataRequest, RequestHeader};
    use kafka_protocol::protocol::StrBytes;
    use proptest::prelude::*;

    fn encode_request(api_key: ApiKey, version: i16, body: &RequestKind) -> Bytes {
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(42)
            .with_client_id(Some(StrBytes::from_static_str("test")));
        let mut buffer = BytesMut::new();
        header
            .encode(&mut buffer, api_key.request_header_version(version))
            .unwrap();
        body.encode(&mut buffer, version).unwrap();
        buffer.freeze()
    }

    #[test]
    fn a_metadata_request_round_trips() {
        let body = RequestKind::Metadata(MetadataRequest::default().with_topics(None));
        let decoded = decode_request(encode_request(ApiKey::Metadata, 9, &body)).unwrap();
        assert_eq!(decoded.api_key, ApiKey::Metadata);
        assert_eq!(decoded.header.correlation_id, 42);
    }

    #[test]
    fn unknown_keys_and_versions_are_named() {
        let frame = Bytes::from_static(&[0x7f, 0x00, 0, 1, 0, 0, 0, 9]);
        assert!(matches!(
            decode_request(frame),
            Err(DecodeError::UnknownApiKey {
                api_key: 0x7f00,
                correlation_id: 9
            })
        ));
        let frame = Bytes::from_static(&[0, 3, 0x7f, 0, 0, 0, 0, 9]);
        assert!(matches!(
            decode_request(frame),
            Err(DecodeError::UnsupportedVersion {
                api_key: ApiKey::Metadata,
                ..
            })
        ));
    }

    #[test]
    fn an_array_claiming_two_billion_topics_is_an_error_not_an_abort() {
        // Metadata v1: header (key, version, correlation, client id -1), then the topic array
        // length claiming i32::MAX entries with nothing after it.
        let mut frame = vec![0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff];
        frame.extend_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(
            decode_request(Bytes::from(frame)),
            Err(DecodeError::Malformed { .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn arbitrary_frames_never_panic(
            api_index in 0usize..versions::SUPPORTED_APIS.len(),
            version_offset in 0i16..16,
            body in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let (api_key, min, max) = versions::SUPPORTED_APIS[api_index];
            let version = (min + version_offset).min(max);
            let mut frame = Vec::with_capacity(8 + body.len());
            frame.extend_from_slice(&(api_key as i16).to_be_bytes());
            frame.extend_from_slice(&version.to_be_bytes());
            frame.extend_from_slice(&7i32.to_be_bytes());
            frame.extend_from_slice(&body);
            let _ = decode_request(Bytes::from(frame));
        }
    }
}
