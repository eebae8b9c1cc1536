//! Stages 2 and 3 of a run: the pre-trained model (loaded, or pretrained with the code of
//! record's recipe), then its scores with MSP, energy (T = 1), ODIN and Mahalanobis; the last two
//! with hyper-parameters chosen on the validation OOD sets only. The features and logits taken
//! here are kept for the detector zoo ([`super::zoo`]).
use ood_data::batch::ImageSource;
use ood_data::transforms::Normalize;
use ood_nn::data::InputSpec;
use ood_nn::model::Classifier;
use ood_nn::tch::{self, nn::VarStore};
use ood_nn::train::RunConfig;
use ood_nn::{WideResNet, WrnConfig};

use super::context::{DetectorBasis, RunContext};
use super::error::Result;
use super::finetune::{run_job, TrainJob, Weights};
use super::method::Method;
use super::scoring;
use super::zoo::{self, Outputs, TestOutputs, TrainSet};
use super::InputRecord;

/// The pre-trained model, loaded for scoring.
pub(super) struct Pretrained {
    pub weights: Weights,
    pub model: Classifier,
    pub spec: InputSpec,
    pub norm: Normalize,
}

/// Stage 2: the given pre-trained model, or one pretrained by this run.
pub(super) fn pretrain_or_load(ctx: &mut RunContext) -> Result<Pretrained> {
    let trained_here = ctx.opts.models.pretrained.is_none();
    let weights = match &ctx.opts.models.pretrained {
        Some(wts) => {
            ctx.stages
                .begin(&format!("pre-trained model: {}", wts.describe()));
            wts.clone()
        }
        None => pretrain(ctx)?,
    };
    ctx.record.pretrained = weights.describe();
    let (model, spec, mut source) = ctx.load_with_source(&weights)?;
    if trained_here {
        // its checkpoint records what pretraining fed it: say where that came from
        source = ctx.default_spec_and_source().1;
    }
    ctx.record.input = Some(InputRecord {
        mean: spec.mean.clone(),
        std: spec.std.clone(),
        source,
    });
    let norm = spec.normalize();
    Ok(Pretrained {
        weights,
        model,
        spec,
        norm,
    })
}

fn pretrain(ctx: &mut RunContext) -> Result<Weights> {
    let (plan, train) = (ctx.plan, ctx.train.clone());
    let arch = WrnConfig {
        in_channels: train.image_shape().2 as i64,
        num_classes: train.num_classes().unwrap_or(plan.arch.num_classes),
        ..plan.arch.clone()
    };
    ctx.stages.begin(&format!(
        "pretraining {} for {} epoch(s) of {} images, lr {} (the preset's recipe)",
        arch.name(),
        plan.pretrain_epochs,
        plan.pretrain_images.unwrap_or(train.len()).min(train.len()),
        plan.pretrain_lr
    ));
    let ckpt = ctx.dir.checkpoint("pretrained");
    let t0 = std::time::Instant::now();
    tch::manual_seed(ctx.opts.seed as i64);
    let vs = VarStore::new(ctx.device());
    let net = WideResNet::new(&vs.root(), &arch)?;
    let job = TrainJob {
        config: RunConfig {
            epochs: plan.pretrain_epochs,
            lr: plan.pretrain_lr,
            seed: ctx.opts.seed,
            ..RunConfig::pretrain()
        },
        spec: ctx.default_spec(),
        augmentation: plan.id_augmentation,
        outlier_augmentation: plan.outlier_augmentation,
        train,
        images_per_epoch: plan.pretrain_images,
        outliers: None,
        test: None,
        checkpoint: &ckpt,
        progress: ctx.show(),
        workers: ctx.opts.workers,
    };
    let logs = run_job(&vs, &net, &job)?;
    ctx.record.finetune_logs.insert("pretrain".into(), logs);
    ctx.timings.record("pretrain", t0.elapsed().as_secs_f64());
    Ok(Weights::Checkpoint(ckpt))
}

/// What stage 3 extracted once and the detector zoo (stage 4) reuses: the outputs of the
/// training subset (with labels and the head), of ID validation and of the test sets.
pub(super) struct PretrainedOutputs {
    pub train: TrainSet,
    pub val_id: Outputs,
    pub test: TestOutputs,
    pub test_error: f64,
}

