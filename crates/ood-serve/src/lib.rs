//! `eood serve`: a detector bundle behind HTTP (axum on tokio, HTTP/1.1), framework-free (the
//! model runs through tract in ood-bundle; no libtorch).
//!
//! - Routes ([`http`]): `POST /v1/detect`, `GET /healthz`, `/v1/bundle`, `/v1/drift`, `/metrics`.
//! - [`batcher`]: dynamic batching on one blocking model thread behind a bounded queue.
//! - [`drift`]: the rolling accept-rate window and its binomial test.
//! - [`metrics`]: Prometheus text; [`log`]: one JSON line per event on stderr.
//!
//! [`run`] serves until SIGTERM or Ctrl-C, then drains: no new connections, in-flight requests
//! are answered, the model thread finishes its queue, and `run` returns `Ok`. [`spawn`] runs
//! the same server on a background thread (tests, embedding). docs/deploy.md is the user guide.

pub mod batcher;
pub mod drift;
pub mod error;
pub mod http;
pub mod input;
pub mod log;
pub mod metrics;
pub mod options;
#[doc(hidden)]
pub mod testkit;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub use drift::{DriftMonitor, DriftOptions, DriftReport};
pub use error::{ApiError, ServeError};
pub use options::ServeOptions;

use ood_bundle::Bundle;
use serde_json::json;

use batcher::{BatchOptions, Batcher, Shared};
use http::App;

fn app(bundle: Bundle, opts: ServeOptions) -> Arc<App> {
    let bundle = Arc::new(bundle);
    let metrics = Arc::new(metrics::Metrics::default());
    let target = bundle.detector().target_tpr;
    let drift = Arc::new(Mutex::new(DriftMonitor::new(opts.drift, target)));
    let batcher = Batcher::start(
        Shared {
            bundle: bundle.clone(),
            metrics: metrics.clone(),
            drift: drift.clone(),
        },
        BatchOptions {
            max_batch: opts.max_batch,
            max_wait: opts.max_wait,
            queue: opts.queue,
            workers: opts.workers,
        },
    );
    Arc::new(App {
        bundle,
        opts,
        metrics,
        drift,
        batcher,
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, ServeError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("eood-http")
        .build()
        .map_err(ServeError::Runtime)
}

fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, ServeError> {
    let l =
        std::net::TcpListener::bind(addr).map_err(|source| ServeError::Bind { addr, source })?;
    l.set_nonblocking(true)
        .map_err(|source| ServeError::Bind { addr, source })?;
    Ok(l)
}

/// Serve `listener` until `stop` resolves, then drain and stop the model thread.
async fn serve_until(
    listener: std::net::TcpListener,
    app: Arc<App>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::from_std(listener).map_err(ServeError::Io)?;
    let served = axum::serve(listener, http::router(app.clone()))
        .with_graceful_shutdown(stop)
        .await;
    // every connection is closed: what is queued can only be answered to nobody, but the
    // worker still finishes it before the process goes
    let worker = app.clone();
    let _ = tokio::task::spawn_blocking(move || worker.batcher.shutdown()).await;
    log::event("stopped", json!({"model_calls": app.metrics.model_calls()}));
    served.map_err(ServeError::Io)
}

/// Serve `bundle` on `opts.addr` until SIGTERM or Ctrl-C (the `eood serve` command).
pub fn run(bundle: Bundle, opts: ServeOptions) -> Result<(), ServeError> {
    opts.validate()?;
    let rt = runtime()?;
    let listener = bind(opts.addr)?;
    let addr = listener.local_addr().map_err(ServeError::Io)?;
    rt.block_on(async move {
        // signal handlers first, so that a signal right after the "listening" line is seen
        let stop = shutdown_signal().map_err(ServeError::Io)?;
        let m = bundle.manifest();
        log::event(
            "listening",
            json!({
                "addr": addr.to_string(),
                "bundle": bundle.dir().display().to_string(),
                "method": m.scoring.method,
                "tau": m.scoring.tau,
                "max_batch": opts.max_batch,
                "max_wait_ms": opts.max_wait.as_millis() as u64,
                "workers": opts.workers,
                "queue": opts.queue,
            }),
        );
        serve_until(listener, app(bundle, opts), stop).await
    })
}

/// Resolves on the first SIGTERM or Ctrl-C (SIGINT).
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    Ok(async move {
        #[cfg(unix)]
        let term = term.recv();
        #[cfg(not(unix))]
        let term = std::future::pending::<Option<()>>();
        let reason = tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term => "SIGTERM",
        };
        log::event("shutdown", json!({"signal": reason, "draining": true}));
    })
}

/// A server on a background thread ([`spawn`]).
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), ServeError>>>,
}

impl Running {
    /// Drain and stop; returns what the server returned.
    pub fn stop(mut self) -> Result<(), ServeError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<(), ServeError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(p)) => std::panic::resume_unwind(p),
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// Start serving on a background thread; `opts.addr` with port 0 picks a free port
/// ([`Running::addr`]). No signal handlers are installed.
pub fn spawn(bundle: Bundle, opts: ServeOptions) -> Result<Running, ServeError> {
    opts.validate()?;
    let listener = bind(opts.addr)?;
    let addr = listener.local_addr().map_err(ServeError::Io)?;
    let rt = runtime()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("eood-serve".into())
        .spawn(move || {
            rt.block_on(serve_until(listener, app(bundle, opts), async {
                let _ = rx.await;
            }))
        })
        .map_err(ServeError::Runtime)?;
    Ok(Running {
        addr,
        stop: Some(tx),
        thread: Some(thread),
    })
}
