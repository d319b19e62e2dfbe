//! A line chart over time as inline SVG, with no script and no external resource: series drawn
//! as polylines, time spans shaded (faults, unavailability, the warmup) and instants marked by
//! a vertical dashed line, each with a short label placed so labels do not overlap (over at most
//! `LABEL_LINES` lines) and a `<title>` tooltip with the details. The x axis is seconds; the y
//! axis is linear from zero or logarithmic over whole decades (at most `LOG_DECADES_MAX`, so one
//! outlier cannot flatten the rest: smaller values sit on the bottom edge).

use std::fmt::Write;

use super::text::{escape_html, format_number};

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 320.0;
const MARGIN_LEFT: f64 = 64.0;
const MARGIN_RIGHT: f64 = 16.0;
const MARGIN_TOP: f64 = 30.0;
const MARGIN_BOTTOM: f64 = 44.0;
const PLOT_WIDTH: f64 = WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
const PLOT_HEIGHT: f64 = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM;
/// Overlay labels are spread over this many lines so neighbours do not overwrite each other.
const LABEL_LINES: usize = 4;
const LABEL_LINE_HEIGHT: f64 = 12.0;
/// About how wide one character of a label is, for placing labels.
const CHARACTER_WIDTH: f64 = 6.2;
/// The widest range a logarithmic axis shows, in powers of ten.
pub const LOG_DECADES_MAX: i32 = 6;
/// An upper bound on ticks per axis, whatever the data.
const TICKS_MAX: usize = 40;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum YScale {
    Linear,
    Logarithmic,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub label: String,
    /// A CSS color.
    pub color: &'static str,
    /// (seconds, value) pairs in time order.
    pub points: Vec<(f64, f64)>,
}

/// What a shaded span stands for; it decides the color.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShadingKind {
    Fault,
    Unavailability,
    Warmup,
}

