//! The paper's own benchmarks (CIFAR-10, CIFAR-100, SVHN as in-distribution) with the paper's
//! settings ([`super::Plan::paper`]). A run reads a folder in the same layout as `fmnist-ood`
//! (see [`super::data::BenchData::from_layout`]); [`prepare`] writes the in-distribution part of
//! that folder from the original releases (CIFAR binary or python batches, SVHN `.mat`) and
//! the validation OOD sets, so a user only adds `ood_test/<set>.npy` (the six OOD test sets,
//! `N x H x W x 3` uint8) and `aux_outliers.npy` (e.g. the 300K Random Images file or a Tiny
//! Images sample). See docs/experiments.md.
//!
//! Validation OOD sets: for CIFAR the code of record's ([`CIFAR_VALIDATION_SETS`],
//! `ood_data::transforms::corrupt`), made from the *other* CIFAR test set (CIFAR-100's for
//! CIFAR-10 and vice versa), found beside the release ([`other_cifar_test`]); for SVHN the
//! synthetic sets of [`validation_set`] from held-out SVHN images.
use std::path::{Path, PathBuf};

use ndarray::{s, Array4, ArrayView4};
use ood_data::formats::cifar::{read_batches, CifarLabels};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::data::choose;
use super::error::{create_dir, BenchError, Result};
use ood_core::io::IoError;

/// The paper's six OOD test sets for CIFAR, in table order.
pub const PAPER_OOD_TEST: [&str; 6] = [
    "textures",
    "svhn",
    "places365",
    "lsun_crop",
    "lsun_resize",
    "isun",
];

/// Validation OOD sets of a CIFAR benchmark: the code of record's, in its order.
pub const CIFAR_VALIDATION_SETS: [&str; 8] = [
    "uniform",
    "arith_mean",
    "geom_mean",
    "jigsaw",
    "speckle",
    "pixelate",
    "rgb_shift",
    "inverted",
];

/// Validation OOD sets [`prepare`] makes for SVHN (after Outlier Exposure's synthetic sets).
pub const VALIDATION_SETS: [&str; 6] = [
    "gaussian",
    "rademacher",
    "uniform",
    "arith_mean",
    "geom_mean",
    "inverted",
];

/// In-distribution data set of a paper benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaperBench {
    Cifar10,
    Cifar100,
    Svhn,
}

impl PaperBench {
    pub fn name(self) -> &'static str {
        match self {
            PaperBench::Cifar10 => "cifar10",
            PaperBench::Cifar100 => "cifar100",
            PaperBench::Svhn => "svhn",
        }
    }

    pub fn num_classes(self) -> i64 {
        match self {
            PaperBench::Cifar100 => 100,
            _ => 10,
        }
    }

    /// Names of the validation OOD sets [`prepare`] writes.
    pub fn validation_sets(self) -> &'static [&'static str] {
        match self {
            PaperBench::Svhn => &VALIDATION_SETS,
            _ => &CIFAR_VALIDATION_SETS,
        }
    }

    /// OOD test sets in table order: the paper's six for CIFAR; for SVHN every
    /// `ood_test/*.npy` of the folder (the paper's SVHN sets include CIFAR-10 instead of SVHN).
    pub fn ood_test_sets(self) -> Option<&'static [&'static str]> {
        match self {
            PaperBench::Svhn => None,
            _ => Some(&PAPER_OOD_TEST),
        }
    }
}

impl std::str::FromStr for PaperBench {
    type Err = BenchError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cifar10" => Ok(PaperBench::Cifar10),
            "cifar100" => Ok(PaperBench::Cifar100),
            "svhn" => Ok(PaperBench::Svhn),
            _ => Err(BenchError::UnknownBenchmark { name: s.into() }),
        }
    }
}

fn write_images(path: &Path, images: ArrayView4<u8>) -> Result<()> {
    let shape = images.shape().to_vec();
    let mut bytes = ood_core::io::npy::header_bytes(ood_core::io::npy::Dtype::U8, &shape);
    bytes.extend(images.iter());
    if let Some(d) = path.parent() {
        create_dir(d)?;
    }
    ood_core::io::write_atomic::<BenchError>(path, |f| {
        use std::io::Write;
        f.write_all(&bytes)
            .map_err(|e| IoError::new(path, e).into())
    })
}

