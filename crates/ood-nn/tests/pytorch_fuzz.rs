//! Fuzzing of the `torch.save` reader (zip and legacy formats: the pickle VM with torch hooks,
//! zip entries, storages and views) with proptest, seeded with the golden WRN-10-1 checkpoints.
//! Properties: no panic and no abort in libtorch on mutated bytes, spliced bytes or any
//! truncation; every error names the file.
//!
//! Cases per property: `FUZZ_CASES` (default 32, to keep CI fast). The run recorded in
//! docs/formats.md: `FUZZ_CASES=1000 cargo test --workspace --locked --test pytorch_fuzz`.
use std::path::PathBuf;

use ood_nn::pytorch::load_state_dict;
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32)
}

fn seed(zip: bool) -> Vec<u8> {
    let name = if zip {
        "wrn10_zip.pt"
    } else {
        "wrn10_legacy.pt"
    };
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    std::fs::read(p).unwrap()
}

/// Loads `bytes` as a checkpoint file; an error must name it.
fn survives(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("fuzzed.pt");
    std::fs::write(&p, bytes).unwrap();
    if let Err(e) = load_state_dict(&p) {
        let e = e.to_string();
        assert!(e.contains("fuzzed.pt"), "error names no file: {e}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_checkpoints_never_panic(
        zip in any::<bool>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut b = seed(zip);
        for (at, v) in edits {
            let i = at.index(b.len());
            b[i] = v;
        }
        survives(&b);
    }

    #[test]
    fn spliced_checkpoints_never_panic(
        zip in any::<bool>(),
        at in any::<prop::sample::Index>(),
        cut in 0usize..64,
        insert in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut b = seed(zip);
        let i = at.index(b.len());
        let end = (i + cut).min(b.len());
        b.splice(i..end, insert);
        survives(&b);
    }

    #[test]
    fn truncated_checkpoints_are_errors(zip in any::<bool>(), at in any::<prop::sample::Index>()) {
        let b = seed(zip);
        let n = at.index(b.len());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fuzzed.pt");
        std::fs::write(&p, &b[..n]).unwrap();
        // Both formats end with data every load needs (the zip directory, the last storage).
        let e = load_state_dict(&p).err().map(|e| e.to_string());
        prop_assert!(e.as_ref().is_some_and(|e| e.contains("fuzzed.pt")), "{n} bytes: {e:?}");
    }
}
