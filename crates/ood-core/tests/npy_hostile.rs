//! Hostile `.npy` inputs: device nodes and FIFOs refused at once (never read, never block),
//! malformed headers refused with a short message, and a fuzz target for the parser.
//!
//! The fuzz cases run `NPY_FUZZ_CASES` times (default 64 for CI); a long run is recorded in
//! docs/formats.md.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ood_core::io::npy::{self, Dtype, NpyErrorKind};
use proptest::prelude::*;

fn raw(dir: &Path, name: &str, header: &str, payload: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, npy::raw_v1(header, payload)).unwrap();
    p
}

#[test]
fn dev_zero_is_refused_without_reading() {
    let t = Instant::now();
    let e = npy::read_f64_matrix(Path::new("/dev/zero"))
        .unwrap_err()
        .to_string();
    assert_eq!(e, "/dev/zero: not a regular file (a character device)");
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[cfg(unix)]
#[test]
fn fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("in.npy");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    // Run the read on a thread: with the old reader (File::open on a FIFO) it blocks forever,
    // and the test must fail rather than hang.
    let (tx, rx) = std::sync::mpsc::channel();
    let f = fifo.clone();
    std::thread::spawn(move || {
        let _ = tx.send(npy::read_labels(&f).map(drop).map_err(|e| e.to_string()));
    });
    let got = rx.recv_timeout(Duration::from_secs(5));
    if got.is_err() {
        // Unblock the reader thread so the test process can exit.
        let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
        panic!("reading a FIFO blocked");
    }
    let e = got.unwrap().unwrap_err();
    assert!(e.ends_with("in.npy: not a regular file (a FIFO)"), "{e}");
}

#[test]
fn malformed_tuples_and_long_headers_are_refused_briefly() {
    let dir = tempfile::tempdir().unwrap();
    let p = raw(
        dir.path(),
        "comma.npy",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (10,,), }\n",
        &[0; 80],
    );
    let e = npy::read_f64_vector(&p).unwrap_err().to_string();
    assert!(
        e.contains("comma.npy: malformed .npy header: bad dimension"),
        "{e}"
    );
    // 2 KB of hostile header: the message quotes 64 bytes of it at most.
    let junk = "A".repeat(2000);
    let p = raw(
        dir.path(),
        "junk.npy",
        &format!("{{'descr': '<f8', 'fortran_order': False, 'shape': (1,), '{junk}': 1}}\n"),
        &[0; 8],
    );
    let e = npy::read_f64_vector(&p).unwrap_err().to_string();
    assert!(
        e.len() < 200 && e.contains("(2000 bytes)"),
        "{} bytes: {e}",
        e.len()
    );
    // A version 2 header announcing 4 GB is refused from its length, before any read.
    let p = dir.path().join("v2.npy");
    let mut b = b"\x93NUMPY\x02\x00".to_vec();
    b.extend_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&p, b).unwrap();
    let e = npy::read_header(&p).unwrap_err().to_string();
    assert!(e.contains("header length 4294967295 is implausible"), "{e}");
}

#[test]
fn declared_size_is_checked_against_the_file_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let p = raw(
        dir.path(),
        "huge.npy",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000, 1000), }\n",
        &[0; 64],
    );
    let e = npy::read_f64_matrix(&p).unwrap_err();
    assert!(
        matches!(
            e.kind,
            NpyErrorKind::Truncated {
                expected: 8_000_000_000_000,
                found: 64
            }
        ),
        "{e}"
    );
}

/// A valid little file whose header text and payload are then mutated.
fn seed() -> (String, Vec<u8>) {
    (
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }".to_string(),
        vec![0u8; 24],
    )
}

fn cases() -> u32 {
    std::env::var("NPY_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    /// Mutated headers (bytes replaced, inserted, removed; digits grown) and payloads of any
    /// length: the parser and readers return an error or a value, never panic, and never
    /// allocate more than the file holds.
    #[test]
    fn parser_survives_mutations(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 0..8),
        payload_len in 0usize..64,
        version in prop::sample::select(vec![1u8, 2, 3, 4]),
    ) {
        let (text, _) = seed();
        let mut h = text.into_bytes();
        for (at, byte, op) in edits {
            let i = at.index(h.len() + 1);
            match op {
                0 if i < h.len() => h[i] = byte,
                1 => h.insert(i, byte),
                2 if i < h.len() => { h.remove(i); }
                _ => h.insert(i.min(h.len()), b"0123456789,() '"[byte as usize % 15]),
            }
        }
        let mut b = b"\x93NUMPY".to_vec();
        b.push(version);
        b.push(0);
        if version == 1 {
            b.extend_from_slice(&(h.len() as u16).to_le_bytes());
        } else {
            b.extend_from_slice(&(h.len() as u32).to_le_bytes());
        }
        b.extend_from_slice(&h);
        b.extend(std::iter::repeat_n(0u8, payload_len));
        let _ = npy::parse_prefix(&b);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.npy");
        std::fs::write(&p, &b).unwrap();
        if let Ok(f) = npy::NpyFile::open(&p) {
            // Accepted: the declared payload is exactly what the file holds.
            let n = f.header().data_bytes().unwrap();
            prop_assert_eq!(n, b.len() as u64 - f.data_offset());
            if f.header().dtype == Dtype::F32 && f.header().shape.len() == 2 {
                let _ = npy::read_f64_matrix(&p);
            }
        }
        let _ = npy::read_f64_vector(&p);
        let _ = npy::read_labels(&p);
    }
}
