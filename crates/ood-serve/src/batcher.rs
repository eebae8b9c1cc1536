//! Dynamic batching: requests' inputs wait in a bounded queue; `workers` blocking model threads
//! (the model is CPU-bound and must never run on the async executor) pull from it. A free worker
//! takes the first waiting request and everything already queued behind it, up to `max_batch`
//! images, and runs them through [`Bundle::decide`] as one model call (in chunks of `max_batch`
//! when a single request brings more). Batches form by themselves under load: while the workers
//! are busy the queue fills. With `max_wait` > 0 a worker also waits that long for companions
//! when the queue runs dry (fewer model calls, more latency); the default 0 never waits, since
//! a lone request waiting for companions that never come only adds latency. Decisions go back
//! to each request through a oneshot channel.
//!
//! If a gathered batch fails (one request's image has an unsupported channel count, say), each
//! of its requests is run alone, so the error reaches only the request that caused it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError};
use ndarray::{Array2, Array3, ArrayView3};
use ood_bundle::{Bundle, BundleError, Decision};
use tokio::sync::oneshot;

use crate::drift::DriftMonitor;
use crate::log;
use crate::metrics::Metrics;

/// What one request asks to have decided.
#[derive(Debug)]
pub enum Work {
    /// u8 `H x W x C` images, any size (the bundle resizes them).
    Images(Vec<Array3<u8>>),
    /// Logits (N x K) and, for fitted methods that take them, features (N x D).
    Logits {
        logits: Array2<f64>,
        features: Option<Array2<f64>>,
    },
}

impl Work {
    fn images(&self) -> usize {
        match self {
            Work::Images(v) => v.len(),
            Work::Logits { .. } => 0,
        }
    }
}

/// Why the worker gave no decisions.
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("the model panicked on this batch")]
    Panic,
}

pub type Reply = Result<Vec<Decision>, WorkError>;

struct Job {
    work: Work,
    reply: oneshot::Sender<Reply>,
    deadline: Instant,
}

/// The queue is full: the request is answered 503.
#[derive(Debug, thiserror::Error)]
#[error("the server is at capacity ({0} requests waiting): retry later")]
pub struct QueueFull(pub usize);

/// Shared by the worker and the handlers.
pub struct Shared {
    pub bundle: Arc<Bundle>,
    pub metrics: Arc<Metrics>,
    pub drift: Arc<Mutex<DriftMonitor>>,
}

/// How the model threads batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchOptions {
    pub max_batch: usize,
    pub max_wait: Duration,
    /// Requests waiting before new ones are refused.
    pub queue: usize,
    /// Model threads pulling from the one queue.
    pub workers: usize,
}

/// The handle the HTTP side holds: submit work, see the queue depth, stop the workers.
pub struct Batcher {
    tx: Sender<Job>,
    capacity: usize,
    stop: Arc<AtomicBool>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl Batcher {
    /// Start the worker threads.
    pub fn start(shared: Shared, opts: BatchOptions) -> Self {
        let (tx, rx) = crossbeam_channel::bounded(opts.queue);
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(shared);
        let handles = (0..opts.workers.max(1))
            .map(|i| {
                let worker = Worker {
                    rx: rx.clone(),
                    shared: shared.clone(),
                    max_batch: opts.max_batch,
                    max_wait: opts.max_wait,
                    stop: stop.clone(),
                };
                std::thread::Builder::new()
                    .name(format!("eood-model-{i}"))
                    .spawn(move || worker.run())
                    .expect("spawning a model worker thread")
            })
            .collect();
        Self {
            tx,
            capacity: opts.queue,
            stop,
            workers: Mutex::new(handles),
        }
    }

    /// Queue `work`; its answer arrives on the receiver. A full queue is refused at once.
    pub fn submit(
        &self,
        work: Work,
        deadline: Instant,
    ) -> Result<oneshot::Receiver<Reply>, QueueFull> {
        let (reply, rx) = oneshot::channel();
        match self.tx.try_send(Job {
            work,
            reply,
            deadline,
        }) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                Err(QueueFull(self.capacity))
            }
        }
    }

    /// Requests waiting for the model.
    pub fn depth(&self) -> usize {
        self.tx.len()
    }

    /// Let the workers finish what is queued, then join them.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let handles = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|p| p.into_inner()));
        for h in handles {
            let _ = h.join();
        }
    }
}

