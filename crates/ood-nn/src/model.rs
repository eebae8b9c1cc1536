//! A classifier to score: our WideResNet (from our checkpoint or a PyTorch `state_dict`) or any
//! TorchScript module (the paper's "any pre-trained network": `torch.jit.trace`/`script` output).
//!
//! Everything here runs the network in evaluation mode (BatchNorm running statistics, no
//! dropout). Parameters are frozen, so gradients flow only to the input, which is what ODIN and
//! Mahalanobis input preprocessing need (see [`crate::odin`], [`crate::mahalanobis_input`]).
//!
//! Penultimate features of a TorchScript module: its `forward` may return `(logits, features)`,
//! or the module may define a `features(x)` method returning `N x D` features (whose logits
//! then come from `forward`). A module with neither gives logits only.
use std::path::{Path, PathBuf};

use ood_data::transforms::Normalize;
use tch::nn::VarStore;
use tch::{CModule, Device, IValue, Tensor};

use crate::checkpoint;
use crate::error::{Error, Result};
use crate::pytorch;
use crate::state_dict;
use crate::wrn::{WideResNet, WrnConfig};

/// Where a classifier came from (for messages and provenance records).
#[derive(Clone, Debug, PartialEq)]
pub enum ModelSource {
    Checkpoint(PathBuf),
    StateDict(PathBuf),
    TorchScript(PathBuf),
    InMemory,
}

/// A loaded classifier in evaluation mode.
// One per process; boxing the WRN variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Classifier {
    Wrn {
        vs: VarStore,
        net: WideResNet,
        source: ModelSource,
        /// Input normalization recorded in the checkpoint, if any.
        normalize: Option<Normalize>,
    },
    TorchScript {
        module: CModule,
        path: PathBuf,
        device: Device,
    },
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Classifier::Wrn { net, source, .. } => f
                .debug_struct("Classifier::Wrn")
                .field("config", net.config())
                .field("source", source)
                .finish(),
            Classifier::TorchScript { path, device, .. } => f
                .debug_struct("Classifier::TorchScript")
                .field("path", path)
                .field("device", device)
                .finish(),
        }
    }
}

impl Classifier {
    /// Wraps an in-memory WideResNet (its variables are frozen).
    pub fn from_wrn(mut vs: VarStore, net: WideResNet) -> Self {
        vs.freeze();
        Classifier::Wrn {
            vs,
            net,
            source: ModelSource::InMemory,
            normalize: None,
        }
    }

    /// Our checkpoint, named by its JSON sidecar. The input normalization recorded in the
    /// sidecar (`input: {mean, std, ...}` as the trainer writes it, or `training.normalize`) is
    /// the model's.
    pub fn from_checkpoint(json: &Path, device: Device) -> Result<Self> {
        let ckpt = checkpoint::load(json)?;
        let normalize = recorded_normalize(&ckpt.meta).map_err(|reason| Error::Sidecar {
            path: json.into(),
            reason,
        })?;
        let vs = VarStore::new(device);
        let net = WideResNet::new(&vs.root(), &ckpt.meta.architecture)?;
        state_dict::load_into(&vs, &ckpt.weights)?;
        let mut c = Self::from_wrn(vs, net);
        if let Classifier::Wrn {
            source,
            normalize: n,
            ..
        } = &mut c
        {
            *source = ModelSource::Checkpoint(json.into());
            *n = normalize;
        }
        Ok(c)
    }

    /// A PyTorch `state_dict` (`torch.save`, zip or legacy) of the code of record's WideResNet.
    pub fn from_state_dict(path: &Path, config: &WrnConfig, device: Device) -> Result<Self> {
        let sd = pytorch::load_state_dict(path)?;
        let vs = VarStore::new(device);
        let net = WideResNet::new(&vs.root(), config)?;
        state_dict::load_into(&vs, &sd)?;
        let mut c = Self::from_wrn(vs, net);
        if let Classifier::Wrn { source, .. } = &mut c {
            *source = ModelSource::StateDict(path.into());
        }
        Ok(c)
    }

