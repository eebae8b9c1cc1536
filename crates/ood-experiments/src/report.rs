//! The paper's tables from score arrays (Liu et al., NeurIPS 2020, Tables 1 and 2).
//!
//! Input: one [`Entry`] per method (MSP, energy, ODIN, Mahalanobis on the pre-trained model; MSP
//! of the Outlier-Exposure model, energy of the energy-fine-tuned model, ...), each with its
//! in-distribution test scores and its scores on every OOD test set. Every score means "higher =
//! more in-distribution". Each entry is evaluated with the paper's protocol
//! ([`ood_core::protocol`]): `samples` OOD scores drawn `draws` times per OOD set (default: one
//! fifth of the ID test set, i.e. 2,000 for a 10,000-image test set, x 10 draws, as the code of
//! record), mean and standard deviation over the draws.
//!
//! - **Table 1**: per OOD set, FPR95 / AUROC / AUPR of the softmax score next to the energy
//!   score, for the pre-trained model and for the fine-tuned models (OE's softmax vs energy
//!   fine-tuning's energy), as the paper's Table 1.
//! - **Table 2**: every method, the mean over the OOD sets, plus the in-distribution test error.
//!   Its standard deviation is that of the per-draw mean over the sets (draw `d` of every set).
//!
//! AUPR is AUPR-In (ID positive, average precision), the code of record's `get_measures`; the
//! CSV and JSON also carry AUPR-Out and the detection error. Values in the tables are percent.
use std::fmt::Write as _;

use ood_core::protocol::{evaluate_table, ProtocolConfig, ProtocolError, Table};
use ood_core::Metrics;
use serde::{Deserialize, Serialize};

/// Whether a method uses the pre-trained model as is or a model fine-tuned with outliers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Group {
    PreTrained,
    FineTuned,
}

impl Group {
    pub fn label(self) -> &'static str {
        match self {
            Group::PreTrained => "pre-trained",
            Group::FineTuned => "fine-tuned",
        }
    }
}

/// Scores of one method: the input of a report.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Short identifier used in files (`msp`, `energy`, `odin`, `mahalanobis`, `oe`, `energy_ft`).
    pub key: String,
    /// Name in the tables ("Softmax score", "Energy score", ...).
    pub label: String,
    pub group: Group,
    /// Hyper-parameters of the method (temperature, epsilon, margins, ...), for the record.
    pub params: serde_json::Value,
    /// In-distribution test-set error of the model the scores come from (fraction), if known.
    pub test_error: Option<f64>,
    /// In-distribution test scores.
    pub id: Vec<f64>,
    /// Scores of each OOD test set, by name; every entry must list the same sets in the same order.
    pub ood: Vec<(String, Vec<f64>)>,
}

/// An entry after the protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryResult {
    pub key: String,
    pub label: String,
    pub group: Group,
    pub params: serde_json::Value,
    pub test_error: Option<f64>,
    /// Per OOD set: mean/std over the draws; `mean` = the mean over sets.
    pub table: Table,
    /// Standard deviation over draws of the mean over sets.
    pub mean_std: Metrics,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReportError {
    #[error("method {key:?}: {source}")]
    Protocol {
        key: String,
        #[source]
        source: ProtocolError,
    },
    #[error(
        "method {key:?} has OOD sets {got:?}, expected {want:?} (every method needs the same sets)"
    )]
    Sets {
        key: String,
        got: Vec<String>,
        want: Vec<String>,
    },
    #[error("no methods to report")]
    Empty,
    #[error("duplicate method key {0:?}")]
    Duplicate(String),
    #[error("Table 1 names method {0:?}, which is not in the report")]
    Unknown(String),
}

/// One block of Table 1: a softmax-score method next to an energy-score method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table1Block {
    /// Row label ("pre-trained", "fine-tuned").
    pub name: String,
    /// Key of the softmax-score entry (e.g. `msp`, `oe`).
    pub softmax: String,
    /// Key of the energy-score entry (e.g. `energy`, `energy_ft`).
    pub energy: String,
}

impl Table1Block {
    /// The paper's layout: pre-trained MSP vs energy, then OE vs energy fine-tuning.
    pub fn paper() -> Vec<Self> {
        vec![
            Self {
                name: "pre-trained".into(),
                softmax: "msp".into(),
                energy: "energy".into(),
            },
            Self {
                name: "fine-tuned".into(),
                softmax: "oe".into(),
                energy: "energy_ft".into(),
            },
        ]
    }
}

