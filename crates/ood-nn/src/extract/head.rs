//! The classifier's last linear layer (`logits = h W^T + b`, W: K x D, b: K) and the unpooled
//! feature map, for the post-hoc detectors that need them (docs/detectors.md).
//!
//! How the head is found:
//! - our WideResNet (our checkpoint or a PyTorch state dict): its `fc` layer;
//! - a TorchScript module: the parameter named by `--head-weight` (with `--head-bias`, or else
//!   the `bias` beside it, or else a zero bias); without a name, the only pair of parameters
//!   `<prefix>weight` (K x D) and `<prefix>bias` (K) whose K is the logits' columns and D the
//!   features' columns. Several such pairs are refused as ambiguous, none as not found.
//!
//! Either way the head is checked on the first batch: `h W^T + b` must reproduce the logits
//! (to 1e-3, relative), so that a head followed by more computation (a temperature, a second
//! layer) is refused instead of written.
//!
//! The feature map: the WideResNet's final `relu(bn(.))` output before global average pooling;
//! a TorchScript module's `feature_map(x)` method (`N x C x H x W`), if it defines one.
use std::path::{Path, PathBuf};

use tch::{CModule, Tensor};

use super::Result;
use crate::model::Classifier;

/// Names of the head's parameters in a TorchScript module (`--head-weight`, `--head-bias`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HeadNames {
    pub weight: Option<String>,
    pub bias: Option<String>,
}

/// Why the last layer or the feature map could not be had.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("{path}: no parameter pair <name>weight ({classes} x {dims}) and <name>bias ({classes}) for the last layer; name it with --head-weight (and --head-bias)")]
    NotFound {
        path: PathBuf,
        classes: i64,
        dims: i64,
    },
    #[error("{path}: {} parameter pairs could be the last layer ({}); name one with --head-weight", .candidates.len(), .candidates.join(", "))]
    Ambiguous {
        path: PathBuf,
        candidates: Vec<String>,
    },
    #[error("{path}: no parameter named {name:?}")]
    NoSuchParameter { path: PathBuf, name: String },
    #[error("{path}: parameter {name} has shape {found:?}, the last layer needs {expected:?}")]
    Shape {
        path: PathBuf,
        name: String,
        found: Vec<i64>,
        expected: Vec<i64>,
    },
    #[error("{model}: features x W^T + b differ from the logits by up to {max_diff:e}, so W, b are not the last layer (name it with --head-weight, or leave out --features)")]
    Mismatch { model: String, max_diff: f64 },
    #[error("{path}: the TorchScript module has no `feature_map(x)` method returning the N x C x H x W map before pooling, which --feature-map needs")]
    NoFeatureMap { path: PathBuf },
    #[error("{model}: the feature map has shape {shape:?}; expected N x C x H x W with C = the {dims} feature columns")]
    MapShape {
        model: String,
        shape: Vec<i64>,
        dims: i64,
    },
    #[error("--head-weight/--head-bias name TorchScript parameters; {model} has its own last layer (fc)")]
    NamesForWrn { model: String },
}

/// The last layer `(W, b)` of `model`, for logits of `classes` columns from features of `dims`.
pub fn find_head(
    model: &Classifier,
    names: &HeadNames,
    classes: i64,
    dims: i64,
) -> Result<(Tensor, Tensor)> {
    match model {
        Classifier::Wrn { net, .. } => {
            if names != &HeadNames::default() {
                return Err(HeadError::NamesForWrn {
                    model: format!("{:?}", model.source()),
                }
                .into());
            }
            Ok(net.head())
        }
        Classifier::TorchScript { module, path, .. } => {
            Ok(torchscript_head(module, path, names, classes, dims)?)
        }
    }
}

fn torchscript_head(
    module: &CModule,
    path: &Path,
    names: &HeadNames,
    classes: i64,
    dims: i64,
) -> Result<(Tensor, Tensor), HeadError> {
    let params = module.named_parameters().unwrap_or_default();
    let get = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, t)| t);
    let shaped = |name: &str, expected: Vec<i64>| -> Result<Tensor, HeadError> {
        let t = get(name).ok_or_else(|| HeadError::NoSuchParameter {
            path: path.into(),
            name: name.into(),
        })?;
        if t.size() != expected {
            return Err(HeadError::Shape {
                path: path.into(),
                name: name.into(),
                found: t.size(),
                expected,
            });
        }
        Ok(t.detach())
    };
    let bias_beside = |w: &str| format!("{}bias", w.strip_suffix("weight").unwrap_or(w));
    if let Some(w) = &names.weight {
        let weight = shaped(w, vec![classes, dims])?;
        let bias = match &names.bias {
            Some(b) => shaped(b, vec![classes])?,
            None if w.ends_with("weight") && get(&bias_beside(w)).is_some() => {
                shaped(&bias_beside(w), vec![classes])?
            }
            None => Tensor::zeros([classes], (weight.kind(), weight.device())),
        };
        return Ok((weight, bias));
    }
    let candidates: Vec<&String> = params
        .iter()
        .filter(|(n, t)| {
            n.ends_with("weight")
                && t.size() == [classes, dims]
                && get(&bias_beside(n)).is_some_and(|b| b.size() == [classes])
        })
        .map(|(n, _)| n)
        .collect();
    match candidates.as_slice() {
        [w] => Ok((
            shaped(w, vec![classes, dims])?,
            shaped(&bias_beside(w), vec![classes])?,
        )),
        [] => Err(HeadError::NotFound {
            path: path.into(),
            classes,
            dims,
        }),
        many => Err(HeadError::Ambiguous {
            path: path.into(),
            candidates: many.iter().map(|s| s.to_string()).collect(),
        }),
    }
}

/// Refuses a head that does not reproduce the logits of these features.
pub fn check_head(
    model: &Classifier,
    (w, b): (&Tensor, &Tensor),
    features: &Tensor,
    logits: &Tensor,
) -> Result<()> {
    let rebuilt = features.linear(w, Some(b));
    let excess = (rebuilt - logits).abs() - (logits.abs() * 1e-3 + 1e-3);
    let worst = excess.max().double_value(&[]);
    if worst > 0.0 || worst.is_nan() {
        let max_diff = (features.linear(w, Some(b)) - logits)
            .abs()
            .max()
            .double_value(&[]);
        return Err(HeadError::Mismatch {
            model: format!("{:?}", model.source()),
            max_diff,
        }
        .into());
    }
    Ok(())
}

/// Logits, pooled features and the feature map before pooling (`N x C x H x W`).
pub fn forward_with_map(model: &Classifier, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    let (l, f, map) = match model {
        Classifier::Wrn { net, .. } => {
            let mut out = net.forward_all(x, false);
            let map = out.blocks.pop().expect("forward_all returns the final map");
            (out.logits, out.features, map)
        }
        Classifier::TorchScript { module, path, .. } => {
            let (l, f) = model.logits_and_features(x)?;
            let map = module
                .method_ts("feature_map", &[x])
                .map_err(|_| HeadError::NoFeatureMap { path: path.into() })?;
            (l, f, map)
        }
    };
    let dims = f.size().get(1).copied().unwrap_or(0);
    if map.dim() != 4 || map.size()[1] != dims {
        return Err(HeadError::MapShape {
            model: format!("{:?}", model.source()),
            shape: map.size(),
            dims,
        }
        .into());
    }
    Ok((l, f, map))
}
