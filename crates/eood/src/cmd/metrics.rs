//! `eood metrics`: FPR at a TPR (FPR95 by default), AUROC, AUPR-In, AUPR-Out and detection
//! error of in-distribution vs OOD scores, as percentages like the paper's tables.
//!
//! Without `--draws`, every OOD score is used once. With `--draws K`, the paper's protocol runs:
//! K random draws of `--samples` OOD scores (default len(ID)/5), reporting mean and std.
//! Several `--ood` files give one row each plus their mean row.
//! Conventions (`--convention`) are documented in docs/metrics.md and `ood_core::metrics`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ood_core::finite::{read_scores, NonFinitePolicy, ScoresFileError};
use ood_core::protocol::{evaluate_table, ProtocolConfig};
use ood_core::{metrics, Convention, Metrics, MetricsConfig};
use serde_json::{json, Map, Value};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// In-distribution scores, 1-D .npy (higher = more in-distribution).
    #[arg(long)]
    pub id: PathBuf,
    /// OOD scores, 1-D .npy; repeat for several OOD sets (named by file stem).
    #[arg(long, required = true)]
    pub ood: Vec<PathBuf>,
    /// paper = code of record (ID positive, recall closest to the TPR, average precision);
    /// ood-positive = OOD positive, first threshold reaching the TPR, trapezoidal AUPR.
    #[arg(long, value_enum, default_value_t = ConventionArg::Paper)]
    pub convention: ConventionArg,
    /// TPR at which the FPR is read, in (0, 1).
    #[arg(long, default_value_t = 0.95, allow_negative_numbers = true)]
    pub tpr: f64,
    /// Paper protocol: number of random OOD draws, 1 to 100000 (paper: 10); reports mean and std.
    #[arg(long)]
    pub draws: Option<usize>,
    /// OOD scores per draw (default: len(ID) / 5).
    #[arg(long, requires = "draws")]
    pub samples: Option<usize>,
    /// Seed of the draws.
    #[arg(long, requires = "draws", default_value_t = 1)]
    pub seed: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Drop NaN/inf scores (and say how many on stderr) instead of refusing the file.
    #[arg(long)]
    pub drop_nonfinite: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConventionArg {
    Paper,
    OodPositive,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// One row of results (percentages), with standard deviations when draws were made.
struct Row {
    name: String,
    mean: Metrics,
    std: Option<Metrics>,
    n_ood: usize,
    /// OOD scores per draw, with draws.
    samples: Option<usize>,
}

const KEYS: [&str; 5] = ["fpr", "auroc", "aupr_in", "aupr_out", "detection_error"];

pub fn run(args: Args) -> anyhow::Result<()> {
    if !(args.tpr > 0.0 && args.tpr < 1.0) {
        bail!("--tpr must be in (0, 1), got {}", args.tpr);
    }
    if let Some(d) = args.draws {
        // each draw keeps its metrics: a sane count, not one that allocates without end
        ood_core::limits::check_range("--draws", d, 1, 100_000)?;
    }
    if args.samples == Some(0) {
        bail!("--samples must be at least 1");
    }
    let convention = match args.convention {
        ConventionArg::Paper => Convention::Paper,
        ConventionArg::OodPositive => Convention::OodPositive,
    };
    let cfg = MetricsConfig {
        convention,
        tpr: args.tpr,
    };
    let id = read_finite(&args.id, args.drop_nonfinite)?;
    let mut sets = Vec::with_capacity(args.ood.len());
    for path in &args.ood {
        sets.push((
            set_name(path, &args.ood),
            read_finite(path, args.drop_nonfinite)?,
        ));
    }

    let rows: Vec<Row> = match args.draws {
        None => sets
            .iter()
            .map(|(name, ood)| {
                let m = metrics::evaluate(&id, ood, &cfg).with_context(|| name.clone())?;
                Ok(Row {
                    name: name.clone(),
                    mean: m.percent(),
                    std: None,
                    n_ood: ood.len(),
                    samples: None,
                })
            })
            .collect::<anyhow::Result<_>>()?,
        Some(draws) => {
            let pcfg = ProtocolConfig {
                draws,
                samples: args.samples,
                seed: args.seed,
                metrics: cfg,
            };
            let table = evaluate_table(&id, &sets, &pcfg)?;
            table
                .rows
                .into_iter()
                .zip(&sets)
                .map(|((name, s), (_, ood))| Row {
                    name,
                    mean: s.mean.percent(),
                    std: Some(s.std.percent()),
                    n_ood: ood.len(),
                    samples: Some(s.samples),
                })
                .collect()
        }
    };
    let mean_row = (rows.len() > 1).then(|| Row {
        name: "mean".into(),
        mean: mean_of(rows.iter().map(|r| r.mean)),
        std: None,
        n_ood: rows.iter().map(|r| r.n_ood).sum(),
        samples: None,
    });
    let report = Report {
        names: KEYS.map(|k| match k {
            "fpr" => fpr_key(args.tpr),
            _ => k.to_string(),
        }),
        rows,
        mean: mean_row,
        args: &args,
        n_id: id.len(),
    };
    let out = match args.format {
        Format::Json => report.json(),
        Format::Csv => report.csv(),
        Format::Table => report.table(),
    };
    print!("{out}");
    Ok(())
}

/// Read scores under the command's non-finite policy (`--drop-nonfinite`), reporting drops on stderr.
pub(crate) fn read_finite(path: &Path, drop: bool) -> anyhow::Result<Vec<f64>> {
    let policy = if drop {
        NonFinitePolicy::Drop
    } else {
        NonFinitePolicy::Refuse
    };
    match read_scores(path, policy) {
        Ok((values, dropped)) => {
            if dropped > 0 {
                eprintln!("{}: dropped {dropped} non-finite values", path.display());
            }
            Ok(values)
        }
        Err(e @ ScoresFileError::NonFinite { .. }) => Err(DropHint(e).into()),
        Err(e) => Err(e.into()),
    }
}

/// A non-finite score, with the flag that drops them.
#[derive(Debug, thiserror::Error)]
#[error("{0}; pass --drop-nonfinite to drop them")]
struct DropHint(#[source] ScoresFileError);

/// File stem, or the whole path when two OOD files share a stem.
fn set_name(path: &Path, all: &[PathBuf]) -> String {
    let stem = |p: &Path| {
        p.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let s = stem(path);
    if all.iter().filter(|p| stem(p) == s).count() > 1 {
        path.display().to_string()
    } else {
        s
    }
}

/// `fpr95` for 0.95, `fpr80` for 0.8, `fpr99.5` for 0.995.
fn fpr_key(tpr: f64) -> String {
    let pct = (tpr * 100.0 * 1e6).round() / 1e6;
    format!("fpr{pct}")
}

fn mean_of(ms: impl Iterator<Item = Metrics>) -> Metrics {
    let v: Vec<Metrics> = ms.collect();
    ood_core::protocol::mean_std(&v).0
}

/// The rows to print, the metric names (the FPR's with its TPR) and what the footers say.
struct Report<'a> {
    names: [String; 5],
    rows: Vec<Row>,
    mean: Option<Row>,
    args: &'a Args,
    n_id: usize,
}

impl Report<'_> {
    fn all_rows(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().chain(&self.mean)
    }

    fn with_std(&self) -> bool {
        self.rows.iter().any(|r| r.std.is_some())
    }

    /// A row's metrics (and their std) by name, its OOD count and draw size.
    fn row_object(&self, r: &Row) -> Map<String, Value> {
        let mut o = Map::new();
        for (k, v) in self.names.iter().zip(r.mean.to_array()) {
            o.insert(k.clone(), json!(v));
        }
        if let Some(s) = &r.std {
            for (k, v) in self.names.iter().zip(s.to_array()) {
                o.insert(format!("{k}_std"), json!(v));
            }
        }
        o.insert("n_ood".into(), json!(r.n_ood));
        if let Some(n) = r.samples {
            o.insert("samples".into(), json!(n));
        }
        o
    }

    /// One object: the metrics of the single set, or the mean over sets plus a "sets" list.
    fn json(&self) -> String {
        let mut o = match (&self.rows[..], &self.mean) {
            ([only], None) => self.row_object(only),
            (_, Some(m)) => {
                let mut o = Map::new();
                for (k, v) in self.names.iter().zip(m.mean.to_array()) {
                    o.insert(k.clone(), json!(v));
                }
                let sets = self.rows.iter().map(|r| {
                    let mut s = Map::new();
                    s.insert("name".into(), json!(r.name));
                    s.extend(self.row_object(r));
                    Value::Object(s)
                });
                o.insert("sets".into(), Value::Array(sets.collect()));
                o
            }
            _ => unreachable!("one row, or several rows and a mean row"),
        };
        let args = self.args;
        o.insert("convention".into(), json!(convention_name(args.convention)));
        o.insert("tpr".into(), json!(args.tpr));
        o.insert("n_id".into(), json!(self.n_id));
        if let Some(d) = args.draws {
            o.insert("draws".into(), json!(d));
            o.insert("seed".into(), json!(args.seed));
        }
        format!("{}\n", Value::Object(o))
    }

    fn csv(&self) -> String {
        let with_std = self.with_std();
        let mut out = format!("ood,{}", self.names.join(","));
        if with_std {
            for n in &self.names {
                let _ = write!(out, ",{n}_std");
            }
        }
        out.push('\n');
        for r in self.all_rows() {
            let _ = write!(out, "{}", csv_field(&r.name));
            for v in r.mean.to_array() {
                let _ = write!(out, ",{v}");
            }
            if with_std {
                match &r.std {
                    Some(s) => s.to_array().iter().for_each(|v| {
                        let _ = write!(out, ",{v}");
                    }),
                    None => out.push_str(",,,,,"),
                }
            }
            out.push('\n');
        }
        out
    }

    fn table(&self) -> String {
        let fpr_head = self.names[0].replacen("fpr", "FPR", 1);
        let heads = [fpr_head.as_str(), "AUROC", "AUPR-In", "AUPR-Out", "DetErr"];
        let width = self
            .all_rows()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(0)
            .max(7);
        let cell = if self.with_std() { 15 } else { 9 };
        let mut out = String::new();
        let _ = write!(out, "{:<width$}", "OOD set");
        for h in heads {
            let _ = write!(out, " {h:>cell$}");
        }
        out.push('\n');
        for r in self.all_rows() {
            let _ = write!(out, "{:<width$}", r.name);
            for (i, v) in r.mean.to_array().iter().enumerate() {
                let text = match &r.std {
                    Some(s) => format!("{v:.2} ± {:.2}", s.to_array()[i]),
                    None => format!("{v:.2}"),
                };
                let _ = write!(out, " {text:>cell$}");
            }
            out.push('\n');
        }
        let args = self.args;
        let protocol = match args.draws {
            Some(d) => {
                let mut sizes: Vec<usize> = self.rows.iter().filter_map(|r| r.samples).collect();
                sizes.dedup();
                let sizes: Vec<String> = sizes.iter().map(|s| s.to_string()).collect();
                format!(
                    "{d} draws of {} OOD scores (seed {}), mean ± std",
                    sizes.join("/"),
                    args.seed
                )
            }
            None => "all OOD scores".to_string(),
        };
        let _ = writeln!(
            out,
            "({} ID scores; {protocol}; convention {}; percentages)",
            self.n_id,
            convention_name(args.convention)
        );
        out
    }
}

fn convention_name(c: ConventionArg) -> &'static str {
    match c {
        ConventionArg::Paper => Convention::Paper.name(),
        ConventionArg::OodPositive => Convention::OodPositive.name(),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