fn write_labels(path: &Path, labels: &[i64]) -> Result<()> {
    Ok(ood_core::io::npy::write_i64_vector(path, labels)?)
}

/// Files of the original release in `src`, by benchmark: (train files, test files).
fn release_files(bench: PaperBench, src: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let pick = |names: &[String]| -> Vec<PathBuf> {
        names
            .iter()
            .map(|n| src.join(n))
            .filter(|p| p.is_file())
            .collect()
    };
    let (train, test) = match bench {
        PaperBench::Cifar10 => {
            let bin: Vec<String> = (1..=5).map(|i| format!("data_batch_{i}.bin")).collect();
            let py: Vec<String> = (1..=5).map(|i| format!("data_batch_{i}")).collect();
            let train = if pick(&bin).len() == 5 {
                pick(&bin)
            } else {
                pick(&py)
            };
            let test = [
                pick(&["test_batch.bin".into()]),
                pick(&["test_batch".into()]),
            ]
            .concat();
            (train, test.into_iter().take(1).collect())
        }
        PaperBench::Cifar100 => (
            [pick(&["train.bin".into()]), pick(&["train".into()])]
                .concat()
                .into_iter()
                .take(1)
                .collect(),
            [pick(&["test.bin".into()]), pick(&["test".into()])]
                .concat()
                .into_iter()
                .take(1)
                .collect(),
        ),
        // Outlier Exposure's SVHN baseline trains on train + extra (604,388 images); both
        // are required so that a run cannot silently train on the smaller split.
        PaperBench::Svhn => {
            let train = pick(&SVHN_TRAIN.map(String::from));
            let complete = train.len() == SVHN_TRAIN.len();
            (
                if complete { train } else { vec![] },
                pick(&["test_32x32.mat".into()]),
            )
        }
    };
    if train.is_empty() || test.is_empty() {
        return Err(BenchError::NoRelease {
            dir: src.to_path_buf(),
            benchmark: bench.name().into(),
        });
    }
    Ok((train, test))
}

/// The test file of the other CIFAR (CIFAR-100's for CIFAR-10, CIFAR-10's for CIFAR-100): in
/// `src` itself, else in the sibling folders the releases unpack into (`cifar-100-binary`,
/// `cifar-100-python`; `cifar-10-batches-bin`, `cifar-10-batches-py`).
pub fn other_cifar_test(bench: PaperBench, src: &Path) -> Result<(PathBuf, CifarLabels)> {
    let (names, dirs, labels) = match bench {
        PaperBench::Cifar10 => (
            ["test.bin", "test"],
            ["cifar-100-binary", "cifar-100-python"],
            CifarLabels::Cifar100Fine,
        ),
        PaperBench::Cifar100 => (
            ["test_batch.bin", "test_batch"],
            ["cifar-10-batches-bin", "cifar-10-batches-py"],
            CifarLabels::Cifar10,
        ),
        PaperBench::Svhn => unreachable!("SVHN has no other CIFAR"),
    };
    let parent = src.parent().unwrap_or(Path::new("."));
    let mut tried = vec![src.to_path_buf()];
    tried.extend(dirs.iter().map(|d| parent.join(d)));
    let found = tried
        .iter()
        .flat_map(|d| names.iter().map(move |n| d.join(n)))
        .find(|p| p.is_file());
    match found {
        Some(p) => Ok((p, labels)),
        None => Err(BenchError::NoOtherCifar {
            benchmark: bench.name().into(),
            tried,
        }),
    }
}

/// The CIFAR validation OOD sets of the code of record, `n` images each, from the other CIFAR
/// test set, written to `out/ood_val/<set>.npy`.
fn write_cifar_validation(
    bench: PaperBench,
    src: &Path,
    out: &Path,
    n: usize,
    seed: u64,
) -> Result<()> {
    use ood_data::transforms::corrupt::CifarValSet;
    use ood_data::transforms::{CIFAR_MEAN, CIFAR_STD};
    let (file, labels) = other_cifar_test(bench, src)?;
    let other = read_batches(&[file], labels)?;
    for (k, set) in CifarValSet::ALL.into_iter().enumerate() {
        // One ChaCha8 stream per set: each set depends on the seed alone.
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(1));
        rng.set_stream(k as u64);
        let images = set.build(n, other.images.view(), &CIFAR_MEAN, &CIFAR_STD, &mut rng)?;
        write_images(
            &out.join("ood_val").join(format!("{}.npy", set.name())),
            images.view(),
        )?;
    }
    Ok(())
}

