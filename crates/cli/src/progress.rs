//! Progress of long operations on standard error: a bar (indicatif) when
//! standard error is a terminal, plain lines when it is piped or logged, so
//! scripts and log files see every step and never a carriage return.

use std::io::IsTerminal;

/// Progress of one long operation: `total` bytes or steps.
pub struct Progress {
    label: &'static str,
    unit: Unit,
    bar: Option<indicatif::ProgressBar>,
}

/// What a [`Progress`] counts.
#[derive(Clone, Copy)]
enum Unit {
    Bytes,
    /// Steps, each named by the noun (e.g. "run", "transfer").
    Steps(&'static str),
}

impl Progress {
    /// Starts reporting a transfer of `total` bytes, as `label` (e.g.
    /// "uploading the input").
    pub fn bytes(label: &'static str, total: u64) -> Progress {
        Progress::start(
            label,
            total,
            Unit::Bytes,
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        )
    }

    /// Starts reporting `total` steps, each a `noun`, as `label` (e.g.
    /// "benchmarking", 5, "run").
    pub fn steps(label: &'static str, total: u64, noun: &'static str) -> Progress {
        Progress::start(
            label,
            total,
            Unit::Steps(noun),
            "{msg} [{bar:30}] {pos}/{len} {elapsed}",
        )
    }

    fn start(label: &'static str, total: u64, unit: Unit, template: &str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(template)
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar.set_message(label);
            bar
        });
        Progress { label, unit, bar }
    }

    /// `done` of `total` are through.
    pub fn update(&mut self, done: u64, total: u64) {
        match (&self.bar, self.unit) {
            (Some(bar), _) => {
                bar.set_length(total);
                bar.set_position(done);
            }
            (None, Unit::Bytes) => eprintln!("{}: {}", self.label, line(done, total)),
            (None, Unit::Steps(noun)) => {
                eprintln!("{}: {noun} {done} of {total}", self.label)
            }
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `1.0 of 2.5 MiB (40%)`.
fn line(done: u64, total: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let pct = (done * 100).checked_div(total).unwrap_or(100);
    format!(
        "{:.1} of {:.1} MiB ({pct}%)",
        done as f64 / MIB,
        total as f64 / MIB
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_plain_line_says_how_far() {
        assert_eq!(
            super::line(1024 * 1024, 4 * 1024 * 1024),
            "1.0 of 4.0 MiB (25%)"
        );
        assert_eq!(super::line(0, 0), "0.0 of 0.0 MiB (100%)");
    }
}
