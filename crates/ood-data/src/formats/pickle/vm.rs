//! The stack machine. Mutation of shared containers: a container on the stack is usually also in
//! the memo (picklers `PUT` a list right after `EMPTY_LIST`, then `APPENDS` to it). Before
//! mutating, the VM takes the container out of the memo slots that alias it (tracked by pointer),
//! so `Rc::make_mut` works in place and the memo sees the mutation afterwards, as in Python. Only
//! a container shared by something else (another container, a second stack slot) is copied, and
//! each copied item is charged against [`Limits::max_objects`]. Values never hold themselves, so
//! there are no cycles.

mod ops;

use std::collections::HashMap;
use std::rc::Rc;

use super::value::{Dict, Seq, Value};
use super::{Hooks, Limits, Opcode, PickleError, PickleErrorKind as K};

type R<T> = Result<T, K>;

enum Slot<X> {
    Mark,
    Val(Value<X>),
}

pub(super) struct Vm<'a, H: Hooks> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Slot<H::Ext>>,
    memo: HashMap<u64, Value<H::Ext>>,
    /// Container pointer -> the memo slots holding it.
    aliases: HashMap<usize, Vec<u64>>,
    objects: u64,
    hooks: &'a mut H,
    limits: &'a Limits,
}

/// Identity of a container (`None` for scalars and hook values).
fn ptr<X>(v: &Value<X>) -> Option<usize> {
    match v {
        Value::Tuple(s) | Value::List(s) => Some(Rc::as_ptr(s) as *const u8 as usize),
        Value::Dict(d) => Some(Rc::as_ptr(d) as *const u8 as usize),
        _ => None,
    }
}

impl<'a, H: Hooks> Vm<'a, H> {
    pub fn new(data: &'a [u8], hooks: &'a mut H, limits: &'a Limits) -> Self {
        Vm {
            data,
            pos: 0,
            stack: Vec::new(),
            memo: HashMap::new(),
            aliases: HashMap::new(),
            objects: 0,
            hooks,
            limits,
        }
    }

    pub fn run(mut self) -> Result<(Value<H::Ext>, usize), PickleError> {
        loop {
            let at = self.pos;
            let fail = |kind| PickleError {
                offset: at as u64,
                kind,
            };
            let byte = self.u8("pickle opcode").map_err(fail)?;
            let op = Opcode::from_byte(byte).ok_or_else(|| fail(K::UnknownOpcode(byte)))?;
            if op == Opcode::Stop {
                let v = self.pop().map_err(fail)?;
                if self.stack.iter().any(|s| matches!(s, Slot::Val(_))) {
                    return Err(fail(K::BadStop));
                }
                return Ok((v, self.pos));
            }
            self.step(op).map_err(fail)?;
        }
    }

