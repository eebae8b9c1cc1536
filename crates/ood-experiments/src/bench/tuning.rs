//! Stages 4 to 6 of a run: energy-bounded fine-tuning (margins chosen on the validation OOD sets
//! by [`ood_nn::margin_search`]), Outlier Exposure, and the scores of both fine-tuned models.
//! Models given as files skip their training step.
use std::sync::Arc;

use ood_data::transforms::Normalize;
use ood_nn::data::NpySet;
use ood_nn::losses::FinetuneLoss;
use ood_nn::margin_search::{self, AccuracyFloor, TrialScore};
use ood_nn::train::EpochLog;

use super::context::{DetectorBasis, RunContext, TestLogits};
use super::error::Result;
use super::finetune::{finetune_config, run_job, TrainJob, Weights};
use super::method::Method;
use super::pretrained::Pretrained;
use super::{scoring, MarginRecord};

/// The energy fine-tuned model's test logits (Figure 3's fine-tuned panels).
pub(super) struct FineTuned {
    pub name: String,
    pub logits: TestLogits,
}

/// Stages 4-6.
pub(super) fn finetune_and_score(ctx: &mut RunContext, pre: &Pretrained) -> Result<FineTuned> {
    let outliers = Arc::new(NpySet::open(&ctx.opts.data.outliers, None)?);
    let t0 = std::time::Instant::now();
    let energy_model = match &ctx.opts.models.energy_ft {
        Some(wts) => {
            let what = format!("energy fine-tuned model: {}", wts.describe());
            ctx.stages.begin(&what);
            wts.clone()
        }
        None => energy_finetune(ctx, pre, &outliers)?,
    };
    let dt = t0.elapsed().as_secs_f64();
    ctx.timings.record("energy fine-tuning (margin grid)", dt);

    let t0 = std::time::Instant::now();
    let oe_model = match &ctx.opts.models.oe {
        Some(wts) => {
            ctx.stages
                .begin(&format!("OE fine-tuned model: {}", wts.describe()));
            wts.clone()
        }
        None => {
            ctx.stages.begin("Outlier Exposure fine-tuning");
            let (wts, logs) = finetune(ctx, pre, &outliers, ctx.plan.oe_loss(), "oe")?;
            ctx.record.finetune_logs.insert("oe".into(), logs);
            wts
        }
    };
    ctx.timings
        .record("OE fine-tuning", t0.elapsed().as_secs_f64());
    score_finetuned(ctx, pre, &oe_model, &energy_model)
}

/// Fine-tunes a copy of the pre-trained model with `loss` into `work/<name>.json`.
fn finetune(
    ctx: &RunContext,
    pre: &Pretrained,
    outliers: &Arc<NpySet>,
    loss: FinetuneLoss,
    name: &str,
) -> Result<(Weights, Vec<EpochLog>)> {
    let plan = ctx.plan;
    let ckpt = ctx.dir.checkpoint(name);
    let (vs, net, _) = pre.weights.load(ctx.device())?;
    let mut config = finetune_config(loss, plan.finetune_epochs, ctx.opts.seed);
    config.lr = plan.finetune_lr;
    config.outlier_batchnorm = plan.finetune_outlier_batchnorm;
    let job = TrainJob {
        config,
        spec: pre.spec.clone(),
        augmentation: plan.id_augmentation,
        outlier_augmentation: plan.outlier_augmentation,
        train: ctx.train.clone(),
        images_per_epoch: plan.finetune_images,
        outliers: Some(outliers.clone()),
        test: None,
        checkpoint: &ckpt,
        progress: ctx.show(),
        workers: ctx.opts.workers,
    };
    let logs = run_job(&vs, &net, &job)?;
    Ok((Weights::Checkpoint(ckpt), logs))
}

/// ID validation accuracy (fraction) of `logits`, when the run has validation labels.
fn val_accuracy(ctx: &RunContext, logits: &ndarray::Array2<f64>) -> Result<Option<f64>> {
    match &ctx.sets.val_labels {
        Some(y) => Ok(Some(1.0 - scoring::error_rate(logits, y)?)),
        None => Ok(None),
    }
}

/// Mean validation FPR95 of the energy score of `wts` and its ID validation accuracy, with its
/// ID validation scores. Every model of a run sees its input normalized as the pre-trained
/// model's (`norm`).
fn validation_fpr(
    ctx: &RunContext,
    wts: &Weights,
    norm: &Normalize,
) -> Result<(TrialScore, Vec<f64>)> {
    let (m, _) = ctx.load(wts)?;
    let energy = |p: &std::path::Path| -> Result<Vec<f64>> {
        scoring::energy(&scoring::logits(&m, p, norm, false)?, 1.0)
    };
    let id_logits = scoring::logits(&m, &ctx.sets.val_id, norm, false)?;
    let val_accuracy = val_accuracy(ctx, &id_logits)?;
    let id = scoring::energy(&id_logits, 1.0)?;
    let ood = ctx
        .sets
        .val_ood
        .iter()
        .map(|p| energy(p))
        .collect::<Result<Vec<_>>>()?;
    let cfg = ood_core::MetricsConfig::default();
    let mean_val_fpr = ood_core::selection::mean_fpr(&id, &ood, &cfg)?;
    let score = TrialScore {
        mean_val_fpr,
        val_accuracy,
    };
    Ok((score, id))
}

