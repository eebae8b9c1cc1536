//! `eood detect`: apply a calibrated detector to scores; writes flags (.npy, uint8):
//! 1 = accept (in-distribution, score > tau), 0 = reject (OOD). With `--bundle DIR`, from
//! images instead: one decision per input on stdout ([`super::detect_bundle`]).

use std::path::PathBuf;

use anyhow::Context;
use ood_core::finite::{read_scores, NonFinitePolicy};
use ood_core::io::npy::write_u8_vector;
use ood_core::Detector;

use crate::args::ScoreMethod;
use crate::cmd::detect_bundle::{self, Format};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Detector artifact from `eood calibrate`.
    #[arg(long, value_name = "JSON", required_unless_present = "bundle")]
    pub detector: Option<PathBuf>,
    /// Scores to classify, 1-D .npy (same method and temperature as the detector's).
    /// Non-finite scores are refused: dropping them would misalign the flags.
    #[arg(long, value_name = "NPY", required_unless_present = "bundle")]
    pub scores: Option<PathBuf>,
    /// Output flags, 1-D .npy of uint8 (1 = accept, 0 = reject); written atomically.
    #[arg(long, value_name = "NPY", required_unless_present = "bundle")]
    pub out: Option<PathBuf>,
    /// Score method of --scores: refused unless it is the detector's. Without it, scores that
    /// look like another method's (all in [0, 1] for a detector calibrated outside it) are
    /// refused.
    #[arg(long, value_parser = clap::value_parser!(ScoreMethod))]
    pub method: Option<ScoreMethod>,

    /// A bundle folder (`eood bundle create`): decide images with its model and detector.
    // clap's conflicts go both ways: the score path's flags need not repeat this one
    #[arg(long, value_name = "DIR", conflicts_with_all = ["method", "detector", "scores", "out"])]
    pub bundle: Option<PathBuf>,
    /// Image files (PNG, JPEG, BMP, TGA, GIF), with --bundle.
    #[arg(value_name = "IMAGES", requires = "bundle")]
    pub files: Vec<PathBuf>,
    /// A uint8 image batch, N x H x W (x C) .npy, with --bundle.
    #[arg(
        long,
        value_name = "NPY",
        requires = "bundle",
        conflicts_with = "files"
    )]
    pub images: Option<PathBuf>,
    /// Output of --bundle on stdout: JSON lines, an aligned table, or CSV.
    #[arg(long, value_enum, default_value_t = Format::Jsonl, requires = "bundle")]
    pub format: Format,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(dir) = &args.bundle {
        if args.files.is_empty() && args.images.is_none() {
            anyhow::bail!("--bundle needs image files or --images NPY");
        }
        return detect_bundle::run(dir, &args.files, args.images.as_deref(), args.format);
    }
    let (Some(detector), Some(scores_path), Some(out)) = (&args.detector, &args.scores, &args.out)
    else {
        anyhow::bail!("give --detector, --scores and --out (or --bundle)");
    };
    ood_core::io::check_output(out, &[detector, scores_path])?;
    let det = Detector::load(detector)?;
    let (scores, _) = read_scores(scores_path, NonFinitePolicy::Refuse)?;
    det.check_scores(&scores, args.method.map(ScoreMethod::name))
        .with_context(|| scores_path.display().to_string())?;
    let flags = det.apply(&scores);
    write_u8_vector(out, &flags)?;
    let accepted = flags.iter().filter(|&&f| f == 1).count();
    eprintln!(
        "{} detector (tau = {}): accepted {accepted} of {} ({:.2}%), rejected {}; wrote {}",
        det.method,
        det.tau,
        flags.len(),
        100.0 * accepted as f64 / flags.len() as f64,
        flags.len() - accepted,
        out.display()
    );
    Ok(())
}
