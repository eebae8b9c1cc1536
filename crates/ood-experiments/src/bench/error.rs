//! Errors of a benchmark run: typed, each with the path or count it is about, sources kept.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("unknown benchmark {name:?} (expected fmnist-ood, cifar10, cifar100 or svhn)")]
    UnknownBenchmark { name: String },
    #[error("{} is missing ({benchmark} benchmark folder {})", path.display(), dir.display())]
    Missing {
        path: PathBuf,
        benchmark: String,
        dir: PathBuf,
    },
    #[error("{}: needs at least one ood_test/*.npy and one ood_val/*.npy", dir.display())]
    NoOodSets { dir: PathBuf },
    #[error("{}: row {row} out of {len}", path.display())]
    RowOutOfRange {
        path: PathBuf,
        row: usize,
        len: usize,
    },
    #[error("{rows} logit rows for {labels} labels")]
    LabelCount { rows: usize, labels: usize },
    #[error("{labels} labels for {images} Mahalanobis fit images")]
    FitLabels { labels: usize, images: usize },
    #[error("{}: no {benchmark} release files found (CIFAR-10: data_batch_1..5[.bin] + test_batch[.bin]; CIFAR-100: train[.bin] + test[.bin]; SVHN: train_32x32.mat + extra_32x32.mat + test_32x32.mat)", dir.display())]
    NoRelease { dir: PathBuf, benchmark: String },
    /// The code of record's CIFAR validation OOD sets are made from the other CIFAR's test set.
    #[error("{benchmark}: the validation OOD sets are made from the other CIFAR's test set, not found in {} (put test[.bin] of CIFAR-100 or test_batch[.bin] of CIFAR-10 there)", tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    NoOtherCifar {
        benchmark: String,
        tried: Vec<PathBuf>,
    },
    #[error("release files of different image shapes or without labels: {}", files.iter().map(|(p, (h, w, c))| format!("{} ({h}x{w}x{c})", p.display())).collect::<Vec<_>>().join(", "))]
    ReleaseShapes {
        files: Vec<(PathBuf, (usize, usize, usize))>,
    },
    #[error("--val-images {val_images} leaves no training images (of {images})")]
    ValImages { val_images: usize, images: usize },
    #[error("{model} records input mean {:?} / std {:?}, but --mean/--std give {:?} / {:?}", recorded.0, recorded.1, given.0, given.1)]
    InputMismatch {
        model: String,
        recorded: (Vec<f32>, Vec<f32>),
        given: (Vec<f32>, Vec<f32>),
    },
    #[error("{benchmark} release without labels")]
    NoLabels { benchmark: String },
    #[error("logits of {values} values in rows of {classes}")]
    LogitShape {
        values: usize,
        classes: usize,
        #[source]
        source: ndarray::ShapeError,
    },
    #[error("detector zoo, {method}")]
    Zoo {
        method: &'static str,
        #[source]
        source: ood_core::detectors::DetectorError,
    },
    #[error("the detector zoo needs the model's last linear layer: only WideResNet models have one here")]
    NoHead,
    #[error("libtorch: {context}")]
    Torch {
        context: &'static str,
        #[source]
        source: ood_nn::tch::TchError,
    },
    #[error(transparent)]
    Io(#[from] ood_core::io::IoError),
    #[error(transparent)]
    Limit(#[from] ood_core::limits::LimitError),
    #[error(transparent)]
    Selection(#[from] ood_core::selection::SelectionError),
    #[error(transparent)]
    Nn(#[from] ood_nn::Error),
    #[error(transparent)]
    Infer(#[from] ood_nn::extract::InferError),
    #[error(transparent)]
    OodData(#[from] ood_data::Error),
    #[error(transparent)]
    Score(#[from] ood_core::scores::ScoreError),
    #[error(transparent)]
    Metrics(#[from] ood_core::MetricsError),
    #[error(transparent)]
    Protocol(#[from] ood_core::protocol::ProtocolError),
    #[error(transparent)]
    Npy(#[from] ood_core::io::npy::NpyError),
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    #[error(transparent)]
    Figure(#[from] crate::figures::FigureError),
    #[error(transparent)]
    Results(#[from] crate::results::ResultsError),
    #[error(transparent)]
    Mahalanobis(#[from] ood_core::scores::MahalanobisError),
    #[error(transparent)]
    MahalanobisEnsemble(#[from] ood_core::scores::EnsembleError),
    #[error(transparent)]
    Detector(#[from] ood_core::detector::DetectorError),
}

pub type Result<T, E = BenchError> = std::result::Result<T, E>;

/// `create_dir_all(dir)` with the folder in the error.
pub fn create_dir(dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ood_core::io::IoError::new(dir, e).into())
}
