//! The fitted-detector file. Small models are JSON:
//! `{"format": "eood-detector", "version": 2, "kind": "fitted", "detector": {"method": key, ...}}`
//! (version 1 files, without `kind`, are read too; a calibrated detector file given here is
//! named as such: [`crate::detector::kind`]). A model that
//! holds a training bank (KNN: N x D) is a safetensors file instead: that same JSON (bank left
//! empty) in the header metadata under `eood-detector`, and the bank as the f64 tensor
//! `knn.bank`. Written atomically and never over a device node; read only from a regular file
//! of bounded size; every array is checked (shape, finite) as it is parsed.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;

use ndarray::Array2;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use super::data::{check_finite, Matrix};
use super::{DetectorError, Fitted, Knn};
use crate::detector::{check_kind, DetectorKind, FORMAT, FORMAT_VERSION};
use crate::io::{check_output, open_regular, write_atomic, IoError};
use crate::limits::check_alloc;

const META_KEY: &str = "eood-detector";
const BANK: &str = "knn.bank";

#[derive(Serialize, Deserialize)]
struct FileForm<D> {
    format: String,
    version: u32,
    /// Always fitted; absent from version 1 files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<DetectorKind>,
    detector: D,
}

fn to_json(model: &Fitted) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&FileForm {
        format: FORMAT.to_string(),
        version: FORMAT_VERSION,
        kind: Some(DetectorKind::Fitted),
        detector: model,
    })
}

impl Fitted {
    /// Write to `path` atomically (refusing to replace a device node or a directory): JSON, or
    /// safetensors for KNN's training bank.
    pub fn save(&self, path: &Path) -> Result<(), DetectorError> {
        check_output(path, &[])?;
        let bytes = self.to_bytes(path)?;
        write_atomic(path, |w| {
            w.write_all(&bytes)
                .map_err(|e| DetectorError::Io(IoError::new(path, e)))
        })
    }

    /// The bytes [`Fitted::save`] writes (the Python package pickles these); `origin` names
    /// the destination in errors.
    pub fn to_bytes(&self, origin: &Path) -> Result<Vec<u8>, DetectorError> {
        let io = |e: std::io::Error| DetectorError::Io(IoError::new(origin, e));
        Ok(match self {
            Fitted::Knn(knn) => {
                let bank = &knn.bank.0;
                let skeleton = Knn {
                    params: knn.params,
                    bank: Matrix(Array2::zeros((0, bank.ncols()))),
                    packed: Default::default(),
                };
                let meta = to_json(&Fitted::Knn(skeleton)).map_err(|e| io(e.into()))?;
                let meta = String::from_utf8(meta).expect("serde_json writes UTF-8");
                let raw: Vec<u8> = bank.iter().flat_map(|v| v.to_le_bytes()).collect();
                let view = TensorView::new(Dtype::F64, vec![bank.nrows(), bank.ncols()], &raw)
                    .map_err(|source| DetectorError::Safetensors {
                        path: origin.to_path_buf(),
                        source,
                    })?;
                safetensors::serialize(
                    [(BANK, view)],
                    Some(HashMap::from([(META_KEY.to_string(), meta)])),
                )
                .map_err(|source| DetectorError::Safetensors {
                    path: origin.to_path_buf(),
                    source,
                })?
            }
            _ => {
                let mut v = to_json(self).map_err(|e| io(e.into()))?;
                v.push(b'\n');
                v
            }
        })
    }

    /// Read a file written by [`Fitted::save`].
    pub fn load(path: &Path) -> Result<Fitted, DetectorError> {
        let (file, len) = open_regular(path)?;
        check_alloc(&format!("detector file {}", path.display()), len as u128, 1)?;
        let mut bytes = Vec::with_capacity(len as usize);
        file.take(len)
            .read_to_end(&mut bytes)
            .map_err(|e| DetectorError::Io(IoError::new(path, e)))?;
        Self::from_bytes(&bytes, path)
    }

    /// Parse the bytes of a detector file (JSON or safetensors), checking every array as
    /// [`Fitted::load`] does; `origin` names where they came from in errors.
    pub fn from_bytes(bytes: &[u8], origin: &Path) -> Result<Fitted, DetectorError> {
        if bytes.first() == Some(&b'{') {
            return parse(origin, bytes);
        }
        load_safetensors(origin, bytes)
    }
}

