//! The one pickle VM (`ood_data::formats::pickle`): plain values, memo sharing, the caps against
//! expansion ("billion laughs", quadratic copies, nesting) and error offsets. The CIFAR caller is
//! tested here too; the torch caller in crates/ood-nn/tests/pytorch_hostile.rs.

use std::path::Path;
use std::time::{Duration, Instant};

use ood_data::formats::cifar::{parse_pickle, CifarLabels};
use ood_data::formats::pickle::{load, HookError, Hooks, Limits, PickleErrorKind, Value};

/// Hooks that refuse every global: the VM alone.
struct Plain;

impl Hooks for Plain {
    type Ext = ();
    fn find_class(&mut self, module: &str, name: &str) -> Result<Value<()>, HookError> {
        Err(HookError::new(format!("global {module}.{name} refused")))
    }
    fn call(&mut self, _: Value<()>, _: Value<()>) -> Result<Value<()>, HookError> {
        Err(HookError::new("call refused"))
    }
    fn build(&mut self, _: Value<()>, _: Value<()>) -> Result<Value<()>, HookError> {
        Err(HookError::new("build refused"))
    }
}

fn run(data: &[u8]) -> Result<Value<()>, ood_data::formats::pickle::PickleError> {
    load(data, &mut Plain, &Limits::default()).map(|(v, _)| v)
}

fn s(x: &str) -> Value<()> {
    Value::Str(x.into())
}

/// "Billion laughs": `levels` containers, each holding its predecessor (a memo reference) twice,
/// cycling list / tuple / dict, inside a top-level dict `{'data': ...}`. Copied instead of shared,
/// level 30 would be 2^30 nodes (tens of GB).
pub fn laughs(levels: u32) -> Vec<u8> {
    let mut p = b"\x80\x02}q\x00X\x04\x00\x00\x00data]r\x01\x00\x00\x00K\x07a0".to_vec();
    for i in 1..=levels {
        let get = |p: &mut Vec<u8>| {
            p.push(b'j');
            p.extend_from_slice(&i.to_le_bytes());
        };
        p.push(b'(');
        match i % 3 {
            0 => {
                p.extend_from_slice(b"K\x00");
                get(&mut p);
                p.extend_from_slice(b"K\x01");
                get(&mut p);
                p.push(b'd');
            }
            1 => {
                get(&mut p);
                get(&mut p);
                p.push(b'l');
            }
            _ => {
                get(&mut p);
                get(&mut p);
                p.push(b't');
            }
        }
        p.push(b'r');
        p.extend_from_slice(&(i + 1).to_le_bytes());
        p.push(b'0');
    }
    p.push(b'j');
    p.extend_from_slice(&(levels + 1).to_le_bytes());
    p.extend_from_slice(b"s.");
    p
}

// LONG_BINGET i reads slot i: the predecessor is stored at slot i (level i-1 PUTs i).
#[test]
fn billion_laughs_is_shared_not_copied() {
    let bomb = laughs(30);
    assert!(bomb.len() < 3 * 1024, "{} bytes", bomb.len());
    let t = Instant::now();
    let v = run(&bomb).unwrap();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let Value::Dict(d) = v else {
        panic!("not a dict")
    };
    let data = d.get_text("data").unwrap();
    assert_eq!(data.depth(), 31);
    // Shared: the two items of the top container are the same allocation.
    let Value::Dict(top) = data else {
        panic!("level 30 is a dict")
    };
    match top.entries() {
        [(_, Value::Tuple(a)), (_, Value::Tuple(b))] => assert!(std::rc::Rc::ptr_eq(a, b)),
        _ => panic!("level 30 holds level 29, a tuple, twice"),
    }
}

#[test]
fn billion_laughs_through_the_cifar_reader_fails_fast() {
    let t = Instant::now();
    let err = parse_pickle(&laughs(30), Path::new("laughs"), CifarLabels::Cifar10)
        .unwrap_err()
        .to_string();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(
        err.contains("laughs") && err.contains("`data` is a dict"),
        "{err}"
    );
}

#[test]
fn nesting_beyond_the_cap_is_refused() {
    let err = run(&laughs(70)).unwrap_err();
    assert_eq!(err.kind, PickleErrorKind::TooDeep(64));
    let small = Limits {
        max_depth: 10,
        ..Limits::default()
    };
    let err = load(&laughs(12), &mut Plain, &small).unwrap_err();
    assert_eq!(err.kind, PickleErrorKind::TooDeep(10));
}

