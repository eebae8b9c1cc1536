//! ODIN and Mahalanobis input preprocessing must reproduce PyTorch's numbers (the code of record's
//! procedures written out in tests/golden/make_odin_golden.py) on the small random WRN-10-1;
//! the Mahalanobis layer ensemble reproduces a naive per-layer computation on it.
mod common;

use ndarray::Array2;
use ood_core::metrics::MetricsConfig;
use ood_core::scores::mahalanobis_ensemble::fit_layers;
use ood_core::scores::{EnsembleParams, Mahalanobis, MahalanobisParams};
use ood_data::transforms::Normalize;
use ood_nn::extract::InputSet;
use ood_nn::mahalanobis_ensemble::{collect_layer_features, LayerInputs};
use ood_nn::mahalanobis_input::{self, MahalanobisInput};
use ood_nn::model::Classifier;
use ood_nn::odin::{self, OdinGrid, OdinParams};
use ood_nn::tch::{Device, Kind, Tensor};
use serde_json::Value;

use common::{golden, wrn10 as model};

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(golden("odin_golden.json")).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|x| match x {
            Value::Array(_) => floats(x),
            _ => vec![x.as_f64().unwrap()],
        })
        .collect()
}

fn normalize() -> Normalize {
    Normalize::cifar()
}

fn std_f64() -> Vec<f64> {
    normalize().std.iter().map(|&s| s as f64).collect()
}

/// The normalized test batch, through the same reader `eood extract` uses.
fn test_batch() -> Tensor {
    let input = InputSet::open(&golden("odin_test_x.npy")).unwrap();
    let mut batches = input.batches(64, Some(&normalize()), 0).unwrap();
    batches.next().unwrap().unwrap().x
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn max_rel_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / y.abs().max(1e-3))
        .fold(0.0, f64::max)
}

fn tensor_values(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).contiguous().view(-1)).unwrap()
}

#[test]
fn odin_matches_pytorch_for_each_temperature_and_epsilon() {
    let net = model();
    let x = test_batch();
    let want = expected();
    let cases = want["odin"].as_array().unwrap();
    let grid = OdinGrid {
        temperatures: vec![1.0, 10.0, 1000.0],
        epsilons: vec![0.0, 0.0014, 0.0048],
    };
    let got = odin::odin_batch(&net, &x, &std_f64(), &grid).unwrap();
    assert_eq!(got.len(), cases.len());
    let clean = tensor_values(&got[0].1);
    let want_clean = floats(&cases[0]["logits"]);
    for (case, (scores, logits), p) in itertools(cases, &got, grid.params()) {
        assert_eq!(case["temperature"].as_f64().unwrap(), p.temperature);
        assert_eq!(case["epsilon"].as_f64().unwrap(), p.epsilon);
        let logits = tensor_values(logits);
        let want_logits = floats(&case["logits"]);
        let err = max_rel_diff(&logits, &want_logits);
        assert!(
            err < 1e-4,
            "{p:?}: perturbed logits differ from PyTorch's by {err}"
        );
        let err = max_abs_diff(scores, &floats(&case["scores"]));
        assert!(err < 1e-6, "{p:?}: scores differ from PyTorch's by {err}");
        if p.epsilon > 0.0 {
            // The step must really move the logits, and move them as PyTorch's does: compare the
            // change itself, so a wrong gradient sign could not hide inside the tolerance.
            let moved: Vec<f64> = logits.iter().zip(&clean).map(|(a, b)| a - b).collect();
            let want_moved: Vec<f64> = want_logits
                .iter()
                .zip(&want_clean)
                .map(|(a, b)| a - b)
                .collect();
            let scale = want_moved.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(scale > 1e-3, "{p:?}: step moved logits by only {scale}");
            let err = max_abs_diff(&moved, &want_moved) / scale;
            assert!(
                err < 1e-2,
                "{p:?}: logit change differs from PyTorch's by {err} of its size"
            );
        }
    }
}

fn itertools<'a>(
    cases: &'a [Value],
    got: &'a [(Vec<f64>, Tensor)],
    params: Vec<OdinParams>,
) -> impl Iterator<Item = (&'a Value, &'a (Vec<f64>, Tensor), OdinParams)> {
    cases
        .iter()
        .zip(got.iter())
        .zip(params)
        .map(|((c, g), p)| (c, g, p))
}

#[test]
fn odin_over_an_input_set_equals_the_batch_computation() {
    let net = model();
    let input = InputSet::open(&golden("odin_test_x.npy")).unwrap();
    let grid = OdinGrid::single(OdinParams {
        temperature: 1000.0,
        epsilon: 0.0014,
    });
    // Batches of 3 (3 + 3 + 2): per-batch mean loss has the same gradient signs.
    let scores = odin::odin_scores(
        &net,
        &input,
        Some(&normalize()),
        &std_f64(),
        &grid,
        3,
        false,
    )
    .unwrap();
    let want = expected();
    let case = want["odin"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["temperature"] == 1000.0 && c["epsilon"] == 0.0014)
        .unwrap();
    assert!(max_abs_diff(&scores[0], &floats(&case["scores"])) < 1e-6);
}

