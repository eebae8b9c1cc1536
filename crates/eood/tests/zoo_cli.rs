//! `eood fit` / `eood score` for every method of the detector zoo, against the core's own
//! results on the same arrays, then `calibrate` / `detect` on a zoo method's scores; and every
//! bad input the grammar must refuse with one line and exit code 2.

mod common;

use std::path::PathBuf;

use assert_cmd::Command;
use ndarray::{Array1, Array2, Array4};
use ood_core::detectors::{FitData, Fitted, Head, Inputs, Method, Params};
use ood_core::io::npy::{read_f64_vector, write_array, write_f64_matrix, write_i64_vector};

use common::{eood, fails_with, s};

/// Deterministic pseudo-random values in [0, 1) (a fixed LCG: no dependency, same on every run).
fn uniform(n: usize, seed: u64) -> Vec<f64> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

/// Tiny training and test sets: ReLU-like features (D = 6), a head (K = 3), logits, labels.
struct Zoo {
    dir: tempfile::TempDir,
    head: Head,
    train: Array2<f64>,
    labels: Vec<i64>,
    test: Array2<f64>,
}

impl Zoo {
    fn new() -> Self {
        let (n, d, k) = (60, 6, 3);
        let labels: Vec<i64> = (0..n).map(|i| (i % k) as i64).collect();
        // class c is shifted along feature c, so classes separate and covariances are full
        let mut train = Array2::from_shape_vec((n, d), uniform(n * d, 1)).unwrap();
        for (i, mut row) in train.rows_mut().into_iter().enumerate() {
            row[i % k] += 2.0;
        }
        let test = Array2::from_shape_vec((9, d), uniform(9 * d, 2)).unwrap() * 3.0;
        // the head reads class c off feature c (so every class has correctly classified
        // training samples, which SHE needs), plus noise
        let mut w = Array2::from_shape_vec((k, d), uniform(k * d, 3)).unwrap() - 0.5;
        for c in 0..k {
            w[[c, c]] += 2.0;
        }
        let b = Array1::from(uniform(k, 4)) - 0.5;
        let zoo = Self {
            dir: tempfile::tempdir().unwrap(),
            head: Head::new(w, b).unwrap(),
            train,
            labels,
            test,
        };
        write_f64_matrix(&zoo.path("train.npy"), &zoo.train).unwrap();
        write_f64_matrix(
            &zoo.path("train_logits.npy"),
            &zoo.head.logits(zoo.train.view()),
        )
        .unwrap();
        write_i64_vector(&zoo.path("labels.npy"), &zoo.labels).unwrap();
        write_f64_matrix(&zoo.path("test.npy"), &zoo.test).unwrap();
        write_f64_matrix(
            &zoo.path("test_logits.npy"),
            &zoo.head.logits(zoo.test.view()),
        )
        .unwrap();
        write_f64_matrix(&zoo.path("w.npy"), &zoo.head.weight).unwrap();
        let bias: Vec<f64> = zoo.head.bias.to_vec();
        write_array(&zoo.path("b.npy"), &[bias.len()], &bias).unwrap();
        zoo
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn p(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_string()
    }
    /// `--weight W --bias B`: the head written by [`Zoo::new`].
    fn head(&self) -> [String; 4] {
        [
            "--weight".into(),
            self.p("w.npy"),
            "--bias".into(),
            self.p("b.npy"),
        ]
    }
    /// `eood fit --method key` on everything (features, logits, labels, head).
    fn fit(&self, key: &str, extra: &[&str], out: &str) -> Command {
        let mut c = eood();
        c.args(["fit", "--method", key, "--features", &self.p("train.npy")])
            .args(["--logits", &self.p("train_logits.npy")])
            .args(["--labels", &self.p("labels.npy")])
            .args(self.head())
            .args(extra)
            .args(["--out", &self.p(out)]);
        c
    }
    /// What the core gives for this method with its paper defaults.
    fn expected(&self, m: Method) -> Vec<f64> {
        let fitted = Params::default_for(m)
            .fit(&FitData {
                features: Some(self.train.view()),
                logits: None,
                labels: Some(&self.labels),
                head: Some(&self.head),
            })
            .unwrap();
        fitted
            .score(&Inputs {
                features: Some(self.test.view()),
                logits: None,
            })
            .unwrap()
    }
}

fn close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (a, b) in got.iter().zip(want) {
        assert!(
            (a - b).abs() <= 1e-9 * (1.0 + b.abs()),
            "{what}: {got:?} vs {want:?}"
        );
    }
}

