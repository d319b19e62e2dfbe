//! Kafka's byte formats, and nothing else knows them: framing, request/response codecs
//! (through the `kafka-protocol` crate), the table of supported versions, and the record batch
//! header. Handlers only ever see typed requests.

pub mod codec;
pub mod frame;
pub mod record_batch;
pub mod versions;
