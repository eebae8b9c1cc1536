//! Timing driver for crates/ood-core/bench/bench_zoo.py (run it through that script; it makes
//! the arrays, runs the peers on the same arrays and compares).
//!
//! `zoo_bench knn TRAIN.npy QUERIES.npy K OUT_INDEX.npy`: fit KNN on TRAIN, search QUERIES,
//! write the k neighbour indices (row-major, int64), print `{"seconds": .., "peak_kib": ..}`.
//! `zoo_bench zoo DIR`: fit every method with its defaults on DIR/{train,train_labels,weight,
//! bias}.npy and score DIR/test.npy; print one JSON object of seconds per method key, the
//! total and the peak resident memory. `zoo DIR KEY...` times only the methods named.

use std::path::Path;
use std::time::Instant;

use ndarray::Array1;
use ood_core::detectors::{FitData, Head, Inputs, KnnParams, Method, Params};
use ood_core::io::npy::{read_f64_matrix, read_f64_vector, read_labels, write_i64_vector};
use ood_core::limits::peak_resident_kib;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("knn") if args.len() == 6 => {
            let train = read_f64_matrix(Path::new(&args[2]))?;
            let queries = read_f64_matrix(Path::new(&args[3]))?;
            let k: usize = args[4].parse()?;
            let t = Instant::now();
            let fit = FitData {
                features: Some(train.view()),
                ..Default::default()
            };
            let model = KnnParams { k, normalize: true }.fit(&fit)?;
            let nb = model.search(queries.view())?;
            let seconds = t.elapsed().as_secs_f64();
            let idx: Vec<i64> = nb
                .iter()
                .flat_map(|n| n.index.iter().map(|&i| i as i64))
                .collect();
            write_i64_vector(Path::new(&args[5]), &idx)?;
            println!(
                "{{\"seconds\": {seconds}, \"peak_kib\": {}}}",
                peak_resident_kib().unwrap_or(0)
            );
        }
        Some("zoo") if args.len() >= 3 => {
            // optional method keys after DIR: time only those (profiling)
            let only: Vec<&str> = args[3..].iter().map(String::as_str).collect();
            let dir = Path::new(&args[2]);
            let train = read_f64_matrix(&dir.join("train.npy"))?;
            let labels = read_labels(&dir.join("train_labels.npy"))?;
            let head = Head::new(
                read_f64_matrix(&dir.join("weight.npy"))?,
                Array1::from(read_f64_vector(&dir.join("bias.npy"))?),
            )?;
            let test = read_f64_matrix(&dir.join("test.npy"))?;
            let fit = FitData {
                features: Some(train.view()),
                logits: None,
                labels: Some(&labels),
                head: Some(&head),
            };
            let inputs = Inputs {
                features: Some(test.view()),
                logits: None,
            };
            let mut parts = Vec::new();
            let all = Instant::now();
            for m in Method::ALL
                .into_iter()
                .filter(|m| only.is_empty() || only.contains(&m.key()))
            {
                let t = Instant::now();
                let scores = Params::default_for(m).fit(&fit)?.score(&inputs)?;
                assert_eq!(scores.len(), test.nrows());
                parts.push(format!("\"{}\": {}", m.key(), t.elapsed().as_secs_f64()));
            }
            let total = all.elapsed().as_secs_f64();
            println!(
                "{{{}, \"total\": {total}, \"peak_kib\": {}}}",
                parts.join(", "),
                peak_resident_kib().unwrap_or(0)
            );
        }
        _ => {
            eprintln!("usage: zoo_bench knn TRAIN QUERIES K OUT | zoo DIR [KEY...]");
            std::process::exit(2);
        }
    }
    Ok(())
}
