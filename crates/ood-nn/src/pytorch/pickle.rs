//! A small pickle virtual machine for the subset `torch.save` writes (protocol 2 by default; the
//! opcodes of protocols 0-5 that can appear in a state dict are accepted).
//!
//! Calls (`REDUCE`, `NEWOBJ`) are not executed: the few callables a state dict needs
//! (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`, `_rebuild_parameter`) are
//! interpreted here, anything else is kept as an inert [`Value::Call`]. Persistent ids (how torch
//! refers to tensor storages) are resolved by a caller-supplied function.
//!
//! Containers are values, not shared references: a container mutated after it was memoized keeps
//! its old contents in the memo. Torch state dicts never re-reference a mutated container.

/// A decoded pickle value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer that does not fit in i64: little-endian two's complement bytes.
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// Insertion-ordered (also `collections.OrderedDict`).
    Dict(Vec<(Value, Value)>),
    /// A `GLOBAL` reference, e.g. `torch.FloatStorage`.
    Global {
        module: String,
        name: String,
    },
    /// A call we do not interpret, with the state `BUILD` gave it.
    Call {
        callable: Box<Value>,
        args: Box<Value>,
        state: Option<Box<Value>>,
    },
    /// What the persistent-id resolver returned for a storage.
    Storage(StorageRef),
    /// A tensor view of a storage (`_rebuild_tensor_v2`).
    Tensor(TensorRef),
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

/// Where and why decoding failed.
#[derive(Debug, Clone, PartialEq)]
pub struct PickleError {
    pub offset: u64,
    pub reason: String,
}

type PResult<T> = std::result::Result<T, PickleError>;

enum Item {
    Value(Value),
    Mark,
}

/// Decodes one pickle starting at `data[0]`. Returns the value and the number of bytes consumed
/// (the legacy torch format is several pickles back to back). `persistent_load` turns a persistent
/// id into a value (for torch: a [`Value::Storage`]).
pub fn load(
    data: &[u8],
    persistent_load: &mut dyn FnMut(Value) -> std::result::Result<Value, String>,
) -> PResult<(Value, usize)> {
    let mut vm = Vm {
        data,
        pos: 0,
        stack: Vec::new(),
        memo: std::collections::HashMap::new(),
    };
    let value = vm.run(persistent_load)?;
    Ok((value, vm.pos))
}

struct Vm<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Item>,
    memo: std::collections::HashMap<u64, Value>,
}

impl<'a> Vm<'a> {
    fn err<T>(&self, reason: impl Into<String>) -> PResult<T> {
        Err(PickleError {
            offset: self.pos as u64,
            reason: reason.into(),
        })
    }

