//! What `eood fit` and `eood score` share: the method key, the input arrays
//! (`--features/--logits`), the hyper-parameter flags (each
//! method's paper default when not given, the core's `Params::default_for`), the last layer
//! (`--weight/--bias`) and the typed refusals of the grammar. One flag means one thing for every
//! method; a flag the chosen method does not take is refused instead of ignored.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ndarray::{Array1, Array2};
use ood_core::detectors::{Head, Method, Params};
use ood_core::io::npy::{read_f64_matrix, read_f64_vector};

/// Refusals of the fit/score grammar (the core's own errors pass through unchanged).
#[derive(Debug, thiserror::Error)]
pub enum GrammarError {
    #[error("{flag} is not a parameter of {method} (its parameters: {takes})")]
    NotAParameter {
        flag: &'static str,
        method: &'static str,
        takes: &'static str,
    },
    #[error("{path}: holds a fitted {found} detector, not {wanted}")]
    OtherMethod {
        path: PathBuf,
        found: &'static str,
        wanted: &'static str,
    },
    #[error("{method} learns from training data: fit it first (`eood fit --method {method} ... --out F`) and score with --fitted F")]
    NeedsFit { method: &'static str },
    #[error("{flag} cannot be given with --fitted: the fitted file already holds {what}")]
    WithFitted {
        flag: &'static str,
        what: &'static str,
    },
    #[error("--feature-map is scored by ash_p, ash_b, ash_s and scale only, not {method} (give it --features)")]
    FeatureMapMethod { method: &'static str },
    #[error("the {method} score of row {row} is {value} (inputs too large); nothing written")]
    NonFiniteScore {
        method: &'static str,
        row: usize,
        value: f64,
    },
}

/// `--method`: a detector key.
pub fn parse_method(s: &str) -> Result<Method, String> {
    Method::from_key(s).map_err(|_| {
        let keys: Vec<&str> = Method::ALL.iter().map(|m| m.key()).collect();
        format!("expected one of {}", keys.join(", "))
    })
}

/// Methods whose fit learns from training data (features, logits or labels), so that scoring
/// them needs the file of `eood fit`. The others keep only the head (or nothing) and are built
/// at scoring time from `--weight/--bias` and the parameter flags.
pub fn learns_from_training(m: Method) -> bool {
    matches!(
        m,
        Method::React
            | Method::Dice
            | Method::Klm
            | Method::Knn
            | Method::Vim
            | Method::MahalanobisFeatures
            | Method::Rmds
            | Method::She
    )
}

/// Hyper-parameters of every method, each `None` unless given (then the paper's default).
#[derive(clap::Args, Debug, Default, Clone)]
#[command(next_help_heading = "Method parameters (default: the method's paper)")]
pub struct ParamArgs {
    /// Percentile in percent, in [0, 100]: ReAct's clipping (90), ASH's pruning (ash_p and
    /// ash_s 90, ash_b 65), SCALE's (85), DICE's sparsity (90).
    #[arg(long, allow_negative_numbers = true)]
    pub percentile: Option<f64>,
    /// KNN: the k-th nearest training feature (50).
    #[arg(long)]
    pub k: Option<usize>,
    /// GEN: gamma (0.1).
    #[arg(long, allow_negative_numbers = true)]
    pub gamma: Option<f64>,
    /// GEN: the M top classes (100, capped at K).
    #[arg(long)]
    pub m: Option<usize>,
    /// ViM: the principal dimension D' (the authors' rule: D/2 below D = 768).
    #[arg(long)]
    pub dim: Option<usize>,
    /// mahalanobis_features and rmds: covariance shrinkage towards a scaled identity, in [0, 1]
    /// (0, the paper's estimate).
    #[arg(long, allow_negative_numbers = true)]
    pub shrinkage: Option<f64>,
    /// energy, msp and gradnorm: temperature T in [1e-3, 1e6] (1); checked and ignored by
    /// maxlogit.
    #[arg(long, allow_negative_numbers = true)]
    pub temperature: Option<f64>,
}

impl ParamArgs {
    /// The flags given, by name.
    fn given(&self) -> Vec<&'static str> {
        [
            ("--percentile", self.percentile.is_some()),
            ("--k", self.k.is_some()),
            ("--gamma", self.gamma.is_some()),
            ("--m", self.m.is_some()),
            ("--dim", self.dim.is_some()),
            ("--shrinkage", self.shrinkage.is_some()),
            ("--temperature", self.temperature.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, g)| g.then_some(f))
        .collect()
    }

    pub fn any(&self) -> bool {
        !self.given().is_empty()
    }

    /// The method's paper defaults with the given flags applied; a flag the method does not take
    /// is refused. The values are validated by the core when fitting.
    pub fn params(&self, m: Method) -> anyhow::Result<Params> {
        let mut p = Params::default_for(m);
        let takes: &'static str = match &mut p {
            Params::Energy(l) | Params::Msp(l) => {
                set_temperature(&mut l.temperature, self.temperature)?;
                "--temperature"
            }
            Params::Gradnorm(g) => {
                set_temperature(&mut g.temperature, self.temperature)?;
                "--temperature"
            }
            Params::React(r) => {
                set(&mut r.percentile, self.percentile);
                "--percentile"
            }
            Params::Ash(a) => {
                set(&mut a.percentile, self.percentile);
                "--percentile"
            }
            Params::Scale(s) => {
                set(&mut s.percentile, self.percentile);
                "--percentile"
            }
            Params::Dice(d) => {
                set(&mut d.percentile, self.percentile);
                "--percentile"
            }
            Params::Gen(g) => {
                set(&mut g.gamma, self.gamma);
                set(&mut g.m, self.m);
                "--gamma, --m"
            }
            Params::Knn(k) => {
                set(&mut k.k, self.k);
                "--k"
            }
            Params::Vim(v) => {
                if self.dim.is_some() {
                    v.dim = self.dim;
                }
                "--dim"
            }
            Params::MahalanobisFeatures(s) | Params::Rmds(s) => {
                set(&mut s.shrinkage, self.shrinkage);
                "--shrinkage"
            }
            // max-logit has no temperature; the flag is checked and ignored, as `score` always did
            Params::MaxLogit => {
                set_temperature(&mut 1.0, self.temperature)?;
                "--temperature"
            }
            Params::Entropy | Params::Klm | Params::She => "none",
        };
        if let Some(flag) = self
            .given()
            .into_iter()
            .find(|f| !takes.split(", ").any(|t| t == *f))
        {
            return Err(GrammarError::NotAParameter {
                flag,
                method: m.key(),
                takes,
            }
            .into());
        }
        p.validate()?;
        Ok(p)
    }
}

