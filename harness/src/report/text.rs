//! How numbers and user text appear in the renderings: numbers rounded to what a reader can use,
//! byte counts in decimal units (10^6 bytes to the MB, like the other bench tools), and escaping
//! for HTML/SVG and for Markdown, since names and descriptions come from user YAML.

/// A number with as many decimals as its size deserves: `1523`, `12.3`, `1.25`, `0.004`.
pub fn format_number(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    let magnitude = value.abs();
    let decimals = if magnitude >= 100.0 {
        0
    } else if magnitude >= 10.0 {
        1
    } else if magnitude >= 1.0 {
        2
    } else {
        3
    };
    let text = format!("{value:.decimals$}");
    let trimmed = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    if trimmed == "-0" {
        "0".to_string()
    } else {
        trimmed.to_string()
    }
}

/// Milliseconds from the start of the measured window as seconds: `20.012`.
pub fn format_seconds_from_ms(milliseconds: i64) -> String {
    format!("{:.3}", milliseconds as f64 / 1000.0)
}

/// A byte count in decimal units: `512 B`, `1.5 kB`, `123 MB`, `7.81 GB`.
pub fn format_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes;
    let mut unit = 0;
    while value.abs() >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{} {}", format_number(value), UNITS[unit])
}

/// Text made safe inside HTML or SVG elements and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// Text shown literally by a Markdown renderer, on one line: no raw HTML and no table breaks.
/// Backslash escapes, and only where needed, keep the file readable as plain text.
pub fn escape_markdown(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '\\' | '|' | '<' => {
                escaped.push('\\');
                escaped.push(character);
            }
            '\r' | '\n' => escaped.push(' '),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_the_decimals_their_size_deserves() {
        assert_eq!(format_number(1523.456), "1523");
        assert_eq!(format_number(12.34), "12.3");
        assert_eq!(format_number(1.256), "1.26");
        assert_eq!(format_number(0.0042), "0.004");
        assert_eq!(format_number(40.0), "40");
        assert_eq!(format_number(0.0), "0");
        assert_eq!(format_number(-0.0001), "0");
    }

    #[test]
    fn bytes_use_decimal_units() {
        assert_eq!(format_bytes(512.0), "512 B");
        assert_eq!(format_bytes(1_500.0), "1.5 kB");
        assert_eq!(format_bytes(123_400_000.0), "123 MB");
    }

    #[test]
    fn escaping_neutralises_markup() {
        assert_eq!(
            escape_html("<script>alert('x')</script> & \"y\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;"
        );
        assert_eq!(escape_markdown("a | <b>\nc\\"), "a \\| \\<b> c\\\\");
    }
}
