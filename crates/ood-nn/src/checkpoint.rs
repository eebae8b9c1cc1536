//! Our own checkpoints: safetensors weights plus a JSON sidecar that describes them.
//!
//! A checkpoint is named by its sidecar, `<stem>.json`. It records the architecture, the training
//! configuration, seed, epoch, step, metrics and versions, and the file names and SHA-256 of
//! `<stem>.e<epoch>-s<step>.safetensors` (model variables, PyTorch names) and, for resuming,
//! `<stem>.e<epoch>-s<step>.optim.safetensors` (optimizer state).
//!
//! Crash safety: every file is written to a temporary name unique to the process
//! (`.<name>.<pid>.tmp`), fsync'd, and renamed; the weight files carry the epoch and step in their
//! names and are written *and fsync'd before* the sidecar is renamed into place, and superseded
//! ones are deleted only *after* it. A kill at any moment therefore leaves a sidecar that points
//! at complete files (the previous or the new checkpoint), which is what resuming needs. Temp
//! files of dead processes are removed by the next [`save`].
//!
//! Concurrency: a writer holds [`CheckpointLock`] (`<stem>.lock`, created exclusively, holding the
//! pid) for the whole run, so a second run on the same checkpoint fails at once; a lock left by a
//! process that no longer exists is taken over (the caller is told whose it was).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::data::InputSpec;
use crate::error::{Error, Result};
use crate::wrn::WrnConfig;

/// Value of [`CheckpointMeta::format`].
pub const FORMAT: &str = "eood-checkpoint";
pub const FORMAT_VERSION: u32 = 1;

/// Versions of what produced a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Versions {
    pub eood: String,
    pub tch: String,
    pub libtorch: String,
}

impl Default for Versions {
    fn default() -> Self {
        Self {
            eood: env!("CARGO_PKG_VERSION").into(),
            tch: "0.24.0".into(),
            libtorch: "2.11.0".into(),
        }
    }
}

/// The JSON sidecar.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub format: String,
    pub format_version: u32,
    pub architecture: WrnConfig,
    /// Input size and normalization the network was trained with.
    #[serde(default)]
    pub input: Option<InputSpec>,
    /// The training or fine-tuning configuration (free-form; written by the trainer).
    pub training: serde_json::Value,
    pub seed: u64,
    /// Epochs completed.
    pub epoch: u64,
    /// Optimizer steps completed.
    pub step: u64,
    /// E.g. `test_accuracy`, `train_loss`.
    pub metrics: BTreeMap<String, f64>,
    pub versions: Versions,
    /// Weights file, relative to the sidecar's directory, and its SHA-256 (hex).
    pub weights: String,
    pub weights_sha256: String,
    /// Optimizer state file and its SHA-256, when saved for resuming.
    pub optimizer: Option<String>,
    pub optimizer_sha256: Option<String>,
}

impl CheckpointMeta {
    /// A sidecar for `architecture`; files and hashes are filled in by [`save`].
    pub fn new(architecture: WrnConfig, training: serde_json::Value, seed: u64) -> Self {
        Self {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            architecture,
            input: None,
            training,
            seed,
            epoch: 0,
            step: 0,
            metrics: BTreeMap::new(),
            versions: Versions::default(),
            weights: String::new(),
            weights_sha256: String::new(),
            optimizer: None,
            optimizer_sha256: None,
        }
    }
}

/// A loaded checkpoint.
#[derive(Debug)]
pub struct Checkpoint {
    pub meta: CheckpointMeta,
    pub weights: Vec<(String, Tensor)>,
    pub optimizer: Option<Vec<(String, Tensor)>>,
}

fn stem_of(json: &Path) -> Result<(PathBuf, String)> {
    let dir = match json.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let stem = json
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|_| json.extension().is_some_and(|e| e == "json"))
        .ok_or_else(|| Error::Sidecar {
            path: json.into(),
            reason: "a checkpoint is named by its JSON sidecar (<name>.json)".into(),
        })?;
    Ok((dir, stem.to_owned()))
}

