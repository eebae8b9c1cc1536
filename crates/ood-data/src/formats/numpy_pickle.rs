//! Hooks of the pickle VM for the CIFAR python release: protocol-2 pickles of a dict whose values
//! are byte strings, lists of ints or strings, and one numpy `uint8` array (pickled through
//! `numpy.core.multiarray._reconstruct`, `numpy.ndarray`, `numpy.dtype`, then `BUILD` with the
//! raw bytes). The only globals accepted are those numpy reconstructors and `_codecs.encode`
//! (Python 3's protocol-2 spelling of `bytes`), interpreted here; anything else is refused.

use std::path::Path;
use std::rc::Rc;

use super::pickle::{self, quote, HookError, Hooks, Limits, Value};
use crate::{Error, Result};

/// A numpy array as pickled: shape, dtype string (e.g. "u1"), raw data.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NdArray {
    pub shape: Vec<usize>,
    pub dtype: Option<Rc<str>>,
    pub fortran: bool,
    pub data: Option<Rc<[u8]>>,
}

/// What the numpy globals become.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Np {
    Reconstruct,
    NdArrayType,
    DtypeType,
    CodecsEncode,
    Dtype(Rc<str>),
    Array(Rc<NdArray>),
}

pub(crate) type NpValue = Value<Np>;

struct NumpyHooks;

fn refuse<T>(
    reason: impl Into<std::borrow::Cow<'static, str>>,
) -> std::result::Result<T, HookError> {
    Err(HookError::new(reason))
}

impl Hooks for NumpyHooks {
    type Ext = Np;

    fn check_protocol(&mut self, proto: u8) -> std::result::Result<(), HookError> {
        if proto == 2 {
            return Ok(());
        }
        refuse(format!(
            "pickle protocol {proto} is not supported (the CIFAR python release uses protocol 2)"
        ))
    }

    fn find_class(&mut self, module: &str, name: &str) -> std::result::Result<NpValue, HookError> {
        Ok(Value::Ext(match (module, name) {
            ("numpy.core.multiarray" | "numpy._core.multiarray", "_reconstruct") => Np::Reconstruct,
            ("numpy", "ndarray") => Np::NdArrayType,
            ("numpy", "dtype") => Np::DtypeType,
            ("_codecs", "encode") => Np::CodecsEncode,
            _ => {
                return refuse(format!(
                    "pickle refers to {}.{}, which a CIFAR batch never does",
                    quote(module),
                    quote(name)
                ))
            }
        }))
    }

    fn call(&mut self, f: NpValue, args: NpValue) -> std::result::Result<NpValue, HookError> {
        let Value::Tuple(args) = args else {
            return refuse(format!("call arguments are a {}, not a tuple", args.kind()));
        };
        let args = args.items();
        Ok(match f {
            Value::Ext(Np::Reconstruct) => match args.first() {
                Some(Value::Ext(Np::NdArrayType)) => Value::Ext(Np::Array(Rc::new(NdArray {
                    shape: vec![0],
                    dtype: None,
                    fortran: false,
                    data: None,
                }))),
                _ => return refuse("_reconstruct of something other than numpy.ndarray"),
            },
            Value::Ext(Np::DtypeType) => match args.first() {
                Some(Value::Str(s)) => Value::Ext(Np::Dtype(s.clone())),
                Some(Value::Bytes(b)) => {
                    Value::Ext(Np::Dtype(Rc::from(String::from_utf8_lossy(b).as_ref())))
                }
                _ => return refuse("numpy.dtype without a type string"),
            },
            Value::Ext(Np::CodecsEncode) => match (args.first(), args.get(1)) {
                (Some(Value::Str(s)), Some(Value::Str(enc)))
                    if enc.as_ref() == "latin1" || enc.as_ref() == "latin-1" =>
                {
                    let mut out = Vec::with_capacity(s.len());
                    for ch in s.chars() {
                        let c = u8::try_from(ch as u32)
                            .or_else(|_| refuse("latin1 encoding of a character above U+00FF"))?;
                        out.push(c);
                    }
                    Value::Bytes(Rc::from(out))
                }
                _ => return refuse("_codecs.encode other than (str, 'latin1')"),
            },
            other => return refuse(format!("call of a {}", other.kind())),
        })
    }

    fn build(&mut self, obj: NpValue, state: NpValue) -> std::result::Result<NpValue, HookError> {
        match obj {
            // Byte order / flags: irrelevant for single bytes.
            Value::Ext(Np::Dtype(d)) => Ok(Value::Ext(Np::Dtype(d))),
            Value::Ext(Np::Array(_)) => Ok(Value::Ext(Np::Array(Rc::new(array_state(&state)?)))),
            other => refuse(format!("BUILD of a {}", other.kind())),
        }
    }
}

/// An ndarray from its `__setstate__` tuple `(version, shape, dtype, fortran, data)`.
fn array_state(state: &NpValue) -> std::result::Result<NdArray, HookError> {
    let Value::Tuple(st) = state else {
        return refuse("ndarray state is not a tuple");
    };
    let [_version, Value::Tuple(shape), Value::Ext(Np::Dtype(dtype)), fortran, data] = st.items()
    else {
        return refuse("ndarray state is not (version, shape, dtype, fortran, data)");
    };
    let mut dims = Vec::with_capacity(shape.len());
    for d in shape.items() {
        match d {
            Value::Int(n) if *n >= 0 => dims.push(*n as usize),
            _ => return refuse("ndarray shape holds a non-integer or negative size"),
        }
    }
    let Value::Bytes(data) = data else {
        return refuse(format!("ndarray data is a {}, not bytes", data.kind()));
    };
    Ok(NdArray {
        shape: dims,
        dtype: Some(dtype.clone()),
        fortran: matches!(fortran, Value::Bool(true) | Value::Int(1)),
        data: Some(data.clone()),
    })
}

/// Runs a CIFAR python-release pickle (which must start with `PROTO 2`) to its top-level value.
pub(crate) fn parse(bytes: &[u8], path: &Path) -> Result<NpValue> {
    if bytes.first() != Some(&0x80) {
        return Err(Error::format(
            path,
            0,
            "not a protocol-2 pickle (no PROTO opcode); the CIFAR python release uses protocol 2",
        ));
    }
    pickle::load(bytes, &mut NumpyHooks, &Limits::default())
        .map(|(v, _)| v)
        .map_err(|e| Error::format(path, e.offset, e.kind.to_string()))
}
