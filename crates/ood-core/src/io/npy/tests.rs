use super::header::MAGIC;
use super::*;

fn raw_file(dir: &Path, name: &str, header: &str, payload: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, raw_v1(header, payload)).unwrap();
    path
}

#[test]
fn roundtrip_vector_matrix_labels() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v.npy");
    write_f64_vector(&p, &[1.5, -2.0, 3.25]).unwrap();
    assert_eq!(read_f64_vector(&p).unwrap(), vec![1.5, -2.0, 3.25]);
    // header padded so the data starts on a 64-byte boundary, like NumPy
    assert_eq!((std::fs::read(&p).unwrap().len() - 24) % 64, 0);

    let m = Array2::from_shape_vec((2, 3), vec![1., 2., 3., 4., 5., 6.]).unwrap();
    let p = dir.path().join("m.npy");
    write_f64_matrix(&p, &m).unwrap();
    assert_eq!(read_f64_matrix(&p).unwrap(), m);

    let p = dir.path().join("l.npy");
    write_i64_vector(&p, &[0, 7, -1]).unwrap();
    assert_eq!(read_labels(&p).unwrap(), vec![0, 7, -1]);

    let p = dir.path().join("f.npy");
    write_f32_vector(&p, &[0.5, 0.25]).unwrap();
    assert_eq!(read_f64_vector(&p).unwrap(), vec![0.5, 0.25]);
}

#[test]
fn big_endian_and_u8_and_i32() {
    let dir = tempfile::tempdir().unwrap();
    let p = raw_file(
        dir.path(),
        "be.npy",
        "{'descr': '>f8', 'fortran_order': False, 'shape': (1,), }\n",
        &2.5f64.to_be_bytes(),
    );
    assert_eq!(read_f64_vector(&p).unwrap(), vec![2.5]);
    let p = raw_file(
        dir.path(),
        "utf.npy",
        "{'descr': 'é4', 'fortran_order': False, 'shape': (1,), }\n",
        &[0; 4],
    );
    assert!(read_f64_vector(&p)
        .unwrap_err()
        .to_string()
        .contains("unsupported dtype"));
    let p = raw_file(
        dir.path(),
        "u.npy",
        "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }\n",
        &[3, 255],
    );
    assert_eq!(read_labels(&p).unwrap(), vec![3, 255]);
    let mut payload = 5i32.to_le_bytes().to_vec();
    payload.extend_from_slice(&(-2i32).to_le_bytes());
    let p = raw_file(
        dir.path(),
        "i.npy",
        "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }\n",
        &payload,
    );
    assert_eq!(read_labels(&p).unwrap(), vec![5, -2]);
}

#[test]
fn refusals_name_file_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let msg = |r: Result<Vec<f64>, NpyError>| r.unwrap_err().to_string();

    let p = raw_file(
        d,
        "fort.npy",
        "{'descr': '<f8', 'fortran_order': True, 'shape': (1, 2), }\n",
        &[0; 16],
    );
    let e = read_f64_matrix(&p).unwrap_err().to_string();
    assert!(e.contains("fort.npy") && e.contains("Fortran"), "{e}");

    let p = raw_file(
        d,
        "i2.npy",
        "{'descr': '<i2', 'fortran_order': False, 'shape': (2,), }\n",
        &[0; 4],
    );
    let e = msg(read_f64_vector(&p));
    assert!(
        e.contains("i2.npy") && e.contains("unsupported dtype '<i2'"),
        "{e}"
    );

    let p = raw_file(
        d,
        "int.npy",
        "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }\n",
        &[0; 8],
    );
    let e = msg(read_f64_vector(&p));
    assert!(
        e.contains("int.npy") && e.contains("expected float32 or float64"),
        "{e}"
    );

    let p = raw_file(
        d,
        "two.npy",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1), }\n",
        &[0; 8],
    );
    let e = msg(read_f64_vector(&p));
    assert!(
        e.contains("two.npy") && e.contains("expected a 1-D array, found shape (1, 1)"),
        "{e}"
    );

    let p = raw_file(
        d,
        "trunc.npy",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }\n",
        &[0; 20],
    );
    let e = msg(read_f64_vector(&p));
    assert!(
        e.contains("trunc.npy")
            && e.contains("truncated: header announces 24 data bytes, file holds 20"),
        "{e}"
    );

    let p = raw_file(
        d,
        "long.npy",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }\n",
        &[0; 9],
    );
    assert!(msg(read_f64_vector(&p)).contains("1 unexpected bytes"));

    let p = raw_file(
        d,
        "empty.npy",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (0,), }\n",
        &[],
    );
    let e = msg(read_f64_vector(&p));
    assert!(e.contains("empty.npy: array is empty (shape (0,))"), "{e}");

    let p = d.join("text.npy");
    std::fs::write(&p, "hello world, not numpy").unwrap();
    assert!(msg(read_f64_vector(&p)).contains("not a .npy file"));

    let e = msg(read_f64_vector(&d.join("missing.npy")));
    assert!(
        e.contains("missing.npy") && e.contains("No such file"),
        "{e}"
    );

    // header cut short
    let p = d.join("cut.npy");
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&[1, 0, 100, 0]);
    bytes.extend_from_slice(b"{'descr'");
    std::fs::write(&p, bytes).unwrap();
    assert!(msg(read_f64_vector(&p)).contains("file ends inside the header"));
}

