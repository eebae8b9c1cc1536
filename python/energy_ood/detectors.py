"""Post-hoc detectors with one grammar: ``fit(...)`` returns self, ``score(...)`` returns
float64 scores (higher = more in-distribution), fitted detectors pickle and ``save``/``load``.

Each class is a thin wrapper of one method of the Rust core. Adding a method of the detector
zoo is a few lines: subclass :class:`LogitDetector` (a score of the logits alone) or
``_zoo.ZooDetector`` (a method of ``ood_core::detectors``: name its key and its parameters).

Files: the logit scores (Energy, MSP, MaxLogit) save JSON ``{"format":
"energy-ood-python-detector", "version": 1, "method", "params", "state"}``; the zoo classes
(``energy_ood/_zoo.py``, Mahalanobis among them) save the core's ``eood-detector`` file itself,
which Rust's ``Fitted::load`` reads. Reading and writing go through the core's guards
(``_core.read_file`` / ``_core.write_file``: regular files only, atomic writes).
"""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar, Dict, Optional, Type

import numpy as np

from . import _core
from ._arrays import as_f64, as_labels

FORMAT = "energy-ood-python-detector"
VERSION = 1
_REGISTRY: Dict[str, Type["BaseDetector"]] = {}


def _write_atomic(path: "str | os.PathLike[str]", text: str) -> None:
    """Write by the core's atomic write (temporary file, fsync, rename), which refuses to
    replace a directory or a device node."""
    _core.write_file(os.fspath(path), text.encode("utf-8"))


class BaseDetector:
    """Common grammar of every detector. Subclasses set ``method`` (the report.json key)."""

    method: ClassVar[str] = ""

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.method:
            _REGISTRY[cls.method] = cls

    def get_params(self) -> Dict[str, Any]:
        """Constructor keywords (hyper-parameters), JSON-serialisable."""
        return {}

    def fit(self, features: Any = None, logits: Any = None, labels: Any = None,
            weight: Any = None, bias: Any = None) -> "BaseDetector":
        raise NotImplementedError

    def score(self, features: Any = None, logits: Any = None) -> np.ndarray:
        raise NotImplementedError

    # fitted state: the core's own JSON text, or None
    def _state(self) -> Optional[str]:
        return None

    def _set_state(self, state: Optional[str]) -> None:
        pass

    def __getstate__(self) -> Dict[str, Any]:
        return {"params": self.get_params(), "state": self._state()}

    def __setstate__(self, d: Dict[str, Any]) -> None:
        self.__init__(**d["params"])  # type: ignore[misc]
        self._set_state(d["state"])

    def to_json(self) -> str:
        st = self._state()
        return json.dumps({"format": FORMAT, "version": VERSION, "method": self.method,
                           "params": self.get_params(),
                           "state": None if st is None else json.loads(st)})

    @classmethod
    def from_json(cls, text: str) -> "BaseDetector":
        d = json.loads(text)
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError(f"not an {FORMAT} file (format is {d.get('format') if isinstance(d, dict) else None!r})")
        if d.get("version") != VERSION:
            raise ValueError(f"{FORMAT} version {d.get('version')!r} is not supported (expected {VERSION})")
        sub = _REGISTRY.get(d.get("method"))
        if sub is None:
            raise ValueError(f"unknown detector method {d.get('method')!r}")
        if cls is not BaseDetector and not issubclass(sub, cls):
            raise ValueError(f"file holds a {sub.__name__} detector, not {cls.__name__}")
        det = sub(**d.get("params", {}))
        st = d.get("state")
        det._set_state(None if st is None else json.dumps(st))
        return det

    def save(self, path: "str | os.PathLike[str]") -> None:
        """Write the detector (hyper-parameters and fitted state) as JSON, atomically."""
        _write_atomic(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path: "str | os.PathLike[str]") -> "BaseDetector":
        """Read a file written by ``save`` (``BaseDetector.load`` returns the saved class),
        or a core detector file of the zoo (``eood-detector`` JSON or KNN safetensors), or
        the ``eood-mahalanobis`` JSON of ``eood mahalanobis fit`` (earlier versions)."""
        from . import _zoo

        return _zoo.load_bytes(_core.read_file(os.fspath(path)), cls)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


class LogitDetector(BaseDetector):
    """A score of the logits alone: ``fit`` learns nothing and returns self."""

    _core_method: ClassVar[str] = ""

    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = float(temperature)

    def get_params(self) -> Dict[str, Any]:
        return {"temperature": self.temperature}

    def fit(self, features: Any = None, logits: Any = None, labels: Any = None,
            weight: Any = None, bias: Any = None) -> "LogitDetector":
        return self

    def score(self, features: Any = None, logits: Any = None) -> np.ndarray:
        if logits is None:
            raise TypeError(f"{type(self).__name__} scores logits: pass logits=")
        return _core.score_logits(as_f64(logits, "logits", 2), self._core_method, self.temperature)


class Energy(LogitDetector):
    """Negative free energy ``T * logsumexp(f / T)`` (Liu et al. 2020, eq. 5)."""

    method = "energy"
    _core_method = "energy"


class MSP(LogitDetector):
    """Maximum softmax probability ``max_k softmax(f / T)_k`` (Hendrycks & Gimpel 2017)."""

    method = "msp"
    _core_method = "msp"


class MaxLogit(LogitDetector):
    """Maximum logit ``max_k f_k`` (Hendrycks et al. 2022); it has no temperature."""

    method = "maxlogit"
    _core_method = "maxlogit"

    def __init__(self) -> None:
        self.temperature = 1.0

    def get_params(self) -> Dict[str, Any]:
        return {}


class FittedDetector(BaseDetector):
    """A method with a fitted model held by the Rust core (``self._model``)."""

    def __init__(self) -> None:
        self._model: Any = None

    @property
    def fitted(self) -> bool:
        return self._model is not None

    def _require(self) -> Any:
        if self._model is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(...) first")
        return self._model


# the detector zoo of the core (ReAct, ASH, ..., one class per method): energy_ood/_zoo.py
from ._zoo import (  # noqa: E402
    ASH, DICE, GEN, KLM, KNN, RMDS, SCALE, SHE, Entropy, GradNorm, Mahalanobis,
    MahalanobisFeatures, ReAct, ViM, ZooDetector,
)

__all__ = ["BaseDetector", "LogitDetector", "FittedDetector", "Energy", "MSP", "MaxLogit",
           "Mahalanobis", "ZooDetector", "ReAct", "ASH", "SCALE", "DICE", "GradNorm", "GEN",
           "Entropy", "KLM", "KNN", "ViM", "MahalanobisFeatures", "RMDS", "SHE"]
