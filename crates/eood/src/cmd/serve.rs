//! `eood serve`: a detector bundle behind HTTP, with dynamic batching, Prometheus metrics and
//! OOD-drift monitoring (crate `ood-serve`; docs/deploy.md, "Serving"). Framework-free: in the
//! build without `nn` too. Runs until SIGTERM or Ctrl-C, drains in-flight requests, exits 0.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ood_serve::options::{
    default_workers, DEFAULT_MAX_BATCH, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_WAIT_MS, DEFAULT_QUEUE,
    DEFAULT_TIMEOUT_MS,
};
use ood_serve::{DriftOptions, ServeOptions};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Bundle folder (`eood bundle create` output), e.g. models/fmnist-bundle.
    #[arg(long, value_name = "DIR")]
    pub bundle: PathBuf,
    /// Address to listen on (port 0: any free port, printed in the "listening" log line).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Most inputs in one model call.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_BATCH)]
    pub max_batch: usize,
    /// How long a model thread waits for more requests once the queue is empty (0: run what is
    /// queued at once; batches still form under load).
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_MAX_WAIT_MS)]
    pub max_wait_ms: u64,
    /// Model threads pulling from the queue [default: one per core, at most 8].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Requests waiting for the model before new ones are answered 503.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_QUEUE)]
    pub queue: usize,
    /// Largest request body (larger: 413).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Per-request time limit from arrival to answer (past it: 504).
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_TIMEOUT_MS)]
    pub timeout_ms: u64,
    /// Decisions in the drift window.
    #[arg(long, value_name = "N", default_value_t = DriftOptions::default().window)]
    pub drift_window: usize,
    /// Warn when the accept rate is below the detector's target TPR by more than this...
    #[arg(long, value_name = "RATE", default_value_t = DriftOptions::default().margin)]
    pub drift_margin: f64,
    /// ...and the one-sided binomial test rejects `rate >= target - margin` at this level.
    #[arg(long, value_name = "P", default_value_t = DriftOptions::default().alpha)]
    pub drift_alpha: f64,
}

impl Args {
    fn options(&self) -> anyhow::Result<ServeOptions> {
        let opts = ServeOptions {
            addr: self.addr,
            max_batch: self.max_batch,
            max_wait: Duration::from_millis(self.max_wait_ms),
            workers: self.workers.unwrap_or_else(default_workers),
            queue: self.queue,
            max_body_bytes: self.max_body_bytes,
            timeout: Duration::from_millis(self.timeout_ms),
            drift: DriftOptions {
                window: self.drift_window,
                margin: self.drift_margin,
                alpha: self.drift_alpha,
            },
        };
        opts.validate()?;
        Ok(opts)
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let opts = args.options()?;
    // this build's loader: ONNX always, the libtorch kinds with the `nn` feature
    let bundle = super::bundle::load_for_serving(&args.bundle, opts.workers)?;
    ood_serve::run(bundle, opts)?;
    Ok(())
}
