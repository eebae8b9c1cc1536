//! Transforms against hand-computed values of the PIL/torchvision algorithms they follow.

use ndarray::{Array3, ArrayView3};
use ood_data::transforms::*;

fn row(v: &[u8]) -> Array3<u8> {
    Array3::from_shape_vec((1, v.len(), 1), v.to_vec()).unwrap()
}

fn flat(a: &Array3<u8>) -> Vec<u8> {
    a.iter().copied().collect()
}

#[test]
fn area_resize_averages_covered_area() {
    // 4x4 -> 2x2: exact 2x2 block means.
    let a = Array3::from_shape_vec((4, 4, 1), (0..16).map(|v| v * 10).collect()).unwrap();
    let r = resize(a.view(), 2, 2, Filter::Area);
    // block (0,0): 0,10,40,50 -> 25; (0,1): 20,30,60,70 -> 45; ...
    assert_eq!(flat(&r), vec![25, 45, 105, 125]);
    // 3 -> 2 along a row: out0 = (a + b/2) / 1.5, out1 = (b/2 + c) / 1.5.
    let r = resize(row(&[30, 90, 150]).view(), 1, 2, Filter::Area);
    assert_eq!(flat(&r), vec![50, 130]);
}

#[test]
fn bilinear_matches_pil_antialiased_triangle() {
    // PIL: [0, 100] enlarged to 4 gives [0, 25, 75, 100].
    assert_eq!(
        flat(&resize(row(&[0, 100]).view(), 1, 4, Filter::Bilinear)),
        vec![0, 25, 75, 100]
    );
    // PIL shrinking 4 -> 2 widens the triangle to support 2: weights (.75, .75, .25) / 1.75.
    // [0, 10, 20, 30] -> [12.5/1.75, 40/1.75] = [7.14, 22.86] -> [7, 23].
    assert_eq!(
        flat(&resize(
            row(&[0, 10, 20, 30]).view(),
            1,
            2,
            Filter::Bilinear
        )),
        vec![7, 23]
    );
    // Constant images stay constant, any size.
    let c = Array3::from_elem((7, 5, 3), 77u8);
    for f in [Filter::Area, Filter::Bilinear] {
        let r = resize(c.view(), 3, 11, f);
        assert_eq!(r.dim(), (3, 11, 3));
        assert!(r.iter().all(|&v| v == 77), "{f:?}");
    }
}

#[test]
fn shorter_side_and_center_crop_follow_torchvision() {
    assert_eq!(shorter_side_size(64, 100, 32), (32, 50));
    assert_eq!(shorter_side_size(100, 64, 32), (50, 32));
    assert_eq!(shorter_side_size(45, 45, 32), (32, 32));
    let img = Array3::from_elem((48, 75, 3), 1u8);
    assert_eq!(
        resize_shorter_side(img.view(), 32, Filter::Bilinear).dim(),
        (32, 50, 3)
    );

    // 1 x 5 -> 1 x 2: left = round((5 - 2) / 2) = round(1.5) = 2 (half to even).
    assert_eq!(
        flat(&center_crop(row(&[0, 1, 2, 3, 4]).view(), 1, 2)),
        vec![2, 3]
    );
    // 1 x 7 -> 1 x 2: left = round(2.5) = 2.
    assert_eq!(
        flat(&center_crop(row(&[0, 1, 2, 3, 4, 5, 6]).view(), 1, 2)),
        vec![2, 3]
    );
    // Larger window than image: zero padding, (4 - 1) / 2 = 1 on the left.
    assert_eq!(flat(&center_crop(row(&[9]).view(), 1, 4)), vec![0, 9, 0, 0]);
}

#[test]
fn gray_and_flip() {
    let rgb = Array3::from_shape_vec((1, 2, 3), vec![255, 0, 0, 10, 20, 30]).unwrap();
    // PIL L: red -> 76; (10, 20, 30) -> (195950 + 769400 + 224130 + 32768) >> 16 = 18.
    assert_eq!(flat(&to_grayscale(rgb.view())), vec![76, 18]);
    assert_eq!(
        flat(&gray_to_rgb(row(&[5, 6]).view())),
        vec![5, 5, 5, 6, 6, 6]
    );
    assert_eq!(flat(&hflip(row(&[1, 2, 3]).view())), vec![3, 2, 1]);
}

fn naive_normalized(img: ArrayView3<u8>, n: &Normalize) -> Vec<f32> {
    let (h, w, c) = img.dim();
    let mut out = vec![0.0; c * h * w];
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                out[ch * h * w + y * w + x] =
                    (img[[y, x, ch]] as f32 / 255.0 - n.mean[ch]) / n.std[ch];
            }
        }
    }
    out
}

#[test]
fn normalize_uses_cifar_constants_chw() {
    let n = Normalize::cifar();
    assert!((n.mean[0] - 0.491_372_55).abs() < 1e-6 && (n.std[2] - 0.261_568_63).abs() < 1e-6);
    let img = Array3::from_shape_fn((2, 3, 3), |(y, x, c)| (y * 50 + x * 20 + c * 7) as u8);
    let mut out = vec![0.0; 18];
    n.apply_into(img.view(), &mut out);
    let want = naive_normalized(img.view(), &n);
    for (a, b) in out.iter().zip(&want) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}
