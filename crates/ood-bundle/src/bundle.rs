//! A loaded bundle: the verified model, contract and detector, turning images or
//! logits/features into decisions. This is the object `eood serve` holds (one per process,
//! shared read-only between requests: every method takes `&self`).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use ndarray::{Array2, Array4, ArrayView2, ArrayView3};
use ood_core::detectors::data::check_finite;
use ood_core::detectors::{Fitted, Inputs};
use ood_core::scores::{LogitScore, Method, Msp};
use ood_core::Detector;
use serde::Serialize;

use crate::error::{BundleError, Result};
use crate::loader::{ModelFiles, ModelLoader, OnnxOnly};
use crate::manifest::{
    read_capped, verify, verify_file, Manifest, ModelKind, MAX_DETECTOR_BYTES, MAX_MODEL_BYTES,
};
use crate::runner::{Forward, Model};

/// The decision on one input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// `G(x)`: true = in-distribution (score > tau).
    pub accepted: bool,
    /// The detector's score (higher = more in-distribution).
    pub score: f64,
    /// Arg-max class of the logits.
    pub class: usize,
    /// Its name.
    pub label: String,
    /// Max softmax probability (temperature 1).
    pub confidence: f64,
}

/// How the score is computed from the model's outputs.
#[derive(Debug)]
enum Scorer {
    Logit { method: Method, temperature: f64 },
    Fitted(Box<Fitted>),
}

/// A bundle folder, loaded and verified.
pub struct Bundle {
    dir: PathBuf,
    manifest: Manifest,
    model: Box<dyn Model>,
    detector: Detector,
    scorer: Scorer,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle")
            .field("dir", &self.dir)
            .field("manifest", &self.manifest)
            .finish_non_exhaustive()
    }
}

