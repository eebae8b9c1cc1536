//! Unit tests of [`super`]: fitting sees training data only, the grids and their degenerate
//! cases, the record.
use super::*;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const D: usize = 16;
const K: usize = 3;

/// Non-negative (post-ReLU-like) features: ID rows of class `i % K` are bright in their own
/// block of columns; OOD rows (`ood = true`) are spread evenly and dimmer.
fn features(n: usize, seed: u64, ood: bool) -> (Array2<f64>, Vec<i64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let labels: Vec<i64> = (0..n).map(|i| (i % K) as i64).collect();
    let x = Array2::from_shape_fn((n, D), |(i, j)| {
        let noise: f64 = rng.random_range(0.0..1.0);
        if ood {
            0.6 * noise + 0.3
        } else if j * K / D == labels[i] as usize {
            2.0 + noise
        } else {
            0.5 * noise
        }
    });
    (x, labels)
}

/// A head that reads class c from its block of columns.
fn head() -> Head {
    let w = Array2::from_shape_fn((K, D), |(c, j)| if j * K / D == c { 1.5 } else { -0.2 });
    Head::new(w, ndarray::Array1::from(vec![0.1, 0.0, -0.1])).unwrap()
}

fn outputs(x: Array2<f64>, head: &Head) -> Outputs {
    Outputs {
        logits: head.logits(x.view()),
        features: x,
    }
}

fn train(n: usize) -> TrainSet {
    let (x, labels) = features(n, 1, false);
    let head = head();
    TrainSet {
        outputs: outputs(x, &head),
        labels,
        head,
    }
}

struct Eval {
    val_id: Outputs,
    val_ood: Vec<Outputs>,
    test: TestOutputs,
}

fn eval(test_seed: u64) -> Eval {
    let h = head();
    let o = |n, seed, ood| outputs(features(n, seed, ood).0, &h);
    Eval {
        val_id: o(60, 2, false),
        val_ood: vec![o(30, 3, true), o(30, 4, true)],
        test: TestOutputs {
            id: o(50, test_seed, false),
            ood: vec![("far".into(), o(40, test_seed + 1, true))],
        },
    }
}

impl Eval {
    fn sets(&self) -> EvalSets<'_> {
        EvalSets {
            val_id: &self.val_id,
            val_ood: &self.val_ood,
            test: &self.test,
        }
    }
}

#[test]
fn fitting_sees_training_data_only() {
    let tr = train(120);
    let (a, b) = (eval(10), eval(20));
    for m in ZOO {
        let (rec_a, scores_a) = select_and_score(m, &tr, &a.sets(), false).unwrap();
        // other test sets change nothing that was fitted or chosen
        let (rec_b, _) = select_and_score(m, &tr, &b.sets(), false).unwrap();
        assert_eq!(
            (&rec_a.grid, &rec_a.validation_fpr, &rec_a.chosen),
            (&rec_b.grid, &rec_b.validation_fpr, &rec_b.chosen),
            "{}",
            m.key()
        );
        // the test scores are those of the chosen setting fitted on the training set alone
        // (KNN would find each test row at distance 0 if test rows were in its bank)
        let model = rec_a.chosen.fit(&tr.fit_data()).unwrap();
        let direct = model.score(&a.test.id.inputs()).unwrap();
        assert_eq!(scores_a.id, direct, "{}", m.key());
        let far = model.score(&a.test.ood[0].1.inputs()).unwrap();
        assert_eq!(scores_a.ood, vec![("far".to_string(), far)], "{}", m.key());
        assert!(rec_a.grid.contains(&rec_a.chosen), "{}", m.key());
        assert!(scores_a.id.iter().all(|s| s.is_finite()), "{}", m.key());
    }
}

