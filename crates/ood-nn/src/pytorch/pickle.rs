//! Torch's hooks for the project's one pickle VM ([`ood_data::formats::pickle`]): what
//! `torch.save` pickles need beyond plain containers.
//!
//! - Globals are inert names ([`Torch::Global`]); nothing is imported or run.
//! - Calls: `collections.OrderedDict` becomes a dict, `torch._utils._rebuild_tensor_v2` (and
//!   `_rebuild_tensor`) a [`TensorRef`], `_rebuild_parameter(_with_state)` its tensor; any other
//!   call becomes [`Torch::Opaque`] (arguments dropped: a state dict never needs them).
//! - `BUILD` keeps the object as it is (e.g. an `OrderedDict`'s `_metadata`).
//! - Persistent ids `('storage', torch.FloatStorage, key, location, numel)` become
//!   [`Torch::Storage`]; every storage seen is recorded with its element type
//!   ([`TorchHooks::storages`]), which the legacy format needs to size the raw storages.

use std::collections::HashMap;
use std::rc::Rc;

use ood_data::formats::pickle::{self, quote, HookError, Hooks, Limits, PickleError, Value};

/// What torch globals and calls become.
#[derive(Clone, Debug, PartialEq)]
pub enum Torch {
    /// A `GLOBAL` reference, e.g. `torch.FloatStorage`.
    Global { module: Rc<str>, name: Rc<str> },
    /// What a persistent id resolved to.
    Storage(StorageRef),
    /// A tensor view of a storage.
    Tensor(Rc<TensorRef>),
    /// The result of a call that is not interpreted.
    Opaque,
}

/// A pickle value with torch objects.
pub type TorchValue = Value<Torch>;

/// The hooks, and the storages met so far (key -> element type).
#[derive(Debug, Default)]
pub struct TorchHooks {
    /// Whether persistent ids are allowed (only in the pickled object itself).
    pub storages_allowed: bool,
    pub storages: HashMap<String, DType>,
}

/// A tensor storage in the checkpoint: its key (zip entry name / legacy key) and element type.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageRef {
    pub key: String,
    pub dtype: DType,
    /// Number of elements the checkpoint declares.
    pub numel: u64,
}

/// `storage[offset..]` viewed with `size` and `stride` (in elements).
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    pub storage: StorageRef,
    pub offset: i64,
    pub size: Vec<i64>,
    pub stride: Vec<i64>,
}

/// Element types of torch storages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl DType {
    /// From a storage class name (`FloatStorage`) or a dtype name (`float32`).
    pub fn from_torch_name(name: &str) -> Option<Self> {
        Some(match name {
            "DoubleStorage" | "float64" => DType::F64,
            "FloatStorage" | "float32" => DType::F32,
            "HalfStorage" | "float16" => DType::F16,
            "BFloat16Storage" | "bfloat16" => DType::BF16,
            "LongStorage" | "int64" => DType::I64,
            "IntStorage" | "int32" => DType::I32,
            "ShortStorage" | "int16" => DType::I16,
            "CharStorage" | "int8" => DType::I8,
            "ByteStorage" | "uint8" => DType::U8,
            "BoolStorage" | "bool" => DType::Bool,
            _ => return None,
        })
    }

    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }
}

/// Runs one pickle of a torch file (see [`pickle::load`]).
pub fn load(data: &[u8], hooks: &mut TorchHooks) -> Result<(TorchValue, usize), PickleError> {
    pickle::load(data, hooks, &Limits::default())
}

fn refuse<T>(reason: impl Into<std::borrow::Cow<'static, str>>) -> Result<T, HookError> {
    Err(HookError::new(reason))
}

fn int_list(v: &TorchValue, what: &str) -> Result<Vec<i64>, HookError> {
    let Some(items) = v.as_items() else {
        return refuse(format!(
            "{what}: expected a tuple of ints, got a {}",
            v.kind()
        ));
    };
    items
        .iter()
        .map(|x| match x {
            Value::Int(i) => Ok(*i),
            other => refuse(format!("{what}: expected an int, got a {}", other.kind())),
        })
        .collect()
}

