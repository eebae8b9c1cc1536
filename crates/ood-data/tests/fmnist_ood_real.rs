//! The Fashion-MNIST OOD benchmark built from the real sources (`scripts/fetch-sources.sh`), when
//! they are present: ignored by default (CI has no real data). Run with
//! `EOOD_CACHE=<cache with sources/deb> cargo test --workspace --test fmnist_ood_real -- --ignored`.

use std::collections::BTreeMap;

use ood_data::cache::{Cache, Locations};
use ood_data::fmnist_ood::{self, BuildConfig, PartRole, MIN_DISTINCT_PHOTOS};

#[test]
#[ignore = "needs the real sources (scripts/fetch-sources.sh) and ~1 minute"]
fn the_real_photo_sets_have_307_distinct_photos_disjoint_from_the_auxiliary_outliers() {
    let cache = std::env::var("EOOD_CACHE").expect("EOOD_CACHE: a cache holding sources/deb");
    let shared = std::env::var("EOOD_SHARED_DATA").unwrap_or_else(|_| "../shared/data".into());
    let loc = Locations {
        cache: Cache::new(&cache),
        shared_data: Some(shared.into()),
        system_root: "/nonexistent".into(),
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("fmnist-ood");
    let t0 = std::time::Instant::now();
    let m = fmnist_ood::build(&loc, &out, &BuildConfig::default(), false, false).unwrap();
    eprintln!("built in {:.1} s", t0.elapsed().as_secs_f64());
    let ph = &m.sets["ood_test/photo_crop"];
    eprintln!(
        "{}",
        serde_json::to_string_pretty(&ph["photos_read"]).unwrap()
    );
    eprintln!(
        "{}",
        serde_json::to_string_pretty(&ph["duplicates_dropped"]).unwrap()
    );
    let distinct = ph["distinct_photos"].as_u64().unwrap() as usize;
    assert!(distinct >= MIN_DISTINCT_PHOTOS);
    assert_eq!(distinct, 307);
    assert_eq!(ph["duplicates_dropped"].as_array().unwrap().len(), 3);
    fmnist_ood::check_disjoint(&m.parts, &m.sources).unwrap();
    // No source file (by SHA-256) is read by a test part and by the auxiliary part.
    let mut role_of: BTreeMap<&str, PartRole> = BTreeMap::new();
    for p in m.parts.values() {
        for d in &p.datasets {
            role_of.insert(d, p.role);
        }
    }
    let mut by_sha: BTreeMap<&str, PartRole> = BTreeMap::new();
    for s in &m.sources {
        let role = role_of[s["dataset"].as_str().unwrap()];
        let prev = by_sha.insert(s["sha256"].as_str().unwrap(), role);
        assert!(prev.is_none_or(|p| p == role), "{s}");
    }
    for set in ["photo_crop", "photo_resize"] {
        assert_eq!(
            m.arrays[&format!("ood_test/{set}.npy")].shape,
            [5_000, 28, 28, 1]
        );
    }
    assert_eq!(m.sets["aux_outliers"]["count"], 60_000);
}