impl Bundle {
    /// Read `dir/bundle.json`, verify every file's SHA-256, load the detector and the model.
    /// ONNX models only: a libtorch kind is refused ([`BundleError::NeedsLibtorch`]); see
    /// [`Bundle::load_with`].
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_with(dir, &OnnxOnly)
    }

    /// [`Bundle::load`] with the model built by `loader` (eood's `nn` build passes one that
    /// runs the libtorch kinds). Every checksum is verified before `loader` sees a file.
    pub fn load_with(dir: &Path, loader: &dyn ModelLoader) -> Result<Self> {
        let (manifest_path, manifest) = Manifest::load(dir)?;
        let model_path = dir.join(&manifest.model.file);
        let model_bytes = read_capped(&model_path, "a model file", MAX_MODEL_BYTES)?;
        verify(&model_path, &model_bytes, &manifest.model.sha256)?;
        let kind = manifest.model.model_kind().expect("validated");
        if let Some(w) = &manifest.model.weights {
            crate::create::check_sidecar_weights(&model_path, &model_bytes, &w.file)?;
            let p = dir.join(&w.file);
            verify_file(&p, "checkpoint weights", MAX_MODEL_BYTES, &w.sha256)?;
        }

        let det_path = dir.join(&manifest.scoring.detector.file);
        let det_bytes = read_capped(&det_path, "a detector file", MAX_DETECTOR_BYTES)?;
        verify(&det_path, &det_bytes, &manifest.scoring.detector.sha256)?;
        let detector = Detector::load(&det_path)?;
        let fitted = match &manifest.scoring.fitted {
            Some(f) => {
                let p = dir.join(&f.file);
                verify(
                    &p,
                    &read_capped(&p, "a fitted detector", MAX_DETECTOR_BYTES)?,
                    &f.sha256,
                )?;
                Some(Fitted::load(&p)?)
            }
            None => None,
        };
        let scorer = scorer_for(&manifest_path, &detector, fitted)?;
        let s = &manifest.scoring;
        if s.method != detector.method || s.tau.to_bits() != detector.tau.to_bits() {
            return Err(BundleError::Manifest {
                path: manifest_path,
                what: format!(
                    "scoring says {} with tau {}, the detector file {} with tau {}",
                    s.method, s.tau, detector.method, detector.tau
                ),
            });
        }
        let model = loader.load(&ModelFiles {
            kind,
            path: &model_path,
            bytes: &model_bytes,
            chw: manifest.input.chw(),
            logits_output: &manifest.model.logits_output,
            features_output: &manifest.model.features_output,
            architecture: manifest.model.architecture,
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
            model,
            detector,
            scorer,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// What the model is (`onnx` runs without libtorch).
    pub fn model_kind(&self) -> ModelKind {
        self.manifest.model.model_kind().expect("validated")
    }

    /// Run the model on a zero input of the contract's shape and check that it gives one row
    /// of as many logits as there are class names. Returns (K, D).
    pub fn self_test(&self) -> Result<(usize, usize)> {
        let [c, h, w] = self.manifest.input.chw();
        let out = self
            .model
            .forward(Array4::<f32>::zeros((1, c, h, w)).view())?;
        let (k, d) = (out.logits.ncols(), out.features.ncols());
        if k != self.manifest.labels.len() {
            return Err(BundleError::ClassCount {
                model: k,
                labels: self.manifest.labels.len(),
            });
        }
        self.decide_outputs(&out)?;
        Ok((k, d))
    }

    /// Model outputs for a normalised `N x C x H x W` batch.
    pub fn forward(&self, batch: ndarray::ArrayView4<f32>) -> Result<Forward> {
        self.model.forward(batch)
    }

    /// Decisions for u8 `H x W x C` images of any size (resized by the contract's rule).
    pub fn decide(&self, images: &[ArrayView3<u8>]) -> Result<Vec<Decision>> {
        let batch = self.manifest.input.preprocess(images)?;
        let out = self.model.forward(batch.view())?;
        self.decide_outputs(&out)
    }

    fn decide_outputs(&self, out: &Forward) -> Result<Vec<Decision>> {
        let logits = out.logits.mapv(f64::from);
        let features = out.features.mapv(f64::from);
        self.decide_logits(logits.view(), Some(features.view()))
    }

    /// Decisions for logits (N x K) and, for detectors that need them, features (N x D) given
    /// directly. Non-finite values are refused.
    pub fn decide_logits(
        &self,
        logits: ArrayView2<f64>,
        features: Option<ArrayView2<f64>>,
    ) -> Result<Vec<Decision>> {
        let k = self.manifest.labels.len();
        if logits.ncols() != k {
            return Err(BundleError::BadInput {
                index: 0,
                what: format!(
                    "logits have {} columns, the bundle has {k} classes",
                    logits.ncols()
                ),
            });
        }
        check_finite("logits", logits)?;
        if let Some(f) = features {
            check_finite("features", f)?;
            if f.nrows() != logits.nrows() {
                return Err(BundleError::BadInput {
                    index: 0,
                    what: format!(
                        "{} feature rows for {} logit rows",
                        f.nrows(),
                        logits.nrows()
                    ),
                });
            }
        }
        let scores = match &self.scorer {
            Scorer::Logit {
                method,
                temperature,
            } => method.scorer(*temperature).score(logits)?,
            Scorer::Fitted(f) => f.score(&Inputs {
                features,
                logits: Some(logits),
            })?,
        };
        let softmax = Msp { temperature: 1.0 };
        let mut row = Vec::with_capacity(k);
        Ok(logits
            .rows()
            .into_iter()
            .zip(scores)
            .map(|(r, score)| {
                row.clear();
                row.extend(r.iter().copied());
                let class = argmax(&row);
                Decision {
                    accepted: self.detector.accepts(score),
                    score,
                    class,
                    label: self.manifest.labels[class].clone(),
                    confidence: softmax.score_row(&row),
                }
            })
            .collect())
    }
}

/// First index of the largest value (rows are finite).
fn argmax(row: &[f64]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 {
                (i, v)
            } else {
                best
            }
        })
        .0
}

/// The score the detector's tau applies to: a plain logit score, or the fitted zoo detector.
fn scorer_for(manifest: &Path, detector: &Detector, fitted: Option<Fitted>) -> Result<Scorer> {
    let bad = |what: String| BundleError::Manifest {
        path: manifest.into(),
        what,
    };
    if let Some(f) = fitted {
        if f.method().key() != detector.method {
            return Err(bad(format!(
                "the fitted detector is {}, the calibrated detector {}",
                f.method().key(),
                detector.method
            )));
        }
        return Ok(Scorer::Fitted(Box::new(f)));
    }
    let method = Method::from_str(&detector.method).map_err(|_| {
        bad(format!(
            "method {:?} needs its fitted detector file (scoring.fitted)",
            detector.method
        ))
    })?;
    Ok(Scorer::Logit {
        method,
        temperature: detector.temperature.unwrap_or(1.0),
    })
}

/// `Array2` from rows, for callers holding JSON rows (`{"logits": [[...]]}`).
pub fn rows_to_array(what: &'static str, rows: &[Vec<f64>]) -> Result<Array2<f64>> {
    let n = rows.len();
    let k = rows.first().map_or(0, Vec::len);
    if let Some(i) = rows.iter().position(|r| r.len() != k) {
        return Err(BundleError::BadInput {
            index: i,
            what: format!("{what} row has {} values, row 0 has {k}", rows[i].len()),
        });
    }
    ood_core::limits::check_alloc(what, (n * k) as u128, 8)?;
    Ok(Array2::from_shape_fn((n, k), |(i, j)| rows[i][j]))
}
