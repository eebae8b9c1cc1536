"""Speed of energy_ood against scikit-learn and pytorch-ood 0.4.0 on the same arrays, one run.

    python python/bench/bench_metrics.py [--n 1000000] [--repeats 3] [--json out.json]

1. Metrics: all five metrics (FPR95, AUROC, AUPR-In, AUPR-Out, detection error) of 1M ID +
   1M OOD float64 scores: ``energy_ood.metrics`` vs scikit-learn (the same reference functions
   as docs/bench-core.md, imported from crates/ood-core/bench/bench_core.py, per convention) vs
   pytorch-ood's ``OODMetrics`` (update + compute, ood-positive). Values are checked to agree.
2. Post-hoc detectors: every class of ``energy_ood.detectors`` (the 18 report keys of the zoo:
   the logit scores, ReAct, ASH-P/B/S, SCALE, DICE, GEN, entropy, KL-matching, KNN, ViM,
   Mahalanobis, RMDS, SHE, GradNorm), fitted with their defaults and scored, vs pytorch-ood's
   detectors on the same arrays: the arrays and the pytorch-ood calls of the zoo benchmark
   (crates/ood-core/bench/bench_zoo.py: 50,000 x 128 training features of 10 classes, 20,000
   test rows, a 10-class head), float32 CPU tensors for pytorch-ood, the same float32 NumPy
   arrays for energy_ood (which converts them to float64).

Rounds alternate between the tools (``--repeats`` of them) and the medians are reported, with
``--threads`` threads each (rayon's pool, torch.set_num_threads); ratios are peer time / ours.
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
from bench_core import sklearn_ood_positive, sklearn_paper  # noqa: E402
# the zoo benchmark's arrays and pytorch-ood calls, so both pages time the same peer
from bench_zoo import METHODS, peer_methods, zoo_arrays  # noqa: E402


def alternate(fns, rounds):
    """Run each function once per round, in turn; the median time and the last result of each."""
    import time

    times = [[] for _ in fns]
    out = [None] * len(fns)
    for _ in range(rounds):
        for i, f in enumerate(fns):
            t = time.perf_counter()
            out[i] = f()
            times[i].append(time.perf_counter() - t)
    return [float(np.median(t)) for t in times], out


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
    (t_ours, t_ours_op, t_sk, t_sk_op, t_po), (ours, ours_op, sk, _, po) = alternate([
        lambda: eo.metrics(a, b), lambda: eo.metrics(a, b, convention="ood-positive"),
        lambda: sklearn_paper(a, b), lambda: sklearn_ood_positive(a, b),
        lambda: pytorch_ood_metrics(a, b)], repeats)
    agree = max(abs(ours["fpr95"] - sk["fpr"]), abs(ours["auroc"] - sk["auroc"]), abs(ours["aupr_in"] - sk["aupr_in"]),
                abs(ours["aupr_out"] - sk["aupr_out"]), abs(ours_op["auroc"] - po["AUROC"]),
                abs(ours_op["aupr_in"] - po["AUPR-IN"]), abs(ours_op["aupr_out"] - po["AUPR-OUT"]),
                abs(ours_op["fpr95"] - po["FPR95TPR"]))
    return {"n_id": n, "n_ood": n, "energy_ood_s": t_ours, "energy_ood_ood_positive_s": t_ours_op,
            "sklearn_s": t_sk, "sklearn_ood_positive_s": t_sk_op, "pytorch_ood_s": t_po, "max_abs_difference": agree,
            "vs_sklearn": t_sk / t_ours, "vs_sklearn_ood_positive": t_sk_op / t_ours_op,
            "vs_pytorch_ood": t_po / t_ours_op}


def our_methods(train, y, W, b, test):
    """energy_ood: key -> fit (where the method fits) + score with the defaults, the same keys
    and order as the zoo benchmark's pytorch-ood side."""
    from energy_ood import detectors as D

    fit = {"features": train, "labels": y, "weight": W, "bias": b}
    logits = lambda: test @ W.T + b  # the logit scores take logits; the head is part of the time
    m = {
        "energy": lambda: D.Energy().score(logits=logits()),
        "msp": lambda: D.MSP().score(logits=logits()),
        "maxlogit": lambda: D.MaxLogit().score(logits=logits()),
    }
    zoo = {"react": D.ReAct, "ash_p": lambda: D.ASH(variant="p"),
           "ash_b": lambda: D.ASH(variant="b"), "ash_s": lambda: D.ASH(variant="s"),
           "scale": D.SCALE, "dice": D.DICE, "gen": D.GEN, "entropy": D.Entropy, "klm": D.KLM,
           "knn": D.KNN, "vim": D.ViM, "mahalanobis_features": D.Mahalanobis, "rmds": D.RMDS,
           "she": D.SHE, "gradnorm": D.GradNorm}
    for key, make in zoo.items():
        m[key] = lambda make=make: make().fit(**fit).score(features=test)
    assert list(m) == METHODS
    return m


