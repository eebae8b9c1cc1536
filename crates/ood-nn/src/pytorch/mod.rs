//! Reading PyTorch checkpoints written by `torch.save` (tch's `VarStore::load` cannot read a
//! pickled `state_dict`, which is what the energy-OOD code of record and most projects save).
//!
//! Two on-disk formats:
//! - **zip** (PyTorch >= 1.6 default): `<root>/data.pkl` is the pickled object, and each tensor
//!   storage is the raw little-endian entry `<root>/data/<key>`; the pickle refers to storages by
//!   persistent id `('storage', torch.FloatStorage, key, location, numel)`.
//! - **legacy** (`_use_new_zipfile_serialization=False`, and every file before 1.6): five
//!   pickles back to back (magic number, protocol version, system info, the object, the list of
//!   storage keys), then for each key in that order an `i64` element count and the raw storage.
//!
//! The object may be a state dict, or a dict that wraps one (`{'state_dict': ...}`, `'model'`,
//! `'net'`, ...); keys saved from `nn.DataParallel` carry a `module.` prefix that we strip.
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use tch::{Kind, Tensor};

use crate::error::{Error, Result};

pub mod pickle;

use pickle::{DType, StorageRef, TensorRef, Value};

/// 0x1950a86a20f9469cfc6c, the first pickle of a legacy `torch.save` file, as pickle's
/// little-endian bytes.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
/// The second pickle of a legacy file.
const LEGACY_PROTOCOL: i64 = 1001;

/// Named tensors in file order.
pub type StateDict = Vec<(String, Tensor)>;

/// Which container a checkpoint used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Zip,
    Legacy,
}

/// Reads a `torch.save`d state dict (zip or legacy format) into CPU tensors.
pub fn load_state_dict(path: impl AsRef<Path>) -> Result<StateDict> {
    Ok(load_state_dict_with_format(path)?.0)
}

/// As [`load_state_dict`], also telling which format the file had.
pub fn load_state_dict_with_format(path: impl AsRef<Path>) -> Result<(StateDict, Format)> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.starts_with(b"PK\x03\x04") {
        Ok((read_zip(path, &bytes)?, Format::Zip))
    } else if bytes.first() == Some(&0x80) {
        Ok((read_legacy(path, &bytes)?, Format::Legacy))
    } else {
        Err(Error::Checkpoint {
            path: path.into(),
            reason: "neither a zip archive nor a pickle (TorchScript and safetensors files are not state dicts)".into(),
        })
    }
}

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.into(),
        reason: reason.into(),
    }
}

fn pickle_err(path: &Path, base: u64, e: pickle::PickleError) -> Error {
    Error::Pickle {
        path: path.into(),
        offset: base + e.offset,
        reason: e.reason,
    }
}

/// The persistent id of a storage: `('storage', <Global torch.XStorage>, key, location, numel, ...)`.
fn storage_from_pid(pid: Value) -> std::result::Result<Value, String> {
    let items = match pid {
        Value::Tuple(items) => items,
        other => return Err(format!("persistent id is not a tuple: {other:?}")),
    };
    if items.len() < 5 || items[0] != Value::Str("storage".into()) {
        return Err(format!("persistent id is not a storage: {items:?}"));
    }
    let dtype = match &items[1] {
        Value::Global { name, .. } => DType::from_torch_name(name)
            .ok_or_else(|| format!("unsupported storage type {name}"))?,
        other => return Err(format!("storage type not understood: {other:?}")),
    };
    let key = match &items[2] {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        other => return Err(format!("storage key not understood: {other:?}")),
    };
    let numel = match &items[4] {
        Value::Int(n) if *n >= 0 => *n as u64,
        other => return Err(format!("storage size not understood: {other:?}")),
    };
    if let Some(view) = items.get(5) {
        if *view != Value::None {
            return Err("storage views (PyTorch < 0.4 checkpoints) are not supported".into());
        }
    }
    Ok(Value::Storage(StorageRef { key, dtype, numel }))
}

