//! CIFAR-10 and CIFAR-100, both releases (Krizhevsky, 2009; www.cs.toronto.edu/~kriz/cifar.html).
//!
//! - Binary release: fixed-size records. CIFAR-10: 1 label byte + 3072 pixel bytes; CIFAR-100:
//!   1 coarse-label byte, 1 fine-label byte, 3072 pixel bytes. Pixels are channel-planar
//!   (1024 red, 1024 green, 1024 blue, each row-major 32 x 32).
//! - Python release: protocol-2 pickles of a dict with `data` (numpy `uint8`, `N x 3072`, same
//!   planar layout) and `labels` (CIFAR-10) or `fine_labels` / `coarse_labels` (CIFAR-100),
//!   read by the crate's non-executing pickle VM (`formats/pickle/`) with the numpy hooks of
//!   `formats/numpy_pickle.rs`.
//!
//! Both give `N x 32 x 32 x 3` images with labels checked against the class count.

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array4};

use super::bytes::{planar_to_hwc, read_file, shown, Cursor};
use super::numpy_pickle::{self, Np};
use super::pickle::Value;
use crate::{Error, ImageSet, Result};

const SIDE: usize = 32;
const PIXELS: usize = SIDE * SIDE * 3;

/// Which dataset and which labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CifarLabels {
    /// CIFAR-10, 10 classes.
    Cifar10,
    /// CIFAR-100 fine labels, 100 classes.
    Cifar100Fine,
    /// CIFAR-100 coarse labels (superclasses), 20 classes.
    Cifar100Coarse,
}

impl CifarLabels {
    pub fn num_classes(self) -> i64 {
        match self {
            CifarLabels::Cifar10 => 10,
            CifarLabels::Cifar100Fine => 100,
            CifarLabels::Cifar100Coarse => 20,
        }
    }

    fn record_len(self) -> usize {
        match self {
            CifarLabels::Cifar10 => 1 + PIXELS,
            _ => 2 + PIXELS,
        }
    }

    fn pickle_key(self) -> &'static str {
        match self {
            CifarLabels::Cifar10 => "labels",
            CifarLabels::Cifar100Fine => "fine_labels",
            CifarLabels::Cifar100Coarse => "coarse_labels",
        }
    }
}

fn planar_rows_to_images(data: &[u8], n: usize) -> Array4<u8> {
    let mut out = vec![0u8; n * PIXELS];
    for (src, dst) in data.chunks_exact(PIXELS).zip(out.chunks_exact_mut(PIXELS)) {
        planar_to_hwc(src, SIDE, SIDE, 3, dst);
    }
    Array4::from_shape_vec((n, SIDE, SIDE, 3), out).expect("n records")
}

/// Parses one binary batch file held in memory.
pub fn parse_bin(bytes: &[u8], path: &Path, labels: CifarLabels) -> Result<ImageSet> {
    let rec = labels.record_len();
    let cur = Cursor::new(bytes, path);
    let partial = bytes.len() % rec;
    if bytes.is_empty() || partial > 0 {
        return Err(cur.error_at(
            bytes.len() - partial,
            format!(
                "file size {} is not a positive multiple of the {rec}-byte {labels:?} record",
                bytes.len()
            ),
        ));
    }
    let n = bytes.len() / rec;
    let label_at = if labels == CifarLabels::Cifar100Fine {
        1
    } else {
        0
    };
    let mut lab = Vec::with_capacity(n);
    let mut pixels = Vec::with_capacity(n * PIXELS);
    for (i, r) in bytes.chunks_exact(rec).enumerate() {
        let l = r[label_at] as i64;
        if l >= labels.num_classes() {
            return Err(cur.error_at(
                i * rec + label_at,
                format!("label {l} >= {} classes", labels.num_classes()),
            ));
        }
        if labels != CifarLabels::Cifar10 {
            // The other label of a CIFAR-100 record must be valid too, or the file is not CIFAR-100.
            let (other, max) = if label_at == 1 {
                (r[0], 20)
            } else {
                (r[1], 100)
            };
            if other >= max {
                return Err(cur.error_at(
                    i * rec + 1 - label_at,
                    format!("label {other} >= {max} classes"),
                ));
            }
        }
        lab.push(l);
        pixels.extend_from_slice(&r[rec - PIXELS..]);
    }
    Ok(ImageSet {
        images: planar_rows_to_images(&pixels, n),
        labels: Some(Array1::from(lab)),
    })
}

