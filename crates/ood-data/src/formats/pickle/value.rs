//! Values of the pickle VM. Containers are reference-counted and SHARED: a memo reference (`GET`,
//! `DUP`) clones an `Rc`, never the contents, so a pickle of nested shared containers (the
//! "billion laughs" shape) costs memory proportional to its own length. Values are immutable once
//! shared, which also makes reference cycles impossible (see `vm.rs` for how mutation works).
//!
//! A shared value is a DAG: code that walks one recursively must not assume a tree (a walk can
//! visit a node 2^depth times). Consumers look values up by key instead of walking, and error
//! messages describe a value by [`Value::kind`], never by `Debug` of hostile content.

use std::collections::HashMap;
use std::rc::Rc;

/// A decoded pickle value. `X` is what the caller's [`super::Hooks`] make of globals and calls
/// (e.g. a numpy array, a torch tensor reference); such values are leaves for the VM.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<X> {
    None,
    Bool(bool),
    Int(i64),
    /// An integer that does not fit in i64: little-endian two's complement bytes.
    BigInt(Rc<[u8]>),
    Float(f64),
    Str(Rc<str>),
    /// Python 3 `bytes` (and Python 2 `str` when the hooks ask for bytes).
    Bytes(Rc<[u8]>),
    Tuple(Rc<Seq<X>>),
    /// A list; also a set or frozenset (element order as pickled).
    List(Rc<Seq<X>>),
    Dict(Rc<Dict<X>>),
    Ext(X),
}

/// The items of a tuple or list with their nesting depth.
#[derive(Debug, Clone, PartialEq)]
pub struct Seq<X> {
    items: Vec<Value<X>>,
    depth: u32,
}

/// An insertion-ordered dict. Keys that are scalars replace an earlier equal key as in Python;
/// other keys (tuples, ...) are kept as given, never compared (comparing two shared DAGs could
/// take exponential time).
#[derive(Debug, Clone)]
pub struct Dict<X> {
    entries: Vec<(Value<X>, Value<X>)>,
    index: HashMap<Key, usize>,
    depth: u32,
}

impl<X: PartialEq> PartialEq for Dict<X> {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

/// A hashable scalar key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    None,
    Int(i64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
}

impl<X> Value<X> {
    /// Short type name for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Ext(_) => "object",
        }
    }

    /// Containers nested inside this value, counting itself (0 for a scalar).
    pub fn depth(&self) -> u32 {
        match self {
            Value::Tuple(s) | Value::List(s) => s.depth,
            Value::Dict(d) => d.depth,
            _ => 0,
        }
    }

    /// Text of a `str` or `bytes` value (dict keys of Python 2 pickles are `str` = bytes).
    pub fn as_text(&self) -> Option<&[u8]> {
        match self {
            Value::Str(s) => Some(s.as_bytes()),
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// Items of a tuple or list.
    pub fn as_items(&self) -> Option<&[Value<X>]> {
        match self {
            Value::Tuple(s) | Value::List(s) => Some(&s.items),
            _ => None,
        }
    }

    pub fn tuple(items: Vec<Value<X>>) -> Self {
        Value::Tuple(Rc::new(Seq::new(items)))
    }

    pub fn list(items: Vec<Value<X>>) -> Self {
        Value::List(Rc::new(Seq::new(items)))
    }

    fn key(&self) -> Option<Key> {
        Some(match self {
            Value::None => Key::None,
            Value::Bool(b) => Key::Int(*b as i64),
            Value::Int(i) => Key::Int(*i),
            Value::Str(s) => Key::Str(s.clone()),
            Value::Bytes(b) => Key::Bytes(b.clone()),
            _ => return None,
        })
    }
}

impl<X> Seq<X> {
    pub fn new(items: Vec<Value<X>>) -> Self {
        let depth = 1 + items.iter().map(Value::depth).max().unwrap_or(0);
        Seq { items, depth }
    }

    pub fn items(&self) -> &[Value<X>] {
        &self.items
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn depth(&self) -> u32 {
        self.depth
    }

    pub(super) fn extend(&mut self, items: Vec<Value<X>>) {
        for v in &items {
            self.depth = self.depth.max(1 + v.depth());
        }
        self.items.extend(items);
    }
}

impl<X> Default for Dict<X> {
    fn default() -> Self {
        Dict {
            entries: Vec::new(),
            index: HashMap::new(),
            depth: 1,
        }
    }
}

impl<X> Dict<X> {
    pub fn entries(&self) -> &[(Value<X>, Value<X>)] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// The value of a `str` or `bytes` key spelled `key`.
    pub fn get_text(&self, key: &str) -> Option<&Value<X>> {
        let at = self
            .index
            .get(&Key::Str(Rc::from(key)))
            .or_else(|| self.index.get(&Key::Bytes(Rc::from(key.as_bytes()))))?;
        Some(&self.entries[*at].1)
    }

    pub fn insert(&mut self, k: Value<X>, v: Value<X>) {
        self.depth = self.depth.max(1 + k.depth()).max(1 + v.depth());
        match k.key() {
            Some(key) => match self.index.get(&key) {
                Some(&at) => self.entries[at].1 = v,
                None => {
                    self.index.insert(key, self.entries.len());
                    self.entries.push((k, v));
                }
            },
            None => self.entries.push((k, v)),
        }
    }
}