def bench_detectors(repeats, rng):
    import torch

    a = zoo_arrays(rng)
    ours = our_methods(a["train"], a["train_labels"], a["weight"], a["bias"], a["test"])
    t = {k: torch.from_numpy(v) for k, v in a.items()}
    peer = peer_methods(t["train"], t["train_labels"], t["weight"], t["bias"], t["test"])
    rows = []
    for key in METHODS:
        (t_o, t_p), (s_o, s_p) = alternate([ours[key], peer[key]], repeats)
        s_p = np.asarray(s_p, dtype=np.float64)
        # the same ranking up to a sign and a scale (pytorch-ood scores are lower = ID)
        rho = float(np.corrcoef(np.argsort(np.argsort(s_o)), np.argsort(np.argsort(-s_p)))[0, 1])
        rows.append({"method": key, "energy_ood_s": t_o, "pytorch_ood_s": t_p,
                     "rank_correlation": rho, "ratio": t_p / t_o})
    tot_o = sum(r["energy_ood_s"] for r in rows)
    tot_p = sum(r["pytorch_ood_s"] for r in rows)
    rows.append({"method": "total", "energy_ood_s": tot_o, "pytorch_ood_s": tot_p,
                 "ratio": tot_p / tot_o})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=["metrics", "detectors"])
    args = ap.parse_args()
    os.environ["RAYON_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import sklearn
    import torch

    torch.set_num_threads(args.threads)

    import energy_ood

    rng = np.random.default_rng(2020)
    env = {"python": platform.python_version(), "energy_ood": energy_ood.__version__,
           "numpy": np.__version__, "sklearn": sklearn.__version__, "torch": torch.__version__,
           "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
           "loadavg_start": os.getloadavg()}
    m = bench_metrics(args.n, args.repeats, rng) if args.only != "detectors" else None
    d = bench_detectors(args.repeats, rng) if args.only != "metrics" else []
    env["loadavg_end"] = os.getloadavg()
    import resource
    env["peak_mib_both_tools"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"environment: {env}")
    if m is not None:
        print_metrics(args, m)
    print(f"\n### Post-hoc detectors, fit + score (medians of {args.repeats} alternating rounds)\n")
    print("| method | energy_ood (s) | pytorch-ood (s) | ratio |\n|---|---|---|---|")
    for r in d:
        print(f"| {r['method']} | {r['energy_ood_s']:.3f} | {r['pytorch_ood_s']:.3f} | {r['ratio']:.1f}x |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "metrics": m, "detectors": d}, f, indent=2)


def print_metrics(args, m):
    print(f"\n### Metrics on {args.n:,} + {args.n:,} scores (medians of {args.repeats} alternating rounds)\n")
    print("| convention | energy_ood (s) | scikit-learn (s) | ratio | pytorch-ood OODMetrics (s) | ratio |")
    print("|---|---|---|---|---|---|")
    print(f"| paper | {m['energy_ood_s']:.3f} | {m['sklearn_s']:.3f} | {m['vs_sklearn']:.1f}x | | |")
    print(f"| ood-positive | {m['energy_ood_ood_positive_s']:.3f} | {m['sklearn_ood_positive_s']:.3f} "
          f"| {m['vs_sklearn_ood_positive']:.1f}x | {m['pytorch_ood_s']:.3f} | {m['vs_pytorch_ood']:.1f}x |")
    print(f"\nlargest difference of a metric value: {m['max_abs_difference']:.2e}")


if __name__ == "__main__":
    main()
