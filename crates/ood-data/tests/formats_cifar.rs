//! CIFAR readers on tiny batches written here: the binary release, and the python release as
//! Python 2's cPickle (protocol 2, `str` data) and Python 3's pickle (protocol 2, `_codecs.encode`)
//! write it; cross-checked against a real numpy pickle when the project's `.venv` exists.

use std::path::{Path, PathBuf};

use ood_data::formats::cifar::{parse_bin, parse_pickle, read_batches, CifarLabels};
use ood_data::Error;

/// Pixel value of image `n` at (row y, col x, channel c).
fn px(n: usize, y: usize, x: usize, c: usize) -> u8 {
    (n * 7 + y * 3 + x * 5 + c * 11) as u8
}

/// One image in CIFAR's planar layout.
fn planar(n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(3072);
    for c in 0..3 {
        for y in 0..32 {
            for x in 0..32 {
                v.push(px(n, y, x, c));
            }
        }
    }
    v
}

fn check_images(set: &ood_data::ImageSet, n: usize) {
    assert_eq!(set.images.shape(), &[n, 32, 32, 3]);
    for (i, y, x, c) in [
        (0, 0, 0, 0),
        (n - 1, 31, 31, 2),
        (n - 1, 5, 17, 1),
        (0, 30, 2, 2),
    ] {
        assert_eq!(
            set.images[[i, y, x, c]],
            px(i, y, x, c),
            "pixel {i} {y} {x} {c}"
        );
    }
}

#[test]
fn binary_cifar10_and_cifar100() {
    let p = Path::new("data_batch_1.bin");
    let mut b10 = Vec::new();
    for (n, l) in [(0, 6u8), (1, 9), (2, 0)] {
        b10.push(l);
        b10.extend(planar(n));
    }
    let s = parse_bin(&b10, p, CifarLabels::Cifar10).unwrap();
    check_images(&s, 3);
    assert_eq!(s.labels.unwrap().to_vec(), vec![6, 9, 0]);

    let mut b100 = Vec::new();
    for (n, coarse, fine) in [(0, 11u8, 19u8), (1, 19, 99)] {
        b100.extend([coarse, fine]);
        b100.extend(planar(n));
    }
    let fine = parse_bin(&b100, p, CifarLabels::Cifar100Fine).unwrap();
    check_images(&fine, 2);
    assert_eq!(fine.labels.unwrap().to_vec(), vec![19, 99]);
    let coarse = parse_bin(&b100, p, CifarLabels::Cifar100Coarse).unwrap();
    assert_eq!(coarse.labels.unwrap().to_vec(), vec![11, 19]);

    // Truncated record: error at the start of the partial record.
    match parse_bin(&b10[..3 * 3073 - 1], p, CifarLabels::Cifar10).unwrap_err() {
        Error::Format { offset, .. } => assert_eq!(offset, 2 * 3073),
        e => panic!("{e}"),
    }
    // A label out of range names its byte.
    let mut bad = b10.clone();
    bad[3073] = 10;
    match parse_bin(&bad, p, CifarLabels::Cifar10).unwrap_err() {
        Error::Format {
            offset, message, ..
        } => assert!(offset == 3073 && message.contains("label 10"), "{message}"),
        e => panic!("{e}"),
    }
    // A CIFAR-10 file read as CIFAR-100 does not divide into records.
    assert!(parse_bin(&b10, p, CifarLabels::Cifar100Fine).is_err());
    assert!(parse_bin(&[], p, CifarLabels::Cifar10).is_err());
}

/// A tiny protocol-2 pickle writer producing the opcodes of Python 2's cPickle (`py2 = true`:
/// `str` as SHORT_BINSTRING/BINSTRING) or Python 3's pickle (`false`: BINUNICODE keys, bytes as
/// `_codecs.encode(latin1 text, 'latin1')`).
struct Pickler {
    out: Vec<u8>,
    py2: bool,
    memo: u8,
}

