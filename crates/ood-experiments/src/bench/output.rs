//! Stage 7 of a run: Tables 1 and 2 (markdown, CSV, JSON), Figures 3, 4a and 4b, the calibrated
//! detector, and the record (config.json, run.json, README.md), all into the [`BenchDir`].
use std::path::PathBuf;

use ood_core::Detector;
use ood_nn::tch;

use super::context::{RunContext, Scores};
use super::error::Result;
use super::layout::BenchDir;
use super::method::Method;
use super::scoring;
use super::tuning::FineTuned;
use crate::figures::{self, HistPanel, Series};
use crate::report::{Report, Table1Block};
use crate::run_info::{Machine, Versions};

struct Tables {
    t1: String,
    /// Table 2 and the choices made on validation data.
    t2: String,
    per_set: String,
}

/// Stage 7: writes everything; returns the evaluated report.
pub(super) fn write_all(ctx: &mut RunContext, finetuned: Option<&FineTuned>) -> Result<Report> {
    ctx.stages.begin("tables, figures, detector");
    let t0 = std::time::Instant::now();
    let entries: Vec<_> = ctx.entries.values().cloned().collect();
    let mut report = Report::evaluate(&entries, &ctx.plan.protocol)?;
    if ctx.opts.data.name == ood_data::fmnist_ood::DIR_NAME {
        // Near / far marks and means (the rule is in docs/datasets.md).
        report = report.with_kinds(|s| ood_data::fmnist_ood::set_kind(s).map(|k| k.label()));
    }
    let blocks = report.present_blocks(&Table1Block::paper());
    let tables = Tables {
        t1: report.table1_markdown(&blocks)?,
        t2: format!(
            "{}\nHyper-parameters chosen on the validation OOD sets only (lowest mean FPR95):\n\n{}",
            report.table2_markdown(),
            choices_markdown(ctx)
        ),
        per_set: report.per_set_markdown(),
    };
    let results = &ctx.results;
    results.text(BenchDir::TABLE1, &tables.t1)?;
    results.text(BenchDir::TABLE2, &tables.t2)?;
    results.text(BenchDir::PER_SET, &tables.per_set)?;
    results.text(BenchDir::RESULTS_CSV, &report.csv())?;
    results.json(BenchDir::REPORT, &report)?;
    let figure_files = write_figures(ctx, &report, finetuned)?;
    // the deployable detector: energy of the final model, tau at 95% of ID validation
    let basis = ctx.detector.as_ref().expect("scored before the report");
    let detector = Detector::calibrate(&basis.scores, 0.95, "energy", Some(1.0))?;
    detector.save(&ctx.dir.detector())?;
    ctx.timings
        .record("report and figures", t0.elapsed().as_secs_f64());
    write_record(ctx, &report, &tables, &figure_files)?;
    Ok(report)
}

/// One panel of Figure 3: scores of one model and score, and the method whose FPR95 goes in the
/// title (none for the fine-tuned model's softmax score, which is not a row of Table 2).
struct Panel {
    title: String,
    x_label: &'static str,
    scores: Scores,
    method: Option<Method>,
}

fn histogram_panels(ctx: &RunContext, finetuned: Option<&FineTuned>) -> Result<Vec<Panel>> {
    const MSP: &str = "max softmax probability";
    let of = |m: Method, title: &str, x_label| {
        let e = &ctx.entries[&m];
        let scores = Scores {
            id: e.id.clone(),
            ood: e.ood.clone(),
        };
        Panel {
            title: title.into(),
            x_label,
            scores,
            method: Some(m),
        }
    };
    let mut panels = vec![
        of(Method::Msp, "softmax score, pre-trained", MSP),
        of(Method::Energy, "negative energy, pre-trained", "-E(x)"),
    ];
    if let Some(ft) = finetuned {
        panels.push(Panel {
            title: format!("softmax score, {}", ft.name),
            x_label: MSP,
            scores: ft.logits.scores(|l| scoring::msp(l, 1.0))?,
            method: None,
        });
        panels.push(Panel {
            title: format!("negative energy, {}", ft.name),
            x_label: "-E(x)",
            scores: ft.logits.scores(|l| scoring::energy(l, 1.0))?,
            method: Some(Method::EnergyFinetune),
        });
    }
    Ok(panels)
}

