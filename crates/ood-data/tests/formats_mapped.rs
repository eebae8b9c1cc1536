//! Image folders, memory-mapped `.npy` arrays and the Tiny Images binary, on tiny files written here.

use std::io::Cursor;
use std::path::Path;

use ndarray::{Array4, ArrayView3};
use ndarray_npy::WriteNpyExt;
use ood_data::batch::ImageSource;
use ood_data::formats::image_file::ColorMode;
use ood_data::formats::image_folder::{read_image_folder, FolderOptions, Preprocess};
use ood_data::formats::npy_images::{parse_header, NpyImages};
use ood_data::formats::tiny_images::{parse_exclusion_list, TinyImages};
use ood_data::transforms::{center_crop, resize_shorter_side, Filter};
use ood_data::Error;

fn save_png(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) {
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)))
        .save(path)
        .unwrap();
}

#[test]
fn class_folders_with_paper_preprocessing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (class, n) in [("banded", 2), ("zigzagged", 1)] {
        std::fs::create_dir_all(root.join(class).join("sub")).unwrap();
        for i in 0..n {
            save_png(
                &root.join(class).join(format!("{i}.png")),
                64,
                40,
                |x, y| [(x * 4) as u8, (y * 6) as u8, i as u8],
            );
        }
    }
    // Nested image (found recursively), hidden file and a non-image (both ignored).
    save_png(&root.join("zigzagged/sub/deep.png"), 40, 64, |_, _| {
        [9, 9, 9]
    });
    std::fs::write(root.join("banded/.hidden.png"), b"x").unwrap();
    std::fs::write(root.join("banded/notes.txt"), b"x").unwrap();
    let f = read_image_folder(root, &FolderOptions::default()).unwrap();
    assert_eq!(f.classes, ["banded", "zigzagged"]);
    assert_eq!(f.set.images.shape(), &[4, 32, 32, 3]);
    assert_eq!(f.set.labels.as_ref().unwrap().to_vec(), vec![0, 0, 1, 1]);
    assert!(f.files[3].ends_with("zigzagged/sub/deep.png"));
    // Same numbers as applying the transforms by hand: shorter side 32 (40 -> 32, 64 -> 51), crop.
    let orig = ood_data::formats::image_file::read_image(&f.files[0], ColorMode::Rgb).unwrap();
    let want = center_crop(
        resize_shorter_side(orig.view(), 32, Filter::Bilinear).view(),
        32,
        32,
    );
    assert_eq!(f.set.images.index_axis(ndarray::Axis(0), 0), want);
}

