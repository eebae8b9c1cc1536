//! The opcodes, by group. `step` dispatches; each group handles its own opcodes.

use std::rc::Rc;

use super::super::value::{Dict, Value};
use super::super::{Hooks, Opcode, PickleErrorKind as K};
use super::{Slot, Vm, R};

impl<H: Hooks> Vm<'_, H> {
    pub(super) fn step(&mut self, op: Opcode) -> R<()> {
        use Opcode as O;
        match op {
            O::Proto | O::Frame | O::Stop | O::Mark | O::Pop | O::PopMark | O::Dup => {
                self.stack_op(op)
            }
            O::None
            | O::NewTrue
            | O::NewFalse
            | O::BinInt
            | O::BinInt1
            | O::BinInt2
            | O::Long1
            | O::Long4
            | O::Int
            | O::Long
            | O::BinFloat
            | O::Float => self.scalar(op),
            O::BinUnicode
            | O::ShortBinUnicode
            | O::BinUnicode8
            | O::BinString
            | O::ShortBinString
            | O::BinBytes
            | O::ShortBinBytes
            | O::BinBytes8
            | O::ByteArray8 => self.text(op),
            O::EmptyTuple
            | O::Tuple
            | O::Tuple1
            | O::Tuple2
            | O::Tuple3
            | O::EmptyList
            | O::EmptySet
            | O::List
            | O::FrozenSet
            | O::Append
            | O::Appends
            | O::AddItems
            | O::EmptyDict
            | O::Dict
            | O::SetItem
            | O::SetItems => self.container(op),
            O::Global
            | O::StackGlobal
            | O::Reduce
            | O::NewObj
            | O::NewObjEx
            | O::Build
            | O::BinPersId
            | O::PersId => self.object(op),
            O::BinPut
            | O::LongBinPut
            | O::Put
            | O::Memoize
            | O::BinGet
            | O::LongBinGet
            | O::Get => self.memo_op(op),
            // Text-escaped strings, class instantiation by name, the extension registry and
            // out-of-band buffers: no format we read uses them.
            O::String
            | O::Unicode
            | O::Inst
            | O::Obj
            | O::Ext1
            | O::Ext2
            | O::Ext4
            | O::NextBuffer
            | O::ReadonlyBuffer => Err(K::Unsupported(op)),
        }
    }

    /// Protocol, framing and plain stack manipulation.
    fn stack_op(&mut self, op: Opcode) -> R<()> {
        use Opcode as O;
        match op {
            O::Proto => {
                let p = self.u8("protocol")?;
                self.hooks.check_protocol(p)?;
            }
            O::Frame => {
                self.u64("FRAME size")?; // a length hint only
            }
            O::Stop => return Err(K::BadStop), // `run` handles STOP
            O::Mark => self.stack.push(Slot::Mark),
            O::Pop => {
                self.stack.pop().ok_or(K::StackUnderflow)?;
            }
            O::PopMark => {
                self.pop_mark()?;
            }
            O::Dup => {
                let v = self.top()?.clone();
                self.push(v)?
            }
            _ => return Err(K::Unsupported(op)),
        }
        Ok(())
    }

    /// Numbers, booleans and None.
    fn scalar(&mut self, op: Opcode) -> R<()> {
        use Opcode as O;
        match op {
            O::None => self.push(Value::None)?,
            O::NewTrue => self.push(Value::Bool(true))?,
            O::NewFalse => self.push(Value::Bool(false))?,
            O::BinInt => {
                let v = i32::from_le_bytes(self.array("BININT")?);
                self.push(Value::Int(v as i64))?
            }
            O::BinInt1 => {
                let v = self.u8("BININT1")?;
                self.push(Value::Int(v as i64))?
            }
            O::BinInt2 => {
                let v = u16::from_le_bytes(self.array("BININT2")?);
                self.push(Value::Int(v as i64))?
            }
            O::Long1 | O::Long4 => {
                let n = if op == O::Long1 {
                    self.u8("LONG1 size")? as u64
                } else {
                    self.u32("LONG4 size")? as u64
                };
                let b = self.take(n, "LONG bytes")?;
                self.push(Self::int_bytes(b))?
            }
            O::Int => {
                let s = self.line("INT")?;
                let v = match s {
                    "00" => Value::Bool(false),
                    "01" => Value::Bool(true),
                    _ => Value::Int(s.parse().map_err(|_| K::BadNumber {
                        what: "INT",
                        text: super::super::quote(s).into_owned(),
                    })?),
                };
                self.push(v)?
            }
            O::Long => {
                let s = self.line("LONG")?;
                let v = s.trim_end_matches('L').parse().map_err(|_| K::BadNumber {
                    what: "LONG",
                    text: super::super::quote(s).into_owned(),
                })?;
                self.push(Value::Int(v))?
            }
            O::BinFloat => {
                let v = f64::from_be_bytes(self.array("BINFLOAT")?);
                self.push(Value::Float(v))?
            }
            O::Float => {
                let v = self.number("FLOAT")?;
                self.push(Value::Float(v))?
            }
            _ => return Err(K::Unsupported(op)),
        }
        Ok(())
    }

    /// Strings and bytes: each length is checked against the bytes left before anything is allocated.
    fn text(&mut self, op: Opcode) -> R<()> {
        use Opcode as O;
        match op {
            O::BinUnicode => {
                let n = self.u32("BINUNICODE size")? as u64;
                let v = self.utf8(n, "BINUNICODE")?;
                self.push(v)?
            }
            O::ShortBinUnicode => {
                let n = self.u8("SHORT_BINUNICODE size")? as u64;
                let v = self.utf8(n, "SHORT_BINUNICODE")?;
                self.push(v)?
            }
            O::BinUnicode8 => {
                let n = self.u64("BINUNICODE8 size")?;
                let v = self.utf8(n, "BINUNICODE8")?;
                self.push(v)?
            }
            O::BinString | O::ShortBinString => {
                let n = if op == O::BinString {
                    let n = i32::from_le_bytes(self.array("BINSTRING size")?);
                    // A negative size is as impossible as one past the end.
                    u64::try_from(n).unwrap_or(u64::MAX)
                } else {
                    self.u8("SHORT_BINSTRING size")? as u64
                };
                let b = self.take(n, "BINSTRING")?;
                let v = self.hooks.py2_str(b);
                self.push(v)?
            }
            O::BinBytes | O::ShortBinBytes | O::BinBytes8 | O::ByteArray8 => {
                let n = match op {
                    O::BinBytes => self.u32("BINBYTES size")? as u64,
                    O::ShortBinBytes => self.u8("SHORT_BINBYTES size")? as u64,
                    _ => self.u64("BINBYTES8 size")?,
                };
                let b = self.take(n, "BINBYTES")?;
                self.push(Value::Bytes(b.into()))?
            }
            _ => return Err(K::Unsupported(op)),
        }
        Ok(())
    }

    /// Tuples, lists (and sets), dicts.
    fn container(&mut self, op: Opcode) -> R<()> {
        use Opcode as O;
        match op {
            O::EmptyTuple => self.push(Value::tuple(Vec::new()))?,
            O::Tuple => {
                let items = self.pop_mark()?;
                self.push(Value::tuple(items))?
            }
            O::Tuple1 | O::Tuple2 | O::Tuple3 => {
                let n = (op.byte() - 0x84) as usize;
                let vals = self.stack.len().checked_sub(n).ok_or(K::StackUnderflow)?;
                if self.stack[vals..].iter().any(|s| matches!(s, Slot::Mark)) {
                    return Err(K::UnexpectedMark);
                }
                let items = self
                    .stack
                    .split_off(vals)
                    .into_iter()
                    .filter_map(|s| match s {
                        Slot::Val(v) => Some(v),
                        Slot::Mark => None,
                    })
                    .collect();
                self.push(Value::tuple(items))?
            }
            O::EmptyList | O::EmptySet => self.push(Value::list(Vec::new()))?,
            O::List | O::FrozenSet => {
                let items = self.pop_mark()?;
                self.push(Value::list(items))?
            }
            O::Append => {
                let v = self.pop()?;
                self.append(op, vec![v])?
            }
            O::Appends | O::AddItems => {
                let items = self.pop_mark()?;
                self.append(op, items)?
            }
            O::EmptyDict => self.push(Value::Dict(Rc::new(Dict::default())))?,
            O::Dict => {
                let items = self.pop_mark()?;
                self.push(Value::Dict(Rc::new(Dict::default())))?;
                self.set_items(op, items)?
            }
            O::SetItem => {
                let v = self.pop()?;
                let k = self.pop()?;
                self.set_items(op, vec![k, v])?
            }
            O::SetItems => {
                let items = self.pop_mark()?;
                self.set_items(op, items)?
            }
            _ => return Err(K::Unsupported(op)),
        }
        Ok(())
    }

    /// Everything that builds objects goes to the hooks.
    fn object(&mut self, op: Opcode) -> R<()> {
        use Opcode as O;
        match op {
            O::Global => {
                let module = self.line("GLOBAL module")?;
                let name = self.line("GLOBAL name")?;
                let v = self.hooks.find_class(module, name)?;
                self.push(v)?
            }
            O::StackGlobal => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Value::Str(module), Value::Str(name)) = (&module, &name) else {
                    return Err(K::Type {
                        op,
                        expected: "two strings",
                        found: module.kind(),
                    });
                };
                let v = self.hooks.find_class(module, name)?;
                self.push(v)?
            }
            O::Reduce | O::NewObj => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let v = self.hooks.call(callable, args)?;
                self.push(v)?
            }
            O::NewObjEx => {
                let _kwargs = self.pop()?;
                let args = self.pop()?;
                let cls = self.pop()?;
                let v = self.hooks.call(cls, args)?;
                self.push(v)?
            }
            O::Build => {
                let state = self.pop()?;
                let obj = self.pop()?;
                let v = self.hooks.build(obj, state)?;
                self.push(v)?
            }
            O::BinPersId => {
                let pid = self.pop()?;
                let v = self.hooks.persistent_load(pid)?;
                self.push(v)?
            }
            O::PersId => {
                let pid = Value::Str(self.line("PERSID")?.into());
                let v = self.hooks.persistent_load(pid)?;
                self.push(v)?
            }
            _ => return Err(K::Unsupported(op)),
        }
        Ok(())
    }

    /// The memo: values are shared, never copied.
    fn memo_op(&mut self, op: Opcode) -> R<()> {
        use Opcode as O;
        match op {
            O::BinPut => {
                let k = self.u8("BINPUT index")? as u64;
                self.memo_put(k)?
            }
            O::LongBinPut => {
                let k = self.u32("LONG_BINPUT index")? as u64;
                self.memo_put(k)?
            }
            O::Put => {
                let k = self.number("PUT index")?;
                self.memo_put(k)?
            }
            O::Memoize => {
                let k = self.memo.len() as u64;
                self.memo_put(k)?
            }
            O::BinGet => {
                let k = self.u8("BINGET index")? as u64;
                self.memo_get(k)?
            }
            O::LongBinGet => {
                let k = self.u32("LONG_BINGET index")? as u64;
                self.memo_get(k)?
            }
            O::Get => {
                let k = self.number("GET index")?;
                self.memo_get(k)?
            }
            _ => return Err(K::Unsupported(op)),
        }
        Ok(())
    }
}
