//! Structured logs: one JSON object a line on stderr (`ts` in Unix seconds, `event`, then the
//! event's fields). Plain `serde_json` rather than `tracing`: the server has a handful of
//! events and this keeps the dependency tree (and build time) small.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

/// Write `{"ts": .., "event": event, ..fields}` as one line. `fields` must be a JSON object.
pub fn event(event: &str, fields: Value) {
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let mut line = Map::new();
    line.insert("ts".into(), Value::from((ts * 1000.0).round() / 1000.0));
    line.insert("event".into(), Value::from(event));
    if let Value::Object(f) = fields {
        line.extend(f);
    }
    let mut text = Value::Object(line).to_string();
    text.push('\n');
    // one write call per line, so concurrent lines do not interleave; a closed stderr is ignored
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}