fn sha256_file(path: &Path) -> Result<String> {
    let (file, _) = ood_core::io::open_regular(path).map_err(|e| Error::io(path, e.source))?;
    ood_data::download::sha256_reader(std::io::BufReader::new(file)).map_err(|e| Error::io(path, e))
}

/// Largest sidecar read (a real one is a few KB): a hostile one is never read whole.
pub const MAX_SIDECAR_BYTES: u64 = 16 << 20;

/// Whether process `pid` exists (Linux: `/proc/<pid>`; elsewhere every pid counts as alive, so a
/// lock or temp file is never taken from a live run).
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// Exclusive right to write the checkpoint `<stem>.json` (see the module docs).
#[derive(Debug)]
pub struct CheckpointLock {
    path: PathBuf,
    /// The pid of a dead process whose stale lock was taken over.
    pub took_over: Option<u32>,
}

impl CheckpointLock {
    /// Takes `<stem>.lock` beside `json`, or fails with [`Error::Locked`] naming the holder.
    pub fn acquire(json: &Path) -> Result<Self> {
        use std::io::Write;
        let (dir, stem) = stem_of(json)?;
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let path = dir.join(format!("{stem}.lock"));
        let mut took_over = None;
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    writeln!(f, "{}", std::process::id())
                        .and_then(|_| f.sync_all())
                        .map_err(|e| Error::io(&path, e))?;
                    return Ok(Self { path, took_over });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    match text.trim().parse::<u32>() {
                        Ok(pid) if pid != std::process::id() && !process_alive(pid) => {
                            let _ = std::fs::remove_file(&path);
                            took_over = Some(pid);
                        }
                        // a live holder, or a lock being written this instant
                        Ok(pid) => return Err(Error::Locked { path, pid }),
                        Err(_) => return Err(Error::Locked { path, pid: 0 }),
                    }
                }
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
        Err(Error::Locked { path, pid: 0 })
    }
}

impl Drop for CheckpointLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Removes `.<name>.<pid>.tmp` files beside a checkpoint left by processes that are gone.
fn clean_stale_temps(dir: &Path, stem: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|n| n.strip_prefix('.'))
            .and_then(|n| n.strip_suffix(".tmp"))
        else {
            continue;
        };
        if !rest.starts_with(stem) {
            continue;
        }
        let pid = rest.rsplit('.').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| p != std::process::id() && !process_alive(p)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Writes `tensors` to `dir/name` through a temporary file unique to this process, fsync'd
/// before the rename; returns the file's SHA-256.
fn write_tensors(dir: &Path, name: &str, tensors: &[(String, Tensor)]) -> Result<String> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let contiguous: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                t.detach().to_device(tch::Device::Cpu).contiguous(),
            )
        })
        .collect();
    let written = Tensor::write_safetensors(&contiguous, &tmp)
        .map_err(|e| Error::torch(format!("writing {}", path.display()), e))
        .and_then(|()| {
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(&path, e))
        })
        .and_then(|()| sha256_file(&tmp));
    let sha = match written {
        Ok(sha) => sha,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    Ok(sha)
}

