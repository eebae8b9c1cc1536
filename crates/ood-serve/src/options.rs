//! The server's options, validated once (`eood serve` flags map 1:1 onto these fields; the
//! defaults are documented on each field and in docs/deploy.md).

use std::net::SocketAddr;
use std::time::Duration;

use ood_core::limits::{check_range, LimitError};

use crate::drift::DriftOptions;

/// Default `--max-batch`.
pub const DEFAULT_MAX_BATCH: usize = 64;
/// Default `--max-wait-ms`: never wait for companions (batches form from the queue under load).
pub const DEFAULT_MAX_WAIT_MS: u64 = 0;
/// Most `--workers` the default picks (one per core up to this).
pub const MAX_DEFAULT_WORKERS: usize = 8;

/// Default `--workers`: one model thread per available core, at most [`MAX_DEFAULT_WORKERS`]
/// (tract runs a model call on one thread, so this is what uses the machine).
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, MAX_DEFAULT_WORKERS)
}
/// Default `--queue`.
pub const DEFAULT_QUEUE: usize = 1024;
/// Default `--max-body-bytes` (16 MiB: a 64 x 224 x 224 x 3 uint8 batch fits).
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;
/// Default `--timeout-ms`.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// Most decoded pixels (H x W x C bytes) one request may unpack to. Compressed images are
/// checked against it from their headers, before decoding (a small PNG can claim 16k x 16k).
pub const MAX_DECODED_BYTES: u64 = 256 << 20;

#[derive(Debug, Clone, PartialEq)]
pub struct ServeOptions {
    /// Where to listen (default 127.0.0.1:8080; port 0 picks a free one).
    pub addr: SocketAddr,
    /// Most inputs in one model call (default 64).
    pub max_batch: usize,
    /// How long a model thread waits for more requests once the queue is empty (default 0:
    /// it runs what is queued at once).
    pub max_wait: Duration,
    /// Model threads pulling from the queue (default: one per core, at most 8).
    pub workers: usize,
    /// Requests waiting for the model before new ones get 503 (default 1024).
    pub queue: usize,
    /// Largest request body; larger ones get 413 (default 16 MiB).
    pub max_body_bytes: usize,
    /// Time from a request's arrival to its answer; past it, 504 (default 30 s).
    pub timeout: Duration,
    pub drift: DriftOptions,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_batch: DEFAULT_MAX_BATCH,
            max_wait: Duration::from_millis(DEFAULT_MAX_WAIT_MS),
            workers: default_workers(),
            queue: DEFAULT_QUEUE,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
            drift: DriftOptions::default(),
        }
    }
}

impl ServeOptions {
    /// Every number in range (the flags' names in the errors).
    pub fn validate(&self) -> Result<(), LimitError> {
        check_range("--max-batch", self.max_batch, 1, 4096)?;
        check_range("--max-wait-ms", self.max_wait.as_millis(), 0, 10_000)?;
        check_range("--workers", self.workers, 1, 256)?;
        check_range("--queue", self.queue, 1, 1 << 20)?;
        check_range("--max-body-bytes", self.max_body_bytes, 1024, 1 << 30)?;
        check_range("--timeout-ms", self.timeout.as_millis(), 1, 3_600_000)?;
        self.drift.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_flag() {
        ServeOptions::default().validate().unwrap();
        let d = ServeOptions::default();
        let e = |o: ServeOptions| o.validate().unwrap_err().to_string();
        assert_eq!(
            e(ServeOptions {
                max_batch: 0,
                ..d.clone()
            }),
            "--max-batch must be between 1 and 4096, got 0"
        );
        assert_eq!(
            e(ServeOptions {
                workers: 0,
                ..d.clone()
            }),
            "--workers must be between 1 and 256, got 0"
        );
        assert!(e(ServeOptions {
            queue: 0,
            ..d.clone()
        })
        .starts_with("--queue"));
        assert!(e(ServeOptions {
            max_body_bytes: 10,
            ..d.clone()
        })
        .starts_with("--max-body-bytes"));
        assert!(e(ServeOptions {
            timeout: Duration::ZERO,
            ..d.clone()
        })
        .starts_with("--timeout-ms"));
        let drift = DriftOptions {
            window: 0,
            ..d.drift
        };
        assert!(e(ServeOptions { drift, ..d }).starts_with("--drift-window"));
    }
}
