//! The Fashion-MNIST OOD builder on small synthetic sources written in the real formats (IDX gzip,
//! PNG/JPEG/TGA, zip archives, GIMP .pat) and laid out where the real ones live (Debian package
//! trees in the cache, the shared data folder).

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array4, Axis};
use ndarray_npy::ReadNpyExt;
use ood_data::cache::{Cache, Locations};
use ood_data::fmnist_ood::{self, BuildConfig, OOD_TEST_SETS, VALIDATION_SETS};

const TRAIN: usize = 300;
const TEST: usize = 50;

fn config(seed: u64) -> BuildConfig {
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
    }
}

// ---- writers of the real formats ----------------------------------------------------------

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn idx_images(n: usize, salt: usize) -> (Vec<u8>, Array4<u8>) {
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

fn idx_labels(n: usize) -> (Vec<u8>, Array1<i64>) {
    let y = Array1::from_iter((0..n).map(|i| (i % 10) as i64));
    let mut b = vec![0, 0, 8, 1];
    b.extend((n as u32).to_be_bytes());
    b.extend(y.iter().map(|&v| v as u8));
    (gz(&b), y)
}

/// A textured gray/RGB image: gradients plus a deterministic pattern (high local contrast).
fn picture(h: u32, w: u32, seed: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        let v = ((x * 13 + y * 7 + seed * 17) ^ (x * y + seed)) % 256;
        image::Rgb([v as u8, ((v + x) % 256) as u8, ((v * 3 + y) % 256) as u8])
    })
}

