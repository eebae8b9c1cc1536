"""The one input rule of the package: how user arrays become what the Rust core reads.

Rule (docs/python.md, "Input rule"):

* Anything ``numpy.asarray`` accepts (lists, NumPy arrays, CPU tensors via ``__array__``).
* Real dtypes only. float64 passes through; float16/float32 and (unsigned) integers are
  converted to float64 (exact for float16/float32 and for integers up to 2**53). bool, complex,
  object and string arrays are refused with ``TypeError``.
* Any memory layout: aligned C-contiguous float64 input is used without a copy; Fortran-ordered,
  strided, reversed or unaligned arrays (e.g. from a received network buffer) are copied into
  one aligned C-contiguous array first.
* The number of dimensions must match (1-D scores, 2-D logits/features) or ``ValueError``.
* NaN and +-inf are refused by the core with ``ValueError`` naming the first bad index
  (row and column for matrices).
"""

from __future__ import annotations

from typing import Any

import numpy as np

_REAL_KINDS = "fiu"  # float, signed int, unsigned int


def as_f64(x: Any, name: str, ndim: int) -> np.ndarray:
    """``x`` as a C-contiguous float64 array with ``ndim`` dimensions (zero-copy when it is one)."""
    if x is None:
        raise TypeError(f"{name} is required")
    a = np.asarray(x)
    if a.dtype.kind not in _REAL_KINDS:
        raise TypeError(
            f"{name} has dtype {a.dtype}; expected real numbers "
            "(float16/32/64 or integers, converted to float64)"
        )
    if a.ndim != ndim:
        want = "a 1-D array" if ndim == 1 else f"a {ndim}-D array"
        raise ValueError(f"{name} must be {want}, got shape {a.shape}")
    return np.require(a, dtype=np.float64, requirements=["C", "A"])


def as_labels(x: Any, name: str = "labels") -> np.ndarray:
    """Class labels as C-contiguous int64: integer dtypes only (floats are refused, not rounded)."""
    if x is None:
        raise TypeError(f"{name} is required")
    a = np.asarray(x)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name} has dtype {a.dtype}; expected integers")
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {a.shape}")
    if a.dtype.kind == "u" and a.size and a.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} has values above the int64 range")
    return np.require(a, dtype=np.int64, requirements=["C", "A"])


def check_finite(a: np.ndarray, name: str) -> None:
    """ValueError naming the first NaN/inf (for inputs the core would silently accept)."""
    bad = ~np.isfinite(a)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        v = a.flat[i]
        word = "NaN" if np.isnan(v) else ("inf" if v > 0 else "-inf")  # the core's words
        raise ValueError(f"{name} at index {i} is {word} (non-finite scores are refused)")
