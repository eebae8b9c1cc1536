//! `eood mahalanobis fit|score`: the Mahalanobis detector (Lee et al., NeurIPS 2018) on feature
//! `.npy` files: fit class means and one tied covariance, then score = max over classes of minus
//! the squared Mahalanobis distance (see `ood_core::scores::mahalanobis`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, bail};
use ood_core::io::npy::{read_f64_matrix, read_labels, write_f64_vector};
use ood_core::io::write_atomic;
use ood_core::scores::mahalanobis::MahalanobisFile;
use ood_core::scores::{Mahalanobis, MahalanobisParams};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Fit class means and the tied covariance on training features and labels.
    Fit(FitArgs),
    /// Score features with a fitted detector (higher = more in-distribution).
    Score(ScoreArgs),
}

#[derive(clap::Args, Debug)]
pub struct FitArgs {
    /// Training features, N x D .npy (float32/float64).
    #[arg(long)]
    pub features: PathBuf,
    /// Class labels, N .npy (int32, int64 or uint8).
    #[arg(long)]
    pub labels: PathBuf,
    /// Shrinkage towards a scaled identity in [0, 1] (0 = the paper's estimate).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub shrinkage: f64,
    /// Fitted detector (JSON); written atomically.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct ScoreArgs {
    /// Fitted detector from `eood mahalanobis fit`.
    #[arg(long)]
    pub model: PathBuf,
    /// Features to score, M x D .npy.
    #[arg(long)]
    pub features: PathBuf,
    /// Output scores, M .npy (float64).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Fit(a) => fit(a),
        Command::Score(a) => score(a),
    }
}

fn fit(a: FitArgs) -> anyhow::Result<()> {
    ood_core::io::check_output(&a.out, &[&a.features, &a.labels])?;
    let x = read_f64_matrix(&a.features)?;
    let y = read_labels(&a.labels)?;
    if x.nrows() != y.len() {
        bail!(
            "{} has {} rows but {} has {} labels",
            a.features.display(),
            x.nrows(),
            a.labels.display(),
            y.len()
        );
    }
    let fitted = MahalanobisParams {
        shrinkage: a.shrinkage,
    }
    .fit(x.view(), &y)
    .map_err(|e| anyhow!("{}: {e}", a.features.display()))?;
    let mut text = serde_json::to_string(&fitted.to_file())?;
    text.push('\n');
    write_atomic::<ood_core::io::IoError>(&a.out, |w| {
        w.write_all(text.as_bytes())
            .map_err(|e| ood_core::io::IoError::new(&a.out, e))
    })
    .map_err(|e| anyhow!("{}: {}", e.path.display(), e.source))?;
    eprintln!(
        "fitted {} classes on {} x {} features (shrinkage {}); wrote {}",
        fitted.classes().len(),
        x.nrows(),
        x.ncols(),
        a.shrinkage,
        a.out.display()
    );
    Ok(())
}

fn score(a: ScoreArgs) -> anyhow::Result<()> {
    ood_core::io::check_output(&a.out, &[&a.model, &a.features])?;
    let text =
        std::fs::read_to_string(&a.model).map_err(|e| anyhow!("{}: {e}", a.model.display()))?;
    let file: MahalanobisFile = serde_json::from_str(&text).map_err(|e| {
        anyhow!(
            "{}: not a fitted Mahalanobis detector: {e}",
            a.model.display()
        )
    })?;
    let fitted = Mahalanobis::from_file(file).map_err(|e| anyhow!("{}: {e}", a.model.display()))?;
    let x = read_f64_matrix(&a.features)?;
    let s = fitted
        .score(x.view())
        .map_err(|e| anyhow!("{}: {e}", a.features.display()))?;
    write_f64_vector(&a.out, &s)?;
    eprintln!(
        "wrote {} Mahalanobis scores to {}",
        s.len(),
        a.out.display()
    );
    Ok(())
}