fn read_zip(path: &Path, bytes: &[u8]) -> Result<StateDict> {
    let zip_err = |source| Error::Zip {
        path: path.into(),
        source,
    };
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(zip_err)?;
    let pkl_name = archive
        .file_names()
        .find(|n| n.ends_with("/data.pkl") || *n == "data.pkl")
        .map(str::to_owned)
        .ok_or_else(|| {
            bad(
                path,
                "zip archive has no data.pkl (is it a TorchScript file?)",
            )
        })?;
    let root = &pkl_name[..pkl_name.len() - "data.pkl".len()];
    let read_entry = |archive: &mut zip::ZipArchive<_>, name: &str| -> Result<Vec<u8>> {
        let mut f = archive.by_name(name).map_err(zip_err)?;
        let mut out = Vec::with_capacity(f.size() as usize);
        f.read_to_end(&mut out).map_err(|e| Error::io(path, e))?;
        Ok(out)
    };
    if let Ok(order) = read_entry(&mut archive, &format!("{root}byteorder")) {
        if order != b"little" {
            return Err(bad(
                path,
                format!(
                    "byte order {:?} is not supported",
                    String::from_utf8_lossy(&order)
                ),
            ));
        }
    }
    let pkl = read_entry(&mut archive, &pkl_name)?;
    let (obj, _) = pickle::load(&pkl, &mut storage_from_pid).map_err(|e| pickle_err(path, 0, e))?;
    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    build_state_dict(path, obj, |storage: &StorageRef| {
        if !storages.contains_key(&storage.key) {
            let data = read_entry(&mut archive, &format!("{root}data/{}", storage.key))?;
            storages.insert(storage.key.clone(), data);
        }
        Ok(storages[&storage.key].clone())
    })
}

fn read_legacy(path: &Path, bytes: &[u8]) -> Result<StateDict> {
    let mut pos = 0usize;
    let mut next =
        |pid: &mut dyn FnMut(Value) -> std::result::Result<Value, String>| -> Result<Value> {
            let (v, used) =
                pickle::load(&bytes[pos..], pid).map_err(|e| pickle_err(path, pos as u64, e))?;
            pos += used;
            Ok(v)
        };
    let mut no_pid = |_: Value| -> std::result::Result<Value, String> {
        Err("unexpected persistent id outside the pickled object".into())
    };
    if next(&mut no_pid).ok() != Some(Value::BigInt(LEGACY_MAGIC.to_vec())) {
        return Err(bad(
            path,
            "not a torch.save file (neither a zip archive nor the legacy magic number)",
        ));
    }
    match next(&mut no_pid)? {
        Value::Int(LEGACY_PROTOCOL) => {}
        other => {
            return Err(bad(
                path,
                format!("legacy protocol version {other:?}, expected {LEGACY_PROTOCOL}"),
            ))
        }
    }
    let _sys_info = next(&mut no_pid)?;
    let obj = next(&mut storage_from_pid)?;
    let keys = match next(&mut no_pid)? {
        Value::List(keys) => keys,
        other => {
            return Err(bad(
                path,
                format!("storage key list not understood: {other:?}"),
            ))
        }
    };
    // The storages follow in key order: i64 element count, then the raw elements. Their element
    // sizes come from the references in the object.
    let mut sizes: HashMap<String, usize> = HashMap::new();
    collect_storage_sizes(&obj, &mut sizes);
    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    for key in keys {
        let key = match key {
            Value::Str(s) => s,
            Value::Int(i) => i.to_string(),
            other => return Err(bad(path, format!("storage key not understood: {other:?}"))),
        };
        let elem = *sizes
            .get(&key)
            .ok_or_else(|| bad(path, format!("storage {key} is never referenced")))?;
        let header = bytes.get(pos..pos + 8).ok_or_else(|| {
            bad(
                path,
                format!("truncated before storage {key} at byte {pos}"),
            )
        })?;
        let numel = i64::from_le_bytes(header.try_into().unwrap_or([0; 8]));
        pos += 8;
        let len = usize::try_from(numel)
            .ok()
            .and_then(|n| n.checked_mul(elem));
        let data = len
            .and_then(|len| bytes.get(pos..pos.checked_add(len)?))
            .ok_or_else(|| bad(path, format!("storage {key} of {numel} elements runs past the end of the file (byte {pos})")))?;
        pos += data.len();
        storages.insert(key, data.to_vec());
    }
    build_state_dict(path, obj, |s: &StorageRef| {
        storages
            .get(&s.key)
            .cloned()
            .ok_or_else(|| bad(path, format!("storage {} is missing", s.key)))
    })
}

fn collect_storage_sizes(v: &Value, out: &mut HashMap<String, usize>) {
    match v {
        Value::Tensor(t) => {
            out.insert(t.storage.key.clone(), t.storage.dtype.size_in_bytes());
        }
        Value::Storage(s) => {
            out.insert(s.key.clone(), s.dtype.size_in_bytes());
        }
        Value::Tuple(items) | Value::List(items) => {
            items.iter().for_each(|x| collect_storage_sizes(x, out))
        }
        Value::Dict(items) => items
            .iter()
            .for_each(|(_, x)| collect_storage_sizes(x, out)),
        Value::Call { args, state, .. } => {
            collect_storage_sizes(args, out);
            if let Some(s) = state {
                collect_storage_sizes(s, out);
            }
        }
        _ => {}
    }
}