#[test]
fn huge_shapes_are_refused_not_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let p = raw_file(
        dir.path(),
        "huge.npy",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904,), }\n",
        &[],
    );
    assert!(read_f64_vector(&p)
        .unwrap_err()
        .to_string()
        .contains("overflows"));
    let p = raw_file(
        dir.path(),
        "big.npy",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000,), }\n",
        &[0; 8],
    );
    assert!(read_f64_vector(&p)
        .unwrap_err()
        .to_string()
        .contains("truncated"));
}

proptest::proptest! {
    /// Arbitrary bytes after a valid magic, or a mangled valid file: an error, never a panic.
    #[test]
    fn garbage_never_panics(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..200), cut in 0usize..200, flip in 0usize..200) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.npy");
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&tail);
        std::fs::write(&p, &bytes).unwrap();
        let _ = read_f64_vector(&p);
        let _ = read_labels(&p);
        let _ = read_f64_matrix(&p);
        // a valid file, truncated at `cut` and with one byte flipped
        let q = dir.path().join("v.npy");
        write_f64_matrix(&q, &Array2::from_shape_vec((2, 3), vec![1.0; 6]).unwrap()).unwrap();
        let mut good = std::fs::read(&q).unwrap();
        let i = flip % good.len();
        good[i] ^= 0x5a;
        good.truncate(good.len().min(cut + 6));
        std::fs::write(&q, &good).unwrap();
        let _ = read_f64_matrix(&q);
        let _ = read_f64_vector(&q);
    }
}

#[test]
fn non_regular_inputs_are_refused_before_reading() {
    crate::io::read::assert_refuses_devices(read_f64_vector);
    let dir = tempfile::tempdir().unwrap();
    let e = read_labels(dir.path()).unwrap_err().to_string();
    assert!(e.contains("(a directory)"), "{e}");
}

#[test]
fn read_at_reports_a_file_that_shrank() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.npy");
    write_array::<u8>(&p, &[4, 256], &[7u8; 1024]).unwrap();
    let f = NpyFile::open(&p).unwrap();
    let mut buf = [0u8; 256];
    f.read_at(768, &mut buf).unwrap();
    assert_eq!(buf, [7u8; 256]);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(f.data_offset() + 300)
        .unwrap();
    let e = f.read_at(768, &mut buf).unwrap_err();
    assert!(matches!(e.kind, NpyErrorKind::Shrunk), "{e}");
    let e = f.read_at(1000, &mut buf).unwrap_err();
    assert!(matches!(e.kind, NpyErrorKind::OutOfRange { .. }), "{e}");
}

#[test]
fn streaming_writer_checks_counts_and_leaves_nothing_when_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("rows.npy");
    std::fs::write(&p, b"old").unwrap();
    let mut w = NpyWriter::<f32>::create(&p, &[3, 2]).unwrap();
    w.push(&[1.0, 2.0]).unwrap();
    w.push(&[3.0, 4.0, 5.0, 6.0]).unwrap();
    assert!(matches!(
        w.push(&[7.0]).unwrap_err().kind,
        NpyErrorKind::Overfull { declared: 6 }
    ));
    w.finish().unwrap();
    let h = read_header(&p).unwrap();
    assert_eq!((h.dtype, h.shape), (Dtype::F32, vec![3, 2]));
    assert_eq!(read_f64_matrix(&p).unwrap()[[2, 1]], 6.0);

    let mut w = NpyWriter::<i64>::create(&p, &[3]).unwrap();
    w.push(&[1]).unwrap();
    let e = w.finish().unwrap_err().to_string();
    assert!(
        e.ends_with("rows.npy: 1 of the 3 declared elements written"),
        "{e}"
    );
    let w = NpyWriter::<u8>::create(&p, &[2]).unwrap();
    drop(w);
    // the finished f32 file is still there, and no temporary file is left
    assert!(is_float(&p).unwrap());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn int8_and_big_endian_labels() {
    let dir = tempfile::tempdir().unwrap();
    let p = raw_file(
        dir.path(),
        "i1.npy",
        "{'descr': '|i1', 'fortran_order': False, 'shape': (2,), }\n",
        &[0xff, 3],
    );
    assert_eq!(read_labels(&p).unwrap(), vec![-1, 3]);
    let p = raw_file(
        dir.path(),
        "be.npy",
        "{'descr': '>i8', 'fortran_order': False, 'shape': (1,), }\n",
        &(-5i64).to_be_bytes(),
    );
    assert_eq!(read_labels(&p).unwrap(), vec![-5]);
    assert!(!is_float(&p).unwrap());
}