/// All entries evaluated with one protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub protocol: ProtocolConfig,
    /// OOD test sets, in table order.
    pub ood_sets: Vec<String>,
    pub entries: Vec<EntryResult>,
    /// Set -> `near` / `far` ([`Report::with_kinds`]); empty when the benchmark has no kinds.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub set_kinds: kinds::SetKinds,
}

impl Report {
    /// Evaluates every entry with the protocol.
    pub fn evaluate(entries: &[Entry], protocol: &ProtocolConfig) -> Result<Self, ReportError> {
        let first = entries.first().ok_or(ReportError::Empty)?;
        let want: Vec<String> = first.ood.iter().map(|(n, _)| n.clone()).collect();
        let mut results: Vec<EntryResult> = Vec::with_capacity(entries.len());
        for e in entries {
            if results.iter().any(|r| r.key == e.key) {
                return Err(ReportError::Duplicate(e.key.clone()));
            }
            let got: Vec<String> = e.ood.iter().map(|(n, _)| n.clone()).collect();
            if got != want {
                return Err(ReportError::Sets {
                    key: e.key.clone(),
                    got,
                    want: want.clone(),
                });
            }
            let table = evaluate_table(&e.id, &e.ood, protocol).map_err(|source| {
                ReportError::Protocol {
                    key: e.key.clone(),
                    source,
                }
            })?;
            let mean_std = kinds::subset_mean(&table, |_| true).1;
            results.push(EntryResult {
                key: e.key.clone(),
                label: e.label.clone(),
                group: e.group,
                params: e.params.clone(),
                test_error: e.test_error,
                table,
                mean_std,
            });
        }
        Ok(Self {
            protocol: *protocol,
            ood_sets: want,
            entries: results,
            set_kinds: Default::default(),
        })
    }

    pub fn entry(&self, key: &str) -> Option<&EntryResult> {
        self.entries.iter().find(|e| e.key == key)
    }

    /// The blocks of `blocks` whose two methods are both present (a `--quick` run may lack some).
    pub fn present_blocks(&self, blocks: &[Table1Block]) -> Vec<Table1Block> {
        blocks
            .iter()
            .filter(|b| self.entry(&b.softmax).is_some() && self.entry(&b.energy).is_some())
            .cloned()
            .collect()
    }

