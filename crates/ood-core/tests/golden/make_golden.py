#!/usr/bin/env python3
"""Generate the golden values that crates/ood-core/tests/golden.rs checks.

Run from the repository root with the project venv (numpy 2.2.6, scikit-learn 1.6.1):

    .venv/bin/python crates/ood-core/tests/golden/make_golden.py

References:
* scikit-learn's roc_auc_score, average_precision_score, roc_curve, precision_recall_curve, auc;
* the "paper" FPR: the logic of get_measures / fpr_and_fdr_at_recall in the code of record
  (wetliu/energy_ood, utils/display_results.py), re-expressed below: ID is positive, every
  distinct score is a threshold, the curve is cut at the first threshold with full ID recall,
  and the FPR is read at the threshold whose ID recall is closest to the target (on a tie the
  lower threshold, because the original takes argmin over the reversed curve);
* sklearn.covariance.EmpiricalCovariance for the Mahalanobis tied covariance (as Lee et al. 2018).

Score sets have heavy ties (integer scores) and imbalance (37 vs 1000) on purpose.
Everything is written as JSON with repr()-exact floats, plus a few .npy files written by
NumPy itself so the Rust reader is tested against the reference writer.
"""
import json
import os

import numpy as np
import sklearn
from sklearn.covariance import EmpiricalCovariance
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

HERE = os.path.dirname(os.path.abspath(__file__))


def paper_fpr(id_scores, ood_scores, level):
    """FPR on OOD at the threshold whose ID recall is closest to `level` (code-of-record logic)."""
    scores = np.concatenate([id_scores, ood_scores])
    is_id = np.concatenate([np.ones(len(id_scores), bool), np.zeros(len(ood_scores), bool)])
    order = np.argsort(-scores, kind="stable")
    scores, is_id = scores[order], is_id[order]
    # last position of each run of equal scores = one threshold per distinct value
    ends = np.flatnonzero(np.diff(scores) != 0)
    ends = np.append(ends, len(scores) - 1)
    tp = np.cumsum(is_id)[ends]
    fp = (ends + 1) - tp
    first_full = int(np.searchsorted(tp, tp[-1]))
    recall = tp[: first_full + 1] / tp[-1]
    dist = np.abs(recall - level)
    # lowest threshold among the equally close ones
    k = len(dist) - 1 - int(np.argmin(dist[::-1]))
    return fp[k] / len(ood_scores)


def measures(id_scores, ood_scores, level):
    y_id = np.r_[np.ones(len(id_scores)), np.zeros(len(ood_scores))]
    s = np.r_[id_scores, ood_scores]
    y_ood = 1 - y_id
    auroc = roc_auc_score(y_id, s)
    fpr, tpr, _ = roc_curve(y_id, s, drop_intermediate=False)
    det = float(np.min(0.5 * (1 - tpr) + 0.5 * fpr))
    # OOD positive with score -s: first threshold whose OOD recall reaches the level
    fpr_o, tpr_o, _ = roc_curve(y_ood, -s, drop_intermediate=False)
    fpr_oodpos = float(fpr_o[np.argmax(tpr_o >= level)])
    p_in, r_in, _ = precision_recall_curve(y_id, s)
    p_out, r_out, _ = precision_recall_curve(y_ood, -s)
    return {
        "paper": {
            "fpr": float(paper_fpr(id_scores, ood_scores, level)),
            "auroc": float(auroc),
            "aupr_in": float(average_precision_score(y_id, s)),
            "aupr_out": float(average_precision_score(y_ood, -s)),
            "detection_error": det,
        },
        "ood_positive": {
            "fpr": fpr_oodpos,
            "auroc": float(auroc),
            "aupr_in": float(auc(r_in, p_in)),
            "aupr_out": float(auc(r_out, p_out)),
            "detection_error": det,
        },
    }