#[test]
fn every_method_fits_and_scores_as_the_core_does() {
    let z = Zoo::new();
    for m in Method::ALL {
        let key = m.key();
        let fitted = format!("{key}.fit");
        let out = z.path(&format!("{key}.npy"));
        z.fit(key, &[], &fitted).assert().success();
        eood()
            .args(["score", "--method", key, "--fitted", &z.p(&fitted)])
            .args(["--features", &z.p("test.npy"), "--out", s(&out)])
            .assert()
            .success();
        close(&read_f64_vector(&out).unwrap(), &z.expected(m), key);
        // the method comes from the file when --method is left out
        let again = z.path(&format!("{key}-2.npy"));
        eood()
            .args([
                "score",
                "--fitted",
                &z.p(&fitted),
                "--features",
                &z.p("test.npy"),
            ])
            .args(["--out", s(&again)])
            .assert()
            .success();
        close(&read_f64_vector(&again).unwrap(), &z.expected(m), key);
    }
    // methods that learn nothing are built at scoring time from the head and the flags
    let out = z.path("ash.npy");
    eood()
        .args(["score", "--method", "ash_b", "--features", &z.p("test.npy")])
        .args(z.head())
        .args(["--out", s(&out)])
        .assert()
        .success();
    close(
        &read_f64_vector(&out).unwrap(),
        &z.expected(Method::AshB),
        "ash_b",
    );
    // a parameter flag changes the result to the core's with that parameter
    z.fit("react", &["--percentile", "50"], "react50.fit")
        .assert()
        .success();
    let Fitted::React(r) = Fitted::load(&z.path("react50.fit")).unwrap() else {
        panic!("not a ReAct file")
    };
    let mut all: Vec<f64> = z.train.iter().copied().collect();
    all.sort_by(f64::total_cmp);
    let median = (all[all.len() / 2 - 1] + all[all.len() / 2]) / 2.0;
    assert!(
        (r.threshold - median).abs() < 1e-12,
        "{} vs {median}",
        r.threshold
    );
    // energy from logits alone, with a temperature
    let e = z.path("energy.npy");
    eood()
        .args(["score", "--method", "energy", "--temperature", "2"])
        .args(["--logits", &z.p("test_logits.npy"), "--out", s(&e)])
        .assert()
        .success();
    let l = z.head.logits(z.test.view());
    let want: Vec<f64> = l
        .rows()
        .into_iter()
        .map(|r| 2.0 * r.iter().map(|v| (v / 2.0).exp()).sum::<f64>().ln())
        .collect();
    close(&read_f64_vector(&e).unwrap(), &want, "energy T=2");
}

#[test]
fn the_feature_map_gives_the_papers_variants() {
    let z = Zoo::new();
    // a 1 x 1 map equals the features: the paper's variant is then the pooled one
    let (n, d) = z.test.dim();
    let map: Vec<f64> = z.test.iter().copied().collect();
    write_array(&z.path("map1.npy"), &[n, d, 1, 1], &map).unwrap();
    for key in ["ash_p", "ash_s", "scale"] {
        let (a, b) = (z.path("a.npy"), z.path("b.npy.out"));
        let head = z.head();
        eood()
            .args(["score", "--method", key, "--features", &z.p("test.npy")])
            .args(&head)
            .args(["--out", s(&a)])
            .assert()
            .success();
        eood()
            .args(["score", "--method", key, "--feature-map", &z.p("map1.npy")])
            .args(&head)
            .args(["--out", s(&b)])
            .assert()
            .success();
        close(
            &read_f64_vector(&b).unwrap(),
            &read_f64_vector(&a).unwrap(),
            key,
        );
    }
    // a 2 x 2 map: the CLI gives the core's map variant
    let big = Array4::from_shape_vec((n, d, 2, 2), uniform(n * d * 4, 5)).unwrap();
    let flat: Vec<f64> = big.iter().copied().collect();
    write_array(&z.path("map2.npy"), &[n, d, 2, 2], &flat).unwrap();
    let out = z.path("m.npy");
    eood()
        .args([
            "score",
            "--method",
            "scale",
            "--feature-map",
            &z.p("map2.npy"),
        ])
        .args(z.head())
        .args(["--out", s(&out)])
        .assert()
        .success();
    let Fitted::Scale(sc) = Params::default_for(Method::Scale)
        .fit(&FitData {
            head: Some(&z.head),
            ..FitData::default()
        })
        .unwrap()
    else {
        panic!()
    };
    close(
        &read_f64_vector(&out).unwrap(),
        &sc.score_map(big.view()).unwrap(),
        "scale map",
    );
    fails_with(
        eood()
            .args([
                "score",
                "--method",
                "gen",
                "--feature-map",
                &z.p("map2.npy"),
            ])
            .args(z.head())
            .args(["--out", s(&out)]),
        &["--feature-map is scored by ash_p, ash_b, ash_s and scale only, not gen"],
    );
}

#[test]
fn calibrate_and_detect_take_zoo_methods() {
    let z = Zoo::new();
    z.fit("knn", &["--k", "5"], "knn.fit").assert().success();
    let (val, det, flags) = (z.path("val.npy"), z.path("det.json"), z.path("f.npy"));
    eood()
        .args([
            "score",
            "--fitted",
            &z.p("knn.fit"),
            "--features",
            &z.p("test.npy"),
        ])
        .args(["--out", s(&val)])
        .assert()
        .success();
    eood()
        .args(["calibrate", "--method", "knn", "--id-scores", s(&val)])
        .args(["--out", s(&det)])
        .assert()
        .success();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&det).unwrap()).unwrap();
    assert_eq!(json["method"], "knn");
    assert_eq!(json["temperature"], serde_json::Value::Null);
    eood()
        .args(["detect", "--detector", s(&det), "--method", "knn"])
        .args(["--scores", s(&val), "--out", s(&flags)])
        .assert()
        .success();
    fails_with(
        eood()
            .args(["detect", "--detector", s(&det), "--method", "react"])
            .args(["--scores", s(&val), "--out", s(&flags)]),
        &["calibrated on knn scores, these are declared react"],
    );
}

