//! One link: one direction of one proxied connection, from a source socket to a destination.
//!
//! A reader reads chunks from the source and stamps them with the time they arrived; a writer
//! takes them in order and writes them as the link's toxics allow (`link_toxics` decides when and
//! how much). Between the two is a bounded channel, limited both in chunks
//! (`IN_FLIGHT_CHUNKS_MAX`) and in bytes (`IN_FLIGHT_BYTES_MAX`): when the writer is held back
//! (latency, bandwidth, a destination that does not read) the reader stops reading and TCP's own
//! flow control pushes back on the sender, as on a slow network.
//!
//! The writer watches the proxy's toxics while it waits for data, for time, or for a write, so a
//! toxic added or removed takes effect at once on connections that are already open, including
//! on data it already holds (a removed latency releases its chunks).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use super::link_toxics::{LinkToxics, ToxicEnd};
use super::toxic::{Stream, ToxicSnapshot};

/// The room a link's read buffer is given; a read takes at most what is left of it.
pub const READ_BUFFER_BYTES: usize = 32 * 1024;
/// Below this much room left in the read buffer, it is given room again before reading.
const READ_ROOM_MIN_BYTES: usize = 8 * 1024;
/// The most chunks read and not yet written, per link.
pub const IN_FLIGHT_CHUNKS_MAX: usize = 1024;
/// The most bytes read and not yet written, per link.
pub const IN_FLIGHT_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Why a link ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkEnd {
    /// The source closed (or failed) and everything read was written.
    SourceClosed,
    /// Writing to the destination failed.
    WriteFailed,
    /// A toxic closed the connection.
    ToxicClosed,
    /// A toxic reset the connection.
    ToxicReset,
}

impl From<ToxicEnd> for LinkEnd {
    fn from(end: ToxicEnd) -> Self {
        match end {
            ToxicEnd::Close => Self::ToxicClosed,
            ToxicEnd::Reset => Self::ToxicReset,
        }
    }
}

/// Data read from the source, holding its share of the in-flight byte budget until written.
struct Chunk {
    data: Bytes,
    arrived_at: Instant,
    _budget: OwnedSemaphorePermit,
}

/// Moves data from `source` to `destination` through the toxics of `stream`, until the source
/// closes, a write fails or a toxic ends the connection.
pub async fn run<R, W>(
    source: R,
    destination: W,
    toxics: watch::Receiver<ToxicSnapshot>,
    stream: Stream,
) -> LinkEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (sender, receiver) = mpsc::channel(IN_FLIGHT_CHUNKS_MAX);
    let budget = Arc::new(Semaphore::new(IN_FLIGHT_BYTES_MAX));
    let reader = read_chunks(source, sender, budget);
    let writer = write_chunks(destination, receiver, ToxicWatch::new(toxics), stream);
    tokio::pin!(reader, writer);
    let mut reading = true;
    loop {
        tokio::select! {
            () = &mut reader, if reading => reading = false,
            end = &mut writer => return end,
        }
    }
}

/// Reads until the source closes or fails; dropping the sender then tells the writer.
///
/// Each read lands in the unused end of a shared buffer and is split off as its chunk, so
/// data is not copied between the two sockets; a buffer is freed once its chunks are
/// written, which keeps memory within about the byte budget plus one buffer.
async fn read_chunks<R: AsyncRead + Unpin>(
    mut source: R,
    sender: mpsc::Sender<Chunk>,
    budget: Arc<Semaphore>,
) {
    let mut buffer = BytesMut::new();
    loop {
        if buffer.capacity() < READ_ROOM_MIN_BYTES {
            // Takes back the whole buffer when its chunks are all written (no new pages to
            // fault in), a new one otherwise.
            buffer.reserve(READ_BUFFER_BYTES);
        }
        let read = match source.read_buf(&mut buffer).await {
            Ok(0) => return,
            Ok(read) => read,
            Err(error) => {
                tracing::debug!(%error, "proxy link: reading failed");
                return;
            }
        };
        let arrived_at = Instant::now();
        let permits = u32::try_from(read).expect("a read fits the buffer");
        let Ok(permit) = budget.clone().acquire_many_owned(permits).await else {
            return;
        };
        let chunk = Chunk {
            data: buffer.split().freeze(),
            arrived_at,
            _budget: permit,
        };
        if sender.send(chunk).await.is_err() {
            return;
        }
    }
}

/// The proxy's toxics as a stream of changes.
struct ToxicWatch {
    receiver: watch::Receiver<ToxicSnapshot>,
    open: bool,
}

impl ToxicWatch {
    fn new(receiver: watch::Receiver<ToxicSnapshot>) -> Self {
        Self {
            receiver,
            open: true,
        }
    }