fn write_figures(
    ctx: &RunContext,
    report: &Report,
    finetuned: Option<&FineTuned>,
) -> Result<Vec<PathBuf>> {
    let name = &ctx.opts.data.name;
    let panels = histogram_panels(ctx, finetuned)?;
    let pooled: Vec<Vec<f64>> = panels.iter().map(|p| p.scores.pooled_ood()).collect();
    let hist: Vec<HistPanel> = panels
        .iter()
        .zip(&pooled)
        .map(|(p, ood)| HistPanel {
            title: match p.method.and_then(|m| report.entry(m.key())) {
                Some(e) => format!("{} (FPR95 {:.1}%)", p.title, e.table.mean.fpr * 100.0),
                None => p.title.clone(),
            },
            x_label: p.x_label.to_string(),
            id: &p.scores.id,
            ood,
        })
        .collect();
    let mut files = figures::score_histograms(&ctx.dir.figure(BenchDir::FIG3), &hist, 2)?;
    let series: Vec<Series> = ctx
        .record
        .fpr_vs_temperature
        .iter()
        .map(|s| Series {
            name: s.name.clone(),
            points: s.points.clone(),
        })
        .collect();
    files.extend(figures::fpr_vs_temperature(
        &ctx.dir.figure(BenchDir::FIG4A),
        &format!("{name}: FPR95 (mean over OOD test sets) vs temperature"),
        &series,
    )?);
    if let Some(g) = &ctx.record.margin_grid {
        let pct: Vec<Vec<Option<f64>>> = g
            .validation_fpr
            .iter()
            .map(|r| r.iter().map(|v| v.map(|f| 100.0 * f)).collect())
            .collect();
        files.extend(figures::margin_heatmap(
            &ctx.dir.figure(BenchDir::FIG4B),
            &format!("{name}: validation FPR95 (%) of energy fine-tuning"),
            &g.m_in,
            &g.m_out,
            &pct,
        )?);
    }
    Ok(files)
}

/// config.json, run.json and README.md.
fn write_record(
    ctx: &RunContext,
    report: &Report,
    tables: &Tables,
    figure_files: &[PathBuf],
) -> Result<()> {
    let (opts, record) = (ctx.opts, &ctx.record);
    let machine = Machine::detect(
        &format!("{:?}", ctx.device()).to_lowercase(),
        Some(tch::get_num_threads()),
    );
    let config = serde_json::json!({
        "benchmark": opts.data.name,
        "command": opts.command,
        "seed": opts.seed,
        "plan": ctx.plan,
        "finetune": opts.finetune,
        "data": {
            "train": opts.data.train_x, "test": opts.data.test_x, "val": opts.data.val_x,
            "ood_test": opts.data.ood_test, "ood_val": opts.data.ood_val, "outliers": opts.data.outliers,
        },
        "models": {
            "pretrained": record.pretrained,
            "oe": opts.models.oe.as_ref().map(|w| w.describe()),
            "energy_ft": opts.models.energy_ft.as_ref().map(|w| w.describe()),
        },
        "detector_calibrated_on": ctx.detector.as_ref().map(|d| d.model.clone()),
    });
    ctx.results.json(BenchDir::CONFIG, &config)?;
    let run = serde_json::json!({"machine": machine, "versions": Versions::default(), "timings": ctx.timings, "record": record});
    ctx.results.json(BenchDir::RUN, &run)?;
    let summary = summary_markdown(ctx, report, tables, &machine, figure_files);
    ctx.results.text(BenchDir::README, &summary)?;
    Ok(())
}

