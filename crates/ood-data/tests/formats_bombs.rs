//! Decompression bombs and non-regular inputs: refused with one clear error, fast, before the
//! memory is allocated.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use flate2::{write::GzEncoder, Compression};
use ood_data::formats::zip_images::{parse_zip_images_limited, ZipLimits};
use ood_data::formats::{cifar, idx, image_file::ColorMode, svhn_mat};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::best());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Peak resident memory of this process so far (VmHWM), in MiB.
fn peak_mib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}

/// An IDX header `1 x 4 x 4` with its 16 bytes, then `mib` MiB of zeros: gzip members of 1 MiB
/// of zeros each (~1 KB), so 1 GiB of garbage fits in about 1 MB.
fn idx_with_trailing_zeros(mib: usize) -> Vec<u8> {
    let mut head = vec![0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 4];
    head.extend([7u8; 16]);
    let mut gz = gzip(&head);
    let member = gzip(&vec![0u8; 1 << 20]);
    for _ in 0..mib {
        gz.extend_from_slice(&member);
    }
    gz
}

#[test]
fn gzip_idx_with_a_gigabyte_of_trailing_garbage_is_refused_unread() {
    let bomb = idx_with_trailing_zeros(1024);
    assert!(bomb.len() < 2 << 20, "{}", bomb.len());
    let before = peak_mib();
    let t = Instant::now();
    let err = idx::parse_images(&bomb, Path::new("bomb.gz"))
        .unwrap_err()
        .to_string();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(
        err.contains("bomb.gz") && err.contains("16 data bytes but more follow"),
        "{err}"
    );
    assert!(
        peak_mib() < before + 100,
        "{} -> {} MiB",
        before,
        peak_mib()
    );
    // Without the garbage the same stream is a valid file.
    let ok = idx::parse_images(&idx_with_trailing_zeros(0), Path::new("ok.gz")).unwrap();
    assert_eq!(ok.shape(), &[1, 4, 4, 1]);
}

#[test]
fn gzip_idx_declaring_more_than_deflate_can_hold_is_refused_before_allocating() {
    // 60000 x 1000 x 1000 = 6e10 bytes declared by a ~40-byte gzip.
    let head = [
        0u8, 0, 8, 3, 0, 0, 0xea, 0x60, 0, 0, 0x03, 0xe8, 0, 0, 0x03, 0xe8,
    ];
    let err = idx::parse_images(&gzip(&head), Path::new("huge.gz"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("60000000000 data bytes") && err.contains("a gzip stream can hold at most"),
        "{err}"
    );
    // Labels too.
    let head = [0u8, 0, 8, 1, 0xff, 0xff, 0xff, 0xff];
    let err = idx::parse_labels(&gzip(&head), Path::new("huge.gz"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("4294967295 data bytes"), "{err}");
}

/// A zip of `n` entries of `size` zero bytes each, deflated.
fn zip_of_zeros(n: usize, size: usize) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let zeros = vec![0u8; size];
    for i in 0..n {
        z.start_file(format!("d/{i}.png"), opts).unwrap();
        z.write_all(&zeros).unwrap();
    }
    z.finish().unwrap().into_inner()
}

#[test]
fn zip_entries_are_capped_each_and_in_total() {
    let limits = ZipLimits {
        max_entry: 1 << 20,
        max_total: 3 << 20,
    };
    let p = Path::new("bomb.zip");
    // One entry over the per-entry cap: refused from its declared size.
    let err = parse_zip_images_limited(&zip_of_zeros(1, 2 << 20), p, ColorMode::Rgb, limits)
        .unwrap_err()
        .to_string();
    assert!(err.contains("d/0.png declares 2097152 bytes"), "{err}");
    // Four entries under the per-entry cap, over the total: the fourth is refused.
    let err = parse_zip_images_limited(&zip_of_zeros(4, 1 << 20), p, ColorMode::Rgb, limits)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("d/3.png declares 1048576 bytes") && err.contains("0 left of 3145728"),
        "{err}"
    );
    // Within both caps the entries are read (and then fail to decode: zeros are no PNG).
    let err = parse_zip_images_limited(&zip_of_zeros(3, 1 << 20), p, ColorMode::Rgb, limits)
        .unwrap_err()
        .to_string();
    assert!(!err.contains("declares"), "{err}");
}

