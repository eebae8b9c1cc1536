//! Golden scores of every zoo detector against pytorch-ood 0.4.0 (or the authors' formula in
//! float64 where pytorch-ood differs or computes in float32; the script says which).
//! Regenerate with
//! `python/.venv-test/bin/python crates/ood-core/tests/golden/zoo/make_zoo_golden.py`.

use std::path::Path;

use ndarray::{Array1, Array2};
use ood_core::detectors::{
    AshParams, AshVariant, DiceParams, FitData, Fitted, GenParams, GradnormParams, Head, Inputs,
    KnnParams, Method, Params, ReactParams, ScaleParams, VimParams,
};
use serde_json::Value;

struct Golden {
    train: Array2<f64>,
    labels: Vec<i64>,
    head: Head,
    test: Array2<f64>,
    expected: serde_json::Map<String, Value>,
}

fn matrix(v: &Value) -> Array2<f64> {
    let rows: Vec<Vec<f64>> = serde_json::from_value(v.clone()).unwrap();
    Array2::from_shape_vec((rows.len(), rows[0].len()), rows.concat()).unwrap()
}

fn golden() -> Golden {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/zoo/zoo.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let bias: Vec<f64> = serde_json::from_value(v["bias"].clone()).unwrap();
    Golden {
        train: matrix(&v["train"]),
        labels: serde_json::from_value(v["labels"].clone()).unwrap(),
        head: Head::new(matrix(&v["weight"]), Array1::from(bias)).unwrap(),
        test: matrix(&v["test"]),
        expected: v["expected"].as_object().unwrap().clone(),
    }
}

impl Golden {
    /// Training data (features, labels, head) and the test features.
    fn data(&self) -> (FitData<'_>, Inputs<'_>) {
        let fit = FitData {
            features: Some(self.train.view()),
            logits: None,
            labels: Some(&self.labels),
            head: Some(&self.head),
        };
        let inputs = Inputs {
            features: Some(self.test.view()),
            logits: None,
        };
        (fit, inputs)
    }
}

/// The detector a golden case names: `key` or `key@param`.
fn params(case: &str, p: &Value) -> Params {
    let num = |k: &str| p[k].as_f64().unwrap();
    let key = case.split('@').next().unwrap();
    match key {
        "react" => Params::React(ReactParams {
            percentile: num("percentile"),
        }),
        "ash_p" | "ash_b" | "ash_s" => {
            let variant = match key {
                "ash_p" => AshVariant::P,
                "ash_b" => AshVariant::B,
                _ => AshVariant::S,
            };
            Params::Ash(AshParams {
                variant,
                percentile: num("percentile"),
            })
        }
        "scale" => Params::Scale(ScaleParams {
            percentile: num("percentile"),
        }),
        "dice" => Params::Dice(DiceParams {
            percentile: num("percentile"),
        }),
        "gen" => Params::Gen(GenParams {
            gamma: num("gamma"),
            m: num("m") as usize,
        }),
        "knn" => Params::Knn(KnnParams {
            k: num("k") as usize,
            normalize: true,
        }),
        "vim" => Params::Vim(VimParams {
            dim: Some(num("dim") as usize),
        }),
        "gradnorm" => Params::Gradnorm(GradnormParams {
            temperature: num("temperature"),
        }),
        other => Params::default_for(Method::from_key(other).unwrap()),
    }
}

fn assert_close(case: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{case}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs() / w.abs().max(1.0);
        assert!(
            err <= tol,
            "{case} row {i}: {g} vs {w} (relative error {err:e})"
        );
    }
}

#[test]
fn every_method_matches_the_reference() {
    let g = golden();
    let (fit, inputs) = g.data();
    let mut seen = std::collections::BTreeSet::new();
    for (case, v) in &g.expected {
        let p = params(case, &v["params"]);
        seen.insert(p.method().key());
        let model = p.fit(&fit).unwrap_or_else(|e| panic!("{case}: {e}"));
        let want: Vec<f64> = serde_json::from_value(v["scores"].clone()).unwrap();
        let got = model.score(&inputs).unwrap();
        assert_close(case, &got, &want, 1e-5);
        // fitted thresholds, where the reference exposes them
        match (&model, v.get("threshold")) {
            (Fitted::React(r), Some(t)) => {
                assert_close(case, &[r.threshold], &[t.as_f64().unwrap()], 1e-12)
            }
            (Fitted::Dice(d), Some(t)) => {
                assert_close(case, &[d.threshold], &[t.as_f64().unwrap()], 1e-12)
            }
            _ => {}
        }
        if let (Fitted::Vim(m), Some(a)) = (&model, v.get("alpha")) {
            assert_close(case, &[m.alpha], &[a.as_f64().unwrap()], 1e-9);
        }
    }
    // every method but max-logit (covered by the older goldens) has a golden case
    assert_eq!(seen.len(), Method::ALL.len() - 1, "{seen:?}");
}

#[test]
fn logits_given_directly_score_like_features_through_the_head() {
    let g = golden();
    let logits = g.head.logits(g.test.view());
    for key in ["energy", "msp", "gen", "entropy"] {
        let p = Params::default_for(Method::from_key(key).unwrap());
        let m = p.fit(&FitData::default()).unwrap();
        let direct = m
            .score(&Inputs {
                features: None,
                logits: Some(logits.view()),
            })
            .unwrap();
        let want: Vec<f64> = serde_json::from_value(
            g.expected[if key == "gen" { "gen@0.1" } else { key }]["scores"].clone(),
        )
        .unwrap();
        assert_close(key, &direct, &want, 1e-9);
    }
}

#[test]
fn saved_and_loaded_detectors_score_the_same() {
    let g = golden();
    let (fit, inputs) = g.data();
    let dir = tempfile::tempdir().unwrap();
    for m in Method::ALL {
        let model = Params::default_for(m)
            .fit(&fit)
            .unwrap_or_else(|e| panic!("{m:?}: {e}"));
        let path = dir.path().join(format!("{}.json", m.key()));
        model.save(&path).unwrap();
        let back = Fitted::load(&path).unwrap();
        assert_eq!(back.method(), m);
        assert_eq!(
            back.score(&inputs).unwrap(),
            model.score(&inputs).unwrap(),
            "{m:?}"
        );
    }
}
