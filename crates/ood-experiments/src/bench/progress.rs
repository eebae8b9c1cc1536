//! Progress on stderr: one line per stage with the elapsed time of the run, and bars (indicatif)
//! inside long stages; hidden bars when progress is off.
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar of `len` items with a label.
pub fn bar(len: u64, show: bool, what: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template("  {msg:<24} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// Stage announcements: `[ 12.3 s] step 2/5: scoring the pre-trained model`.
pub struct Stages {
    started: Instant,
    total: usize,
    done: usize,
    show: bool,
}

impl Stages {
    pub fn new(total: usize, show: bool) -> Self {
        Self {
            started: Instant::now(),
            total,
            done: 0,
            show,
        }
    }

    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    pub fn begin(&mut self, what: &str) {
        self.done += 1;
        if self.show {
            eprintln!(
                "[{:7.1} s] step {}/{}: {what}",
                self.elapsed(),
                self.done,
                self.total
            );
        }
    }

    pub fn note(&self, what: &str) {
        if self.show {
            eprintln!("[{:7.1} s]   {what}", self.elapsed());
        }
    }
}