/// A quiet pass of `net` over `input` normalized by `norm`, in batches of `batch_size`.
fn pass<'a>(
    net: &'a Classifier,
    input: &'a InputSet,
    norm: &'a Normalize,
    batch_size: usize,
) -> mahalanobis_input::Pass<'a> {
    mahalanobis_input::Pass {
        model: net,
        input,
        normalize: Some(norm),
        batch_size,
        progress: false,
    }
}

fn fitted(net: &Classifier, shrinkage: f64) -> ood_core::scores::Mahalanobis {
    let train = InputSet::open(&golden("odin_train_x.npy")).unwrap();
    let labels = ood_core::io::npy::read_labels(&golden("odin_train_y.npy")).unwrap();
    mahalanobis_input::fit(
        net,
        &train,
        &labels,
        Some(&normalize()),
        MahalanobisParams { shrinkage },
        50,
        false,
    )
    .unwrap()
}

#[test]
fn mahalanobis_with_input_preprocessing_matches_pytorch() {
    let net = model();
    let want = expected();
    let fit = fitted(&net, want["shrinkage"].as_f64().unwrap());
    let means: Vec<f64> = fit.means().iter().copied().collect();
    let err = max_rel_diff(&means, &floats(&want["feature_means"]));
    assert!(err < 1e-4, "class means differ from PyTorch's by {err}");

    let detector = MahalanobisInput::new(&fit, Device::Cpu).unwrap();
    let cases = want["mahalanobis"].as_array().unwrap();
    let eps: Vec<f64> = cases
        .iter()
        .map(|c| c["epsilon"].as_f64().unwrap())
        .collect();
    let x = test_batch();
    let got = detector.scores_batch(&net, &x, &std_f64(), &eps).unwrap();
    for (case, scores) in cases.iter().zip(&got) {
        let err = max_rel_diff(scores, &floats(&case["scores"]));
        assert!(
            err < 1e-4,
            "eps {}: scores differ from PyTorch's by {err}",
            case["epsilon"]
        );
    }
    // eps = 0 is ood_core's plain Mahalanobis score of the same features.
    let test = InputSet::open(&golden("odin_test_x.npy")).unwrap();
    let norm = normalize();
    let feats = mahalanobis_input::collect_features(pass(&net, &test, &norm, 8)).unwrap();
    let plain = fit.score(feats.view()).unwrap();
    assert!(max_rel_diff(&got[0], &plain) < 1e-9);
    // The largest step changes every score by far more than the tolerance.
    assert!(got[3].iter().zip(&got[0]).all(|(a, b)| (a - b).abs() > 1.0));
}

#[test]
fn selection_picks_the_lowest_mean_validation_fpr() {
    // Setting 0 separates set A perfectly but fails on B; setting 1 is decent on both;
    // setting 2 equals setting 1 (ties go to the earlier one).
    let id: Vec<f64> = (0..100).map(|i| 10.0 + i as f64).collect();
    let bad: Vec<f64> = (0..100).map(|i| 50.0 + i as f64).collect();
    let good: Vec<f64> = (0..100).map(|i| i as f64 * 0.15).collect();
    let partly: Vec<f64> = (0..100).map(|i| i as f64 * 0.2).collect();
    let id_scores = vec![id.clone(), id.clone(), id.clone()];
    let set_a = vec![good.clone(), partly.clone(), partly.clone()];
    let set_b = vec![bad, partly.clone(), partly];
    let sel =
        odin::select_on_validation(&id_scores, &[set_a, set_b], &MetricsConfig::default()).unwrap();
    assert_eq!(sel.best, 1, "{sel:?}");
    assert_eq!(sel.mean_fpr[1], sel.mean_fpr[2]);
    assert!(sel.mean_fpr[0] > sel.mean_fpr[1]);
    assert!(odin::select_on_validation(&id_scores, &[], &MetricsConfig::default()).is_err());
}

#[test]
fn default_grids_are_the_code_of_record() {
    let g = OdinGrid::default();
    assert_eq!(g.temperatures, [1.0, 10.0, 100.0, 1000.0]);
    assert_eq!(g.epsilons.len(), 10);
    assert_eq!(g.epsilons[9], 0.0048);
    assert_eq!(g.params().len(), 40);
    assert_eq!(
        mahalanobis_input::EPSILONS,
        [0.0, 0.0005, 0.001, 0.0014, 0.002, 0.005, 0.01]
    );
}

// The Mahalanobis layer ensemble (Lee et al. 2018) on the same WRN-10-1: the batched per-layer
// scores with input preprocessing equal a naive computation, one image and one class at a
// time, with the precision from a plain matrix inverse and the scores from ood_core's
// single-layer Mahalanobis; the ensemble score is the regression's logit of those scores.

fn to_tensor(a: &Array2<f64>) -> Tensor {
    let (r, c) = a.dim();
    Tensor::from_slice(a.as_standard_layout().as_slice().unwrap()).view([r as i64, c as i64])
}

