//! Image decoding (PNG/JPEG/BMP/TGA), zip archives of images, and GIMP `.pat` patterns, on tiny
//! files written here.

use std::io::{Cursor, Write};
use std::path::Path;

use ndarray::Array3;
use ood_data::formats::gimp_pat::{parse_pat, read_pat};
use ood_data::formats::image_file::{decode_image, is_image_name, ColorMode};
use ood_data::formats::zip_images::{image_names, read_zip_images, read_zip_images_where};
use ood_data::Error;

fn rgb_image() -> image::RgbImage {
    // 3 x 2: red, green, blue / white, black, gray
    let px = [
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
        [255, 255, 255],
        [0, 0, 0],
        [128, 128, 128],
    ];
    image::RgbImage::from_fn(3, 2, |x, y| image::Rgb(px[(y * 3 + x) as usize]))
}

fn encode(img: &image::RgbImage, fmt: image::ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, fmt).unwrap();
    out.into_inner()
}

#[test]
fn decodes_lossless_formats_exactly() {
    let img = rgb_image();
    for (fmt, name) in [
        (image::ImageFormat::Png, "a.png"),
        (image::ImageFormat::Bmp, "a.bmp"),
        (image::ImageFormat::Tga, "a.TGA"), // no magic: recognised by extension
    ] {
        let bytes = encode(&img, fmt);
        let a = decode_image(&bytes, Path::new(name), ColorMode::Rgb).unwrap();
        assert_eq!(a.dim(), (2, 3, 3), "{name}");
        assert_eq!(a[[0, 0, 0]], 255);
        assert_eq!(a[[0, 1, 1]], 255);
        assert_eq!(a[[1, 2, 2]], 128);
        // Gray: PIL's ITU-R 601-2 values for pure red, green, blue are 76, 150, 29.
        let g = decode_image(&bytes, Path::new(name), ColorMode::Gray).unwrap();
        assert_eq!(g.dim(), (2, 3, 1));
        assert_eq!(
            g.iter().copied().collect::<Vec<_>>(),
            vec![76, 150, 29, 255, 0, 128],
            "{name}"
        );
    }
}

#[test]
fn decodes_jpeg_approximately_and_gray_png_natively() {
    let img = image::RgbImage::from_pixel(16, 8, image::Rgb([200, 100, 50]));
    let a = decode_image(
        &encode(&img, image::ImageFormat::Jpeg),
        Path::new("a.jpg"),
        ColorMode::Rgb,
    )
    .unwrap();
    assert_eq!(a.dim(), (8, 16, 3));
    let mean_r = a
        .slice(ndarray::s![.., .., 0])
        .mapv(|v| v as f64)
        .mean()
        .unwrap();
    assert!((mean_r - 200.0).abs() < 4.0, "{mean_r}");

    let gray = image::GrayImage::from_fn(2, 2, |x, y| image::Luma([(x * 100 + y * 10) as u8]));
    let mut buf = Cursor::new(Vec::new());
    gray.write_to(&mut buf, image::ImageFormat::Png).unwrap();
    let n = decode_image(buf.get_ref(), Path::new("g.png"), ColorMode::Native).unwrap();
    assert_eq!(n.dim(), (2, 2, 1));
    assert_eq!(n[[1, 1, 0]], 110);
    let rgb = decode_image(buf.get_ref(), Path::new("g.png"), ColorMode::Rgb).unwrap();
    assert_eq!(rgb.dim(), (2, 2, 3));
    assert_eq!(rgb[[1, 1, 2]], 110);
}

#[test]
fn rejects_garbage_and_truncated_images() {
    let err = decode_image(
        b"definitely not an image",
        Path::new("x.png"),
        ColorMode::Rgb,
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::Format { .. }) && err.to_string().contains("x.png"),
        "{err}"
    );
    let png = encode(&rgb_image(), image::ImageFormat::Png);
    assert!(decode_image(&png[..png.len() / 2], Path::new("t.png"), ColorMode::Rgb).is_err());
    assert!(decode_image(b"abc", Path::new("noext"), ColorMode::Rgb).is_err());
    assert!(is_image_name("a/B.JPEG") && is_image_name("x.tga") && !is_image_name("readme.txt"));
}

fn write_zip(path: &Path, entries: &[(&str, Vec<u8>)]) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        z.start_file(*name, opts).unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap();
}