/// The SVHN release files that make the training set, in this order.
pub const SVHN_TRAIN: [&str; 2] = ["train_32x32.mat", "extra_32x32.mat"];

fn read_release(bench: PaperBench, files: &[PathBuf]) -> Result<ood_data::ImageSet> {
    match bench {
        PaperBench::Svhn => {
            let mut sets = Vec::with_capacity(files.len());
            for f in files {
                sets.push((f, ood_data::formats::svhn_mat::read_svhn(f)?));
            }
            concat_sets(sets)
        }
        PaperBench::Cifar10 => Ok(read_batches(files, CifarLabels::Cifar10)?),
        PaperBench::Cifar100 => Ok(read_batches(files, CifarLabels::Cifar100Fine)?),
    }
}

/// The images and labels of `sets` one after the other; all must have one image shape.
fn concat_sets(sets: Vec<(&PathBuf, ood_data::ImageSet)>) -> Result<ood_data::ImageSet> {
    let Some((first, head)) = sets.first() else {
        return Err(BenchError::ReleaseShapes { files: vec![] });
    };
    let shape = head.image_shape();
    if sets
        .iter()
        .any(|(_, s)| s.image_shape() != shape || s.labels.is_none())
    {
        let files = sets
            .iter()
            .map(|(p, s)| (p.to_path_buf(), s.image_shape()))
            .collect();
        return Err(BenchError::ReleaseShapes { files });
    }
    if sets.len() == 1 {
        return Ok(sets.into_iter().next().expect("one set").1);
    }
    let (h, w, c) = shape;
    let n: usize = sets.iter().map(|(_, s)| s.len()).sum();
    ood_core::limits::check_alloc("release images", n as u128, (h * w * c) as u128)?;
    let views: Vec<_> = sets.iter().map(|(_, s)| s.images.view()).collect();
    let images =
        ndarray::concatenate(ndarray::Axis(0), &views).map_err(|_| BenchError::ReleaseShapes {
            files: vec![(first.to_path_buf(), shape)],
        })?;
    let labels: Vec<i64> = sets
        .iter()
        .flat_map(|(_, s)| s.labels.iter().flatten().copied())
        .collect();
    Ok(ood_data::ImageSet {
        images,
        labels: Some(ndarray::Array1::from(labels)),
    })
}

/// One synthetic validation OOD image set of `n` images built from ID validation images.
pub fn validation_set(
    name: &str,
    n: usize,
    id_val: ArrayView4<u8>,
    rng: &mut ChaCha8Rng,
) -> Option<Array4<u8>> {
    let (m, h, w, c) = id_val.dim();
    let mut out = Array4::<u8>::zeros((n, h, w, c));
    for k in 0..n {
        let (p, q) = (rng.random_range(0..m.max(1)), rng.random_range(0..m.max(1)));
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    let a = id_val[[p.min(m - 1), y, x, ch]] as f32 / 255.0;
                    let b = id_val[[q.min(m - 1), y, x, ch]] as f32 / 255.0;
                    let v = match name {
                        "gaussian" => {
                            let z: f32 =
                                rand_distr::Distribution::sample(&rand_distr::StandardNormal, rng);
                            0.5 + 0.25 * z
                        }
                        "rademacher" => f32::from(u8::from(rng.random_bool(0.5))),
                        "uniform" => rng.random::<f32>(),
                        "arith_mean" => (a + b) / 2.0,
                        "geom_mean" => (a * b).sqrt(),
                        "inverted" => 1.0 - a,
                        _ => return None,
                    };
                    out[[k, y, x, ch]] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                }
            }
        }
    }
    Some(out)
}

