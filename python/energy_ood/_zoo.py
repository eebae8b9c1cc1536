"""The detector zoo of the core (``ood_core::detectors``), one class per method.

Every class follows the package's grammar: the constructor takes the paper's keywords (checked
at once by the core, ``ValueError`` when out of range), ``fit(features=None, logits=None,
labels=None, weight=None, bias=None)`` returns self (training data only), ``score(features=None,
logits=None)`` returns float64 scores, higher = more in-distribution. ``weight`` (K x D) and
``bias`` (K) are the classifier's last layer, ``logits = features @ weight.T + bias``.

Files: ``save``/``load`` use the core's own file (``Fitted::save`` / ``Fitted::load``: the
``eood-detector`` JSON, or safetensors for KNN's training bank), so a file written here loads in
Rust and back; ``BaseDetector.load`` also recognises it. Pickles hold the same file's bytes,
made and parsed in memory by the core (``Fitted::to_bytes`` / ``Fitted::from_bytes``).
Percentiles are in percent (pytorch-ood takes fractions). docs/detectors.md says where the core
follows the authors rather than pytorch-ood 0.4.0.
"""

from __future__ import annotations

import json
import operator
import os
from typing import Any, ClassVar, Dict, Optional, Type

import numpy as np

from . import _core
from ._arrays import as_f64, as_labels
from .detectors import _REGISTRY, BaseDetector, FittedDetector

_ZOO: Dict[str, Type["ZooDetector"]] = {}  # core method key -> class


def _opt(x: Any, name: str, ndim: int) -> Optional[np.ndarray]:
    return None if x is None else as_f64(x, name, ndim)


def _count(name: str, v: Any) -> int:
    """An integer hyper-parameter: ints only (a float 50.0 is refused, not truncated)."""
    try:
        return operator.index(v)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {v!r}") from None


def _rows(*arrays: Optional[np.ndarray]) -> Optional[int]:
    for a in arrays:
        if a is not None:
            return a.shape[0]
    return None


class ZooDetector(FittedDetector):
    """A method of the core's zoo. Subclasses set ``method`` (the core key; ASH, three keys in
    ``_keys``) and ``_core_params`` (the core's ``Params`` as a dict); constructor keywords are named as the
    core's fields, so a loaded file's parameters rebuild the class directly."""

    _keys: ClassVar[tuple] = ()

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        for key in cls._keys or (cls.method,):
            if key:
                _ZOO[key] = cls

    def _core_params(self) -> Dict[str, Any]:
        raise NotImplementedError

    def _check(self) -> None:
        """Validate the hyper-parameters in the core (the one place their ranges are checked);
        NaN/inf cannot cross as JSON, so they are refused here."""
        params = self._core_params()
        for name, v in params.items():
            if isinstance(v, float) and not np.isfinite(v):
                raise ValueError(f"{type(self).__name__} {name} must be a finite number, got {v}")
        _core.validate_params(json.dumps(params))

    def get_params(self) -> Dict[str, Any]:
        return {k: v for k, v in self._core_params().items() if k != "method"}

    def fit(self, features: Any = None, logits: Any = None, labels: Any = None,
            weight: Any = None, bias: Any = None) -> "ZooDetector":
        """Fit on training data only; each method says which part it misses."""
        self._model = _core.ZooModel.fit(
            json.dumps(self._core_params()),
            features=_opt(features, "features", 2),
            logits=_opt(logits, "logits", 2),
            labels=None if labels is None else as_labels(labels),
            weight=_opt(weight, "weight", 2),
            bias=_opt(bias, "bias", 1),
        )
        return self

    def score(self, features: Any = None, logits: Any = None) -> np.ndarray:
        """One score per row (higher = in-distribution); zero rows give an empty array."""
        model = self._require()
        f, lg = _opt(features, "features", 2), _opt(logits, "logits", 2)
        if _rows(f, lg) == 0:
            return np.empty(0, dtype=np.float64)
        return model.score(features=f, logits=lg)

    # --- files and pickling: the core's own file -------------------------------------------
    def save(self, path: "str | os.PathLike[str]") -> None:
        """Write the core's file (``eood-detector`` JSON; safetensors for KNN), atomically."""
        self._require().save(os.fspath(path))

    def to_bytes(self) -> bytes:
        """The bytes of the file ``save`` writes (made in memory by the core)."""
        return self._require().to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> "ZooDetector":
        """Inverse of :meth:`to_bytes` (the core re-checks every array)."""
        return _from_model(_core.ZooModel.from_bytes(bytes(data)), cls)

    def to_json(self) -> str:
        raise TypeError(f"{type(self).__name__} is stored in the core's file: use save/to_bytes")

    def __getstate__(self) -> Dict[str, Any]:
        return {"params": self.get_params(),
                "file": None if self._model is None else self.to_bytes()}

    def __setstate__(self, d: Dict[str, Any]) -> None:
        self.__init__(**d["params"])  # type: ignore[misc]
        if d["file"] is not None:
            self._model = _core.ZooModel.from_bytes(bytes(d["file"]))


