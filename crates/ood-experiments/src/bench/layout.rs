//! The layout of a benchmark results folder, in one place: the writer ([`super::run`]) and every
//! reader (the CLI, tests, later tools) ask [`BenchDir`] for a file's path instead of spelling it.
use std::path::{Path, PathBuf};

/// A results folder of `eood bench`.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchDir {
    root: PathBuf,
}

impl BenchDir {
    pub const TABLE1: &'static str = "table1.md";
    pub const TABLE2: &'static str = "table2.md";
    /// Every method per OOD set (FPR95 and AUROC), the zoo included.
    pub const PER_SET: &'static str = "per_set.md";
    pub const RESULTS_CSV: &'static str = "results.csv";
    pub const REPORT: &'static str = "report.json";
    pub const CONFIG: &'static str = "config.json";
    pub const RUN: &'static str = "run.json";
    pub const README: &'static str = "README.md";
    pub const DETECTOR: &'static str = "detector.json";
    pub const FIGURES: &'static str = "figures";
    pub const FIG3: &'static str = "fig3_score_histograms";
    pub const FIG4A: &'static str = "fig4a_fpr_vs_temperature";
    pub const FIG4B: &'static str = "fig4b_margins";
    /// Checkpoints and image subsets of the run (intermediate, kept for reuse).
    pub const WORK: &'static str = "work";

    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub fn table2(&self) -> PathBuf {
        self.file(Self::TABLE2)
    }

    /// The text of table2.md; a file that cannot be read is an error naming it (never an
    /// empty table).
    pub fn read_table2(&self) -> Result<String, ood_core::io::IoError> {
        let path = self.table2();
        std::fs::read_to_string(&path).map_err(|e| ood_core::io::IoError::new(path, e))
    }

    pub fn report(&self) -> PathBuf {
        self.file(Self::REPORT)
    }

    pub fn detector(&self) -> PathBuf {
        self.file(Self::DETECTOR)
    }

    /// A figure's path without extension (PNG and SVG are written next to each other).
    pub fn figure(&self, stem: &str) -> PathBuf {
        self.root.join(Self::FIGURES).join(stem)
    }

    pub fn work(&self) -> PathBuf {
        self.root.join(Self::WORK)
    }

    /// The checkpoint (JSON sidecar) of a model the run trains: `pretrained`, `oe`, ...
    pub fn checkpoint(&self, name: &str) -> PathBuf {
        self.work().join(format!("{name}.json"))
    }

    /// A seeded image subset written by the run.
    pub fn subset(&self, name: &str) -> PathBuf {
        self.work().join("sets").join(format!("{name}.npy"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_documented_layout() {
        let d = BenchDir::new("/r");
        assert_eq!(d.report(), Path::new("/r/report.json"));
        assert_eq!(d.table2(), Path::new("/r/table2.md"));
        assert_eq!(d.detector(), Path::new("/r/detector.json"));
        assert_eq!(
            d.figure(BenchDir::FIG4B),
            Path::new("/r/figures/fig4b_margins")
        );
        assert_eq!(
            d.checkpoint("pretrained"),
            Path::new("/r/work/pretrained.json")
        );
        assert_eq!(d.subset("val_id"), Path::new("/r/work/sets/val_id.npy"));
    }

    #[test]
    fn an_unreadable_table2_is_an_error_naming_it_not_an_empty_table() {
        // regression: the CLI printed an empty Table 2 (`unwrap_or_default`) when this failed
        let tmp = tempfile::tempdir().unwrap();
        let d = BenchDir::new(tmp.path());
        let e = d.read_table2().unwrap_err();
        assert_eq!(e.path, tmp.path().join("table2.md"));
        assert_eq!(e.source.kind(), std::io::ErrorKind::NotFound);
        std::fs::create_dir(d.table2()).unwrap(); // a directory in its place
        assert!(d.read_table2().is_err());
        std::fs::remove_dir(d.table2()).unwrap();
        std::fs::write(d.table2(), "| method |\n").unwrap();
        assert_eq!(d.read_table2().unwrap(), "| method |\n");
    }
}
