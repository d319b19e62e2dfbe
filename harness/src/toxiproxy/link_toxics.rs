//! The toxics as one link (one direction of one connection) applies them: which of them act on
//! this connection, their per-connection state, and what they decide for the next piece of data.
//!
//! A toxic's effect, per Toxiproxy:
//! - `latency`: each chunk leaves `latency` ± `jitter` after it was read (chunks keep their order,
//!   so a delay does not limit throughput);
//! - `bandwidth`: pieces of at most 100 ms worth of data, each leaving `size / rate` after the
//!   previous one;
//! - `slicer`: pieces of `average_size` ± `size_variation` bytes, each written on its own,
//!   `delay` apart;
//! - `limit_data`: pieces end at the limit, and the link closes when it is reached;
//! - `timeout`: data is dropped; the link closes `timeout` after the toxic began to act (never
//!   for 0);
//! - `reset_peer`: data is dropped; `timeout` after the first data the link resets;
//! - `slow_close`: when the sending side closes, the close waits `delay`.
//!
//! Several toxics on one stream compose in that fixed order, whatever order they were added in
//! (Toxiproxy chains them in the order added); several of one type add up (latency, slow_close)
//! or the strictest wins (bandwidth, limit_data; the first slicer). Whether a toxic acts on a
//! connection is drawn from its `toxicity` when the connection first sees it (or an update of it).

use std::time::{Duration, Instant};

use super::toxic::{Stream, Toxic, ToxicKind};

/// How much data a bandwidth-limited piece may hold: 100 ms worth, as Toxiproxy.
const BANDWIDTH_PIECE_MS: u64 = 100;

/// Why a toxic ends a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToxicEnd {
    /// Close the connection (`timeout`, `limit_data`).
    Close,
    /// Reset the connection (`reset_peer`).
    Reset,
}

/// The next piece of a chunk to write, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub piece_bytes: usize,
    pub ready_at: Instant,
}

/// One toxic on one connection.
#[derive(Clone, Debug)]
struct ActiveToxic {
    id: u64,
    revision: u64,
    kind: ToxicKind,
    /// Drawn from the toxicity: whether the toxic acts on this connection at all.
    acts: bool,
    /// When it began to act on this connection.
    since: Instant,
    /// `limit_data`: the bytes passed since it began.
    bytes_passed: u64,
    /// `reset_peer`: when the reset happens, once data has arrived.
    reset_at: Option<Instant>,
}

fn draw(toxicity: f64) -> bool {
    toxicity >= 1.0 || rand::random::<f64>() < toxicity
}

/// The toxics of one link and their state on it.
#[derive(Debug)]
pub struct LinkToxics {
    stream: Stream,
    active: Vec<ActiveToxic>,
    /// `bandwidth`: when the previous piece was allowed out.
    bandwidth_previous_piece_at: Option<Instant>,
    /// `slicer`: when the next piece may go.
    slicer_next_at: Option<Instant>,
}

impl LinkToxics {
    pub fn new(stream: Stream) -> Self {
        Self {
            stream,
            active: Vec::new(),
            bandwidth_previous_piece_at: None,
            slicer_next_at: None,
        }
    }

    /// Takes the proxy's current toxics: keeps the state of those that stayed, draws whether new
    /// (or updated) ones act, and forgets removed ones.
    pub fn refresh(&mut self, toxics: &[Toxic], now: Instant) {
        let mut previous = std::mem::take(&mut self.active);
        for toxic in toxics.iter().filter(|toxic| toxic.stream == self.stream) {
            let kept = previous
                .iter()
                .position(|active| active.id == toxic.id)
                .map(|index| previous.swap_remove(index));
            let active = match kept {
                Some(active) if active.revision == toxic.revision => active,
                Some(active) => ActiveToxic {
                    revision: toxic.revision,
                    kind: toxic.kind.clone(),
                    acts: draw(toxic.toxicity),
                    since: now,
                    reset_at: None,
                    ..active
                },
                None => ActiveToxic {
                    id: toxic.id,
                    revision: toxic.revision,
                    kind: toxic.kind.clone(),
                    acts: draw(toxic.toxicity),
                    since: now,
                    bytes_passed: 0,
                    reset_at: None,
                },
            };
            self.active.push(active);
        }
    }

    fn acting(&self) -> impl Iterator<Item = &ToxicKind> {
        self.active
            .iter()
            .filter(|active| active.acts)
            .map(|active| &active.kind)
    }

