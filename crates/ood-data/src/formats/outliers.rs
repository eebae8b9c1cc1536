//! Auxiliary outlier files by path, streamed (positioned reads, nothing loaded whole): the raw
//! 80M Tiny Images binary (`*.bin`, optionally without the CIFAR overlaps of the code of record's
//! `80mn_cifar_idxs.txt`) or an `N x H x W x C` `uint8` `.npy` such as `300K_random_images.npy`.
//! Their sampling order is the caller's ([`crate::batch::BatchLoader::with_random_offset`] is the
//! code of record's).

use std::path::Path;
use std::sync::Arc;

use super::npy_images::NpyImages;
use super::tiny_images::TinyImages;
use crate::batch::ImageSource;
use crate::{Error, Result};

/// What [`open_outliers`] opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutlierKind {
    /// The raw Tiny Images binary.
    TinyImages,
    /// A `.npy` image array.
    Npy,
}

/// Opens `path` as auxiliary outliers: `*.bin` as Tiny Images (with `exclusion`, the 1-based
/// index list, removed), anything else as a `uint8` `.npy`; an exclusion list for a `.npy` is
/// refused (its indices mean Tiny Images records).
pub fn open_outliers(
    path: &Path,
    exclusion: Option<&Path>,
) -> Result<(Arc<dyn ImageSource>, OutlierKind)> {
    let is_bin = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("bin"));
    if is_bin {
        let tiny = TinyImages::open(path)?;
        let tiny = match exclusion {
            Some(list) => tiny.with_exclusion_file(list)?,
            None => tiny,
        };
        if tiny.is_empty() {
            return Err(Error::format(path, 0, "every image is excluded"));
        }
        let source: Arc<dyn ImageSource> = Arc::new(tiny);
        return Ok((source, OutlierKind::TinyImages));
    }
    if let Some(list) = exclusion {
        return Err(Error::Invalid {
            what: "outlier exclusion list",
            reason: format!(
                "{} lists Tiny Images records; {} is not a Tiny Images .bin",
                list.display(),
                path.display()
            ),
        });
    }
    let images = NpyImages::open(path)?;
    if images.is_empty() {
        return Err(Error::format(path, 0, "holds no images"));
    }
    let source: Arc<dyn ImageSource> = Arc::new(images);
    Ok((source, OutlierKind::Npy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_is_tiny_images_npy_is_npy_and_mismatches_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("tiny_images.bin");
        std::fs::write(&bin, vec![9u8; 3072 * 5]).unwrap();
        let idxs = tmp.path().join("80mn_cifar_idxs.txt");
        std::fs::write(&idxs, "2\n4\n").unwrap();
        let (src, kind) = open_outliers(&bin, Some(&idxs)).unwrap();
        assert_eq!(
            (kind, src.len(), src.image_shape()),
            (OutlierKind::TinyImages, 3, (32, 32, 3))
        );
        let npy = tmp.path().join("300K_random_images.npy");
        let mut bytes =
            ood_core::io::npy::header_bytes(ood_core::io::npy::Dtype::U8, &[2, 32, 32, 3]);
        bytes.extend(vec![1u8; 2 * 3072]);
        std::fs::write(&npy, bytes).unwrap();
        let (src, kind) = open_outliers(&npy, None).unwrap();
        assert_eq!((kind, src.len()), (OutlierKind::Npy, 2));
        let e = open_outliers(&npy, Some(&idxs)).err().unwrap().to_string();
        assert!(e.contains("not a Tiny Images .bin"), "{e}");
        let empty = tmp.path().join("empty.npy");
        std::fs::write(
            &empty,
            ood_core::io::npy::header_bytes(ood_core::io::npy::Dtype::U8, &[0, 32, 32, 3]),
        )
        .unwrap();
        assert!(open_outliers(&empty, None).is_err());
    }
}
