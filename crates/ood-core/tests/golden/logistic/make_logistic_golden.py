#!/usr/bin/env python3
"""Generate the golden values that crates/ood-core/tests/logistic_golden.rs checks.

Run from the repository root with a Python that has scikit-learn (here /work/venv-ref):

    /work/venv-ref/bin/python crates/ood-core/tests/golden/logistic/make_logistic_golden.py

Reference: sklearn.linear_model.LogisticRegression(C=c) (its default L2 penalty), intercept fitted and not
penalised, solved to tol 1e-12 with "newton-cholesky" (the unique optimum of a strictly convex
objective, so any exact solver agrees). The cases look like the Mahalanobis layer ensemble's
inputs: overlapping classes, layer scores of very different scales, imbalance (the ensemble
fits 1 ID set against several OOD sets), and nearly separable data.
"""
import json
import os

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression

HERE = os.path.dirname(os.path.abspath(__file__))


def case(name, x, y, c):
    m = LogisticRegression(C=c, solver="newton-cholesky", tol=1e-12, max_iter=1000)
    m.fit(x, y)
    return {
        "name": name,
        "c": c,
        "x": x.tolist(),
        "y": [bool(v) for v in y],
        "coef": m.coef_[0].tolist(),
        "intercept": float(m.intercept_[0]),
        "decision": m.decision_function(x).tolist(),
    }


def main():
    rng = np.random.default_rng(12)
    cases = []
    # overlapping 2-D Gaussians
    x = np.vstack([rng.normal(0.0, 1.0, (60, 2)), rng.normal(1.0, 1.0, (60, 2))])
    y = np.r_[np.zeros(60), np.ones(60)]
    cases.append(case("overlapping", x, y, 1.0))
    # four "layer scores" of scales 1 to 1e3, 150 ID (positive) vs 30 OOD, weak penalty
    scales = np.array([1.0, 10.0, 100.0, 1000.0])
    x_id = -np.abs(rng.normal(1.0, 0.5, (150, 4))) * scales
    x_ood = -np.abs(rng.normal(1.8, 0.7, (30, 4))) * scales
    x = np.vstack([x_id, x_ood])
    y = np.r_[np.ones(150), np.zeros(30)]
    cases.append(case("layer_scales_imbalanced", x, y, 0.1))
    # nearly separable, strong C
    x = np.vstack([rng.normal(-2.0, 0.6, (25, 3)), rng.normal(2.0, 0.6, (25, 3))])
    y = np.r_[np.zeros(25), np.ones(25)]
    y[3] = 1
    cases.append(case("nearly_separable", x, y, 10.0))
    out = {"sklearn": sklearn.__version__, "numpy": np.__version__, "cases": cases}
    with open(os.path.join(HERE, "logistic.json"), "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
