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

use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn apply(p: &Pipeline, img: &Array3<u8>, seed: u64) -> Vec<f32> {
    let (h, w, c) = p.output_hwc(img.dim());
    let mut out = vec![0.0; h * w * c];
    p.apply_into(img.view(), &mut ChaCha8Rng::seed_from_u64(seed), &mut out);
    out
}

#[test]
fn cifar_train_pipeline_is_seeded_and_covers_all_crops_and_flips() {
    let p = Pipeline::cifar_train();
    let img = Array3::from_shape_fn((32, 32, 3), |(y, x, c)| (y * 8 + x + c * 50) as u8);
    assert_eq!(apply(&p, &img, 7), apply(&p, &img, 7));
    assert_ne!(apply(&p, &img, 7), apply(&p, &img, 8));
    // The 9 x 9 crop offsets and both flips all occur, flips about half the time. The probe
    // image stores its own coordinates (row + 1, column + 1), so each output reveals its draw.
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let probe = Array3::from_shape_fn((32, 32, 3), |(y, x, c)| [y as u8 + 1, x as u8 + 1, 0][c]);
    let unit = Pipeline {
        steps: p.steps.clone(),
        normalize: Normalize::unit(3),
    };
    let mut seen = std::collections::HashSet::new();
    let mut flips = 0;
    let n = 4000;
    for _ in 0..n {
        let o = unit.apply_u8(probe.view(), &mut rng);
        let (sy, sx16, sx17) = (
            o[[16, 16, 0]] as i32 - 1,
            o[[16, 16, 1]] as i32 - 1,
            o[[16, 17, 1]] as i32 - 1,
        );
        let flipped = sx17 < sx16;
        let dx = sx16 - if flipped { 15 } else { 16 } + 4;
        seen.insert((sy - 12, dx, flipped));
        flips += flipped as usize;
    }
    assert_eq!(seen.len(), 162, "distinct (dy, dx, flip) outcomes");
    assert!(seen
        .iter()
        .all(|&(dy, dx, _)| (0..=8).contains(&dy) && (0..=8).contains(&dx)));
    assert!(
        (flips as f64 / n as f64 - 0.5).abs() < 0.05,
        "{flips} flips of {n}"
    );
    // Padding is zero *before* normalization: a corner pixel shifted out reads (0 - mean) / std.
    let zero_val = -CIFAR_MEAN[0] / CIFAR_STD[0];
    let any_pad = (0..50).any(|s| apply(&p, &img, s)[0] == zero_val);
    assert!(any_pad);
}