/// Walks the unpickled object to the state dict and materializes its tensors.
fn build_state_dict(
    path: &Path,
    obj: Value,
    mut storage_bytes: impl FnMut(&StorageRef) -> Result<Vec<u8>>,
) -> Result<StateDict> {
    let entries = find_state_dict(obj).ok_or_else(|| {
        bad(
            path,
            "the pickled object is not a state dict (no dict of tensors found)",
        )
    })?;
    let mut cache: HashMap<String, Tensor> = HashMap::new();
    let mut out = Vec::with_capacity(entries.len());
    for (key, t) in entries {
        if !cache.contains_key(&t.storage.key) {
            let data = storage_bytes(&t.storage)?;
            let storage = storage_tensor(path, &t.storage, &data)?;
            cache.insert(t.storage.key.clone(), storage);
        }
        let storage = &cache[&t.storage.key];
        let numel = storage.size()[0];
        // Check the view stays inside its storage before letting libtorch read it.
        let last = t
            .size
            .iter()
            .zip(&t.stride)
            .fold(t.offset, |acc, (&n, &st)| {
                if n <= 0 {
                    acc
                } else {
                    acc.saturating_add((n - 1).saturating_mul(st))
                }
            });
        let empty = t.size.iter().any(|&s| s == 0);
        if t.offset < 0 || t.stride.iter().any(|&s| s < 0) || (!empty && last >= numel) {
            return Err(bad(
                path,
                format!("{key}: view (offset {}, size {:?}, stride {:?}) exceeds its storage of {numel} elements", t.offset, t.size, t.stride),
            ));
        }
        let tensor = storage
            .f_as_strided(t.size.as_slice(), t.stride.as_slice(), Some(t.offset))
            .and_then(|v| v.f_contiguous())
            .map_err(|e| Error::torch(format!("{}: {key}", path.display()), e))?;
        out.push((key, tensor));
    }
    Ok(out)
}

fn storage_tensor(path: &Path, s: &StorageRef, data: &[u8]) -> Result<Tensor> {
    let size = s.dtype.size_in_bytes();
    if data.len() % size != 0 || (data.len() / size) as u64 != s.numel {
        return Err(bad(
            path,
            format!(
                "storage {} has {} bytes, expected {} elements of {} bytes",
                s.key,
                data.len(),
                s.numel,
                size
            ),
        ));
    }
    let kind = match s.dtype {
        DType::F64 => Kind::Double,
        DType::F32 => Kind::Float,
        DType::F16 => Kind::Half,
        DType::BF16 => Kind::BFloat16,
        DType::I64 => Kind::Int64,
        DType::I32 => Kind::Int,
        DType::I16 => Kind::Int16,
        DType::I8 => Kind::Int8,
        DType::U8 => Kind::Uint8,
        DType::Bool => Kind::Bool,
    };
    Tensor::f_from_data_size(data, &[s.numel as i64], kind)
        .map_err(|e| Error::torch(format!("{}: storage {}", path.display(), s.key), e))
}

/// The state dict inside `obj`: `obj` itself when it maps names to tensors, otherwise the first
/// such dict under a conventional wrapper key. Non-tensor entries are skipped; a common
/// `module.` prefix (from `nn.DataParallel`) is removed.
fn find_state_dict(obj: Value) -> Option<Vec<(String, TensorRef)>> {
    const WRAPPERS: [&str; 6] = [
        "state_dict",
        "model_state_dict",
        "model",
        "net",
        "state",
        "module",
    ];
    let Value::Dict(items) = obj else { return None };
    let tensors: Vec<(String, TensorRef)> = items
        .iter()
        .filter_map(|(k, v)| match (k, v) {
            (Value::Str(k), Value::Tensor(t)) => Some((k.clone(), t.clone())),
            _ => None,
        })
        .collect();
    if tensors.is_empty() {
        for name in WRAPPERS {
            if let Some((_, inner)) = items.iter().find(|(k, _)| *k == Value::Str(name.into())) {
                if let Some(found) = find_state_dict(inner.clone()) {
                    return Some(found);
                }
            }
        }
        return None;
    }
    if tensors.iter().all(|(k, _)| k.starts_with("module.")) {
        return Some(
            tensors
                .into_iter()
                .map(|(k, t)| (k["module.".len()..].to_owned(), t))
                .collect(),
        );
    }
    Some(tensors)
}
