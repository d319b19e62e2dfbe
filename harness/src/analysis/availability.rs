//! Unavailability: the gaps between successive acknowledgements within the measured window.
//! The window's start and end count as boundaries, so a cluster that acknowledges nothing for
//! the whole window has one gap as long as the window, and a stall at either edge is measured
//! up to the edge.

use crate::report::{Window, UNAVAILABILITY_REPORT_MS};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Availability {
    /// The longest gap, whole milliseconds (rounded down).
    pub max_gap_ms: u64,
    /// Every gap longer than `UNAVAILABILITY_REPORT_MS`, in time order.
    pub windows: Vec<Window>,
}

/// Gaps among `acknowledged_ns` (any order; times outside the window are ignored) in the
/// window `[0, window_ns]`.
pub fn gaps(acknowledged_ns: impl Iterator<Item = i64>, window_ns: i64) -> Availability {
    let mut times: Vec<i64> = acknowledged_ns
        .filter(|time| (0..=window_ns).contains(time))
        .collect();
    times.sort_unstable();
    let mut availability = Availability::default();
    let mut previous_ns = 0;
    for time_ns in times.into_iter().chain([window_ns]) {
        let gap_ns = time_ns - previous_ns;
        availability.max_gap_ms = availability.max_gap_ms.max((gap_ns / 1_000_000) as u64);
        if gap_ns > UNAVAILABILITY_REPORT_MS as i64 * 1_000_000 {
            availability.windows.push(Window {
                start_ms: previous_ns / 1_000_000,
                end_ms: time_ns / 1_000_000,
            });
        }
        previous_ns = time_ns;
    }
    availability
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    #[test]
    fn no_acknowledgement_is_one_gap_of_the_whole_window() {
        let availability = gaps(std::iter::empty(), 3_000 * MS);
        assert_eq!(availability.max_gap_ms, 3_000);
        assert_eq!(
            availability.windows,
            [Window {
                start_ms: 0,
                end_ms: 3_000
            }]
        );
    }

    #[test]
    fn gaps_at_the_edges_reach_the_edges() {
        let at_start = gaps([900 * MS, 1_000 * MS, 1_100 * MS].into_iter(), 1_200 * MS);
        assert_eq!(at_start.max_gap_ms, 900);
        assert_eq!(
            at_start.windows,
            [Window {
                start_ms: 0,
                end_ms: 900
            }]
        );
        let at_end = gaps([50 * MS, 100 * MS].into_iter(), 1_000 * MS);
        assert_eq!(at_end.max_gap_ms, 900);
        assert_eq!(
            at_end.windows,
            [Window {
                start_ms: 100,
                end_ms: 1_000
            }]
        );
    }

    #[test]
    fn times_outside_the_window_do_not_close_a_gap() {
        let availability = gaps([-5 * MS, 400 * MS, 1_300 * MS].into_iter(), 1_000 * MS);
        assert_eq!(availability.max_gap_ms, 600);
        assert_eq!(availability.windows.len(), 2);
    }

    #[test]
    fn short_gaps_count_towards_the_maximum_but_are_not_listed() {
        let times = (0..=10).map(|step| step * 100 * MS);
        let availability = gaps(times.chain([1_000 * MS + 200 * MS]), 1_200 * MS);
        assert_eq!(availability.max_gap_ms, 200);
        assert!(availability.windows.is_empty());
    }

    #[test]
    fn unordered_times_are_sorted() {
        let availability = gaps([800 * MS, 200 * MS, 500 * MS].into_iter(), 1_000 * MS);
        assert_eq!(availability.max_gap_ms, 300);
    }
}
