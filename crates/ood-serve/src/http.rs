//! The routes, the per-request bookkeeping (metrics + one log line) and the detect handler.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use ood_bundle::Bundle;
use serde_json::json;

use crate::batcher::{Batcher, Work};
use crate::drift::DriftMonitor;
use crate::error::ApiError;
use crate::input::{self, Kind};
use crate::log;
use crate::metrics::Metrics;
use crate::options::{ServeOptions, MAX_DECODED_BYTES};

/// What every handler shares.
pub struct App {
    pub bundle: Arc<Bundle>,
    pub opts: ServeOptions,
    pub metrics: Arc<Metrics>,
    pub drift: Arc<Mutex<DriftMonitor>>,
    pub batcher: Batcher,
}

/// Route labels for metrics: the server's routes, or `other` (a bounded label set).
const ROUTES: &[&str] = &[
    "/v1/detect",
    "/v1/bundle",
    "/v1/drift",
    "/healthz",
    "/metrics",
];

/// How many inputs a response decided, for the request log line.
#[derive(Clone, Copy)]
struct Inputs(usize);

pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/detect", post(detect))
        .route("/v1/bundle", get(bundle))
        .route("/v1/drift", get(drift))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(app.clone(), track))
        .with_state(app)
}

/// Count and log every request, whatever route answered it.
async fn track(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path: String = req.uri().path().chars().take(200).collect();
    let route = ROUTES
        .iter()
        .find(|r| **r == path)
        .copied()
        .unwrap_or("other");
    let resp = next.run(req).await;
    let secs = start.elapsed().as_secs_f64();
    let status = resp.status().as_u16();
    app.metrics.request(route, status, secs);
    let inputs = resp.extensions().get::<Inputs>().map(|i| i.0);
    log::event(
        "request",
        json!({
            "method": method.as_str(),
            "path": path,
            "status": status,
            "ms": (secs * 1e6).round() / 1e3,
            "inputs": inputs,
        }),
    );
    resp
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().chars().take(200).collect())
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().chars().take(200).collect(),
    }
}

async fn healthz() -> Response {
    json_response(StatusCode::OK, &json!({"status": "ok"}))
}

async fn bundle(State(app): State<Arc<App>>) -> Response {
    let m = serde_json::to_value(app.bundle.manifest()).unwrap_or_default();
    json_response(StatusCode::OK, &m)
}

async fn drift(State(app): State<Arc<App>>) -> Response {
    let r = app.drift.lock().unwrap_or_else(|p| p.into_inner()).report();
    json_response(StatusCode::OK, &serde_json::to_value(r).unwrap_or_default())
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let report = app.drift.lock().unwrap_or_else(|p| p.into_inner()).report();
    let text = app.metrics.render(app.batcher.depth(), &report);
    let mut r = text.into_response();
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

/// `POST /v1/detect`: the body's inputs, decided in a batch with whatever else is waiting.
async fn detect(State(app): State<Arc<App>>, req: Request) -> Result<Response, ApiError> {
    let deadline = Instant::now() + app.opts.timeout;
    let ms = app.opts.timeout.as_millis();
    tokio::time::timeout_at(deadline.into(), decide(&app, req, deadline))
        .await
        .map_err(|_| ApiError::Timeout(ms))?
}

async fn decide(app: &App, req: Request, deadline: Instant) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let ct = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let kind = Kind::from_content_type(ct)?;
    let bytes = read_body(&parts.headers, body, app.opts.max_body_bytes).await?;
    let work = match kind {
        Kind::Multipart { boundary } => {
            let parts = input::multipart(bytes, boundary).await?;
            blocking(move || {
                let mut budget = MAX_DECODED_BYTES;
                parts
                    .iter()
                    .map(|(i, b)| input::image(b, *i, &mut budget))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Work::Images)
            })
            .await?
        }
        Kind::Image => {
            blocking(move || {
                let mut budget = MAX_DECODED_BYTES;
                input::image(&bytes, 0, &mut budget).map(|i| Work::Images(vec![i]))
            })
            .await?
        }
        Kind::Npy => blocking(move || input::npy(&bytes).map(Work::Images)).await?,
        Kind::Json => {
            let bundle = app.bundle.clone();
            blocking(move || input::json(&bytes, &bundle)).await?
        }
    };
    let rx = app.batcher.submit(work, deadline)?;
    let decisions = rx
        .await
        .map_err(|_| ApiError::ShuttingDown)?
        .map_err(ApiError::from_work)?;
    let det = app.bundle.detector();
    let n = decisions.len();
    let mut r = json_response(
        StatusCode::OK,
        &json!({
            "results": decisions,
            "method": det.method,
            "tau": det.tau,
            "version": det.software_version,
        }),
    );
    r.extensions_mut().insert(Inputs(n));
    Ok(r)
}

/// Decoding is CPU work: off the async executor.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("decoding the body failed: {e}")))?
}

/// The whole body, at most `max` bytes: a declared or actual longer one is 413.
async fn read_body(
    headers: &axum::http::HeaderMap,
    body: Body,
    max: usize,
) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::TooLarge(format!("the request body is over the {max}-byte limit"));
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    match Limited::new(body, max).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err(ApiError::bad(format!("reading the request body: {e}"))),
    }
}
