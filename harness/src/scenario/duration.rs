//! Durations as scenarios write them: a whole number followed by a unit, with nothing between.
//!
//! Units: `us` (microseconds), `ms`, `s`, `m` (minutes). `100us`, `500ms`, `60s`, `2m`, `0s`.
//! Left out on purpose: fractions (`1.5s`), compound forms (`1m30s`), bare numbers (a number
//! without a unit is ambiguous, so it is an error), hours and nanoseconds. Any of these can be
//! added later without breaking a scenario; taking one away could not.

use std::time::Duration;

/// The units, largest first, with their length in microseconds.
const UNITS: [(&str, u64); 4] = [
    ("m", 60_000_000),
    ("s", 1_000_000),
    ("ms", 1_000),
    ("us", 1),
];

/// What every duration error ends with, so the fix is in the message.
pub const EXPECTED: &str = "a duration: a whole number and a unit (us, ms, s, m) like 500ms or 60s";

/// Parses `60s`, `500ms`, `100us`, `2m`. The error says what is wrong and what was expected.
pub fn parse(text: &str) -> Result<Duration, String> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    let unit_named = |name: &str| UNITS.iter().find(|(unit, _)| *unit == name);
    if digits.is_empty() {
        return Err(format!("expected {EXPECTED}; found `{text}`"));
    }
    if unit.is_empty() {
        return Err(format!("`{text}` has no unit; expected {EXPECTED}"));
    }
    if unit.starts_with('.') {
        return Err(format!(
            "`{text}` has a fraction; use a smaller unit (1500ms, not 1.5s); expected {EXPECTED}"
        ));
    }
    let Some(&(_, micros_per_unit)) = unit_named(unit) else {
        let trimmed = unit.trim();
        if unit_named(trimmed).is_some() {
            return Err(format!(
                "`{text}` has a space before its unit; expected {EXPECTED}"
            ));
        }
        return Err(format!(
            "`{text}` has an unknown unit `{trimmed}`; expected {EXPECTED}"
        ));
    };
    let micros = digits
        .parse::<u64>()
        .ok()
        .and_then(|count| count.checked_mul(micros_per_unit))
        .ok_or_else(|| format!("`{text}` is too long a duration"))?;
    Ok(Duration::from_micros(micros))
}

/// Writes a duration in the largest unit that represents it exactly: `2m`, `90s`, `1500ms`.
///
/// `parse(&format(d)) == Ok(d)` for every duration `parse` can return; a finer duration
/// built in code is truncated to whole microseconds.
pub fn format(duration: Duration) -> String {
    let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
    if micros == 0 {
        return "0s".to_string();
    }
    let (unit, micros_per_unit) = UNITS
        .iter()
        .copied()
        .find(|(_, per_unit)| micros % per_unit == 0)
        .unwrap_or(("us", 1));
    format!("{}{unit}", micros / micros_per_unit)
}

/// True when the duration is a whole number of milliseconds (Toxiproxy's unit for most toxics).
pub fn is_whole_milliseconds(duration: Duration) -> bool {
    duration.subsec_nanos() % 1_000_000 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse("100us"), Ok(Duration::from_micros(100)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for bad in [
            "",
            "5",
            "s",
            "5 s",
            "5 parsecs",
            "1.5s",
            "-1s",
            "1m30s",
            "5h",
            "5ns",
            " 5s",
            "5S",
        ] {
            let error = parse(bad).expect_err(bad);
            assert!(error.contains("expected a duration"), "{bad}: {error}");
        }
        assert!(parse("99999999999999999999s")
            .unwrap_err()
            .contains("too long"));
        assert!(parse("18446744073709551615m")
            .unwrap_err()
            .contains("too long"));
    }

    #[test]
    fn formats_in_the_largest_exact_unit() {
        assert_eq!(format(Duration::from_secs(120)), "2m");
        assert_eq!(format(Duration::from_secs(90)), "90s");
        assert_eq!(format(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format(Duration::from_micros(1001)), "1001us");
        assert_eq!(format(Duration::ZERO), "0s");
    }

    #[test]
    fn round_trips() {
        for text in [
            "100us", "500ms", "1m", "2m", "0s", "1us", "59s", "61s", "1001ms",
        ] {
            let duration = parse(text).unwrap();
            assert_eq!(format(duration), text);
            assert_eq!(parse(&format(duration)), Ok(duration));
        }
        // Non-canonical spellings parse to the same value and format canonically.
        assert_eq!(format(parse("120s").unwrap()), "2m");
        assert_eq!(format(parse("60s").unwrap()), "1m");
        assert_eq!(format(parse("1000ms").unwrap()), "1s");
        assert_eq!(format(parse("007s").unwrap()), "7s");
        for micros in [
            1,
            999,
            1_000,
            59_000_000,
            60_000_000,
            3_600_000_001,
            u64::MAX / 60,
        ] {
            let duration = Duration::from_micros(micros);
            assert_eq!(parse(&format(duration)), Ok(duration), "{micros}us");
        }
    }
}
