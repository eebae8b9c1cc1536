//! Fuzzing of the checkpoint reader (JSON sidecar + safetensors) with proptest: mutated sidecar
//! text, sidecar fields set to hostile values, and mutated safetensors headers (with the
//! sidecar's SHA-256 updated, so the safetensors parser itself is reached). Properties: no
//! panic, no abort in libtorch; a sidecar declaring sizes no machine has is an error, never an
//! allocation; every error names a file.
//!
//! Cases per property: `FUZZ_CASES` (default 48, to keep CI fast; proptest runs exactly that many
//! per property or fails). A longer run: `FUZZ_CASES=2000 cargo test --workspace --test sidecar_fuzz -- --nocapture`.
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ood_nn::checkpoint::{self, CheckpointMeta};
use ood_nn::tch::{nn::VarStore, Device};
use ood_nn::{state_dict, WideResNet, WrnConfig};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

/// A valid checkpoint of a tiny WRN-10-1: (sidecar text, weights file name, weights bytes).
fn valid() -> &'static (String, String, Vec<u8>) {
    static V: OnceLock<(String, String, Vec<u8>)> = OnceLock::new();
    V.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("m.json");
        let arch = WrnConfig {
            depth: 10,
            widen_factor: 1,
            dropout: 0.0,
            num_classes: 3,
            in_channels: 1,
        };
        let vs = VarStore::new(Device::Cpu);
        let _net = WideResNet::new(&vs.root(), &arch).unwrap();
        let mut meta = CheckpointMeta::new(arch, serde_json::Value::Null, 0);
        checkpoint::save(&json, &mut meta, &state_dict::named_tensors(&vs), None).unwrap();
        let weights = std::fs::read(dir.path().join(&meta.weights)).unwrap();
        (
            std::fs::read_to_string(&json).unwrap(),
            meta.weights,
            weights,
        )
    })
}

/// Writes a checkpoint from parts into a fresh directory and loads it.
fn load(sidecar: &str, weights_name: &str, weights: &[u8]) -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("m.json");
    std::fs::write(&json, sidecar).unwrap();
    std::fs::write(dir.path().join(weights_name), weights).unwrap();
    let result = checkpoint::load(&json).map(|ck| {
        // what a loaded checkpoint is used for: building the network it declares
        let vs = VarStore::new(Device::Cpu);
        if let Ok(_net) = WideResNet::new(&vs.root(), &ck.meta.architecture) {
            let _ = state_dict::load_into(&vs, &ck.weights);
        }
    });
    let err = result.err().map(|e| e.to_string()).unwrap_or_default();
    (dir, json, err)
}

fn names_a_file(err: &str, json: &Path) {
    if !err.is_empty() {
        assert!(
            // the sidecar, or the weights file it names, both in the checkpoint's folder
            err.contains(&*json.parent().unwrap().to_string_lossy()),
            "error names no file: {err}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn mutated_sidecar_text_never_panics(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)
    ) {
        let (text, name, weights) = valid();
        let mut bytes = text.as_bytes().to_vec();
        for (i, b) in &edits {
            let at = i.index(bytes.len());
            bytes[at] = *b;
        }
        let text = String::from_utf8_lossy(&bytes);
        let (_dir, json, err) = load(&text, name, weights);
        names_a_file(&err, &json);
    }

    #[test]
    fn hostile_sidecar_fields_are_errors_not_allocations(
        field in prop::sample::select(vec!["depth", "widen_factor", "num_classes", "in_channels", "epoch", "step"]),
        value in prop_oneof![
            Just(i64::MAX), Just(i64::MIN), Just(0i64), Just(-1), Just(1_000_000_000),
            Just(1_000_000_000_000), 1i64..5000
        ],
    ) {
        let (text, name, weights) = valid();
        let mut meta: serde_json::Value = serde_json::from_str(text).unwrap();
        let target = if matches!(field, "epoch" | "step") {
            &mut meta[field]
        } else {
            &mut meta["architecture"][field]
        };
        *target = serde_json::json!(value);
        let (_dir, json, err) = load(&meta.to_string(), name, weights);
        names_a_file(&err, &json);
        if matches!(field, "depth" | "widen_factor" | "num_classes") && value > 100_000 {
            prop_assert!(err.contains("architecture"), "{field} = {value} accepted: {err}");
        }
    }

    #[test]
    fn mutated_safetensors_headers_never_panic(
        edits in proptest::collection::vec((0usize..256, any::<u8>()), 1..6)
    ) {
        let (text, name, weights) = valid();
        let mut w = weights.clone();
        for (i, b) in &edits {
            // the 8-byte header length and the JSON header that follows it
            let at = *i % w.len().min(256);
            w[at] = *b;
        }
        let mut meta: serde_json::Value = serde_json::from_str(text).unwrap();
        meta["weights_sha256"] = serde_json::json!(hex::encode(Sha256::digest(&w)));
        let (_dir, json, err) = load(&meta.to_string(), name, &w);
        names_a_file(&err, &json);
    }
}
