//! `eood`: energy-based out-of-distribution detection from the command line.
//!
//! `main` only calls [`run`]; every subcommand lives in its own file under `cmd/`
//! with a clap `Args` struct and a `run(Args) -> anyhow::Result<()>`.
//! Flags shared by several subcommands are defined once in `args` (docs/cli.md).
//! Any error is printed as one line (`error: ...` with its causes joined by `: `)
//! and the process exits with status 2.

mod args;
mod cmd;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "eood",
    version,
    about = "Energy-based out-of-distribution detection (Liu et al., NeurIPS 2020)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Score logits, features or feature maps with any detector (higher = more in-distribution).
    Score(cmd::score::Args),
    /// Fit a detector (react, knn, vim, mahalanobis_features, ...) on training arrays.
    Fit(cmd::fit::Args),
    /// FPR at 95% TPR, AUROC, AUPR-In/Out and detection error of ID vs OOD scores.
    Metrics(cmd::metrics::Args),
    /// Choose the threshold tau that accepts a target fraction of in-distribution scores.
    Calibrate(cmd::calibrate::Args),
    /// Apply a calibrated detector to scores: 1 = accept (in-distribution), 0 = reject.
    Detect(cmd::detect::Args),
    /// Serve a detector bundle over HTTP (batching, Prometheus metrics, drift monitoring).
    Serve(cmd::serve::Args),
    /// Detector bundles: create, check, decide (ONNX through tract; no libtorch needed).
    Bundle(cmd::bundle::Args),
    /// Datasets: list, fetch, verify, build the Fashion-MNIST OOD benchmark, show montages.
    Data(cmd::data::Args),
    /// Train a classifier from scratch (SGD Nesterov, cosine schedule).
    #[cfg(feature = "nn")]
    Train(cmd::train::Args),
    /// Fine-tune a pretrained classifier with the energy-bounded loss or Outlier Exposure.
    #[cfg(feature = "nn")]
    Finetune(cmd::finetune::Args),
    /// Run a model over a dataset and write logits (and features, feature map, last layer) as .npy.
    #[cfg(feature = "nn")]
    Extract(cmd::extract::Args),
    /// Run a whole benchmark: the paper's tables and figures.
    #[cfg(feature = "nn")]
    Bench(cmd::bench::Args),
    /// Train a classifier (needs the `nn` feature, not in this build).
    #[cfg(not(feature = "nn"))]
    Train(NeedsNn),
    /// Fine-tune a classifier (needs the `nn` feature, not in this build).
    #[cfg(not(feature = "nn"))]
    Finetune(NeedsNn),
    /// Run a model over a dataset (needs the `nn` feature, not in this build).
    #[cfg(not(feature = "nn"))]
    Extract(NeedsNn),
    /// Run a whole benchmark (needs the `nn` feature, not in this build).
    #[cfg(not(feature = "nn"))]
    Bench(NeedsNn),
}

/// A neural subcommand in a build without the `nn` feature: it exists, takes any arguments,
/// and says in one line what is missing.
#[cfg(not(feature = "nn"))]
#[derive(clap::Args, Debug)]
struct NeedsNn {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<std::ffi::OsString>,
}

#[cfg(not(feature = "nn"))]
fn needs_nn(command: &str) -> anyhow::Result<()> {
    anyhow::bail!(
        "`eood {command}` needs the `nn` feature (libtorch), which this build lacks: build with default features (scripts/setup.sh, then cargo build --release)"
    )
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Score(a) => cmd::score::run(a),
        Command::Metrics(a) => cmd::metrics::run(a),
        Command::Calibrate(a) => cmd::calibrate::run(a),
        Command::Detect(a) => cmd::detect::run(a),
        Command::Fit(a) => cmd::fit::run(a),
        Command::Data(a) => cmd::data::run(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Bundle(a) => cmd::bundle::run(a),
        #[cfg(feature = "nn")]
        Command::Train(a) => cmd::train::run(a),
        #[cfg(feature = "nn")]
        Command::Finetune(a) => cmd::finetune::run(a),
        #[cfg(feature = "nn")]
        Command::Extract(a) => cmd::extract::run(a),
        #[cfg(feature = "nn")]
        Command::Bench(a) => cmd::bench::run(a),
        #[cfg(not(feature = "nn"))]
        Command::Train(_) => needs_nn("train"),
        #[cfg(not(feature = "nn"))]
        Command::Finetune(_) => needs_nn("finetune"),
        #[cfg(not(feature = "nn"))]
        Command::Extract(_) => needs_nn("extract"),
        #[cfg(not(feature = "nn"))]
        Command::Bench(_) => needs_nn("bench"),
    }
}

/// One line for the whole error chain. Many error types (ours with `"{path}: {source}"`, and
/// std's) already print their cause in their own message, so a cause whose text is contained in
/// what has been written is skipped instead of being repeated.
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

fn main() {
    let cli = Cli::parse();
    if let Err(err) = run(cli) {
        eprintln!("error: {}", one_line(&err));
        std::process::exit(2);
    }
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn causes_already_in_the_message_are_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let lib = ood_core::io::IoError::new("a.npy", io);
        let err = anyhow::Error::new(lib).context("reading --id");
        assert_eq!(one_line(&err), "reading --id: a.npy: No such file");
    }
}
