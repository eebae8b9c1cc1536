//! `eood data convert`: an image folder or SVHN .mat file -> `N x H x W x C` u8 `.npy`.
use std::path::Path;

use anyhow::bail;
use ndarray::Array4;
use ood_data::formats::ColorMode;
use ood_data::transforms::Filter;

/// Largest side of a converted image and the montage limits: far beyond any use, far below
/// sizes whose buffers exhaust memory.
pub(super) const MAX_CONVERT_SIZE: usize = 4096;

/// `eood data convert`: an image folder or SVHN .mat file -> N x H x W x C u8 .npy; `size`
/// `None` keeps folder images as stored (LSUN-Crop's 36x36, as the code of record feeds them).
pub(super) fn convert(
    input: &Path,
    out: &Path,
    size: Option<usize>,
    gray: bool,
    svhn: bool,
) -> anyhow::Result<()> {
    use ood_data::formats::image_folder::{read_image_folder, FolderOptions, Preprocess};
    ood_core::io::check_output(out, &[input])?;
    let color = if gray {
        ColorMode::Gray
    } else {
        ColorMode::Rgb
    };
    let images: Array4<u8> = if svhn {
        let set = ood_data::formats::svhn_mat::read_svhn(input)?;
        let (h, w, _) = set.image_shape();
        if size.is_some_and(|s| (h, w) != (s, s)) || gray {
            bail!(
                "{}: SVHN images are {h}x{w} RGB; convert them with the default --size 32 and --color rgb",
                input.display()
            );
        }
        set.images
    } else {
        let options = FolderOptions {
            preprocess: match size {
                Some(size) => Preprocess::ShorterSideCenterCrop {
                    size,
                    filter: Filter::Bilinear,
                },
                None => Preprocess::None,
            },
            color,
        };
        read_image_folder(input, &options)?.set.images
    };
    let c_order = images.as_standard_layout();
    let values = c_order.as_slice().expect("standard layout is contiguous");
    ood_core::io::npy::write_array(out, images.shape(), values)?;
    let s = images.shape();
    eprintln!(
        "wrote {} images of {}x{}x{} to {}",
        s[0],
        s[1],
        s[2],
        s[3],
        out.display()
    );
    Ok(())
}