struct Worker {
    rx: Receiver<Job>,
    shared: Arc<Shared>,
    max_batch: usize,
    max_wait: Duration,
    stop: Arc<AtomicBool>,
}

/// How often an idle worker looks at the stop flag.
const IDLE_POLL: Duration = Duration::from_millis(50);

impl Worker {
    fn run(self) {
        loop {
            let first = match self.rx.recv_timeout(IDLE_POLL) {
                Ok(j) => j,
                Err(RecvTimeoutError::Timeout) if !self.stop.load(Ordering::SeqCst) => continue,
                Err(_) => return, // stopping and the queue is empty, or every sender is gone
            };
            if first.work.images() == 0 {
                self.run_alone(first);
                continue;
            }
            let mut jobs = vec![first];
            let mut n = jobs[0].work.images();
            let until = Instant::now() + self.max_wait;
            while n < self.max_batch {
                let next = match self.rx.try_recv() {
                    Ok(j) => j,
                    Err(TryRecvError::Empty) if !self.max_wait.is_zero() => {
                        match self.rx.recv_deadline(until) {
                            Ok(j) => j,
                            Err(_) => break,
                        }
                    }
                    Err(_) => break,
                };
                if next.work.images() == 0 {
                    self.run_alone(next);
                } else {
                    n += next.work.images();
                    jobs.push(next);
                }
            }
            self.run_images(jobs);
        }
    }

    /// Jobs whose requests already timed out (nobody is waiting) are dropped unrun.
    fn live(jobs: Vec<Job>) -> Vec<Job> {
        let now = Instant::now();
        jobs.into_iter()
            .filter(|j| j.deadline > now && !j.reply.is_closed())
            .collect()
    }

    fn run_images(&self, jobs: Vec<Job>) {
        let jobs = Self::live(jobs);
        if jobs.is_empty() {
            return;
        }
        if jobs.len() > 1 {
            let views: Vec<ArrayView3<u8>> = jobs
                .iter()
                .flat_map(|j| match &j.work {
                    Work::Images(v) => v.iter().map(|a| a.view()).collect::<Vec<_>>(),
                    Work::Logits { .. } => Vec::new(),
                })
                .collect();
            if let Ok(all) = self.decide_images(&views) {
                self.record(&all);
                let mut rest = all.into_iter();
                for j in jobs {
                    let mine: Vec<Decision> = rest.by_ref().take(j.work.images()).collect();
                    let _ = j.reply.send(Ok(mine));
                }
                return;
            }
        }
        for j in jobs {
            self.run_alone(j);
        }
    }

    fn run_alone(&self, job: Job) {
        if job.deadline <= Instant::now() || job.reply.is_closed() {
            return;
        }
        let out = match &job.work {
            Work::Images(v) => {
                let views: Vec<_> = v.iter().map(|a| a.view()).collect();
                self.decide_images(&views)
            }
            Work::Logits { logits, features } => self
                .guarded(|b| b.decide_logits(logits.view(), features.as_ref().map(|f| f.view()))),
        };
        if let Ok(d) = &out {
            self.record(d);
        }
        let _ = job.reply.send(out);
    }

    /// One model call per `max_batch` images.
    fn decide_images(&self, views: &[ArrayView3<u8>]) -> Reply {
        let mut all = Vec::with_capacity(views.len());
        for chunk in views.chunks(self.max_batch) {
            self.shared.metrics.model_call(chunk.len());
            all.extend(self.guarded(|b| b.decide(chunk))?);
        }
        Ok(all)
    }

    /// Run `f` on the bundle, turning a panic into an error (the worker must survive it).
    fn guarded(&self, f: impl FnOnce(&Bundle) -> Result<Vec<Decision>, BundleError>) -> Reply {
        Ok(catch_unwind(AssertUnwindSafe(|| f(&self.shared.bundle)))
            .map_err(|_| WorkError::Panic)??)
    }

    /// Count answered decisions and feed the drift window (logging a warning flip).
    fn record(&self, out: &[Decision]) {
        let accepted = out.iter().filter(|d| d.accepted).count();
        self.shared
            .metrics
            .decisions(accepted, out.len() - accepted);
        let flipped = self
            .shared
            .drift
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(out);
        if let Some(on) = flipped {
            let report = self
                .shared
                .drift
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .report();
            log::event(
                if on {
                    "drift_warning_on"
                } else {
                    "drift_warning_off"
                },
                serde_json::to_value(&report).unwrap_or_default(),
            );
        }
    }
}
