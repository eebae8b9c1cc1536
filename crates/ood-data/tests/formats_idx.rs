//! IDX reader: tiny files written here in the real format, raw and gzip, plus corrupt variants.

use std::io::Write;
use std::path::Path;

use ood_data::formats::idx;
use ood_data::Error;

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn format_offset(e: Error) -> (u64, String) {
    match e {
        Error::Format {
            offset, message, ..
        } => (offset, message),
        other => panic!("expected a format error, got {other}"),
    }
}

#[test]
fn reads_images_raw_and_gzip_as_nhwc() {
    // 2 images of 2 x 3: pixel value = 10 * image + 3 * row + col.
    let data: Vec<u8> = (0..2)
        .flat_map(|n| (0..2).flat_map(move |y| (0..3).map(move |x| 10 * n + 3 * y + x)))
        .collect();
    let raw = idx_bytes(&[2, 2, 3], &data);
    for bytes in [raw.clone(), gzip(&raw)] {
        let imgs = idx::parse_images(&bytes, Path::new("t.idx")).unwrap();
        assert_eq!(imgs.shape(), &[2, 2, 3, 1]);
        assert_eq!(imgs[[1, 1, 2, 0]], 10 + 3 + 2);
        assert_eq!(imgs[[0, 0, 1, 0]], 1);
    }
}

#[test]
fn reads_labels_and_pairs_counts() {
    let dir = tempfile::tempdir().unwrap();
    let ip = dir.path().join("images.gz");
    let lp = dir.path().join("labels");
    std::fs::write(&ip, gzip(&idx_bytes(&[3, 1, 1], &[7, 8, 9]))).unwrap();
    std::fs::write(&lp, idx_bytes(&[3], &[4, 0, 9])).unwrap();
    let set = idx::read_image_set(&ip, Some(&lp)).unwrap();
    assert_eq!(set.labels.unwrap().to_vec(), vec![4, 0, 9]);
    assert_eq!(set.images.into_raw_vec_and_offset().0, vec![7, 8, 9]);

    std::fs::write(&lp, idx_bytes(&[2], &[4, 0])).unwrap();
    let err = idx::read_image_set(&ip, Some(&lp)).unwrap_err().to_string();
    assert!(
        err.contains("2 labels") && err.contains("3 images"),
        "{err}"
    );
}

#[test]
fn rejects_bad_headers_with_offsets() {
    let p = Path::new("bad.idx");
    // Truncated data: header says 2 x 2 x 2 = 8 bytes, only 7 follow; offset = end of header.
    let (off, msg) =
        format_offset(idx::parse_images(&idx_bytes(&[2, 2, 2], &[0; 7]), p).unwrap_err());
    assert_eq!(off, 16);
    assert!(
        msg.contains("8 data bytes") && msg.contains("7 follow"),
        "{msg}"
    );
    // Trailing data is as wrong as missing data.
    assert!(idx::parse_images(&idx_bytes(&[1, 1, 1], &[0; 2]), p).is_err());
    // Wrong magic.
    let mut b = idx_bytes(&[1, 1, 1], &[0]);
    b[0] = 1;
    assert_eq!(format_offset(idx::parse_images(&b, p).unwrap_err()).0, 0);
    // Non-u8 type code (0x0D = float).
    let mut b = idx_bytes(&[1, 1, 1], &[0]);
    b[2] = 0x0D;
    assert_eq!(format_offset(idx::parse_images(&b, p).unwrap_err()).0, 2);
    // Huge declared dimensions: rejected before allocating.
    let (_, msg) = format_offset(
        idx::parse_images(&idx_bytes(&[u32::MAX, u32::MAX, u32::MAX], &[]), p).unwrap_err(),
    );
    assert!(
        msg.contains("overflow") || msg.contains("data bytes"),
        "{msg}"
    );
    // Wrong rank for images / labels.
    assert!(idx::parse_images(&idx_bytes(&[3], &[0; 3]), p).is_err());
    assert!(idx::parse_labels(&idx_bytes(&[1, 1, 1], &[0]), p).is_err());
    // Truncated header.
    assert_eq!(
        format_offset(idx::parse_images(&[0, 0, 8, 3, 0, 0], p).unwrap_err()).0,
        4
    );
}

#[test]
fn rejects_corrupt_gzip() {
    let mut gz = gzip(&idx_bytes(&[1, 2, 2], &[1, 2, 3, 4]));
    let n = gz.len();
    gz[n - 6] ^= 0xff; // CRC32 of the trailer
    let err = idx::parse_images(&gz, Path::new("x.gz"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("x.gz") && err.contains("gzip"), "{err}");
    let truncated = &gzip(&idx_bytes(&[1, 2, 2], &[1, 2, 3, 4]))[..n / 2];
    assert!(idx::parse_images(truncated, Path::new("x.gz")).is_err());
}

#[test]
fn missing_file_names_the_path() {
    let err = idx::read_images(Path::new("/nonexistent/t10k-images.gz"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/t10k-images.gz"), "{err}");
}

/// The real MNIST test set, when the shared data folder is present (its first label is a 7).
#[test]
fn real_mnist_test_set_when_present() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/mnist");
    let (ip, lp) = (
        dir.join("t10k-images-idx3-ubyte.gz"),
        dir.join("t10k-labels-idx1-ubyte.gz"),
    );
    if !ip.exists() {
        eprintln!("skipped: {} absent", ip.display());
        return;
    }
    let set = idx::read_image_set(&ip, Some(&lp)).unwrap();
    assert_eq!(set.images.shape(), &[10_000, 28, 28, 1]);
    let labels = set.labels.unwrap();
    assert_eq!(&labels.to_vec()[..5], &[7, 2, 1, 0, 4]);
}
