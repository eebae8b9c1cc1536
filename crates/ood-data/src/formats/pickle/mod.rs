//! The one pickle reader of the project: a non-executing virtual machine for protocols 0-5, used
//! by the CIFAR python-release reader ([`crate::formats::cifar`], numpy hooks in
//! `formats/numpy_pickle.rs`) and by `ood-nn`'s `torch.save` state-dict reader (torch hooks).
//!
//! The VM ([`load`]) executes the stack/memo opcodes ([`Opcode`]) itself and runs no code: every
//! `GLOBAL`, call (`REDUCE`, `NEWOBJ`), `BUILD` and persistent id goes to the caller's [`Hooks`],
//! which accept the few globals their format needs and interpret them, refusing anything else.
//!
//! Hostile input: memoized values are shared, never copied ([`value`]); nesting depth and the
//! objects materialised are capped ([`Limits`]); every length field is checked against the bytes
//! left before anything is allocated; errors name the byte offset and quote at most
//! [`MAX_QUOTE`] bytes of the file.

mod opcode;
pub mod value;
mod vm;

use std::borrow::Cow;

pub use opcode::Opcode;
pub use value::{Dict, Seq, Value};

/// Most bytes of hostile text quoted in an error message.
pub const MAX_QUOTE: usize = 64;

/// Caps of one [`load`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Values created, plus container items copied when a shared container is mutated.
    pub max_objects: u64,
    /// Deepest nesting of containers (also bounds the recursion of dropping a value).
    pub max_depth: u32,
}

impl Default for Limits {
    /// 2^24 objects (at most ~40 bytes each: under 1 GiB; a CIFAR batch needs ~10^4, a
    /// WideResNet state dict ~10^3) and depth 64 (CIFAR needs 3, state dicts about 6). Strings
    /// and bytes are copied from the input once, so they never exceed the input's size.
    fn default() -> Self {
        Limits {
            max_objects: 1 << 24,
            max_depth: 64,
        }
    }
}

/// A refusal or failure of a hook, with its reason (which quotes at most [`MAX_QUOTE`] bytes of
/// input: build it with [`quote`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HookError(pub Cow<'static, str>);

impl HookError {
    pub fn new(reason: impl Into<Cow<'static, str>>) -> Self {
        HookError(reason.into())
    }
}

/// `text` cut to at most [`MAX_QUOTE`] bytes (at a char boundary), `...` marking a cut.
pub fn quote(text: &str) -> Cow<'_, str> {
    if text.len() <= MAX_QUOTE {
        return Cow::Borrowed(text);
    }
    let mut end = MAX_QUOTE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}...", &text[..end]))
}

/// What a format makes of the object-building opcodes. No default runs code: a hook either
/// interprets a global it knows or refuses it.
pub trait Hooks {
    /// What globals and calls become (leaves for the VM: hooks must not nest VM containers in it).
    type Ext: Clone + std::fmt::Debug + PartialEq;

    /// `PROTO n`: protocols 0-5 exist.
    fn check_protocol(&mut self, proto: u8) -> Result<(), HookError> {
        if proto <= 5 {
            Ok(())
        } else {
            Err(HookError::new(format!(
                "pickle protocol {proto} is not supported"
            )))
        }
    }

    /// `GLOBAL` / `STACK_GLOBAL`: the value standing for `module.name`, or a refusal.
    fn find_class(&mut self, module: &str, name: &str) -> Result<Value<Self::Ext>, HookError>;

    /// `REDUCE`, `NEWOBJ`, `NEWOBJ_EX` (keyword arguments dropped): `callable(*args)`.
    fn call(
        &mut self,
        callable: Value<Self::Ext>,
        args: Value<Self::Ext>,
    ) -> Result<Value<Self::Ext>, HookError>;

    /// `BUILD`: `obj` with `state` applied.
    fn build(
        &mut self,
        obj: Value<Self::Ext>,
        state: Value<Self::Ext>,
    ) -> Result<Value<Self::Ext>, HookError>;

    /// `PERSID` / `BINPERSID` (torch storages); refused unless a format needs them.
    fn persistent_load(&mut self, pid: Value<Self::Ext>) -> Result<Value<Self::Ext>, HookError> {
        let _ = pid;
        Err(HookError::new("persistent ids are not allowed here"))
    }

    /// A Python 2 `str` (`BINSTRING`, `SHORT_BINSTRING`): bytes unless the format knows better.
    fn py2_str(&mut self, bytes: &[u8]) -> Value<Self::Ext> {
        Value::Bytes(bytes.into())
    }
}

/// Why a pickle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PickleErrorKind {
    #[error("truncated {what}: needs {needed} bytes, {left} left")]
    Truncated {
        what: &'static str,
        needed: u64,
        left: u64,
    },
    #[error("unknown pickle opcode {0:#04x}")]
    UnknownOpcode(u8),
    #[error("pickle opcode {0:?} is not supported (refused)")]
    Unsupported(Opcode),
    #[error("{op:?} on the stack: expected {expected}, found {found}")]
    Type {
        op: Opcode,
        expected: &'static str,
        found: &'static str,
    },
    #[error("pickle stack underflow")]
    StackUnderflow,
    #[error("no MARK on the pickle stack")]
    NoMark,
    #[error("unexpected MARK on the pickle stack")]
    UnexpectedMark,
    #[error("STOP with a stack that does not hold exactly one value")]
    BadStop,
    #[error("GET of unset memo slot {0}")]
    MemoMissing(u64),
    #[error("{what} is not a UTF-8 line of at most 256 bytes")]
    BadLine { what: &'static str },
    #[error("{what} {text:?} is not a number")]
    BadNumber { what: &'static str, text: String },
    #[error("invalid UTF-8 in a unicode string")]
    BadUtf8,
    #[error("containers nested deeper than {0} (refused as hostile)")]
    TooDeep(u32),
    #[error("pickle materialises more than {0} objects (refused as hostile)")]
    TooManyObjects(u64),
    #[error("{0}")]
    Hook(#[from] HookError),
}

/// A refused pickle: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: {kind}")]
pub struct PickleError {
    /// Offset of the opcode that failed, from the start of the slice given to [`load`].
    pub offset: u64,
    #[source]
    pub kind: PickleErrorKind,
}

/// Runs one pickle starting at `data[0]` up to its `STOP`. Returns the value and the bytes
/// consumed (legacy torch files hold several pickles back to back).
pub fn load<H: Hooks>(
    data: &[u8],
    hooks: &mut H,
    limits: &Limits,
) -> Result<(Value<H::Ext>, usize), PickleError> {
    vm::Vm::new(data, hooks, limits).run()
}
