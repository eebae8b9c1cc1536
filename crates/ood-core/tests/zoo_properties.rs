//! Invariants of the detector zoo (proptest) and its refusals of bad input.

use ndarray::{Array1, Array2};
use ood_core::detectors::data::{energy_rows, percentile};
use ood_core::detectors::linalg::symmetric_eigen;
use ood_core::detectors::{
    AshParams, AshVariant, DetectorError, DiceParams, FitData, Fitted, GradnormParams, Head,
    Inputs, KnnParams, Method, Params, ReactParams, ScaleParams,
};
use proptest::prelude::*;

fn mat(rows: usize, cols: usize, v: &[f64]) -> Array2<f64> {
    Array2::from_shape_vec((rows, cols), v[..rows * cols].to_vec()).unwrap()
}

/// Random post-ReLU-like features (N x D) and a head (K x D).
fn problem() -> impl Strategy<Value = (Array2<f64>, Head)> {
    (2usize..30, 2usize..12, 2usize..6).prop_flat_map(|(n, d, k)| {
        (
            prop::collection::vec(0.0f64..3.0, n * d),
            prop::collection::vec(-1.0f64..1.0, k * d + k),
        )
            .prop_map(move |(f, w)| {
                let head = Head::new(mat(k, d, &w), Array1::from(w[k * d..].to_vec())).unwrap();
                (mat(n, d, &f), head)
            })
    })
}

fn fit_data<'a>(f: &'a Array2<f64>, head: &'a Head) -> FitData<'a> {
    FitData {
        features: Some(f.view()),
        head: Some(head),
        ..Default::default()
    }
}

fn score(p: Params, f: &Array2<f64>, head: &Head, x: &Array2<f64>) -> Vec<f64> {
    p.fit(&fit_data(f, head))
        .unwrap()
        .score(&Inputs {
            features: Some(x.view()),
            logits: None,
        })
        .unwrap()
}