/// Parses one python-release batch (pickle) held in memory.
pub fn parse_pickle(bytes: &[u8], path: &Path, labels: CifarLabels) -> Result<ImageSet> {
    let top = numpy_pickle::parse(bytes, path)?;
    let fail = |msg: String| Error::format(path, 0, msg);
    let Value::Dict(items) = top else {
        return Err(fail(format!(
            "pickle holds a {}, not the CIFAR batch dict",
            top.kind()
        )));
    };
    let get = |key: &str| items.get_text(key);
    let data = get("data").ok_or_else(|| fail("batch dict has no `data`".into()))?;
    let Value::Ext(Np::Array(arr)) = data else {
        return Err(fail(format!(
            "`data` is a {}, not a numpy array",
            data.kind()
        )));
    };
    let dtype = arr.dtype.as_deref().unwrap_or("");
    if !matches!(dtype, "u1" | "|u1" | "uint8") || arr.fortran {
        return Err(fail(format!(
            "`data` has dtype {:?}{}; expected C-order uint8",
            super::pickle::quote(dtype),
            if arr.fortran { " (Fortran order)" } else { "" }
        )));
    }
    if arr.shape.len() != 2 || arr.shape[1] != PIXELS {
        return Err(fail(format!(
            "`data` has shape {}; expected (N, 3072)",
            shown(&arr.shape)
        )));
    }
    let n = arr.shape[0];
    let raw = arr.data.as_deref().unwrap_or(&[]);
    if Some(raw.len()) != n.checked_mul(PIXELS) {
        return Err(fail(format!(
            "`data` declares shape {} but holds {} bytes",
            shown(&arr.shape),
            raw.len()
        )));
    }
    let key = labels.pickle_key();
    let lv = get(key).ok_or_else(|| {
        fail(format!(
            "batch dict has no `{key}` (is this the right CIFAR release for {labels:?}?)"
        ))
    })?;
    let Value::List(list) = lv else {
        return Err(fail(format!("`{key}` is a {}, not a list", lv.kind())));
    };
    let list = list.items();
    if list.len() != n {
        return Err(fail(format!(
            "`{key}` has {} entries for {n} images",
            list.len()
        )));
    }
    let mut lab = Vec::with_capacity(n);
    for (i, v) in list.iter().enumerate() {
        match v {
            Value::Int(l) if (0..labels.num_classes()).contains(l) => lab.push(*l),
            Value::Int(l) => {
                return Err(fail(format!(
                    "`{key}`[{i}] = {l} is not a class index below {}",
                    labels.num_classes()
                )))
            }
            other => {
                return Err(fail(format!(
                    "`{key}`[{i}] is a {}, not a class index",
                    other.kind()
                )))
            }
        }
    }
    Ok(ImageSet {
        images: planar_rows_to_images(raw, n),
        labels: Some(Array1::from(lab)),
    })
}

/// Whether a file is a pickle (python release) rather than a binary batch.
fn looks_like_pickle(bytes: &[u8]) -> bool {
    bytes.first() == Some(&0x80)
}

/// Reads and concatenates batch files (e.g. `data_batch_1.bin` .. `data_batch_5.bin`, or the
/// python release's `data_batch_1` ..); each file's release is recognised by its first byte
/// (a binary record starts with a label below 100, a pickle with the PROTO opcode 0x80).
pub fn read_batches(paths: &[PathBuf], labels: CifarLabels) -> Result<ImageSet> {
    let mut sets = Vec::with_capacity(paths.len());
    for p in paths {
        let bytes = read_file(p)?;
        sets.push(if looks_like_pickle(&bytes) {
            parse_pickle(&bytes, p, labels)?
        } else {
            parse_bin(&bytes, p, labels)?
        });
    }
    concat(sets).ok_or(Error::Invalid {
        what: "CIFAR batch files",
        reason: "none given".into(),
    })
}

fn concat(sets: Vec<ImageSet>) -> Option<ImageSet> {
    if sets.len() == 1 {
        return sets.into_iter().next();
    }
    let first = sets.first()?;
    let n: usize = sets.iter().map(ImageSet::len).sum();
    let (h, w, c) = first.image_shape();
    let mut pixels = Vec::with_capacity(n * h * w * c);
    let mut labels = Vec::with_capacity(n);
    for s in &sets {
        pixels.extend(s.images.iter());
        labels.extend(s.labels.iter().flatten());
    }
    Some(ImageSet {
        images: Array4::from_shape_vec((n, h, w, c), pixels).ok()?,
        labels: Some(Array1::from(labels)),
    })
}
