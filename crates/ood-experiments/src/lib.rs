//! ood-experiments: the paper's experiments end to end (Liu et al., "Energy-based
//! Out-of-distribution Detection", NeurIPS 2020).
//!
//! - [`report`]: Table 1 and Table 2 from score arrays (the paper's protocol: repeated OOD draws,
//!   mean and std), as markdown, CSV and JSON. Framework-free.
//! - [`figures`]: Figure 3 (score histograms), 4a (FPR95 vs T), 4b (FPR95 over the margin grid) as
//!   PNG and SVG. Framework-free.
//! - [`run_info`]: machine, versions and timings recorded with every results folder.
//! - [`bench`]: the benchmark runner (`eood bench`): pretrain or load, score, fine-tune, report.
//! - [`results`]: the results folder (atomic writes).
pub mod bench;
pub mod figures;
pub mod report;
pub mod results;
pub mod run_info;