#[test]
fn device_nodes_and_directories_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    for input in [Path::new("/dev/zero"), dir.path()] {
        let t = Instant::now();
        let errs = [
            idx::read_images(input).map(drop),
            idx::read_labels(input).map(drop),
            cifar::read_batches(&[input.to_path_buf()], cifar::CifarLabels::Cifar10).map(drop),
            svhn_mat::read_svhn(input).map(drop),
            ood_data::formats::zip_images::image_names(input).map(drop),
            ood_data::formats::gimp_pat::read_pat(input).map(drop),
            ood_data::formats::tiny_images::TinyImages::open(input).map(drop),
        ];
        for e in errs {
            let e = e.unwrap_err().to_string();
            assert!(e.contains("not a regular file"), "{input:?}: {e}");
        }
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}

#[test]
fn tiny_images_that_shrink_after_opening_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("tiny.bin");
    std::fs::write(&bin, vec![9u8; 3072 * 4]).unwrap();
    let t = ood_data::formats::tiny_images::TinyImages::open(&bin).unwrap();
    assert_eq!(t.try_image(3).unwrap()[[0, 0, 0]], 9);
    // Another process truncates the file: with a memory map this read was a SIGBUS.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&bin)
        .unwrap()
        .set_len(3072 + 100)
        .unwrap();
    assert_eq!(t.try_image(0).unwrap()[[31, 31, 2]], 9);
    let err = t.try_image(2).unwrap_err().to_string();
    assert!(
        err.contains("tiny.bin") && err.contains("at byte 6144") && err.contains("shrink"),
        "{err}"
    );
}

/// A batch loader (with worker threads) over an .npy image file or Tiny Images that shrink
/// after opening: the epoch yields an error naming the file and offset, then ends. This used to
/// be a panic in the worker, re-raised in the consumer (exit 101 from the CLI).
#[test]
fn batches_from_files_that_shrink_mid_read_are_errors_not_panics() {
    use ood_data::batch::{BatchConfig, BatchLoader, ImageSource};
    use ood_data::formats::{npy_images::NpyImages, tiny_images::TinyImages};
    use ood_data::transforms::{Normalize, Pipeline};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("imgs.npy");
    ood_core::io::npy::write_array::<u8>(&npy, &[8, 32, 32, 3], &[7u8; 8 * 3072]).unwrap();
    let bin = dir.path().join("tiny.bin");
    std::fs::write(&bin, vec![9u8; 3072 * 8]).unwrap();
    let data_offset = ood_core::io::npy::NpyFile::open(&npy)
        .unwrap()
        .data_offset();
    let sources: [(Arc<dyn ImageSource>, &std::path::Path, u64); 2] = [
        (
            Arc::new(NpyImages::open(&npy).unwrap()),
            &npy,
            data_offset + 2 * 3072,
        ),
        (Arc::new(TinyImages::open(&bin).unwrap()), &bin, 2 * 3072),
    ];
    for (source, path, cut) in sources {
        let pipeline = Pipeline {
            steps: vec![],
            normalize: Normalize::unit(3),
        };
        let config = BatchConfig {
            batch_size: 2,
            shuffle: false,
            workers: 2,
            ..Default::default()
        };
        let loader = BatchLoader::new(source, pipeline, config).unwrap();
        assert!(loader.epoch(0).all(|b| b.is_ok()));
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let got: Vec<_> = loader.epoch(0).collect();
        assert_eq!(
            got.len(),
            2,
            "{path:?}: one good batch, the error, then the end"
        );
        assert!(got[0].is_ok());
        let e = got[1].as_ref().unwrap_err().to_string();
        assert!(
            e.contains(&format!("{}: at byte {cut}", path.display())),
            "{e}"
        );
    }
}

#[test]
fn errors_quote_little_of_a_hostile_header() {
    // 255 dimensions of 1: the old message echoed all of them (about 800 bytes).
    let mut b = vec![0u8, 0, 8, 255];
    for _ in 0..255 {
        b.extend(1u32.to_be_bytes());
    }
    b.extend([0u8; 3]);
    let err = idx::parse_labels(&b, Path::new("dims.idx"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dims.idx") && err.contains("at byte 3"),
        "{err}"
    );
    assert!(err.len() < 200, "{} bytes: {err}", err.len());
    // A Tiny Images exclusion list with a 10 KB line.
    let line = vec![b'x'; 10_000];
    let err = ood_data::formats::tiny_images::parse_exclusion_list(&line, 10, Path::new("l.txt"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 1") && err.len() < 200, "{err}");
}
