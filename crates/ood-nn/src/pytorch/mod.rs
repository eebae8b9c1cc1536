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
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use tch::{Kind, Tensor};

use crate::error::{Error, Result};

pub mod pickle;

use ood_data::formats::pickle::{quote, Value};
use ood_data::formats::zip_images::{self, ZipBudget, ZipLimits};
use pickle::{DType, StorageRef, TensorRef, Torch, TorchHooks, TorchValue};

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
    let bytes = read_regular(path)?;
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

/// The whole file, refused unless regular (`/dev/zero`, FIFOs) and checked against memory.
fn read_regular(path: &Path) -> Result<Vec<u8>> {
    Ok(ood_core::io::read_regular(path)?)
}

/// Caps on the inflated entries of a checkpoint archive: storages can be large, so only the
/// hard cap and the available memory (checked by `read_entry`) bound them.
const CHECKPOINT_ZIP: ZipLimits = ZipLimits {
    max_entry: 1 << 36,
    max_total: 1 << 36,
};

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.into(),
        reason: reason.into(),
    }
}

fn pickle_err(path: &Path, base: u64, e: ood_data::formats::pickle::PickleError) -> Error {
    Error::Pickle {
        path: path.into(),
        offset: base + e.offset,
        source: e.kind,
    }
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
    let names: Vec<String> = archive
        .file_names()
        .filter(|n| n.starts_with(root))
        .map(str::to_owned)
        .collect();
    let mut budget = ZipBudget::for_entries(
        &mut archive,
        path,
        names.iter().map(|n| n.as_str()),
        CHECKPOINT_ZIP,
    )?;
    let mut read_entry = |archive: &mut zip::ZipArchive<_>, name: &str| -> Result<Vec<u8>> {
        Ok(zip_images::read_entry(archive, path, name, &mut budget)?)
    };
    let order_name = format!("{root}byteorder");
    if archive.index_for_name(&order_name).is_some() {
        let order = read_entry(&mut archive, &order_name)?;
        if order != b"little" {
            return Err(bad(
                path,
                format!(
                    "byte order {:?} is not supported",
                    quote(&String::from_utf8_lossy(&order))
                ),
            ));
        }
    }
    let pkl = read_entry(&mut archive, &pkl_name)?;
    let mut hooks = TorchHooks {
        storages_allowed: true,
        ..TorchHooks::default()
    };
    let (obj, _) = pickle::load(&pkl, &mut hooks).map_err(|e| pickle_err(path, 0, e))?;
    // build_state_dict asks for each storage once: it is inflated, copied into its tensor and
    // dropped, never held twice.
    build_state_dict(path, obj, |storage: &StorageRef| {
        let data = read_entry(&mut archive, &format!("{root}data/{}", storage.key))?;
        Ok(Cow::Owned(data))
    })
}

fn read_legacy(path: &Path, bytes: &[u8]) -> Result<StateDict> {
    let mut pos = 0usize;
    let mut next = |hooks: &mut TorchHooks| -> Result<TorchValue> {
        let (v, used) =
            pickle::load(&bytes[pos..], hooks).map_err(|e| pickle_err(path, pos as u64, e))?;
        pos += used;
        Ok(v)
    };
    let mut outside = TorchHooks::default();
    match next(&mut outside) {
        Ok(Value::BigInt(magic)) if *magic == LEGACY_MAGIC => {}
        _ => {
            return Err(bad(
                path,
                "not a torch.save file (neither a zip archive nor the legacy magic number)",
            ))
        }
    }
    match next(&mut outside)? {
        Value::Int(LEGACY_PROTOCOL) => {}
        other => {
            return Err(bad(
                path,
                format!(
                    "legacy protocol version is a {}, expected {LEGACY_PROTOCOL}",
                    other.kind()
                ),
            ))
        }
    }
    let _sys_info = next(&mut outside)?;
    let mut inside = TorchHooks {
        storages_allowed: true,
        ..TorchHooks::default()
    };
    let obj = next(&mut inside)?;
    let keys = match next(&mut outside)? {
        Value::List(keys) => keys,
        other => {
            return Err(bad(
                path,
                format!("storage key list is a {}, not a list", other.kind()),
            ))
        }
    };
    let storages = legacy_storages(path, bytes, pos, keys.items(), &inside)?;
    build_state_dict(path, obj, |s: &StorageRef| {
        storages
            .get(&s.key)
            .map(|r| Cow::Borrowed(&bytes[r.clone()]))
            .ok_or_else(|| bad(path, format!("storage {} is missing", quote(&s.key))))
    })
}

