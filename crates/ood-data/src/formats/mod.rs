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
//!   `read_zip_images_where(path, mode, |name| keep)`, `parse_zip_images(bytes, name, mode)`, `image_names(path)`.
//! - [`gimp_pat`]: `read_pat(path) / parse_pat(bytes, path) -> GimpPattern { name, image }`
//!   (`H x W x bpp`), `GimpPattern::pixels(mode)` drops alpha.
//! - [`cifar`]: `read_batches(paths, CifarLabels::{Cifar10, Cifar100Fine, Cifar100Coarse}) -> ImageSet`
//!   (binary or python release, recognised per file), `parse_bin`, `parse_pickle`.
//! - [`svhn_mat`]: `read_svhn(path) -> ImageSet` (`N x 32 x 32 x 3`, label 10 -> 0), `parse_mat` (MAT v5).
//! - [`pickle`]: the one non-executing pickle VM (`load(bytes, &mut hooks, &Limits)`), with
//!   [`pickle::Hooks`] for allowed globals, calls and persistent ids (CIFAR: numpy; `ood-nn`: torch).
//! - [`image_folder`]: `read_image_folder(root, &FolderOptions) -> ImageFolder { set, classes, files }`
//!   (default: shorter side 32 + center crop 32, RGB), `list_images(root)`.
//! - [`npy_images`]: `NpyImages::open(path)` (memory-mapped `N x H x W (x C)` `uint8`), `image(i)`,
//!   `view()`, `to_image_set()`; implements [`crate::batch::ImageSource`].
//! - [`tiny_images`]: `TinyImages::open(bin)?.with_exclusion_file(idxs)?` (memory-mapped, column-major
//!   records, 1-based CIFAR-overlap list; kept images renumbered `0..len()`), `image(k)`;
//!   implements [`crate::batch::ImageSource`].
//! - [`outliers`]: `open_outliers(path, Option<exclusion list>)`: a Tiny Images `.bin` or a `.npy`
//!   (e.g. `300K_random_images.npy`) as a streamed [`crate::batch::ImageSource`].
//! - [`tar`]: `TarStream::new(reader, path)`, `next_member()`, `read_data(&member, cap)`: streamed
//!   ustar/GNU/pax members, hostile ones refused; [`tar_subset`]: `build_image_subset(tar, out,
//!   n, seed)` (Places365's seeded test subset with its manifest).
//!
//! - [`qt_rcc`]: `read_rcc_where(path, |name| keep) -> Vec<RccEntry { name, bytes }>` sorted by
//!   path, `rcc_names(path)`: Qt resource archives (GCompris' images), zlib entries inflated with caps.
//!
//! Transforms used with them live in [`crate::transforms`]: `resize(img, h, w, Filter::{Area,
//! Bilinear})`, `resize_shorter_side`, `center_crop`, `to_grayscale`, `gray_to_rgb`, `hflip`, and the
//! seeded augmentation `Pipeline` (`Step::RandomCrop`, `Step::HorizontalFlip`, ..., `Normalize`).
//! Batches: [`crate::batch::BatchLoader`] over any [`crate::batch::ImageSource`] (`ImageSet` included).
//! The format details, decisions and the fuzzing record are in `docs/formats.md`.

pub(crate) mod bytes;
pub mod cifar;
pub mod gimp_pat;
pub mod idx;
pub mod image_file;
pub mod image_folder;
pub mod npy_images;
mod numpy_pickle;
pub mod outliers;
pub mod pickle;
pub mod qt_rcc;
pub mod svhn_mat;
pub mod tar;
pub mod tar_subset;
pub mod tiny_images;
pub mod zip_images;

pub use image_file::{decode_image, read_image, ColorMode};