/// `EMPTY_LIST`, then n times `DUP, BININT1 0, APPEND`: every append mutates a list that the
/// slot below shares, so each one copies; 20,000 appends (80 KB) would copy 2*10^8 items.
#[test]
fn quadratic_copies_are_capped() {
    let mut p = b"\x80\x02]".to_vec();
    for _ in 0..20_000 {
        p.extend_from_slice(b"2K\x00a");
    }
    p.push(b'.');
    let t = Instant::now();
    let small = Limits {
        max_objects: 1 << 20,
        ..Limits::default()
    };
    let err = load(&p, &mut Plain, &small).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(err.kind, PickleErrorKind::TooManyObjects(1 << 20));
    // About 1,450 appends reach 2^20 copied items.
    assert!((5_000..8_000).contains(&err.offset), "{}", err.offset);
    // The same appends on a list only the memo shares mutate in place: accepted, no copy.
    let mut p = b"\x80\x02]q\x00".to_vec();
    for _ in 0..20_000 {
        p.extend_from_slice(b"K\x00a");
    }
    p.extend_from_slice(b"0h\x00.");
    let v = run(&p).unwrap();
    assert_eq!(v.as_items().unwrap().len(), 20_000);
}

#[test]
fn memo_sees_mutations_like_python() {
    // l = []; memo[0] = l; l.append(1); d = {'a': l, 'b': memo[0]}
    let p = b"\x80\x02]q\x00K\x01a0}(X\x01\x00\x00\x00ah\x00X\x01\x00\x00\x00bh\x00u.";
    let Value::Dict(d) = run(p).unwrap() else {
        panic!()
    };
    let one = Value::list(vec![Value::Int(1)]);
    assert_eq!(d.entries(), &[(s("a"), one.clone()), (s("b"), one)]);
}

#[test]
fn plain_values_of_protocol_2() {
    // pickle.dumps({'a': 1, 'b': [1.5, -3], 'c': ('x', None, True), 'd': 70000, 'e': -2**40}, protocol=2)
    let data: &[u8] = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01K\x01X\x01\x00\x00\x00bq\x02]q\x03(G?\xf8\x00\x00\x00\x00\x00\x00J\xfd\xff\xff\xffeX\x01\x00\x00\x00cq\x04X\x01\x00\x00\x00xq\x05N\x88\x87q\x06X\x01\x00\x00\x00dq\x07J\x70\x11\x01\x00X\x01\x00\x00\x00eq\x08\x8a\x06\x00\x00\x00\x00\x00\xffu.";
    let (v, used) = load(data, &mut Plain, &Limits::default()).unwrap();
    assert_eq!(used, data.len());
    let Value::Dict(d) = v else { panic!() };
    assert_eq!(
        d.entries(),
        &[
            (s("a"), Value::Int(1)),
            (s("b"), Value::list(vec![Value::Float(1.5), Value::Int(-3)])),
            (
                s("c"),
                Value::tuple(vec![s("x"), Value::None, Value::Bool(true)])
            ),
            (s("d"), Value::Int(70000)),
            (s("e"), Value::Int(-(1i64 << 40))),
        ]
    );
    // A repeated key replaces the value in place, as in Python.
    let p = b"\x80\x02}(K\x01K\x02K\x03K\x04K\x01K\x05u.";
    let Value::Dict(d) = run(p).unwrap() else {
        panic!()
    };
    assert_eq!(
        d.entries(),
        &[
            (Value::Int(1), Value::Int(5)),
            (Value::Int(3), Value::Int(4))
        ]
    );
}

#[test]
fn errors_name_the_offset_and_quote_little() {
    let err = run(b"\x80\x02X\x05\x00\x00\x00ab").unwrap_err();
    assert_eq!(err.offset, 2);
    assert!(err.to_string().contains("truncated BINUNICODE"), "{err}");
    let err = run(b"\x80\x02\xff").unwrap_err();
    assert_eq!(
        (err.offset, err.kind),
        (2, PickleErrorKind::UnknownOpcode(0xff))
    );
    // Huge declared lengths are compared with the bytes left, never allocated.
    for p in [
        &b"\x80\x02X\xff\xff\xff\xff."[..],
        b"\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\xff.",
        b"\x80\x02\x8b\xff\xff\xff\x7f.",
        b"\x80\x02T\xff\xff\xff\xff.",
    ] {
        let e = run(p).unwrap_err();
        assert!(matches!(e.kind, PickleErrorKind::Truncated { .. }), "{e}");
    }
    // A long hostile number is quoted in at most 64 bytes.
    let mut p = b"\x80\x02I".to_vec();
    p.extend(std::iter::repeat_n(b'9', 250));
    p.extend_from_slice(b"x\n.");
    let e = run(&p).unwrap_err().to_string();
    assert!(e.len() < 120, "{e}");
    // Globals go to the hooks.
    let e = run(b"\x80\x02cos\nsystem\n.").unwrap_err();
    assert_eq!(e.offset, 2);
    assert!(e.to_string().contains("os.system refused"), "{e}");
}