impl ShadingKind {
    fn fill(self) -> &'static str {
        match self {
            ShadingKind::Fault => "#f4a261",
            ShadingKind::Unavailability => "#e63946",
            ShadingKind::Warmup => "#adb5bd",
        }
    }

    fn legend(self) -> &'static str {
        match self {
            ShadingKind::Fault => "fault",
            ShadingKind::Unavailability => "unavailable",
            ShadingKind::Warmup => "warmup",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Shading {
    pub start_seconds: f64,
    pub end_seconds: f64,
    /// Shown on the chart: keep it short.
    pub label: String,
    /// Shown as the tooltip.
    pub detail: String,
    pub kind: ShadingKind,
}

/// An instant: a vertical dashed line.
#[derive(Clone, Debug, PartialEq)]
pub struct Marker {
    pub at_seconds: f64,
    /// Shown on the chart: keep it short.
    pub label: String,
    /// Shown as the tooltip.
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    /// Read by screen readers and shown as the tooltip of the whole chart.
    pub title: String,
    pub y_axis_label: String,
    pub y_scale: YScale,
    pub series: Vec<Series>,
    pub shadings: Vec<Shading>,
    pub markers: Vec<Marker>,
    /// The x axis range; `None` fits it to everything drawn. Charts shown one above the other
    /// share a range so their times line up.
    pub time_range_seconds: Option<(f64, f64)>,
}

/// The value range of the y axis and how values map onto it.
struct ValueAxis {
    minimum: f64,
    maximum: f64,
    scale: YScale,
}

impl ValueAxis {
    fn fit(chart: &Chart) -> ValueAxis {
        let values = chart
            .series
            .iter()
            .flat_map(|series| series.points.iter().map(|(_, value)| *value))
            .filter(|value| value.is_finite());
        match chart.y_scale {
            YScale::Linear => {
                let largest = values.fold(0.0, f64::max);
                let maximum = if largest > 0.0 {
                    let step = nice_step(largest, 5);
                    (largest / step).ceil() * step
                } else {
                    1.0
                };
                ValueAxis {
                    minimum: 0.0,
                    maximum,
                    scale: YScale::Linear,
                }
            }
            YScale::Logarithmic => {
                let positive: Vec<f64> = values.filter(|value| *value > 0.0).collect();
                let smallest = positive.iter().copied().fold(f64::INFINITY, f64::min);
                let largest = positive.iter().copied().fold(0.0, f64::max);
                let (mut lower, mut upper) = if positive.is_empty() {
                    (0, 1)
                } else {
                    (
                        smallest.log10().floor() as i32,
                        largest.log10().ceil() as i32,
                    )
                };
                if upper <= lower {
                    upper = lower + 1;
                }
                lower = lower.max(upper - LOG_DECADES_MAX);
                ValueAxis {
                    minimum: 10f64.powi(lower),
                    maximum: 10f64.powi(upper),
                    scale: YScale::Logarithmic,
                }
            }
        }
    }

    /// Where a value sits, from 0 (bottom) to 1 (top), clipped to the axis.
    fn fraction(&self, value: f64) -> f64 {
        let fraction = match self.scale {
            YScale::Linear => (value - self.minimum) / (self.maximum - self.minimum),
            YScale::Logarithmic => {
                let value = value.max(self.minimum);
                (value.log10() - self.minimum.log10())
                    / (self.maximum.log10() - self.minimum.log10())
            }
        };
        if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    fn pixel(&self, value: f64) -> f64 {
        MARGIN_TOP + PLOT_HEIGHT * (1.0 - self.fraction(value))
    }

    fn ticks(&self) -> Vec<f64> {
        match self.scale {
            YScale::Linear => {
                let step = nice_step(self.maximum - self.minimum, 5);
                (0..=TICKS_MAX)
                    .map(|index| self.minimum + step * index as f64)
                    .take_while(|tick| *tick <= self.maximum * (1.0 + 1e-9))
                    .collect()
            }
            YScale::Logarithmic => {
                let lower = self.minimum.log10().round() as i32;
                let upper = self.maximum.log10().round() as i32;
                (lower..=upper).map(|power| 10f64.powi(power)).collect()
            }
        }
    }
}

/// The time range of the x axis.
struct TimeAxis {
    start_seconds: f64,
    end_seconds: f64,
}

impl TimeAxis {
    fn fit(chart: &Chart) -> TimeAxis {
        let (start, end) = chart.time_range_seconds.unwrap_or_else(|| time_span(chart));
        if start.is_finite() && end > start {
            TimeAxis {
                start_seconds: start,
                end_seconds: end,
            }
        } else {
            let start = if start.is_finite() { start } else { 0.0 };
            TimeAxis {
                start_seconds: start,
                end_seconds: start + 1.0,
            }
        }
    }

    fn pixel(&self, seconds: f64) -> f64 {
        let fraction = (seconds - self.start_seconds) / (self.end_seconds - self.start_seconds);
        MARGIN_LEFT + PLOT_WIDTH * fraction.clamp(0.0, 1.0)
    }

    fn ticks(&self) -> Vec<f64> {
        let step = nice_step(self.end_seconds - self.start_seconds, 10);
        let first = (self.start_seconds / step).ceil() * step;
        (0..=TICKS_MAX)
            .map(|index| first + step * index as f64)
            .take_while(|tick| *tick <= self.end_seconds)
            .collect()
    }
}

/// The earliest and latest time a chart draws (infinite when it draws nothing).
pub fn time_span(chart: &Chart) -> (f64, f64) {
    let times = chart
        .series
        .iter()
        .flat_map(|series| series.points.iter().map(|(seconds, _)| *seconds))
        .chain(
            chart
                .shadings
                .iter()
                .flat_map(|shading| [shading.start_seconds, shading.end_seconds]),
        )
        .chain(chart.markers.iter().map(|marker| marker.at_seconds))
        .filter(|seconds| seconds.is_finite());
    times.fold((f64::INFINITY, f64::NEG_INFINITY), |(start, end), time| {
        (start.min(time), end.max(time))
    })
}

/// A round step (1, 2 or 5 times a power of ten) that divides `span` into about `count` parts.
fn nice_step(span: f64, count: usize) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / count as f64;
    let power = 10f64.powf(raw.log10().floor());
    let fraction = raw / power;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

/// The chart as one `<svg>` element.
pub fn render(chart: &Chart) -> String {
    let time = TimeAxis::fit(chart);
    let value = ValueAxis::fit(chart);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{title}" font-family="sans-serif" font-size="11">"#,
        title = escape_html(&chart.title)
    );
    let _ = writeln!(svg, "<title>{}</title>", escape_html(&chart.title));
    let _ = writeln!(
        svg,
        r##"<rect x="{MARGIN_LEFT}" y="{MARGIN_TOP}" width="{PLOT_WIDTH}" height="{PLOT_HEIGHT}" fill="#ffffff" stroke="#ced4da"/>"##
    );
    draw_grid(&mut svg, &time, &value, &chart.y_axis_label);
    let starts = chart
        .shadings
        .iter()
        .map(|shading| (time.pixel(shading.start_seconds), shading.label.as_str()))
        .chain(
            chart
                .markers
                .iter()
                .map(|marker| (time.pixel(marker.at_seconds), marker.label.as_str())),
        );
    let mut placements = place_labels(starts).into_iter();
    for shading in &chart.shadings {
        if let Some(placement) = placements.next() {
            draw_shading(&mut svg, &time, shading, &placement);
        }
    }
    for marker in &chart.markers {
        if let Some(placement) = placements.next() {
            draw_marker(&mut svg, &time, marker, &placement);
        }
    }
    for series in &chart.series {
        draw_series(&mut svg, &time, &value, series);
    }
    draw_legend(&mut svg, chart);
    svg.push_str("</svg>\n");
    svg
}

fn draw_grid(svg: &mut String, time: &TimeAxis, value: &ValueAxis, y_axis_label: &str) {
    let bottom = MARGIN_TOP + PLOT_HEIGHT;
    for tick in time.ticks() {
        let x = time.pixel(tick);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{MARGIN_TOP}" x2="{x:.1}" y2="{bottom}" stroke="#f1f3f5"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#495057">{}</text>"##,
            bottom + 14.0,
            format_number(tick)
        );
    }
    for tick in value.ticks() {
        let y = value.pixel(tick);
        let _ = writeln!(
            svg,
            r##"<line x1="{MARGIN_LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#f1f3f5"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#495057">{}</text>"##,
            MARGIN_LEFT + PLOT_WIDTH,
            MARGIN_LEFT - 6.0,
            y + 4.0,
            format_number(tick)
        );
    }
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#212529">seconds from the start of the measured window</text>"##,
        MARGIN_LEFT + PLOT_WIDTH / 2.0,
        HEIGHT - 8.0
    );
    let middle = MARGIN_TOP + PLOT_HEIGHT / 2.0;
    let _ = writeln!(
        svg,
        r##"<text x="14" y="{middle:.1}" text-anchor="middle" fill="#212529" transform="rotate(-90 14 {middle:.1})">{}</text>"##,
        escape_html(y_axis_label)
    );
}