impl Pickler {
    fn new(py2: bool) -> Self {
        Pickler {
            out: vec![0x80, 2],
            py2,
            memo: 0,
        }
    }
    fn put(&mut self) {
        self.out.extend([b'q', self.memo]);
        self.memo = self.memo.wrapping_add(1);
    }
    fn text(&mut self, s: &str) {
        if self.py2 {
            self.out.extend([b'U', s.len() as u8]);
        } else {
            self.out.push(b'X');
            self.out.extend((s.len() as u32).to_le_bytes());
        }
        self.out.extend(s.as_bytes());
        self.put();
    }
    fn bytes(&mut self, b: &[u8]) {
        if self.py2 {
            self.out.push(b'T');
            self.out.extend((b.len() as u32).to_le_bytes());
            self.out.extend(b);
        } else {
            self.out.extend(b"c_codecs\nencode\n");
            let utf8: String = b.iter().map(|&c| c as char).collect();
            self.out.push(b'X');
            self.out.extend((utf8.len() as u32).to_le_bytes());
            self.out.extend(utf8.as_bytes());
            self.text("latin1");
            self.out.extend([0x86, b'R']);
        }
        self.put();
    }
    fn int(&mut self, v: i64) {
        match v {
            0..=255 => self.out.extend([b'K', v as u8]),
            256..=65535 => {
                self.out.push(b'M');
                self.out.extend((v as u16).to_le_bytes());
            }
            _ => {
                self.out.push(b'J');
                self.out.extend((v as i32).to_le_bytes());
            }
        }
    }
    fn int_list(&mut self, v: &[i64]) {
        self.out.push(b']');
        self.put();
        for chunk in v.chunks(1000) {
            self.out.push(b'(');
            for &x in chunk {
                self.int(x);
            }
            self.out.push(b'e');
        }
    }
    fn ndarray_u8(&mut self, rows: usize, data: &[u8]) {
        self.out.extend(b"cnumpy.core.multiarray\n_reconstruct\n");
        self.put();
        self.out.extend(b"cnumpy\nndarray\n");
        self.put();
        self.int(0);
        self.out.push(0x85);
        self.bytes(b"b");
        self.out.extend([0x87, b'R']);
        self.put();
        self.out.push(b'(');
        self.int(1);
        self.int(rows as i64);
        self.int(3072);
        self.out.push(0x86);
        self.out.extend(b"cnumpy\ndtype\n");
        self.text("u1");
        self.int(0);
        self.int(1);
        self.out.extend([0x87, b'R']);
        self.out.push(b'(');
        self.int(3);
        self.text("|");
        self.out.extend(b"NNN");
        self.int(-1);
        self.int(-1);
        self.int(0);
        self.out.extend(b"tb");
        self.out.push(0x89); // not Fortran order
        self.bytes(data);
        self.out.extend(b"tb");
    }
    fn cifar_batch(mut self, n: usize, label_keys: &[(&str, Vec<i64>)]) -> Vec<u8> {
        self.out.push(b'}');
        self.put();
        self.out.push(b'(');
        self.text("batch_label");
        self.text("testing batch 1 of 1");
        for (k, v) in label_keys {
            self.text(k);
            self.int_list(v);
        }
        self.text("data");
        let data: Vec<u8> = (0..n).flat_map(planar).collect();
        self.ndarray_u8(n, &data);
        self.text("filenames");
        self.out.push(b']');
        self.put();
        self.out.push(b'(');
        for i in 0..n {
            self.text(&format!("img_{i}.png"));
        }
        self.out.extend(b"eu.");
        self.out
    }
}

#[test]
fn python_release_cifar10_both_picklers() {
    for py2 in [true, false] {
        let bytes = Pickler::new(py2).cifar_batch(3, &[("labels", vec![3, 8, 0])]);
        let s = parse_pickle(&bytes, Path::new("data_batch_1"), CifarLabels::Cifar10).unwrap();
        check_images(&s, 3);
        assert_eq!(s.labels.unwrap().to_vec(), vec![3, 8, 0], "py2 = {py2}");
    }
}

#[test]
fn python_release_cifar100_fine_and_coarse() {
    let bytes = Pickler::new(true).cifar_batch(
        2,
        &[
            ("fine_labels", vec![49, 99]),
            ("coarse_labels", vec![10, 19]),
        ],
    );
    let p = Path::new("train");
    assert_eq!(
        parse_pickle(&bytes, p, CifarLabels::Cifar100Fine)
            .unwrap()
            .labels
            .unwrap()
            .to_vec(),
        vec![49, 99]
    );
    assert_eq!(
        parse_pickle(&bytes, p, CifarLabels::Cifar100Coarse)
            .unwrap()
            .labels
            .unwrap()
            .to_vec(),
        vec![10, 19]
    );
    // A CIFAR-100 batch read as CIFAR-10 misses `labels`.
    let err = parse_pickle(&bytes, p, CifarLabels::Cifar10)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`labels`"), "{err}");
}

