//! `eood detect`: apply a calibrated detector to scores; writes flags (.npy, uint8):
//! 1 = accept (in-distribution, score > tau), 0 = reject (OOD).

use std::path::PathBuf;

use anyhow::Context;
use ood_core::finite::{read_scores, NonFinitePolicy};
use ood_core::io::npy::write_u8_vector;
use ood_core::Detector;

use crate::args::ScoreMethod;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Detector artifact from `eood calibrate`.
    #[arg(long)]
    pub detector: PathBuf,
    /// Scores to classify, 1-D .npy (same method and temperature as the detector's).
    /// Non-finite scores are refused: dropping them would misalign the flags.
    #[arg(long)]
    pub scores: PathBuf,
    /// Output flags, 1-D .npy of uint8 (1 = accept, 0 = reject); written atomically.
    #[arg(long)]
    pub out: PathBuf,
    /// Score method of --scores: refused unless it is the detector's. Without it, scores that
    /// look like another method's (all in [0, 1] for a detector calibrated outside it) are
    /// refused.
    #[arg(long, value_parser = clap::value_parser!(ScoreMethod))]
    pub method: Option<ScoreMethod>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    ood_core::io::check_output(&args.out, &[&args.detector, &args.scores])?;
    let det = Detector::load(&args.detector)?;
    let (scores, _) = read_scores(&args.scores, NonFinitePolicy::Refuse)?;
    det.check_scores(&scores, args.method.map(ScoreMethod::name))
        .with_context(|| args.scores.display().to_string())?;
    let flags = det.apply(&scores);
    write_u8_vector(&args.out, &flags)?;
    let accepted = flags.iter().filter(|&&f| f == 1).count();
    eprintln!(
        "{} detector (tau = {}): accepted {accepted} of {} ({:.2}%), rejected {}; wrote {}",
        det.method,
        det.tau,
        flags.len(),
        100.0 * accepted as f64 / flags.len() as f64,
        flags.len() - accepted,
        args.out.display()
    );
    Ok(())
}
