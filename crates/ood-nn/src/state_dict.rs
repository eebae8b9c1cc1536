//! Copying named tensors into a model's variables, with a complete report when they disagree.
use std::collections::{BTreeMap, HashMap};

use tch::nn::VarStore;
use tch::Tensor;

use crate::error::{Error, Result, StateDictMismatch};

/// Compares `tensors` with the variables of `vs` by name and shape.
pub fn compare(vs: &VarStore, tensors: &[(String, Tensor)]) -> StateDictMismatch {
    let vars: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    let given: HashMap<&str, &Tensor> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    let mut m = StateDictMismatch::default();
    for (name, var) in &vars {
        match given.get(name.as_str()) {
            None => m.missing.push((name.clone(), var.size())),
            Some(t) if t.size() != var.size() => m.shape.push((name.clone(), var.size(), t.size())),
            Some(_) => {}
        }
    }
    for (name, t) in tensors {
        if !vars.contains_key(name) {
            m.unexpected.push((name.clone(), t.size()));
        }
    }
    m
}

/// Copies every tensor into the variable of the same name (converting dtype and device). Nothing
/// is copied unless names and shapes match exactly.
pub fn load_into(vs: &VarStore, tensors: &[(String, Tensor)]) -> Result<()> {
    let mismatch = compare(vs, tensors);
    if !mismatch.is_empty() {
        return Err(Error::StateDictMismatch(mismatch));
    }
    let vars = vs.variables();
    tch::no_grad(|| -> Result<()> {
        for (name, src) in tensors {
            let mut dst = vars[name].shallow_clone();
            let src = src
                .f_to_device(dst.device())
                .and_then(|s| s.f_to_kind(dst.kind()))
                .map_err(|e| Error::torch(format!("converting {name}"), e))?;
            dst.f_copy_(&src)
                .map_err(|e| Error::torch(format!("copying {name}"), e))?;
        }
        Ok(())
    })
}

/// The variables of `vs` as (name, tensor) in name order (a snapshot sharing storage).
pub fn named_tensors(vs: &VarStore) -> Vec<(String, Tensor)> {
    let vars: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    vars.into_iter().collect()
}
