//! `eood fit --method <key>`: fit any detector of the zoo (`ood_core::detectors`) on training
//! arrays and save it for `eood score --fitted`. The method's parameters default to its paper's
//! (`--percentile`, `--k`, `--gamma`, `--m`, `--dim`, `--shrinkage`, `--temperature`; a flag the
//! method does not take is refused). Only training data goes in: features (N x D), logits
//! (N x K), labels (N) and the last layer (`--weight` K x D, `--bias` K), each as the method needs
//! (docs/detectors.md lists which). The file is the core's: JSON, or safetensors for KNN's
//! training bank, whatever `--out` is named; written atomically.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ood_core::detectors::{FitData, Method};
use ood_core::io::npy::read_labels;

use super::fit_args::{names, parse_method, ArrayArgs, HeadArgs, ParamArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Detector key: energy, msp, maxlogit, react, ash_p, ash_b, ash_s, scale, dice, gen,
    /// entropy, klm, knn, vim, mahalanobis_features, rmds, she, gradnorm.
    #[arg(long, value_parser = parse_method)]
    pub method: Method,
    #[command(flatten)]
    pub arrays: ArrayArgs,
    /// Training class labels, N .npy (int32, int64 or uint8).
    #[arg(long, value_name = "NPY")]
    pub labels: Option<PathBuf>,
    #[command(flatten)]
    pub head: HeadArgs,
    #[command(flatten)]
    pub params: ParamArgs,
    /// Fitted detector to write (JSON; safetensors for knn).
    #[arg(long, value_name = "FITTED")]
    pub out: PathBuf,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let inputs: Vec<&Path> = a
        .arrays
        .paths()
        .chain(a.labels.as_deref())
        .chain(a.head.paths())
        .collect();
    ood_core::io::check_output(&a.out, &inputs)?;
    let key = a.method.key();
    let params = a.params.params(a.method)?;
    let (features, logits) = a.arrays.read()?;
    let labels = a.labels.as_deref().map(read_labels).transpose()?;
    let head = a.head.read()?;
    let data = FitData {
        features: features.as_ref().map(|x| x.view()),
        logits: logits.as_ref().map(|x| x.view()),
        labels: labels.as_deref(),
        head: head.as_ref(),
    };
    let fitted = params
        .fit(&data)
        .with_context(|| format!("fitting {key} on {}", names(&inputs)))?;
    fitted.save(&a.out)?;
    let rows = features.as_ref().or(logits.as_ref()).map(|x| x.nrows());
    eprintln!(
        "fitted {key} ({}){}; wrote {}",
        serde_json::to_string(&params)?,
        rows.map(|n| format!(" on {n} training rows"))
            .unwrap_or_default(),
        a.out.display()
    );
    Ok(())
}