def _from_model(model: Any, want: type) -> ZooDetector:
    sub = _ZOO.get(model.method)
    if sub is None:
        raise ValueError(f"detector method {model.method!r} has no Python class")
    if want not in (BaseDetector, ZooDetector) and not issubclass(sub, want):
        raise ValueError(f"file holds a {sub.__name__} detector, not {want.__name__}")
    params = json.loads(model.params_json)
    params.pop("method")
    det = sub(**params)
    det._model = model
    return det


def load_bytes(data: bytes, want: type) -> BaseDetector:
    """A detector from a file's bytes: the core's zoo file (safetensors, or JSON with
    ``"format": "eood-detector"``), the ``eood-mahalanobis`` JSON of ``eood mahalanobis fit`` (earlier versions),
    or the package's own ``energy-ood-python-detector`` JSON (the logit scores)."""
    if data[:1] != b"{":
        return _from_model(_core.ZooModel.from_bytes(data), want)
    text = data.decode("utf-8")
    d = json.loads(text)
    fmt = d.get("format") if isinstance(d, dict) else None
    if fmt == "eood-detector":
        return _from_model(_core.ZooModel.from_bytes(data), want)
    if fmt == "eood-mahalanobis":
        return _from_model(_core.ZooModel.from_mahalanobis_json(text), want)
    return want.from_json(text)


# --- the energy family ---------------------------------------------------------------------
class ReAct(ZooDetector):
    """ReAct (Sun, Guo & Li, NeurIPS 2021): clip the penultimate features at ``c``, the
    ``percentile``-th percentile of all training activations, ``h' = min(h, c)``, and score the
    energy of the head on them, ``S(x) = logsumexp(W h' + b)``. Fit on training ``features``
    with ``weight``/``bias``; score ``features``."""

    method = "react"

    def __init__(self, percentile: float = 90.0) -> None:
        super().__init__()
        self.percentile = float(percentile)
        self._check()

    def _core_params(self) -> Dict[str, Any]:
        return {"method": "react", "percentile": self.percentile}


class ASH(ZooDetector):
    """ASH, activation shaping (Djurisic et al., ICLR 2023). Per sample keep the
    ``k = D - round(D p / 100)`` largest activations and zero the rest; ``variant="p"`` keeps
    them as they are, ``"b"`` sets each to ``s1 / k`` (``s1 = sum(h)`` before pruning), ``"s"``
    multiplies them by ``exp(s1 / s2)`` (``s2`` = sum after pruning); score
    ``logsumexp(W h' + b)``. ``percentile=None`` is the paper's default (P 90, B 65, S 90). Acts
    on pooled penultimate features (docs/detectors.md)."""

    _keys = ("ash_p", "ash_b", "ash_s")
    _DEFAULT = {"p": 90.0, "b": 65.0, "s": 90.0}

    def __init__(self, variant: str = "s", percentile: Optional[float] = None) -> None:
        super().__init__()
        if variant not in self._DEFAULT:
            raise ValueError(f"ASH variant must be 'p', 'b' or 's', got {variant!r}")
        self.variant = variant
        self.method = f"ash_{variant}"  # type: ignore[misc]  # the report key
        self.percentile = self._DEFAULT[variant] if percentile is None else float(percentile)
        self._check()

    def _core_params(self) -> Dict[str, Any]:
        return {"method": "ash", "variant": self.variant, "percentile": self.percentile}