def metric_cases(rng):
    cases = []

    def add(name, id_s, ood_s, level=0.95):
        id_s = np.asarray(id_s, dtype=np.float64)
        ood_s = np.asarray(ood_s, dtype=np.float64)
        c = {"name": name, "tpr": level, "id": id_s.tolist(), "ood": ood_s.tolist()}
        c.update(measures(id_s, ood_s, level))
        cases.append(c)

    add("hand", [0.9, 0.8, 0.4], [0.7, 0.4, 0.1])
    # heavy ties: integer scores, ID shifted up
    add("ties_heavy", rng.integers(2, 12, 300), rng.integers(0, 9, 80))
    add("ties_heavy_tpr80", rng.integers(2, 12, 300), rng.integers(0, 9, 80), 0.8)
    # imbalance: 1000 ID vs 37 OOD, scores rounded to one decimal (ties again)
    add("imbalanced_id", np.round(rng.normal(1.0, 1.0, 1000), 1), np.round(rng.normal(0.0, 1.0, 37), 1))
    add("imbalanced_ood", rng.normal(1.5, 1.0, 50), rng.normal(0.0, 1.5, 2000))
    # worse than chance: OOD scores higher
    add("inverted", rng.normal(0.0, 1.0, 200), rng.normal(1.0, 1.0, 150))
    # energy-like magnitudes with a few exact duplicates across the sets
    base = rng.normal(8.0, 2.0, 400)
    add("energy_like", base[:250], np.r_[base[200:260], rng.normal(5.0, 2.0, 140)])
    return cases


def score_cases(rng):
    logits = rng.normal(0.0, 3.0, (12, 7))
    logits[0] = 0.0  # all-equal row
    logits[1, 3] = 40.0  # one dominant logit
    out = {"logits": logits.tolist()}
    for t in (1.0, 2.0):
        z = logits / t
        m = z.max(axis=1, keepdims=True)
        out[f"energy_t{t:g}"] = (t * (m[:, 0] + np.log(np.exp(z - m).sum(axis=1)))).tolist()
    for t in (1.0, 1000.0):
        z = logits / t
        e = np.exp(z - z.max(axis=1, keepdims=True))
        out[f"msp_t{t:g}"] = (e / e.sum(axis=1, keepdims=True)).max(axis=1).tolist()
    out["maxlogit"] = logits.max(axis=1).tolist()
    return out


def mahalanobis_case(rng):
    k, d = 3, 5
    centers = rng.normal(0.0, 4.0, (k, d))
    mix = rng.normal(0.0, 1.0, (d, d))
    labels = rng.integers(0, k, 90)
    train = centers[labels] + rng.normal(0.0, 1.0, (90, d)) @ mix
    test = rng.normal(0.0, 5.0, (20, d))
    out = {"train": train.tolist(), "labels": labels.tolist(), "test": test.tolist()}
    classes = np.unique(labels)
    means = np.stack([train[labels == c].mean(axis=0) for c in classes])
    centered = train - means[np.searchsorted(classes, labels)]
    cov = EmpiricalCovariance().fit(centered).covariance_
    for alpha in (0.0, 0.3):
        c = (1 - alpha) * cov + alpha * np.trace(cov) / d * np.eye(d)
        prec = np.linalg.inv(c)
        diffs = test[:, None, :] - means[None, :, :]
        d2 = np.einsum("nkd,de,nke->nk", diffs, prec, diffs)
        out[f"scores_shrink{alpha:g}"] = (-d2).max(axis=1).tolist()
    out["means"] = means.tolist()
    out["covariance"] = cov.tolist()
    return out


def npy_fixtures(rng):
    d = os.path.join(HERE, "npy")
    os.makedirs(d, exist_ok=True)
    np.save(os.path.join(d, "scores_f32.npy"), np.array([0.5, -1.25, 3.0], dtype=np.float32))
    np.save(os.path.join(d, "scores_f64.npy"), np.array([0.1, 2.0 / 3.0, -7.5], dtype=np.float64))
    np.save(os.path.join(d, "logits_f32.npy"), np.arange(6, dtype=np.float32).reshape(2, 3))
    np.save(os.path.join(d, "labels_i32.npy"), np.array([0, 2, 1], dtype=np.int32))
    np.save(os.path.join(d, "labels_u8.npy"), np.array([4, 0], dtype=np.uint8))
    np.save(os.path.join(d, "fortran.npy"), np.asfortranarray(np.arange(6.0).reshape(2, 3)))
    np.save(os.path.join(d, "f16.npy"), np.array([1.0], dtype=np.float16))
    with open(os.path.join(d, "scores_f64.npy"), "rb") as f:
        whole = f.read()
    with open(os.path.join(d, "truncated.npy"), "wb") as f:
        f.write(whole[:-5])


def main():
    rng = np.random.default_rng(20201)
    golden = {
        "generator": "make_golden.py",
        "numpy": np.__version__,
        "scikit_learn": sklearn.__version__,
        "metrics": metric_cases(rng),
        "scores": score_cases(rng),
        "mahalanobis": mahalanobis_case(rng),
    }
    with open(os.path.join(HERE, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")
    npy_fixtures(rng)
    print("wrote", os.path.join(HERE, "golden.json"))


if __name__ == "__main__":
    main()
