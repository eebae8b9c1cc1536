//! `eood score --method <key>`: one score per row (.npy, float64; higher = more
//! in-distribution) of any detector of the zoo (`ood_core::detectors`; formulas and citations
//! there and in docs/detectors.md).
//!
//! Inputs: `--logits` (N x K), `--features` (N x D) and/or `--feature-map` (N x C x H x W, the
//! paper variants of ash_p/ash_b/ash_s/scale), as the method needs. Methods that learn from
//! training data (react, dice, klm, knn, vim, mahalanobis_features, rmds, she) take the file of
//! `eood fit` (`--fitted`, which must hold that method); the others are built here from the
//! parameter flags (paper defaults) and, where they need the last layer, `--weight/--bias`.
//! With `--fitted` and no `--method`, the method is the file's.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ood_core::detectors::{FitData, Fitted, Inputs, Method};
use ood_core::io::npy::{read_f64_array4, write_f64_vector};

use super::fit_args::{
    learns_from_training, names, parse_method, ArrayArgs, GrammarError, HeadArgs, ParamArgs,
};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Detector key (default: the --fitted file's, else energy): energy, msp, maxlogit, react,
    /// ash_p, ash_b, ash_s, scale, dice, gen, entropy, klm, knn, vim, mahalanobis_features,
    /// rmds, she, gradnorm.
    #[arg(long, value_parser = parse_method)]
    pub method: Option<Method>,
    #[command(flatten)]
    pub arrays: ArrayArgs,
    /// Last feature map before pooling, N x C x H x W .npy (`eood extract --feature-map`): the
    /// papers' variants of ash_p, ash_b, ash_s and scale.
    #[arg(long, value_name = "NPY", conflicts_with_all = ["features", "logits"])]
    pub feature_map: Option<PathBuf>,
    /// Fitted detector of `eood fit`.
    #[arg(long, value_name = "FITTED")]
    pub fitted: Option<PathBuf>,
    #[command(flatten)]
    pub head: HeadArgs,
    #[command(flatten)]
    pub params: ParamArgs,
    /// Output scores, N .npy (float64); written atomically.
    #[arg(long, value_name = "NPY")]
    pub out: PathBuf,
}

/// The detector: loaded from `--fitted` (and checked to be `--method`'s) or built from the
/// parameter flags and the head.
fn detector(a: &Args) -> anyhow::Result<Fitted> {
    if let Some(path) = &a.fitted {
        if a.params.any() {
            return Err(GrammarError::WithFitted {
                flag: "a parameter flag",
                what: "the parameters",
            }
            .into());
        }
        if a.head.weight.is_some() {
            return Err(GrammarError::WithFitted {
                flag: "--weight/--bias",
                what: "the last layer",
            }
            .into());
        }
        let fitted = Fitted::load(path)?;
        if let Some(m) = a.method.filter(|&m| m != fitted.method()) {
            return Err(GrammarError::OtherMethod {
                path: path.clone(),
                found: fitted.method().key(),
                wanted: m.key(),
            }
            .into());
        }
        return Ok(fitted);
    }
    let m = a.method.unwrap_or(Method::Energy);
    if learns_from_training(m) {
        return Err(GrammarError::NeedsFit { method: m.key() }.into());
    }
    let params = a.params.params(m).with_context(|| names(&a.inputs()))?;
    let head = a.head.read()?;
    let data = FitData {
        head: head.as_ref(),
        ..FitData::default()
    };
    Ok(params.fit(&data)?)
}

impl Args {
    fn inputs(&self) -> Vec<&Path> {
        self.arrays
            .paths()
            .chain(self.feature_map.as_deref())
            .chain(self.fitted.as_deref())
            .chain(self.head.paths())
            .collect()
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let inputs = a.inputs();
    ood_core::io::check_output(&a.out, &inputs)?;
    let what = names(&inputs);
    let det = detector(&a)?;
    let key = det.method().key();
    let scored = if let Some(path) = &a.feature_map {
        let map = read_f64_array4(path)?;
        match &det {
            Fitted::Ash(d) => d.score_map(map.view()),
            Fitted::Scale(d) => d.score_map(map.view()),
            _ => return Err(GrammarError::FeatureMapMethod { method: key }.into()),
        }
    } else {
        let (features, logits) = a.arrays.read()?;
        det.score(&Inputs {
            logits: logits.as_ref().map(|x| x.view()),
            features: features.as_ref().map(|x| x.view()),
        })
    };
    let scores = scored.with_context(|| format!("{key} on {what}"))?;
    // finite inputs can still overflow (logits near f64::MAX, a huge SCALE factor)
    if let Some(row) = ood_core::finite::first_nonfinite(&scores) {
        return Err(anyhow::Error::new(GrammarError::NonFiniteScore {
            method: key,
            row,
            value: scores[row],
        })
        .context(what));
    }
    write_f64_vector(&a.out, &scores)?;
    eprintln!(
        "wrote {} {key} scores ({}) to {}",
        scores.len(),
        serde_json::to_string(&det.params())?,
        a.out.display()
    );
    Ok(())
}