class SCALE(ZooDetector):
    """SCALE (Xu et al., ICLR 2024): ``h' = h exp(s1 / s2)`` with ``s1 = sum(h)`` and ``s2``
    the sum of the ``k = D - round(D p / 100)`` largest activations (ASH-S without pruning);
    score ``logsumexp(W h' + b)``. Paper default ``percentile=85``."""

    method = "scale"

    def __init__(self, percentile: float = 85.0) -> None:
        super().__init__()
        self.percentile = float(percentile)
        self._check()

    def _core_params(self) -> Dict[str, Any]:
        return {"method": "scale", "percentile": self.percentile}


class DICE(ZooDetector):
    """DICE (Sun & Li, ECCV 2022): with the mean training activation ``m``, contributions
    ``V_kj = W_kj m_j``; keep the weights whose contribution exceeds the ``percentile``-th
    percentile of V (mask M) and score ``logsumexp((W * M) h + b)``. Paper default 90."""

    method = "dice"

    def __init__(self, percentile: float = 90.0) -> None:
        super().__init__()
        self.percentile = float(percentile)
        self._check()

    def _core_params(self) -> Dict[str, Any]:
        return {"method": "dice", "percentile": self.percentile}


class GradNorm(ZooDetector):
    """GradNorm (Huang, Geng & Li, NeurIPS 2021), closed form for the last layer: the L1 norm
    of the weight gradient of ``L = -sum_k ln softmax(f / T)_k``,
    ``S(x) = (1/T) sum_k |K p_k - 1| * sum_j |h_j|``. Needs features and the head."""

    method = "gradnorm"

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        self.temperature = float(temperature)
        self._check()

    def _core_params(self) -> Dict[str, Any]:
        return {"method": "gradnorm", "temperature": self.temperature}


# --- logit and softmax ---------------------------------------------------------------------
class GEN(ZooDetector):
    """GEN, generalized entropy (Liu, Lochman & Zach, CVPR 2023): with the softmax sorted
    decreasingly, ``G = sum_{j <= M} p_(j)^gamma (1 - p_(j))^gamma``, score ``-G``. Defaults
    ``gamma=0.1``, ``m=100`` (capped at K). Scores logits, or features through the head."""

    method = "gen"

    def __init__(self, gamma: float = 0.1, m: int = 100) -> None:
        super().__init__()
        self.gamma = float(gamma)
        self.m = _count("GEN m", m)
        self._check()

    def _core_params(self) -> Dict[str, Any]:
        return {"method": "gen", "gamma": self.gamma, "m": self.m}


class Entropy(ZooDetector):
    """Softmax entropy: ``H(p) = -sum_k p_k ln p_k`` (``0 ln 0 = 0``), score ``-H``."""

    method = "entropy"

    def __init__(self) -> None:
        super().__init__()

    def _core_params(self) -> Dict[str, Any]:
        return {"method": "entropy"}


class KLM(ZooDetector):
    """KL-matching (Hendrycks et al., ICML 2022): fit the mean softmax ``d_c`` of the fitting
    samples predicted as class c; score ``-min_c KL(p || d_c)``."""

    method = "klm"

    def __init__(self) -> None:
        super().__init__()

    def _core_params(self) -> Dict[str, Any]:
        return {"method": "klm"}


