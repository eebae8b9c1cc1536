//! The libtorch side of bundles (`nn` feature): checkpoint, state_dict and TorchScript models
//! as an [`ood_bundle::Model`], loaded through ood-nn's one model-loading path
//! ([`ood_nn::model::Classifier`]). ood-bundle stays framework-free; this loader is what the
//! default build hands to `Bundle::load_with` / `create_with`. Bundles run on the CPU.
//!
//! For serving, the model is loaded once per model thread ([`TorchLoader::with_replicas`]) and
//! each replica runs single-threaded: tch modules are not `Sync`, so one shared replica makes
//! the server's model threads take turns, and libtorch's intra-op threads parallelise the
//! small batches of a loaded server poorly (measured in docs/bench-serve.md: 381 req/s with one
//! shared replica on 2 threads vs the replicas' figure there, at concurrency 16).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use ndarray::{Array2, ArrayView4};
use ood_bundle::runner::check_batch;
use ood_bundle::{BundleError, Forward, Model, ModelFiles, ModelKind, ModelLoader, OnnxOnly};
use ood_nn::model::Classifier;
use ood_nn::tch::{self, Device, Kind, Tensor};
use ood_nn::WrnConfig;

/// Loads every model kind: ONNX through tract, the others through libtorch.
#[derive(Debug, Clone, Copy)]
pub struct TorchLoader {
    device: Device,
    replicas: usize,
}

impl TorchLoader {
    /// One replica, libtorch's thread count as the process set it.
    pub fn cpu() -> Self {
        Self {
            device: Device::Cpu,
            replicas: 1,
        }
    }

    /// `n` copies of the model, one per model thread pulling from a server's queue.
    pub fn with_replicas(self, n: usize) -> Self {
        Self {
            replicas: n.max(1),
            ..self
        }
    }
}

impl ModelLoader for TorchLoader {
    fn load(&self, f: &ModelFiles) -> ood_bundle::Result<Box<dyn Model>> {
        let backend = |e: ood_nn::Error| BundleError::Backend {
            path: f.path.into(),
            kind: f.kind,
            source: Box::new(e),
        };
        if f.kind == ModelKind::Onnx {
            return OnnxOnly.load(f);
        }
        let config = match (f.kind, f.architecture) {
            (ModelKind::StateDict, None) => {
                return Err(BundleError::Manifest {
                    path: f.path.into(),
                    what: "a state_dict model needs its architecture".into(),
                })
            }
            (_, a) => a.map(|a| WrnConfig {
                depth: a.depth,
                widen_factor: a.widen_factor,
                dropout: 0.0,
                num_classes: a.num_classes,
                in_channels: f.chw[0] as i64,
            }),
        };
        let load_one = || match (f.kind, &config) {
            // WideResNet::new validates the architecture
            (ModelKind::StateDict, Some(c)) => Classifier::from_state_dict(f.path, c, self.device),
            (ModelKind::TorchScript, _) => Classifier::from_torchscript(f.path, self.device),
            _ => Classifier::from_checkpoint(f.path, self.device),
        };
        let replicas = (0..self.replicas)
            .map(|_| load_one().map(Mutex::new).map_err(backend))
            .collect::<ood_bundle::Result<Vec<_>>>()?;
        Ok(Box::new(TorchModel {
            replicas,
            next: AtomicUsize::new(0),
            path: f.path.into(),
            chw: f.chw,
            device: self.device,
        }))
    }
}

/// A libtorch classifier in evaluation mode, run without gradients. tch tensors are `Send` but
/// not `Sync`: each call takes a free replica (or waits for one, round robin), so calls on
/// different replicas run in parallel; with one replica they take turns.
pub struct TorchModel {
    replicas: Vec<Mutex<Classifier>>,
    next: AtomicUsize,
    path: PathBuf,
    chw: [usize; 3],
    device: Device,
}

