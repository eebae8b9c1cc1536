//! `eood score`: logits (.npy, N x K, float32/float64) -> one score per row (.npy, float64).
//! Every score means "higher = more in-distribution"; formulas and citations are in
//! `ood_core::scores`.

use std::path::PathBuf;

use anyhow::{anyhow, Context};
use ood_core::io::npy::{read_f64_matrix, write_f64_vector};
use ood_core::scores::Method;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Score: energy = T*logsumexp(logits/T) (Liu et al. 2020), msp = max softmax(logits/T), maxlogit.
    #[arg(long, default_value = "energy", value_parser = parse_method)]
    pub method: Method,
    /// Temperature T for energy and msp, in [1e-3, 1e6] (paper: 1); ignored by maxlogit.
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
    let logits = read_f64_matrix(&args.logits)?;
    if args.method != Method::MaxLogit {
        crate::args::check_temperature(args.temperature)
            .with_context(|| args.logits.display().to_string())?;
    }
    let scorer = args.method.scorer(args.temperature);
    let scores = scorer
        .score(logits.view())
        .map_err(|e| anyhow!("{}: {e}", args.logits.display()))?;
    // finite logits and a sane T can still overflow (logits near f64::MAX)
    if let Some(i) = ood_core::finite::first_nonfinite(&scores) {
        anyhow::bail!(
            "{}: the {} score of row {i} is {} (logits too large for T = {}); nothing written",
            args.logits.display(),
            scorer.name(),
            scores[i],
            args.temperature
        );
    }
    write_f64_vector(&args.out, &scores)?;
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