# --- feature space -------------------------------------------------------------------------
class KNN(ZooDetector):
    """Deep nearest neighbours (Sun et al., ICML 2022): ``z = h / |h|``, score
    ``-|z - z_(k)|``, minus the Euclidean distance to the k-th nearest normalised training
    feature (exact search). Paper default ``k=50``; ``normalize=False`` skips the L2 step."""

    method = "knn"

    def __init__(self, k: int = 50, normalize: bool = True) -> None:
        super().__init__()
        self.k = _count("KNN k", k)
        self.normalize = bool(normalize)
        self._check()

    def _core_params(self) -> Dict[str, Any]:
        return {"method": "knn", "k": self.k, "normalize": self.normalize}


class ViM(ZooDetector):
    """ViM, virtual-logit matching (Wang et al., CVPR 2022): origin ``u = -pinv(W) b``,
    residual space R of the D - D' smallest eigenvectors of the centred training covariance,
    ``alpha = mean max_k f_k / mean |R^T (h - u)|``; score
    ``logsumexp(W h + b) - alpha |R^T (h - u)|``. ``dim`` is D' (None: the authors' rule,
    1000 for D >= 2048, 512 for D >= 768, else D / 2)."""

    method = "vim"

    def __init__(self, dim: Optional[int] = None) -> None:
        super().__init__()
        self.dim = None if dim is None else _count("ViM dim", dim)
        self._check()

    def _core_params(self) -> Dict[str, Any]:
        return {"method": "vim", "dim": self.dim}


class Mahalanobis(ZooDetector):
    """Mahalanobis on features (Lee et al. 2018): class means ``mu_c``, one tied covariance
    ``Sigma`` (1/N; optionally shrunk: ``(1 - a) Sigma + a tr(Sigma)/D I``), score
    ``max_c -(h - mu_c)^T Sigma^-1 (h - mu_c)``. Fit on training features and labels. The one
    Mahalanobis class (``MahalanobisFeatures`` is the same class, by its report key); ``load``
    also reads the ``eood-mahalanobis`` JSON of ``eood mahalanobis fit`` (earlier versions)."""

    method = "mahalanobis_features"

    def __init__(self, shrinkage: float = 0.0) -> None:
        super().__init__()
        self.shrinkage = float(shrinkage)
        self._check()

    def _core_params(self) -> Dict[str, Any]:
        return {"method": "mahalanobis_features", "shrinkage": self.shrinkage}

    def _set_state(self, state: Optional[str]) -> None:
        """The state of an ``energy-ood-python-detector`` file of an earlier version
        (``"method": "mahalanobis"``): the ``eood-mahalanobis`` JSON."""
        self._model = None if state is None else _core.ZooModel.from_mahalanobis_json(state)


MahalanobisFeatures = Mahalanobis
_REGISTRY["mahalanobis"] = Mahalanobis  # the method name of files of earlier versions


class RMDS(ZooDetector):
    """Relative Mahalanobis distance (Ren et al. 2021): ``MD_k`` to the class Gaussians (tied
    covariance) minus ``MD_0`` to one background Gaussian of all training features; score
    ``-min_k (MD_k(h) - MD_0(h))``. Fit on training features and labels."""

    method = "rmds"

    def __init__(self, shrinkage: float = 0.0) -> None:
        super().__init__()
        self.shrinkage = float(shrinkage)
        self._check()

    def _core_params(self) -> Dict[str, Any]:
        return {"method": "rmds", "shrinkage": self.shrinkage}


class SHE(ZooDetector):
    """SHE, simplified Hopfield energy (Zhang et al., ICLR 2023): stored pattern ``s_c`` = mean
    feature of the training samples the head classifies correctly as c; score
    ``h . s_{argmax f(h)}``. Fit on features, labels and the head."""

    method = "she"

    def __init__(self) -> None:
        super().__init__()

    def _core_params(self) -> Dict[str, Any]:
        return {"method": "she"}


ZOO_CLASSES = (ReAct, ASH, SCALE, DICE, GradNorm, GEN, Entropy, KLM, KNN, ViM,
               Mahalanobis, RMDS, SHE)