/// Saves a checkpoint named `json` (`<stem>.json`), filling in `meta`'s file names and hashes.
/// `optimizer` is the optimizer state needed to resume (see [`crate::sgd::Sgd::state`]).
pub fn save(
    json: &Path,
    meta: &mut CheckpointMeta,
    weights: &[(String, Tensor)],
    optimizer: Option<&[(String, Tensor)]>,
) -> Result<()> {
    let (dir, stem) = stem_of(json)?;
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    clean_stale_temps(&dir, &stem);
    let tag = format!("{stem}.e{:04}-s{}", meta.epoch, meta.step);
    meta.format = FORMAT.into();
    meta.format_version = FORMAT_VERSION;
    meta.weights = format!("{tag}.safetensors");
    meta.weights_sha256 = write_tensors(&dir, &meta.weights, weights)?;
    match optimizer {
        Some(state) => {
            let name = format!("{tag}.optim.safetensors");
            meta.optimizer_sha256 = Some(write_tensors(&dir, &name, state)?);
            meta.optimizer = Some(name);
        }
        None => {
            meta.optimizer = None;
            meta.optimizer_sha256 = None;
        }
    }
    let text = serde_json::to_string_pretty(meta).map_err(|e| Error::Sidecar {
        path: json.into(),
        reason: e.to_string(),
    })?;
    ood_core::io::write_atomic(
        json,
        |w| -> std::result::Result<(), ood_core::io::IoError> {
            use std::io::Write;
            w.write_all(text.as_bytes())
                .and_then(|_| w.write_all(b"\n"))
                .map_err(|e| ood_core::io::IoError::new(json, e))
        },
    )
    .map_err(|e| Error::io(json, e.source))?;
    // write_atomic synced the directory after its rename, so the renames are on disk before the
    // files they replace are deleted. Only now is the previous checkpoint of this name superseded.
    let keep = [Some(meta.weights.as_str()), meta.optimizer.as_deref()];
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let ours = name.starts_with(&format!("{stem}.e")) && name.ends_with(".safetensors");
            if ours && !keep.contains(&Some(name)) && is_tagged(&name[stem.len() + 1..]) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(())
}

/// `e<digits>-s<digits>.safetensors` or `...optim.safetensors`: only files [`save`] made.
fn is_tagged(rest: &str) -> bool {
    let rest = rest
        .trim_end_matches(".safetensors")
        .trim_end_matches(".optim");
    let Some((e, s)) = rest.split_once("-s") else {
        return false;
    };
    e.strip_prefix('e')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        && !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit())
}

/// Reads only the sidecar (at most [`MAX_SIDECAR_BYTES`]) and validates the architecture it
/// declares, so that no size in it reaches libtorch unchecked.
pub fn read_meta(json: &Path) -> Result<CheckpointMeta> {
    use std::io::Read;
    let (file, len) = ood_core::io::open_regular(json).map_err(|e| Error::io(json, e.source))?;
    if len > MAX_SIDECAR_BYTES {
        return Err(Error::Sidecar {
            path: json.into(),
            reason: format!("{len} bytes, more than a sidecar's {MAX_SIDECAR_BYTES}-byte limit"),
        });
    }
    let mut text = String::new();
    file.take(MAX_SIDECAR_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| Error::io(json, e))?;
    let meta: CheckpointMeta = serde_json::from_str(&text).map_err(|e| Error::Sidecar {
        path: json.into(),
        reason: e.to_string(),
    })?;
    if meta.format != FORMAT || meta.format_version > FORMAT_VERSION {
        return Err(Error::Sidecar {
            path: json.into(),
            reason: format!(
                "format {:?} version {} is not {FORMAT:?} version <= {FORMAT_VERSION}",
                meta.format, meta.format_version
            ),
        });
    }
    meta.architecture
        .validate()
        .map_err(|source| Error::SidecarArch {
            path: json.into(),
            source: Box::new(source),
        })?;
    if let Some(spec) = &meta.input {
        check_input_spec(spec).map_err(|source| Error::SidecarArch {
            path: json.into(),
            source: Box::new(source.into()),
        })?;
    }
    Ok(meta)
}

/// Largest image side a sidecar may declare.
pub const MAX_IMAGE_SIDE: usize = 4096;

fn check_input_spec(spec: &InputSpec) -> std::result::Result<(), ood_core::limits::LimitError> {
    use ood_core::limits::check_range;
    check_range("input height", spec.height, 1, MAX_IMAGE_SIDE)?;
    check_range("input width", spec.width, 1, MAX_IMAGE_SIDE)?;
    check_range("input channels", spec.channels, 1, 64)?;
    Ok(())
}

