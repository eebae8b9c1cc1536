//! What detectors are fitted on and applied to, checked in one place: [`FitData`] (training
//! features, logits, labels and the last layer) and [`Inputs`] (the arrays to score).

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

use super::DetectorError;
use crate::scores::contiguous;
use crate::scores::par::{first_non_finite, par_dot, par_rows};

/// The classifier's last linear layer: `logits = h W^T + b`, W is K x D, b has K entries.
/// Stored as [`StoredHead`]; loading validates it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StoredHead", into = "StoredHead")]
pub struct Head {
    pub weight: Array2<f64>,
    pub bias: Array1<f64>,
}

impl Head {
    /// A head from W (K x D) and b (K), refusing mismatched or non-finite parameters.
    pub fn new(weight: Array2<f64>, bias: Array1<f64>) -> Result<Self, DetectorError> {
        if weight.nrows() == 0 || weight.ncols() == 0 {
            return Err(DetectorError::Empty {
                what: "head weight",
            });
        }
        agree(
            Count::Rows,
            "head weight",
            weight.nrows(),
            "the bias",
            bias.len(),
        )?;
        check_finite("head weight", weight.view())?;
        check_finite(
            "head bias",
            bias.view().into_shape_with_order((1, bias.len())).unwrap(),
        )?;
        Ok(Self { weight, bias })
    }
    pub fn classes(&self) -> usize {
        self.weight.nrows()
    }
    pub fn dims(&self) -> usize {
        self.weight.ncols()
    }
    /// `h W^T + b` for N x D features (dimensions checked by the caller).
    pub fn logits(&self, features: ArrayView2<f64>) -> Array2<f64> {
        let mut l = par_dot(features, self.weight.t());
        l += &self.bias;
        l
    }
}

impl From<Head> for StoredHead {
    fn from(h: Head) -> Self {
        StoredHead {
            weight: Mat::from(h.weight.view()),
            bias: h.bias.to_vec(),
        }
    }
}

impl TryFrom<StoredHead> for Head {
    type Error = DetectorError;
    fn try_from(s: StoredHead) -> Result<Self, DetectorError> {
        let Matrix(w) = Matrix::try_from(s.weight)?;
        Head::new(w, Array1::from(s.bias))
    }
}

/// A fitted array, stored as [`Mat`] and checked (shape, finite) when loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Mat", into = "Mat")]
pub struct Matrix(pub Array2<f64>);

impl From<Matrix> for Mat {
    fn from(m: Matrix) -> Self {
        Mat::from(m.0.view())
    }
}

impl TryFrom<Mat> for Matrix {
    type Error = DetectorError;
    fn try_from(m: Mat) -> Result<Self, DetectorError> {
        let (rows, cols, len) = (m.rows, m.cols, m.data.len());
        let a = Array2::from_shape_vec((rows, cols), m.data).map_err(|_| DetectorError::Shape {
            what: "stored matrix",
            rows,
            cols,
            len,
        })?;
        check_finite("stored value", a.view())?;
        Ok(Matrix(a))
    }
}

/// A matrix as stored in detector files: shape and row-major values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mat {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
}

impl From<ArrayView2<'_, f64>> for Mat {
    fn from(a: ArrayView2<f64>) -> Self {
        Mat {
            rows: a.nrows(),
            cols: a.ncols(),
            data: a.iter().copied().collect(),
        }
    }
}

/// The head as stored in a detector file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredHead {
    pub weight: Mat,
    pub bias: Vec<f64>,
}

/// Training data a detector is fitted on (never test data). Each method says which parts it
/// needs; [`FitData::check`] validates whatever is given against each other.
#[derive(Debug, Clone, Copy, Default)]
pub struct FitData<'a> {
    /// Penultimate features, N x D.
    pub features: Option<ArrayView2<'a, f64>>,
    /// Logits, N x K.
    pub logits: Option<ArrayView2<'a, f64>>,
    /// Class labels, N.
    pub labels: Option<&'a [i64]>,
    /// The last layer.
    pub head: Option<&'a Head>,
}

/// Arrays to score: features (N x D) and/or logits (N x K), as the method needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Inputs<'a> {
    pub features: Option<ArrayView2<'a, f64>>,
    pub logits: Option<ArrayView2<'a, f64>>,
}

