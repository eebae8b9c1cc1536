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
    let source: Arc<dyn ImageSource> = Arc::new(NpyImages::open(path)?);
    Ok((source, OutlierKind::Npy))
}
