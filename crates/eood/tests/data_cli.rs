//! `eood data` on tiny fixtures: cache selection, listing, missing and corrupted datasets (exit
//! code 2, one-line errors), montages of a .npy file.

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;

/// `eood data ...` isolated from the machine: no shared data, no inherited cache variable.
fn eood(cwd: &Path) -> Command {
    let mut c = Command::cargo_bin("eood").unwrap();
    c.current_dir(cwd)
        .env("EOOD_SHARED_DATA", "")
        .env_remove("EOOD_CACHE")
        .arg("data");
    c
}

#[test]
fn cache_comes_from_the_flag_then_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let flag = tmp.path().join("flag-cache");
    eood(tmp.path())
        .args(["path", "cache", "--cache"])
        .arg(&flag)
        .assert()
        .success()
        .stdout(format!("{}\n", flag.display()));
    let env = tmp.path().join("env-cache");
    eood(tmp.path())
        .env("EOOD_CACHE", &env)
        .args(["path", "cache"])
        .assert()
        .success()
        .stdout(format!("{}\n", env.display()));
    // The flag beats the environment.
    eood(tmp.path())
        .env("EOOD_CACHE", &env)
        .args(["path", "cache", "--cache"])
        .arg(&flag)
        .assert()
        .success()
        .stdout(format!("{}\n", flag.display()));
}

#[test]
fn list_shows_every_registered_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let out = eood(tmp.path())
        .arg("list")
        .arg("--cache")
        .arg(tmp.path())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.starts_with(&format!("cache: {} (from --cache)", tmp.path().display())),
        "{out}"
    );
    for name in [
        "fmnist",
        "mnist-test",
        "notmnist-test",
        "omniglot-small",
        "cifar10",
        "cifar100",
        "svhn",
        "textures-dtd",
        "places365",
        "lsun-crop",
        "lsun-resize",
        "isun",
        "tiny-images",
        "300k-random",
        "gimp-patterns",
        "skimage-data",
        "sklearn-images",
        "openarena-textures",
        "mate-backgrounds",
        "fmnist-ood",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("{name} "))),
            "{name} not listed:\n{out}"
        );
    }
    assert!(out.contains("not built (eood data build fmnist-ood)"));
}

#[test]
fn missing_and_unknown_datasets_fail_with_one_line_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    eood(tmp.path())
        .args(["path", "mnist-test", "--cache"])
        .arg(tmp.path())
        .assert()
        .code(2)
        .stderr(
            predicate::str::starts_with("error: mnist-test is missing")
                .and(predicate::str::contains("eood data fetch mnist-test")),
        );
    eood(tmp.path())
        .args(["verify", "nope"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown dataset `nope`"));
    eood(tmp.path())
        .args(["build", "fmnist-ood", "--cache"])
        .arg(tmp.path())
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("missing source(s)")
                .and(predicate::str::contains("scripts/fetch-sources.sh")),
        );
    assert!(!tmp.path().join("fmnist-ood").exists());
    eood(tmp.path())
        .args(["show", "fmnist-ood", "--cache"])
        .arg(tmp.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not built"));
}

#[test]
fn verify_reports_a_corrupted_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("downloads/omniglot-small");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("images_background_small1.zip"), b"garbage").unwrap();
    std::fs::write(dir.join("images_background_small2.zip"), b"garbage").unwrap();
    eood(tmp.path())
        .args(["verify", "omniglot-small", "--cache"])
        .arg(tmp.path())
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("checksum mismatch")
                .and(predicate::str::contains("images_background_small1.zip")),
        );
}