#[test]
fn pickle_rejections() {
    let p = Path::new("evil");
    let good = Pickler::new(true).cifar_batch(1, &[("labels", vec![3])]);
    // Protocol other than 2.
    let mut v4 = good.clone();
    v4[1] = 4;
    let e = parse_pickle(&v4, p, CifarLabels::Cifar10)
        .unwrap_err()
        .to_string();
    assert!(e.contains("protocol 4"), "{e}");
    // No PROTO at all (protocol 0 text pickle).
    assert!(parse_pickle(b"(dp0\n.", p, CifarLabels::Cifar10).is_err());
    // A global that would run code.
    let evil = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.";
    let e = parse_pickle(evil, p, CifarLabels::Cifar10).unwrap_err();
    match e {
        Error::Format {
            offset, message, ..
        } => assert!(offset == 2 && message.contains("os.system"), "{message}"),
        e => panic!("{e}"),
    }
    // Huge declared string: error, not allocation.
    let huge = b"\x80\x02T\xff\xff\xff\x7f.";
    assert!(parse_pickle(huge, p, CifarLabels::Cifar10)
        .unwrap_err()
        .to_string()
        .contains("truncated"));
    // Label out of range, and truncation anywhere.
    let bad_label = Pickler::new(true).cifar_batch(1, &[("labels", vec![10])]);
    assert!(parse_pickle(&bad_label, p, CifarLabels::Cifar10).is_err());
    for cut in [3, good.len() / 2, good.len() - 1] {
        assert!(
            parse_pickle(&good[..cut], p, CifarLabels::Cifar10).is_err(),
            "cut at {cut}"
        );
    }
    // Deeply nested tuples are refused before they can exhaust the stack.
    let mut deep = vec![0x80, 2, b')'];
    deep.extend(std::iter::repeat_n(0x85, 100_000));
    deep.push(b'.');
    assert!(parse_pickle(&deep, p, CifarLabels::Cifar10)
        .unwrap_err()
        .to_string()
        .contains("nested"));
}

#[test]
fn read_batches_concatenates_and_detects_release() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("data_batch_1.bin");
    let mut bin = vec![1u8];
    bin.extend(planar(0));
    std::fs::write(&a, &bin).unwrap();
    let b = dir.path().join("data_batch_2");
    std::fs::write(
        &b,
        Pickler::new(false).cifar_batch(2, &[("labels", vec![4, 5])]),
    )
    .unwrap();
    let s = read_batches(&[a, b], CifarLabels::Cifar10).unwrap();
    assert_eq!(s.len(), 3);
    assert_eq!(s.labels.unwrap().to_vec(), vec![1, 4, 5]);
    assert_eq!(s.images[[2, 31, 31, 2]], px(1, 31, 31, 2));
}

/// Cross-check against a pickle written by real numpy (protocol 2), when the project's venv exists.
#[test]
fn real_numpy_pickle_when_python_present() {
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    if !py.exists() {
        eprintln!("skipped: {} absent", py.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("data_batch_1");
    let script = "import pickle,sys,numpy as np\n\
        n=4\n\
        d=np.array([[[[(i*7+y*3+x*5+c*11)%256 for x in range(32)] for y in range(32)] for c in range(3)] for i in range(n)],dtype=np.uint8).reshape(n,3072)\n\
        pickle.dump({b'batch_label':b'x',b'labels':[9,0,1,2],b'data':d,b'filenames':[b'a']*n},open(sys.argv[1],'wb'),protocol=2)\n";
    let st = std::process::Command::new(&py)
        .arg("-c")
        .arg(script)
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let s = read_batches(&[out], CifarLabels::Cifar10).unwrap();
    check_images(&s, 4);
    assert_eq!(s.labels.unwrap().to_vec(), vec![9, 0, 1, 2]);
}