fn step_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1usize..12, 1usize..12, 0usize..5).prop_map(|(height, width, padding)| Step::RandomCrop {
            height,
            width,
            padding
        }),
        (0.0f64..=1.0).prop_map(|p| Step::HorizontalFlip { p }),
        (1usize..10, 1usize..10).prop_map(|(height, width)| Step::CenterCrop { height, width }),
        (1usize..10, 1usize..10, any::<bool>()).prop_map(|(height, width, a)| Step::Resize {
            height,
            width,
            filter: if a { Filter::Area } else { Filter::Bilinear }
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    /// The fused crop/flip/normalize path equals applying each step and then normalizing.
    #[test]
    fn fused_pipeline_equals_stepwise(
        h in 1usize..10, w in 1usize..10, c in prop_oneof![Just(1usize), Just(3)],
        steps in proptest::collection::vec(step_strategy(), 0..5),
        seed in any::<u64>(), pixels in proptest::collection::vec(any::<u8>(), 300),
    ) {
        let img = Array3::from_shape_fn((h, w, c), |(y, x, ch)| pixels[(y * w + x) * c + ch]);
        let normalize = Normalize { mean: vec![0.3; c], std: vec![0.2; c] };
        let p = Pipeline { steps, normalize: normalize.clone() };
        let fused = apply(&p, &img, seed);
        let stepped = p.apply_u8(img.view(), &mut ChaCha8Rng::seed_from_u64(seed));
        let mut want = vec![0.0; fused.len()];
        normalize.apply_into(stepped.view(), &mut want);
        prop_assert_eq!(fused, want);
    }

    /// Area resize by an integer factor equals naive block means (rounded half up).
    #[test]
    fn area_integer_factor_is_block_mean(oh in 1usize..5, ow in 1usize..5, f in 1usize..4, seed in any::<u64>()) {
        use rand::Rng;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let img = Array3::from_shape_fn((oh * f, ow * f, 2), |_| rng.random::<u8>());
        let r = resize(img.view(), oh, ow, Filter::Area);
        for y in 0..oh { for x in 0..ow { for ch in 0..2 {
            let mut s = 0u32;
            for dy in 0..f { for dx in 0..f { s += img[[y * f + dy, x * f + dx, ch]] as u32; } }
            let mean = s as f64 / (f * f) as f64;
            prop_assert!((r[[y, x, ch]] as f64 - mean).abs() <= 0.5 + 1e-4, "{} vs {}", r[[y, x, ch]], mean);
        }}}
    }
}

// ---- PIL goldens: generated by crates/ood-data/examples/pil_resize_golden.py (Pillow 11.3.0 and 13.0.0 agree) ----
#[rustfmt::skip]
mod pil {
    pub const GRAY_6X9_TO_4X5: [u8; 20] = [68, 126, 173, 138, 77, 157, 110, 132, 130, 167, 98, 135, 133, 155, 108, 188, 127, 92, 139, 197];
    pub const GRAY_6X9_TO_3X3: [u8; 9] = [110, 153, 113, 123, 133, 143, 152, 112, 155];
    pub const GRAY_6X9_TO_10X14: [u8; 140] = [13, 30, 54, 78, 102, 125, 149, 173, 197, 220, 180, 39, 36, 53, 49, 66, 90, 114, 138, 161, 185, 177, 135, 154, 140, 65, 72, 89, 104, 121, 145, 169, 193, 216, 240, 182, 41, 55, 79, 103, 127, 144, 159, 176, 183, 108, 94, 117, 141, 132, 90, 110, 134, 158, 182, 199, 162, 179, 181, 73, 46, 69, 93, 117, 141, 164, 175, 166, 185, 202, 63, 80, 99, 90, 101, 124, 148, 172, 196, 219, 192, 84, 86, 103, 66, 83, 107, 131, 155, 175, 133, 124, 148, 171, 157, 82, 89, 106, 121, 138, 162, 186, 210, 224, 83, 25, 49, 72, 96, 120, 144, 161, 176, 193, 200, 125, 111, 130, 88, 80, 104, 127, 151, 175, 199, 216, 212, 229, 226, 85, 45, 68, 92, 116, 140, 163, 187, 211, 235, 252];
    pub const RGB_7X11_TO_5X8: [u8; 120] = [34, 135, 150, 70, 171, 94, 110, 198, 56, 151, 169, 97, 186, 98, 135, 157, 75, 176, 106, 115, 176, 50, 151, 166, 98, 199, 44, 134, 159, 80, 174, 116, 120, 162, 64, 161, 107, 98, 194, 56, 139, 120, 78, 179, 86, 114, 215, 60, 175, 67, 121, 186, 77, 157, 180, 96, 190, 71, 137, 131, 74, 173, 65, 115, 177, 68, 155, 134, 101, 191, 83, 137, 138, 97, 198, 97, 133, 172, 72, 173, 138, 113, 170, 64, 151, 133, 97, 192, 58, 138, 179, 77, 178, 154, 113, 214, 60, 161, 92, 96, 197, 82, 136, 103, 82, 177, 75, 123, 209, 60, 161, 112, 101, 202, 86, 141, 164, 76, 177, 108];
    pub const RGB_7X11_TO_9X4: [u8; 108] = [40, 141, 157, 113, 201, 63, 187, 96, 137, 93, 109, 210, 75, 176, 78, 148, 151, 96, 148, 91, 170, 72, 144, 131, 117, 180, 63, 163, 100, 136, 96, 113, 160, 85, 186, 78, 158, 136, 104, 153, 79, 163, 63, 153, 111, 126, 189, 72, 199, 44, 145, 131, 117, 158, 94, 191, 53, 167, 97, 113, 174, 85, 186, 86, 158, 136, 135, 146, 84, 208, 72, 154, 101, 126, 180, 100, 166, 98, 174, 91, 122, 154, 94, 195, 67, 160, 127, 140, 130, 88, 177, 71, 162, 91, 136, 180, 102, 180, 48, 175, 63, 121, 138, 98, 195, 70, 171, 101];
    pub const RGB_7X11_TO_L: [u8; 77] = [89, 118, 118, 147, 176, 205, 84, 113, 142, 94, 123, 113, 142, 171, 200, 79, 108, 137, 89, 118, 118, 147, 166, 195, 74, 103, 132, 84, 113, 113, 142, 171, 200, 69, 98, 127, 156, 108, 108, 137, 166, 195, 74, 103, 122, 151, 103, 132, 132, 161, 190, 69, 98, 127, 156, 98, 127, 127, 156, 185, 64, 93, 122, 151, 103, 132, 122, 151, 180, 59, 88, 117, 146, 98, 127, 127, 156];
    pub const RGB_7X11_BOX_3X5: [u8; 45] = [49, 150, 123, 107, 208, 53, 179, 109, 125, 124, 97, 198, 54, 155, 128, 181, 111, 127, 154, 84, 185, 83, 156, 115, 128, 144, 74, 186, 116, 132, 58, 159, 132, 116, 153, 62, 188, 75, 134, 133, 106, 207, 63, 164, 137];
    pub const RGB_7X11_BOX_10X14: [u8; 420] = [7, 108, 209, 36, 137, 238, 36, 137, 238, 65, 166, 11, 94, 195, 40, 123, 224, 69, 152, 253, 98, 152, 253, 98, 181, 26, 127, 210, 55, 156, 239, 84, 185, 12, 113, 214, 12, 113, 214, 41, 142, 243, 60, 161, 6, 89, 190, 35, 89, 190, 35, 118, 219, 64, 147, 248, 93, 176, 21, 122, 205, 50, 151, 205, 50, 151, 234, 79, 180, 7, 108, 209, 36, 137, 238, 65, 166, 11, 65, 166, 11, 94, 195, 40, 60, 161, 6, 89, 190, 35, 89, 190, 35, 118, 219, 64, 147, 248, 93, 176, 21, 122, 205, 50, 151, 205, 50, 151, 234, 79, 180, 7, 108, 209, 36, 137, 238, 65, 166, 11, 65, 166, 11, 94, 195, 40, 113, 214, 59, 142, 243, 88, 142, 243, 88, 171, 16, 117, 200, 45, 146, 229, 74, 175, 2, 103, 204, 2, 103, 204, 31, 132, 233, 60, 161, 6, 89, 190, 35, 118, 219, 64, 118, 219, 64, 147, 248, 93, 166, 11, 112, 195, 40, 141, 195, 40, 141, 224, 69, 170, 253, 98, 199, 26, 127, 228, 55, 156, 1, 55, 156, 1, 84, 185, 30, 113, 214, 59, 142, 243, 88, 171, 16, 117, 171, 16, 117, 200, 45, 146, 166, 11, 112, 195, 40, 141, 195, 40, 141, 224, 69, 170, 253, 98, 199, 26, 127, 228, 55, 156, 1, 55, 156, 1, 84, 185, 30, 113, 214, 59, 142, 243, 88, 171, 16, 117, 171, 16, 117, 200, 45, 146, 219, 64, 165, 248, 93, 194, 248, 93, 194, 21, 122, 223, 50, 151, 252, 79, 180, 25, 108, 209, 54, 108, 209, 54, 137, 238, 83, 166, 11, 112, 195, 40, 141, 224, 69, 170, 224, 69, 170, 253, 98, 199, 16, 117, 218, 45, 146, 247, 45, 146, 247, 74, 175, 20, 103, 204, 49, 132, 233, 78, 161, 6, 107, 161, 6, 107, 190, 35, 136, 219, 64, 165, 248, 93, 194, 21, 122, 223, 21, 122, 223, 50, 151, 252, 16, 117, 218, 45, 146, 247, 45, 146, 247, 74, 175, 20, 103, 204, 49, 132, 233, 78, 161, 6, 107, 161, 6, 107, 190, 35, 136, 219, 64, 165, 248, 93, 194, 21, 122, 223, 21, 122, 223, 50, 151, 252, 69, 170, 15, 98, 199, 44, 98, 199, 44, 127, 228, 73, 156, 1, 102, 185, 30, 131, 214, 59, 160, 214, 59, 160, 243, 88, 189, 16, 117, 218, 45, 146, 247, 74, 175, 20, 74, 175, 20, 103, 204, 49];
    pub const RGB_32_BOX_6X6: [u8; 108] = [130, 129, 127, 126, 133, 123, 121, 130, 119, 123, 132, 130, 129, 128, 126, 125, 123, 132, 113, 137, 118, 125, 119, 135, 133, 132, 122, 124, 123, 130, 133, 121, 129, 128, 135, 125, 129, 128, 127, 129, 119, 126, 131, 119, 128, 133, 131, 130, 123, 122, 121, 124, 133, 121, 128, 127, 136, 129, 128, 126, 119, 128, 127, 121, 130, 129, 124, 131, 130, 123, 121, 120, 133, 132, 122, 126, 142, 129, 136, 118, 133, 119, 135, 116, 128, 130, 138, 139, 129, 128, 127, 126, 125, 123, 130, 129, 129, 128, 136, 131, 129, 128, 135, 125, 132, 132, 121, 129];
}

fn gray_6x9() -> Array3<u8> {
    Array3::from_shape_fn((6, 9, 1), |(y, x, _)| ((x * 37 + y * 91 + 13) % 256) as u8)
}

fn rgb_7x11() -> Array3<u8> {
    Array3::from_shape_fn((7, 11, 3), |(y, x, c)| {
        ((x * 29 + y * 53 + c * 101 + 7) % 256) as u8
    })
}

/// Largest absolute difference, and how many values differ at all.
fn diff(ours: &Array3<u8>, pil: &[u8]) -> (u8, usize) {
    assert_eq!(ours.len(), pil.len());
    let d: Vec<u8> = ours.iter().zip(pil).map(|(&a, &b)| a.abs_diff(b)).collect();
    (
        *d.iter().max().unwrap(),
        d.iter().filter(|&&v| v > 0).count(),
    )
}

/// PIL's BILINEAR, shrinking and enlarging, gray and RGB: bit-identical.
#[test]
fn pil_golden_bilinear_resize() {
    let g = gray_6x9();
    let cases: [(&[u8], Array3<u8>); 5] = [
        (
            &pil::GRAY_6X9_TO_4X5,
            resize(g.view(), 4, 5, Filter::Bilinear),
        ),
        (
            &pil::GRAY_6X9_TO_3X3,
            resize(g.view(), 3, 3, Filter::Bilinear),
        ),
        (
            &pil::GRAY_6X9_TO_10X14,
            resize(g.view(), 10, 14, Filter::Bilinear),
        ),
        (
            &pil::RGB_7X11_TO_5X8,
            resize(rgb_7x11().view(), 5, 8, Filter::Bilinear),
        ),
        (
            &pil::RGB_7X11_TO_9X4,
            resize(rgb_7x11().view(), 9, 4, Filter::Bilinear),
        ),
    ];
    for (k, (want, ours)) in cases.iter().enumerate() {
        assert_eq!(
            diff(ours, want),
            (0, 0),
            "case {k}: (max difference, values differing) from PIL"
        );
    }
}

#[test]
fn pil_golden_grayscale_is_exact() {
    let ours = to_grayscale(rgb_7x11().view());
    assert_eq!(diff(&ours, &pil::RGB_7X11_TO_L), (0, 0));
}

fn rgb_32() -> Array3<u8> {
    Array3::from_shape_fn((32, 32, 3), |(y, x, c)| {
        ((x * 29 + y * 53 + c * 101 + 7) % 256) as u8
    })
}

/// PIL's BOX (the code of record's `pixelate`): shrinking by a fractional factor, enlarging
/// (nearest neighbour), and the 32 -> 6 step of `pixelate`: bit-identical.
#[test]
fn pil_golden_box_resize() {
    let c = rgb_7x11();
    assert_eq!(
        diff(&resize(c.view(), 3, 5, Filter::Box), &pil::RGB_7X11_BOX_3X5),
        (0, 0)
    );
    assert_eq!(
        diff(
            &resize(c.view(), 10, 14, Filter::Box),
            &pil::RGB_7X11_BOX_10X14
        ),
        (0, 0)
    );
    assert_eq!(
        diff(
            &resize(rgb_32().view(), 6, 6, Filter::Box),
            &pil::RGB_32_BOX_6X6
        ),
        (0, 0)
    );
}
