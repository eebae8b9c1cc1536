//! `--threads`, `--workers`, `--quiet` ([`RuntimeArgs`]) and `--device` ([`DeviceArgs`]).
#[cfg(feature = "nn")]
use anyhow::bail;
use ood_core::limits::{check_range, LimitError};

/// Default `--workers`: threads preparing batches ahead of the model, for every command.
pub const DEFAULT_WORKERS: usize = 2;

/// Most libtorch threads taken by default (see docs/cli.md for the measurement): on a shared
/// machine libtorch's own default (one thread per core) collapses when other processes compete.
#[cfg_attr(not(feature = "nn"), allow(dead_code))] // only the libtorch commands take --threads
pub const DEFAULT_MAX_THREADS: usize = 4;

/// `--threads`, `--workers`, `--quiet`.
#[derive(clap::Args, Debug, Clone)]
pub struct RuntimeArgs {
    /// libtorch intra-op threads (default: half the cores, at most 4; see docs/cli.md).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Threads preparing batches ahead of the model (0: on the main thread).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_WORKERS)]
    pub workers: usize,
    /// No progress bars or per-epoch lines (the result line is still printed).
    #[arg(long)]
    pub quiet: bool,
}

// Only the libtorch commands (absent without the `nn` feature) take these flags.
#[cfg_attr(not(feature = "nn"), allow(dead_code))]
impl RuntimeArgs {
    /// The thread count to use: `--threads`, validated, or the default.
    pub fn threads(&self) -> Result<usize, LimitError> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        match self.threads {
            Some(n) => check_range("--threads", n, 1, 1024),
            None => Ok((cores / 2).clamp(1, DEFAULT_MAX_THREADS)),
        }
    }

    pub fn check(&self) -> anyhow::Result<()> {
        self.threads()?;
        check_range("--workers", self.workers, 0, 256)?;
        Ok(())
    }

    /// Validates and sets libtorch's thread count.
    #[cfg(feature = "nn")]
    pub fn apply(&self) -> anyhow::Result<()> {
        self.check()?;
        ood_nn::tch::set_num_threads(self.threads()? as i32);
        Ok(())
    }

    pub fn progress(&self) -> bool {
        !self.quiet
    }
}

/// Where the network runs, parsed once from `--device`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    /// CUDA device 0 when libtorch sees one, else the CPU.
    Auto,
    Cpu,
    Cuda(usize),
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            s => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(i)) => Ok(DeviceChoice::Cuda(i)),
                _ => Err(format!("expected auto, cpu, cuda or cuda:N, got {s:?}")),
            },
        }
    }
}

/// `--device`.
#[derive(clap::Args, Debug, Clone)]
pub struct DeviceArgs {
    /// auto (CUDA device 0 when libtorch sees one, else CPU), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_parser = clap::value_parser!(DeviceChoice))]
    pub device: DeviceChoice,
}

impl DeviceArgs {
    /// The libtorch device; a CUDA device libtorch does not see is refused.
    #[cfg(feature = "nn")]
    pub fn tch(&self) -> anyhow::Result<ood_nn::tch::Device> {
        use ood_nn::tch::{Cuda, Device};
        let i = match self.device {
            DeviceChoice::Auto => return Ok(Device::cuda_if_available()),
            DeviceChoice::Cpu => return Ok(Device::Cpu),
            DeviceChoice::Cuda(i) => i,
        };
        let n = Cuda::device_count();
        if (i as i64) >= n {
            bail!(
                "--device cuda:{i}: libtorch sees {n} CUDA device(s){}",
                if ood_nn::LINKS_TORCH_CUDA {
                    ""
                } else {
                    " (this build is not linked with libtorch_cuda)"
                }
            );
        }
        Ok(Device::Cuda(i))
    }
}