/// Where an overlay's label goes: its x, which side of it the text runs, and its line.
#[derive(Clone, Copy, Debug, PartialEq)]
struct LabelPlacement {
    x: f64,
    anchor: &'static str,
    line: usize,
}

impl LabelPlacement {
    fn y(&self) -> f64 {
        MARGIN_TOP + LABEL_LINE_HEIGHT * (self.line + 1) as f64
    }
}

/// Places labels that start at the given x positions, in the given order: each on the first
/// line where it does not overlap the one before it, running left from its x when it would
/// pass the right edge. When every line is taken, the least crowded one is shared.
fn place_labels<'a>(starts: impl Iterator<Item = (f64, &'a str)>) -> Vec<LabelPlacement> {
    let starts: Vec<(f64, &str)> = starts.collect();
    let mut order: Vec<usize> = (0..starts.len()).collect();
    order.sort_by(|left, right| starts[*left].0.total_cmp(&starts[*right].0));
    let mut line_ends = [f64::NEG_INFINITY; LABEL_LINES];
    let mut placements = vec![
        LabelPlacement {
            x: 0.0,
            anchor: "start",
            line: 0
        };
        starts.len()
    ];
    for index in order {
        let (x, label) = starts[index];
        let width = CHARACTER_WIDTH * label.chars().count() as f64 + 4.0;
        let right_edge = MARGIN_LEFT + PLOT_WIDTH;
        let (text_x, anchor, left, right) = if x + 2.0 + width > right_edge {
            (x - 2.0, "end", x - 2.0 - width, x)
        } else {
            (x + 2.0, "start", x, x + 2.0 + width)
        };
        let line = (0..LABEL_LINES)
            .find(|line| line_ends[*line] < left)
            .unwrap_or_else(|| {
                (0..LABEL_LINES)
                    .min_by(|first, second| line_ends[*first].total_cmp(&line_ends[*second]))
                    .unwrap_or(0)
            });
        line_ends[line] = right;
        placements[index] = LabelPlacement {
            x: text_x,
            anchor,
            line,
        };
    }
    placements
}

