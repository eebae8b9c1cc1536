//! Resuming a run from its checkpoint, and the run's log (`<stem>.log.jsonl`): reconciling it
//! with the checkpoint, recording configuration changes, appending fsync'd lines.
use std::io::Write;
use std::path::Path;

use tch::nn::VarStore;

use super::{EpochLog, ResumeChanges, RunConfig, RunOutput};
use crate::checkpoint::{self, CheckpointMeta};
use crate::error::{Error, Result};
use crate::sgd::Sgd;
use crate::state_dict;
use crate::wrn::WideResNet;

/// Loads the checkpoint of `output` into `vs`, `opt` and `meta` after checking its architecture
/// and configuration (`output.changes`, see [`ResumeChanges`]) and reconciling the log; returns
/// the epochs done.
pub(super) fn resume(
    vs: &VarStore,
    net: &WideResNet,
    config: &RunConfig,
    meta: &mut CheckpointMeta,
    output: &RunOutput,
    opt: &mut Sgd,
) -> Result<u64> {
    let ck = checkpoint::load(&output.checkpoint)?;
    if ck.meta.architecture != *net.config() {
        return Err(Error::Sidecar {
            path: output.checkpoint.clone(),
            reason: format!(
                "architecture {:?} differs from this run's {:?}",
                ck.meta.architecture,
                net.config()
            ),
        });
    }
    let new = serde_json::to_value(config).map_err(|source| Error::Json {
        what: "training configuration",
        source,
    })?;
    let changed = config_changes(&ck.meta.training, &new);
    if !changed.is_empty() {
        let fields = changed
            .iter()
            .map(|(_, d)| d.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        if output.changes == ResumeChanges::Refuse {
            return Err(Error::ResumeMismatch {
                path: output.checkpoint.clone(),
                fields,
            });
        }
        let record = serde_json::json!({
            "resume_changes": changed.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            "description": fields,
            "at_epoch": ck.meta.epoch,
        });
        // After reconciling, so that a torn last line is dropped, not glued to this record.
        reconcile_log(&output.log_path(), ck.meta.epoch)?;
        append_line(&output.log_path(), &record.to_string())?;
    } else {
        reconcile_log(&output.log_path(), ck.meta.epoch)?;
    }
    state_dict::load_into(vs, &ck.weights)?;
    if let Some(state) = &ck.optimizer {
        opt.load_state(state)?;
    }
    meta.step = ck.meta.step;
    meta.epoch = ck.meta.epoch;
    meta.metrics = ck.meta.metrics;
    Ok(ck.meta.epoch)
}

/// Top-level fields of two serialized configurations that differ, with both values.
fn config_changes(old: &serde_json::Value, new: &serde_json::Value) -> Vec<(String, String)> {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return Vec::new();
    };
    new.iter()
        .filter(|(k, v)| old.get(*k) != Some(v))
        .map(|(k, v)| {
            let was = old.get(k).map_or("absent".into(), |o| o.to_string());
            (k.clone(), format!("{k} {was} -> {v}"))
        })
        .collect()
}

/// Keeps only the log lines of epochs `<= done` (and drops a torn line), rewriting the log
/// atomically when anything is dropped; lines that are not epoch records are kept.
fn reconcile_log(path: &Path, done: u64) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let mut kept = String::new();
    let mut dropped = false;
    for line in text.split_inclusive('\n') {
        let complete = line.ends_with('\n');
        let epoch = serde_json::from_str::<EpochLog>(line.trim_end())
            .ok()
            .map(|l| l.epoch);
        if !complete || epoch.is_some_and(|e| e > done) {
            dropped = true;
        } else {
            kept.push_str(line);
        }
    }
    if dropped {
        ood_core::io::write_atomic(path, |w| {
            w.write_all(kept.as_bytes())
                .map_err(|e| ood_core::io::IoError::new(path, e))
        })
        .map_err(|e| Error::io(path, e.source))?;
    }
    Ok(())
}

pub(super) fn append_log(path: &Path, log: &EpochLog) -> Result<()> {
    let line = serde_json::to_string(log).map_err(|source| Error::Json {
        what: "epoch log line",
        source,
    })?;
    append_line(path, &line)
}

/// Appends one line in a single write and fsyncs it.
fn append_line(path: &Path, line: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.write_all(format!("{line}\n").as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(epoch: u64) -> String {
        let log = EpochLog {
            epoch,
            step: epoch * 10,
            train_loss: 1.0,
            train_accuracy: 0.5,
            test_accuracy: None,
            test_loss: None,
            lr: 0.1,
            seconds: 1.0,
            images_per_second: 2.0,
        };
        serde_json::to_string(&log).unwrap() + "\n"
    }

    #[test]
    fn resume_drops_log_lines_past_the_checkpoint_and_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.log.jsonl");
        // killed after logging epoch 3 but before its checkpoint; then a torn write
        let note = "{\"resume_changes\":[\"lr\"]}\n";
        let text = format!("{}{note}{}{}{{\"epo", line(1), line(2), line(3));
        std::fs::write(&p, &text).unwrap();
        reconcile_log(&p, 2).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            format!("{}{note}{}", line(1), line(2))
        );
        // nothing to drop: the file is left as it is
        reconcile_log(&p, 2).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn config_changes_name_each_differing_field() {
        let old = serde_json::to_value(RunConfig::pretrain()).unwrap();
        let new = RunConfig {
            lr: 0.2,
            seed: 3,
            ..RunConfig::pretrain()
        };
        let changed = config_changes(&old, &serde_json::to_value(new).unwrap());
        let d: Vec<&str> = changed.iter().map(|(_, d)| d.as_str()).collect();
        assert_eq!(d, ["lr 0.1 -> 0.2", "seed 1 -> 3"]);
        assert!(config_changes(&serde_json::Value::Null, &old).is_empty());
    }
}