    /// Whether a toxic ends the link now.
    pub fn ending(&self, now: Instant) -> Option<ToxicEnd> {
        let mut end = None;
        for active in self.active.iter().filter(|active| active.acts) {
            match active.kind {
                ToxicKind::ResetPeer { .. } if active.reset_at.is_some_and(|at| at <= now) => {
                    return Some(ToxicEnd::Reset);
                }
                ToxicKind::Timeout { timeout_ms }
                    if timeout_ms > 0
                        && active.since + Duration::from_millis(timeout_ms) <= now =>
                {
                    end = Some(ToxicEnd::Close);
                }
                ToxicKind::LimitData { bytes } if active.bytes_passed >= bytes => {
                    end = Some(ToxicEnd::Close);
                }
                _ => {}
            }
        }
        end
    }

    /// The next moment `ending` may change without data or a change of toxics.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.active
            .iter()
            .filter(|active| active.acts)
            .filter_map(|active| match active.kind {
                ToxicKind::Timeout { timeout_ms } if timeout_ms > 0 => {
                    Some(active.since + Duration::from_millis(timeout_ms))
                }
                ToxicKind::ResetPeer { .. } => active.reset_at,
                _ => None,
            })
            .min()
    }

    /// Whether data is dropped (`timeout`, `reset_peer`).
    pub fn drops_data(&self) -> bool {
        self.acting().any(|kind| {
            matches!(
                kind,
                ToxicKind::Timeout { .. } | ToxicKind::ResetPeer { .. }
            )
        })
    }

    /// Data was dropped: a `reset_peer` waiting for data starts its timeout.
    pub fn dropped_data(&mut self, now: Instant) {
        for active in self.active.iter_mut().filter(|active| active.acts) {
            if let ToxicKind::ResetPeer { timeout_ms } = active.kind {
                active
                    .reset_at
                    .get_or_insert(now + Duration::from_millis(timeout_ms));
            }
        }
    }

    /// The delay for one chunk: every latency toxic's `latency` ± a draw within its `jitter`.
    pub fn draw_latency(&self) -> Duration {
        let total_ms: u64 = self
            .acting()
            .map(|kind| match *kind {
                ToxicKind::Latency {
                    latency_ms,
                    jitter_ms,
                } if jitter_ms > 0 => {
                    let jitter = rand::random_range(0..=2 * jitter_ms);
                    (latency_ms + jitter).saturating_sub(jitter_ms)
                }
                ToxicKind::Latency { latency_ms, .. } => latency_ms,
                _ => 0,
            })
            .sum();
        Duration::from_millis(total_ms)
    }

    /// How long a close waits (`slow_close`).
    pub fn slow_close_delay(&self) -> Duration {
        let total_ms: u64 = self
            .acting()
            .map(|kind| match *kind {
                ToxicKind::SlowClose { delay_ms } => delay_ms,
                _ => 0,
            })
            .sum();
        Duration::from_millis(total_ms)
    }

    fn bandwidth_rate_kilobytes_per_second(&self) -> Option<u64> {
        self.acting()
            .filter_map(|kind| match *kind {
                ToxicKind::Bandwidth {
                    rate_kilobytes_per_second,
                } if rate_kilobytes_per_second > 0 => Some(rate_kilobytes_per_second),
                _ => None,
            })
            .min()
    }

    /// The first slicer's attributes: average size, variation, delay after a piece.
    fn slicer(&self) -> Option<(u64, u64, Duration)> {
        self.acting().find_map(|kind| match *kind {
            ToxicKind::Slicer {
                average_size_bytes,
                size_variation_bytes,
                delay_us,
            } => Some((
                average_size_bytes,
                size_variation_bytes,
                Duration::from_micros(delay_us),
            )),
            _ => None,
        })
    }

    fn limit_remaining_bytes(&self) -> Option<u64> {
        self.active
            .iter()
            .filter(|active| active.acts)
            .filter_map(|active| match active.kind {
                ToxicKind::LimitData { bytes } => Some(bytes.saturating_sub(active.bytes_passed)),
                _ => None,
            })
            .min()
    }

    /// Plans the next piece of `remaining_bytes` (at least 1) of a chunk whose latency lets it
    /// out at `released_at`.
    pub fn plan(&self, remaining_bytes: usize, released_at: Instant, now: Instant) -> Plan {
        let mut piece_bytes = remaining_bytes as u64;
        let mut earliest = released_at.max(now);
        if let Some((average, variation, _)) = self.slicer() {
            // The toxic's checks keep the variation below the average: pieces are never empty.
            piece_bytes = piece_bytes.min(rand::random_range(
                average - variation..=average + variation,
            ));
            if let Some(next_at) = self.slicer_next_at {
                earliest = earliest.max(next_at);
            }
        }
        if let Some(remaining) = self.limit_remaining_bytes() {
            piece_bytes = piece_bytes.min(remaining.max(1));
        }
        let mut ready_at = earliest;
        if let Some(rate) = self.bandwidth_rate_kilobytes_per_second() {
            // 1 KB/s is one byte per millisecond.
            piece_bytes = piece_bytes.min(rate.saturating_mul(BANDWIDTH_PIECE_MS).max(1));
            let start = self
                .bandwidth_previous_piece_at
                .map_or(earliest, |previous| previous.max(earliest));
            ready_at = start + Duration::from_nanos(piece_bytes * 1_000_000 / rate);
        }
        Plan {
            piece_bytes: piece_bytes as usize,
            ready_at,
        }
    }

    /// `written` bytes of the planned piece went out at `now`.
    pub fn wrote(&mut self, plan: &Plan, written: usize, now: Instant) {
        for active in self.active.iter_mut().filter(|active| active.acts) {
            if let ToxicKind::LimitData { .. } = active.kind {
                active.bytes_passed += written as u64;
            }
        }
        if self.bandwidth_rate_kilobytes_per_second().is_some() {
            self.bandwidth_previous_piece_at = Some(plan.ready_at);
        }
        if let Some((_, _, delay)) = self.slicer() {
            self.slicer_next_at = Some(now + delay);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toxic(id: u64, stream: Stream, toxicity: f64, kind: ToxicKind) -> Toxic {
        Toxic {
            id,
            revision: id,
            name: format!("toxic{id}"),
            stream,
            toxicity,
            kind,
        }
    }

    #[test]
    fn only_toxics_of_the_link_stream_that_draw_to_act_apply() {
        let now = Instant::now();
        let mut link = LinkToxics::new(Stream::Upstream);
        let latency = |latency_ms| ToxicKind::Latency {
            latency_ms,
            jitter_ms: 0,
        };
        link.refresh(
            &[
                toxic(1, Stream::Upstream, 1.0, latency(10)),
                toxic(2, Stream::Downstream, 1.0, latency(100)),
                toxic(3, Stream::Upstream, 0.0, latency(1000)),
                toxic(4, Stream::Upstream, 1.0, latency(5)),
            ],
            now,
        );
        assert_eq!(link.draw_latency(), Duration::from_millis(15));
    }

    #[test]
    fn limit_data_cuts_the_piece_and_then_ends_the_link() {
        let now = Instant::now();
        let mut link = LinkToxics::new(Stream::Downstream);
        link.refresh(
            &[toxic(
                1,
                Stream::Downstream,
                1.0,
                ToxicKind::LimitData { bytes: 10 },
            )],
            now,
        );
        let plan = link.plan(25, now, now);
        assert_eq!(plan.piece_bytes, 10);
        assert_eq!(link.ending(now), None);
        link.wrote(&plan, 10, now);
        assert_eq!(link.ending(now), Some(ToxicEnd::Close));
    }

    #[test]
    fn bandwidth_paces_pieces_of_100_ms() {
        let now = Instant::now();
        let mut link = LinkToxics::new(Stream::Upstream);
        let rate = ToxicKind::Bandwidth {
            rate_kilobytes_per_second: 10,
        };
        link.refresh(&[toxic(1, Stream::Upstream, 1.0, rate)], now);
        let plan = link.plan(5000, now, now);
        assert_eq!(plan.piece_bytes, 1000);
        assert_eq!(plan.ready_at, now + Duration::from_millis(100));
        link.wrote(&plan, 1000, plan.ready_at);
        let next = link.plan(4000, now, plan.ready_at);
        assert_eq!(next.ready_at, now + Duration::from_millis(200));
    }

    #[test]
    fn reset_peer_waits_for_data_then_its_timeout() {
        let now = Instant::now();
        let mut link = LinkToxics::new(Stream::Upstream);
        let reset = ToxicKind::ResetPeer { timeout_ms: 50 };
        link.refresh(&[toxic(1, Stream::Upstream, 1.0, reset)], now);
        assert!(link.drops_data());
        assert_eq!(link.next_deadline(), None);
        link.dropped_data(now);
        let at = now + Duration::from_millis(50);
        assert_eq!(link.next_deadline(), Some(at));
        assert_eq!(link.ending(at), Some(ToxicEnd::Reset));
    }

    #[test]
    fn timeout_closes_after_its_timeout_unless_zero() {
        let now = Instant::now();
        let mut link = LinkToxics::new(Stream::Upstream);
        link.refresh(
            &[toxic(
                1,
                Stream::Upstream,
                1.0,
                ToxicKind::Timeout { timeout_ms: 0 },
            )],
            now,
        );
        assert!(link.drops_data());
        assert_eq!(link.next_deadline(), None);
        link.refresh(
            &[toxic(
                2,
                Stream::Upstream,
                1.0,
                ToxicKind::Timeout { timeout_ms: 30 },
            )],
            now,
        );
        assert_eq!(link.ending(now), None);
        assert_eq!(
            link.ending(now + Duration::from_millis(30)),
            Some(ToxicEnd::Close)
        );
        link.refresh(&[], now);
        assert!(!link.drops_data());
        assert_eq!(link.next_deadline(), None);
    }
}
