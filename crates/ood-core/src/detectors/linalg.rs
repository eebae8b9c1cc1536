//! Dense symmetric linear algebra that ViM needs, in f64 without a LAPACK dependency: the
//! eigen-decomposition (cyclic Jacobi rotations, accurate to rounding for the D <= ~1000 of
//! penultimate layers) and the pseudo-inverse applied to a vector.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

/// Eigenvalues (descending) and eigenvectors (columns, same order) of a symmetric matrix.
pub fn symmetric_eigen(a: ArrayView2<f64>) -> (Vec<f64>, Array2<f64>) {
    let n = a.nrows();
    let mut m = a.to_owned();
    let mut v = Array2::<f64>::eye(n);
    let scale: f64 = m
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[[i, j]] * m[[i, j]])
            .sum::<f64>()
            .sqrt();
        if off <= 1e-15 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[[p, q]];
                if apq.abs() <= 1e-300 {
                    continue;
                }
                // rotation angle that zeroes m[p, q] (Golub & Van Loan, alg. 8.4.1)
                let theta = (m[[q, q]] - m[[p, p]]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (mkp, mkq) = (m[[k, p]], m[[k, q]]);
                    m[[k, p]] = c * mkp - s * mkq;
                    m[[k, q]] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let (mpk, mqk) = (m[[p, k]], m[[q, k]]);
                    m[[p, k]] = c * mpk - s * mqk;
                    m[[q, k]] = s * mpk + c * mqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[[k, p]], v[[k, q]]);
                    v[[k, p]] = c * vkp - s * vkq;
                    v[[k, q]] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| m[[j, j]].total_cmp(&m[[i, i]]));
    let values = order.iter().map(|&i| m[[i, i]]).collect();
    let mut vectors = Array2::<f64>::zeros((n, n));
    for (c, &i) in order.iter().enumerate() {
        vectors.column_mut(c).assign(&v.column(i));
    }
    (values, vectors)
}

/// `pinv(W) b` for W (K x D): `W^T (W W^T)^+ b`, with eigenvalues of `W W^T` below
/// `1e-10 * max` treated as zero (a rank-deficient head).
pub fn pinv_apply(w: ArrayView2<f64>, b: ArrayView1<f64>) -> Array1<f64> {
    let gram = w.dot(&w.t());
    let (vals, vecs) = symmetric_eigen(gram.view());
    let top = vals.first().copied().unwrap_or(0.0);
    let coef = vecs.t().dot(&b);
    let scaled: Array1<f64> = coef
        .iter()
        .zip(&vals)
        .map(|(c, &l)| if l > 1e-10 * top { c / l } else { 0.0 })
        .collect();
    w.t().dot(&vecs.dot(&scaled))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn eigen_of_known_matrix() {
        // eigenvalues of [[2,1],[1,2]] are 3 and 1, eigenvectors (1,1)/sqrt2 and (1,-1)/sqrt2
        let (vals, vecs) = symmetric_eigen(array![[2.0, 1.0], [1.0, 2.0]].view());
        assert!((vals[0] - 3.0).abs() < 1e-14 && (vals[1] - 1.0).abs() < 1e-14);
        let h = std::f64::consts::FRAC_1_SQRT_2;
        assert!((vecs[[0, 0]].abs() - h).abs() < 1e-14);
        assert!((vecs[[0, 0]] - vecs[[1, 0]]).abs() < 1e-14);
    }

    #[test]
    fn pinv_solves_wide_system() {
        // W x = b has the minimum-norm solution pinv(W) b
        let w = array![[1.0, 0.0, 1.0], [0.0, 2.0, 0.0]];
        let b = array![2.0, 4.0];
        let x = pinv_apply(w.view(), b.view());
        assert!((&w.dot(&x) - &b).iter().all(|e| e.abs() < 1e-12));
        assert!(
            (x[0] - 1.0).abs() < 1e-12 && (x[1] - 2.0).abs() < 1e-12 && (x[2] - 1.0).abs() < 1e-12
        );
    }
}