fn set<T: Copy>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

fn set_temperature(field: &mut f64, value: Option<f64>) -> anyhow::Result<()> {
    if let Some(t) = value {
        *field = crate::args::check_temperature(t)?;
    }
    Ok(())
}

/// `--features` and `--logits`: the arrays `fit` learns from and `score` scores.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct ArrayArgs {
    /// Penultimate features, N x D .npy (float32/float64): training features for `fit`, the
    /// rows to score for `score`.
    #[arg(long, value_name = "NPY")]
    pub features: Option<PathBuf>,
    /// Logits, N x K .npy (float32/float64, C order); where a method needs them and they are
    /// not given, they are computed from --features and the head.
    #[arg(long, value_name = "NPY")]
    pub logits: Option<PathBuf>,
}

impl ArrayArgs {
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.features
            .iter()
            .chain(&self.logits)
            .map(|p| p.as_path())
    }

    /// The features and the logits given, read as f64.
    pub fn read(&self) -> anyhow::Result<(Option<Array2<f64>>, Option<Array2<f64>>)> {
        let features = self.features.as_deref().map(read_f64_matrix).transpose()?;
        let logits = self.logits.as_deref().map(read_f64_matrix).transpose()?;
        Ok((features, logits))
    }
}

/// `--weight/--bias`: the classifier's last layer as `eood extract --features` writes it.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct HeadArgs {
    /// Last-layer weight W, K x D .npy (`weight.npy` of `eood extract --features`).
    #[arg(long, value_name = "NPY", requires = "bias")]
    pub weight: Option<PathBuf>,
    /// Last-layer bias b, K .npy (`bias.npy`).
    #[arg(long, value_name = "NPY", requires = "weight")]
    pub bias: Option<PathBuf>,
}

impl HeadArgs {
    pub fn paths(&self) -> Vec<&Path> {
        self.weight
            .iter()
            .chain(&self.bias)
            .map(|p| p.as_path())
            .collect()
    }

    /// The head, checked (shapes agree, values finite), or `None` when not given.
    pub fn read(&self) -> anyhow::Result<Option<Head>> {
        let (Some(w), Some(b)) = (&self.weight, &self.bias) else {
            return Ok(None);
        };
        let weight = read_f64_matrix(w)?;
        let bias = Array1::from(read_f64_vector(b)?);
        let head = Head::new(weight, bias)
            .with_context(|| format!("head {} / {}", w.display(), b.display()))?;
        Ok(Some(head))
    }
}

/// Paths joined for a message naming the inputs.
pub fn names(paths: &[&Path]) -> String {
    let v: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    v.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use ood_core::detectors::FitData;

    /// The list of methods that need `eood fit` agrees with the core: exactly those fail to
    /// fit on the head alone.
    #[test]
    fn learning_methods_are_those_that_cannot_fit_on_the_head_alone() {
        let head = Head::new(array![[1.0, 0.0], [0.0, 1.0]], array![0.0, 0.0]).unwrap();
        let data = FitData {
            head: Some(&head),
            ..FitData::default()
        };
        for m in Method::ALL {
            let fits = Params::default_for(m).fit(&data).is_ok();
            assert_eq!(fits, !learns_from_training(m), "{}", m.key());
        }
    }

    #[test]
    fn flags_apply_to_their_methods_only() {
        let a = ParamArgs {
            percentile: Some(70.0),
            ..ParamArgs::default()
        };
        let Params::React(r) = a.params(Method::React).unwrap() else {
            panic!()
        };
        assert_eq!(r.percentile, 70.0);
        let e = a.params(Method::Knn).unwrap_err().to_string();
        assert_eq!(
            e,
            "--percentile is not a parameter of knn (its parameters: --k)"
        );
        let g = ParamArgs {
            gamma: Some(0.5),
            m: Some(3),
            ..ParamArgs::default()
        };
        assert_eq!(
            g.params(Method::Gen).unwrap(),
            Params::Gen(ood_core::detectors::GenParams { gamma: 0.5, m: 3 })
        );
        assert!(ParamArgs::default().params(Method::She).is_ok());
        assert!(g.params(Method::She).is_err());
    }
}
