"""Speed of energy_ood against scikit-learn and pytorch-ood 0.4.0 on the same arrays, one run.

    python python/bench/bench_metrics.py [--n 1000000] [--repeats 3] [--json out.json]

1. Metrics: all five metrics (FPR95, AUROC, AUPR-In, AUPR-Out, detection error) of 1M ID +
   1M OOD float64 scores: ``energy_ood.metrics`` vs scikit-learn (the same reference functions
   as docs/bench-core.md, imported from crates/ood-core/bench/bench_core.py, per convention) vs
   pytorch-ood's ``OODMetrics`` (update + compute, ood-positive). Values are checked to agree.
2. Post-hoc detectors: energy, MSP, max-logit on 200k x 100 logits and Mahalanobis (fit on
   50k x 128 features of 10 classes, score 20k), vs pytorch-ood's detectors on the same arrays
   (CPU torch tensors; pytorch-ood fits Mahalanobis in float32, we in float64).

Times are the best of ``--repeats`` runs; the table reports ratios (peer time / ours).
Needs energy_ood, scikit-learn, torch and pytorch-ood==0.4.0 (docs/benchmarks.md says how).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "crates", "ood-core", "bench"))
# the scikit-learn side of docs/bench-core.md, so both pages time the same reference
from bench_core import best_of as best  # noqa: E402
from bench_core import sklearn_ood_positive, sklearn_paper  # noqa: E402


def pytorch_ood_metrics(a, b):
    import torch
    from pytorch_ood.metrics import OODMetrics

    m = OODMetrics()
    scores = torch.from_numpy(-np.r_[a, b])
    labels = torch.from_numpy(np.r_[np.zeros(len(a), np.int64), -np.ones(len(b), np.int64)])
    m.update(scores, labels)
    return m.compute()


def bench_metrics(n, repeats, rng):
    import energy_ood as eo

    a, b = rng.normal(1.0, 1.0, n), rng.normal(0.0, 1.0, n)
    t_ours, ours = best(lambda: eo.metrics(a, b), repeats)
    t_ours_op, ours_op = best(lambda: eo.metrics(a, b, convention="ood-positive"), repeats)
    t_sk, sk = best(lambda: sklearn_paper(a, b), repeats)
    t_sk_op, _ = best(lambda: sklearn_ood_positive(a, b), repeats)
    t_po, po = best(lambda: pytorch_ood_metrics(a, b), repeats)
    agree = max(abs(ours["fpr95"] - sk["fpr"]), abs(ours["auroc"] - sk["auroc"]), abs(ours["aupr_in"] - sk["aupr_in"]),
                abs(ours["aupr_out"] - sk["aupr_out"]), abs(ours_op["auroc"] - po["AUROC"]),
                abs(ours_op["aupr_in"] - po["AUPR-IN"]), abs(ours_op["aupr_out"] - po["AUPR-OUT"]),
                abs(ours_op["fpr95"] - po["FPR95TPR"]))
    return {"n_id": n, "n_ood": n, "energy_ood_s": t_ours, "energy_ood_ood_positive_s": t_ours_op,
            "sklearn_s": t_sk, "sklearn_ood_positive_s": t_sk_op, "pytorch_ood_s": t_po, "max_abs_difference": agree,
            "vs_sklearn": t_sk / t_ours, "vs_sklearn_ood_positive": t_sk_op / t_ours_op,
            "vs_pytorch_ood": t_po / t_ours_op}


def bench_detectors(repeats, rng, n_logits=200_000):
    import torch
    from pytorch_ood.detector import EnergyBased, Mahalanobis, MaxLogit, MaxSoftmax

    from energy_ood import detectors as D

    logits = rng.normal(0.0, 3.0, size=(n_logits, 100))
    tl = torch.from_numpy(logits)
    rows = []
    for name, ours, peer in (
        ("energy", D.Energy(), EnergyBased(None)),
        ("msp", D.MSP(), MaxSoftmax(None)),
        ("maxlogit", D.MaxLogit(), MaxLogit(None)),
    ):
        t_o, s_o = best(lambda: ours.score(logits=logits), repeats)
        t_p, s_p = best(lambda: peer.predict_logits(tl), repeats)
        rows.append({"method": name, "energy_ood_s": t_o, "pytorch_ood_s": t_p,
                     "max_abs_difference": float(np.max(np.abs(s_o + s_p.numpy()))),
                     "ratio": t_p / t_o})
    centers = rng.normal(0.0, 2.0, size=(10, 128))
    y = rng.integers(0, 10, 50_000)
    x = (centers[y] + rng.normal(size=(50_000, 128))).astype(np.float32)
    test = rng.normal(0.0, 2.0, size=(20_000, 128)).astype(np.float32)
    tx, ty, tt = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(test)

    def ours():
        return D.Mahalanobis().fit(features=x, labels=y).score(features=test)

    def peer():
        return Mahalanobis(None).fit_features(tx, ty).predict_features(tt)

    t_o, s_o = best(ours, repeats)
    t_p, s_p = best(peer, repeats)
    rel = np.max(np.abs(s_o + 2 * len(x) * s_p.double().numpy()) / np.abs(s_o))
    rows.append({"method": "mahalanobis (fit + score)", "energy_ood_s": t_o, "pytorch_ood_s": t_p,
                 "max_rel_difference": float(rel), "ratio": t_p / t_o})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    import sklearn
    import torch

    import energy_ood

    rng = np.random.default_rng(2020)
    env = {"python": platform.python_version(), "energy_ood": energy_ood.__version__,
           "numpy": np.__version__, "sklearn": sklearn.__version__, "torch": torch.__version__,
           "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count()}
    m = bench_metrics(args.n, args.repeats, rng)
    d = bench_detectors(args.repeats, rng)
    print(f"environment: {env}")
    print(f"\n### Metrics on {args.n:,} + {args.n:,} scores (best of {args.repeats})\n")
    print("| convention | energy_ood (s) | scikit-learn (s) | ratio | pytorch-ood OODMetrics (s) | ratio |")
    print("|---|---|---|---|---|---|")
    print(f"| paper | {m['energy_ood_s']:.3f} | {m['sklearn_s']:.3f} | {m['vs_sklearn']:.1f}x | | |")
    print(f"| ood-positive | {m['energy_ood_ood_positive_s']:.3f} | {m['sklearn_ood_positive_s']:.3f} "
          f"| {m['vs_sklearn_ood_positive']:.1f}x | {m['pytorch_ood_s']:.3f} | {m['vs_pytorch_ood']:.1f}x |")
    print(f"\nlargest difference of a metric value: {m['max_abs_difference']:.2e}")
    print(f"\n### Post-hoc detectors (best of {args.repeats})\n")
    print("| method | energy_ood (s) | pytorch-ood (s) | ratio |\n|---|---|---|---|")
    for r in d:
        print(f"| {r['method']} | {r['energy_ood_s']:.3f} | {r['pytorch_ood_s']:.3f} | {r['ratio']:.1f}x |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "metrics": m, "detectors": d}, f, indent=2)


if __name__ == "__main__":
    main()