/// Index of the first non-finite value, as an error naming `what`.
pub fn check_finite(what: &'static str, x: ArrayView2<f64>) -> Result<(), DetectorError> {
    match first_non_finite(x) {
        Some((row, col)) => Err(DetectorError::NonFinite {
            what,
            row,
            col,
            value: x[[row, col]],
        }),
        None => Ok(()),
    }
}

fn check_nonempty_finite(
    what: &'static str,
    one: &'static str,
    x: ArrayView2<f64>,
) -> Result<(), DetectorError> {
    if x.nrows() == 0 || x.ncols() == 0 {
        return Err(DetectorError::Empty { what });
    }
    check_finite(one, x)
}

/// Features and logits checked against each other and against a head.
fn check_pair(
    features: Option<ArrayView2<f64>>,
    logits: Option<ArrayView2<f64>>,
    head: Option<&Head>,
) -> Result<(), DetectorError> {
    if let Some(f) = features {
        check_nonempty_finite("features", "feature", f)?;
        if let Some(h) = head {
            let w = "the head weight W";
            agree(Count::Columns, "features", f.ncols(), w, h.dims())?;
        }
    }
    if let Some(l) = logits {
        check_nonempty_finite("logits", "logit", l)?;
        if let Some(h) = head.filter(|h| h.classes() != l.ncols()) {
            return Err(DetectorError::Classes {
                head: h.classes(),
                logits: l.ncols(),
            });
        }
        if let Some(f) = features {
            agree(Count::Rows, "logits", l.nrows(), "the features", f.nrows())?;
        }
    }
    Ok(())
}

/// A part the method needs: given, or the error naming it.
fn needed<T>(
    part: Option<T>,
    method: &'static str,
    what: &'static str,
) -> Result<T, DetectorError> {
    part.ok_or(DetectorError::Missing { method, what })
}

/// Which count of two arrays must agree.
#[derive(Clone, Copy)]
enum Count {
    Rows,
    Columns,
}

/// `found` (of `what`) must equal `expected` (of `against`); the error names both.
fn agree(
    count: Count,
    what: &'static str,
    found: usize,
    against: &'static str,
    expected: usize,
) -> Result<(), DetectorError> {
    if found == expected {
        return Ok(());
    }
    Err(match count {
        Count::Rows => DetectorError::Rows {
            what,
            found,
            against,
            expected,
        },
        Count::Columns => DetectorError::Dimension {
            what,
            found,
            against,
            expected,
        },
    })
}

impl<'a> FitData<'a> {
    /// Validate every part given: finite, shapes consistent with each other and the head.
    pub fn check(&self) -> Result<(), DetectorError> {
        check_pair(self.features, self.logits, self.head)?;
        if let (Some(y), Some(n)) = (self.labels, self.rows()) {
            agree(Count::Rows, "labels", y.len(), "the training data", n)?;
        }
        Ok(())
    }
    fn rows(&self) -> Option<usize> {
        self.features.or(self.logits).map(|a| a.nrows())
    }
    pub(crate) fn features(
        &self,
        method: &'static str,
    ) -> Result<ArrayView2<'a, f64>, DetectorError> {
        needed(self.features, method, "training features")
    }
    pub(crate) fn labels(&self, method: &'static str) -> Result<&'a [i64], DetectorError> {
        needed(self.labels, method, "training labels")
    }
    pub(crate) fn head(&self, method: &'static str) -> Result<&'a Head, DetectorError> {
        needed(self.head, method, "the last layer (W, b)")
    }
    /// Training logits: given, or computed from features and head.
    pub(crate) fn logits(&self, method: &'static str) -> Result<Array2<f64>, DetectorError> {
        logits_of(method, self.features, self.logits, self.head)
    }
}

impl<'a> Inputs<'a> {
    /// Validate the inputs against the fitted head (if any) and each other.
    pub fn check(&self, head: Option<&Head>) -> Result<(), DetectorError> {
        check_pair(self.features, self.logits, head)
    }
    pub(crate) fn features(
        &self,
        method: &'static str,
    ) -> Result<ArrayView2<'a, f64>, DetectorError> {
        needed(self.features, method, "features")
    }
    pub(crate) fn logits(
        &self,
        method: &'static str,
        head: Option<&Head>,
    ) -> Result<Array2<f64>, DetectorError> {
        logits_of(method, self.features, self.logits, head)
    }
}

