//! A minimal, non-executing reader of Python pickles: exactly what the CIFAR "python version"
//! batches need, nothing more.
//!
//! Those files are protocol-2 pickles of a dict whose values are byte strings, lists of ints or
//! strings, and one numpy `uint8` array (pickled through `numpy.core.multiarray._reconstruct`,
//! `numpy.ndarray`, `numpy.dtype`, then `BUILD` with the raw bytes). The reader is a stack machine
//! over the opcodes such files use; the only callables it accepts are those numpy
//! reconstructors and `_codecs.encode` (Python 3's protocol-2 spelling of `bytes`), which it
//! interprets itself. Any other global, opcode or protocol is rejected with its byte offset, so a
//! hostile pickle can neither run code nor allocate more than the file's own bytes (plus bounded
//! copy-on-write work).

use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

use super::bytes::Cursor;
use crate::Result;

/// Deepest nesting of tuples accepted (numpy's state tuples need 3).
const MAX_TUPLE_DEPTH: u8 = 8;
/// Elements that copy-on-write of shared lists/dicts may copy in total.
const MAX_COPY_WORK: usize = 1 << 26;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Callable {
    Reconstruct,
    NdArrayType,
    Dtype,
    CodecsEncode,
}

/// A numpy array as pickled: shape, dtype string (e.g. "u1"), raw data.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NdArray {
    pub shape: Vec<usize>,
    pub dtype: Option<String>,
    pub fortran: bool,
    pub data: Option<Rc<[u8]>>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Python 2 `str` / Python 3 `bytes`.
    Bytes(Rc<[u8]>),
    Str(Rc<str>),
    /// Items and nesting depth.
    Tuple(Rc<Vec<Value>>, u8),
    List(Rc<Vec<Value>>),
    Dict(Rc<Vec<(Value, Value)>>),
    Global(Callable),
    Dtype(Rc<str>),
    Array(Rc<NdArray>),
}

impl Value {
    fn is_scalar(&self) -> bool {
        matches!(
            self,
            Value::None
                | Value::Bool(_)
                | Value::Int(_)
                | Value::Float(_)
                | Value::Bytes(_)
                | Value::Str(_)
        )
    }

    fn tuple_depth(&self) -> u8 {
        match self {
            Value::Tuple(_, d) => *d,
            _ => 0,
        }
    }

    /// The key text of a dict key (`bytes` or `str`).
    pub fn as_key(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            Value::Str(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Bytes(_) => "bytes",
            Value::Str(_) => "str",
            Value::Tuple(..) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global(_) => "global",
            Value::Dtype(_) => "numpy.dtype",
            Value::Array(_) => "numpy.ndarray",
        }
    }
}

enum Slot {
    Mark,
    Val(Value),
}

struct Machine<'a> {
    cur: Cursor<'a>,
    stack: Vec<Slot>,
    memo: HashMap<u32, Value>,
    copy_work: usize,
    /// Offset of the opcode being executed (for errors).
    op_at: usize,
}

/// Parses a protocol-2 pickle into its top-level value.
pub(crate) fn parse(bytes: &[u8], path: &Path) -> Result<Value> {
    let mut m = Machine {
        cur: Cursor::new(bytes, path),
        stack: Vec::new(),
        memo: HashMap::new(),
        copy_work: 0,
        op_at: 0,
    };
    if bytes.first() != Some(&0x80) {
        return Err(m.cur.error_at(
            0,
            "not a protocol-2 pickle (no PROTO opcode); the CIFAR python release uses protocol 2",
        ));
    }
    loop {
        m.op_at = m.cur.pos();
        let op = m.cur.u8("pickle opcode")?;
        if op == b'.' {
            return match (m.stack.pop(), m.stack.is_empty()) {
                (Some(Slot::Val(v)), true) => Ok(v),
                _ => Err(m.err("STOP with a stack that does not hold exactly one value")),
            };
        }
        m.step(op)?;
    }
}

impl<'a> Machine<'a> {
    fn err(&self, msg: impl Into<String>) -> crate::Error {
        self.cur.error_at(self.op_at, msg)
    }

    fn push(&mut self, v: Value) {
        self.stack.push(Slot::Val(v));
    }

    fn pop(&mut self) -> Result<Value> {
        match self.stack.pop() {
            Some(Slot::Val(v)) => Ok(v),
            Some(Slot::Mark) => Err(self.err("unexpected MARK on the stack")),
            None => Err(self.err("pickle stack underflow")),
        }
    }

