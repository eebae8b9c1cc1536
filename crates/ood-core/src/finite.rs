//! Non-finite values (NaN, +-inf) in scores: metrics refuse them by default, naming the first
//! bad index; callers that opt in may drop them instead and report how many were dropped.

/// Index of the first NaN or infinite value, if any.
pub fn first_nonfinite(values: &[f64]) -> Option<usize> {
    values.iter().position(|v| !v.is_finite())
}

/// Keep only finite values; returns them and how many were dropped.
pub fn drop_nonfinite(values: Vec<f64>) -> (Vec<f64>, usize) {
    let before = values.len();
    let kept: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
    let dropped = before - kept.len();
    (kept, dropped)
}

/// Describe a non-finite value for error messages ("NaN", "inf", "-inf").
pub fn describe(v: f64) -> &'static str {
    if v.is_nan() {
        "NaN"
    } else if v > 0.0 {
        "inf"
    } else {
        "-inf"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_drops() {
        let v = vec![1.0, f64::NAN, 2.0, f64::NEG_INFINITY];
        assert_eq!(first_nonfinite(&v), Some(1));
        assert_eq!(describe(v[3]), "-inf");
        assert_eq!(drop_nonfinite(v), (vec![1.0, 2.0], 2));
        assert_eq!(first_nonfinite(&[0.0, -1.0]), None);
    }
}
