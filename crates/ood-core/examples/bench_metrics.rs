//! Time `ood_core::metrics::evaluate` (validation + sort + sweep; no file I/O) on two score
//! files and print one JSON object with the timings and the metric values.
//! Driven by `crates/ood-core/bench/bench_core.py`, which times scikit-learn on the same arrays:
//!
//!     cargo run --release -p ood-core --example bench_metrics -- ID.npy OOD.npy [REPEATS]

use std::path::Path;
use std::time::Instant;

use ood_core::io::npy::read_f64_vector;
use ood_core::{metrics, Convention, MetricsConfig};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: bench_metrics ID.npy OOD.npy [REPEATS]");
        std::process::exit(2);
    }
    let load = |p: &str| {
        read_f64_vector(Path::new(p)).unwrap_or_else(|e| {
            eprintln!("error: {e}");
            std::process::exit(2)
        })
    };
    let (id, ood) = (load(&args[1]), load(&args[2]));
    let repeats: usize = args.get(3).and_then(|r| r.parse().ok()).unwrap_or(5);
    let mut out = serde_json::Map::new();
    for conv in [Convention::Paper, Convention::OodPositive] {
        let cfg = MetricsConfig {
            convention: conv,
            tpr: 0.95,
        };
        let mut times = Vec::with_capacity(repeats);
        let mut result = None;
        for _ in 0..repeats {
            let t = Instant::now();
            let m = metrics::evaluate(&id, &ood, &cfg).expect("finite, non-empty scores");
            times.push(t.elapsed().as_secs_f64());
            result = Some(m);
        }
        times.sort_by(f64::total_cmp);
        let m = result.expect("at least one repeat");
        out.insert(
            conv.name().into(),
            serde_json::json!({
                "best_s": times[0],
                "median_s": times[times.len() / 2],
                "repeats": repeats,
                "metrics": m,
            }),
        );
    }
    out.insert("n_id".into(), id.len().into());
    out.insert("n_ood".into(), ood.len().into());
    println!("{}", serde_json::Value::Object(out));
}