/// The storages of a legacy file, from byte `pos` on: in key order, each an `i64` element count
/// then the raw elements, their element types from the persistent ids the object referenced.
/// Returned as byte ranges into `bytes`: sliced from the file, not copied.
fn legacy_storages<'v>(
    path: &Path,
    bytes: &[u8],
    mut pos: usize,
    keys: impl IntoIterator<Item = &'v TorchValue>,
    inside: &TorchHooks,
) -> Result<HashMap<String, std::ops::Range<usize>>> {
    let mut storages: HashMap<String, std::ops::Range<usize>> = HashMap::new();
    for key in keys {
        let key = match key {
            Value::Str(s) => s.to_string(),
            Value::Int(i) => i.to_string(),
            other => return Err(bad(path, format!("storage key is a {}", other.kind()))),
        };
        let elem = inside
            .storages
            .get(&key)
            .ok_or_else(|| bad(path, format!("storage {} is never referenced", quote(&key))))?
            .size_in_bytes();
        let header = bytes.get(pos..pos + 8).ok_or_else(|| {
            bad(
                path,
                format!("truncated before storage {} at byte {pos}", quote(&key)),
            )
        })?;
        let numel = i64::from_le_bytes(header.try_into().unwrap_or([0; 8]));
        pos += 8;
        let len = usize::try_from(numel)
            .ok()
            .and_then(|n| n.checked_mul(elem));
        let data = len
            .and_then(|len| bytes.get(pos..pos.checked_add(len)?))
            .ok_or_else(|| {
                bad(
                    path,
                    format!(
                        "storage {} of {numel} elements runs past the end of the file (byte {pos})",
                        quote(&key)
                    ),
                )
            })?;
        storages.insert(key, pos..pos + data.len());
        pos += data.len();
    }
    Ok(storages)
}

/// Walks the unpickled object to the state dict and materializes its tensors; `storage_bytes`
/// is called once per storage.
fn build_state_dict<'a>(
    path: &Path,
    obj: TorchValue,
    mut storage_bytes: impl FnMut(&StorageRef) -> Result<Cow<'a, [u8]>>,
) -> Result<StateDict> {
    let entries = find_state_dict(&obj, 0).ok_or_else(|| {
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
        let empty = t.size.contains(&0);
        if t.offset < 0 || t.stride.iter().any(|&s| s < 0) || (!empty && last >= numel) {
            return Err(bad(
                path,
                format!(
                    "{}: view (offset {}, size {}, stride {}) exceeds its storage of {numel} elements",
                    quote(&key),
                    t.offset,
                    quote(&format!("{:?}", t.size)),
                    quote(&format!("{:?}", t.stride))
                ),
            ));
        }
        let tensor = storage
            .f_as_strided(t.size.as_slice(), t.stride.as_slice(), Some(t.offset))
            .and_then(|v| v.f_contiguous())
            .map_err(|e| Error::torch(format!("{}: {}", path.display(), quote(&key)), e))?;
        out.push((key, tensor));
    }
    Ok(out)
}

fn storage_tensor(path: &Path, s: &StorageRef, data: &[u8]) -> Result<Tensor> {
    let size = s.dtype.size_in_bytes();
    if !data.len().is_multiple_of(size) || (data.len() / size) as u64 != s.numel {
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
/// such dict under a conventional wrapper key (at most [`MAX_WRAPPING`] levels down: a hostile
/// pickle can share one dict under every wrapper key, so the search must not branch deeply).
/// Non-tensor entries are skipped; a common `module.` prefix (from `nn.DataParallel`) is removed.
fn find_state_dict(obj: &TorchValue, level: u32) -> Option<Vec<(String, TensorRef)>> {
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
        .entries()
        .iter()
        .filter_map(|(k, v)| match (k, v) {
            (Value::Str(k), Value::Ext(Torch::Tensor(t))) => Some((k.to_string(), (**t).clone())),
            _ => None,
        })
        .collect();
    if tensors.is_empty() {
        if level >= MAX_WRAPPING {
            return None;
        }
        return WRAPPERS
            .iter()
            .filter_map(|name| items.get_text(name))
            .find_map(|inner| find_state_dict(inner, level + 1));
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

/// Deepest wrapper nesting searched for the state dict (`{'model': {'state_dict': ...}}` is 2).
const MAX_WRAPPING: u32 = 3;
