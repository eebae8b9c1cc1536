//! GIMP pattern files (`.pat`, version 1), e.g. the tileable textures of Debian's `gimp-data`.
//!
//! Layout (big-endian `u32`s): header size, version (1), width, height, bytes per pixel (1 gray,
//! 2 gray+alpha, 3 RGB, 4 RGBA), the magic `GPAT`, then the pattern's name (UTF-8,
//! NUL-terminated, filling the rest of the header), then `height x width x bpp` pixel bytes in
//! row-major order. Bytes after the pixels are ignored, as GIMP's own loader does.

use std::path::Path;

use ndarray::{s, Array3};

use super::bytes::{read_file, Cursor};
use super::image_file::ColorMode;
use crate::Result;

/// GIMP refuses patterns larger than this on either side.
pub const MAX_PATTERN_SIDE: usize = 10_000;
const FIXED_HEADER: usize = 24;

/// A decoded pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct GimpPattern {
    pub name: String,
    /// `H x W x bpp` as stored (alpha kept).
    pub image: Array3<u8>,
}

impl GimpPattern {
    /// Pixels in the requested colour layout, alpha dropped.
    pub fn pixels(&self, mode: ColorMode) -> Array3<u8> {
        let c = self.image.shape()[2];
        let colour = c >= 3;
        let base = if colour {
            self.image.slice(s![.., .., 0..3])
        } else {
            self.image.slice(s![.., .., 0..1])
        };
        match (mode, colour) {
            (ColorMode::Gray, true) => crate::transforms::to_grayscale(base),
            (ColorMode::Rgb, false) => crate::transforms::gray_to_rgb(base),
            _ => base.to_owned(),
        }
    }
}

/// Parses a `.pat` file held in memory.
pub fn parse_pat(bytes: &[u8], path: &Path) -> Result<GimpPattern> {
    let mut cur = Cursor::new(bytes, path);
    let header_size = cur.u32_be("header size")? as usize;
    let version = cur.u32_be("version")?;
    let width = cur.u32_be("width")? as usize;
    let height = cur.u32_be("height")? as usize;
    let bpp = cur.u32_be("bytes per pixel")? as usize;
    let magic = cur.take(4, "magic")?;
    if magic != b"GPAT" {
        return Err(cur.error_at(
            20,
            format!("not a GIMP pattern: magic {magic:02x?}, expected \"GPAT\""),
        ));
    }
    if version != 1 {
        return Err(cur.error_at(
            4,
            format!("unsupported GIMP pattern version {version} (only 1)"),
        ));
    }
    if header_size < FIXED_HEADER + 1 || header_size > bytes.len() {
        return Err(cur.error_at(
            0,
            format!(
                "header size {header_size} outside {}..={} (file size)",
                FIXED_HEADER + 1,
                bytes.len()
            ),
        ));
    }
    if !(1..=MAX_PATTERN_SIDE).contains(&width) || !(1..=MAX_PATTERN_SIDE).contains(&height) {
        return Err(cur.error_at(
            8,
            format!("pattern size {width}x{height} outside 1..={MAX_PATTERN_SIDE}"),
        ));
    }
    if !(1..=4).contains(&bpp) {
        return Err(cur.error_at(16, format!("bytes per pixel {bpp} not in 1..=4")));
    }
    let name_bytes = cur.take(header_size - FIXED_HEADER, "pattern name")?;
    let name_end = name_bytes
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(name_bytes.len());
    let name = std::str::from_utf8(&name_bytes[..name_end])
        .map_err(|e| cur.error_at(FIXED_HEADER + e.valid_up_to(), "pattern name is not UTF-8"))?
        .to_owned();
    let n = width * height * bpp; // <= 4e8: no overflow
    let data = cur.take(n, &format!("pixel data of {width}x{height}x{bpp}"))?;
    let image = Array3::from_shape_vec((height, width, bpp), data.to_vec()).expect("size checked");
    Ok(GimpPattern { name, image })
}

/// Reads a `.pat` file.
pub fn read_pat(path: &Path) -> Result<GimpPattern> {
    parse_pat(&read_file(path)?, path)
}
