//! Synthetic sources of the Fashion-MNIST OOD builder, written in the real formats (IDX gzip,
//! PNG/JPEG/TGA, zip archives, GIMP .pat) where the real ones live (Debian package trees in the
//! cache, the shared data folder); used by `fmnist_ood.rs`.
#![allow(dead_code)] // not every test binary uses every helper

use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array4};
use ndarray_npy::ReadNpyExt;
use ood_data::cache::{Cache, Locations};
use ood_data::fmnist_ood::{self, BuildConfig};

pub const TRAIN: usize = 300;
pub const TEST: usize = 50;

pub fn config(seed: u64) -> BuildConfig {
    BuildConfig {
        seed,
        val_size: 30,
        textures_gimp: 20,
        textures_skimage: 10,
        photo_crop: 20,
        photo_resize: 20,
        validation_ood: 7,
        aux_openarena: 30,
        aux_mate: 20,
        min_crop_std: 10.0,
        min_distinct_photos: PHOTOS,
    }
}

/// Distinct photos of the fixture: 9 scikit-image + 2 scikit-learn + 6 GCompris + 14 Lomiri +
/// 10 Plasma (the 11th Plasma file is a smaller copy of the first GCompris photo).
pub const PHOTOS: usize = 41;

// ---- writers of the real formats ----------------------------------------------------------

pub fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

pub fn idx_images(n: usize, salt: usize) -> (Vec<u8>, Array4<u8>) {
    let x = Array4::from_shape_fn((n, 28, 28, 1), |(i, y, x, _)| {
        ((i * 31 + y * 7 + x * 3 + salt) % 256) as u8
    });
    let mut b = vec![0, 0, 8, 3];
    for d in [n as u32, 28, 28] {
        b.extend(d.to_be_bytes());
    }
    b.extend(x.iter());
    (gz(&b), x)
}

pub fn idx_labels(n: usize) -> (Vec<u8>, Array1<i64>) {
    let y = Array1::from_iter((0..n).map(|i| (i % 10) as i64));
    let mut b = vec![0, 0, 8, 1];
    b.extend((n as u32).to_be_bytes());
    b.extend(y.iter().map(|&v| v as u8));
    (gz(&b), y)
}

/// A textured gray/RGB image: gradients plus a deterministic pattern (high local contrast).
pub fn picture(h: u32, w: u32, seed: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        let v = ((x * 13 + y * 7 + seed * 17) ^ (x * y + seed)) % 256;
        image::Rgb([v as u8, ((v + x) % 256) as u8, ((v * 3 + y) % 256) as u8])
    })
}

/// A photo-like image: a seed-dependent 4x4 layout of dark and bright regions (what a
/// perceptual hash sees: two seeds share all 16 regions with odds 2^-16) plus fine texture (so
/// 28x28 crops are never near-constant). The layout is relative, so any size shows the same photo.
pub fn photo(h: u32, w: u32, seed: u32) -> image::RgbImage {
    let bright = |cell: u32| {
        let mut z = (seed as u64) << 8 | cell as u64;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        (z ^ (z >> 31)) & 1 == 1
    };
    image::RgbImage::from_fn(w, h, |x, y| {
        let cell = (y * 4 / h) * 4 + x * 4 / w;
        let base = if bright(cell) { 180.0 } else { 70.0 };
        let fine = (((x * 13 + y * 7 + seed * 17) ^ (x * y + seed)) % 48) as f64 - 24.0;
        let v = (base + fine).clamp(0.0, 255.0) as u8;
        image::Rgb([v, v.saturating_add(10), v.saturating_sub(10)])
    })
}