#[test]
fn bad_inputs_are_one_line_and_exit_2() {
    let z = Zoo::new();
    let out = z.p("x.out");
    // features and weights of different D
    let wide = Array2::<f64>::ones((3, 5));
    write_f64_matrix(&z.path("w5.npy"), &wide).unwrap();
    fails_with(
        eood()
            .args(["fit", "--method", "react", "--features", &z.p("train.npy")])
            .args([
                "--weight",
                &z.p("w5.npy"),
                "--bias",
                &z.p("b.npy"),
                "--out",
                &out,
            ]),
        &[
            "fitting react on",
            "train.npy",
            "features have 6 columns but the head weight W has 5",
        ],
    );
    // a head whose K differs from the logits'
    let w2 = Array2::<f64>::ones((2, 6));
    write_f64_matrix(&z.path("w2.npy"), &w2).unwrap();
    write_array(&z.path("b2.npy"), &[2], &[0.0, 0.0]).unwrap();
    fails_with(
        eood()
            .args([
                "fit",
                "--method",
                "klm",
                "--logits",
                &z.p("train_logits.npy"),
            ])
            .args([
                "--weight",
                &z.p("w2.npy"),
                "--bias",
                &z.p("b2.npy"),
                "--out",
                &out,
            ]),
        &["the head has 2 classes (rows of W) but the logits have 3 columns"],
    );
    // NaN features
    let mut nan = z.train.clone();
    nan[[4, 2]] = f64::NAN;
    write_f64_matrix(&z.path("nan.npy"), &nan).unwrap();
    fails_with(
        eood().args([
            "fit",
            "--method",
            "knn",
            "--features",
            &z.p("nan.npy"),
            "--out",
            &out,
        ]),
        &["nan.npy", "feature at row 4, column 2 is NaN"],
    );
    // k larger than the training set
    fails_with(
        eood()
            .args(["fit", "--method", "knn", "--features", &z.p("train.npy")])
            .args(["--k", "100", "--out", &out]),
        &["k = 100 is larger than the 60 training features"],
    );
    // percentiles outside [0, 100]
    for p in ["150", "-5", "NaN"] {
        fails_with(
            eood()
                .args(["fit", "--method", "react", "--features", &z.p("train.npy")])
                .args(z.head())
                .args(["--percentile", p, "--out", &out]),
            &["ReAct percentile must be a percentile between 0 and 100, got"],
        );
    }
    // a flag the method does not take
    fails_with(
        eood()
            .args(["fit", "--method", "knn", "--features", &z.p("train.npy")])
            .args(["--percentile", "90", "--out", &out]),
        &["--percentile is not a parameter of knn (its parameters: --k)"],
    );
    // a fitted file of another method
    z.fit("react", &[], "react.fit").assert().success();
    let score = |fitted: &str, method: &str| {
        let mut c = eood();
        c.args(["score", "--method", method, "--fitted", fitted])
            .args(["--features", &z.p("test.npy"), "--out", &out]);
        c
    };
    fails_with(
        &mut score(&z.p("react.fit"), "knn"),
        &["react.fit: holds a fitted react detector, not knn"],
    );
    // a fitted file that is not a regular file, not a detector, or huge
    fails_with(&mut score(s(z.dir.path()), "knn"), &["not a regular file"]);
    fails_with(
        &mut score("/dev/zero", "knn"),
        &["/dev/zero", "not a regular file"],
    );
    std::fs::write(
        z.path("calibrated.json"),
        r#"{"format": "eood-detector", "version": 1}"#,
    )
    .unwrap();
    fails_with(
        &mut score(&z.p("calibrated.json"), "knn"),
        &["calibrated.json: not a detector file"],
    );
    let huge = std::fs::File::create(z.path("huge.fit")).unwrap();
    huge.set_len(100 << 30).unwrap(); // sparse: no disk used
    fails_with(
        &mut score(&z.p("huge.fit"), "knn"),
        &["huge.fit", "more than the"],
    );
    // a method that learns from training data, scored without its file
    fails_with(
        eood().args([
            "score",
            "--method",
            "vim",
            "--features",
            &z.p("test.npy"),
            "--out",
            &out,
        ]),
        &["vim learns from training data", "eood fit --method vim"],
    );
    // parameters and a fitted file together
    fails_with(
        &mut score(&z.p("react.fit"), "react").args(["--percentile", "80"]),
        &["cannot be given with --fitted"],
    );
    // nothing was written by any refusal
    assert!(!z.path("x.out").exists());
}
