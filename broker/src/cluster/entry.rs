//! What a Raft entry of ours carries: a small header (what it is, who proposed it, so the
//! proposer can answer its client when it is applied) and the body.
//!
//! Layout: format u8 (1), kind u8, origin node u64, proposal id u64, then the body: record
//! batches for a partition append, a JSON `MetadataCommand` for the metadata group, a
//! snapshot manifest for a snapshot record (either kind of group).

pub const FORMAT: u8 = 1;
pub const HEADER_BYTES: usize = 18;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    PartitionAppend = 1,
    Metadata = 2,
    /// A snapshot of the group was written to the object store: every replica records it
    /// and may compact its log up to it.
    SnapshotTaken = 3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryHeader {
    pub kind: EntryKind,
    pub origin_node: u64,
    pub proposal_id: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EntryError {
    #[error("entry of {0} bytes is shorter than its header")]
    TooShort(usize),
    #[error("unknown entry format {0}")]
    UnknownFormat(u8),
    #[error("unknown entry kind {0}")]
    UnknownKind(u8),
}

pub fn encode(header: EntryHeader, body: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(HEADER_BYTES + body.len());
    data.push(FORMAT);
    data.push(header.kind as u8);
    data.extend_from_slice(&header.origin_node.to_be_bytes());
    data.extend_from_slice(&header.proposal_id.to_be_bytes());
    data.extend_from_slice(body);
    data
}

pub fn decode(data: &[u8]) -> Result<(EntryHeader, &[u8]), EntryError> {
    if data.len() < HEADER_BYTES {
        return Err(EntryError::TooShort(data.len()));
    }
    if data[0] != FORMAT {
        return Err(EntryError::UnknownFormat(data[0]));
    }
    let kind = match data[1] {
        1 => EntryKind::PartitionAppend,
        2 => EntryKind::Metadata,
        3 => EntryKind::SnapshotTaken,
        other => return Err(EntryError::UnknownKind(other)),
    };
    let origin_node = u64::from_be_bytes(data[2..10].try_into().expect("8 bytes"));
    let proposal_id = u64::from_be_bytes(data[10..18].try_into().expect("8 bytes"));
    Ok((
        EntryHeader {
            kind,
            origin_node,
            proposal_id,
        },
        &data[HEADER_BYTES..],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let header = EntryHeader {
            kind: EntryKind::Metadata,
            origin_node: 3,
            proposal_id: 99,
        };
        let data = encode(header, b"body");
        assert_eq!(decode(&data), Ok((header, &b"body"[..])));
        assert_eq!(decode(&data[..5]), Err(EntryError::TooShort(5)));
        let mut wrong = data.clone();
        wrong[1] = 9;
        assert_eq!(decode(&wrong), Err(EntryError::UnknownKind(9)));
    }
}