    fn take(&mut self, n: u64, what: &'static str) -> R<&'a [u8]> {
        let left = (self.data.len() - self.pos) as u64;
        if n > left {
            return Err(K::Truncated {
                what,
                needed: n,
                left,
            });
        }
        let s = &self.data[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> R<[u8; N]> {
        let b = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }

    fn u8(&mut self, what: &'static str) -> R<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &'static str) -> R<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> R<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A `\n`-terminated text argument of at most 256 bytes.
    fn line(&mut self, what: &'static str) -> R<&'a str> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .take(257)
            .position(|&b| b == b'\n')
            .ok_or(K::BadLine { what })?;
        let s = std::str::from_utf8(&rest[..end]).map_err(|_| K::BadLine { what })?;
        self.pos += end + 1;
        Ok(s)
    }

    fn number<T: std::str::FromStr>(&mut self, what: &'static str) -> R<T> {
        let s = self.line(what)?;
        s.parse().map_err(|_| K::BadNumber {
            what,
            text: super::quote(s).into_owned(),
        })
    }

    fn utf8(&mut self, n: u64, what: &'static str) -> R<Value<H::Ext>> {
        let b = self.take(n, what)?;
        let s = std::str::from_utf8(b).map_err(|_| K::BadUtf8)?;
        Ok(Value::Str(s.into()))
    }

    fn charge(&mut self, n: u64) -> R<()> {
        self.objects += n;
        if self.objects > self.limits.max_objects {
            return Err(K::TooManyObjects(self.limits.max_objects));
        }
        Ok(())
    }

    fn push(&mut self, v: Value<H::Ext>) -> R<()> {
        self.charge(1)?;
        if v.depth() > self.limits.max_depth {
            return Err(K::TooDeep(self.limits.max_depth));
        }
        self.stack.push(Slot::Val(v));
        Ok(())
    }

    fn pop(&mut self) -> R<Value<H::Ext>> {
        match self.stack.pop() {
            Some(Slot::Val(v)) => Ok(v),
            Some(Slot::Mark) => Err(K::UnexpectedMark),
            None => Err(K::StackUnderflow),
        }
    }

    fn top(&self) -> R<&Value<H::Ext>> {
        match self.stack.last() {
            Some(Slot::Val(v)) => Ok(v),
            Some(Slot::Mark) => Err(K::UnexpectedMark),
            None => Err(K::StackUnderflow),
        }
    }

    /// Values above the topmost MARK, which is removed.
    fn pop_mark(&mut self) -> R<Vec<Value<H::Ext>>> {
        let at = self
            .stack
            .iter()
            .rposition(|s| matches!(s, Slot::Mark))
            .ok_or(K::NoMark)?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items
            .into_iter()
            .filter_map(|s| match s {
                Slot::Val(v) => Some(v),
                Slot::Mark => None, // impossible: the topmost mark is at `at`
            })
            .collect())
    }

    fn memo_put(&mut self, key: u64) -> R<()> {
        let v = self.top()?.clone();
        if let Some(p) = ptr(&v) {
            self.aliases.entry(p).or_default().push(key);
        }
        if let Some(old) = self.memo.insert(key, v) {
            if let Some(p) = ptr(&old) {
                if let Some(keys) = self.aliases.get_mut(&p) {
                    if let Some(i) = keys.iter().position(|&k| k == key) {
                        keys.swap_remove(i);
                    }
                    if keys.is_empty() {
                        self.aliases.remove(&p);
                    }
                }
            }
        }
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> R<()> {
        let v = self.memo.get(&key).cloned().ok_or(K::MemoMissing(key))?;
        self.push(v)
    }

    /// Pops the top container, applies `f` to its contents (copying them only when something
    /// besides the memo shares them), and pushes it back; the memo slots follow.
    fn mutate_top(&mut self, op: Opcode, f: impl FnOnce(Mutable<'_, H::Ext>) -> R<()>) -> R<()> {
        let mut target = self.pop()?;
        let keys = ptr(&target)
            .and_then(|p| self.aliases.remove(&p))
            .unwrap_or_default();
        for k in &keys {
            self.memo.remove(k);
        }
        let (shared, len) = match &target {
            Value::List(s) => (Rc::strong_count(s) > 1, s.len()),
            Value::Dict(d) => (Rc::strong_count(d) > 1, d.len()),
            other => {
                return Err(K::Type {
                    op,
                    expected: if matches!(op, Opcode::SetItem | Opcode::SetItems) {
                        "dict"
                    } else {
                        "list"
                    },
                    found: other.kind(),
                })
            }
        };
        if shared {
            self.charge(len as u64)?;
        }
        match &mut target {
            Value::List(s) => f(Mutable::List(Rc::make_mut(s)))?,
            Value::Dict(d) => f(Mutable::Dict(Rc::make_mut(d)))?,
            _ => {}
        }
        if target.depth() > self.limits.max_depth {
            return Err(K::TooDeep(self.limits.max_depth));
        }
        if let Some(p) = ptr(&target) {
            for &k in &keys {
                self.memo.insert(k, target.clone());
            }
            if !keys.is_empty() {
                self.aliases.insert(p, keys);
            }
        }
        self.stack.push(Slot::Val(target));
        Ok(())
    }

    fn append(&mut self, op: Opcode, items: Vec<Value<H::Ext>>) -> R<()> {
        self.mutate_top(op, |m| match m {
            Mutable::List(s) => {
                s.extend(items);
                Ok(())
            }
            Mutable::Dict(_) => Err(K::Type {
                op,
                expected: "list",
                found: "dict",
            }),
        })
    }

    fn set_items(&mut self, op: Opcode, items: Vec<Value<H::Ext>>) -> R<()> {
        if items.len() % 2 == 1 {
            return Err(K::Type {
                op,
                expected: "key/value pairs",
                found: "an odd number of values",
            });
        }
        self.mutate_top(op, |m| match m {
            Mutable::Dict(d) => {
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    d.insert(k, v);
                }
                Ok(())
            }
            Mutable::List(_) => Err(K::Type {
                op,
                expected: "dict",
                found: "list",
            }),
        })
    }

    fn int_bytes(b: &[u8]) -> Value<H::Ext> {
        if b.len() > 8 {
            return Value::BigInt(b.into());
        }
        let fill = if b.last().is_some_and(|&x| x & 0x80 != 0) {
            0xff
        } else {
            0
        };
        let mut buf = [fill; 8];
        buf[..b.len()].copy_from_slice(b);
        Value::Int(i64::from_le_bytes(buf))
    }
}

/// The contents of a container being mutated.
enum Mutable<'m, X> {
    List(&'m mut Seq<X>),
    Dict(&'m mut Dict<X>),
}
