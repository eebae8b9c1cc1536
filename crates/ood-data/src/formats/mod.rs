//! Readers of the dataset file formats. Every reader checks header-declared sizes against the
//! file size before allocating, and reports bad input as [`crate::Error::Format`] naming the
//! file and the byte offset. Images come out as `H x W x C` / `N x H x W x C` `u8`
//! ([`crate::ImageSet`] for whole datasets).
//!
//! Public API (one module per format):
//! - [`image_file`]: `decode_image(bytes, name, ColorMode) -> Array3<u8>`, `read_image(path, mode)`,
//!   `is_image_name(name)`; PNG, JPEG, BMP, TGA (by extension), GIF. `ColorMode::{Gray, Rgb, Native}`.
//! - [`idx`]: `read_images(path) -> Array4<u8>` (`N x H x W x 1`), `read_labels(path) -> Array1<i64>`,
//!   `read_image_set(images, Option<labels>) -> ImageSet`, `parse_images/parse_labels(bytes, path)`;
//!   raw or gzip (MNIST, Fashion-MNIST, notMNIST).
//! - [`zip_images`]: `read_zip_images(path, mode) -> Vec<ZipImage { name, image }>` sorted by path in
//!   the archive (`ZipImage::folder()` groups e.g. Omniglot `alphabet/character`),
//!   `read_zip_images_where(path, mode, |name| keep)`, `image_names(path)`.
//! - [`gimp_pat`]: `read_pat(path) / parse_pat(bytes, path) -> GimpPattern { name, image }`
//!   (`H x W x bpp`), `GimpPattern::pixels(mode)` drops alpha.
//!
//! Transforms used with them live in [`crate::transforms`]: `resize(img, h, w, Filter::{Area,
//! Bilinear})`, `resize_shorter_side`, `center_crop`, `to_grayscale`, `gray_to_rgb`, `hflip`.

pub(crate) mod bytes;
pub mod cifar;
pub mod gimp_pat;
pub mod idx;
pub mod image_file;
pub mod image_folder;
pub mod npy_images;
pub(crate) mod pickle;
pub mod svhn_mat;
pub mod tiny_images;
pub mod zip_images;

pub use image_file::{decode_image, read_image, ColorMode};
