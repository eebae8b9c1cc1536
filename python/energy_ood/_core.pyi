"""Type stubs of the Rust extension ``energy_ood._core`` (ood-core bindings).

Arrays must be C-contiguous float64 (labels: int64); the public wrappers in ``energy_ood``
convert user input by the package's input rule first.
"""

from typing import Dict, List, Optional, Tuple

import numpy as np
import numpy.typing as npt

__version__: str

def score_logits(
    logits: npt.NDArray[np.float64], method: str, temperature: float = 1.0
) -> npt.NDArray[np.float64]: ...
def metrics(
    id_scores: npt.NDArray[np.float64],
    ood_scores: npt.NDArray[np.float64],
    tpr: float = 0.95,
    convention: str = "paper",
) -> Tuple[float, float, float, float, float]: ...
def evaluate_json(
    id_scores: npt.NDArray[np.float64],
    names: List[str],
    ood_sets: List[npt.NDArray[np.float64]],
    draws: int = 10,
    samples: Optional[int] = None,
    seed: int = 1,
    tpr: float = 0.95,
    convention: str = "paper",
) -> str: ...

class Detector:
    @staticmethod
    def calibrate(
        val_scores: npt.NDArray[np.float64],
        tpr: float = 0.95,
        method: str = "energy",
        temperature: Optional[float] = None,
    ) -> "Detector": ...
    @property
    def tau(self) -> float: ...
    @property
    def target_tpr(self) -> float: ...
    @property
    def accepted_fraction(self) -> float: ...
    @property
    def method(self) -> str: ...
    @property
    def temperature(self) -> Optional[float]: ...
    @property
    def score_stats(self) -> Dict[str, float]: ...
    def accept(
        self, scores: npt.NDArray[np.float64], method: Optional[str] = None
    ) -> npt.NDArray[np.bool_]: ...
    def save(self, path: str) -> None: ...
    @staticmethod
    def load(path: str) -> "Detector": ...
    def to_json(self) -> str: ...
    @staticmethod
    def from_json(text: str) -> "Detector": ...

def read_file(path: str) -> bytes:
    """The bytes of a regular file (``ood_core::io::open_regular``)."""

def write_file(path: str, data: bytes) -> None:
    """Write atomically; refuses to replace a directory or a device node."""

def validate_params(params: str) -> None:
    """Check the core's ``Params`` JSON (``{"method": "react", "percentile": 90.0}``)."""

class ZooModel:
    """A fitted detector of the core's zoo (``ood_core::detectors::Fitted``)."""

    @staticmethod
    def fit(
        params: str,
        features: Optional[npt.NDArray[np.float64]] = None,
        logits: Optional[npt.NDArray[np.float64]] = None,
        labels: Optional[npt.NDArray[np.int64]] = None,
        weight: Optional[npt.NDArray[np.float64]] = None,
        bias: Optional[npt.NDArray[np.float64]] = None,
    ) -> "ZooModel": ...
    def score(
        self,
        features: Optional[npt.NDArray[np.float64]] = None,
        logits: Optional[npt.NDArray[np.float64]] = None,
    ) -> npt.NDArray[np.float64]: ...
    @property
    def method(self) -> str: ...
    @property
    def params_json(self) -> str: ...
    def save(self, path: str) -> None: ...
    @staticmethod
    def load(path: str) -> "ZooModel": ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(data: bytes) -> "ZooModel": ...
    @staticmethod
    def from_mahalanobis_json(text: str) -> "ZooModel": ...
