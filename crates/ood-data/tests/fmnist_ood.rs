//! The Fashion-MNIST OOD builder on small synthetic sources written in the real formats (IDX gzip,
//! PNG/JPEG/TGA, zip archives, GIMP .pat) and laid out where the real ones live (Debian package
//! trees in the cache, the shared data folder).

mod common;

use std::collections::HashSet;

use ndarray::Axis;
use ood_data::fmnist_ood::{self, PartRole, OOD_TEST_SETS, VALIDATION_SETS};

use common::*;

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

    // The photo sets: every collection read, copies of one photo counted once, near/far marked.
    let ph = &m.sets["ood_test/photo_crop"];
    assert_eq!(ph["distinct_photos"], PHOTOS, "{ph}");
    assert_eq!(
        ph["photos_read"],
        serde_json::json!({"skimage-data": 9, "sklearn-images": 2, "gcompris-photos": 6,
            "lomiri-photos": 14, "plasma-photos": 11})
    );
    let dup = &ph["duplicates_dropped"];
    assert_eq!(dup.as_array().unwrap().len(), 1, "{dup}");
    assert_eq!(
        dup[0]["dropped"],
        "plasma-photos/BytheWater/contents/images/2560x1600.jpg"
    );
    assert_eq!(
        dup[0]["kept"],
        "gcompris-photos/categorization.rcc:gcompris/src/activities/categorization/resource/images/fishes/fish1.webp"
    );
    let used: Vec<&str> = ph["crops"]["stats"]["per_source"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_str().unwrap())
        .collect();
    assert_eq!(used.len(), PHOTOS);
    assert!(used
        .iter()
        .all(|n| !n.contains("alphabets") && !n.contains("Gogh")));
    for (set, kind) in [
        ("mnist", "far"),
        ("omniglot", "far"),
        ("textures", "near"),
        ("photo_resize", "near"),
    ] {
        assert_eq!(m.sets[&format!("ood_test/{set}")]["kind"], kind, "{set}");
    }

    // Sources by role, recorded and disjoint, in the manifest on disk too.
    let disk = fmnist_ood::read_manifest(&out).unwrap();
    assert_eq!(disk.parts, m.parts);
    assert_eq!(disk.parts["aux_outliers"].role, PartRole::Auxiliary);
    assert_eq!(disk.parts["ood_test/photo_crop"].role, PartRole::Test);
    fmnist_ood::check_disjoint(&disk.parts, &disk.sources).unwrap();
    let mut tampered = disk.sources.clone();
    let test_file = tampered
        .iter()
        .find(|s| s["dataset"] == "lomiri-photos")
        .unwrap()
        .clone();
    let mut copy = test_file.clone();
    copy["dataset"] = "mate-backgrounds".into();
    tampered.push(copy);
    let e = fmnist_ood::check_disjoint(&disk.parts, &tampered).unwrap_err();
    assert_eq!(e.name, test_file["sha256"].as_str().unwrap());

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

#[test]
fn an_auxiliary_photo_that_is_a_test_photo_fails_the_build() {
    let f = fixture();
    // A MATE background that is a Lomiri test photo at another size and in another format.
    let mate = deb(
        &f.root.join("cache"),
        "mate-backgrounds",
        "usr/share/backgrounds/mate/nature",
    );
    write(
        &mate.join("Copy.png"),
        &encode(&photo(140, 180, 121), image::ImageFormat::Png),
    );
    let out = f.root.join("cache/fmnist-ood");
    let err = fmnist_ood::build(&f.loc, &out, &config(2), false, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("auxiliary source Copy.png is the same photo as test photo lomiri-photos/Dragonfly_by_Bolly.jpg"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn too_few_distinct_photos_fail_the_build() {
    let f = fixture();
    let cfg = fmnist_ood::BuildConfig {
        min_distinct_photos: PHOTOS + 1,
        ..config(2)
    };
    let err = fmnist_ood::build(&f.loc, &f.root.join("o"), &cfg, false, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "{PHOTOS} distinct photos, at least {} needed",
            PHOTOS + 1
        )),
        "{err}"
    );
}