/// The hyper-parameters chosen on validation data, one line per method (ODIN, Mahalanobis, the
/// zoo), for table2.md and the README.
fn choices_markdown(ctx: &RunContext) -> String {
    let record = &ctx.record;
    let mut s = String::new();
    if let Some(o) = &record.odin {
        s.push_str(&format!(
            "- ODIN: T = {}, eps = {}\n",
            o.chosen.temperature, o.chosen.epsilon
        ));
    }
    if let Some(m) = &record.mahalanobis {
        s.push_str(&format!("- Mahalanobis: eps = {}\n", m.chosen));
    }
    if let Some(m) = &record.mahalanobis_ensemble {
        s.push_str(&format!(
            "- Mahalanobis layer ensemble: eps = {}, layer weights {:.4?}\n",
            m.choice.chosen, m.layer_weights
        ));
    }
    s.push_str(&super::zoo::choices_markdown(
        &record.zoo,
        &record.zoo_skipped,
    ));
    s
}

/// The README of a results folder: tables, choices, figures, timings, machine.
fn summary_markdown(
    ctx: &RunContext,
    report: &Report,
    tables: &Tables,
    machine: &Machine,
    figures: &[PathBuf],
) -> String {
    let (opts, record, timings) = (ctx.opts, &ctx.record, &ctx.timings);
    let t1 = &tables.t1;
    let mut s = format!(
        "# {} benchmark results\n\nCommand: `{}`\n\n",
        opts.data.name, opts.command
    );
    s.push_str(&format!(
        "Protocol: {} draws of {} OOD test images per set (mean ± std over draws), FPR at 95% TPR (code-of-record convention), AUROC, AUPR (ID positive); values in percent. Seed {}.\n\n",
        report.protocol.draws,
        report.entries.first().and_then(|e| e.table.rows.first()).map_or(0, |r| r.1.samples),
        opts.seed
    ));
    s.push_str(&format!("Pre-trained model: {}\n\n", record.pretrained));
    s.push_str(
        "How to read: FPR95 is the fraction of OOD images accepted as in-distribution when the threshold accepts 95% \
         of the in-distribution test images (lower is better); AUROC and AUPR measure the separation of the two score \
         distributions over all thresholds (higher is better; 50% AUROC is chance). Softmax score = maximum softmax \
         probability; energy score = -E(x) = logsumexp of the logits. Fine-tuned rows use models fine-tuned with \
         auxiliary outliers: Outlier Exposure scored by softmax, energy-bounded fine-tuning scored by energy.\n\n",
    );
    s.push_str("## Table 1: softmax vs energy score per OOD test set\n\n");
    s.push_str(t1);
    s.push_str("\n## Table 2: all methods, mean over the OOD test sets\n\n");
    s.push_str(&report.table2_markdown());
    s.push_str("\n## Every method per OOD test set\n\n");
    s.push_str(&tables.per_set);
    s.push_str("## Choices made on validation data\n\n");
    s.push_str(&choices_markdown(ctx));
    if let (Some(a), Some(b)) = (record.mean_energy_id, record.mean_energy_outliers) {
        s.push_str(&format!("- Mean energy of the pre-trained model: ID validation {a:.2}, auxiliary outliers {b:.2}\n"));
    }
    if let Some(g) = &record.margin_grid {
        s.push_str(&format!(
            "- Energy margins: m_in = {}, m_out = {} (grid m_in {:?} x m_out {:?})\n",
            g.chosen.0, g.chosen.1, g.m_in, g.m_out
        ));
    }
    s.push_str("\n## Figures\n\n");
    for f in figures
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "png"))
    {
        let rel = f.strip_prefix(&opts.out).unwrap_or(f);
        s.push_str(&format!("![{}]({})\n\n", rel.display(), rel.display()));
    }
    s.push_str("## Timings (wall clock)\n\n");
    s.push_str(&timings.markdown());
    s.push_str(&format!(
        "\nMachine: {} logical CPUs ({}), libtorch threads {:?}, device {}.\n",
        machine.nproc,
        machine.cpu_model.as_deref().unwrap_or("unknown CPU"),
        machine.torch_threads,
        machine.device
    ));
    s
}
