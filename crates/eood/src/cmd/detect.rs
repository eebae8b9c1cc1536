//! `eood detect`: apply a calibrated detector to scores; writes flags (.npy, uint8):
//! 1 = accept (in-distribution, score > tau), 0 = reject (OOD).

use std::path::PathBuf;

use anyhow::anyhow;
use ood_core::finite::{read_scores, NonFinitePolicy};
use ood_core::io::npy::write_u8_vector;
use ood_core::Detector;

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
}

pub fn run(args: Args) -> anyhow::Result<()> {
    ood_core::io::check_output(&args.out, &[&args.detector, &args.scores])?;
    let det = Detector::load(&args.detector).map_err(|e| anyhow!("{e}"))?;
    let (scores, _) =
        read_scores(&args.scores, NonFinitePolicy::Refuse).map_err(|e| anyhow!("{e}"))?;
    let flags = det.apply(&scores);
    write_u8_vector(&args.out, &flags).map_err(|e| anyhow!("{e}"))?;
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
