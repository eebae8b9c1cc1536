//! SVHN `.mat` reader on tiny MAT v5 files written here (plain and zlib-compressed elements, the
//! small-element tag form), cross-checked against scipy's `savemat` when the project's `.venv` exists.

use std::io::Write;
use std::path::Path;

use ood_data::formats::svhn_mat::{parse_mat, parse_svhn, read_svhn, MatData};
use ood_data::Error;

fn header() -> Vec<u8> {
    let mut h = b"MATLAB 5.0 MAT-file, Platform: GLNXA64, Created on: Thu Nov 26 2026".to_vec();
    h.resize(116, b' ');
    h.extend([0u8; 8]);
    h.extend([0x00, 0x01]);
    h.extend(b"IM");
    h
}

fn element(ty: u32, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    if data.len() <= 4 && ty != 14 {
        // Small data element form.
        v.extend((((data.len() as u32) << 16) | ty).to_le_bytes());
        v.extend(data);
        v.resize(8, 0);
        return v;
    }
    v.extend(ty.to_le_bytes());
    v.extend((data.len() as u32).to_le_bytes());
    v.extend(data);
    while v.len() % 8 != 0 {
        v.push(0);
    }
    v
}

/// An miMATRIX element: class, dims, name, real part of storage type `ty`.
fn matrix(name: &str, class: u8, dims: &[i32], ty: u32, real: &[u8]) -> Vec<u8> {
    let mut body = element(6, &[class, 0, 0, 0, 0, 0, 0, 0]);
    body.extend(element(
        5,
        &dims
            .iter()
            .flat_map(|d| d.to_le_bytes())
            .collect::<Vec<_>>(),
    ));
    body.extend(element(1, name.as_bytes()));
    body.extend(element(ty, real));
    let mut v = 14u32.to_le_bytes().to_vec();
    v.extend((body.len() as u32).to_le_bytes());
    v.extend(body);
    v
}

fn compressed(m: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(m).unwrap();
    let data = z.finish().unwrap();
    let mut v = 15u32.to_le_bytes().to_vec();
    v.extend((data.len() as u32).to_le_bytes());
    v.extend(data);
    v
}

/// Pixel of image n at (row y, col x, channel c).
fn px(n: usize, y: usize, x: usize, c: usize) -> u8 {
    (n * 13 + y * 3 + x * 7 + c * 17) as u8
}

/// X in MATLAB's column-major order: row fastest, then column, channel, image.
fn x_column_major(n: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..n {
        for c in 0..3 {
            for x in 0..32 {
                for y in 0..32 {
                    v.push(px(i, y, x, c));
                }
            }
        }
    }
    v
}

fn svhn_file(n: usize, labels: &[f64], compress: bool) -> Vec<u8> {
    let x = matrix("X", 9, &[32, 32, 3, n as i32], 2, &x_column_major(n));
    let ybytes: Vec<u8> = labels.iter().flat_map(|l| l.to_le_bytes()).collect();
    let y = matrix("y", 6, &[n as i32, 1], 9, &ybytes);
    let mut f = header();
    for m in [x, y] {
        f.extend(if compress { compressed(&m) } else { m });
    }
    f
}

#[test]
fn reads_plain_and_compressed_svhn() {
    for compress in [false, true] {
        let f = svhn_file(3, &[1.0, 10.0, 5.0], compress);
        let s = parse_svhn(&f, Path::new("train_32x32.mat")).unwrap();
        assert_eq!(s.images.shape(), &[3, 32, 32, 3]);
        assert_eq!(
            s.labels.unwrap().to_vec(),
            vec![1, 0, 5],
            "10 means digit 0"
        );
        for (i, y, x, c) in [(0, 0, 0, 0), (2, 31, 0, 2), (1, 4, 29, 1)] {
            assert_eq!(s.images[[i, y, x, c]], px(i, y, x, c));
        }
    }
}