#[test]
fn zip_images_keep_their_paths_sorted() {
    let dir = tempfile::tempdir().unwrap();
    let zp = dir.path().join("omni.zip");
    let img = |v: u8| {
        let g = image::GrayImage::from_pixel(4, 4, image::Luma([v]));
        let mut b = Cursor::new(Vec::new());
        g.write_to(&mut b, image::ImageFormat::Png).unwrap();
        b.into_inner()
    };
    write_zip(
        &zp,
        &[
            ("small/Greek/char02/b.png", img(20)),
            ("small/Greek/char01/a.png", img(10)),
            ("small/README.txt", b"hello".to_vec()),
            ("small/Latin/char01/c.png", img(30)),
        ],
    );
    assert_eq!(image_names(&zp).unwrap().len(), 3);
    let all = read_zip_images(&zp, ColorMode::Gray).unwrap();
    let names: Vec<&str> = all.iter().map(|z| z.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "small/Greek/char01/a.png",
            "small/Greek/char02/b.png",
            "small/Latin/char01/c.png"
        ]
    );
    assert_eq!(all[1].folder(), "small/Greek/char02");
    assert_eq!(all[2].image, Array3::from_elem((4, 4, 1), 30u8));
    let greek = read_zip_images_where(&zp, ColorMode::Gray, |n| n.contains("/Greek/")).unwrap();
    assert_eq!(greek.len(), 2);

    // A broken image inside the archive names the archive and the entry.
    write_zip(&zp, &[("x/bad.png", b"\x89PNG\r\n\x1a\nbroken".to_vec())]);
    let err = read_zip_images(&zp, ColorMode::Gray)
        .unwrap_err()
        .to_string();
    assert!(err.contains("omni.zip") && err.contains("bad.png"), "{err}");
    // Not a zip at all.
    std::fs::write(&zp, b"PK\x03\x04 garbage").unwrap();
    assert!(read_zip_images(&zp, ColorMode::Gray).is_err());
}

/// Writes a GIMP pattern the way GIMP does: 24-byte header, NUL-terminated name, pixels.
pub fn pat_bytes(name: &str, w: u32, h: u32, bpp: u32, pixels: &[u8]) -> Vec<u8> {
    let header_size = 24 + name.len() as u32 + 1;
    let mut v = Vec::new();
    for x in [header_size, 1, w, h, bpp] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.extend_from_slice(b"GPAT");
    v.extend_from_slice(name.as_bytes());
    v.push(0);
    v.extend_from_slice(pixels);
    v
}

#[test]
fn gimp_patterns_all_depths() {
    let dir = tempfile::tempdir().unwrap();
    // RGB 2 x 1: red, blue.
    let p = dir.path().join("Stripes.pat");
    std::fs::write(&p, pat_bytes("Stripes", 2, 1, 3, &[255, 0, 0, 0, 0, 255])).unwrap();
    let pat = read_pat(&p).unwrap();
    assert_eq!(pat.name, "Stripes");
    assert_eq!(pat.image.dim(), (1, 2, 3));
    assert_eq!(
        pat.pixels(ColorMode::Gray)
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        vec![76, 29]
    );
    // Gray + alpha 1 x 2: alpha dropped; gray replicated for RGB.
    let pa = parse_pat(
        &pat_bytes("ga", 1, 2, 2, &[10, 255, 20, 0]),
        Path::new("ga.pat"),
    )
    .unwrap();
    assert_eq!(
        pa.pixels(ColorMode::Native)
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        vec![10, 20]
    );
    assert_eq!(pa.pixels(ColorMode::Rgb).dim(), (2, 1, 3));
    // RGBA and gray.
    let rgba = parse_pat(&pat_bytes("q", 1, 1, 4, &[1, 2, 3, 4]), Path::new("q.pat")).unwrap();
    assert_eq!(
        rgba.pixels(ColorMode::Rgb)
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let g = parse_pat(&pat_bytes("g", 1, 1, 1, &[9]), Path::new("g.pat")).unwrap();
    assert_eq!(g.image[[0, 0, 0]], 9);
}

#[test]
fn gimp_pattern_rejections_name_offsets() {
    let off = |b: &[u8]| match parse_pat(b, Path::new("p.pat")).unwrap_err() {
        Error::Format { offset, .. } => offset,
        e => panic!("{e}"),
    };
    let good = pat_bytes("n", 2, 2, 1, &[1, 2, 3, 4]);
    // Truncated pixels: error at the start of the pixel data (24 + "n\0").
    assert_eq!(off(&good[..good.len() - 1]), 26);
    let mut bad_magic = good.clone();
    bad_magic[20] = b'X';
    assert_eq!(off(&bad_magic), 20);
    let mut bad_bpp = good.clone();
    bad_bpp[19] = 5;
    assert_eq!(off(&bad_bpp), 16);
    let mut huge = good.clone();
    huge[8..12].copy_from_slice(&1_000_000u32.to_be_bytes());
    assert_eq!(off(&huge), 8);
    let mut bad_header = good.clone();
    bad_header[0..4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(off(&bad_header), 0);
    let mut v2 = good;
    v2[7] = 2;
    assert_eq!(off(&v2), 4);
}

/// The real Omniglot "small" background set, when the shared data folder is present:
/// 2,720 PNGs of 105 x 105, 1-bit (decoded to 0/255), grouped alphabet/character.
#[test]
fn real_omniglot_zip_when_present() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/omniglot/images_background_small1.zip");
    if !p.exists() {
        eprintln!("skipped: {} absent", p.display());
        return;
    }
    let imgs = read_zip_images(&p, ColorMode::Gray).unwrap();
    assert_eq!(imgs.len(), 2720);
    assert!(imgs.iter().all(|z| z.image.dim() == (105, 105, 1)));
    assert!(imgs[0].image.iter().all(|&v| v == 0 || v == 255));
    assert_eq!(imgs[0].folder().split('/').count(), 3, "{}", imgs[0].name);
}