#[test]
fn the_choice_is_the_lowest_validation_fpr_of_the_paper_grid() {
    let tr = train(120);
    let e = eval(10);
    let (rec, _) = select_and_score(det::Method::React, &tr, &e.sets(), false).unwrap();
    assert_eq!(rec.grid, Params::paper_grid(det::Method::React, D));
    assert_eq!(rec.grid.len(), 4);
    let best = rec
        .validation_fpr
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min);
    let first_best = rec.validation_fpr.iter().position(|&f| f == best).unwrap();
    assert_eq!(rec.chosen, rec.grid[first_best]);
    // GEN: 7 gammas x 6 Ms, every one tried
    let (gen, _) = select_and_score(det::Method::Gen, &tr, &e.sets(), false).unwrap();
    assert_eq!(gen.grid.len(), 42);
    assert_eq!(gen.validation_fpr.len(), 42);
}

#[test]
fn knn_k_is_capped_at_the_training_set() {
    let g = grid(det::Method::Knn, &train(120));
    let ks: Vec<usize> = g
        .iter()
        .map(|p| match p {
            Params::Knn(k) => k.k,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(ks, [50, 100, 120]);
    assert_eq!(grid(det::Method::Knn, &train(1000)).len(), 5);
}

#[test]
fn singular_covariance_falls_back_to_the_recorded_shrinkage() {
    // 6 training rows in 16 dimensions: the tied covariance is singular
    let tr = train(6);
    let e = eval(10);
    for m in [det::Method::MahalanobisFeatures, det::Method::Rmds] {
        let (rec, scores) = select_and_score(m, &tr, &e.sets(), false).unwrap();
        let want = ood_core::scores::MahalanobisParams {
            shrinkage: scoring::FALLBACK_SHRINKAGE,
        };
        let p = match m {
            det::Method::Rmds => Params::Rmds(want),
            _ => Params::MahalanobisFeatures(want),
        };
        assert_eq!(rec.grid, vec![p]);
        assert_eq!(rec.chosen, p);
        assert!(scores.id.iter().all(|s| s.is_finite()));
    }
    // enough rows: the papers' unshrunk estimate
    let (rec, _) = select_and_score(
        det::Method::MahalanobisFeatures,
        &train(120),
        &e.sets(),
        false,
    )
    .unwrap();
    assert_eq!(
        rec.chosen,
        Params::default_for(det::Method::MahalanobisFeatures)
    );
}

#[test]
fn a_method_that_cannot_be_fitted_is_a_typed_zoo_error() {
    // SHE needs a correctly classified training image of every class: a head that always
    // predicts class 0 leaves classes 1 and 2 empty
    let mut tr = train(30);
    let w = Array2::from_shape_fn((K, D), |(c, _)| if c == 0 { 1.0 } else { 0.0 });
    tr.head = Head::new(w, ndarray::Array1::zeros(K)).unwrap();
    let e = eval(10);
    let Err(err) = select_and_score(det::Method::She, &tr, &e.sets(), false) else {
        panic!("SHE fitted without a correct sample of classes 1 and 2");
    };
    assert!(
        matches!(err, BenchError::Zoo { method: "she", .. }),
        "{err}"
    );
}

#[test]
fn describe_names_the_hyper_parameters_only() {
    assert_eq!(
        describe(&Params::default_for(det::Method::React)),
        "percentile = 90.0"
    );
    assert_eq!(
        describe(&Params::default_for(det::Method::AshB)),
        "percentile = 65.0"
    );
    assert_eq!(
        describe(&Params::default_for(det::Method::She)),
        "no hyper-parameters"
    );
    let mut zoo = BTreeMap::new();
    zoo.insert(
        "knn".to_string(),
        ZooRecord {
            grid: vec![Params::default_for(det::Method::Knn)],
            validation_fpr: vec![0.25],
            chosen: Params::default_for(det::Method::Knn),
            seconds: 0.5,
        },
    );
    let skipped = BTreeMap::from([("she".to_string(), "no sample".to_string())]);
    assert_eq!(
        choices_markdown(&zoo, &skipped),
        "- KNN (`knn`): k = 50, normalize = true (of 1 setting(s))\n\
         - SHE (`she`): left out, cannot be fitted: no sample\n"
    );
}