fn text(v: &TorchValue) -> Option<String> {
    match v {
        Value::Str(s) => Some(s.to_string()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

impl TorchHooks {
    fn ordered_dict(argv: &[TorchValue]) -> Result<TorchValue, HookError> {
        let mut d = pickle::Dict::default();
        match argv.first() {
            None => {}
            Some(Value::List(items)) => {
                for item in items.items() {
                    match item.as_items() {
                        Some([k, v]) => d.insert(k.clone(), v.clone()),
                        _ => {
                            return refuse(format!(
                                "OrderedDict item is a {}, not a pair",
                                item.kind()
                            ))
                        }
                    }
                }
            }
            Some(other) => return refuse(format!("OrderedDict argument is a {}", other.kind())),
        }
        Ok(Value::Dict(Rc::new(d)))
    }

    fn rebuild_tensor(name: &str, argv: &[TorchValue]) -> Result<TorchValue, HookError> {
        let [storage, offset, size, stride, ..] = argv else {
            return refuse(format!(
                "{name}: expected at least 4 arguments, got {}",
                argv.len()
            ));
        };
        let Value::Ext(Torch::Storage(storage)) = storage else {
            return refuse(format!(
                "{name}: first argument is a {}, not a storage",
                storage.kind()
            ));
        };
        let Value::Int(offset) = offset else {
            return refuse(format!(
                "{name}: storage offset is a {}, not an int",
                offset.kind()
            ));
        };
        let size = int_list(size, "tensor size")?;
        let stride = int_list(stride, "tensor stride")?;
        if size.len() != stride.len() {
            return refuse(format!(
                "tensor size and stride differ in rank ({} and {})",
                size.len(),
                stride.len()
            ));
        }
        Ok(Value::Ext(Torch::Tensor(Rc::new(TensorRef {
            storage: storage.clone(),
            offset: *offset,
            size,
            stride,
        }))))
    }
}

impl Hooks for TorchHooks {
    type Ext = Torch;

    fn find_class(&mut self, module: &str, name: &str) -> Result<TorchValue, HookError> {
        Ok(Value::Ext(Torch::Global {
            module: quote(module).into(),
            name: quote(name).into(),
        }))
    }

    fn call(&mut self, callable: TorchValue, args: TorchValue) -> Result<TorchValue, HookError> {
        let Value::Ext(Torch::Global { module, name }) = &callable else {
            return Ok(Value::Ext(Torch::Opaque));
        };
        let argv = args.as_items().unwrap_or(&[]);
        match (module.as_ref(), name.as_ref()) {
            ("collections", "OrderedDict") => Self::ordered_dict(argv),
            ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => {
                Self::rebuild_tensor(name, argv)
            }
            ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
                match argv.first() {
                    Some(t @ Value::Ext(Torch::Tensor(_))) => Ok(t.clone()),
                    other => refuse(format!(
                        "{name}: first argument is a {}, not a tensor",
                        other.map_or("nothing", Value::kind)
                    )),
                }
            }
            _ => Ok(Value::Ext(Torch::Opaque)),
        }
    }

    fn build(&mut self, obj: TorchValue, _state: TorchValue) -> Result<TorchValue, HookError> {
        Ok(obj)
    }

    fn persistent_load(&mut self, pid: TorchValue) -> Result<TorchValue, HookError> {
        if !self.storages_allowed {
            return refuse("unexpected persistent id outside the pickled object");
        }
        let items = pid.as_items().unwrap_or(&[]);
        let [Value::Str(tag), ty, key, _location, numel, rest @ ..] = items else {
            return refuse(format!("persistent id is a {}, not a storage", pid.kind()));
        };
        if tag.as_ref() != "storage" {
            return refuse(format!("persistent id {:?} is not a storage", quote(tag)));
        }
        let dtype = match ty {
            Value::Ext(Torch::Global { name, .. }) => DType::from_torch_name(name)
                .ok_or_else(|| HookError::new(format!("unsupported storage type {name}")))?,
            other => return refuse(format!("storage type is a {}", other.kind())),
        };
        let key =
            text(key).ok_or_else(|| HookError::new(format!("storage key is a {}", key.kind())))?;
        let numel = match numel {
            Value::Int(n) if *n >= 0 => *n as u64,
            other => return refuse(format!("storage size is a {}, not a size", other.kind())),
        };
        if rest.first().is_some_and(|v| *v != Value::None) {
            return refuse("storage views (PyTorch < 0.4 checkpoints) are not supported");
        }
        if let Some(&seen) = self.storages.get(&key) {
            if seen != dtype {
                return refuse(format!(
                    "storage {} is referenced with two element types",
                    quote(&key)
                ));
            }
        }
        self.storages.insert(key.clone(), dtype);
        Ok(Value::Ext(Torch::Storage(StorageRef { key, dtype, numel })))
    }

    /// Python 2 `str`: text in practice (legacy checkpoints' keys).
    fn py2_str(&mut self, bytes: &[u8]) -> TorchValue {
        Value::Str(String::from_utf8_lossy(bytes).as_ref().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> TorchValue {
        Value::Str(x.into())
    }

    #[test]
    fn ordered_dict_with_memo() {
        // pickle.dumps(collections.OrderedDict([('k', 'v'), ('k2', 'v')]), protocol=2) with a BINGET
        let data: &[u8] = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(X\x01\x00\x00\x00kq\x02X\x01\x00\x00\x00vq\x03X\x02\x00\x00\x00k2q\x04h\x03u.";
        let (v, used) = load(data, &mut TorchHooks::default()).unwrap();
        assert_eq!(used, data.len());
        let Value::Dict(d) = v else { panic!("{v:?}") };
        assert_eq!(d.entries(), &[(s("k"), s("v")), (s("k2"), s("v"))]);
    }

    #[test]
    fn storages_are_refused_unless_allowed_and_recorded_when_allowed() {
        // BINPERSID of ('storage', torch.FloatStorage, '0', 'cpu', 3)
        let data: &[u8] = b"\x80\x02(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x03tQ.";
        let err = load(data, &mut TorchHooks::default()).unwrap_err();
        assert!(err.to_string().contains("persistent id"), "{err}");
        let mut hooks = TorchHooks {
            storages_allowed: true,
            ..TorchHooks::default()
        };
        let (v, _) = load(data, &mut hooks).unwrap();
        let want = StorageRef {
            key: "0".into(),
            dtype: DType::F32,
            numel: 3,
        };
        assert_eq!(v, Value::Ext(Torch::Storage(want)));
        assert_eq!(hooks.storages.get("0"), Some(&DType::F32));
    }

    #[test]
    fn unknown_calls_are_inert() {
        let data: &[u8] = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.";
        let (v, _) = load(data, &mut TorchHooks::default()).unwrap();
        assert_eq!(v, Value::Ext(Torch::Opaque));
    }
}
