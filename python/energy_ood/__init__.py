"""energy_ood: energy-based out-of-distribution detection (Liu et al., NeurIPS 2020) on NumPy
arrays, from the framework-free Rust core of energy-ood.

Every score means "higher = more in-distribution". Metric values are fractions in [0, 1], like
scikit-learn (the ``eood`` CLI prints the paper's percentages).

>>> import numpy as np, energy_ood as eo
>>> s_in, s_out = eo.energy(logits_in), eo.energy(logits_out)      # doctest: +SKIP
>>> eo.metrics(s_in, s_out)["fpr95"]                               # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from . import _core, detectors
from ._arrays import as_f64, check_finite
from ._core import __version__
from .report import Report, evaluate

__all__ = [
    "energy",
    "msp",
    "max_logit",
    "metrics",
    "evaluate",
    "Report",
    "Detector",
    "detectors",
    "__version__",
]


def energy(logits: Any, temperature: float = 1.0) -> np.ndarray:
    """Negative free energy, ``-E(x) = T * logsumexp(f(x) / T)`` (Liu et al. 2020, eq. 5, 7).

    ``logits``: N x K. Returns N float64 scores, higher = more in-distribution.
    Computed as ``m + T * log(sum_k exp((f_k - m) / T))`` with ``m = max_k f_k`` (no overflow).
    """
    return _core.score_logits(as_f64(logits, "logits", 2), "energy", float(temperature))


def msp(logits: Any, temperature: float = 1.0) -> np.ndarray:
    """Maximum softmax probability, ``max_k softmax(f(x) / T)_k`` (Hendrycks & Gimpel 2017)."""
    return _core.score_logits(as_f64(logits, "logits", 2), "msp", float(temperature))


def max_logit(logits: Any) -> np.ndarray:
    """Maximum logit, ``max_k f_k(x)`` (Hendrycks et al. 2022)."""
    return _core.score_logits(as_f64(logits, "logits", 2), "maxlogit", 1.0)


def metrics(
    id_scores: Any, ood_scores: Any, tpr: float = 0.95, convention: str = "paper"
) -> Dict[str, float]:
    """OOD detection metrics as fractions in [0, 1], from one sort of each set.

    Keys: ``fpr95`` (FPR at the ``tpr`` level; the key keeps its name at other levels),
    ``auroc``, ``aupr_in``, ``aupr_out``, ``detection_error``
    (``min_t 0.5 * (1 - TPR(t)) + 0.5 * FPR(t)``).

    ``convention="paper"`` (the code of record): ID positive, FPR at the threshold whose ID
    recall is closest to ``tpr``, AUPR = average precision
    (``sklearn.metrics.average_precision_score``). ``convention="ood-positive"``: OOD positive
    (score ``-s``), FPR of ID at the first threshold reaching ``tpr`` OOD recall
    (``roc_curve(drop_intermediate=False)``), AUPR by the trapezoid rule under
    ``precision_recall_curve``. AUROC ties count 1/2, exactly like ``roc_auc_score``.
    """
    a = as_f64(id_scores, "id_scores", 1)
    b = as_f64(ood_scores, "ood_scores", 1)
    v = _core.metrics(a, b, float(tpr), convention)
    return dict(zip(("fpr95", "auroc", "aupr_in", "aupr_out", "detection_error"), v))


class Detector:
    """The calibrated detector ``G(x) = 1 iff score(x) > tau`` (Liu et al. 2020, eq. 6).

    ``tau`` is chosen on in-distribution validation scores so that a fraction ``tpr`` of them
    is accepted. ``save``/``load`` use the same JSON file as ``eood calibrate`` / ``eood
    detect``, interchangeable both ways. Picklable (as its JSON text).
    """

    __slots__ = ("_inner",)

    def __init__(self, inner: "_core.Detector") -> None:
        self._inner = inner

    @classmethod
    def calibrate(
        cls,
        val_scores: Any,
        tpr: float = 0.95,
        method: str = "energy",
        temperature: "float | None" = None,
    ) -> "Detector":
        """Choose tau: the midpoint between the largest rejected and the smallest accepted of
        the top ``ceil(tpr * n)`` scores. ``temperature=None`` records 1.0 for energy and msp
        and none for other methods, as ``eood calibrate`` does."""
        s = as_f64(val_scores, "val_scores", 1)
        t = None if temperature is None else float(temperature)
        return cls(_core.Detector.calibrate(s, float(tpr), str(method), t))

    @property
    def tau(self) -> float:
        return self._inner.tau

    @property
    def target_tpr(self) -> float:
        return self._inner.target_tpr

    @property
    def accepted_fraction(self) -> float:
        return self._inner.accepted_fraction

    @property
    def method(self) -> str:
        return self._inner.method

    @property
    def temperature(self) -> "float | None":
        return self._inner.temperature

    @property
    def score_stats(self) -> Dict[str, float]:
        return self._inner.score_stats

    def accept(self, scores: Any, method: "str | None" = None) -> np.ndarray:
        """Boolean array, True = in-distribution (``score > tau``). NaN/inf: ValueError.
        Scores that cannot be of this detector's method are refused with ValueError, as
        ``eood detect`` refuses them (the core's ``check_scores``): ``method`` declared as
        another method than the detector's, scores outside the method's range (MSP outside
        [0, 1]), or, with ``method`` not given, scores all in [0, 1] (MSP-like) for a detector
        calibrated entirely outside [0, 1]."""
        s = as_f64(scores, "scores", 1)
        check_finite(s, "score")
        return self._inner.accept(s, None if method is None else str(method))

    def save(self, path: "str | Any") -> None:
        """Write the JSON file atomically (never over a directory or a device node)."""
        self._inner.save(str(path))

    @classmethod
    def load(cls, path: "str | Any") -> "Detector":
        return cls(_core.Detector.load(str(path)))

    def to_json(self) -> str:
        return self._inner.to_json()

    @classmethod
    def from_json(cls, text: str) -> "Detector":
        return cls(_core.Detector.from_json(text))

    def __reduce__(self):
        return (Detector.from_json, (self.to_json(),))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Detector) and self._inner == other._inner

    def __repr__(self) -> str:
        return repr(self._inner)