fn assert_all_close(a: &[f64], b: &[f64], tol: f64) -> Result<(), TestCaseError> {
    for (x, y) in a.iter().zip(b) {
        prop_assert!((x - y).abs() <= tol * y.abs().max(1.0), "{x} vs {y}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn react_at_100_dice_at_0_ash_p_at_0_equal_energy((f, head) in problem()) {
        let energy = energy_rows(head.logits(f.view()).view(), 1.0);
        // ReAct at 100 clips at the training maximum: nothing changes on training features
        let react = score(Params::React(ReactParams { percentile: 100.0 }), &f, &head, &f);
        assert_all_close(&react, &energy, 1e-12)?;
        let dice = score(Params::Dice(DiceParams { percentile: 0.0 }), &f, &head, &f);
        assert_all_close(&dice, &energy, 1e-12)?;
        let ash = score(Params::Ash(AshParams { variant: AshVariant::P, percentile: 0.0 }), &f, &head, &f);
        assert_all_close(&ash, &energy, 1e-12)?;
        // SCALE at 0: s2 = s1, every feature scaled by e
        let scaled = energy_rows(head.logits((&f * std::f64::consts::E).view()).view(), 1.0);
        let scale = score(Params::Scale(ScaleParams { percentile: 0.0 }), &f, &head, &f);
        assert_all_close(&scale, &scaled, 1e-9)?;
    }

    #[test]
    fn knn_equals_a_naive_scan((f, _head) in problem(), q in prop::collection::vec(-2.0f64..3.0, 1..60), k in 1usize..30) {
        let d = f.ncols();
        let k = k.min(f.nrows());
        let rows = q.len() / d;
        prop_assume!(rows > 0);
        let x = mat(rows, d, &q);
        let got = score(Params::Knn(KnnParams { k, normalize: true }), &f, &_head, &x);
        let norm = |r: ndarray::ArrayView1<f64>| r.to_owned() / r.dot(&r).sqrt().max(1e-12);
        for (i, g) in got.iter().enumerate() {
            let qi = norm(x.row(i));
            let mut dist: Vec<f64> = f.rows().into_iter().map(|b| {
                let z = norm(b) - &qi;
                z.dot(&z).sqrt()
            }).collect();
            dist.sort_by(f64::total_cmp);
            prop_assert!((g + dist[k - 1]).abs() < 1e-6, "row {i}: {g} vs -{}", dist[k - 1]);
        }
    }

    #[test]
    fn percentile_is_numpy_linear(mut v in prop::collection::vec(-100.0f64..100.0, 1..50), p in 0.0f64..=100.0) {
        let mut sorted = v.clone();
        sorted.sort_by(f64::total_cmp);
        let pos = p / 100.0 * (v.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        let want = sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64);
        let got = percentile(&mut v, p);
        prop_assert!((got - want).abs() <= 1e-12 * want.abs().max(1.0), "{got} vs {want}");
    }

    #[test]
    fn eigen_decomposes(v in prop::collection::vec(-1.0f64..1.0, 36)) {
        let b = mat(6, 6, &v);
        let a = b.t().dot(&b);
        let (vals, vecs) = symmetric_eigen(a.view());
        let recon = vecs.dot(&Array2::from_diag(&Array1::from(vals.clone()))).dot(&vecs.t());
        prop_assert!((&recon - &a).iter().all(|e| e.abs() < 1e-10));
        prop_assert!(vals.windows(2).all(|w| w[0] >= w[1]));
    }
}

/// GradNorm's closed form against a central finite difference of the authors' loss.
#[test]
fn gradnorm_closed_form_matches_finite_differences() {
    let w = mat(
        3,
        4,
        &[
            0.3, -0.2, 0.5, 0.1, -0.4, 0.2, 0.0, 0.3, 0.1, 0.1, -0.3, 0.2,
        ],
    );
    let b = Array1::from(vec![0.1, -0.2, 0.05]);
    let h = mat(1, 4, &[1.0, 0.5, 2.0, 0.0]);
    let t = 2.0;
    let loss = |w: &Array2<f64>| {
        let z = (h.dot(&w.t()) + &b) / t;
        let lse = energy_rows(z.view(), 1.0)[0];
        z.iter().map(|v| lse - v).sum::<f64>()
    };
    let mut l1 = 0.0;
    for i in 0..3 {
        for j in 0..4 {
            let (mut up, mut dn) = (w.clone(), w.clone());
            up[[i, j]] += 1e-6;
            dn[[i, j]] -= 1e-6;
            l1 += ((loss(&up) - loss(&dn)) / 2e-6).abs();
        }
    }
    let head = Head::new(w, b).unwrap();
    let got = score(
        Params::Gradnorm(GradnormParams { temperature: t }),
        &h,
        &head,
        &h,
    )[0];
    assert!((got - l1).abs() < 1e-6, "{got} vs {l1}");
}

fn toy() -> (Array2<f64>, Head, Vec<i64>) {
    let f = mat(
        4,
        3,
        &[1.0, 0.0, 0.5, 0.2, 1.0, 0.1, 0.9, 0.1, 0.4, 0.1, 0.8, 0.3],
    );
    let head = Head::new(
        mat(2, 3, &[1.0, -1.0, 0.0, -1.0, 1.0, 0.0]),
        Array1::from(vec![0.0, 0.0]),
    )
    .unwrap();
    (f, head, vec![0, 1, 0, 1])
}

fn toy_fit<'a>(f: &'a Array2<f64>, head: &'a Head, y: &'a [i64]) -> FitData<'a> {
    FitData {
        labels: Some(y),
        ..fit_data(f, head)
    }
}