    fn block_entries<'a>(
        &'a self,
        b: &Table1Block,
    ) -> Result<(&'a EntryResult, &'a EntryResult), ReportError> {
        let get = |k: &str| {
            self.entry(k)
                .ok_or_else(|| ReportError::Unknown(k.to_string()))
        };
        Ok((get(&b.softmax)?, get(&b.energy)?))
    }

    /// Table 1 in markdown: one row per OOD set and block, then the average rows, then (when the
    /// sets have kinds) the `near mean` / `far mean` rows.
    pub fn table1_markdown(&self, blocks: &[Table1Block]) -> Result<String, ReportError> {
        let mut s = String::new();
        s.push_str(
            "| OOD set | model | FPR95 ↓ softmax | FPR95 ↓ energy | AUROC ↑ softmax | AUROC ↑ energy | AUPR ↑ softmax | AUPR ↑ energy |\n",
        );
        s.push_str("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        for (i, set) in self.ood_sets.iter().enumerate() {
            for b in blocks {
                let (sm, en) = self.block_entries(b)?;
                let (a, b_) = (&sm.table.rows[i].1, &en.table.rows[i].1);
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    self.set_label(set),
                    b.name,
                    pm(a.mean.fpr, a.std.fpr),
                    pm(b_.mean.fpr, b_.std.fpr),
                    pm(a.mean.auroc, a.std.auroc),
                    pm(b_.mean.auroc, b_.std.auroc),
                    pm(a.mean.aupr_in, a.std.aupr_in),
                    pm(b_.mean.aupr_in, b_.std.aupr_in),
                );
            }
        }
        // The mean rows: over all sets ("average"), then over each kind of set.
        let mut mean_rows: Vec<(String, Option<&str>)> = vec![("**average**".into(), None)];
        mean_rows.extend(
            self.present_kinds()
                .into_iter()
                .map(|k| (format!("**{k} mean**"), Some(k))),
        );
        for (label, kind) in mean_rows {
            for b in blocks {
                let (sm, en) = self.block_entries(b)?;
                let ((a, a_s), (e, e_s)) = match kind {
                    None => ((sm.table.mean, sm.mean_std), (en.table.mean, en.mean_std)),
                    Some(k) => (self.kind_mean(&sm.table, k), self.kind_mean(&en.table, k)),
                };
                let _ = writeln!(
                    s,
                    "| {label} | {} | {} | {} | {} | {} | {} | {} |",
                    b.name,
                    pm(a.fpr, a_s.fpr),
                    pm(e.fpr, e_s.fpr),
                    pm(a.auroc, a_s.auroc),
                    pm(e.auroc, e_s.auroc),
                    pm(a.aupr_in, a_s.aupr_in),
                    pm(e.aupr_in, e_s.aupr_in),
                );
            }
        }
        Ok(s)
    }

    /// Table 2 in markdown: every method, mean over the OOD sets, plus ID test error.
    pub fn table2_markdown(&self) -> String {
        let mut s = String::new();
        s.push_str("| method | model | FPR95 ↓ | AUROC ↑ | AUPR ↑ | ID test error ↓ |\n");
        s.push_str("| --- | --- | ---: | ---: | ---: | ---: |\n");
        for e in &self.entries {
            let (m, sd) = (e.table.mean, e.mean_std);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                e.label,
                e.group.label(),
                pm(m.fpr, sd.fpr),
                pm(m.auroc, sd.auroc),
                pm(m.aupr_in, sd.aupr_in),
                e.test_error
                    .map(|t| format!("{:.2}", 100.0 * t))
                    .unwrap_or_else(|| "n/a".into()),
            );
        }
        s
    }

    /// Per OOD set, every method: one markdown table of FPR95 and one of AUROC (rows =
    /// methods in table order, columns = the OOD sets and their average, then the mean over
    /// each kind of set when the sets have kinds; mean over draws).
    pub fn per_set_markdown(&self) -> String {
        let mut s = String::new();
        let kinds = self.present_kinds();
        let labels: Vec<String> = self.ood_sets.iter().map(|n| self.set_label(n)).collect();
        let kind_cols: String = kinds.iter().map(|k| format!(" {k} mean |")).collect();
        let metrics: [(&str, fn(&Metrics) -> f64); 2] =
            [("FPR95 ↓", |m| m.fpr), ("AUROC ↑", |m| m.auroc)];
        for (name, get) in metrics {
            let _ = writeln!(s, "{name}, percent:\n");
            let _ = writeln!(
                s,
                "| method | model | {} | average |{kind_cols}",
                labels.join(" | ")
            );
            let _ = writeln!(
                s,
                "| --- | --- |{} ---: |",
                " ---: |".repeat(self.ood_sets.len() + kinds.len())
            );
            for e in &self.entries {
                let cells: Vec<String> = e
                    .table
                    .rows
                    .iter()
                    .map(|(_, sm)| format!("{:.2}", 100.0 * get(&sm.mean)))
                    .collect();
                let by_kind: String = kinds
                    .iter()
                    .map(|k| format!(" {:.2} |", 100.0 * get(&self.kind_mean(&e.table, k).0)))
                    .collect();
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.2} |{by_kind}",
                    e.label,
                    e.group.label(),
                    cells.join(" | "),
                    100.0 * get(&e.table.mean)
                );
            }
            s.push('\n');
        }
        s
    }

    /// Every (method, OOD set) pair with all five metrics, mean and std in percent; the
    /// `average` rows are the mean over sets (std over draws of that mean). Table 1 and Table 2
    /// are both views of this.
    pub fn csv(&self) -> String {
        let mut s = String::from(
            "method,label,model,ood_set,fpr95,fpr95_std,auroc,auroc_std,aupr_in,aupr_in_std,aupr_out,aupr_out_std,detection_error,detection_error_std,samples,draws,id_test_error\n",
        );
        for e in &self.entries {
            let err = e
                .test_error
                .map(|t| format!("{:.4}", 100.0 * t))
                .unwrap_or_default();
            let rows = e
                .table
                .rows
                .iter()
                .map(|(n, sm)| (n.as_str(), sm.mean, sm.std, sm.samples, sm.draws))
                .chain(std::iter::once((
                    "average",
                    e.table.mean,
                    e.mean_std,
                    e.table.rows.first().map_or(0, |r| r.1.samples),
                    self.protocol.draws,
                )));
            for (set, m, sd, samples, draws) in rows {
                let (m, sd) = (m.percent().to_array(), sd.percent().to_array());
                let _ = write!(
                    s,
                    "{},{},{},{}",
                    csv_field(&e.key),
                    csv_field(&e.label),
                    e.group.label(),
                    csv_field(set)
                );
                for (a, b) in m.iter().zip(sd) {
                    let _ = write!(s, ",{a:.4},{b:.4}");
                }
                let _ = writeln!(s, ",{samples},{draws},{err}");
            }
        }
        s
    }
}

/// `12.34 ± 0.56` in percent.
pub fn pm(mean: f64, std: f64) -> String {
    format!("{:.2} ± {:.2}", 100.0 * mean, 100.0 * std)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

mod kinds;

#[cfg(test)]
mod tests;