pub fn encode(img: &image::RgbImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

pub fn zip_of(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        z.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap().into_inner()
}

pub fn pat(name: &str, w: u32, h: u32, bpp: u32, pixels: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend((24 + name.len() as u32 + 1).to_be_bytes());
    for v in [1, w, h, bpp] {
        b.extend(v.to_be_bytes());
    }
    b.extend(b"GPAT");
    b.extend(name.as_bytes());
    b.push(0);
    b.extend(pixels);
    b
}

/// An Omniglot-like 105x105 1-bit PNG: a black stroke on white.
pub fn omniglot_png(k: u32) -> Vec<u8> {
    let img = image::GrayImage::from_fn(105, 105, |x, y| {
        let on = (x as i32 - 52).abs() < 4 + k as i32 || (y as i32 - 30 - 5 * k as i32).abs() < 3;
        image::Luma([if on { 0 } else { 255 }])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

pub struct Fixture {
    pub _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub loc: Locations,
    pub fm_train: Array4<u8>,
    pub fm_train_y: Array1<i64>,
    pub fm_test: Array4<u8>,
    pub mnist: Array4<u8>,
}

pub fn deb(cache: &Path, package: &str, dir: &str) -> PathBuf {
    cache.join("sources/deb").join(package).join(dir)
}

/// Writes every source of the builder, in its real format and place, under a new folder.
pub fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let cache = root.join("cache");
    let shared = root.join("shared");
    let (fm_train, fm_train_y, fm_test, mnist) = write_idx_sources(&cache, &shared);
    write_omniglot(&shared);
    write_gimp_patterns(&cache);
    write_photos(&cache);
    write_game_textures_and_backgrounds(&cache);
    let loc = Locations {
        cache: Cache::new(&cache),
        shared_data: Some(shared),
        system_root: root.join("no-system"),
    };
    Fixture {
        _tmp: tmp,
        root,
        loc,
        fm_train,
        fm_train_y,
        fm_test,
        mnist,
    }
}

/// Fashion-MNIST (Debian package tree), MNIST and notMNIST (shared folder) as gzip IDX.
pub fn write_idx_sources(
    cache: &Path,
    shared: &Path,
) -> (Array4<u8>, Array1<i64>, Array4<u8>, Array4<u8>) {
    let fm = deb(
        cache,
        "dataset-fashion-mnist",
        "usr/share/datasets/fashion-mnist",
    );
    let (b, fm_train) = idx_images(TRAIN, 0);
    write(&fm.join("train-images-idx3-ubyte.gz"), &b);
    let (b, fm_train_y) = idx_labels(TRAIN);
    write(&fm.join("train-labels-idx1-ubyte.gz"), &b);
    let (b, fm_test) = idx_images(TEST, 1);
    write(&fm.join("t10k-images-idx3-ubyte.gz"), &b);
    write(&fm.join("t10k-labels-idx1-ubyte.gz"), &idx_labels(TEST).0);

    let (b, mnist) = idx_images(40, 2);
    write(&shared.join("mnist/t10k-images-idx3-ubyte.gz"), &b);
    write(
        &shared.join("mnist/t10k-labels-idx1-ubyte.gz"),
        &idx_labels(40).0,
    );
    write(
        &shared.join("notmnist/t10k-images-idx3-ubyte.gz"),
        &idx_images(40, 3).0,
    );
    write(
        &shared.join("notmnist/t10k-labels-idx1-ubyte.gz"),
        &idx_labels(40).0,
    );
    (fm_train, fm_train_y, fm_test, mnist)
}

/// Omniglot's two small background zips.
pub fn write_omniglot(shared: &Path) {
    for (zip_name, alphabet) in [
        ("images_background_small1.zip", "Latin"),
        ("images_background_small2.zip", "Greek"),
    ] {
        let entries: Vec<(String, Vec<u8>)> = (0..3)
            .map(|k| {
                (
                    format!("{zip_name}/{alphabet}/character01/{k}.png"),
                    omniglot_png(k),
                )
            })
            .collect();
        let refs: Vec<(&str, Vec<u8>)> = entries
            .iter()
            .map(|(n, b)| (n.as_str(), b.clone()))
            .collect();
        write(&shared.join("omniglot").join(zip_name), &zip_of(&refs));
    }
}

/// GIMP patterns: RGB, gray and a flat one.
pub fn write_gimp_patterns(cache: &Path) {
    let gimp = deb(cache, "gimp-data", "usr/share/gimp/2.0/patterns");
    let rgb: Vec<u8> = picture(40, 50, 1).into_raw();
    write(
        &gimp.join("Fabric/burlap.pat"),
        &pat("burlap", 50, 40, 3, &rgb),
    );
    let gray: Vec<u8> = (0..16 * 16).map(|i| ((i * 37) % 256) as u8).collect();
    write(
        &gimp.join("Legacy/small.pat"),
        &pat("small", 16, 16, 1, &gray),
    );
    write(
        &gimp.join("Legacy/flat.pat"),
        &pat("flat", 30, 30, 1, &[77u8; 900]),
    );
}

/// scikit-image textures and photos, scikit-learn's two sample images.
pub fn write_photos(cache: &Path) {
    let sk = deb(
        cache,
        "python3-skimage",
        "usr/lib/python3/dist-packages/skimage/data",
    );
    for (k, name) in ["brick.png", "grass.png", "gravel.png"].iter().enumerate() {
        write(
            &sk.join(name),
            &encode(&picture(120, 130, 10 + k as u32), image::ImageFormat::Png),
        );
    }
    for (k, name) in fmnist_ood::sources::SKIMAGE_PHOTOS.iter().enumerate() {
        let fmt = if name.ends_with(".jpg") {
            image::ImageFormat::Jpeg
        } else {
            image::ImageFormat::Png
        };
        write(
            &sk.join(name),
            &encode(&photo(100, 140, 20 + k as u32), fmt),
        );
    }
    let skl = deb(
        cache,
        "python3-sklearn",
        "usr/lib/python3/dist-packages/sklearn/datasets/images",
    );
    write(
        &skl.join("china.jpg"),
        &encode(&photo(90, 120, 40), image::ImageFormat::Jpeg),
    );
    write(
        &skl.join("flower.jpg"),
        &encode(&photo(90, 120, 41), image::ImageFormat::Jpeg),
    );
    write_photo_collections(cache);
}

/// GCompris' resource archives (WebP photos next to entries the selection leaves out), the
/// Lomiri and Plasma wallpapers, where the real packages put them.
pub fn write_photo_collections(cache: &Path) {
    use ood_data::formats::qt_rcc::write_rcc;
    let gc = deb(cache, "gcompris-qt-data", "usr/share/gcompris-qt/rcc");
    let webp = |seed| encode(&photo(64, 80, seed), image::ImageFormat::WebP);
    let cat = "gcompris/src/activities/categorization/resource/images";
    let (p1, p2, p3) = (webp(100), webp(101), webp(102));
    let drawing = webp(103);
    let erase = "gcompris/src/activities/erase/resource";
    let (e1, e2) = (webp(104), webp(105));
    let details = "gcompris/src/activities/details/resource/image";
    let (d1, d2) = (webp(106), webp(107));
    let files: Vec<(&str, Vec<(String, &[u8], bool)>)> = vec![
        (
            "categorization.rcc",
            vec![
                (format!("{cat}/fishes/fish1.webp"), &p1[..], false),
                (format!("{cat}/tools/hammer1.webp"), &p2[..], true),
                (format!("{cat}/others/cup.webp"), &p3[..], false),
                (
                    format!("{cat}/alphabets/alphabets.webp"),
                    &drawing[..],
                    false,
                ),
                (format!("{cat}/Categorization.qml"), &b"qml"[..], true),
            ],
        ),
        (
            "erase.rcc",
            vec![
                (format!("{erase}/alpaca.webp"), &e1[..], false),
                (format!("{erase}/bee.webp"), &e2[..], true),
            ],
        ),
        (
            "details.rcc",
            vec![
                (
                    format!("{details}/TajMahal_background.webp"),
                    &d1[..],
                    false,
                ),
                (format!("{details}/Gogh4_background.webp"), &d2[..], false),
                (format!("{details}/TajMahal_0.webp"), &d1[..], false),
            ],
        ),
    ];
    for (archive, entries) in &files {
        let e: Vec<(&str, &[u8], bool)> = entries
            .iter()
            .map(|(n, b, z)| (n.as_str(), *b, *z))
            .collect();
        write(&gc.join(archive), &write_rcc(&e));
    }
    // The other archives: present, with nothing the selection takes.
    for s in fmnist_ood::sources::GCOMPRIS_PHOTOS {
        if !gc.join(s.archive).exists() {
            write(
                &gc.join(s.archive),
                &write_rcc(&[("gcompris/x.qml", &b"qml"[..], false)]),
            );
        }
    }
    let lomiri = deb(cache, "lomiri-wallpapers-16.04", "usr/share/backgrounds");
    for (k, name) in fmnist_ood::sources::LOMIRI_PHOTOS.iter().enumerate() {
        let img = photo(70, 90, 120 + k as u32);
        write(&lomiri.join(name), &encode(&img, image::ImageFormat::Jpeg));
    }
    let plasma = deb(cache, "plasma-workspace-wallpapers", "usr/share/wallpapers");
    for (k, name) in fmnist_ood::sources::PLASMA_PHOTOS.iter().enumerate() {
        // The first is a smaller copy of GCompris' first photo: the same photo, counted once.
        let img = if k == 0 {
            photo(32, 40, 100)
        } else {
            photo(80, 128, 140 + k as u32)
        };
        write(&plasma.join(name), &encode(&img, image::ImageFormat::Jpeg));
    }
}

/// OpenArena's texture pack (a zip with a non-image entry) and MATE backgrounds.
pub fn write_game_textures_and_backgrounds(cache: &Path) {
    let oa = deb(
        cache,
        "openarena-081-textures",
        "usr/share/games/openarena/baseoa",
    );
    let pk3 = zip_of(&[
        (
            "textures/a/wall.tga",
            encode(&picture(64, 64, 50), image::ImageFormat::Tga),
        ),
        (
            "textures/a/floor.jpg",
            encode(&picture(60, 80, 51), image::ImageFormat::Jpeg),
        ),
        (
            "textures/b/tiny.png",
            encode(&picture(8, 8, 52), image::ImageFormat::Png),
        ),
        ("textures/b/readme.txt", b"not an image".to_vec()),
    ]);
    write(&oa.join("pak4-textures.pk3"), &pk3);
    let mate = deb(
        cache,
        "mate-backgrounds",
        "usr/share/backgrounds/mate/nature",
    );
    write(
        &mate.join("Garden.jpg"),
        &encode(&picture(150, 200, 60), image::ImageFormat::Jpeg),
    );
    write(
        &mate.join("Dune.jpg"),
        &encode(&picture(160, 120, 61), image::ImageFormat::Jpeg),
    );
}

pub fn npy_u8(path: &Path) -> Array4<u8> {
    fmnist_ood::read_images(path).unwrap()
}

pub fn npy_i64(path: &Path) -> Array1<i64> {
    Array1::<i64>::read_npy(std::fs::File::open(path).unwrap()).unwrap()
}

pub fn std_dev(img: ndarray::ArrayView3<u8>) -> f64 {
    let n = img.len() as f64;
    let m = img.iter().map(|&v| v as f64).sum::<f64>() / n;
    (img.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / n).sqrt()
}