    /// A TorchScript module (`torch.jit.save`), put in evaluation mode, parameters frozen.
    pub fn from_torchscript(path: &Path, device: Device) -> Result<Self> {
        let mut module = CModule::load_on_device(path, device).map_err(|e| Error::Checkpoint {
            path: path.into(),
            reason: format!("not a loadable TorchScript module: {}", first_line(&e)),
        })?;
        module
            .f_set_eval()
            .map_err(|e| Error::torch(format!("{}: eval mode", path.display()), e))?;
        let params = module
            .named_parameters()
            .map_err(|e| Error::torch(format!("{}: parameters", path.display()), e))?;
        for (_, p) in params {
            let _ = p.set_requires_grad(false);
        }
        Ok(Classifier::TorchScript {
            module,
            path: path.into(),
            device,
        })
    }

    pub fn device(&self) -> Device {
        match self {
            Classifier::Wrn { vs, .. } => vs.device(),
            Classifier::TorchScript { device, .. } => *device,
        }
    }

    pub fn source(&self) -> ModelSource {
        match self {
            Classifier::Wrn { source, .. } => source.clone(),
            Classifier::TorchScript { path, .. } => ModelSource::TorchScript(path.clone()),
        }
    }

    /// The normalization recorded with the model, if any.
    pub fn normalize(&self) -> Option<&Normalize> {
        match self {
            Classifier::Wrn { normalize, .. } => normalize.as_ref(),
            Classifier::TorchScript { .. } => None,
        }
    }

    /// Input channels the model expects, when known.
    pub fn in_channels(&self) -> Option<i64> {
        match self {
            Classifier::Wrn { net, .. } => Some(net.config().in_channels),
            Classifier::TorchScript { .. } => None,
        }
    }

    /// Logits `N x K` of `N x C x H x W` input. Differentiable with respect to `x`.
    pub fn logits(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Classifier::Wrn { net, .. } => Ok(net.forward(x, false)),
            Classifier::TorchScript { module, path, .. } => {
                match self.ts_forward(module, path, x)? {
                    TsOut::Logits(l) | TsOut::Both(l, _) => Ok(l),
                }
            }
        }
    }

    /// Logits and penultimate features `N x D`. Differentiable with respect to `x`.
    pub fn logits_and_features(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        match self {
            Classifier::Wrn { net, .. } => Ok(net.forward_features(x, false)),
            Classifier::TorchScript { module, path, .. } => {
                match self.ts_forward(module, path, x)? {
                    TsOut::Both(l, f) => Ok((l, f)),
                    TsOut::Logits(l) => {
                        let f = module.method_ts("features", &[x]).map_err(|e| {
                            Error::TorchScriptNoFeatures {
                                path: path.clone(),
                                torch: first_line(&e),
                            }
                        })?;
                        Ok((l, flatten_features(f)))
                    }
                }
            }
        }
    }

    /// Penultimate features only.
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.logits_and_features(x)?.1)
    }

    /// The first `count` layer features of the Mahalanobis layer ensemble, `N x C_l` each
    /// (differentiable with respect to `x`): [`WideResNet::layer_features`] (conv1, block1,
    /// block2, final map; the last is [`Classifier::features`]), or what a TorchScript
    /// module's `feature_list(x)` method returns (the name of Lee et al.'s code), each
    /// globally average-pooled.
    pub fn layer_features(&self, x: &Tensor, count: usize) -> Result<Vec<Tensor>> {
        match self {
            Classifier::Wrn { net, .. } => Ok(net.layer_features(x, false, count)),
            Classifier::TorchScript { module, path, .. } => {
                let no_layers = || Error::NoLayerFeatures { path: path.clone() };
                let out = module
                    .method_is("feature_list", &[IValue::Tensor(x.shallow_clone())])
                    .map_err(|_| no_layers())?;
                let items = match out {
                    IValue::Tuple(items) | IValue::GenericList(items) => items
                        .into_iter()
                        .map(|v| match v {
                            IValue::Tensor(t) => Ok(t),
                            _ => Err(no_layers()),
                        })
                        .collect::<Result<Vec<_>>>()?,
                    IValue::TensorList(items) => items,
                    _ => return Err(no_layers()),
                };
                if items.is_empty() {
                    return Err(no_layers());
                }
                Ok(items
                    .into_iter()
                    .take(count)
                    .map(|t| match t.dim() {
                        4 => t.mean_dim([2i64, 3].as_slice(), false, None::<tch::Kind>),
                        _ => flatten_features(t),
                    })
                    .collect())
            }
        }
    }

    /// How many layer features [`Classifier::layer_features`] gives (probes a TorchScript
    /// module with one zero image of `shape` = `C x H x W`).
    pub fn layer_count(&self, shape: [i64; 3]) -> Result<usize> {
        match self {
            Classifier::Wrn { .. } => Ok(crate::wrn::LAYERS),
            Classifier::TorchScript { .. } => {
                let x = Tensor::zeros(
                    [1, shape[0], shape[1], shape[2]],
                    (tch::Kind::Float, self.device()),
                );
                Ok(tch::no_grad(|| self.layer_features(&x, usize::MAX))?.len())
            }
        }
    }

    fn ts_forward(&self, module: &CModule, path: &Path, x: &Tensor) -> Result<TsOut> {
        let out = module
            .forward_is(&[IValue::Tensor(x.shallow_clone())])
            .map_err(|e| {
                Error::torch(
                    format!("{}: forward on input {:?}", path.display(), x.size()),
                    e,
                )
            })?;
        let bad = |returned| Error::TorchScriptOutput {
            path: path.to_path_buf(),
            returned,
        };
        match out {
            IValue::Tensor(l) => Ok(TsOut::Logits(check_logits(l, path)?)),
            IValue::Tuple(items) | IValue::GenericList(items) => {
                match <[IValue; 2]>::try_from(items) {
                    Ok([IValue::Tensor(l), IValue::Tensor(f)]) => {
                        Ok(TsOut::Both(check_logits(l, path)?, flatten_features(f)))
                    }
                    _ => Err(bad("a tuple that is not (tensor, tensor)")),
                }
            }
            _ => Err(bad("a value that is not a tensor")),
        }
    }
}