    fn current(&mut self) -> ToxicSnapshot {
        self.receiver.borrow_and_update().clone()
    }

    /// The toxics, if they changed since last seen. Checked before each piece of data, so a
    /// change the API has answered for applies to every byte read after it.
    fn changed(&mut self) -> Option<ToxicSnapshot> {
        let changed = self.open && self.receiver.has_changed().unwrap_or(false);
        changed.then(|| self.current())
    }

    /// The toxics after the next change; pending forever once the proxy is gone.
    async fn next(&mut self) -> ToxicSnapshot {
        if self.open {
            if self.receiver.changed().await.is_ok() {
                return self.current();
            }
            self.open = false;
        }
        std::future::pending().await
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

async fn write_chunks<W: AsyncWrite + Unpin>(
    mut destination: W,
    mut chunks: mpsc::Receiver<Chunk>,
    mut watch: ToxicWatch,
    stream: Stream,
) -> LinkEnd {
    let mut toxics = LinkToxics::new(stream);
    toxics.refresh(&watch.current(), Instant::now());
    loop {
        if let Some(end) = toxics.ending(Instant::now()) {
            return end.into();
        }
        tokio::select! {
            biased;
            snapshot = watch.next() => toxics.refresh(&snapshot, Instant::now()),
            () = sleep_until(toxics.next_deadline()) => {}
            chunk = chunks.recv() => match chunk {
                Some(chunk) => {
                    if let Some(end) = deliver(&mut destination, &chunk, &mut toxics, &mut watch).await {
                        return end;
                    }
                }
                None => return close_slowly(&mut toxics, &mut watch).await,
            },
        }
    }
}

/// Writes one chunk as the toxics allow; `Some` if the link ends meanwhile.
async fn deliver<W: AsyncWrite + Unpin>(
    destination: &mut W,
    chunk: &Chunk,
    toxics: &mut LinkToxics,
    watch: &mut ToxicWatch,
) -> Option<LinkEnd> {
    let mut offset = 0;
    let mut latency: Option<Duration> = None;
    let mut plan = None;
    while offset < chunk.data.len() {
        if let Some(snapshot) = watch.changed() {
            toxics.refresh(&snapshot, Instant::now());
            (latency, plan) = (None, None);
        }
        let now = Instant::now();
        if let Some(end) = toxics.ending(now) {
            return Some(end.into());
        }
        if toxics.drops_data() {
            toxics.dropped_data(now);
            return None;
        }
        let released_at = chunk.arrived_at + *latency.get_or_insert_with(|| toxics.draw_latency());
        let current =
            *plan.get_or_insert_with(|| toxics.plan(chunk.data.len() - offset, released_at, now));
        if now < current.ready_at {
            tokio::select! {
                () = tokio::time::sleep_until(current.ready_at.into()) => {}
                snapshot = watch.next() => {
                    toxics.refresh(&snapshot, Instant::now());
                    (latency, plan) = (None, None);
                }
                () = sleep_until(toxics.next_deadline()) => {}
            }
            continue;
        }
        let piece = &chunk.data[offset..offset + current.piece_bytes];
        let written = tokio::select! {
            result = destination.write(piece) => match result {
                Ok(0) => return Some(LinkEnd::WriteFailed),
                Ok(written) => written,
                Err(error) => {
                    tracing::debug!(%error, "proxy link: writing failed");
                    return Some(LinkEnd::WriteFailed);
                }
            },
            snapshot = watch.next() => {
                toxics.refresh(&snapshot, Instant::now());
                (latency, plan) = (None, None);
                continue;
            }
            () = sleep_until(toxics.next_deadline()) => continue,
        };
        offset += written;
        toxics.wrote(&current, written, Instant::now());
        plan = None;
    }
    None
}

/// The source closed and everything was written: waits out `slow_close`, watching for changes.
async fn close_slowly(toxics: &mut LinkToxics, watch: &mut ToxicWatch) -> LinkEnd {
    let closed_at = Instant::now();
    loop {
        if let Some(snapshot) = watch.changed() {
            toxics.refresh(&snapshot, Instant::now());
        }
        let now = Instant::now();
        if let Some(end) = toxics.ending(now) {
            return end.into();
        }
        let close_at = closed_at + toxics.slow_close_delay();
        if now >= close_at {
            return LinkEnd::SourceClosed;
        }
        tokio::select! {
            () = tokio::time::sleep_until(close_at.into()) => {}
            snapshot = watch.next() => toxics.refresh(&snapshot, Instant::now()),
            () = sleep_until(toxics.next_deadline()) => {}
        }
    }
}