#[test]
fn show_writes_a_png_montage_of_a_npy_file() {
    let tmp = tempfile::tempdir().unwrap();
    let x = ndarray::Array4::<u8>::from_shape_fn((5, 28, 28, 1), |(i, y, _, _)| (i * 40 + y) as u8);
    let npy = tmp.path().join("five.npy");
    ndarray_npy::write_npy(&npy, &x).unwrap();
    let png = tmp.path().join("m/five.png");
    eood(tmp.path())
        .args(["show"])
        .arg(&npy)
        .arg("--out")
        .arg(&png)
        .assert()
        .success()
        .stdout(predicate::str::contains("(5 images, showing 5)"));
    let b = std::fs::read(&png).unwrap();
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n");
    // IHDR: 5 columns of (28 * 2 + 2) + 2 wide, one row of 58 + 2 high.
    let w = u32::from_be_bytes(b[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(b[20..24].try_into().unwrap());
    assert_eq!((w, h), (5 * 58 + 2, 60));
    // A file that is not a 4-d u8 array is a clear error.
    let bad = tmp.path().join("bad.npy");
    ndarray_npy::write_npy(&bad, &ndarray::Array1::<f64>::zeros(3)).unwrap();
    eood(tmp.path())
        .args(["show"])
        .arg(&bad)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bad.npy"));
}

#[test]
fn convert_writes_a_folder_as_a_preprocessed_npy_array() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("textures");
    for (class, (w, h), rgb) in [("a", (64, 40), [255u8, 0, 0]), ("b", (32, 32), [0, 0, 255])] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        image::RgbImage::from_pixel(w, h, image::Rgb(rgb))
            .save(root.join(class).join("x.png"))
            .unwrap();
    }
    let out = tmp.path().join("textures.npy");
    eood(tmp.path())
        .args(["convert"])
        .arg(&root)
        .arg("--out")
        .arg(&out)
        .assert()
        .success()
        .stderr(predicate::str::contains("wrote 2 images of 32x32x3"));
    let x: ndarray::Array4<u8> = ndarray_npy::read_npy(&out).unwrap();
    assert_eq!(x.shape(), &[2, 32, 32, 3]);
    // Shorter side 40 -> 32 then a centre crop: a constant image stays constant.
    assert_eq!(
        x.slice(ndarray::s![0, .., .., ..])
            .iter()
            .copied()
            .collect::<Vec<_>>()[..3],
        [255, 0, 0]
    );
    assert!(x.slice(ndarray::s![1, .., .., 2]).iter().all(|&v| v == 255));

    // Gray at 28: PIL's L = (299 R + 587 G + 114 B) / 1000 -> 76 for pure red.
    let gray = tmp.path().join("gray.npy");
    eood(tmp.path())
        .args(["convert", "--color", "gray", "--size", "28"])
        .arg(&root)
        .arg("--out")
        .arg(&gray)
        .assert()
        .success();
    let g: ndarray::Array4<u8> = ndarray_npy::read_npy(&gray).unwrap();
    assert_eq!(g.shape(), &[2, 28, 28, 1]);
    assert!(g.slice(ndarray::s![0, .., .., 0]).iter().all(|&v| v == 76));

    // A folder without images is one clear line, exit 2, and the old output is kept.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    eood(tmp.path())
        .args(["convert"])
        .arg(&empty)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no image files"));
    let again: ndarray::Array4<u8> = ndarray_npy::read_npy(&out).unwrap();
    assert_eq!(again, x);
}

/// LSUN-Crop as released (a folder of 36x36 JPEGs) is kept at 36x36 with `--resize none`, as the
/// code of record's test.py feeds it (ToTensor + Normalize, no resize or crop); the default
/// (shorter side 32 + centre crop) resized it before.
#[test]
fn convert_resize_none_keeps_lsun_crop_at_36x36() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("LSUN").join("test");
    std::fs::create_dir_all(&root).unwrap();
    for (i, v) in [40u8, 200].iter().enumerate() {
        // left half v, right half 255 - v: a resize would blend the border columns
        image::RgbImage::from_fn(36, 36, |x, _| {
            let g = if x < 18 { *v } else { 255 - v };
            image::Rgb([g, g, g])
        })
        .save(root.join(format!("{i}.jpg")))
        .unwrap();
    }
    let out = tmp.path().join("lsun_crop.npy");
    eood(tmp.path())
        .args(["convert", "--resize", "none"])
        .arg(&root)
        .arg("--out")
        .arg(&out)
        .assert()
        .success()
        .stderr(predicate::str::contains("wrote 2 images of 36x36x3"));
    let x: ndarray::Array4<u8> = ndarray_npy::read_npy(&out).unwrap();
    assert_eq!(x.shape(), &[2, 36, 36, 3]);
    // JPEG keeps flat areas within a few levels: the first column of image 0 is ~40.
    assert!(x
        .slice(ndarray::s![0, .., 0, ..])
        .iter()
        .all(|&v| v.abs_diff(40) <= 4));
    let resized = tmp.path().join("resized.npy");
    eood(tmp.path())
        .args(["convert"])
        .arg(&root)
        .arg("--out")
        .arg(&resized)
        .assert()
        .success();
    let r: ndarray::Array4<u8> = ndarray_npy::read_npy(&resized).unwrap();
    assert_eq!(r.shape(), &[2, 32, 32, 3]);
}
