//! Near and far OOD sets in the report: which test sets are of the same kind as the auxiliary
//! outliers (*near*) and which are not (*far*), and the mean over each kind. The kinds come from
//! the benchmark (`ood_data::fmnist_ood::OOD_TEST_KINDS`; the rule is in `docs/datasets.md`);
//! a report without kinds (the paper track) prints its tables as before.
use std::collections::BTreeMap;

use ood_core::protocol::{mean_std, Table};
use ood_core::Metrics;

use super::Report;

/// The kinds reported, in row order.
pub const KINDS: &[&str] = &["near", "far"];

impl Report {
    /// Marks each OOD set with its kind (`near` / `far`); sets `kind_of` knows nothing about
    /// get none.
    pub fn with_kinds(mut self, kind_of: impl Fn(&str) -> Option<&'static str>) -> Self {
        self.set_kinds = self
            .ood_sets
            .iter()
            .filter_map(|s| kind_of(s).map(|k| (s.clone(), k.to_string())))
            .collect();
        self
    }

    /// `mnist (far)` when the set has a kind, else the name.
    pub(super) fn set_label(&self, set: &str) -> String {
        match self.set_kinds.get(set) {
            Some(k) => format!("{set} ({k})"),
            None => set.to_string(),
        }
    }

    /// The kinds that at least one set has, in [`KINDS`] order.
    pub(super) fn present_kinds(&self) -> Vec<&'static str> {
        KINDS
            .iter()
            .copied()
            .filter(|k| self.set_kinds.values().any(|v| v == k))
            .collect()
    }

    /// Mean over the sets of `kind` and the std over draws of that mean (as the average row).
    pub(super) fn kind_mean(&self, table: &Table, kind: &str) -> (Metrics, Metrics) {
        subset_mean(table, |set| {
            self.set_kinds.get(set).is_some_and(|k| k == kind)
        })
    }
}

/// The kinds as recorded in `report.json` (set -> kind).
pub type SetKinds = BTreeMap<String, String>;

/// Mean over the rows `keep` accepts of their means, and the population std over draws of the
/// mean over those rows (draw `d` of every kept set averaged). Rows with fewer draws cut all to
/// the shortest; no row kept gives zeros.
pub(super) fn subset_mean(table: &Table, keep: impl Fn(&str) -> bool) -> (Metrics, Metrics) {
    let rows: Vec<_> = table.rows.iter().filter(|(n, _)| keep(n)).collect();
    if rows.is_empty() {
        return (Metrics::default(), Metrics::default());
    }
    let k = rows.len() as f64;
    let mut mean = [0.0; 5];
    for (_, s) in &rows {
        for (a, v) in mean.iter_mut().zip(s.mean.to_array()) {
            *a += v / k;
        }
    }
    let draws = rows
        .iter()
        .map(|(_, s)| s.per_draw.len())
        .min()
        .unwrap_or(0);
    let per_draw: Vec<Metrics> = (0..draws)
        .map(|d| {
            let mut acc = [0.0; 5];
            for (_, s) in &rows {
                for (a, v) in acc.iter_mut().zip(s.per_draw[d].to_array()) {
                    *a += v / k;
                }
            }
            Metrics::from_array(acc)
        })
        .collect();
    let std = if draws == 0 {
        Metrics::default()
    } else {
        mean_std(&per_draw).1
    };
    (Metrics::from_array(mean), std)
}