    fn take(&mut self, n: usize) -> PResult<&'a [u8]> {
        if self.data.len() - self.pos < n {
            return self.err(format!("truncated: needed {n} more bytes"));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> PResult<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> PResult<u16> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().unwrap_or_default(),
        ))
    }
    fn u32(&mut self) -> PResult<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> PResult<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn line(&mut self) -> PResult<&'a str> {
        let rest = &self.data[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return self.err("unterminated text argument");
        };
        let s = std::str::from_utf8(&rest[..end])
            .or_else(|_| self.err("text argument is not UTF-8"))?;
        self.pos += end + 1;
        Ok(s)
    }
    fn utf8(&mut self, n: usize) -> PResult<String> {
        let b = self.take(n)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => self.err("string is not UTF-8"),
        }
    }

    fn push(&mut self, v: Value) {
        self.stack.push(Item::Value(v));
    }
    fn pop(&mut self) -> PResult<Value> {
        match self.stack.pop() {
            Some(Item::Value(v)) => Ok(v),
            Some(Item::Mark) => self.err("unexpected MARK on the stack"),
            None => self.err("stack underflow"),
        }
    }
    fn top(&mut self) -> PResult<&mut Value> {
        match self.stack.last_mut() {
            Some(Item::Value(v)) => Ok(v),
            _ => Err(PickleError {
                offset: self.pos as u64,
                reason: "stack underflow".into(),
            }),
        }
    }
    /// Pops everything above the topmost MARK (and the mark).
    fn pop_mark(&mut self) -> PResult<Vec<Value>> {
        let Some(i) = self.stack.iter().rposition(|it| matches!(it, Item::Mark)) else {
            return self.err("no MARK on the stack");
        };
        let items = self.stack.split_off(i + 1);
        self.stack.pop();
        Ok(items
            .into_iter()
            .map(|it| match it {
                Item::Value(v) => v,
                Item::Mark => Value::None,
            })
            .collect())
    }
    fn memo_put(&mut self, key: u64) -> PResult<()> {
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }
    fn memo_get(&mut self, key: u64) -> PResult<()> {
        match self.memo.get(&key) {
            Some(v) => {
                let v = v.clone();
                self.push(v);
                Ok(())
            }
            None => self.err(format!("memo key {key} was never stored")),
        }
    }

    fn run(
        &mut self,
        persistent_load: &mut dyn FnMut(Value) -> std::result::Result<Value, String>,
    ) -> PResult<Value> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if proto > 5 {
                        return self.err(format!("unsupported pickle protocol {proto}"));
                    }
                }
                0x95 => {
                    self.u64()?; // FRAME: a length hint only
                }
                b'.' => return self.pop(),
                b'(' => self.stack.push(Item::Mark),
                b'0' => {
                    self.stack.pop();
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v);
                }
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push(Value::Int(v as i64))
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v as i64))
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Value::Int(v as i64))
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.u8()? as usize
                    } else {
                        self.u32()? as usize
                    };
                    let bytes = self.take(n)?;
                    if n > 8 {
                        let big = bytes.to_vec();
                        self.push(Value::BigInt(big));
                        continue;
                    }
                    let mut v: i64 = 0;
                    for (i, b) in bytes.iter().enumerate() {
                        v |= (*b as i64) << (8 * i);
                    }
                    if n > 0 && n < 8 && bytes[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n);
                    }
                    self.push(Value::Int(v))
                }
                b'I' => {
                    let s = self.line()?;
                    let v = match s {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        _ => match s.parse::<i64>() {
                            Ok(i) => Value::Int(i),
                            Err(_) => return self.err(format!("bad INT {s:?}")),
                        },
                    };
                    self.push(v)
                }
                b'L' => {
                    let s = self.line()?.trim_end_matches('L');
                    match s.parse::<i64>() {
                        Ok(i) => self.push(Value::Int(i)),
                        Err(_) => return self.err(format!("bad LONG {s:?}")),
                    }
                }
                b'G' => {
                    let b = self.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    self.push(Value::Float(f64::from_be_bytes(a)))
                }
                b'F' => {
                    let s = self.line()?;
                    match s.parse::<f64>() {
                        Ok(f) => self.push(Value::Float(f)),
                        Err(_) => return self.err(format!("bad FLOAT {s:?}")),
                    }
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let s = self.utf8(n)?;
                    self.push(Value::Str(s))
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let s = self.utf8(n)?;
                    self.push(Value::Str(s))
                }
                0x8d => {
                    let n = self.u64()? as usize;
                    let s = self.utf8(n)?;
                    self.push(Value::Str(s))
                }
                // Python 2 str: text in practice (legacy checkpoints' keys).
                b'T' | b'U' => {
                    let n = if op == b'T' {
                        self.u32()? as usize
                    } else {
                        self.u8()? as usize
                    };
                    let b = self.take(n)?;
                    self.push(Value::Str(String::from_utf8_lossy(b).into_owned()))
                }
                b'B' | b'C' | 0x8e => {
                    let n = match op {
                        b'B' => self.u32()? as usize,
                        b'C' => self.u8()? as usize,
                        _ => self.u64()? as usize,
                    };
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b))
                }
                b')' => self.push(Value::Tuple(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Tuple(items))
                }
                0x85 | 0x86 | 0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Value::Tuple(items))
                }
                b']' => self.push(Value::List(Vec::new())),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Value::List(items))
                }
                b'a' => {
                    let v = self.pop()?;
                    match self.top()? {
                        Value::List(l) => l.push(v),
                        _ => return self.err("APPEND to a non-list"),
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    match self.top()? {
                        Value::List(l) => l.extend(items),
                        _ => return self.err("APPENDS to a non-list"),
                    }
                }
                b'}' => self.push(Value::Dict(Vec::new())),
                b'd' => {
                    let items = self.pop_mark()?;
                    let d = pairs(items).or_else(|e| self.err(e))?;
                    self.push(Value::Dict(d))
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![(k, v)])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let d = pairs(items).or_else(|e| self.err(e))?;
                    self.set_items(d)?;
                }
                0x8f => self.push(Value::List(Vec::new())),
                0x90 => {
                    let items = self.pop_mark()?;
                    match self.top()? {
                        Value::List(l) => l.extend(items),
                        _ => return self.err("ADDITEMS to a non-set"),
                    }
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.push(Value::List(items))
                }
                b'c' => {
                    let module = self.line()?.to_owned();
                    let name = self.line()?.to_owned();
                    self.push(Value::Global { module, name })
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(module), Value::Str(name)) => {
                            self.push(Value::Global { module, name })
                        }
                        _ => return self.err("STACK_GLOBAL needs two strings"),
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = call(callable, args).or_else(|e| self.err(e))?;
                    self.push(v)
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = call(cls, args).or_else(|e| self.err(e))?;
                    self.push(v)
                }
                0x92 => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = call(cls, args).or_else(|e| self.err(e))?;
                    self.push(v)
                }
                b'b' => {
                    let state = self.pop()?;
                    match self.top()? {
                        Value::Call { state: s, .. } => *s = Some(Box::new(state)),
                        // OrderedDict's BUILD sets attributes such as `_metadata`: not needed.
                        _ => {}
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = persistent_load(pid).or_else(|e| self.err(e))?;
                    self.push(v)
                }
                b'P' => {
                    let pid = Value::Str(self.line()?.to_owned());
                    let v = persistent_load(pid).or_else(|e| self.err(e))?;
                    self.push(v)
                }
                b'q' => {
                    let k = self.u8()? as u64;
                    self.memo_put(k)?
                }
                b'r' => {
                    let k = self.u32()? as u64;
                    self.memo_put(k)?
                }
                b'p' => {
                    let s = self.line()?;
                    let k = s
                        .parse::<u64>()
                        .or_else(|_| self.err(format!("bad PUT {s:?}")))?;
                    self.memo_put(k)?
                }
                0x94 => {
                    let k = self.memo.len() as u64;
                    self.memo_put(k)?
                }
                b'h' => {
                    let k = self.u8()? as u64;
                    self.memo_get(k)?
                }
                b'j' => {
                    let k = self.u32()? as u64;
                    self.memo_get(k)?
                }
                b'g' => {
                    let s = self.line()?;
                    let k = s
                        .parse::<u64>()
                        .or_else(|_| self.err(format!("bad GET {s:?}")))?;
                    self.memo_get(k)?
                }
                _ => {
                    self.pos -= 1;
                    return self.err(format!("unsupported pickle opcode 0x{op:02x}"));
                }
            }
        }
    }

    fn set_items(&mut self, items: Vec<(Value, Value)>) -> PResult<()> {
        match self.top()? {
            Value::Dict(d) => {
                for (k, v) in items {
                    match d.iter_mut().find(|(dk, _)| *dk == k) {
                        Some(slot) => slot.1 = v,
                        None => d.push((k, v)),
                    }
                }
                Ok(())
            }
            _ => self.err("SETITEM(S) on a non-dict"),
        }
    }
}