fn draw_shading(svg: &mut String, time: &TimeAxis, shading: &Shading, placement: &LabelPlacement) {
    let start = time.pixel(shading.start_seconds);
    let width = (time.pixel(shading.end_seconds) - start).max(1.0);
    let _ = writeln!(
        svg,
        r##"<g class="shading {kind}"><title>{detail}</title><rect x="{start:.1}" y="{MARGIN_TOP}" width="{width:.1}" height="{PLOT_HEIGHT}" fill="{fill}" fill-opacity="0.25"/><text x="{x:.1}" y="{y:.1}" text-anchor="{anchor}" fill="#343a40">{label}</text></g>"##,
        kind = shading.kind.legend(),
        detail = escape_html(&shading.detail),
        fill = shading.kind.fill(),
        x = placement.x,
        y = placement.y(),
        anchor = placement.anchor,
        label = escape_html(&shading.label),
    );
}

fn draw_marker(svg: &mut String, time: &TimeAxis, marker: &Marker, placement: &LabelPlacement) {
    let x = time.pixel(marker.at_seconds);
    let _ = writeln!(
        svg,
        r##"<g class="marker"><title>{detail}</title><line x1="{x:.1}" y1="{MARGIN_TOP}" x2="{x:.1}" y2="{bottom}" stroke="#d62828" stroke-width="1.5" stroke-dasharray="4 3"/><text x="{text_x:.1}" y="{y:.1}" text-anchor="{anchor}" fill="#d62828">{label}</text></g>"##,
        detail = escape_html(&marker.detail),
        bottom = MARGIN_TOP + PLOT_HEIGHT,
        text_x = placement.x,
        y = placement.y(),
        anchor = placement.anchor,
        label = escape_html(&marker.label),
    );
}

fn draw_series(svg: &mut String, time: &TimeAxis, value: &ValueAxis, series: &Series) {
    let points: Vec<String> = series
        .points
        .iter()
        .filter(|(seconds, amount)| seconds.is_finite() && amount.is_finite())
        .map(|(seconds, amount)| format!("{:.1},{:.1}", time.pixel(*seconds), value.pixel(*amount)))
        .collect();
    let _ = writeln!(
        svg,
        r#"<polyline class="series" points="{}" fill="none" stroke="{}" stroke-width="1.5" stroke-linejoin="round"><title>{}</title></polyline>"#,
        points.join(" "),
        series.color,
        escape_html(&series.label)
    );
}