fn read_tensors(dir: &Path, name: &str, sha: &str, json: &Path) -> Result<Vec<(String, Tensor)>> {
    if name.contains('/') || name.contains('\\') || name.starts_with('.') {
        return Err(Error::Sidecar {
            path: json.into(),
            reason: format!("file name {name:?} is not a plain name"),
        });
    }
    let path = dir.join(name);
    let got = sha256_file(&path)?;
    if got != sha {
        return Err(Error::Sidecar {
            path: json.into(),
            reason: format!(
                "{} has SHA-256 {got}, the sidecar says {sha}",
                path.display()
            ),
        });
    }
    let mut tensors = Tensor::read_safetensors(&path)
        .map_err(|e| Error::torch(format!("reading {}", path.display()), e))?;
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(tensors)
}

/// Loads a checkpoint and verifies its files against the sidecar's hashes.
pub fn load(json: &Path) -> Result<Checkpoint> {
    let (dir, _) = stem_of(json)?;
    let meta = read_meta(json)?;
    let weights = read_tensors(&dir, &meta.weights, &meta.weights_sha256, json)?;
    let optimizer = match (&meta.optimizer, &meta.optimizer_sha256) {
        (Some(name), Some(sha)) => Some(read_tensors(&dir, name, sha, json)?),
        _ => None,
    };
    Ok(Checkpoint {
        meta,
        weights,
        optimizer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state_dict;
    use crate::wrn::WideResNet;
    use tch::nn::VarStore;
    use tch::{Device, Kind};

    fn small() -> WrnConfig {
        WrnConfig {
            depth: 10,
            widen_factor: 1,
            dropout: 0.0,
            num_classes: 3,
            in_channels: 1,
        }
    }

    /// A freshly initialized small network saved as `m.json` in a new folder.
    fn saved_small() -> (tempfile::TempDir, PathBuf, CheckpointMeta) {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("m.json");
        let vs = VarStore::new(Device::Cpu);
        let _net = WideResNet::new(&vs.root(), &small()).unwrap();
        let mut meta = CheckpointMeta::new(small(), serde_json::Value::Null, 0);
        save(&json, &mut meta, &state_dict::named_tensors(&vs), None).unwrap();
        (dir, json, meta)
    }

    #[test]
    fn round_trip_restores_identical_outputs_and_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("model.json");
        tch::manual_seed(1);
        let vs = VarStore::new(Device::Cpu);
        let net = WideResNet::new(&vs.root(), &small()).unwrap();
        // Move the BatchNorm statistics away from their initial values.
        let x = Tensor::randn([8, 1, 28, 28], (Kind::Float, Device::Cpu));
        let _ = net.forward(&x, true);
        let mut meta = CheckpointMeta::new(small(), serde_json::json!({"lr": 0.1}), 7);
        meta.epoch = 3;
        meta.step = 30;
        meta.metrics.insert("test_accuracy".into(), 0.5);
        let momentum = vec![(
            "momentum.fc.weight".to_string(),
            Tensor::ones([3, 64], (Kind::Float, Device::Cpu)),
        )];
        save(
            &json,
            &mut meta,
            &state_dict::named_tensors(&vs),
            Some(&momentum),
        )
        .unwrap();

        let ck = load(&json).unwrap();
        assert_eq!(ck.meta, meta);
        assert_eq!(ck.meta.weights, "model.e0003-s30.safetensors");
        let vs2 = VarStore::new(Device::Cpu);
        let net2 = WideResNet::new(&vs2.root(), &small()).unwrap();
        state_dict::load_into(&vs2, &ck.weights).unwrap();
        let (a, b) = (net.forward(&x, false), net2.forward(&x, false));
        assert!(a.equal(&b));
        let nbt = &vs2.variables()["bn1.num_batches_tracked"];
        assert_eq!(nbt.int64_value(&[]), 1);
        assert!(ck.optimizer.unwrap()[0].1.equal(&momentum[0].1));

        // A later save replaces the earlier files; nothing else in the directory is touched.
        std::fs::write(dir.path().join("model.notes.txt"), "keep").unwrap();
        meta.epoch = 4;
        meta.step = 40;
        save(&json, &mut meta, &state_dict::named_tensors(&vs), None).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "model.e0004-s40.safetensors",
                "model.json",
                "model.notes.txt"
            ]
        );
    }

    #[test]
    fn a_second_writer_is_locked_out_and_a_dead_ones_lock_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("m.json");
        let lock = CheckpointLock::acquire(&json).unwrap();
        assert_eq!(lock.took_over, None);
        // the holder is this live process (pid 1 stands in for another live one)
        std::fs::write(dir.path().join("m.lock"), "1\n").unwrap();
        let e = CheckpointLock::acquire(&json).unwrap_err().to_string();
        assert!(e.contains("m.lock: locked by process 1"), "{e}");
        drop(lock);
        assert!(!dir.path().join("m.lock").exists());
        // a pid that cannot exist (beyond Linux's pid_max) is a dead holder
        std::fs::write(dir.path().join("m.lock"), "4194305\n").unwrap();
        let lock = CheckpointLock::acquire(&json).unwrap();
        assert_eq!(lock.took_over, Some(4194305));
        let pid = std::fs::read_to_string(dir.path().join("m.lock")).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
    }

    #[test]
    fn stale_temps_of_dead_processes_are_removed_on_save() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("m.json");
        let dead = dir.path().join(".m.e0001-s1.safetensors.4194305.tmp");
        let live = dir.path().join(".m.json.1.tmp");
        let other = dir.path().join(".x.json.4194305.tmp");
        for p in [&dead, &live, &other] {
            std::fs::write(p, "partial").unwrap();
        }
        let vs = VarStore::new(Device::Cpu);
        let _net = WideResNet::new(&vs.root(), &small()).unwrap();
        let mut meta = CheckpointMeta::new(small(), serde_json::Value::Null, 0);
        save(&json, &mut meta, &state_dict::named_tensors(&vs), None).unwrap();
        assert!(!dead.exists() && live.exists() && other.exists());
    }

    #[test]
    fn sidecars_declaring_huge_architectures_are_refused_before_libtorch() {
        let (_dir, json, _) = saved_small();
        let text = std::fs::read_to_string(&json).unwrap();
        for (from, to, says) in [
            (
                "\"depth\": 10",
                "\"depth\": 1000000000",
                "depth must be between 10 and 1000",
            ),
            (
                "\"widen_factor\": 1",
                "\"widen_factor\": 1000000",
                "widen_factor must be",
            ),
            (
                "\"num_classes\": 3",
                "\"num_classes\": 1000000000000",
                "num_classes must be",
            ),
            ("\"depth\": 10", "\"depth\": 11", "6n+4"),
        ] {
            assert!(text.contains(from), "{from}");
            std::fs::write(&json, text.replace(from, to)).unwrap();
            let e = load(&json).unwrap_err().to_string();
            assert!(
                e.contains("m.json: architecture: ") && e.contains(says),
                "{e}"
            );
        }
        // depth 1000 x width 64 passes the ranges but not the memory check
        let big = text
            .replace("\"depth\": 10", "\"depth\": 994")
            .replace("\"widen_factor\": 1", "\"widen_factor\": 64");
        std::fs::write(&json, big).unwrap();
        let e = load(&json).unwrap_err().to_string();
        assert!(e.contains("WideResNet parameters: needs"), "{e}");
    }

    #[test]
    fn corrupted_weights_are_detected() {
        let (dir, json, meta) = saved_small();
        let w = dir.path().join(&meta.weights);
        let mut bytes = std::fs::read(&w).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 0xff;
        std::fs::write(&w, bytes).unwrap();
        let err = load(&json).unwrap_err().to_string();
        assert!(err.contains("SHA-256"), "{err}");
        let err = load(&dir.path().join("m.safetensors"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("JSON sidecar"), "{err}");
    }
}
