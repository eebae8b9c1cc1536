//! `eood score`: logits (.npy, N x K, float32/float64) -> one score per row (.npy, float64).
//! Every score means "higher = more in-distribution"; formulas and citations are in
//! `ood_core::scores`.

use std::path::PathBuf;

use anyhow::anyhow;
use ood_core::io::npy::{read_f64_matrix, write_f64_vector};
use ood_core::scores::Method;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Score: energy = T*logsumexp(logits/T) (Liu et al. 2020), msp = max softmax(logits/T), maxlogit.
    #[arg(long, default_value = "energy", value_parser = parse_method)]
    pub method: Method,
    /// Temperature T > 0 for energy and msp (paper: 1); ignored by maxlogit.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub temperature: f64,
    /// Logits, N x K .npy (float32 or float64, C order).
    #[arg(long)]
    pub logits: PathBuf,
    /// Output scores, N .npy (float64); written atomically.
    #[arg(long)]
    pub out: PathBuf,
}

fn parse_method(s: &str) -> Result<Method, String> {
    s.parse()
}

pub fn run(args: Args) -> anyhow::Result<()> {
    ood_core::io::check_output(&args.out, &[&args.logits])?;
    let logits = read_f64_matrix(&args.logits).map_err(|e| anyhow!("{e}"))?;
    let scorer = args.method.scorer(args.temperature);
    let scores = scorer
        .score(logits.view())
        .map_err(|e| anyhow!("{}: {e}", args.logits.display()))?;
    write_f64_vector(&args.out, &scores).map_err(|e| anyhow!("{e}"))?;
    let t = scorer
        .temperature()
        .map(|t| format!(", T = {t}"))
        .unwrap_or_default();
    eprintln!(
        "wrote {} {} scores{t} ({} x {} logits) to {}",
        scores.len(),
        scorer.name(),
        logits.nrows(),
        logits.ncols(),
        args.out.display()
    );
    Ok(())
}