fn draw_legend(svg: &mut String, chart: &Chart) {
    let mut x = MARGIN_LEFT;
    let y = 16.0;
    for series in &chart.series {
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="3"/><text x="{:.1}" y="{y:.1}" fill="#212529">{}</text>"##,
            y - 4.0,
            x + 16.0,
            y - 4.0,
            series.color,
            x + 20.0,
            escape_html(&series.label)
        );
        x += 32.0 + 6.5 * series.label.chars().count() as f64;
    }
    for kind in [
        ShadingKind::Fault,
        ShadingKind::Unavailability,
        ShadingKind::Warmup,
    ] {
        if !chart.shadings.iter().any(|shading| shading.kind == kind) {
            continue;
        }
        let _ = writeln!(
            svg,
            r##"<rect x="{x:.1}" y="{:.1}" width="14" height="10" fill="{}" fill-opacity="0.4"/><text x="{:.1}" y="{y:.1}" fill="#212529">{}</text>"##,
            y - 9.0,
            kind.fill(),
            x + 18.0,
            kind.legend()
        );
        x += 30.0 + 6.5 * kind.legend().len() as f64;
    }
    if !chart.markers.is_empty() {
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#d62828" stroke-width="1.5" stroke-dasharray="4 3"/><text x="{:.1}" y="{y:.1}" fill="#212529">instant fault</text>"##,
            y - 10.0,
            y + 1.0,
            x + 5.0
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(y_scale: YScale, values: &[f64]) -> Chart {
        Chart {
            title: "a <chart>".to_string(),
            y_axis_label: "ms".to_string(),
            y_scale,
            series: vec![Series {
                label: "p99".to_string(),
                color: "#000000",
                points: values
                    .iter()
                    .enumerate()
                    .map(|(second, value)| (second as f64, *value))
                    .collect(),
            }],
            shadings: vec![Shading {
                start_seconds: 1.0,
                end_seconds: 2.0,
                label: "partition".to_string(),
                detail: "partition [1] | [2, 3]".to_string(),
                kind: ShadingKind::Fault,
            }],
            markers: vec![Marker {
                at_seconds: 3.0,
                label: "kill".to_string(),
                detail: "kill <node 2>".to_string(),
            }],
            time_range_seconds: None,
        }
    }

    #[test]
    fn nice_steps_are_round() {
        assert_eq!(nice_step(60.0, 10), 10.0);
        assert_eq!(nice_step(4_000.0, 5), 1_000.0);
        assert_eq!(nice_step(7.0, 10), 1.0);
        assert_eq!(nice_step(0.0, 10), 1.0);
    }

    #[test]
    fn a_logarithmic_axis_spans_whole_decades_and_clips_below() {
        let axis = ValueAxis::fit(&chart(YScale::Logarithmic, &[0.3, 2.0, 1_400.0]));
        assert_eq!((axis.minimum, axis.maximum), (0.1, 10_000.0));
        assert_eq!(axis.ticks().len(), 6);
        let axis = ValueAxis::fit(&chart(YScale::Logarithmic, &[1e-6, 0.0, 50_000.0]));
        assert_eq!(axis.maximum, 100_000.0);
        assert_eq!(axis.minimum, 0.1);
        assert_eq!(axis.fraction(0.0), 0.0);
    }

    #[test]
    fn a_linear_axis_starts_at_zero_and_ends_on_a_round_number() {
        let axis = ValueAxis::fit(&chart(YScale::Linear, &[3_940.0, 300.0]));
        assert_eq!((axis.minimum, axis.maximum), (0.0, 4_000.0));
        assert_eq!(axis.ticks(), vec![0.0, 1_000.0, 2_000.0, 3_000.0, 4_000.0]);
    }

    #[test]
    fn draws_lines_overlays_and_escaped_labels() {
        let svg = render(&chart(YScale::Linear, &[1.0, 2.0, 3.0, 4.0]));
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("<polyline"));
        assert!(svg.contains(r#"<g class="shading fault">"#));
        assert!(svg.contains(r#"<g class="marker">"#));
        assert!(svg.contains("a &lt;chart&gt;"));
        assert!(!svg.contains("<chart>"));
        assert!(svg.contains("<title>kill &lt;node 2&gt;</title>"));
    }

    #[test]
    fn labels_that_would_overlap_go_on_other_lines() {
        let placements =
            place_labels([(100.0, "kill"), (110.0, "unavailable"), (400.0, "restart")].into_iter());
        let lines: Vec<usize> = placements.iter().map(|placement| placement.line).collect();
        assert_eq!(lines, [0, 1, 0]);
        let at_the_edge = place_labels([(WIDTH - MARGIN_RIGHT - 5.0, "heal")].into_iter());
        assert_eq!(at_the_edge[0].anchor, "end");
    }

    #[test]
    fn a_given_time_range_is_kept() {
        let mut chart = chart(YScale::Linear, &[1.0, 2.0]);
        chart.time_range_seconds = Some((-5.0, 70.0));
        let time = TimeAxis::fit(&chart);
        assert_eq!((time.start_seconds, time.end_seconds), (-5.0, 70.0));
        assert_eq!(time_span(&chart), (0.0, 3.0));
    }

    #[test]
    fn an_empty_chart_still_renders() {
        let empty = Chart {
            title: "nothing".to_string(),
            y_axis_label: "ms".to_string(),
            y_scale: YScale::Logarithmic,
            series: Vec::new(),
            shadings: Vec::new(),
            markers: Vec::new(),
            time_range_seconds: None,
        };
        let svg = render(&empty);
        assert!(svg.contains("</svg>"));
        assert!(!svg.contains("NaN"));
    }
}