fn logits_of(
    method: &'static str,
    features: Option<ArrayView2<f64>>,
    logits: Option<ArrayView2<f64>>,
    head: Option<&Head>,
) -> Result<Array2<f64>, DetectorError> {
    match (logits, features, head) {
        (Some(l), _, _) => Ok(l.to_owned()),
        (None, Some(f), Some(h)) => Ok(h.logits(f)),
        _ => Err(DetectorError::Missing {
            method,
            what: "logits (or features and the last layer)",
        }),
    }
}

/// Check a percentile in percent: finite and in [0, 100]. The limits are accepted because
/// they are well defined (ReAct at 100 clips at the training maximum, DICE at 0 keeps every
/// weight); ASH and SCALE refuse a percentile that keeps nothing when they see D.
pub fn check_percentile(name: &'static str, p: f64) -> Result<(), DetectorError> {
    if p.is_finite() && (0.0..=100.0).contains(&p) {
        Ok(())
    } else {
        Err(DetectorError::Param {
            name,
            value: p,
            range: "a percentile between 0 and 100",
        })
    }
}

/// `name` must be a positive finite number.
pub fn check_positive(name: &'static str, v: f64) -> Result<(), DetectorError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(DetectorError::Param {
            name,
            value: v,
            range: "a positive finite number",
        })
    }
}

/// The p-th percentile (in percent) of `values` with NumPy's default linear interpolation
/// (`np.percentile`, `torch.quantile`): position `p/100 * (n-1)` in sorted order. Reorders
/// `values`; they are finite and non-empty.
pub fn percentile(values: &mut [f64], p: f64) -> f64 {
    let n = values.len();
    let pos = p / 100.0 * (n - 1) as f64;
    let lo = (pos.floor() as usize).min(n - 1);
    let frac = pos - lo as f64;
    let (_, &mut a, rest) = values.select_nth_unstable_by(lo, f64::total_cmp);
    if frac == 0.0 || rest.is_empty() {
        return a;
    }
    let b = rest.iter().copied().fold(f64::INFINITY, f64::min);
    // NumPy's lerp, exact at both ends
    if frac >= 0.5 {
        b - (b - a) * (1.0 - frac)
    } else {
        a + (b - a) * frac
    }
}

/// Softmax of one row, stable.
pub fn softmax_into(row: ArrayView1<f64>, out: &mut Vec<f64>) {
    let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    out.clear();
    out.extend(row.iter().map(|v| (v - m).exp()));
    let s: f64 = out.iter().sum();
    out.iter_mut().for_each(|v| *v /= s);
}

/// `f(softmax(row))` for every row of the logits (the probabilities may be reordered by `f`),
/// rows split over the threads.
pub fn per_softmax_row(logits: ArrayView2<f64>, f: impl Fn(&mut [f64]) -> f64 + Sync) -> Vec<f64> {
    rows_map(logits, |r, p| {
        softmax_into(r, p);
        f(p)
    })
}

/// `f(row, scratch)` for every row, in parallel chunks, in row order.
pub fn rows_map(
    x: ArrayView2<f64>,
    f: impl Fn(ArrayView1<f64>, &mut Vec<f64>) -> f64 + Sync,
) -> Vec<f64> {
    let out: Result<Vec<f64>, std::convert::Infallible> = par_rows(x, |_, part| {
        let mut p = Vec::with_capacity(part.ncols());
        Ok(part.rows().into_iter().map(|r| f(r, &mut p)).collect())
    });
    out.unwrap_or_else(|e| match e {})
}

/// `T * logsumexp(logits / T)` per row: the negative energy ([`crate::scores::Energy`]).
pub fn energy_rows(logits: ArrayView2<f64>, temperature: f64) -> Vec<f64> {
    use crate::scores::{Energy, LogitScore};
    let e = Energy { temperature };
    rows_map(logits, |r, buf| e.score_row(contiguous(r, buf)))
}

/// Energy (T = 1) of the head's logits on (modified) features: the common last step of
/// ReAct, ASH, SCALE and DICE.
pub fn head_energy(head: &Head, features: ArrayView2<f64>) -> Vec<f64> {
    energy_rows(head.logits(features).view(), 1.0)
}

/// Index of the largest value, the first one on ties (as `torch.argmax`).
pub fn argmax(row: ArrayView1<f64>) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}
