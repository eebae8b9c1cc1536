"""The paper's evaluation protocol in one call: ``evaluate`` -> ``Report``.

Protocol (Liu et al. 2020, Section 4.1, the Outlier Exposure code): for each OOD set, draw
``samples`` OOD scores (default ``len(id_scores) // 5``) without replacement, ``draws`` times,
compute every metric against the full ID set, report mean and population std (ddof 0) over
the draws; the table ends with the mean over sets of each metric's mean. Each set has its own
random stream seeded by ``seed`` alone, so a row does not depend on the other sets. The draws
are the Rust core's (the same numbers as ``eood metrics --draws``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from . import _core
from ._arrays import as_f64

KEYS = ("fpr95", "auroc", "aupr_in", "aupr_out", "detection_error")
_CORE_KEYS = ("fpr", "auroc", "aupr_in", "aupr_out", "detection_error")


def _metrics(core: Mapping[str, float]) -> Dict[str, float]:
    return {k: float(core[c]) for k, c in zip(KEYS, _CORE_KEYS)}


@dataclass(frozen=True)
class Row:
    """One OOD set: mean and std over the draws (fractions), and each draw's metrics."""

    name: str
    mean: Dict[str, float]
    std: Dict[str, float]
    draws: int
    samples: int
    per_draw: List[Dict[str, float]] = field(repr=False)


@dataclass(frozen=True)
class Report:
    """Per-set rows and the mean row, as fractions in [0, 1]."""

    rows: List[Row]
    mean: Dict[str, float]
    tpr: float
    convention: str

    def __getitem__(self, name: str) -> Row:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "tpr": self.tpr,
            "convention": self.convention,
            "rows": [
                {"name": r.name, "mean": r.mean, "std": r.std, "draws": r.draws,
                 "samples": r.samples, "per_draw": r.per_draw}
                for r in self.rows
            ],
            "mean": self.mean,
        }

    def to_markdown(self, percent: bool = True, digits: int = 2) -> str:
        """The paper's table: one row per set, ``mean ± std``, then the mean row.
        ``percent=True`` prints percentages as the paper does; False prints fractions."""
        scale = 100.0 if percent else 1.0
        unit = " (%)" if percent else ""
        fpr = f"FPR{round(self.tpr * 100)}"
        head = ["OOD set", f"{fpr}{unit} ↓", f"AUROC{unit} ↑", f"AUPR-In{unit} ↑",
                f"AUPR-Out{unit} ↑", f"Det. error{unit} ↓"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.rows:
            cells = [f"{scale * r.mean[k]:.{digits}f} ± {scale * r.std[k]:.{digits}f}" for k in KEYS]
            lines.append(f"| {r.name} | " + " | ".join(cells) + " |")
        cells = [f"{scale * self.mean[k]:.{digits}f}" for k in KEYS]
        lines.append("| **mean** | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def to_pandas(self):
        """A DataFrame indexed by set name (plus ``mean``): each metric and its ``_std``.
        Needs pandas (imported here only)."""
        try:
            import pandas as pd
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("Report.to_pandas needs pandas: pip install pandas") from e
        recs = []
        for r in self.rows:
            rec: Dict[str, Any] = {"set": r.name}
            for k in KEYS:
                rec[k] = r.mean[k]
                rec[f"{k}_std"] = r.std[k]
            recs.append(rec)
        rec = {"set": "mean", **{k: self.mean[k] for k in KEYS}}
        recs.append(rec)
        return pd.DataFrame.from_records(recs).set_index("set")

    def __str__(self) -> str:
        return self.to_markdown()


def evaluate(
    id_scores: Any,
    ood_scores: Any,
    draws: int = 10,
    samples: Optional[int] = None,
    seed: int = 1,
    tpr: float = 0.95,
    convention: str = "paper",
) -> Report:
    """Run the paper's protocol. ``ood_scores`` maps set names to 1-D scores (a single array
    is named ``"ood"``). Returns a :class:`Report`."""
    if not isinstance(ood_scores, Mapping):
        ood_scores = {"ood": ood_scores}
    if not ood_scores:
        raise ValueError("no OOD sets given")
    for what, v in (("draws", draws), ("seed", seed)) + ((("samples", samples),) if samples is not None else ()):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{what} must be a non-negative integer, got {v!r}")
    names = [str(n) for n in ood_scores]
    arrays = [as_f64(v, f"ood_scores[{n!r}]", 1) for n, v in ood_scores.items()]
    table = json.loads(
        _core.evaluate_json(as_f64(id_scores, "id_scores", 1), names, arrays, draws, samples,
                            seed, float(tpr), convention)
    )
    rows = [
        Row(name=name, mean=_metrics(s["mean"]), std=_metrics(s["std"]), draws=s["draws"],
            samples=s["samples"], per_draw=[_metrics(m) for m in s["per_draw"]])
        for name, s in table["rows"]
    ]
    return Report(rows=rows, mean=_metrics(table["mean"]), tpr=float(tpr), convention=convention)