#[test]
fn flat_folder_and_size_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    save_png(&dir.path().join("a.png"), 4, 4, |_, _| [1, 2, 3]);
    save_png(&dir.path().join("b.bmp"), 4, 4, |_, _| [4, 5, 6]);
    let opts = FolderOptions {
        preprocess: Preprocess::None,
        color: ColorMode::Gray,
    };
    let f = read_image_folder(dir.path(), &opts).unwrap();
    assert!(f.classes.is_empty() && f.set.labels.is_none());
    assert_eq!(f.set.images.shape(), &[2, 4, 4, 1]);
    save_png(&dir.path().join("c.png"), 5, 4, |_, _| [0, 0, 0]);
    let err = read_image_folder(dir.path(), &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("c.png"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    assert!(read_image_folder(empty.path(), &opts).is_err());
    std::fs::write(dir.path().join("d.jpg"), b"not a jpeg").unwrap();
    let err = read_image_folder(dir.path(), &FolderOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("d.jpg"), "{err}");
}

fn npy_bytes(a: &Array4<u8>) -> Vec<u8> {
    let mut c = Cursor::new(Vec::new());
    a.write_npy(&mut c).unwrap();
    c.into_inner()
}

#[test]
fn npy_images_memory_mapped() {
    let a = Array4::from_shape_fn((5, 4, 3, 3), |(n, y, x, c)| {
        (n * 50 + y * 10 + x * 3 + c) as u8
    });
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("300K_random_images.npy");
    std::fs::write(&p, npy_bytes(&a)).unwrap();
    let m = NpyImages::open(&p).unwrap();
    assert_eq!((m.len(), m.image_shape()), (5, (4, 3, 3)));
    assert_eq!(m.image(3).unwrap(), a.index_axis(ndarray::Axis(0), 3));
    assert_eq!(m.to_image_set().unwrap().images, a);
    let mut buf = vec![0u8; 36];
    m.read_image(4, &mut buf).unwrap();
    assert_eq!(
        ArrayView3::from_shape((4, 3, 3), &buf[..]).unwrap(),
        a.index_axis(ndarray::Axis(0), 4)
    );
    // A 3-d array is gray N x H x W.
    let g = ndarray::Array3::<u8>::from_elem((2, 2, 2), 7);
    let mut c = Cursor::new(Vec::new());
    g.write_npy(&mut c).unwrap();
    std::fs::write(&p, c.into_inner()).unwrap();
    assert_eq!(NpyImages::open(&p).unwrap().image_shape(), (2, 2, 1));
}

#[test]
fn npy_rejections() {
    let a = Array4::<u8>::zeros((2, 2, 2, 3));
    let good = npy_bytes(&a);
    let p = Path::new("x.npy");
    let err = |b: &[u8]| parse_header(b, b.len() as u64, p).unwrap_err();
    // Truncated data: error at the data offset.
    let off = match err(&good[..good.len() - 1]) {
        Error::Format {
            offset, message, ..
        } => {
            assert!(
                message.contains("24 bytes") && message.contains("23 follow"),
                "{message}"
            );
            offset
        }
        e => panic!("{e}"),
    };
    assert_eq!(off as usize, good.len() - 24);
    // Wrong dtype.
    let f = ndarray::Array2::<f32>::zeros((2, 2));
    let mut c = Cursor::new(Vec::new());
    f.write_npy(&mut c).unwrap();
    let fb = c.into_inner();
    assert!(err(&fb).to_string().contains("not uint8"));
    // Bad magic and version.
    let mut m = good.clone();
    m[1] = b'X';
    assert!(matches!(err(&m), Error::Format { offset: 0, .. }));
    let mut v = good.clone();
    v[6] = 9;
    assert!(matches!(err(&v), Error::Format { offset: 6, .. }));
    // Huge shape declared in a tiny file.
    let text = "{'descr': '|u1', 'fortran_order': False, 'shape': (99999999999, 32, 32, 3), }";
    let mut h = b"\x93NUMPY\x01\x00".to_vec();
    h.extend((text.len() as u16).to_le_bytes());
    h.extend(text.as_bytes());
    assert!(err(&h).to_string().contains("follow the header"));
    // Missing file names the path.
    assert!(NpyImages::open(Path::new("/nonexistent/x.npy"))
        .unwrap_err()
        .to_string()
        .contains("/nonexistent/x.npy"));
}

/// One Tiny Images record for image `n`: column-major (row fastest, then column, then channel).
fn tiny_record(n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(3072);
    for c in 0..3 {
        for x in 0..32 {
            for y in 0..32 {
                v.push(tiny_px(n, y, x, c));
            }
        }
    }
    v
}

fn tiny_px(n: usize, y: usize, x: usize, c: usize) -> u8 {
    (n * 31 + y + x * 2 + c * 100) as u8
}

#[test]
fn tiny_images_column_major_with_exclusions() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("tiny_images.bin");
    std::fs::write(&bin, (0..6).flat_map(tiny_record).collect::<Vec<u8>>()).unwrap();
    let t = TinyImages::open(&bin).unwrap();
    assert_eq!((t.total(), t.len()), (6, 6));
    let img = t.try_image(4).unwrap();
    for (y, x, c) in [(0, 0, 0), (31, 0, 1), (0, 31, 2), (5, 9, 1)] {
        assert_eq!(img[[y, x, c]], tiny_px(4, y, x, c), "({y}, {x}, {c})");
    }
    // Exclusion file is 1-based: "2" and "5" exclude file images 1 and 4.
    let list = dir.path().join("80mn_cifar_idxs.txt");
    std::fs::write(&list, "5\n2\n\n2\n").unwrap();
    let t = t.with_exclusion_file(&list).unwrap();
    assert_eq!(t.len(), 4);
    assert!(t.is_excluded(1) && t.is_excluded(4) && !t.is_excluded(0));
    let kept: Vec<u64> = (0..t.len()).map(|k| t.raw_index(k)).collect();
    assert_eq!(kept, vec![0, 2, 3, 5]);
    assert_eq!(t.try_image(3).unwrap()[[7, 8, 2]], tiny_px(5, 7, 8, 2));
}

#[test]
fn tiny_images_rejections() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("tiny.bin");
    std::fs::write(&bin, vec![0u8; 3072 * 2 + 5]).unwrap();
    match TinyImages::open(&bin).unwrap_err() {
        Error::Format { offset, .. } => assert_eq!(offset, 6144),
        e => panic!("{e}"),
    }
    std::fs::write(&bin, b"").unwrap();
    assert!(TinyImages::open(&bin).is_err());
    let p = Path::new("idx.txt");
    for (text, bad_offset) in [
        (&b"1\n0\n"[..], 2u64),
        (b"1\n2\n4\n", 4),
        (b"1\nx\n", 2),
        (b"-3\n", 0),
    ] {
        match parse_exclusion_list(text, 3, p).unwrap_err() {
            Error::Format { offset, .. } => {
                assert_eq!(offset, bad_offset, "{:?}", String::from_utf8_lossy(text))
            }
            e => panic!("{e}"),
        }
    }
    assert_eq!(parse_exclusion_list(b"3\r\n1\n", 3, p).unwrap(), vec![0, 2]);
}