/// Stage 3: every pre-trained row of Table 2 but the zoo, Figure 4a's pre-trained curves, the
/// mean energies that centre the margin grid, and the detector's calibration scores (until
/// fine-tuning).
pub(super) fn score_pretrained(
    ctx: &mut RunContext,
    pre: &Pretrained,
) -> Result<PretrainedOutputs> {
    ctx.stages
        .begin("scoring the pre-trained model: MSP, energy, ODIN, Mahalanobis");
    let t0 = std::time::Instant::now();
    let test = ctx.test_outputs(&pre.model, &pre.norm)?;
    let logits = test.logits();
    let err = scoring::error_rate(&logits.id, &ctx.sets.test_labels)?;
    ctx.record.test_error.insert("pretrained".into(), err);
    ctx.stages
        .note(&format!("ID test error {:.2}%", 100.0 * err));
    let (val_logits, val_features) =
        scoring::logits_and_features(&pre.model, &ctx.sets.val_id, &pre.norm, ctx.show())?;
    ctx.timings.record(
        "score pre-trained (MSP, energy; features for the zoo)",
        t0.elapsed().as_secs_f64(),
    );
    let t1 = serde_json::json!({"temperature": 1.0});
    let msp = logits.scores(|l| scoring::msp(l, 1.0))?;
    ctx.add(Method::Msp, t1.clone(), err, msp);
    let energy = logits.scores(|l| scoring::energy(l, 1.0))?;
    ctx.add(Method::Energy, t1, err, energy);
    odin(ctx, pre, err)?;
    let train = train_set(ctx, pre)?;
    mahalanobis(ctx, pre, err, &train.outputs.features)?;
    super::mahalanobis_ensemble::score(ctx, pre, err)?;
    ctx.fpr_curve("energy score, pre-trained", &logits, scoring::energy)?;
    ctx.fpr_curve("softmax score, pre-trained", &logits, scoring::msp)?;
    mean_energies(ctx, pre, &val_logits)?;
    ctx.detector = Some(DetectorBasis {
        scores: scoring::energy(&val_logits, 1.0)?,
        model: "pre-trained".into(),
    });
    Ok(PretrainedOutputs {
        train,
        val_id: Outputs {
            logits: val_logits,
            features: val_features,
        },
        test,
        test_error: err,
    })
}

/// Outputs of the seeded training subset that fits Mahalanobis and the zoo, extracted once.
fn train_set(ctx: &mut RunContext, pre: &Pretrained) -> Result<TrainSet> {
    let t0 = std::time::Instant::now();
    let (logits, features) =
        scoring::logits_and_features(&pre.model, &ctx.sets.maha_fit, &pre.norm, ctx.show())?;
    let set = TrainSet {
        outputs: Outputs { logits, features },
        labels: ctx.sets.maha_labels.clone(),
        head: zoo::head_of(&pre.model)?,
    };
    ctx.timings.record(
        "features of the training subset (Mahalanobis and zoo fits)",
        t0.elapsed().as_secs_f64(),
    );
    Ok(set)
}

fn odin(ctx: &mut RunContext, pre: &Pretrained, err: f64) -> Result<()> {
    let t0 = std::time::Instant::now();
    let grid = &ctx.plan.odin_grid;
    ctx.stages.note(&format!(
        "ODIN: {} settings chosen on {} validation OOD sets",
        grid.temperatures.len() * grid.epsilons.len(),
        ctx.sets.select_ood.len()
    ));
    let (choice, scores) = scoring::odin(&pre.model, &pre.norm, grid, &ctx.grid_sets())?;
    ctx.stages.note(&format!(
        "ODIN chose T = {}, eps = {}",
        choice.chosen.temperature, choice.chosen.epsilon
    ));
    let scores = ctx.split(scores);
    let params = serde_json::to_value(choice.chosen).unwrap_or_default();
    ctx.add(Method::Odin, params, err, scores);
    ctx.record.odin = Some(choice);
    ctx.timings
        .record("ODIN (validation grid + test)", t0.elapsed().as_secs_f64());
    Ok(())
}

fn mahalanobis(
    ctx: &mut RunContext,
    pre: &Pretrained,
    err: f64,
    features: &ndarray::Array2<f64>,
) -> Result<()> {
    let t0 = std::time::Instant::now();
    ctx.stages.note(&format!(
        "Mahalanobis: fit on {} training images, eps chosen on validation",
        ctx.sets.maha_labels.len()
    ));
    let (choice, shrinkage, scores) = scoring::mahalanobis(
        &pre.model,
        &pre.norm,
        &ctx.plan.mahalanobis_epsilons,
        features,
        &ctx.sets.maha_labels,
        &ctx.grid_sets(),
    )?;
    ctx.stages.note(&format!(
        "Mahalanobis chose eps = {}{}",
        choice.chosen,
        if shrinkage > 0.0 {
            format!(" (singular covariance: shrinkage {shrinkage})")
        } else {
            String::new()
        }
    ));
    let scores = ctx.split(scores);
    let params = serde_json::json!({"epsilon": choice.chosen, "shrinkage": shrinkage});
    ctx.add(Method::Mahalanobis, params, err, scores);
    ctx.record.mahalanobis = Some(choice);
    ctx.timings.record(
        "Mahalanobis (fit + validation grid + test)",
        t0.elapsed().as_secs_f64(),
    );
    Ok(())
}

/// Mean energies E = -logsumexp of the pre-trained model on ID validation data and a sample of
/// the auxiliary outliers (they centre the margin grid).
fn mean_energies(
    ctx: &mut RunContext,
    pre: &Pretrained,
    val_id_logits: &ndarray::Array2<f64>,
) -> Result<()> {
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let e_id = -mean(&scoring::energy(val_id_logits, 1.0)?);
    let out = scoring::logits(&pre.model, &ctx.sets.outliers_sample, &pre.norm, ctx.show())?;
    let e_out = -mean(&scoring::energy(&out, 1.0)?);
    ctx.record.mean_energy_id = Some(e_id);
    ctx.record.mean_energy_outliers = Some(e_out);
    ctx.stages.note(&format!(
        "mean energy: ID validation {e_id:.2}, auxiliary outliers {e_out:.2}"
    ));
    Ok(())
}