    /// Values above the topmost MARK (the mark is removed).
    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let at = self
            .stack
            .iter()
            .rposition(|s| matches!(s, Slot::Mark))
            .ok_or_else(|| self.err("no MARK on the stack"))?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items
            .into_iter()
            .map(|s| match s {
                Slot::Val(v) => v,
                Slot::Mark => unreachable!("topmost mark found above"),
            })
            .collect())
    }

    fn tuple(&self, items: Vec<Value>) -> Result<Value> {
        let depth = 1 + items.iter().map(Value::tuple_depth).max().unwrap_or(0);
        if depth > MAX_TUPLE_DEPTH {
            return Err(self.err(format!("tuples nested deeper than {MAX_TUPLE_DEPTH}")));
        }
        Ok(Value::Tuple(Rc::new(items), depth))
    }

    fn charge_copy(&mut self, len: usize) -> Result<()> {
        self.copy_work += len;
        if self.copy_work > MAX_COPY_WORK {
            return Err(self.err("pickle re-shares containers too often (refused as hostile)"));
        }
        Ok(())
    }

    fn append(&mut self, items: Vec<Value>) -> Result<()> {
        if let Some(bad) = items.iter().find(|v| !v.is_scalar()) {
            return Err(self.err(format!(
                "list item of type {} (only scalars are accepted)",
                bad.kind()
            )));
        }
        let list = self.pop()?;
        let Value::List(mut rc) = list else {
            return Err(self.err(format!("APPEND to a {}", list.kind())));
        };
        if Rc::strong_count(&rc) > 1 {
            self.charge_copy(rc.len())?;
        }
        Rc::make_mut(&mut rc).extend(items);
        self.push(Value::List(rc));
        Ok(())
    }

    fn set_items(&mut self, items: Vec<Value>) -> Result<()> {
        if items.len() % 2 == 1 {
            return Err(self.err("SETITEMS with an odd number of values"));
        }
        for (i, v) in items.iter().enumerate() {
            let ok = if i % 2 == 0 {
                v.is_scalar()
            } else {
                v.is_scalar() || matches!(v, Value::List(_) | Value::Array(_))
            };
            if !ok {
                return Err(self.err(format!(
                    "dict {} of type {}",
                    if i % 2 == 0 { "key" } else { "value" },
                    v.kind()
                )));
            }
        }
        let dict = self.pop()?;
        let Value::Dict(mut rc) = dict else {
            return Err(self.err(format!("SETITEM on a {}", dict.kind())));
        };
        if Rc::strong_count(&rc) > 1 {
            self.charge_copy(rc.len())?;
        }
        let d = Rc::make_mut(&mut rc);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            d.push((k, v));
        }
        self.push(Value::Dict(rc));
        Ok(())
    }

    fn string(&mut self, n: usize, what: &str) -> Result<Rc<[u8]>> {
        Ok(Rc::from(self.cur.take(n, what)?))
    }

    fn unicode(&mut self, n: usize) -> Result<Value> {
        let at = self.cur.pos();
        let b = self.cur.take(n, "unicode string")?;
        let s = std::str::from_utf8(b).map_err(|e| {
            self.cur
                .error_at(at + e.valid_up_to(), "invalid UTF-8 in unicode string")
        })?;
        Ok(Value::Str(Rc::from(s)))
    }

    /// One `\n`-terminated line of a GLOBAL opcode.
    fn line(&mut self, what: &str) -> Result<String> {
        let rest = &self.cur.data()[self.cur.pos()..];
        let n = rest
            .iter()
            .take(257)
            .position(|&b| b == b'\n')
            .ok_or_else(|| {
                self.cur
                    .error(format!("{what} is not a line of at most 256 bytes"))
            })?;
        let text = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.cur.skip(n + 1, what)?;
        Ok(text)
    }

    fn global(&mut self) -> Result<Value> {
        let module = self.line("GLOBAL module")?;
        let name = self.line("GLOBAL name")?;
        let c = match (module.as_str(), name.as_str()) {
            ("numpy.core.multiarray" | "numpy._core.multiarray", "_reconstruct") => {
                Callable::Reconstruct
            }
            ("numpy", "ndarray") => Callable::NdArrayType,
            ("numpy", "dtype") => Callable::Dtype,
            ("_codecs", "encode") => Callable::CodecsEncode,
            _ => {
                return Err(self.err(format!(
                    "pickle refers to {module}.{name}, which a CIFAR batch never does"
                )))
            }
        };
        Ok(Value::Global(c))
    }

    fn reduce(&mut self) -> Result<()> {
        let args = self.pop()?;
        let f = self.pop()?;
        let Value::Tuple(args, _) = args else {
            return Err(self.err(format!(
                "REDUCE arguments are a {}, not a tuple",
                args.kind()
            )));
        };
        let v = match f {
            Value::Global(Callable::Reconstruct) => match args.first() {
                Some(Value::Global(Callable::NdArrayType)) => Value::Array(Rc::new(NdArray {
                    shape: vec![0],
                    dtype: None,
                    fortran: false,
                    data: None,
                })),
                _ => return Err(self.err("_reconstruct of something other than numpy.ndarray")),
            },
            Value::Global(Callable::Dtype) => match args.first() {
                Some(Value::Str(s)) => Value::Dtype(s.clone()),
                Some(Value::Bytes(b)) => {
                    Value::Dtype(Rc::from(String::from_utf8_lossy(b).as_ref()))
                }
                _ => return Err(self.err("numpy.dtype without a type string")),
            },
            Value::Global(Callable::CodecsEncode) => match (args.first(), args.get(1)) {
                (Some(Value::Str(s)), Some(Value::Str(enc)))
                    if enc.as_ref() == "latin1" || enc.as_ref() == "latin-1" =>
                {
                    let mut out = Vec::with_capacity(s.len());
                    for ch in s.chars() {
                        let c = ch as u32;
                        if c > 255 {
                            return Err(self.err("latin1 encoding of a character above U+00FF"));
                        }
                        out.push(c as u8);
                    }
                    Value::Bytes(Rc::from(out))
                }
                _ => return Err(self.err("_codecs.encode other than (str, 'latin1')")),
            },
            other => return Err(self.err(format!("REDUCE of a {}", other.kind()))),
        };
        self.push(v);
        Ok(())
    }

    fn build(&mut self) -> Result<()> {
        let state = self.pop()?;
        let obj = self.pop()?;
        let v = match obj {
            Value::Dtype(d) => Value::Dtype(d), // byte order / flags: irrelevant for single bytes
            Value::Array(_) => {
                let Value::Tuple(st, _) = state else {
                    return Err(self.err("ndarray state is not a tuple"));
                };
                let [_version, Value::Tuple(shape, _), Value::Dtype(dtype), fortran, data] =
                    st.as_slice()
                else {
                    return Err(
                        self.err("ndarray state is not (version, shape, dtype, fortran, data)")
                    );
                };
                let mut dims = Vec::with_capacity(shape.len());
                for d in shape.iter() {
                    match d {
                        Value::Int(n) if *n >= 0 => dims.push(*n as usize),
                        _ => {
                            return Err(
                                self.err("ndarray shape holds a non-integer or negative size")
                            )
                        }
                    }
                }
                let fortran = matches!(fortran, Value::Bool(true) | Value::Int(1));
                let data = match data {
                    Value::Bytes(b) => b.clone(),
                    _ => {
                        return Err(
                            self.err(format!("ndarray data is a {}, not bytes", data.kind()))
                        )
                    }
                };
                Value::Array(Rc::new(NdArray {
                    shape: dims,
                    dtype: Some(dtype.to_string()),
                    fortran,
                    data: Some(data),
                }))
            }
            other => return Err(self.err(format!("BUILD of a {}", other.kind()))),
        };
        self.push(v);
        Ok(())
    }

    fn step(&mut self, op: u8) -> Result<()> {
        match op {
            0x80 => {
                let proto = self.cur.u8("protocol")?;
                if proto != 2 {
                    return Err(self.err(format!(
                        "pickle protocol {proto} is not supported (the CIFAR python release uses protocol 2)"
                    )));
                }
            }
            b'(' => self.stack.push(Slot::Mark),
            b'N' => self.push(Value::None),
            0x88 => self.push(Value::Bool(true)),
            0x89 => self.push(Value::Bool(false)),
            b'K' => {
                let v = self.cur.u8("BININT1")?;
                self.push(Value::Int(v as i64))
            }
            b'M' => {
                let v = self.cur.u16_le("BININT2")?;
                self.push(Value::Int(v as i64))
            }
            b'J' => {
                let v = self.cur.i32_le("BININT")?;
                self.push(Value::Int(v as i64))
            }
            0x8a => {
                let n = self.cur.u8("LONG1 size")? as usize;
                if n > 8 {
                    return Err(self.err(format!("LONG1 of {n} bytes exceeds 64 bits")));
                }
                let b = self.cur.take(n, "LONG1")?;
                let mut buf = if b.last().is_some_and(|&x| x & 0x80 != 0) {
                    [0xff; 8]
                } else {
                    [0; 8]
                };
                buf[..n].copy_from_slice(b);
                self.push(Value::Int(i64::from_le_bytes(buf)))
            }
            b'G' => {
                let b = self.cur.take(8, "BINFLOAT")?;
                self.push(Value::Float(f64::from_be_bytes(
                    b.try_into().expect("8 bytes"),
                )))
            }
            b'U' => {
                let n = self.cur.u8("SHORT_BINSTRING size")? as usize;
                let s = self.string(n, "SHORT_BINSTRING")?;
                self.push(Value::Bytes(s))
            }
            b'T' => {
                let n = self.cur.i32_le("BINSTRING size")?;
                if n < 0 {
                    return Err(self.err("negative BINSTRING size"));
                }
                let s = self.string(n as usize, "BINSTRING")?;
                self.push(Value::Bytes(s))
            }
            b'C' => {
                let n = self.cur.u8("SHORT_BINBYTES size")? as usize;
                let s = self.string(n, "SHORT_BINBYTES")?;
                self.push(Value::Bytes(s))
            }
            b'B' => {
                let n = self.cur.u32_le("BINBYTES size")? as usize;
                let s = self.string(n, "BINBYTES")?;
                self.push(Value::Bytes(s))
            }
            b'X' => {
                let n = self.cur.u32_le("BINUNICODE size")? as usize;
                let v = self.unicode(n)?;
                self.push(v)
            }
            b')' => {
                let t = self.tuple(Vec::new())?;
                self.push(t)
            }
            b't' => {
                let items = self.pop_mark()?;
                let t = self.tuple(items)?;
                self.push(t)
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if self.stack.len() < n {
                    return Err(self.err("pickle stack underflow"));
                }
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop()?);
                }
                items.reverse();
                let t = self.tuple(items)?;
                self.push(t)
            }
            b']' => self.push(Value::List(Rc::new(Vec::new()))),
            b'l' => {
                let items = self.pop_mark()?;
                self.push(Value::List(Rc::new(Vec::new())));
                self.append(items)?
            }
            b'}' => self.push(Value::Dict(Rc::new(Vec::new()))),
            b'd' => {
                let items = self.pop_mark()?;
                self.push(Value::Dict(Rc::new(Vec::new())));
                self.set_items(items)?
            }
            b'a' => {
                let v = self.pop()?;
                self.append(vec![v])?
            }
            b'e' => {
                let items = self.pop_mark()?;
                self.append(items)?
            }
            b's' => {
                let v = self.pop()?;
                let k = self.pop()?;
                self.set_items(vec![k, v])?
            }
            b'u' => {
                let items = self.pop_mark()?;
                self.set_items(items)?
            }
            b'q' | b'r' => {
                let idx = if op == b'q' {
                    self.cur.u8("BINPUT index")? as u32
                } else {
                    self.cur.u32_le("LONG_BINPUT index")?
                };
                let top = match self.stack.last() {
                    Some(Slot::Val(v)) => v.clone(),
                    _ => return Err(self.err("PUT with no value on the stack")),
                };
                self.memo.insert(idx, top);
            }
            b'h' | b'j' => {
                let idx = if op == b'h' {
                    self.cur.u8("BINGET index")? as u32
                } else {
                    self.cur.u32_le("LONG_BINGET index")?
                };
                let v = self
                    .memo
                    .get(&idx)
                    .cloned()
                    .ok_or_else(|| self.err(format!("GET of unset memo slot {idx}")))?;
                self.push(v)
            }
            b'0' => {
                self.stack
                    .pop()
                    .ok_or_else(|| self.err("POP of an empty stack"))?;
            }
            b'c' => {
                let g = self.global()?;
                self.push(g)
            }
            b'R' => self.reduce()?,
            b'b' => self.build()?,
            _ => {
                return Err(self.err(format!(
                    "pickle opcode {op:#04x} is not used by CIFAR batches (refused)"
                )))
            }
        }
        if self.stack.len() > 1 << 20 {
            return Err(self.err("pickle stack deeper than 2^20 entries"));
        }
        Ok(())
    }
}
