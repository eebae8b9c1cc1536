//! Generate a small synthetic OOD problem as .npy files, for scripts/example-core.sh:
//! a 10-class "classifier" whose features are class means plus noise and whose logits are
//! feature . class-mean scores; in-distribution validation and test sets, a "near" OOD set
//! (features between two classes) and a "far" one (unstructured features).
//!
//!     cargo run -p ood-core --example make_logits -- OUT_DIR [SEED]

use std::path::Path;

use ndarray::Array2;
use ood_core::io::npy::{write_f64_matrix, write_i64_vector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const CLASSES: usize = 10;
const DIMS: usize = 16;

/// Standard normal by Box-Muller (keeps the example free of extra dependencies).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u: f64 = 1.0 - rng.random::<f64>();
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

struct Problem {
    means: Array2<f64>,
}

impl Problem {
    fn logits(&self, features: &Array2<f64>) -> Array2<f64> {
        features.dot(&self.means.t()) / 4.0
    }

    /// In-distribution: class mean plus unit noise.
    fn id(&self, rng: &mut ChaCha8Rng, n: usize) -> (Array2<f64>, Vec<i64>) {
        let labels: Vec<i64> = (0..n)
            .map(|_| rng.random_range(0..CLASSES as i64))
            .collect();
        let x = Array2::from_shape_fn((n, DIMS), |(i, d)| {
            self.means[[labels[i] as usize, d]] + normal(rng)
        });
        (x, labels)
    }

    /// Near OOD: halfway between two class means, plus noise.
    fn near(&self, rng: &mut ChaCha8Rng, n: usize) -> Array2<f64> {
        let pairs: Vec<(usize, usize)> = (0..n)
            .map(|_| (rng.random_range(0..CLASSES), rng.random_range(0..CLASSES)))
            .collect();
        Array2::from_shape_fn((n, DIMS), |(i, d)| {
            let (a, b) = pairs[i];
            0.5 * (self.means[[a, d]] + self.means[[b, d]]) + normal(rng)
        })
    }

    /// Far OOD: no class structure at all.
    fn far(&self, rng: &mut ChaCha8Rng, n: usize) -> Array2<f64> {
        Array2::from_shape_fn((n, DIMS), |_| 1.5 * normal(rng))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(out) = args.get(1) else {
        eprintln!("usage: make_logits OUT_DIR [SEED]");
        std::process::exit(2);
    };
    let seed = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2020);
    let out = Path::new(out);
    std::fs::create_dir_all(out).unwrap_or_else(|e| {
        eprintln!("error: {}: {e}", out.display());
        std::process::exit(2)
    });
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let p = Problem {
        means: Array2::from_shape_fn((CLASSES, DIMS), |_| 1.2 * normal(&mut rng)),
    };

    let (train_x, train_y) = p.id(&mut rng, 5000);
    let (val_x, _) = p.id(&mut rng, 2000);
    let (test_x, _) = p.id(&mut rng, 5000);
    let near = p.near(&mut rng, 4000);
    let far = p.far(&mut rng, 4000);

    let save = |name: &str, m: &Array2<f64>| {
        write_f64_matrix(&out.join(name), m).unwrap_or_else(|e| {
            eprintln!("error: {e}");
            std::process::exit(2)
        })
    };
    save("train_features.npy", &train_x);
    write_i64_vector(&out.join("train_labels.npy"), &train_y).expect("write labels");
    for (name, x) in [
        ("val", &val_x),
        ("test", &test_x),
        ("ood_near", &near),
        ("ood_far", &far),
    ] {
        save(&format!("{name}_features.npy"), x);
        save(&format!("{name}_logits.npy"), &p.logits(x));
    }
    eprintln!(
        "wrote train/val/test/ood_near/ood_far features and logits ({CLASSES} classes) to {}",
        out.display()
    );
}