/// The margin search's accuracy floor: the pre-trained model's ID validation accuracy, when the
/// plan asks for one and the run has validation labels.
fn accuracy_floor(ctx: &RunContext, pre: &Pretrained) -> Result<Option<AccuracyFloor>> {
    let Some(tolerance) = ctx.plan.margin_accuracy_tolerance else {
        return Ok(None);
    };
    let logits = scoring::logits(&pre.model, &ctx.sets.val_id, &pre.norm, false)?;
    Ok(val_accuracy(ctx, &logits)?.map(|pretrained| AccuracyFloor {
        pretrained,
        tolerance,
    }))
}

/// The margin search of the paper's recipe: every candidate pair fine-tuned and judged on the
/// validation OOD sets; the chosen model calibrates the detector.
fn energy_finetune(
    ctx: &mut RunContext,
    pre: &Pretrained,
    outliers: &Arc<NpySet>,
) -> Result<Weights> {
    let (e_id, e_out) = (
        ctx.record.mean_energy_id.unwrap_or_default(),
        ctx.record.mean_energy_outliers.unwrap_or_default(),
    );
    let grid = ctx.plan.margin_grid(e_id, e_out);
    ctx.stages.begin(&format!(
        "energy fine-tuning: {} margin pair(s), m_in in {:?}, m_out in {:?}, chosen by validation FPR95",
        grid.len(),
        grid.m_in,
        grid.m_out
    ));
    let floor = accuracy_floor(ctx, pre)?;
    if let Some(f) = &floor {
        ctx.stages.note(&format!(
            "pre-trained ID validation accuracy {:.2}%: pairs below {:.2}% are not chosen",
            100.0 * f.pretrained,
            100.0 * (f.pretrained - f.tolerance)
        ));
    }
    let search = margin_search::search(&grid, floor, |_, a, b| -> Result<_> {
        ctx.stages.note(&format!("m_in = {a}, m_out = {b}"));
        let loss = ctx.plan.energy_loss(a, b);
        let (wts, logs) = finetune(
            ctx,
            pre,
            outliers,
            loss,
            &format!("energy_ft_min{a}_mout{b}"),
        )?;
        ctx.record
            .finetune_logs
            .insert(format!("energy m_in={a} m_out={b}"), logs);
        let (score, id_scores) = validation_fpr(ctx, &wts, &pre.norm)?;
        let acc = score
            .val_accuracy
            .map(|a| format!(", accuracy {:.2}%", 100.0 * a))
            .unwrap_or_default();
        ctx.stages.note(&format!(
            "  validation FPR95 {:.2}%{acc}",
            100.0 * score.mean_val_fpr
        ));
        Ok((score, (wts, id_scores)))
    })?;
    let table = search.fpr_table();
    let accuracy = search.accuracy_table();
    let floor = search.floor;
    let best = search.into_best();
    ctx.stages.note(&format!(
        "chose m_in = {}, m_out = {}",
        best.m_in, best.m_out
    ));
    ctx.record.margin_grid = Some(MarginRecord {
        m_in: grid.m_in,
        m_out: grid.m_out,
        validation_fpr: table,
        validation_accuracy: accuracy,
        accuracy_floor: floor,
        chosen: (best.m_in, best.m_out),
    });
    let (wts, scores) = best.outcome;
    ctx.detector = Some(DetectorBasis {
        scores,
        model: "energy fine-tuned".into(),
    });
    Ok(wts)
}

/// Stage 6: the fine-tuned rows of Table 2 and Figure 4a's fine-tuned curve.
fn score_finetuned(
    ctx: &mut RunContext,
    pre: &Pretrained,
    oe_model: &Weights,
    energy_model: &Weights,
) -> Result<FineTuned> {
    ctx.stages.begin("scoring the fine-tuned models");
    let t0 = std::time::Instant::now();
    let norm = &pre.norm;
    let (m, _) = ctx.load(oe_model)?;
    let oe = ctx.test_logits(&m, norm)?;
    let oe_err = scoring::error_rate(&oe.id, &ctx.sets.test_labels)?;
    ctx.record.test_error.insert("oe".into(), oe_err);
    let (m, _) = ctx.load(energy_model)?;
    let en = ctx.test_logits(&m, norm)?;
    let en_err = scoring::error_rate(&en.id, &ctx.sets.test_labels)?;
    ctx.record.test_error.insert("energy_ft".into(), en_err);
    if ctx.opts.models.energy_ft.is_some() {
        let l = scoring::logits(&m, &ctx.sets.val_id, norm, false)?;
        ctx.detector = Some(DetectorBasis {
            scores: scoring::energy(&l, 1.0)?,
            model: "energy fine-tuned".into(),
        });
    }
    ctx.stages.note(&format!(
        "ID test error: OE {:.2}%, energy fine-tuned {:.2}%",
        100.0 * oe_err,
        100.0 * en_err
    ));
    let margins = ctx
        .record
        .margin_grid
        .as_ref()
        .map(|g| g.chosen)
        .or(ctx.plan.margins);
    let params = serde_json::json!({"lambda": ctx.plan.oe_lambda, "source": oe_model.describe()});
    let scores = oe.scores(|l| scoring::msp(l, 1.0))?;
    ctx.add(Method::OutlierExposure, params, oe_err, scores);
    let params = serde_json::json!({"lambda": ctx.plan.energy_lambda, "margins": margins, "source": energy_model.describe()});
    let scores = en.scores(|l| scoring::energy(l, 1.0))?;
    ctx.add(Method::EnergyFinetune, params, en_err, scores);
    ctx.fpr_curve("energy score, energy fine-tuned", &en, scoring::energy)?;
    ctx.timings
        .record("score fine-tuned models", t0.elapsed().as_secs_f64());
    Ok(FineTuned {
        name: "energy fine-tuned".into(),
        logits: en,
    })
}
