//! Folders of image files (PNG, JPEG, BMP, TGA, GIF), as the paper's OOD test sets ship: Textures
//! (DTD, `images/<class>/*.jpg`), Places365, LSUN-Crop, LSUN-Resize and iSUN.
//!
//! Layout: if any immediate sub-folder of the root holds images (at any depth), each such
//! sub-folder is a class (sorted by name, labels 0..K, images found recursively, top-level files
//! ignored, as torchvision's `ImageFolder`); otherwise the root's own image files form an
//! unlabelled set. Hidden entries (`.name`) are skipped, files are sorted by path.
//!
//! Preprocessing defaults to the paper's test transform for these sets: resize the shorter side
//! to 32 (PIL bilinear, as torchvision's `Resize(32)`), then center-crop 32 x 32, RGB.

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array3, Array4};
use rayon::prelude::*;

use super::image_file::{is_image_name, read_image, ColorMode};
use crate::transforms::{center_crop, resize, resize_shorter_side, Filter};
use crate::{Error, ImageSet, Result};

/// How each decoded image is brought to a common size.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Preprocess {
    /// Shorter side to `size`, then the central `size x size` window (the paper's default).
    ShorterSideCenterCrop { size: usize, filter: Filter },
    /// Resize to exactly `height x width` (aspect ratio not kept).
    Resize {
        height: usize,
        width: usize,
        filter: Filter,
    },
    /// Keep images as they are; all must have the same size.
    None,
}

/// Options of [`read_image_folder`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FolderOptions {
    pub preprocess: Preprocess,
    pub color: ColorMode,
}

impl Default for FolderOptions {
    fn default() -> Self {
        FolderOptions {
            preprocess: Preprocess::ShorterSideCenterCrop {
                size: 32,
                filter: Filter::Bilinear,
            },
            color: ColorMode::Rgb,
        }
    }
}

/// A decoded folder: images, class names (empty for a flat folder) and each image's file.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFolder {
    pub set: ImageSet,
    pub classes: Vec<String>,
    pub files: Vec<PathBuf>,
}

fn is_hidden(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let p = e.map_err(|e| Error::io(dir, e))?.path();
        if !is_hidden(&p) {
            v.push(p);
        }
    }
    v.sort();
    Ok(v)
}

fn images_recursive(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for p in sorted_entries(dir)? {
        if p.is_dir() {
            images_recursive(&p, out)?;
        } else if p.to_str().is_some_and(is_image_name) {
            out.push(p);
        }
    }
    Ok(())
}

/// Image files with their class index (`None` in a flat folder), and the class names.
pub type FolderListing = (Vec<(PathBuf, Option<i64>)>, Vec<String>);

/// The files of a folder with their class index, and the class names (see the module doc).
pub fn list_images(root: &Path) -> Result<FolderListing> {
    let entries = sorted_entries(root)?;
    let mut classes = Vec::new();
    let mut files = Vec::new();
    for d in entries.iter().filter(|p| p.is_dir()) {
        let mut imgs = Vec::new();
        images_recursive(d, &mut imgs)?;
        if !imgs.is_empty() {
            let label = classes.len() as i64;
            classes.push(
                d.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
            files.extend(imgs.into_iter().map(|p| (p, Some(label))));
        }
    }
    if classes.is_empty() {
        files = entries
            .into_iter()
            .filter(|p| p.is_file() && p.to_str().is_some_and(is_image_name))
            .map(|p| (p, None))
            .collect();
    }
    if files.is_empty() {
        return Err(Error::NoImages { path: root.into() });
    }
    Ok((files, classes))
}

fn preprocess(img: Array3<u8>, p: Preprocess) -> Array3<u8> {
    match p {
        Preprocess::ShorterSideCenterCrop { size, filter } => center_crop(
            resize_shorter_side(img.view(), size, filter).view(),
            size,
            size,
        ),
        Preprocess::Resize {
            height,
            width,
            filter,
        } => resize(img.view(), height, width, filter),
        Preprocess::None => img,
    }
}

/// Decodes (in parallel) and preprocesses every image of a folder.
pub fn read_image_folder(root: &Path, options: &FolderOptions) -> Result<ImageFolder> {
    let (files, classes) = list_images(root)?;
    let images: Vec<Array3<u8>> = files
        .par_iter()
        .map(|(p, _)| {
            Ok(preprocess(
                read_image(p, options.color)?,
                options.preprocess,
            ))
        })
        .collect::<Result<_>>()?;
    let (h, w, c) = images[0].dim();
    let mut pixels = Vec::with_capacity(images.len() * h * w * c);
    for (img, (p, _)) in images.iter().zip(&files) {
        if img.dim() != (h, w, c) {
            return Err(Error::ImageSize {
                path: p.clone(),
                found: img.dim(),
                first: files[0].0.clone(),
                expected: (h, w, c),
            });
        }
        pixels.extend(img.iter());
    }
    let labels = if classes.is_empty() {
        None
    } else {
        Some(Array1::from_iter(
            files.iter().map(|(_, l)| l.expect("class layout")),
        ))
    };
    let set = ImageSet {
        images: Array4::from_shape_vec((images.len(), h, w, c), pixels).expect("sizes checked"),
        labels,
    };
    Ok(ImageFolder {
        set,
        classes,
        files: files.into_iter().map(|(p, _)| p).collect(),
    })
}
