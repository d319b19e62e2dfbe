//! Length-prefixed frames: a big-endian i32 size, then that many bytes.
//!
//! An incomplete frame is normal (read more); a negative size or one above the configured
//! limit is a protocol error that closes the connection. Memory grows with the bytes that
//! actually arrive, never with what a size field claims.

use bytes::{Buf, Bytes, BytesMut};

/// How much buffer is reserved ahead of the bytes that have arrived.
pub const READ_AHEAD_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame size {size_bytes} is negative")]
    NegativeSize { size_bytes: i32 },
    #[error("frame size {size_bytes} exceeds the limit of {limit_bytes} bytes")]
    TooLarge {
        size_bytes: usize,
        limit_bytes: usize,
    },
}

/// Takes one complete frame off the front of `buffer`, or returns `None` when more bytes are
/// needed. The returned frame excludes the size prefix.
pub fn take_frame(buffer: &mut BytesMut, limit_bytes: usize) -> Result<Option<Bytes>, FrameError> {
    if buffer.len() < 4 {
        return Ok(None);
    }
    let size_bytes = i32::from_be_bytes([buffer[0], buffer[1], buffer[2], buffer[3]]);
    if size_bytes < 0 {
        return Err(FrameError::NegativeSize { size_bytes });
    }
    let size_bytes = size_bytes as usize;
    if size_bytes > limit_bytes {
        return Err(FrameError::TooLarge {
            size_bytes,
            limit_bytes,
        });
    }
    if buffer.len() < 4 + size_bytes {
        let missing = 4 + size_bytes - buffer.len();
        buffer.reserve(missing.min(READ_AHEAD_BYTES));
        return Ok(None);
    }
    buffer.advance(4);
    Ok(Some(buffer.split_to(size_bytes).freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_frames_wait_for_more_bytes() {
        let mut buffer = BytesMut::from(&[0u8, 0, 0, 5, 1, 2][..]);
        assert_eq!(take_frame(&mut buffer, 100), Ok(None));
        buffer.extend_from_slice(&[3, 4, 5, 9]);
        assert_eq!(
            take_frame(&mut buffer, 100),
            Ok(Some(Bytes::from_static(&[1, 2, 3, 4, 5])))
        );
        assert_eq!(&buffer[..], &[9]);
    }

    #[test]
    fn oversized_and_negative_sizes_are_errors() {
        let mut buffer = BytesMut::from(&(101i32).to_be_bytes()[..]);
        assert!(matches!(
            take_frame(&mut buffer, 100),
            Err(FrameError::TooLarge { .. })
        ));
        let mut buffer = BytesMut::from(&(-1i32).to_be_bytes()[..]);
        assert!(matches!(
            take_frame(&mut buffer, 100),
            Err(FrameError::NegativeSize { .. })
        ));
    }

    #[test]
    fn a_huge_claim_reserves_only_read_ahead() {
        let mut buffer = BytesMut::from(&(90_000_000i32).to_be_bytes()[..]);
        assert_eq!(take_frame(&mut buffer, 100_000_000), Ok(None));
        assert!(buffer.capacity() <= 4 + READ_AHEAD_BYTES + 64);
    }
}