/// Writes the in-distribution part of a benchmark folder from the original release in `src`:
/// `train_x/train_y` (the training set minus `val_images` held out), `val_x/val_y`, `test_x/test_y`,
/// and `ood_val/<set>.npy` (`val_ood_images` each: [`CIFAR_VALIDATION_SETS`] from the other CIFAR
/// test set, or for SVHN [`VALIDATION_SETS`] from the held-out images). Returns the number of
/// (train, val, test) images.
pub fn prepare(
    bench: PaperBench,
    src: &Path,
    out: &Path,
    val_images: usize,
    val_ood_images: usize,
    seed: u64,
) -> Result<(usize, usize, usize)> {
    let (train_files, test_files) = release_files(bench, src)?;
    let train = read_release(bench, &train_files)?;
    let test = read_release(bench, &test_files)?;
    let n = train.len();
    if val_images >= n {
        return Err(BenchError::ValImages {
            val_images,
            images: n,
        });
    }
    let labels = |set: &ood_data::ImageSet| -> Result<Vec<i64>> {
        set.labels
            .as_ref()
            .map(|l| l.to_vec())
            .ok_or_else(|| BenchError::NoLabels {
                benchmark: bench.name().into(),
            })
    };
    let train_labels = labels(&train)?;
    let val_rows = choose(n, val_images, seed);
    let mut is_val = vec![false; n];
    val_rows.iter().for_each(|&i| is_val[i] = true);
    let train_rows: Vec<usize> = (0..n).filter(|&i| !is_val[i]).collect();
    let take = |rows: &[usize]| -> Array4<u8> {
        let (_, h, w, c) = train.images.dim();
        let mut a = Array4::<u8>::zeros((rows.len(), h, w, c));
        for (k, &i) in rows.iter().enumerate() {
            a.slice_mut(s![k, .., .., ..])
                .assign(&train.images.slice(s![i, .., .., ..]));
        }
        a
    };
    let val = take(&val_rows);
    write_images(&out.join("train_x.npy"), take(&train_rows).view())?;
    write_labels(
        &out.join("train_y.npy"),
        &train_rows
            .iter()
            .map(|&i| train_labels[i])
            .collect::<Vec<_>>(),
    )?;
    write_images(&out.join("val_x.npy"), val.view())?;
    write_labels(
        &out.join("val_y.npy"),
        &val_rows
            .iter()
            .map(|&i| train_labels[i])
            .collect::<Vec<_>>(),
    )?;
    write_images(&out.join("test_x.npy"), test.images.view())?;
    write_labels(&out.join("test_y.npy"), &labels(&test)?)?;
    if bench == PaperBench::Svhn {
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(1));
        for name in VALIDATION_SETS {
            let set = validation_set(name, val_ood_images, val.view(), &mut rng)
                .expect("known validation set");
            write_images(&out.join("ood_val").join(format!("{name}.npy")), set.view())?;
        }
    } else {
        write_cifar_validation(bench, src, out, val_ood_images, seed)?;
    }
    Ok((train_rows.len(), val_rows.len(), test.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_sets_follow_their_formulas() {
        let mut id = Array4::<u8>::zeros((1, 2, 2, 3));
        id.fill(51); // 0.2
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let inv = validation_set("inverted", 2, id.view(), &mut rng).unwrap();
        assert!(inv.iter().all(|&v| v == 204));
        let g = validation_set("geom_mean", 1, id.view(), &mut rng).unwrap();
        assert!(g.iter().all(|&v| v == 51));
        let r = validation_set("rademacher", 4, id.view(), &mut rng).unwrap();
        assert!(
            r.iter().all(|&v| v == 0 || v == 255)
                && r.iter().any(|&v| v == 0)
                && r.iter().any(|&v| v == 255)
        );
        assert!(validation_set("nope", 1, id.view(), &mut rng).is_none());
    }

    #[test]
    fn cifar_validation_names_are_the_builders() {
        let names: Vec<&str> = ood_data::transforms::corrupt::CifarValSet::ALL
            .iter()
            .map(|s| s.name())
            .collect();
        assert_eq!(names, CIFAR_VALIDATION_SETS);
        assert_eq!(PaperBench::Svhn.validation_sets(), VALIDATION_SETS);
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("cifar-10-batches-bin");
        std::fs::create_dir_all(&src).unwrap();
        let e = other_cifar_test(PaperBench::Cifar10, &src)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cifar-100-binary") && e.contains("cifar-100-python"),
            "{e}"
        );
        let c100 = tmp.path().join("cifar-100-python");
        std::fs::create_dir_all(&c100).unwrap();
        std::fs::write(c100.join("test"), b"x").unwrap();
        assert_eq!(
            other_cifar_test(PaperBench::Cifar10, &src).unwrap().0,
            c100.join("test")
        );
    }

    #[test]
    fn names_parse() {
        assert_eq!("cifar100".parse::<PaperBench>().unwrap().num_classes(), 100);
        assert!("mnist".parse::<PaperBench>().is_err());
    }
}