/// The normalization a checkpoint sidecar records, read from its JSON form so that both the
/// trainer's `input` record and a hand-written `training.normalize` work.
fn recorded_normalize(
    meta: &checkpoint::CheckpointMeta,
) -> std::result::Result<Option<Normalize>, String> {
    let json = serde_json::to_value(meta).map_err(|e| e.to_string())?;
    let found = [
        json.get("input"),
        json.get("training").and_then(|t| t.get("normalize")),
    ]
    .into_iter()
    .flatten()
    .find(|v| !v.is_null());
    match found {
        None => Ok(None),
        Some(v) => {
            let n = Normalize {
                mean: serde_json::from_value(v.get("mean").cloned().unwrap_or_default())
                    .map_err(|e| format!("normalization mean: {e}"))?,
                std: serde_json::from_value(v.get("std").cloned().unwrap_or_default())
                    .map_err(|e| format!("normalization std: {e}"))?,
            };
            if n.mean.len() != n.std.len() || n.std.iter().any(|&s| !(s.is_finite() && s > 0.0)) {
                return Err(format!(
                    "normalization mean {:?} / std {:?} is invalid",
                    n.mean, n.std
                ));
            }
            Ok(Some(n))
        }
    }
}

enum TsOut {
    Logits(Tensor),
    Both(Tensor, Tensor),
}

fn check_logits(l: Tensor, path: &Path) -> Result<Tensor> {
    if l.dim() != 2 {
        return Err(Error::LogitsShape {
            path: path.to_path_buf(),
            shape: l.size(),
        });
    }
    Ok(l)
}

/// `N x D x 1 x 1` (unpooled heads) -> `N x D`.
fn flatten_features(f: Tensor) -> Tensor {
    if f.dim() > 2 {
        let n = f.size()[0];
        f.reshape([n, -1])
    } else {
        f
    }
}

/// libtorch errors carry a C++ backtrace; the first line says what went wrong.
fn first_line(e: &tch::TchError) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}
