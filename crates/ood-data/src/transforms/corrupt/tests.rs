use super::*;
use rand::SeedableRng;

/// Channel 0 = row, channel 1 = column, channel 2 = 7: every pixel says where it came from.
fn coords() -> Array3<u8> {
    Array3::from_shape_fn((32, 32, 3), |(y, x, c)| match c {
        0 => y as u8,
        1 => x as u8,
        _ => 7,
    })
}

#[test]
fn jigsaw_moves_pixels_as_the_code_of_record() {
    let j = jigsaw_32(coords().view());
    // (output pixel) <- (input pixel), printed by the code of record's torch.cat expression
    // (run through NumPy's concatenate, which has the same semantics).
    let moves = [
        ((0, 0), (8, 0)),
        ((8, 3), (0, 3)),
        ((2, 20), (18, 4)),
        ((20, 5), (20, 21)),
        ((17, 17), (1, 25)),
        ((17, 30), (1, 22)),
        ((31, 31), (15, 23)),
        ((15, 15), (7, 15)),
    ];
    for ((y, x), (sy, sx)) in moves {
        assert_eq!((j[[y, x, 0]], j[[y, x, 1]]), (sy, sx), "output ({y}, {x})");
    }
    // A permutation: every input position appears once.
    let mut seen: Vec<(u8, u8)> = (0..32)
        .flat_map(|y| (0..32).map(move |x| (y, x)))
        .map(|(y, x)| (j[[y, x, 0]], j[[y, x, 1]]))
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 1024);
}

#[test]
fn rgb_shift_and_inversion_follow_the_code_of_record() {
    let img = Array3::from_shape_fn((32, 32, 3), |(y, x, c)| (y * 7 + x * 3 + c * 50) as u8);
    let r = rgb_shift(img.view());
    for (y, x) in [(0, 0), (5, 9), (31, 31)] {
        assert_eq!(r[[y, x, 0]], img[[y, 31 - x, 1]]);
        assert_eq!(r[[y, x, 1]], img[[y, x, 2]]);
        assert_eq!(r[[y, x, 2]], img[[y, x, 0]]);
    }
    let inv = invert_channels(&[0.2, 0.2, 0.2, 1.0, 0.0, 0.25], 3, 1);
    assert_eq!(inv, vec![0.2, 0.8, 0.8, 1.0, 1.0, 0.75]);
    assert_eq!(invert_channels(&[0.25], 1, 0), vec![0.75]);
}

#[test]
fn pixelate_is_six_boxes_enlarged_by_nearest_neighbour() {
    let img = Array3::from_shape_fn((32, 32, 3), |(y, x, c)| {
        ((x * 29 + y * 53 + c * 101) % 256) as u8
    });
    let p = pixelate(img.view());
    let small = resize(img.view(), 6, 6, Filter::Box);
    for y in 0..32 {
        for x in 0..32 {
            // PIL BOX enlarging: source index floor((o + 0.5) * 6 / 32).
            let (sy, sx) = ((2 * y + 1) * 6 / 64, (2 * x + 1) * 6 / 64);
            for c in 0..3 {
                assert_eq!(p[[y, x, c]], small[[sy, sx, c]], "({y}, {x}, {c})");
            }
        }
    }
}

fn two_images() -> Array4<u8> {
    let mut a = Array4::<u8>::zeros((2, 32, 32, 3));
    a.slice_mut(s![1, .., .., ..]).fill(200);
    a
}

fn build(set: CifarValSet, n: usize, seed: u64) -> Array4<u8> {
    let src = two_images();
    let (m, sd) = (crate::transforms::CIFAR_MEAN, crate::transforms::CIFAR_STD);
    set.build(n, src.view(), &m, &sd, &mut ChaCha8Rng::seed_from_u64(seed))
        .unwrap()
}

#[test]
fn pair_means_never_pair_an_image_with_itself() {
    // Images 0 (all 0) and 1 (all 200): the partner is always the other one.
    assert!(build(CifarValSet::ArithMean, 6, 1)
        .iter()
        .all(|&v| v == 100));
    assert!(build(CifarValSet::GeomMean, 6, 1).iter().all(|&v| v == 0));
}

#[test]
fn uniform_is_the_normalized_interval_minus_one_to_one() {
    let u = build(CifarValSet::Uniform, 50, 3);
    let (m, sd) = (crate::transforms::CIFAR_MEAN, crate::transforms::CIFAR_STD);
    for c in 0..3 {
        let vals: Vec<u8> = u.slice(s![.., .., .., c]).iter().copied().collect();
        let (lo, hi) = (vals.iter().min().unwrap(), vals.iter().max().unwrap());
        let (want_lo, want_hi) = (unit_to_u8(m[c] - sd[c]), unit_to_u8(m[c] + sd[c]));
        assert!(
            *lo >= want_lo && *lo <= want_lo + 1,
            "channel {c}: min {lo} vs {want_lo}"
        );
        assert!(
            *hi <= want_hi && *hi + 1 >= want_hi,
            "channel {c}: max {hi} vs {want_hi}"
        );
    }
}

#[test]
fn sets_are_seeded_and_speckle_keeps_black_black() {
    for set in CifarValSet::ALL {
        assert_eq!(build(set, 4, 9), build(set, 4, 9), "{}", set.name());
        assert_eq!(build(set, 4, 9).shape(), &[4, 32, 32, 3]);
    }
    assert_ne!(
        build(CifarValSet::Speckle, 4, 9),
        build(CifarValSet::Speckle, 4, 10)
    );
    let sp = build(CifarValSet::Speckle, 2, 5);
    let (a, b) = (sp.slice(s![0, .., .., ..]), sp.slice(s![1, .., .., ..]));
    // One image is black (x + x z = 0), the other 200 with noise.
    let (black, lit) = if a.iter().all(|&v| v == 0) {
        (a, b)
    } else {
        (b, a)
    };
    assert!(black.iter().all(|&v| v == 0));
    assert!(lit.iter().any(|&v| v != 200) && lit.iter().any(|&v| v == 255));
    let other = Array4::<u8>::zeros((3, 28, 28, 1));
    assert!(CifarValSet::Jigsaw
        .build(
            1,
            other.view(),
            &[0.5; 3],
            &[0.5; 3],
            &mut ChaCha8Rng::seed_from_u64(0)
        )
        .is_err());
}