fn parse(path: &Path, json: &[u8]) -> Result<Fitted, DetectorError> {
    // the parsed form holds every number as an f64 of at least 2 characters of text
    check_alloc("detector file", json.len() as u128, 4)?;
    check_kind(json, path, DetectorKind::Fitted)?;
    let form: FileForm<Fitted> =
        serde_json::from_slice(json).map_err(|source| DetectorError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
    if form.format != FORMAT || !(form.version == 1 || form.version == FORMAT_VERSION) {
        return Err(DetectorError::Corrupt {
            path: path.to_path_buf(),
            what: "not an eood-detector version 1 or 2 file",
        });
    }
    consistent(path, &form.detector)?;
    Ok(form.detector)
}

/// What serde cannot see: parameters in range, and the fitted arrays' shapes agreeing with each
/// other, so that a tampered file is refused here instead of failing inside a product.
fn consistent(path: &Path, model: &Fitted) -> Result<(), DetectorError> {
    let corrupt = |what| {
        Err(DetectorError::Corrupt {
            path: path.to_path_buf(),
            what,
        })
    };
    model.params().validate()?;
    match model {
        Fitted::React(r) if !r.threshold.is_finite() => corrupt("ReAct threshold is not finite"),
        Fitted::Klm(k) if k.classes.len() != k.dists.0.nrows() || k.dists.0.nrows() == 0 => {
            corrupt("KL-matching classes and templates differ in number")
        }
        Fitted::Vim(v)
            if v.origin.len() != v.head.dims()
                || v.residual.0.nrows() != v.head.dims()
                || v.residual.0.ncols() == 0
                || !v.alpha.is_finite() =>
        {
            corrupt("ViM origin, residual basis and head disagree in D")
        }
        Fitted::She(s) if s.patterns.0.dim() != (s.head.classes(), s.head.dims()) => {
            corrupt("SHE patterns are not K x D of the head")
        }
        Fitted::Knn(k) if k.params.k > k.bank.0.nrows() && k.bank.0.nrows() > 0 => {
            corrupt("KNN bank has fewer rows than k")
        }
        _ => Ok(()),
    }
}

/// Whether `bytes` are a safetensors file holding a fitted detector (KNN's), so that the
/// calibrated reader can name it.
pub(crate) fn is_fitted_safetensors(bytes: &[u8]) -> bool {
    bytes.first() != Some(&b'{')
        && SafeTensors::read_metadata(bytes).is_ok_and(|(_, m)| {
            m.metadata()
                .as_ref()
                .is_some_and(|m| m.contains_key(META_KEY))
        })
}

fn load_safetensors(path: &Path, bytes: &[u8]) -> Result<Fitted, DetectorError> {
    let st_err = |source| DetectorError::Safetensors {
        path: path.to_path_buf(),
        source,
    };
    let corrupt = |what| DetectorError::Corrupt {
        path: path.to_path_buf(),
        what,
    };
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(st_err)?;
    let json = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .ok_or_else(|| corrupt("no eood-detector metadata"))?;
    let Fitted::Knn(mut knn) = parse(path, json.as_bytes())? else {
        return Err(corrupt("only KNN detectors are stored as safetensors"));
    };
    let tensors = SafeTensors::deserialize(bytes).map_err(st_err)?;
    let view = tensors.tensor(BANK).map_err(st_err)?;
    let shape = view.shape();
    if view.dtype() != Dtype::F64 || shape.len() != 2 || shape[1] != knn.bank.0.ncols() {
        return Err(corrupt("knn.bank is not an f64 N x D tensor"));
    }
    let values: Vec<f64> = view
        .data()
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    let bank = Array2::from_shape_vec((shape[0], shape[1]), values)
        .map_err(|_| corrupt("knn.bank size does not match its shape"))?;
    check_finite("stored KNN bank value", bank.view())?;
    if knn.params.k > bank.nrows() || bank.nrows() == 0 {
        return Err(corrupt("knn.bank has fewer rows than k"));
    }
    knn.bank = Matrix(bank);
    Ok(Fitted::Knn(knn))
}
