//! The live progress line while a scenario runs: phase, elapsed time, acknowledged and
//! consumed counts, and the faults in effect. On a terminal it redraws in place (indicatif);
//! otherwise (CI logs) it prints a plain line every `PLAIN_LINE_EVERY_MS`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a plain progress line is printed when standard error is not a terminal.
pub const PLAIN_LINE_EVERY_MS: u64 = 10_000;

pub struct Progress {
    bar: Option<ProgressBar>,
    last_plain_line: Instant,
    quiet: bool,
}

/// One progress update.
pub struct Status<'a> {
    pub phase: &'a str,
    /// From the start of the measured window (negative in the warmup).
    pub elapsed_ms: i64,
    pub window_ms: u64,
    pub acknowledged: u64,
    pub consumed: u64,
    pub failed: u64,
    pub faults: &'a [String],
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}").expect("a valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            bar,
            last_plain_line: Instant::now(),
            quiet,
        }
    }

    pub fn update(&mut self, status: &Status<'_>) {
        let faults = if status.faults.is_empty() {
            "none".to_string()
        } else {
            status.faults.join("; ")
        };
        let line = format!(
            "{:<9} {:>6.1}s/{}s  acked {}  consumed {}  failed {}  faults: {faults}",
            status.phase,
            status.elapsed_ms as f64 / 1000.0,
            status.window_ms / 1000,
            status.acknowledged,
            status.consumed,
            status.failed,
        );
        if let Some(bar) = &self.bar {
            bar.set_message(line);
        } else if !self.quiet
            && self.last_plain_line.elapsed() >= Duration::from_millis(PLAIN_LINE_EVERY_MS)
        {
            self.last_plain_line = Instant::now();
            eprintln!("{line}");
        }
    }

    /// A line that stays (a phase change, a fault).
    pub fn note(&self, line: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
