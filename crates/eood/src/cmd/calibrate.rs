//! `eood calibrate`: choose the threshold tau on in-distribution validation scores so that a
//! target fraction (default 95%) is accepted by `score > tau`, and save the detector as JSON
//! (see `ood_core::detector`).

use std::path::PathBuf;

use super::metrics::read_finite;
use crate::args::ScoreMethod;
use anyhow::bail;
use ood_core::Detector;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// In-distribution validation scores, 1-D .npy (higher = more in-distribution).
    #[arg(long, value_name = "NPY")]
    pub id_scores: PathBuf,
    /// Fraction of in-distribution scores to accept, in (0, 1).
    #[arg(long, default_value_t = 0.95, allow_negative_numbers = true)]
    pub tpr: f64,
    /// Detector artifact to write (JSON); written atomically.
    #[arg(long, value_name = "JSON")]
    pub out: PathBuf,
    /// Score the scores came from (recorded in the artifact; `detect` checks it): any
    /// `eood score --method` key (energy, msp, maxlogit, react, ash_p, ..., gradnorm), odin or
    /// mahalanobis.
    #[arg(long, default_value = "energy", value_parser = clap::value_parser!(ScoreMethod))]
    pub method: ScoreMethod,
    /// Temperature of that score (recorded in the artifact), in [1e-3, 1e6] as for `score`;
    /// default 1 for energy, msp and odin, none for other methods.
    #[arg(long, allow_negative_numbers = true)]
    pub temperature: Option<f64>,
    /// Drop NaN/inf scores (and say how many) instead of refusing the file.
    #[arg(long)]
    pub drop_nonfinite: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if !(args.tpr > 0.0 && args.tpr < 1.0) {
        bail!("--tpr must be in (0, 1), got {}", args.tpr);
    }
    ood_core::io::check_output(&args.out, &[&args.id_scores])?;
    if let Some(t) = args.temperature {
        crate::args::check_temperature(t)?;
    }
    let scores = read_finite(&args.id_scores, args.drop_nonfinite)?;
    let temperature = args
        .temperature
        .or(args.method.has_temperature().then_some(1.0));
    let det = Detector::calibrate(&scores, args.tpr, args.method.name(), temperature)?;
    det.save(&args.out)?;
    eprintln!(
        "tau = {} accepts {:.2}% of {} validation scores (target {:.2}%); wrote {}",
        det.tau,
        100.0 * det.accepted_fraction,
        scores.len(),
        100.0 * args.tpr,
        args.out.display()
    );
    Ok(())
}
