//! Logistic regression against scikit-learn's `LogisticRegression` (L2, intercept unpenalised).
//! Regenerate with `/work/venv-ref/bin/python crates/ood-core/tests/golden/logistic/make_logistic_golden.py`
//! (any Python with scikit-learn; the versions are recorded in the JSON).
use ndarray::Array2;
use ood_core::logistic::LogisticParams;
use serde_json::Value;

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn logistic_regression_matches_sklearn() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/logistic/logistic.json"
    );
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = golden["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let rows: Vec<Vec<f64>> = case["x"].as_array().unwrap().iter().map(floats).collect();
        let x = Array2::from_shape_vec((rows.len(), rows[0].len()), rows.concat()).unwrap();
        let y: Vec<bool> = case["y"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_bool().unwrap())
            .collect();
        let params = LogisticParams {
            c: case["c"].as_f64().unwrap(),
            ..Default::default()
        };
        let m = params.fit(x.view(), &y).unwrap();
        let close = |got: f64, want: f64, what: &str| {
            assert!(
                (got - want).abs() <= 1e-7 * want.abs().max(1.0),
                "{name}: {what} = {got}, scikit-learn {want}"
            );
        };
        for (j, (&g, w)) in m.weights.iter().zip(floats(&case["coef"])).enumerate() {
            close(g, w, &format!("coef[{j}]"));
        }
        close(
            m.intercept,
            case["intercept"].as_f64().unwrap(),
            "intercept",
        );
        let d = m.decision(x.view()).unwrap();
        for (i, (&g, w)) in d.iter().zip(floats(&case["decision"])).enumerate() {
            close(g, w, &format!("decision[{i}]"));
        }
    }
}
