//! Registry lookups: search order of the local places, verification of found files, and the
//! messages for missing datasets.

use std::path::Path;

use ood_data::cache::{Cache, Locations};
use ood_data::registry::{self, Outcome, Place};
use ood_data::Error;

fn locations(root: &Path) -> Locations {
    Locations {
        cache: Cache::new(root.join("cache")),
        shared_data: Some(root.join("shared")),
        system_root: root.join("sys"),
    }
}

fn touch(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn lookup_prefers_system_then_cached_package_then_shared_then_downloads() {
    let tmp = tempfile::tempdir().unwrap();
    let loc = locations(tmp.path());
    let fm = registry::get("fmnist").unwrap();
    let names: Vec<&str> = fm.files.iter().map(|f| f.name).collect();
    assert!(fm.locate(&loc).is_none());

    let put_all = |dir: &Path| names.iter().for_each(|n| touch(&dir.join(n), b"x"));
    put_all(&loc.cache.downloads("fmnist"));
    assert_eq!(fm.locate(&loc).unwrap().1, Place::Downloads);
    put_all(
        &loc.cache
            .deb_package("dataset-fashion-mnist")
            .join("usr/share/datasets/fashion-mnist"),
    );
    assert_eq!(fm.locate(&loc).unwrap().1, Place::CacheDeb);
    put_all(&loc.system_root.join("usr/share/datasets/fashion-mnist"));
    let (dir, place) = fm.locate(&loc).unwrap();
    assert_eq!(
        (dir, place),
        (
            loc.system_root.join("usr/share/datasets/fashion-mnist"),
            Place::System
        )
    );

    // A directory missing one file does not count.
    let mn = registry::get("mnist-test").unwrap();
    touch(
        &tmp.path().join("shared/mnist/t10k-images-idx3-ubyte.gz"),
        b"x",
    );
    assert!(mn.locate(&loc).is_none());
    touch(
        &tmp.path().join("shared/mnist/t10k-labels-idx1-ubyte.gz"),
        b"x",
    );
    assert_eq!(mn.locate(&loc).unwrap().1, Place::Shared);
}

#[test]
fn missing_dataset_error_names_the_places_and_the_remedy() {
    let tmp = tempfile::tempdir().unwrap();
    let loc = locations(tmp.path());
    let err = registry::get("omniglot-small")
        .unwrap()
        .require(&loc)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("omniglot-small is missing"), "{err}");
    assert!(
        err.contains(&tmp.path().join("shared/omniglot").display().to_string()),
        "{err}"
    );
    assert!(
        err.contains(
            &tmp.path()
                .join("cache/downloads/omniglot-small")
                .display()
                .to_string()
        ),
        "{err}"
    );
    assert!(err.contains("eood data fetch omniglot-small"), "{err}");
    let err = registry::get("mate-backgrounds")
        .unwrap()
        .require(&loc)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("scripts/fetch-sources.sh") && err.contains("mate-backgrounds"),
        "{err}"
    );
}

#[test]
fn verify_rejects_a_corrupted_copy_and_reports_unrecorded_digests() {
    let tmp = tempfile::tempdir().unwrap();
    let loc = locations(tmp.path());
    let om = registry::get("omniglot-small").unwrap();
    for f in om.files {
        touch(
            &loc.cache.downloads("omniglot-small").join(f.name),
            b"not the real zip",
        );
    }
    match om.verify(&loc) {
        Err(Error::Checksum { path, expected, .. }) => {
            assert!(path.ends_with("images_background_small1.zip"));
            assert_eq!(expected, om.files[0].sha256[0]);
        }
        other => panic!("expected a checksum error, got {other:?}"),
    }
    // A gzip file whose content digest differs is rejected too (MNIST copies are checked by content).
    let mn = registry::get("mnist-test").unwrap();
    for f in mn.files {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut e, b"fake idx").unwrap();
        touch(
            &tmp.path().join("shared/mnist").join(f.name),
            &e.finish().unwrap(),
        );
    }
    let err = mn.verify(&loc).unwrap_err().to_string();
    assert!(
        err.contains("checksum mismatch") && err.contains("decompressed sha256"),
        "{err}"
    );

    // No digest recorded (Places365): present and reported unchecked with its SHA-256.
    let pl = registry::get("places365").unwrap();
    touch(
        &loc.cache.downloads("places365").join("test_256.tar"),
        b"abc",
    );
    let checks = pl.verify(&loc).unwrap();
    assert_eq!(
        checks[0].outcome,
        Outcome::Unchecked(
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into()
        )
    );
}

#[test]
fn fetch_of_a_present_dataset_touches_no_network() {
    let tmp = tempfile::tempdir().unwrap();
    let loc = locations(tmp.path());
    let sk = registry::get("sklearn-images").unwrap();
    let dir = loc
        .cache
        .deb_package("python3-sklearn")
        .join("usr/lib/python3/dist-packages/sklearn/datasets/images");
    touch(&dir.join("china.jpg"), b"x");
    touch(&dir.join("flower.jpg"), b"x");
    assert_eq!(
        registry::fetch(sk, &loc, false).unwrap(),
        (dir, Place::CacheDeb)
    );
}

/// The real kept copies, when this checkout has them (`../shared/data`): every digest matches.
#[test]
fn shared_copies_verify_when_present() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if !shared.is_dir() {
        eprintln!("skipped: no {}", shared.display());
        return;
    }
    let loc = Locations {
        cache: Cache::new("/nonexistent"),
        shared_data: Some(shared),
        system_root: "/nonexistent".into(),
    };
    for name in ["mnist-test", "notmnist-test", "omniglot-small"] {
        for c in registry::get(name).unwrap().verify(&loc).unwrap() {
            assert!(
                matches!(c.outcome, Outcome::FileDigest(_)),
                "{name}: {:?}",
                c.outcome
            );
        }
    }
}