#[test]
fn labels_stored_compactly_as_uint8() {
    // MATLAB stores a double array whose values fit in uint8 as miUINT8.
    let x = matrix("X", 9, &[32, 32, 3, 2], 2, &x_column_major(2));
    let y = matrix("y", 6, &[2, 1], 2, &[10, 3]);
    let mut f = header();
    f.extend(compressed(&x));
    f.extend(y);
    let vars = parse_mat(&f, Path::new("a.mat")).unwrap();
    assert_eq!(vars[1].data, MatData::U8(vec![10, 3]));
    assert_eq!(
        parse_svhn(&f, Path::new("a.mat"))
            .unwrap()
            .labels
            .unwrap()
            .to_vec(),
        vec![0, 3]
    );
}

#[test]
fn rejections_name_offsets() {
    let p = Path::new("t.mat");
    let off = |b: &[u8]| match parse_svhn(b, p).unwrap_err() {
        Error::Format {
            offset, message, ..
        } => (offset, message),
        e => panic!("{e}"),
    };
    let plain = svhn_file(2, &[1.0, 2.0], false);
    // Truncated anywhere.
    for cut in [10, 130, plain.len() / 2, plain.len() - 3] {
        assert!(parse_svhn(&plain[..cut], p).is_err(), "cut {cut}");
    }
    // v7.3 and big-endian.
    let mut v73 = plain.clone();
    v73[..10].copy_from_slice(b"MATLAB 7.3");
    assert!(off(&v73).1.contains("7.3"));
    let mut be = plain.clone();
    be[126..128].copy_from_slice(b"MI");
    assert_eq!(off(&be).0, 126);
    // Dimensions that disagree with the data: X says 4 images, holds 2. The error points at the
    // real-part sub-element of the first matrix.
    let mut f = header();
    f.extend(matrix("X", 9, &[32, 32, 3, 4], 2, &x_column_major(2)));
    let (o, m) = off(&f);
    assert!(o > 128 && m.contains("dimensions"), "{o} {m}");
    // Labels out of range.
    assert!(off(&svhn_file(1, &[11.0], true)).1.contains("1..=10"));
    assert!(off(&svhn_file(1, &[2.5], false)).1.contains("y[0]"));
    // Corrupt compressed stream: error at the compressed element's offset.
    let mut c = svhn_file(1, &[1.0], true);
    let n = c.len();
    c[n - 20] ^= 0x55;
    c[n - 21] ^= 0xaa;
    assert!(parse_svhn(&c, p).is_err());
    // A compressed element whose inner tag claims 4 GB.
    let mut f = header();
    let mut m = matrix("X", 9, &[1, 1], 2, &[0]);
    m[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    f.extend(compressed(&m));
    let (o, msg) = off(&f);
    assert_eq!(o, 128);
    assert!(msg.contains("declares"), "{msg}");
}

/// The real files are written by MATLAB; scipy's `savemat(do_compression=True)` writes the same
/// level-5 structure, so reading its output is an independent check of the reader.
#[test]
fn scipy_savemat_when_python_present() {
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    if !py.exists() {
        eprintln!("skipped: {} absent", py.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for compress in ["True", "False"] {
        let out = dir.path().join(format!("svhn_{compress}.mat"));
        let script = format!(
            "import sys,numpy as np,scipy.io as sio\n\
             n=3\n\
             X=np.zeros((32,32,3,n),dtype=np.uint8)\n\
             for i in range(n):\n  for y in range(32):\n    for x in range(32):\n      for c in range(3): X[y,x,c,i]=(i*13+y*3+x*7+c*17)%256\n\
             sio.savemat(sys.argv[1],{{'X':X,'y':np.array([[10.],[1.],[7.]])}},do_compression={compress})\n"
        );
        let st = std::process::Command::new(&py)
            .arg("-c")
            .arg(&script)
            .arg(&out)
            .status()
            .unwrap();
        assert!(st.success());
        let s = read_svhn(&out).unwrap();
        assert_eq!(s.labels.unwrap().to_vec(), vec![0, 1, 7]);
        for (i, y, x, c) in [(0, 0, 0, 0), (2, 31, 5, 2), (1, 7, 30, 1)] {
            assert_eq!(
                s.images[[i, y, x, c]],
                px(i, y, x, c),
                "compress={compress}"
            );
        }
    }
}