fn host(t: &Tensor) -> Array2<f64> {
    let t = t.to_kind(Kind::Double).contiguous();
    let (r, c) = (t.size()[0] as usize, t.size()[1] as usize);
    Array2::from_shape_vec((r, c), Vec::<f64>::try_from(t.view(-1)).unwrap()).unwrap()
}

/// Layer `l`'s score of one image `x` (1 x C x H x W) after a step of `eps`, the slow way.
fn naive_score(net: &Classifier, fit: &Mahalanobis, l: usize, x: &Tensor, eps: f64) -> f64 {
    let means = to_tensor(fit.means());
    let precision = to_tensor(fit.covariance()).inverse();
    let x = x.detach().set_requires_grad(true);
    let f = net.layer_features(&x, 4).unwrap()[l].to_kind(Kind::Double);
    let mut best: Option<(f64, Tensor)> = None;
    for c in 0..means.size()[0] {
        let diff = &f - means.get(c).unsqueeze(0);
        let d = diff
            .matmul(&precision)
            .matmul(&diff.transpose(0, 1))
            .sum(Kind::Double);
        let v = d.double_value(&[]);
        if best.as_ref().is_none_or(|(b, _)| v < *b) {
            best = Some((v, d));
        }
    }
    let (_, loss) = best.unwrap();
    let grad = Tensor::run_backward(&[loss], &[&x], false, false).remove(0);
    let sign = grad.ge(0.0).to_kind(Kind::Float) * 2.0 - 1.0;
    let std = Tensor::from_slice(&std_f64().iter().map(|&s| s as f32).collect::<Vec<_>>())
        .view([1, 3, 1, 1]);
    let xp = x.detach() - sign / std * eps;
    let fp = ood_nn::tch::no_grad(|| net.layer_features(&xp, 4).unwrap()[l].shallow_clone());
    fit.score(host(&fp).view()).unwrap()[0]
}

#[test]
fn layer_scores_match_a_naive_per_image_per_layer_computation() {
    let net = model();
    let norm = normalize();
    let train = InputSet::open(&golden("odin_train_x.npy")).unwrap();
    let labels = ood_core::io::npy::read_labels(&golden("odin_train_y.npy")).unwrap();
    let features = collect_layer_features(pass(&net, &train, &norm, 50)).unwrap();
    let dims: Vec<usize> = features.iter().map(|f| f.ncols()).collect();
    assert_eq!(dims, [16, 16, 32, 64]);
    // the last layer is the single-layer variant's penultimate features
    let penultimate = mahalanobis_input::collect_features(pass(&net, &train, &norm, 50)).unwrap();
    assert!((&features[3] - &penultimate).iter().all(|d| d.abs() < 1e-9));

    let views: Vec<_> = features.iter().map(|f| f.view()).collect();
    let fits = fit_layers(&MahalanobisParams { shrinkage: 0.01 }, &views, &labels).unwrap();
    let inputs = LayerInputs::new(&fits, Device::Cpu).unwrap();
    let test = InputSet::open(&golden("odin_test_x.npy")).unwrap();
    let x = test_batch();
    let eps = [0.0, 0.002];
    let got = inputs.scores_batch(&net, &x, &std_f64(), &eps).unwrap();
    // the whole-input pass gives the same matrices as the batch pass
    let whole = inputs
        .scores(pass(&net, &test, &norm, 3), &std_f64(), &eps)
        .unwrap();
    for (a, b) in got.iter().zip(&whole) {
        assert!((a - b)
            .iter()
            .all(|d| d.abs() <= 1e-6 * a.iter().fold(1.0_f64, |m, v| m.max(v.abs()))));
    }
    assert_eq!(got[0].dim(), (8, 4));
    for (e, &eps) in eps.iter().enumerate() {
        for l in 0..4 {
            for i in 0..8 {
                let want = naive_score(&net, &fits[l], l, &x.narrow(0, i as i64, 1), eps);
                let g = got[e][[i, l]];
                assert!(
                    (g - want).abs() <= 1e-4 * want.abs().max(1.0),
                    "eps {eps}, layer {l}, image {i}: {g} vs naive {want}"
                );
            }
        }
    }
    // the step matters: every layer's scores move by far more than the tolerance
    for l in 0..4 {
        let moved = (0..8)
            .filter(|&i| (got[1][[i, l]] - got[0][[i, l]]).abs() > 1e-2 * got[0][[i, l]].abs())
            .count();
        assert!(moved >= 6, "layer {l}: only {moved} of 8 scores moved");
    }
    // the ensemble score is the regression's logit of the standardised layer scores
    let (a, b) = (
        got[1].slice(ndarray::s![..4, ..]),
        got[1].slice(ndarray::s![4.., ..]),
    );
    let ens = EnsembleParams::default().fit(a, b).unwrap();
    let s = ens.score(got[1].view()).unwrap();
    for (i, row) in got[1].rows().into_iter().enumerate() {
        let by_hand: f64 = row
            .iter()
            .enumerate()
            .map(|(l, v)| ens.logistic.weights[l] * (v - ens.mean[l]) / ens.scale[l])
            .sum::<f64>()
            + ens.logistic.intercept;
        assert!((by_hand - s[i]).abs() < 1e-9);
    }
}
