"""metrics() against scikit-learn at test time (both conventions, with ties), and the
pytorch-ood 0.4.0 goldens committed in golden/ (made by golden/make_pytorch_ood_golden.py)."""

import numpy as np
import pytest
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

import energy_ood as eo
from conftest import GOLDEN


def _sets(rng, n_in, n_out, ties):
    a, b = rng.normal(1.0, 1.0, n_in), rng.normal(0.0, 1.0, n_out)
    if ties:
        a, b = np.round(a, 1), np.round(b, 1)
    return a, b


def _fpr_code_of_record(a, b, recall_level):
    """fpr_and_fdr_at_recall of the code of record (Hendrycks et al.'s calibration_tools.py)."""
    y_true = np.r_[np.ones_like(a), np.zeros_like(b)]
    y_score = np.r_[a, b]
    desc = np.argsort(y_score, kind="mergesort")[::-1]
    y_score, y_true = y_score[desc], y_true[desc]
    thr_idx = np.r_[np.where(np.diff(y_score))[0], y_true.size - 1]
    tps = np.cumsum(y_true, dtype=np.float64)[thr_idx]
    fps = 1 + thr_idx - tps
    recall = tps / tps[-1]
    last_ind = tps.searchsorted(tps[-1])
    sl = slice(last_ind, None, -1)
    recall, fps = np.r_[recall[sl], 1], np.r_[fps[sl], 0]
    cutoff = np.argmin(np.abs(recall - recall_level))
    return fps[cutoff] / np.sum(np.logical_not(y_true))


def _sk_paper(a, b, tpr):
    y = np.r_[np.ones_like(a), np.zeros_like(b)]
    s = np.r_[a, b]
    return (_fpr_code_of_record(a, b, tpr), average_precision_score(y, s),
            average_precision_score(1 - y, -s))


def _sk_ood_positive(a, b, tpr):
    y = np.r_[np.zeros_like(a), np.ones_like(b)]
    s = -np.r_[a, b]
    fpr, rec, _ = roc_curve(y, s, drop_intermediate=False)
    p_out, r_out, _ = precision_recall_curve(y, s)
    p_in, r_in, _ = precision_recall_curve(1 - y, -s)
    return fpr[np.argmax(rec >= tpr)], auc(r_in, p_in), auc(r_out, p_out)


def _sk_det_error(a, b):
    y = np.r_[np.ones_like(a), np.zeros_like(b)]
    fpr, tpr, _ = roc_curve(y, np.r_[a, b], drop_intermediate=False)
    return np.min(0.5 * (1 - tpr) + 0.5 * fpr)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("n_in,n_out", [(1000, 700), (50, 3000)])
def test_paper_convention_equals_sklearn(rng, ties, n_in, n_out):
    a, b = _sets(rng, n_in, n_out, ties)
    m = eo.metrics(a, b)
    fpr, ap_in, ap_out = _sk_paper(a, b, 0.95)
    y = np.r_[np.ones_like(a), np.zeros_like(b)]
    assert m["auroc"] == pytest.approx(roc_auc_score(y, np.r_[a, b]), abs=1e-12)
    assert m["fpr95"] == pytest.approx(fpr, abs=1e-12)
    assert m["aupr_in"] == pytest.approx(ap_in, abs=1e-10)
    assert m["aupr_out"] == pytest.approx(ap_out, abs=1e-10)
    assert m["detection_error"] == pytest.approx(_sk_det_error(a, b), abs=1e-12)
    assert all(0.0 <= v <= 1.0 for v in m.values())


@pytest.mark.parametrize("ties", [False, True])
def test_ood_positive_convention_equals_sklearn(rng, ties):
    a, b = _sets(rng, 800, 900, ties)
    m = eo.metrics(a, b, tpr=0.9, convention="ood-positive")
    fpr, aupr_in, aupr_out = _sk_ood_positive(a, b, 0.9)
    assert m["fpr95"] == pytest.approx(fpr, abs=1e-12)
    assert m["aupr_in"] == pytest.approx(aupr_in, abs=1e-10)
    assert m["aupr_out"] == pytest.approx(aupr_out, abs=1e-10)


def test_pytorch_ood_goldens():
    # pytorch-ood 0.4.0's OODMetrics: OOD positive, FPR at the first threshold reaching 95% TPR,
    # trapezoidal AUPR, i.e. convention="ood-positive"
    g = np.load(GOLDEN / "pytorch_ood.npz")
    m = eo.metrics(g["id_scores"], g["ood_scores"], convention="ood-positive")
    assert m["auroc"] == pytest.approx(float(g["auroc"]), abs=1e-9)
    assert m["aupr_in"] == pytest.approx(float(g["aupr_in"]), abs=1e-9)
    assert m["aupr_out"] == pytest.approx(float(g["aupr_out"]), abs=1e-9)
    assert m["fpr95"] == pytest.approx(float(g["fpr95tpr"]), abs=1e-9)


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="OOD score at index 2 is NaN"):
        eo.metrics([1.0, 2.0], [0.0, 1.0, np.nan])
    with pytest.raises(ValueError, match="in-distribution score at index 0 is -inf"):
        eo.metrics([-np.inf], [0.0])
    with pytest.raises(ValueError, match="in-distribution scores are empty"):
        eo.metrics([], [1.0])
    with pytest.raises(ValueError, match="TPR must be in"):
        eo.metrics([1.0], [0.0], tpr=1.0)
    with pytest.raises(ValueError, match="unknown convention"):
        eo.metrics([1.0], [0.0], convention="ood")
    with pytest.raises(ValueError, match="must be a 1-D array"):
        eo.metrics(np.ones((2, 2)), [0.0])
    with pytest.raises(TypeError, match="expected real numbers"):
        eo.metrics(np.array([True, False]), [0.0])


def test_layouts_and_dtypes(rng):
    a, b = _sets(rng, 300, 300, False)
    want = eo.metrics(a, b)
    assert eo.metrics(a.astype(np.float32), b.astype(np.float32)) == eo.metrics(
        a.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64))
    two = np.stack([a, b], axis=1)  # columns are strided views
    assert eo.metrics(two[:, 0], two[:, 1]) == want
    assert eo.metrics(a[::-1], b[::-1]) == want


def test_threads_share_the_released_gil(rng):
    # the Rust work runs without the GIL: threads give the same values as a serial loop
    from concurrent.futures import ThreadPoolExecutor

    pairs = [_sets(rng, 20_000, 20_000, False) for _ in range(4)]
    serial = [eo.metrics(a, b) for a, b in pairs]
    with ThreadPoolExecutor(4) as ex:
        assert list(ex.map(lambda p: eo.metrics(*p), pairs)) == serial