#[test]
fn refuses_bad_input_with_one_clear_line() {
    let (f, head, y) = toy();
    let fit = toy_fit(&f, &head, &y);
    // features with D = 2 against W with D = 3
    let narrow = mat(2, 2, &[1.0, 2.0, 3.0, 4.0]);
    let m = Params::default_for(Method::React).fit(&fit).unwrap();
    let e = m
        .score(&Inputs {
            features: Some(narrow.view()),
            logits: None,
        })
        .unwrap_err();
    assert!(
        matches!(
            e,
            DetectorError::Dimension {
                found: 2,
                expected: 3,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "features have 2 columns but the head weight W has 3"
    );
    // logits with K = 3 against a head with K = 2
    let l3 = mat(1, 3, &[1.0, 2.0, 3.0]);
    let e = Params::default_for(Method::Energy)
        .fit(&fit)
        .unwrap()
        .score(&Inputs {
            features: None,
            logits: Some(l3.view()),
        })
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the head has 2 classes (rows of W) but the logits have 3 columns"
    );
    // NaN features name the first bad index
    let mut bad = f.clone();
    bad[[2, 1]] = f64::NAN;
    let e = m
        .score(&Inputs {
            features: Some(bad.view()),
            logits: None,
        })
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "feature at row 2, column 1 is NaN (need finite values)"
    );
    let e = Params::default_for(Method::Vim)
        .fit(&FitData {
            features: Some(bad.view()),
            ..fit
        })
        .unwrap_err();
    assert!(
        matches!(e, DetectorError::NonFinite { row: 2, col: 1, .. }),
        "{e}"
    );
    // k larger than the training set
    let e = Params::Knn(KnnParams {
        k: 5,
        normalize: true,
    })
    .fit(&fit)
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "k = 5 is larger than the 4 training features"
    );
    // percentiles outside [0, 100] (and NaN) for every percentile method
    for p in [-1.0, 100.5, f64::NAN] {
        for params in [
            Params::React(ReactParams { percentile: p }),
            Params::Dice(DiceParams { percentile: p }),
            Params::Scale(ScaleParams { percentile: p }),
            Params::Ash(AshParams {
                variant: AshVariant::B,
                percentile: p,
            }),
        ] {
            let e = params.fit(&fit).unwrap_err();
            assert!(matches!(e, DetectorError::Param { .. }), "{e}");
            assert!(
                e.to_string().contains("a percentile between 0 and 100"),
                "{e}"
            );
        }
    }
    // a percentile that keeps no activation of D = 3
    let e = Params::Ash(AshParams {
        variant: AshVariant::B,
        percentile: 100.0,
    })
    .fit(&fit)
    .unwrap()
    .score(&Inputs {
        features: Some(f.view()),
        logits: None,
    })
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "ash_b: percentile 100 keeps no activation of 3"
    );
    // labels of the wrong length; a head without the features it needs
    let e = Params::default_for(Method::Rmds)
        .fit(&FitData {
            labels: Some(&y[..3]),
            ..fit
        })
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "labels have 3 rows but the training data has 4"
    );
    let e = Params::default_for(Method::Dice)
        .fit(&FitData { head: None, ..fit })
        .unwrap_err();
    assert_eq!(e.to_string(), "dice needs the last layer (W, b)");
    // ViM on features that lie in the principal space (second column constant at the origin)
    let flat = mat(3, 2, &[1.0, 0.0, 2.0, 0.0, 3.0, 0.0]);
    let h2 = Head::new(
        mat(2, 2, &[1.0, 0.0, -1.0, 0.0]),
        Array1::from(vec![0.0, 0.0]),
    )
    .unwrap();
    let e = Params::default_for(Method::Vim)
        .fit(&FitData {
            features: Some(flat.view()),
            head: Some(&h2),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "vim: the training features have no residual outside the principal space"
    );
    assert!(Method::from_key("odin").is_err());
    for m in Method::ALL {
        assert_eq!(Method::from_key(m.key()).unwrap(), m);
    }
}