fn encode(img: &image::RgbImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn zip_of(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        z.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap().into_inner()
}

fn pat(name: &str, w: u32, h: u32, bpp: u32, pixels: &[u8]) -> Vec<u8> {
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
fn omniglot_png(k: u32) -> Vec<u8> {
    let img = image::GrayImage::from_fn(105, 105, |x, y| {
        let on = (x as i32 - 52).abs() < 4 + k as i32 || (y as i32 - 30 - 5 * k as i32).abs() < 3;
        image::Luma([if on { 0 } else { 255 }])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    loc: Locations,
    fm_train: Array4<u8>,
    fm_train_y: Array1<i64>,
    fm_test: Array4<u8>,
    mnist: Array4<u8>,
}

fn deb(cache: &Path, package: &str, dir: &str) -> PathBuf {
    cache.join("sources/deb").join(package).join(dir)
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let cache = root.join("cache");
    let shared = root.join("shared");

    let fm = deb(
        &cache,
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

    let gimp = deb(&cache, "gimp-data", "usr/share/gimp/2.0/patterns");
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

    let sk = deb(
        &cache,
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
            &encode(&picture(100, 140, 20 + k as u32), fmt),
        );
    }
    let skl = deb(
        &cache,
        "python3-sklearn",
        "usr/lib/python3/dist-packages/sklearn/datasets/images",
    );
    write(
        &skl.join("china.jpg"),
        &encode(&picture(90, 120, 40), image::ImageFormat::Jpeg),
    );
    write(
        &skl.join("flower.jpg"),
        &encode(&picture(90, 120, 41), image::ImageFormat::Jpeg),
    );

    let oa = deb(
        &cache,
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
        &cache,
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

fn npy_u8(path: &Path) -> Array4<u8> {
    fmnist_ood::read_images(path).unwrap()
}

fn npy_i64(path: &Path) -> Array1<i64> {
    Array1::<i64>::read_npy(std::fs::File::open(path).unwrap()).unwrap()
}

fn std_dev(img: ndarray::ArrayView3<u8>) -> f64 {
    let n = img.len() as f64;
    let m = img.iter().map(|&v| v as f64).sum::<f64>() / n;
    (img.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / n).sqrt()
}

#[test]
fn build_follows_the_contract_and_is_deterministic() {
    let f = fixture();
    let out = f.root.join("cache/fmnist-ood");
    let m = fmnist_ood::build(&f.loc, &out, &config(7), false, false).unwrap();

    // Every file of the contract, with the recorded shape and SHA-256.
    let mut expected: Vec<String> = [
        "train_x",
        "train_y",
        "train_idx",
        "val_x",
        "val_y",
        "val_idx",
        "test_x",
        "test_y",
        "aux_outliers",
    ]
    .iter()
    .map(|n| format!("{n}.npy"))
    .collect();
    expected.extend(OOD_TEST_SETS.iter().map(|n| format!("ood_test/{n}.npy")));
    expected.extend(VALIDATION_SETS.iter().map(|n| format!("ood_val/{n}.npy")));
    let mut recorded: Vec<String> = m.arrays.keys().cloned().collect();
    expected.sort();
    recorded.sort();
    assert_eq!(recorded, expected);
    for (rel, a) in &m.arrays {
        assert_eq!(
            ood_data::download::sha256_file(&out.join(rel)).unwrap(),
            a.sha256,
            "{rel}"
        );
        if a.shape.len() == 4 {
            assert_eq!(&a.shape[1..], &[28, 28, 1], "{rel}");
            assert_eq!(npy_u8(&out.join(rel)).shape(), a.shape.as_slice());
        }
    }
    assert!(out.join("manifest.json").is_file());
    assert_eq!(
        fmnist_ood::verify_built(&out).unwrap().len(),
        expected.len()
    );

    // The split: disjoint, complete, seeded, and pixels/labels follow their indices.
    let tr = npy_i64(&out.join("train_idx.npy"));
    let va = npy_i64(&out.join("val_idx.npy"));
    assert_eq!((tr.len(), va.len()), (TRAIN - 30, 30));
    let all: HashSet<i64> = tr.iter().chain(va.iter()).copied().collect();
    assert_eq!(all.len(), TRAIN);
    let va_u: Vec<usize> = va.iter().map(|&i| i as usize).collect();
    assert_eq!(
        npy_u8(&out.join("val_x.npy")),
        f.fm_train.select(Axis(0), &va_u)
    );
    assert_eq!(
        npy_i64(&out.join("val_y.npy")),
        f.fm_train_y.select(Axis(0), &va_u)
    );
    let tr_u: Vec<usize> = tr.iter().map(|&i| i as usize).collect();
    assert_eq!(
        npy_u8(&out.join("train_x.npy")),
        f.fm_train.select(Axis(0), &tr_u)
    );
    assert_eq!(npy_u8(&out.join("test_x.npy")), f.fm_test);
    assert_eq!(npy_u8(&out.join("ood_test/mnist.npy")), f.mnist);

    // Omniglot: black-on-white strokes became white on black.
    let om = npy_u8(&out.join("ood_test/omniglot.npy"));
    assert_eq!(om.shape()[0], 6);
    for img in om.outer_iter() {
        assert_eq!(img[[0, 0, 0]], 0, "background must be black");
        assert!(img.iter().any(|&v| v > 200), "strokes must be bright");
    }

    // Crop sets: requested sizes, nothing near-constant, the flat pattern never used.
    for (rel, n) in [
        ("ood_test/textures.npy", 30),
        ("ood_test/photo_crop.npy", 20),
        ("ood_test/photo_resize.npy", 20),
        ("aux_outliers.npy", 50),
    ] {
        let x = npy_u8(&out.join(rel));
        assert_eq!(x.shape()[0], n, "{rel}");
        for img in x.outer_iter() {
            assert!(std_dev(img) >= 10.0, "{rel}: a near-constant crop was kept");
        }
    }
    let tex = &m.sets["ood_test/textures"]["gimp"]["stats"]["per_source"];
    assert_eq!(tex[1], serde_json::json!(["Legacy/flat.pat", 0]), "{tex}");
    let oa = &m.sets["aux_outliers"]["openarena"]["stats"]["sources_too_small"];
    assert_eq!(oa, &serde_json::json!(["textures/b/tiny.png"]));

    // Auxiliary outliers share no image with any test set.
    let mut test_imgs = HashSet::new();
    for set in OOD_TEST_SETS {
        for img in npy_u8(&out.join(format!("ood_test/{set}.npy"))).outer_iter() {
            test_imgs.insert(img.iter().copied().collect::<Vec<u8>>());
        }
    }
    for img in npy_u8(&out.join("aux_outliers.npy")).outer_iter() {
        assert!(!test_imgs.contains(&img.iter().copied().collect::<Vec<u8>>()));
    }

    // Every source read is recorded with its digest.
    assert!(m
        .sources
        .iter()
        .any(|s| s["dataset"] == "openarena-textures"));
    assert!(m
        .sources
        .iter()
        .all(|s| s["sha256"].as_str().is_some_and(|d| d.len() == 64)));

    // Same seed: the same bytes. Another seed: another split and other crops, same MNIST.
    let again = fmnist_ood::build(&f.loc, &f.root.join("again"), &config(7), false, false).unwrap();
    assert_eq!(again.arrays, m.arrays);
    let other = fmnist_ood::build(&f.loc, &f.root.join("other"), &config(8), false, false).unwrap();
    for rel in [
        "val_idx.npy",
        "ood_test/textures.npy",
        "aux_outliers.npy",
        "ood_val/gaussian.npy",
    ] {
        assert_ne!(other.arrays[rel].sha256, m.arrays[rel].sha256, "{rel}");
    }
    assert_eq!(
        other.arrays["ood_test/mnist.npy"],
        m.arrays["ood_test/mnist.npy"]
    );
}

#[test]
fn validation_sets_come_from_the_validation_split_only() {
    let f = fixture();
    let out = f.root.join("b");
    fmnist_ood::build(&f.loc, &out, &config(3), false, false).unwrap();
    let val: HashSet<Vec<u8>> = npy_u8(&out.join("val_x.npy"))
        .outer_iter()
        .map(|i| i.iter().map(|&v| 255 - v).collect())
        .collect();
    for img in npy_u8(&out.join("ood_val/inverted.npy")).outer_iter() {
        assert!(
            val.contains(&img.iter().copied().collect::<Vec<u8>>()),
            "inverted image not from val split"
        );
    }
}

#[test]
fn missing_sources_are_named_with_how_to_get_them() {
    let f = fixture();
    std::fs::remove_dir_all(f.root.join("cache/sources/deb/gimp-data")).unwrap();
    std::fs::remove_dir_all(f.root.join("shared/notmnist")).unwrap();
    let out = f.root.join("cache/fmnist-ood");
    let err = fmnist_ood::build(&f.loc, &out, &config(1), false, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("2 missing source(s)"), "{err}");
    assert!(
        err.contains("gimp-patterns is missing") && err.contains("gimp-data"),
        "{err}"
    );
    assert!(err.contains("scripts/fetch-sources.sh"), "{err}");
    assert!(
        err.contains("notmnist-test is missing") && err.contains("eood data fetch notmnist-test"),
        "{err}"
    );
    assert!(!out.exists());

    // With allow_missing the rest is built and the gaps are recorded.
    let m = fmnist_ood::build(&f.loc, &out, &config(1), true, false).unwrap();
    assert_eq!(
        m.missing,
        vec![
            "ood_test/notmnist".to_string(),
            "ood_test/textures".to_string()
        ]
    );
    assert!(!out.join("ood_test/textures.npy").exists());
    assert!(out.join("ood_test/mnist.npy").exists() && out.join("aux_outliers.npy").exists());

    // Fashion-MNIST is never optional.
    std::fs::remove_dir_all(f.root.join("cache/sources/deb/dataset-fashion-mnist")).unwrap();
    let err = fmnist_ood::build(&f.loc, &out, &config(1), true, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("fmnist is missing") && err.contains("dataset-fashion-mnist"),
        "{err}"
    );
}

#[test]
fn failed_build_keeps_the_previous_one_and_leaves_no_temporary_folder() {
    let f = fixture();
    let out = f.root.join("cache/fmnist-ood");
    let first = fmnist_ood::build(&f.loc, &out, &config(5), false, false).unwrap();
    // Corrupt a source: a truncated IDX file.
    let mnist = f.root.join("shared/mnist/t10k-images-idx3-ubyte.gz");
    let (bytes, _) = idx_images(40, 2);
    let raw = {
        use std::io::Read;
        let mut v = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut v)
            .unwrap();
        v
    };
    std::fs::write(&mnist, gz(&raw[..raw.len() - 100])).unwrap();
    let err = fmnist_ood::build(&f.loc, &out, &config(6), false, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("t10k-images-idx3-ubyte.gz"), "{err}");
    assert_eq!(
        fmnist_ood::read_manifest(&out).unwrap().arrays,
        first.arrays
    );
    assert_eq!(
        fmnist_ood::verify_built(&out).unwrap().len(),
        first.arrays.len()
    );
    let leftovers: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // A tampered array is caught by verification.
    let test_x = out.join("test_x.npy");
    let mut b = std::fs::read(&test_x).unwrap();
    let last = b.len() - 1;
    b[last] ^= 1;
    std::fs::write(&test_x, b).unwrap();
    assert!(matches!(
        fmnist_ood::verify_built(&out),
        Err(ood_data::Error::Checksum { .. })
    ));
}
