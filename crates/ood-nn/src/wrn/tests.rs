//! Unit tests of [`super`]: parameter names and shapes, forward pass, architecture limits.
use super::*;
use tch::nn::VarStore;
use tch::Device;

fn build(config: &WrnConfig) -> (VarStore, WideResNet) {
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let net = WideResNet::new(&vs.root(), config).unwrap();
    (vs, net)
}

#[test]
fn fashion_mnist_variant_shapes() {
    let config = WrnConfig {
        depth: 16,
        widen_factor: 2,
        dropout: 0.3,
        num_classes: 10,
        in_channels: 1,
    };
    let (_vs, net) = build(&config);
    let x = Tensor::randn([5, 1, 28, 28], (Kind::Float, Device::Cpu));
    let out = net.forward_all(&x, false);
    assert_eq!(out.logits.size(), [5, 10]);
    assert_eq!(out.features.size(), [5, 128]);
    let shapes: Vec<Vec<i64>> = out.blocks.iter().map(|b| b.size()).collect();
    assert_eq!(
        shapes,
        [
            vec![5, 32, 28, 28],
            vec![5, 64, 14, 14],
            vec![5, 128, 7, 7],
            vec![5, 128, 7, 7]
        ]
    );
    // Features are the mean of the last map; logits are fc of the features.
    let mean = out.blocks[3].mean_dim([2i64, 3].as_slice(), false, None::<Kind>);
    assert!(mean.allclose(&out.features, 1e-6, 1e-6, false));
    assert!(net
        .classify(&out.features)
        .allclose(&out.logits, 1e-6, 1e-6, false));
}

/// Features of a WRN-10-1 for `side x side` input, the final map, and the code of record's
/// `avg_pool2d(out, 8).view(-1, nChannels)` of that map.
fn features_and_code_of_record_pool(side: i64) -> (Tensor, Tensor, Tensor) {
    let (_vs, net) = build(&WrnConfig {
        depth: 10,
        widen_factor: 1,
        ..WrnConfig::default()
    });
    let x = Tensor::randn([2, 3, side, side], (Kind::Float, Device::Cpu));
    let out = net.forward_all(&x, false);
    let last = out.blocks[3].shallow_clone();
    let pooled = last
        .avg_pool2d([8, 8], [8, 8], [0, 0], false, true, None)
        .view([2, 64]);
    (out.features, last, pooled)
}

#[test]
fn global_mean_equals_code_of_record_avg_pool_on_32x32() {
    let (features, last, pooled) = features_and_code_of_record_pool(32);
    assert_eq!(last.size(), [2, 64, 8, 8]);
    assert!(pooled.allclose(&features, 1e-6, 1e-6, false));
}

/// LSUN-Crop's 36x36 images give a 9x9 map: pooled over its top-left 8x8 as `avg_pool2d(out, 8)`
/// does in the code of record (the global mean, used before, differs).
#[test]
fn pooling_of_a_9x9_map_is_the_code_of_record_avg_pool() {
    let (features, last, pooled) = features_and_code_of_record_pool(36);
    assert_eq!(last.size(), [2, 64, 9, 9]);
    assert!(pooled.allclose(&features, 1e-6, 1e-6, false));
    let global = last.mean_dim([2i64, 3].as_slice(), false, None::<Kind>);
    assert!(!global.allclose(&features, 1e-4, 1e-4, false));
}

#[test]
fn parameter_count_and_names_of_wrn_40_2() {
    let (vs, _net) = build(&WrnConfig::default());
    let vars = vs.variables();
    let params: i64 = vs
        .trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum();
    // WRN-40-2 on CIFAR-10 has 2,243,546 parameters (PyTorch's count for the code of record).
    assert_eq!(params, 2_243_546);
    // the memory check's count is an upper bound within 1% (BatchNorm buffers included)
    let bound = WrnConfig::default().parameter_count();
    assert!(
        (2_243_546..=2_243_546 * 101 / 100).contains(&bound),
        "{bound}"
    );
    for key in [
        "conv1.weight",
        "block1.layer.0.bn1.running_mean",
        "block1.layer.0.convShortcut.weight",
        "block3.layer.5.conv2.weight",
        "bn1.num_batches_tracked",
        "fc.bias",
    ] {
        assert!(vars.contains_key(key), "{key}");
    }
    // block1.layer.0 widens 16 -> 32, later blocks of a stage keep the width.
    assert!(!vars.contains_key("block1.layer.1.convShortcut.weight"));
    // Same count as PyTorch's state_dict: conv1 + 18 blocks x (2 BN x 5 + 2 convs) + 3
    // shortcuts + bn1 (5) + fc (2).
    assert_eq!(vars.len(), 1 + 18 * 12 + 3 + 5 + 2);
}

#[test]
fn training_forward_updates_batchnorm_like_pytorch() {
    let (vs, net) = build(&WrnConfig {
        depth: 10,
        widen_factor: 1,
        dropout: 0.0,
        num_classes: 3,
        in_channels: 1,
    });
    let x = Tensor::randn([4, 1, 28, 28], (Kind::Float, Device::Cpu)) * 3.0 + 1.0;
    let before = vs.variables()["block1.layer.0.bn1.running_mean"].copy();
    let _ = net.forward(&x, true);
    let vars = vs.variables();
    assert_eq!(vars["bn1.num_batches_tracked"].int64_value(&[]), 1);
    // running_mean <- 0.9 * 0 + 0.1 * batch mean (momentum 0.1); conv1 output feeds bn1.
    let after = &vars["block1.layer.0.bn1.running_mean"];
    assert!(!after.equal(&before));
    let _ = net.forward(&x, false);
    assert_eq!(
        vs.variables()["bn1.num_batches_tracked"].int64_value(&[]),
        1
    );
}

#[test]
fn bad_depth_is_a_config_error() {
    let vs = VarStore::new(Device::Cpu);
    let err = WideResNet::new(
        &vs.root(),
        &WrnConfig {
            depth: 12,
            ..WrnConfig::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("6n+4"), "{err}");
}

/// Layer features: conv1, block1, block2 and the final map, pooled; the last equals the
/// penultimate features, and asking for fewer layers gives the same first ones.
#[test]
fn layer_features_are_the_pooled_block_outputs() {
    let (_vs, net) = build(&WrnConfig {
        depth: 10,
        widen_factor: 2,
        dropout: 0.0,
        num_classes: 3,
        in_channels: 1,
    });
    let x = Tensor::randn([3, 1, 28, 28], (Kind::Float, Device::Cpu));
    let all = net.layer_features(&x, false, LAYERS);
    let dims: Vec<Vec<i64>> = all.iter().map(|t| t.size()).collect();
    assert_eq!(dims, [vec![3, 16], vec![3, 32], vec![3, 64], vec![3, 128]]);
    let out = net.forward_all(&x, false);
    let pool = |t: &Tensor| t.mean_dim([2i64, 3].as_slice(), false, None::<Kind>);
    assert!(all[1].allclose(&pool(&out.blocks[0]), 1e-6, 1e-6, false));
    assert!(all[2].allclose(&pool(&out.blocks[1]), 1e-6, 1e-6, false));
    assert!(all[3].allclose(&out.features, 1e-6, 1e-6, false));
    let two = net.layer_features(&x, false, 2);
    assert_eq!(two.len(), 2);
    assert!(two[1].allclose(&all[1], 0.0, 0.0, false));
    assert_eq!(net.layer_features(&x, false, 99).len(), LAYERS);
}