impl TorchModel {
    /// A free replica if there is one, else the next in turn (waiting for it).
    fn replica(&self) -> std::sync::MutexGuard<'_, Classifier> {
        for r in &self.replicas {
            if let Ok(g) = r.try_lock() {
                return g;
            }
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.replicas.len();
        self.replicas[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    fn infer(
        &self,
        shape: &[usize],
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> BundleError {
        BundleError::Inference {
            shape: shape.to_vec(),
            source: format!("{}: {}", self.path.display(), e).into(),
        }
    }

    fn to_array(
        &self,
        t: &Tensor,
        name: &'static str,
        n: usize,
    ) -> ood_bundle::Result<Array2<f32>> {
        let size: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        let bad = || BundleError::OutputShape {
            name,
            shape: size.clone(),
            expected: format!("{n} x D"),
        };
        if size.len() != 2 || size[0] != n {
            return Err(bad());
        }
        let flat = t
            .to_kind(Kind::Float)
            .to_device(Device::Cpu)
            .contiguous()
            .flatten(0, -1);
        let v = Vec::<f32>::try_from(&flat).map_err(|e| self.infer(&size, e))?;
        Array2::from_shape_vec((size[0], size[1]), v).map_err(|_| bad())
    }
}

impl Model for TorchModel {
    fn forward(&self, batch: ArrayView4<f32>) -> ood_bundle::Result<Forward> {
        check_batch(&batch, self.chw)?;
        let shape = batch.shape().to_vec();
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let flat = batch.as_standard_layout();
        let x = Tensor::from_slice(flat.as_slice().expect("standard layout is contiguous"))
            .reshape(dims.as_slice())
            .to_device(self.device);
        let n = shape[0];
        let classifier = self.replica();
        let out = tch::no_grad(|| classifier.logits_and_features(&x));
        let (logits, features) = match out {
            Ok((l, f)) => (
                self.to_array(&l, "logits", n)?,
                self.to_array(&f, "features", n)?,
            ),
            // a TorchScript classifier without features still gives logit scores
            Err(_) if matches!(*classifier, Classifier::TorchScript { .. }) => {
                let l =
                    tch::no_grad(|| classifier.logits(&x)).map_err(|e| self.infer(&shape, e))?;
                (self.to_array(&l, "logits", n)?, Array2::zeros((n, 0)))
            }
            Err(e) => return Err(self.infer(&shape, e)),
        };
        Ok(Forward { logits, features })
    }

    fn input_chw(&self) -> [usize; 3] {
        self.chw
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;
    use ood_bundle::Bundle;

    /// The shipped libtorch bundle with two replicas, called from two threads at once, decides
    /// exactly as with one replica (each replica is the same model, loaded from the same file).
    #[test]
    fn replicas_decide_as_one_model_from_two_threads_at_once() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../models/fmnist-bundle-torch");
        let images: Vec<Array3<u8>> = (0..16u32)
            .map(|k| {
                Array3::from_shape_fn((28, 28, 1), |(i, j, _)| ((i * j) as u32 * k % 251) as u8)
            })
            .collect();
        let views: Vec<_> = images.iter().map(|a| a.view()).collect();
        let one = Bundle::load_with(&dir, &TorchLoader::cpu()).unwrap();
        let want = one.decide(&views).unwrap();
        let two = Bundle::load_with(&dir, &TorchLoader::cpu().with_replicas(2)).unwrap();
        std::thread::scope(|s| {
            let runs: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        (0..8)
                            .map(|_| two.decide(&views).unwrap())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for r in runs {
                for got in r.join().unwrap() {
                    for (g, w) in got.iter().zip(&want) {
                        assert_eq!((g.accepted, g.class), (w.accepted, w.class));
                        assert!(
                            (g.score - w.score).abs() < 1e-9,
                            "{} vs {}",
                            g.score,
                            w.score
                        );
                    }
                }
            }
        });
    }
}
