//! Decoding of single image files (PNG, JPEG, BMP, TGA, WebP; GIF first frame) from bytes or a path,
//! into `H x W x C` `u8` arrays.
//!
//! Gray conversion of colour images uses the ITU-R 601-2 luma weights with PIL's fixed-point
//! rounding ([`crate::transforms::to_grayscale`]), so results match a PIL/torchvision pipeline.
//! Alpha channels are dropped (not composited).

use std::io::Cursor as IoCursor;
use std::path::Path;

use image::{DynamicImage, ImageFormat, ImageReader, Limits};
use ndarray::Array3;

use crate::{Error, Result};

/// Largest accepted width or height; larger headers are rejected before any pixel is allocated.
pub const MAX_IMAGE_SIDE: u32 = 16_384;
/// Largest accepted decoder allocation.
pub const MAX_IMAGE_ALLOC: u64 = 512 << 20;

/// Channel layout of decoded images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorMode {
    /// One channel; colour images are converted with ITU-R 601-2 luma.
    Gray,
    /// Three channels; gray images are replicated.
    Rgb,
    /// One channel for gray files, three for colour files.
    Native,
}

/// File extensions (lower case) that [`decode_image`] reads.
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp", "tga", "gif", "webp"];

/// Whether a file name has one of [`IMAGE_EXTENSIONS`] (case-insensitive).
pub fn is_image_name(name: &str) -> bool {
    match name.rsplit_once('.') {
        Some((_, ext)) => IMAGE_EXTENSIONS.iter().any(|e| ext.eq_ignore_ascii_case(e)),
        None => false,
    }
}

/// Decodes an image file held in memory. `name` is used for errors and, for TGA (which has no
/// magic number), for recognising the format by its extension.
pub fn decode_image(bytes: &[u8], name: &Path, mode: ColorMode) -> Result<Array3<u8>> {
    let mut reader = ImageReader::new(IoCursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::io(name, e))?;
    if reader.format().is_none() {
        let ext = name.extension().and_then(|e| e.to_str()).unwrap_or("");
        match ImageFormat::from_extension(ext) {
            Some(f) => reader.set_format(f),
            None => return Err(Error::format(name, 0, "not a recognised image format")),
        }
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_ALLOC);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| Error::format(name, 0, format!("cannot decode image: {e}")))?;
    Ok(dynamic_to_array(img, mode))
}

/// Reads and decodes one image file.
pub fn read_image(path: &Path, mode: ColorMode) -> Result<Array3<u8>> {
    let bytes = super::bytes::read_file(path)?;
    decode_image(&bytes, path, mode)
}

fn dynamic_to_array(img: DynamicImage, mode: ColorMode) -> Array3<u8> {
    let is_gray = !img.color().has_color();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let gray = || {
        let g = img.to_luma8();
        Array3::from_shape_vec((h, w, 1), g.into_raw()).expect("luma buffer has h*w bytes")
    };
    let rgb = || {
        let c = img.to_rgb8();
        Array3::from_shape_vec((h, w, 3), c.into_raw()).expect("rgb buffer has h*w*3 bytes")
    };
    match (mode, is_gray) {
        (ColorMode::Gray, true) | (ColorMode::Native, true) => gray(),
        (ColorMode::Gray, false) => crate::transforms::to_grayscale(rgb().view()),
        (ColorMode::Rgb, _) | (ColorMode::Native, false) => rgb(),
    }
}