fn pairs(items: Vec<Value>) -> std::result::Result<Vec<(Value, Value)>, String> {
    if items.len() % 2 != 0 {
        return Err("odd number of items for a dict".into());
    }
    let mut it = items.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

fn int_list(v: &Value, what: &str) -> std::result::Result<Vec<i64>, String> {
    match v {
        Value::Tuple(items) | Value::List(items) => items
            .iter()
            .map(|x| match x {
                Value::Int(i) => Ok(*i),
                other => Err(format!("{what}: expected an int, got {other:?}")),
            })
            .collect(),
        other => Err(format!("{what}: expected a tuple of ints, got {other:?}")),
    }
}

/// Interprets the callables a torch state dict uses; keeps any other call inert.
fn call(callable: Value, args: Value) -> std::result::Result<Value, String> {
    let (module, name) = match &callable {
        Value::Global { module, name } => (module.as_str(), name.as_str()),
        _ => {
            return Ok(Value::Call {
                callable: Box::new(callable),
                args: Box::new(args),
                state: None,
            })
        }
    };
    let argv = match &args {
        Value::Tuple(a) => a.as_slice(),
        _ => &[],
    };
    match (module, name) {
        ("collections", "OrderedDict") => match argv.first() {
            None => Ok(Value::Dict(Vec::new())),
            Some(Value::List(items)) => {
                let mut d = Vec::new();
                for item in items {
                    match item {
                        Value::Tuple(kv) if kv.len() == 2 => d.push((kv[0].clone(), kv[1].clone())),
                        other => return Err(format!("OrderedDict item is not a pair: {other:?}")),
                    }
                }
                Ok(Value::Dict(d))
            }
            Some(other) => Err(format!("OrderedDict argument not understood: {other:?}")),
        },
        ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => {
            if argv.len() < 4 {
                return Err(format!(
                    "{name}: expected at least 4 arguments, got {}",
                    argv.len()
                ));
            }
            let storage = match &argv[0] {
                Value::Storage(s) => s.clone(),
                other => {
                    return Err(format!(
                        "{name}: first argument is not a storage: {other:?}"
                    ))
                }
            };
            let offset = match &argv[1] {
                Value::Int(i) => *i,
                other => return Err(format!("{name}: storage offset is not an int: {other:?}")),
            };
            let size = int_list(&argv[2], "tensor size")?;
            let stride = int_list(&argv[3], "tensor stride")?;
            if size.len() != stride.len() {
                return Err(format!(
                    "tensor size {size:?} and stride {stride:?} differ in rank"
                ));
            }
            Ok(Value::Tensor(TensorRef {
                storage,
                offset,
                size,
                stride,
            }))
        }
        ("torch._utils", "_rebuild_parameter")
        | ("torch._utils", "_rebuild_parameter_with_state") => match argv.first() {
            Some(t @ Value::Tensor(_)) => Ok(t.clone()),
            other => Err(format!("{name}: first argument is not a tensor: {other:?}")),
        },
        _ => Ok(Value::Call {
            callable: Box::new(callable),
            args: Box::new(args),
            state: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_pid(_: Value) -> std::result::Result<Value, String> {
        Err("no persistent ids here".into())
    }

    #[test]
    fn decodes_python_protocol2_dict() {
        // pickle.dumps({'a': 1, 'b': [1.5, -3], 'c': ('x', None, True), 'd': 70000, 'e': -2**40}, protocol=2)
        let data: &[u8] = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01K\x01X\x01\x00\x00\x00bq\x02]q\x03(G?\xf8\x00\x00\x00\x00\x00\x00J\xfd\xff\xff\xffeX\x01\x00\x00\x00cq\x04X\x01\x00\x00\x00xq\x05N\x88\x87q\x06X\x01\x00\x00\x00dq\x07J\x70\x11\x01\x00X\x01\x00\x00\x00eq\x08\x8a\x06\x00\x00\x00\x00\x00\xffu.";
        let (v, used) = load(data, &mut no_pid).unwrap();
        assert_eq!(used, data.len());
        let s = |x: &str| Value::Str(x.into());
        assert_eq!(
            v,
            Value::Dict(vec![
                (s("a"), Value::Int(1)),
                (s("b"), Value::List(vec![Value::Float(1.5), Value::Int(-3)])),
                (
                    s("c"),
                    Value::Tuple(vec![s("x"), Value::None, Value::Bool(true)])
                ),
                (s("d"), Value::Int(70000)),
                (s("e"), Value::Int(-(1i64 << 40))),
            ])
        );
    }

    #[test]
    fn memo_and_ordered_dict() {
        // pickle.dumps(collections.OrderedDict([('k', 'v'), ('k2', 'v')]), protocol=2) with a BINGET
        let data: &[u8] = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(X\x01\x00\x00\x00kq\x02X\x01\x00\x00\x00vq\x03X\x02\x00\x00\x00k2q\x04h\x03u.";
        let (v, _) = load(data, &mut no_pid).unwrap();
        let s = |x: &str| Value::Str(x.into());
        assert_eq!(v, Value::Dict(vec![(s("k"), s("v")), (s("k2"), s("v"))]));
    }

    #[test]
    fn truncated_input_names_the_offset() {
        let err = load(b"\x80\x02X\x05\x00\x00\x00ab", &mut no_pid).unwrap_err();
        assert_eq!(err.offset, 7);
        assert!(err.reason.contains("truncated"), "{}", err.reason);
    }

    #[test]
    fn unknown_opcode_is_an_error_not_a_panic() {
        let err = load(b"\x80\x02\xff", &mut no_pid).unwrap_err();
        assert_eq!(err.offset, 2);
        assert!(err.reason.contains("0xff"));
    }
}