#[test]
fn detector_files_refuse_devices_and_corrupt_content() {
    let (f, head, y) = toy();
    let fit = toy_fit(&f, &head, &y);
    let m = Params::default_for(Method::Vim).fit(&fit).unwrap();
    assert!(matches!(
        m.save(std::path::Path::new("/dev/null")).unwrap_err(),
        DetectorError::Output(_)
    ));
    assert!(matches!(
        Fitted::load(std::path::Path::new("/dev/zero")).unwrap_err(),
        DetectorError::Io(_)
    ));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vim.json");
    m.save(&path).unwrap();
    // a stored matrix whose values do not fill its shape
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replacen("\"rows\":3", "\"rows\":4", 1);
    std::fs::write(&path, text).unwrap();
    let e = Fitted::load(&path).unwrap_err();
    assert!(matches!(e, DetectorError::Parse { .. }), "{e}");
    assert!(
        e.to_string().ends_with("vim.json: not a detector file"),
        "{e}"
    );
}

#[test]
fn knn_is_saved_as_safetensors_and_checked_on_load() {
    let (f, head, y) = toy();
    let fit = toy_fit(&f, &head, &y);
    let m = Params::Knn(KnnParams {
        k: 2,
        normalize: true,
    })
    .fit(&fit)
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("knn.safetensors");
    m.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    // safetensors: 8-byte little-endian header length, then the JSON header
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert!(std::str::from_utf8(&bytes[8..8 + n])
        .unwrap()
        .contains("knn.bank"));
    let inputs = Inputs {
        features: Some(f.view()),
        logits: None,
    };
    assert_eq!(
        Fitted::load(&path).unwrap().score(&inputs).unwrap(),
        m.score(&inputs).unwrap()
    );
    // a NaN in the stored bank (last 8 bytes are its last value)
    let mut bad = bytes.clone();
    let end = bad.len();
    bad[end - 8..].copy_from_slice(&f64::NAN.to_le_bytes());
    std::fs::write(&path, &bad).unwrap();
    let e = Fitted::load(&path).unwrap_err();
    assert_eq!(
        e.to_string(),
        "stored KNN bank value at row 3, column 2 is NaN (need finite values)"
    );
    // truncated
    std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
    assert!(matches!(
        Fitted::load(&path).unwrap_err(),
        DetectorError::Safetensors { .. }
    ));
}

#[test]
fn paper_grids_are_valid_and_hold_the_defaults() {
    for m in Method::ALL {
        let grid = Params::paper_grid(m, 128);
        assert!(!grid.is_empty(), "{m:?}");
        for p in &grid {
            p.validate().unwrap();
            assert_eq!(p.method(), m);
        }
        // the paper default is one of the grid points (ViM's D/2 = 64 for D = 128 too)
        let d = Params::default_for(m);
        let d = match d {
            Params::Vim(_) => Params::Vim(ood_core::detectors::VimParams { dim: Some(64) }),
            d => d,
        };
        assert!(grid.contains(&d), "{m:?}: {d:?} not in its grid");
    }
    assert_eq!(Params::paper_grid(Method::Knn, 128).len(), 5);
    assert_eq!(Params::paper_grid(Method::Vim, 64).len(), 2); // 16, 32 below D = 64
}

#[test]
fn knn_refuses_features_beyond_f32_instead_of_panicking() {
    // Regression: unnormalised features past f32's range made every distance NaN and the score
    // indexed an empty neighbour list (a panic, a PanicException in Python).
    let (f, head, y) = toy();
    let fit = toy_fit(&f, &head, &y);
    let m = Params::Knn(KnnParams {
        k: 2,
        normalize: false,
    })
    .fit(&fit)
    .unwrap();
    let huge = mat(2, 3, &[1.0, 0.0, 0.0, 1e20, 0.0, 0.0]);
    let e = m
        .score(&Inputs {
            features: Some(huge.view()),
            logits: None,
        })
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "knn (query in f32): score of row 1 is not finite (feature scaling overflowed)"
    );
}
